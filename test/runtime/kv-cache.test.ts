/**
 * Incremental decoding with a KV cache must give the hidden states that running the whole prefix
 * gives, for every family's attention variant (biases, per-head and whole-projection q/k norm,
 * GQA) and with a sliding window shorter than the sequences.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { batchFromSequences, CheckpointWeights, KvCache, runDecoder } from '../../src/runtime/index.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import type { FamilyName } from '../../src/checkpoint/types.js';

const dirs: string[] = [];
const opened: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});
const engine = createTsEngine({ threads: 1 });

async function fixture(family: FamilyName, slidingWindow?: number) {
  const dir = mkdtempSync(path.join(tmpdir(), `rfid-kv-${family}-`));
  dirs.push(dir);
  await makeTinyCheckpoint(dir, family, { seed: 11 });
  if (slidingWindow !== undefined) {
    const configPath = path.join(dir, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8'));
    writeFileSync(configPath, JSON.stringify({ ...config, sliding_window: slidingWindow }));
  }
  const checkpoint = await openCheckpoint(dir);
  opened.push(checkpoint);
  return new CheckpointWeights(checkpoint);
}

const sequences = [
  [3, 17, 5, 9, 40, 2, 33, 8, 21],
  [11, 4, 60, 7, 19, 25, 1, 50, 6],
];

const cases: Array<[FamilyName, number | undefined]> = [
  ['mixtral', undefined],
  ['mixtral', 3],
  ['qwen2_moe', undefined],
  ['qwen3_moe', undefined],
  ['olmoe', undefined],
  ['deepseek', undefined],
];

describe('KV cache', () => {
  it.each(cases)('%s (sliding window %s): a prefill then one token at a time equals the full prefix', async (family, window) => {
    const provider = await fixture(family, window);
    const h = provider.config.hiddenSize;
    const full = await runDecoder(provider, engine, batchFromSequences(sequences));
    const len = sequences[0].length;

    const { numLayers, numKvHeads, headDim } = provider.config;
    const cache = new KvCache(numLayers, sequences.length, len, numKvHeads * headDim);
    const prefill = 4;
    const cached: Float32Array[] = [await runDecoder(provider, engine, batchFromSequences(sequences.map((s) => s.slice(0, prefill))), { kvCache: cache })];
    for (let t = prefill; t < len; t++) {
      cached.push(await runDecoder(provider, engine, batchFromSequences(sequences.map((s) => s.slice(t, t + 1))), { kvCache: cache }));
    }
    expect(Array.from(cache.lengths)).toEqual([len, len]);

    let worst = 0;
    for (let s = 0; s < sequences.length; s++) {
      for (let t = 0; t < len; t++) {
        const ref = full.subarray((s * len + t) * h, (s * len + t + 1) * h);
        const got = t < prefill ? cached[0].subarray((s * prefill + t) * h, (s * prefill + t + 1) * h) : cached[t - prefill + 1].subarray(s * h, (s + 1) * h);
        for (let j = 0; j < h; j++) worst = Math.max(worst, Math.abs(got[j] - ref[j]) / (1 + Math.abs(ref[j])));
      }
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it('refuses a step that would overflow the cache, before touching it', async () => {
    const provider = await fixture('mixtral');
    const { numLayers, numKvHeads, headDim } = provider.config;
    const cache = new KvCache(numLayers, 1, 3, numKvHeads * headDim);
    await runDecoder(provider, engine, batchFromSequences([[1, 2]]), { kvCache: cache });
    await expect(runDecoder(provider, engine, batchFromSequences([[3, 4]]), { kvCache: cache })).rejects.toThrow(/more than the cache's 3/);
    expect(cache.lengths[0]).toBe(2);
  });
});
