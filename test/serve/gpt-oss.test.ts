/**
 * gpt-oss served: its experts run one by one (their biases and clamped activation are not the
 * one-call SwiGLU kernel's), over weights the server holds (BF16 as stored, mapped where the
 * native addon maps files) and, for its factored form, over factors. Several prompts decoded
 * together in one server batch give each prompt's greedy tokens from the single-sequence
 * `generate`, the path test/hf/families.test.ts holds to transformers' generate(). Its MXFP4 form,
 * as gpt-oss is released, is served with the experts as stored, and counted so.
 */
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/index.js';
import { openModel } from '../../src/compressed/open-model.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { inspectServedModel, ModelStore, type LoadedHandle } from '../../src/serve/models.js';
import { syntheticStats, tempDir } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { rewriteExpertsAsMxfp4 } from '../helpers/mxfp4-fixture.js';
import { TINY_DIR } from './helpers.js';

const PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [40, 7, 33], [60, 61, 62, 63, 9, 12]];
const NEW_TOKENS = 12;

let engine: Engine;
let tmp: Awaited<ReturnType<typeof tempDir>>;
const dirs = { original: '', factored: '', mxfp4: '' };

/** Every prompt submitted at once, so that the server decodes them in one batch. */
async function together(handle: LoadedHandle): Promise<number[][]> {
  return Promise.all(
    PROMPTS.map(async (prompt) => {
      const tokens: number[] = [];
      for await (const event of handle.decoder.submit(prompt, { temperature: 0, maxNewTokens: NEW_TOKENS, stopTokenIds: [] })) if (event.type === 'token') tokens.push(event.token);
      return tokens;
    }),
  );
}

describe('gpt-oss served', () => {
  beforeAll(async () => {
    ({ engine } = await createEngine('auto', { threads: 1 }));
    tmp = await tempDir('gpt-oss-served');
    dirs.original = path.join(tmp.dir, 'original');
    dirs.factored = path.join(tmp.dir, 'factored');
    dirs.mxfp4 = path.join(tmp.dir, 'mxfp4');
    // BF16 as released models are read (MXFP4 experts are read as BF16); a window of 5 on layer 0, so the prompts cross it
    await makeTinyCheckpoint(dirs.original, 'gpt_oss', { seed: 31, hiddenSize: 64, expertIntermediateSize: 32, numExperts: 8, topK: 2, dtype: 'BF16' });
    const original = await openCheckpoint(dirs.original);
    await compress(original, { retain: 0.6, groupSize: 2 }, { out: dirs.factored, stats: syntheticStats(original, 256, 5), engine, evaluation: false });
    await original.close();
    // as gpt-oss is released: its experts in MXFP4, which the server holds as stored
    await makeTinyCheckpoint(dirs.mxfp4, 'gpt_oss', { seed: 31, hiddenSize: 64, expertIntermediateSize: 32, numExperts: 8, topK: 2, dtype: 'BF16' });
    await rewriteExpertsAsMxfp4(dirs.mxfp4, 9);
    for (const dir of Object.values(dirs)) for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(dir, f));
  }, 120_000);
  afterAll(async () => {
    await tmp?.cleanup();
    engine?.dispose();
  });

  for (const which of ['original', 'factored', 'mxfp4'] as const) {
    it(`${which}: prompts decoded together give each prompt's own greedy tokens`, async () => {
      const dir = dirs[which];
      const model = await openModel(dir);
      const expected: number[][] = [];
      try {
        for (const prompt of PROMPTS) expected.push((await generateAll(model, engine, prompt, { temperature: 0, maxNewTokens: NEW_TOKENS })).tokens);
      } finally {
        await model.close();
      }
      expect(expected.every((t) => t.length === NEW_TOKENS)).toBe(true);
      // the factored form keeps its experts factored here; then with its hottest made dense, as a server does by default
      for (const materialiseExperts of which === 'factored' ? [false, true] : [true]) {
        const served = await inspectServedModel({ id: 'm', dir }, 2 ** 30, { materialiseExperts });
        if (which === 'mxfp4') {
          // counted at the experts' stored size: 4.25 bits a value where BF16 takes 16
          const ckpt = await openCheckpoint(dir);
          const expertValues = ckpt.config.numLayers * 8 * 3 * 64 * 32;
          await ckpt.close();
          const bf16Held = await inspectServedModel({ id: 'm', dir: dirs.original }, 2 ** 30, { materialiseExperts });
          expect(bf16Held.estimatedBytes - served.estimatedBytes).toBe(2 * expertValues - (expertValues * 17) / 32);
        }
        const store = new ModelStore(new Map([['m', served]]), { engine, maxBatchSize: PROMPTS.length });
        const { handle } = await store.load('m');
        try {
          expect(await together(handle)).toEqual(expected);
        } finally {
          await store.unload('m', handle);
        }
      }
    }, 60_000);
  }
});
