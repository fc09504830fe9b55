/**
 * Routed experts kept in BF16 as the checkpoint stores them (CheckpointWeights' `bf16Experts`,
 * the default of generation and the server): the expert is a Bf16SwiGlu holding exactly the
 * stored bits, per-expert and fused (transformers ≥ 5) layouts alike; its output matches the
 * f32 expert's; a checkpoint whose experts are not BF16 keeps f32; the resident bytes count 2 per
 * kept value; and a NaN in a BF16 expert is refused by the finite checks as in f32.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NonFiniteError, withFiniteChecks } from '../../src/checkpoint/finite.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint, FamilyName } from '../../src/checkpoint/types.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import { Bf16SwiGlu, CheckpointWeights, DenseSwiGlu, residentWeightBytes } from '../../src/runtime/index.js';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { uniform } from '../helpers/small-rows-check.js';

const dirs: string[] = [];
const opened: Checkpoint[] = [];
const engines = await listAvailableEngines();
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  engines.forEach((e) => e.dispose());
});

async function fixture(family: FamilyName, opts: TinyCheckpointOptions): Promise<{ dir: string; ckpt: Checkpoint }> {
  const dir = mkdtempSync(path.join(tmpdir(), `rfid-bf16-${family}-`));
  dirs.push(dir);
  await makeTinyCheckpoint(dir, family, { seed: 5, ...opts });
  const ckpt = await openCheckpoint(dir);
  opened.push(ckpt);
  return { dir, ckpt };
}

const bitsOf = (f: Float32Array) => Uint16Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length), (b) => b >>> 16);

describe.each([
  ['mixtral', false],
  ['qwen3_moe', false],
  ['qwen3_moe', true],
  ['olmoe', true],
] as const)('%s, fused experts %s', (family, fusedExperts) => {
  const made = fixture(family, { dtype: 'BF16', fusedExperts });

  it('each routed expert is a Bf16SwiGlu holding exactly the stored bits', async () => {
    const { ckpt } = await made;
    const provider = new CheckpointWeights(ckpt, { bf16Experts: true });
    const layerIndex = ckpt.layout.layers.findIndex((l) => l.kind === 'moe');
    const layer = await provider.layer(layerIndex);
    if (layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    for (const e of [0, ckpt.config.numExperts - 1]) {
      const expert = await layer.mlp.moe.expert(e);
      expect(expert).toBeInstanceOf(Bf16SwiGlu);
      const bf16 = expert as Bf16SwiGlu;
      // readExpert widens the same stored values to f32: their upper halves are the kept bits
      for (const type of ['gate', 'up', 'down'] as const) expect(bf16[type]).toEqual(bitsOf(await ckpt.readExpert(layerIndex, e, type)));
      expect(bf16.byteLength).toBe(3 * ckpt.config.hiddenSize * ckpt.config.expertIntermediateSize * 2);
    }
  });

  it.each(engines.map((e) => [e.describe(), e] as const))('%s: the BF16 expert computes what the f32 expert computes', async (_name, engine) => {
    const { ckpt } = await made;
    const layerIndex = ckpt.layout.layers.findIndex((l) => l.kind === 'moe');
    const bf16Layer = await new CheckpointWeights(ckpt, { bf16Experts: true }).layer(layerIndex);
    const f32Layer = await new CheckpointWeights(ckpt).layer(layerIndex);
    if (bf16Layer.mlp.kind !== 'moe' || f32Layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    const h = ckpt.config.hiddenSize;
    for (const rows of [1, 3, 8, 13, 40]) {
      const x = uniform(rows * h, rows);
      const a = new Float32Array(rows * h);
      const b = new Float32Array(rows * h);
      const viaBf16 = await bf16Layer.mlp.moe.expert(2);
      const viaF32 = await f32Layer.mlp.moe.expert(2);
      expect(viaF32).toBeInstanceOf(DenseSwiGlu);
      viaBf16.forward(engine, x, rows, a);
      viaF32.forward(engine, x, rows, b);
      const scale = Math.max(...b.map(Math.abs));
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-5 * scale);
    }
  });

  it('resident bytes: 2 per kept expert value, 4 per other value', async () => {
    const { ckpt } = await made;
    const { hiddenSize: H, expertIntermediateSize: I, numExperts: E } = ckpt.config;
    const moeLayers = ckpt.layout.layers.filter((l) => l.kind === 'moe').length;
    let values = 0;
    for (const name of ckpt.tensorNames()) values += ckpt.tensor(name)!.shape.reduce((x, y) => x * y, 1);
    expect(residentWeightBytes(ckpt)).toBe(4 * values);
    expect(residentWeightBytes(ckpt, { bf16Experts: true })).toBe(4 * values - 2 * moeLayers * E * 3 * H * I);
  });
});

describe('where experts stay f32', () => {
  it('an F32 checkpoint keeps DenseSwiGlu experts and counts 4 bytes a value', async () => {
    const { ckpt } = await fixture('mixtral', { dtype: 'F32' });
    const layer = await new CheckpointWeights(ckpt, { bf16Experts: true }).layer(0);
    if (layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    expect(await layer.mlp.moe.expert(0)).toBeInstanceOf(DenseSwiGlu);
    expect(residentWeightBytes(ckpt, { bf16Experts: true })).toBe(residentWeightBytes(ckpt));
  });

  it('bf16Experts off (the default of CheckpointWeights) widens BF16 experts to f32', async () => {
    const { ckpt } = await fixture('mixtral', { dtype: 'BF16' });
    const layer = await new CheckpointWeights(ckpt).layer(0);
    if (layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    expect(await layer.mlp.moe.expert(0)).toBeInstanceOf(DenseSwiGlu);
  });
});

describe('finite checks', () => {
  it('a NaN in a BF16 expert is refused with its layer, expert and tensor', async () => {
    const { dir } = await fixture('mixtral', { dtype: 'BF16' });
    const file = path.join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    const name = 'model.layers.1.block_sparse_moe.experts.3.w2.weight';
    const at = 8 + headerLength + header[name].data_offsets[0] + 2 * 5;
    bytes.writeUInt16LE(0x7fc0, at); // a BF16 quiet NaN at element 5
    writeFileSync(file, bytes);
    const ckpt = withFiniteChecks(await openCheckpoint(dir));
    opened.push(ckpt);
    await expect(ckpt.readExpertBf16!(1, 3, 'down')).rejects.toThrow(NonFiniteError);
    await expect(ckpt.readExpertBf16!(1, 3, 'down')).rejects.toThrow(/layer 1, expert 3 down \(tensor model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight\): holds NaN \(element 5/);
    expect(await ckpt.readExpertBf16!(1, 2, 'down')).toBeInstanceOf(Uint16Array);
  });
});
