/**
 * MXFP4 experts (gpt-oss's format) read by rfid-moe are, bit for bit, what transformers' own
 * dequantisation (convert_moe_packed_tensors, every CPU load of gpt-oss) makes of them.
 * scripts/mxfp4_reference.py writes a small two-shard MXFP4 checkpoint (random blocks, scales
 * across gpt-oss's range and at the edges 0, 1, 254, 255, one pair split across the shards) and
 * the tensors transformers dequantises from it; the test reads the checkpoint through
 * openTensorSource (Mxfp4Store) and compares the BF16 patterns: whole reads, one expert's slab,
 * ranges crossing experts and starting within a group of 32.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openTensorSource } from '../../src/checkpoint/open.js';
import { TensorStore, type TensorSource } from '../../src/io/sharded.js';
import { runPythonJson } from '../helpers/python-json.js';
import { describeWithTransformers, pythonPath } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';
import { makeScratch } from '../checkpoint/tmp-dirs.js';

const E = 4;
const H = 64;
const I = 96;

describeWithTransformers('MXFP4 experts read as transformers dequantises them', () => {
  let scratch: Awaited<ReturnType<typeof makeScratch>>;
  let source: TensorSource;
  let expected: TensorStore;
  let names: string[];

  beforeAll(async () => {
    scratch = await makeScratch('mxfp4-hf');
    const out = await runPythonJson<{ transformers: string; torch: string; tensors: string[] }>(pythonPath, path.join(repoRoot, 'scripts', 'mxfp4_reference.py'), {
      out: scratch.dir,
      seed: 11,
      experts: E,
      hidden: H,
      intermediate: I,
      layers: 2,
    });
    names = out.tensors;
    source = await openTensorSource(path.join(scratch.dir, 'mxfp4'));
    expected = await TensorStore.open(path.join(scratch.dir, 'expected.safetensors'));
  }, 120_000);

  afterAll(async () => {
    await source?.close();
    await expected?.close();
    await scratch?.cleanup();
  });

  /** index of the first difference, -1 when equal */
  const firstDifference = (a: Uint16Array, b: Uint16Array) => {
    if (a.length !== b.length) return Math.min(a.length, b.length);
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
    return -1;
  };

  it('presents exactly transformers’ tensors: the pairs as gate_up_proj [E, H, 2I] and down_proj [E, I, H], the rest as stored', async () => {
    expect([...source.tensorNames()].sort()).toEqual(names);
    for (const name of names) {
      const want = expected.tensor(name)!;
      expect(source.tensor(name), name).toMatchObject({ dtype: 'BF16', shape: want.shape, byteLength: want.byteLength });
    }
    expect(source.tensor('model.layers.0.mlp.experts.gate_up_proj')!.shape).toEqual([E, H, 2 * I]);
    expect(source.tensor('model.layers.1.mlp.experts.down_proj')!.shape).toEqual([E, I, H]);
  });

  it('whole reads are transformers’ BF16 bit for bit (infinities where 2^(s − 127) overflows included)', async () => {
    let infinities = 0;
    for (const name of names) {
      const want = await expected.readBf16(name);
      const got = await source.readBf16(name);
      expect(firstDifference(got, want), name).toBe(-1);
      const f32 = await source.readF32(name);
      expect(new Uint32Array(f32.buffer, f32.byteOffset, f32.length)).toEqual(Uint32Array.from(want, (b) => b << 16));
      infinities += f32.filter((v) => !Number.isFinite(v)).length;
    }
    // the edge scales were exercised
    expect(infinities).toBeGreaterThan(0);
  });

  it('row reads: one expert’s slab, ranges across experts and within groups of 32', async () => {
    for (const [name, slab, cols] of [
      ['model.layers.0.mlp.experts.gate_up_proj', H, 2 * I],
      ['model.layers.1.mlp.experts.gate_up_proj', H, 2 * I],
      ['model.layers.0.mlp.experts.down_proj', I, H],
      ['model.layers.1.mlp.experts.down_proj', I, H],
    ] as const) {
      const want = await expected.readBf16(name);
      for (const [a, b] of [
        [2 * slab, 3 * slab], // expert 2's slab
        [slab - 9, slab + 40], // across experts, from within a group
        [slab + 17, 3 * slab + 1], // over a whole expert
        [E * slab - 1, E * slab],
        [45, 46],
      ]) {
        expect(firstDifference(await source.readRowsBf16(name, a, b), want.subarray(a * cols, b * cols)), `${name} rows [${a}, ${b})`).toBe(-1);
      }
    }
  });
});
