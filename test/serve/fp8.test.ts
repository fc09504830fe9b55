/**
 * A block-FP8 checkpoint served (as DeepSeek-V3 and the Qwen3 "-FP8" releases are published): the
 * server holds its routed experts as their E4M3 codes (Fp8SwiGlu) and counts them so against its
 * budget, and prompts decoded together in one server batch give each prompt's greedy tokens from
 * the single-sequence `generate` over the same checkpoint with its experts decoded to BF16 (the
 * only way they were held before): gemmFp8 is gemmBf16 on the decoded matrices, bit for bit.
 */
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { fp8Bytes } from '../../src/io/fp8-matrix.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { residentWeightBytes } from '../../src/runtime/resident-weights.js';
import { inspectServedModel, ModelStore } from '../../src/serve/models.js';
import { tempDir } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { quantizeToFp8, withExpertsDecoded } from '../helpers/fp8-fixture.js';
import { TINY_DIR } from './helpers.js';

const PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [40, 7, 33], [60, 61, 62, 63, 9, 12]];
const NEW_TOKENS = 12;
const H = 64;
const I = 48;
const E = 8;

let engine: Engine;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let dir = '';


describe('a block-FP8 checkpoint served', () => {
  beforeAll(async () => {
    ({ engine } = await createEngine('auto', { threads: 1 }));
    tmp = await tempDir('fp8-served');
    dir = path.join(tmp.dir, 'fp8');
    await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 37, hiddenSize: H, expertIntermediateSize: I, numExperts: E, topK: 2, dtype: 'BF16' });
    // its experts and attention projections in FP8 with 32 × 32 blocks (partial at I = 48), as the releases store them
    await quantizeToFp8(dir, 7, { block: [32, 32], pick: (name) => /\.experts\.\d+\..*weight$|_proj\.weight$/.test(name) && !name.includes('embed') });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(dir, f));
  }, 120_000);
  afterAll(async () => {
    await tmp?.cleanup();
    engine?.dispose();
  });

  it('holds the experts as codes, counts them so, and decodes prompts together to the decoded experts\' greedy tokens', async () => {
    const ckpt = await openCheckpoint(dir);
    const expected: number[][] = [];
    let moeLayers = 0;
    try {
      moeLayers = ckpt.layout.layers.filter((l) => l.moe).length;
      expect(ckpt.fp8TensorNames!().size).toBe(moeLayers * E * 3);
      for (const prompt of PROMPTS) expected.push((await generateAll(withExpertsDecoded(ckpt), engine, prompt, { temperature: 0, maxNewTokens: NEW_TOKENS })).tokens);
    } finally {
      await ckpt.close();
    }
    expect(expected.every((t) => t.length === NEW_TOKENS)).toBe(true);
    const served = await inspectServedModel({ id: 'm', dir }, 2 ** 30, {});
    // the experts at a byte a value and a scale a 32-wide group of a row, where decoded they take 2 bytes a value
    const gateUp = moeLayers * E * 2 * I * H;
    const down = moeLayers * E * H * I;
    const asCodes = fp8Bytes(gateUp / H, H, 32) + fp8Bytes(down / I, I, 32);
    expect(asCodes).toBeLessThan(0.6 * 2 * (gateUp + down));
    const plain = await openCheckpoint(dir);
    try {
      const held = residentWeightBytes(plain, { bf16Weights: true });
      expect(residentWeightBytes(withExpertsDecoded(plain), { bf16Weights: true }) - held).toBe(2 * (gateUp + down) - asCodes);
      // what the server counts against its budget
      expect(served.estimatedBytes).toBe(held);
    } finally {
      await plain.close();
    }
    const store = new ModelStore(new Map([['m', served]]), { engine, maxBatchSize: PROMPTS.length });
    const { handle } = await store.load('m');
    try {
      const together = await Promise.all(
        PROMPTS.map(async (prompt) => {
          const tokens: number[] = [];
          for await (const event of handle.decoder.submit(prompt, { temperature: 0, maxNewTokens: NEW_TOKENS, stopTokenIds: [] })) if (event.type === 'token') tokens.push(event.token);
          return tokens;
        }),
      );
      expect(together).toEqual(expected);
    } finally {
      await store.unload('m', handle);
    }
  }, 60_000);
});
