/**
 * Incremental decoding with a KV cache must give the hidden states that running the whole prefix
 * gives, for every family's attention variant (biases, per-head and whole-projection q/k norm,
 * GQA, DeepSeek-V2's latent attention) and with a sliding window shorter than the sequences.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { batchFromSequences, CheckpointWeights, KvCache, runDecoder } from '../../src/runtime/index.js';
import { kvCacheShape } from '../../src/runtime/kv-cache.js';
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
  // MLA: the cache holds one latent row per position (kvCacheShape), attended as one kv head
  ['deepseek_v2', undefined],
  ['deepseek_v3', undefined],
  // partial rotary heads: the cached keys carry the rotated part and the passed-through part
  ['glm4_moe', undefined],
  // its multipliers: the softmax scale, the residual and embedding multipliers
  ['granitemoe', undefined],
  // whole-projection q/k norms before the split into heads, and partial rotary heads
  ['minimax_m2', undefined],
  // per-head q/k norms with V3's routing
  ['dots1', undefined],
  // MLA under another name, its MoE layers from mlp_layer_types
  ['glm4_moe_lite', undefined],
  // interleaved RoPE pairs: the cached keys are reordered as the queries are
  ['ernie4_5_moe', undefined],
  // q/k norms after RoPE, the alpha-raised RoPE base
  ['hunyuan_v1_moe', undefined],
  // sinks in every softmax over the cache, its own window on the even layers, biased experts
  ['gpt_oss', undefined],
];

describe('KV cache', () => {
  it.each(cases)('%s (sliding window %s): a prefill then one token at a time equals the full prefix', async (family, window) => {
    const provider = await fixture(family, window);
    const h = provider.config.hiddenSize;
    const full = await runDecoder(provider, engine, batchFromSequences(sequences));
    const len = sequences[0].length;

    const shape = kvCacheShape(provider.config);
    const cache = new KvCache(provider.config.numLayers, sequences.length, len, shape.width, shape.width, shape.valuesAreKeys);
    const prefill = 4;
    const cached: Float32Array[] = [await runDecoder(provider, engine, batchFromSequences(sequences.map((s) => s.slice(0, prefill))), { kvCache: cache })];
    for (let t = prefill; t < len; t++) {
      cached.push(await runDecoder(provider, engine, batchFromSequences(sequences.map((s) => s.slice(t, t + 1))), { kvCache: cache }));
    }
    expect(Array.from(cache.lengths)).toEqual([len, len]);
    // MLA's latent row is its key and its value: held once
    if (shape.valuesAreKeys) {
      expect(cache.values(0, 0)).toBe(cache.keys(0, 0));
      expect(cache.allocatedBytes).toBe(provider.config.numLayers * sequences.length * cache.allocated(0) * shape.width * 4);
    }

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

describe('KvCache.copyPrefix', () => {
  it('copies the first positions of every layer and head into an empty slot of another stride, and nothing else', () => {
    const cache = new KvCache(2, 3, 64, 8, 4); // 2 layers, 3 slots, 2 kv heads of 4
    const held = 21; // slot 0 grows past its first allocation (16 positions), so the strides differ
    expect(cache.acquire()).toBe(0);
    cache.assertRoom([held], [0]);
    const row = (layer: number, pos: number, kind: number) => Float32Array.from({ length: 8 }, (_, j) => 1000 * kind + 100 * layer + pos + j / 10);
    for (let l = 0; l < 2; l++) {
      for (let p = 0; p < held; p++) cache.write(l, 0, p, row(l, p, 1), row(l, p, 2), 0, 1);
    }
    cache.advance([held], [0]);
    const to = cache.acquire()!;
    cache.copyPrefix(0, to, 10);
    expect(cache.lengths[to]).toBe(10);
    expect(cache.allocated(to)).not.toBe(cache.allocated(0));
    for (let l = 0; l < 2; l++) {
      for (let p = 0; p < 10; p++) {
        for (let h = 0; h < 2; h++) {
          const at = (h * cache.allocated(to) + p) * 4;
          expect(Array.from(cache.keys(l, to).subarray(at, at + 4))).toEqual(Array.from(row(l, p, 1).subarray(h * 4, h * 4 + 4)));
          expect(Array.from(cache.values(l, to).subarray(at, at + 4))).toEqual(Array.from(row(l, p, 2).subarray(h * 4, h * 4 + 4)));
        }
      }
    }
    expect(cache.lengths[0]).toBe(held);
    expect(() => cache.copyPrefix(0, to, 3)).toThrow(/already holds 10 positions/);
    const other = cache.acquire()!;
    expect(() => cache.copyPrefix(0, other, held + 1)).toThrow(/cannot copy 22 positions of slot 0, which holds 21/);
  });
});
