/**
 * Block-FP8 experts kept as stored (Checkpoint.readExpertFp8, Fp8SwiGlu): a runtime that keeps
 * weights as stored (bf16Weights) holds the E4M3 codes of DeepSeek-V3's and the Qwen3 "-FP8"
 * releases' experts (a byte a value, and a scale a group of a row) instead of decoding them to BF16
 * (two bytes). Independent truth: the checkpoint's own BF16 decoding of the same tensors
 * (test/checkpoint/fp8-blocks.test.ts holds it to the format's definition, test/hf to
 * transformers), against which
 * - each expert matrix kept as stored decodes (from the definition, here) to the BF16 read's
 *   values: per-expert tensors with partial blocks, fused [E, 2I, H] tensors whose experts start
 *   mid-block, and one scale a row (llm-compressor's channel scheme);
 * - the decoder's hidden states are bit for bit those of the same provider with the experts read
 *   as BF16, for a prompt batch and for one token a sequence, on every engine;
 * - the resident bytes count the experts at their stored size, and mapped codes as the page
 *   cache's;
 * - checked reads (withFiniteChecks) decode instead: codes kept as stored are not checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withFiniteChecks } from '../../src/checkpoint/finite.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint, FamilyName } from '../../src/checkpoint/types.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import { fp8Bytes } from '../../src/io/fp8-matrix.js';
import { batchFromSequences } from '../../src/runtime/batch.js';
import { CheckpointWeights } from '../../src/runtime/checkpoint-weights.js';
import { Fp8SwiGlu } from '../../src/runtime/fp8-swiglu.js';
import { runDecoder } from '../../src/runtime/layerwise.js';
import { residentWeightBytes } from '../../src/runtime/resident-weights.js';
import { makeScratch } from '../checkpoint/tmp-dirs.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { quantizeToFp8, withExpertsDecoded, type Fp8Options } from '../helpers/fp8-fixture.js';
import { decodeFp8 } from '../helpers/fp8-gemm-check.js';

const H = 64;
const I = 48;
const E = 8;
const engines = await listAvailableEngines();
let scratch: Awaited<ReturnType<typeof makeScratch>>;
const ckpts = new Map<string, Checkpoint>();

const isExpert = (name: string) => /\.experts\./.test(name) && !name.endsWith('bias');


/** [label, family, fixture options, FP8 options, the group a row's scales cover] */
const CASES: Array<[string, FamilyName, Parameters<typeof makeTinyCheckpoint>[2], Fp8Options, number]> = [
  // Qwen3-FP8's form: a tensor per expert, blocks that leave partial ones at the edges (48 = 32 + 16)
  ['per-expert tensors, 32×32 blocks', 'qwen3_moe', { fusedExperts: false }, { block: [32, 32], pick: isExpert }, 32],
  // the transformers ≥ 5 fused form: expert e's gate rows start at 2·48·e, mid-block of 40
  ['fused [E, 2I, H], 40×24 blocks', 'qwen3_moe', { fusedExperts: true }, { block: [40, 24], pick: isExpert }, 24],
  ['one scale a row (compressed-tensors channel)', 'qwen3_moe', { fusedExperts: false }, { block: null, pick: isExpert, compressedTensorsChannel: true }, 1e9],
];

beforeAll(async () => {
  scratch = await makeScratch('fp8-experts');
  let seed = 60;
  for (const [label, family, fixture, fp8] of CASES) {
    const { dir } = await makeTinyCheckpoint(scratch.sub(`c${seed}`), family, { seed, hiddenSize: H, expertIntermediateSize: I, numExperts: E, topK: 2, dtype: 'BF16', ...fixture });
    await quantizeToFp8(dir, seed++, fp8);
    ckpts.set(label, await openCheckpoint(dir));
  }
}, 60_000);

afterAll(async () => {
  for (const c of ckpts.values()) await c.close();
  await scratch?.cleanup();
  engines.forEach((e) => e.dispose());
});

describe.each(CASES.map(([label, , , , group]) => [label, group] as const))('FP8 experts kept as stored: %s', (label, group) => {
  const ckpt = () => ckpts.get(label)!;

  it('each expert matrix decodes to the checkpoint\'s BF16 read of it', async () => {
    for (const layer of [0, 1]) {
      for (const expert of [0, 3, 7]) {
        for (const type of ['gate', 'up', 'down'] as const) {
          const m = (await ckpt().readExpertFp8!(layer, expert, type))!;
          const [rows, cols] = type === 'down' ? [H, I] : [I, H];
          const g = Math.min(group, cols);
          expect([m.rows, m.cols, m.group, m.codes.length, m.scales.length]).toEqual([rows, cols, g, rows * cols, rows * Math.ceil(cols / g)]);
          const bf16 = (await ckpt().readExpertBf16!(layer, expert, type))!;
          const decoded = new Float32Array(decodeFp8(m.codes, m.scales, rows, cols, m.group));
          expect(Uint16Array.from(new Uint32Array(decoded.buffer), (b) => b >>> 16), `layer ${layer} expert ${expert} ${type}`).toEqual(bf16);
        }
      }
    }
  });

  it('a runtime keeping weights as stored holds them so and counts them so; mapped codes count as the page cache\'s', async () => {
    const held = await new CheckpointWeights(ckpt(), { bf16Weights: true }).layer(0);
    if (held.mlp.kind !== 'moe') throw new Error('layer 0 of the fixture is an MoE layer');
    const expert = await held.mlp.moe.expert(3);
    expect(expert).toBeInstanceOf(Fp8SwiGlu);
    const g = (cols: number) => Math.min(group, cols);
    expect((expert as Fp8SwiGlu).byteLength).toBe(2 * fp8Bytes(I, H, g(H)) + fp8Bytes(H, I, g(I)));
    // f32 widening (no bf16Weights), a checkpoint without the FP8 reads and checked reads keep the old forms
    const widened = await new CheckpointWeights(ckpt()).layer(0);
    expect(widened.mlp.kind === 'moe' && (await widened.mlp.moe.expert(3)) instanceof Fp8SwiGlu).toBe(false);
    const checked = await new CheckpointWeights(withFiniteChecks(ckpt()), { bf16Weights: true }).layer(0);
    expect(checked.mlp.kind === 'moe' && (await checked.mlp.moe.expert(3)) instanceof Fp8SwiGlu).toBe(false);
    const moeLayers = ckpt().layout.layers.filter((l) => l.moe).length;
    const gateUp = moeLayers * E * 2 * I * H;
    const down = moeLayers * E * H * I;
    const asBf16 = residentWeightBytes(withExpertsDecoded(ckpt()), { bf16Weights: true });
    const stored = fp8Bytes(gateUp / H, H, g(H)) + fp8Bytes(down / I, I, g(I));
    expect(residentWeightBytes(ckpt(), { bf16Weights: true })).toBe(asBf16 - 2 * (gateUp + down) + stored);
    expect(residentWeightBytes(ckpt(), { bf16Weights: true, mapped: true })).toBe(residentWeightBytes(withExpertsDecoded(ckpt()), { bf16Weights: true, mapped: true }) - 2 * (gateUp + down) + stored - (gateUp + down));
  });

  describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
    it('hidden states bit for bit those of the experts read as BF16: a prompt batch and one token a sequence', async () => {
      const prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [40, 7, 33, 2, 9], [60, 61, 62, 63, 9, 12, 14, 15, 16]];
      for (const batch of [prompts, prompts.map((p) => [p[0]])]) {
        const run = (c: Checkpoint) => runDecoder(new CheckpointWeights(c, { bf16Weights: true }), engine, batchFromSequences(batch.map((p) => Int32Array.from(p))));
        const [held, decoded] = [await run(ckpt()), await run(withExpertsDecoded(ckpt()))];
        expect(held.some((v) => v !== 0)).toBe(true);
        expect(held).toEqual(decoded);
      }
    });
  });
});

describe('FP8 codes read from mapped files', () => {
  // the files are mapped through the native addon; without it reads stay copies (covered above)
  it.skipIf(!engines.some((e) => e.name === 'native'))('are views of the mapping, equal to the copies', async () => {
    const label = CASES[0][0];
    const copied = ckpts.get(label)!;
    const mapped = await openCheckpoint(copied.dir);
    try {
      expect(mapped.mapReads!()).not.toBeNull();
      const m = (await mapped.readExpertFp8!(1, 2, 'gate'))!;
      const c = (await copied.readExpertFp8!(1, 2, 'gate'))!;
      expect(m.codes).toEqual(c.codes);
      expect(m.scales).toEqual(c.scales);
      // a view of the whole mapped file: its buffer is larger than the matrix's codes
      expect(m.codes.buffer.byteLength).toBeGreaterThan(m.codes.byteLength + 1024);
      expect(c.codes.buffer.byteLength).toBeLessThan(m.codes.buffer.byteLength);
    } finally {
      await mapped.close();
    }
  });
});
