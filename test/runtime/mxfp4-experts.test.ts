/**
 * gpt-oss's MXFP4 experts kept as stored (Checkpoint.readExpertMxfp4, Mxfp4SwiGlu): a runtime that
 * keeps weights as stored (bf16Weights) holds them at 4.25 bits a value instead of decoding them
 * to BF16 (16 bits). Independent truth: the checkpoint's own BF16 decoding of the same tensors
 * (test/checkpoint/mxfp4.test.ts holds it to the format's definition, and test/hf to transformers),
 * against which
 * - each expert matrix kept as stored decodes (from the definition, here) to the BF16 read's values;
 * - the decoder's hidden states are bit for bit those of the same provider with the experts read
 *   as BF16, for a prompt batch (many rows an expert) and for one token a sequence (a decoding
 *   step's few rows), on every engine: gemmMxfp4 is gemmBf16 on the decoded matrix;
 * - the resident bytes count the experts at their stored size.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import { mxfp4Bytes } from '../../src/io/mxfp4-matrix.js';
import { batchFromSequences } from '../../src/runtime/batch.js';
import { CheckpointWeights } from '../../src/runtime/checkpoint-weights.js';
import { runDecoder } from '../../src/runtime/layerwise.js';
import { Mxfp4SwiGlu } from '../../src/runtime/mxfp4-swiglu.js';
import { residentWeightBytes } from '../../src/runtime/resident-weights.js';
import { makeScratch } from '../checkpoint/tmp-dirs.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { decodeMxfp4 } from '../helpers/mxfp4-gemm-check.js';
import { rewriteExpertsAsMxfp4, withMxfp4Decoded } from '../helpers/mxfp4-fixture.js';

const H = 64;
const I = 32;
const E = 8;
const engines = await listAvailableEngines();
let scratch: Awaited<ReturnType<typeof makeScratch>>;
let ckpt: Checkpoint;

const decodedView = withMxfp4Decoded;

beforeAll(async () => {
  scratch = await makeScratch('mxfp4-experts');
  const { dir } = await makeTinyCheckpoint(path.join(scratch.dir, 'gpt-oss'), 'gpt_oss', { seed: 41, hiddenSize: H, expertIntermediateSize: I, numExperts: E, topK: 2, dtype: 'BF16' });
  // its experts as the release stores them
  await rewriteExpertsAsMxfp4(dir, 5);
  ckpt = await openCheckpoint(dir);
}, 60_000);

afterAll(async () => {
  await ckpt?.close();
  await scratch?.cleanup();
  engines.forEach((e) => e.dispose());
});

describe('MXFP4 experts kept as stored', () => {
  it('each expert matrix decodes to the checkpoint\'s BF16 read of it (gate the even stored rows of gate_up, up the odd, down all)', async () => {
    for (const layer of [0, 1]) {
      for (const expert of [0, 5]) {
        for (const type of ['gate', 'up', 'down'] as const) {
          const m = (await ckpt.readExpertMxfp4!(layer, expert, type))!;
          const [rows, cols] = type === 'down' ? [H, I] : [I, H];
          expect([m.rows, m.cols, m.blocks.length, m.scales.length]).toEqual([rows, cols, (rows * cols) / 2, (rows * cols) / 32]);
          const bf16 = (await ckpt.readExpertBf16!(layer, expert, type))!;
          const decoded = new Float32Array(decodeMxfp4(m.blocks, m.scales, rows, cols));
          expect(Uint16Array.from(new Uint32Array(decoded.buffer), (b) => b >>> 16), `layer ${layer} expert ${expert} ${type}`).toEqual(bf16);
        }
      }
    }
  });

  it('a runtime keeping weights as stored holds them so, at 4.25 bits a value, and counts them so', async () => {
    const held = await new CheckpointWeights(ckpt, { bf16Weights: true }).layer(0);
    if (held.mlp.kind !== 'moe') throw new Error('layer 0 of the fixture is an MoE layer');
    const expert = await held.mlp.moe.expert(3);
    expect(expert).toBeInstanceOf(Mxfp4SwiGlu);
    expect((expert as Mxfp4SwiGlu).byteLength).toBe(2 * mxfp4Bytes(I, H) + mxfp4Bytes(H, I));
    // f32 widening (no bf16Weights) and a checkpoint without the MXFP4 reads keep the old forms
    const widened = await new CheckpointWeights(ckpt).layer(0);
    expect(widened.mlp.kind === 'moe' && (await widened.mlp.moe.expert(3)) instanceof Mxfp4SwiGlu).toBe(false);
    const expertValues = ckpt.config.numLayers * E * 3 * H * I;
    const asBf16 = residentWeightBytes(decodedView(ckpt), { bf16Weights: true });
    expect(residentWeightBytes(ckpt, { bf16Weights: true })).toBe(asBf16 - 2 * expertValues + mxfp4Bytes(1, expertValues));
  });

  describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
    it('hidden states bit for bit those of the experts read as BF16: a prompt batch and one token a sequence', async () => {
      const prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [40, 7, 33, 2, 9], [60, 61, 62, 63, 9, 12, 14, 15, 16]];
      for (const batch of [prompts, prompts.map((p) => [p[0]])]) {
        const run = (c: Checkpoint) => runDecoder(new CheckpointWeights(c, { bf16Weights: true }), engine, batchFromSequences(batch.map((p) => Int32Array.from(p))));
        const [held, decoded] = [await run(ckpt), await run(decodedView(ckpt))];
        expect(held.some((v) => v !== 0)).toBe(true);
        expect(held).toEqual(decoded);
      }
    });
  });
});
