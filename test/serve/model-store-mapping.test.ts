/**
 * A served model's weights kept as stored are views of its mapped checkpoint files (the server's
 * default, ModelStoreOptions.mapWeights): for an original and for a factored compressed model,
 * the mapped load decodes greedily token for token as the load that reads copies does, its BF16
 * matrices are views of the files' mappings, its pages are in memory once the load returns (the
 * kernel's count, RssFile) and leave the process when it is unloaded. Skipped where the native
 * addon, which maps files, is not built.
 */
import { existsSync } from 'node:fs';
import { copyFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/index.js';
import { FactoredLinear, SwiGluExpert } from '../../src/compressed/factored-expert.js';
import { createEngine } from '../../src/engine/index.js';
import { nativeAddonPath } from '../../src/engine/native.js';
import type { Engine } from '../../src/engine/types.js';
import type { WeightProvider } from '../../src/runtime/weights.js';
import { inspectServedModel, ModelStore, type LoadedHandle } from '../../src/serve/models.js';
import { tempDir, syntheticStats } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { rssFileBytes } from '../helpers/process-memory.js';
import { TINY_DIR } from './helpers.js';

const skipReason = !existsSync(nativeAddonPath) ? 'the native addon is not built' : process.platform !== 'linux' ? 'mapping is built for Linux only' : undefined;

let engine: Engine;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let originalDir = '';
let factoredDir = '';


async function safetensorsBytes(dir: string): Promise<{ files: Set<number>; total: number }> {
  const sizes = await Promise.all((await readdir(dir)).filter((f) => f.endsWith('.safetensors')).map(async (f) => (await stat(path.join(dir, f))).size));
  return { files: new Set(sizes), total: sizes.reduce((a, b) => a + b, 0) };
}

async function greedy(handle: LoadedHandle, prompt: number[]): Promise<number[]> {
  const tokens: number[] = [];
  for await (const event of handle.decoder.submit(prompt, { temperature: 0, maxNewTokens: 12, stopTokenIds: [] })) if (event.type === 'token') tokens.push(event.token);
  return tokens;
}

/** Every BF16 array an MoE layer's experts hold: their matrices, or their factors. */
async function expertArrays(provider: WeightProvider, layer: number, experts: number): Promise<Uint16Array[]> {
  const mlp = (await provider.layer(layer)).mlp;
  if (mlp.kind !== 'moe') throw new Error('expected an MoE layer');
  const out: Uint16Array[] = [];
  for (let e = 0; e < experts; e++) {
    const expert = await mlp.moe.expert(e);
    const m = expert.swiGluMatrices?.();
    if (m) {
      for (const w of [m.gate, m.up, m.down]) if (w instanceof Uint16Array) out.push(w);
    } else if (expert instanceof SwiGluExpert) {
      for (const op of [expert.gate, expert.up, expert.down]) {
        if (op instanceof FactoredLinear && op.matrix.basis instanceof Uint16Array && op.matrix.coefficients instanceof Uint16Array) out.push(op.matrix.basis, op.matrix.coefficients);
      }
    }
  }
  return out;
}

describe.skipIf(skipReason !== undefined)(`a served model's weights mapped from its files${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(async () => {
    ({ engine } = await createEngine('native', { threads: 1 }));
    tmp = await tempDir('model-store-mapping');
    originalDir = path.join(tmp.dir, 'original');
    // 4 MiB of BF16 experts: enough pages to see in RssFile
    await makeTinyCheckpoint(originalDir, 'qwen3_moe', { seed: 11, numLayers: 2, numExperts: 8, hiddenSize: 512, expertIntermediateSize: 128, numHeads: 4, dtype: 'BF16' });
    const original = await openCheckpoint(originalDir);
    factoredDir = path.join(tmp.dir, 'factored');
    await compress(original, { retain: 0.6, groupSize: 2 }, { out: factoredDir, stats: syntheticStats(original, 256, 5), engine, evaluation: false });
    await original.close();
    for (const dir of [originalDir, factoredDir]) for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(dir, f));
  }, 120_000);
  afterAll(async () => {
    await tmp?.cleanup();
    engine?.dispose();
  });

  for (const which of ['original', 'factored'] as const) {
    it(`${which}: decodes as the copied load does, holds views of the files, and hands the pages back when unloaded`, async () => {
      const dir = which === 'original' ? originalDir : factoredDir;
      // every expert of the factored model stays factored: the dense copies built in the background are the process's own memory
      const served = await inspectServedModel({ id: 'm', dir }, 2 ** 30, { materialiseExperts: false });
      const copied = new ModelStore(new Map([['m', served]]), { engine, maxBatchSize: 2, mapWeights: false });
      const mapped = new ModelStore(new Map([['m', served]]), { engine, maxBatchSize: 2 });
      const prompts = [[1, 2, 3, 4, 5], [40, 7, 33], [60, 61, 62, 63]];

      const { handle: own } = await copied.load('m');
      const expected = [];
      for (const p of prompts) expected.push(await greedy(own, p));
      const ownArrays = await expertArrays(own.experts ?? own.decoder.provider, 0, 8);
      await copied.unload('m', own);

      const { files, total } = await safetensorsBytes(dir);
      const before = rssFileBytes();
      const { handle } = await mapped.load('m');
      const loaded = rssFileBytes();
      // the load returned with the files' pages in memory (the small header pages aside)
      expect(loaded - before).toBeGreaterThan(0.8 * total);

      const arrays = await expertArrays(handle.experts ?? handle.decoder.provider, 0, 8);
      expect(arrays.length).toBe(ownArrays.length);
      expect(arrays.length).toBeGreaterThan(0);
      for (const [i, a] of arrays.entries()) {
        expect(files.has(a.buffer.byteLength)).toBe(true); // a view of a whole mapped file
        expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(ownArrays[i].buffer, ownArrays[i].byteOffset, ownArrays[i].byteLength))).toBe(true);
      }
      for (const [i, p] of prompts.entries()) expect(await greedy(handle, p)).toEqual(expected[i]);

      const serving = rssFileBytes();
      await mapped.unload('m', handle);
      expect(serving - rssFileBytes()).toBeGreaterThan(0.8 * total);
    }, 60_000);
  }
});
