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
import { kvCacheOptions, kvCacheShape, kvWindows } from '../../src/runtime/kv-cache.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { worstCachedPieceDifference } from '../helpers/cached-pieces.js';

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
  // sinks with the multipliers' softmax scale, its own window on layers 1 and 2 (of 3)
  ['granitemoe_swa', undefined],
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
  // MLA with its queries scaled by position (a step every 4 positions, crossed while decoding)
  ['mistral4', undefined],
  // four norms a layer, the gated attention output, a window of 5 with RoPE only in the windowed layers, muP
  ['afmoe', undefined],
  // LayerNorms and the parallel block, interleaved RoPE only in the windowed (window 5) and dense layers
  ['cohere2_moe', undefined],
  // LayerNorms with biases, biased attention and head, sparsemixer routing, LongRoPE's short factors and mscale, a window of 4
  ['phimoe', 4],
  // chunks of 4 (the prefill ends one, decoding crosses the next) with a weightless q/k norm, a NoPE
  // layer with its queries scaled by position, routing weights on the experts' inputs
  ['llama4_text', undefined],
  // layers of different widths (twice the kv heads and sinks in the windowed ones), values
  // narrower than keys (held at their own width), a RoPE base per layer type
  ['mimo_v2_flash', undefined],
];

describe('KV cache', () => {
  it.each(cases)('%s (sliding window %s): a prefill then one token at a time equals the full prefix', async (family, window) => {
    const provider = await fixture(family, window);
    const h = provider.config.hiddenSize;
    const full = await runDecoder(provider, engine, batchFromSequences(sequences));
    const len = sequences[0].length;

    const shape = kvCacheShape(provider.config);
    // row-major (one head as wide as the position), or head-major where layers differ in width
    const head = shape.layerWidths ? shape.headDim : shape.width;
    const cache = new KvCache(provider.config.numLayers, sequences.length, len, shape.width, head, shape.valuesAreKeys, { layerWidths: shape.layerWidths, valueHeadDim: shape.valueHeadDim });
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

  // Llama 4's chunked layers keep their past as windows of the chunk's length do
  it.each([['mixtral', 3], ['gpt_oss', undefined], ['afmoe', undefined], ['cohere2_moe', undefined], ['phimoe', 4], ['llama4_text', undefined], ['mimo_v2_flash', undefined]] as Array<[FamilyName, number | undefined]>)(
    '%s (window %s): windowed layers hold only what their rows can attend to, and the states are the full prefix\'s',
    async (family, window) => {
      const provider = await fixture(family, window);
      const { config } = provider;
      const windows = kvWindows(config);
      const windowed = windows.flatMap((w, l) => (w === null ? [] : [l]));
      expect(windowed.length).toBeGreaterThan(0);
      // 48 positions: past every windowed layer's buffer (16 positions at least) more than once
      const long = [Array.from({ length: 48 }, (_, i) => (i * 7 + 3) % 60), Array.from({ length: 48 }, (_, i) => (i * 11 + 5) % 60)];
      const shape = kvCacheShape(config);
      const cache = new KvCache(config.numLayers, long.length, 48, shape.width, shape.headDim, shape.valuesAreKeys, kvCacheOptions(config));
      // a prefill of 20 (more than any windowed buffer takes), single tokens, a chunk of 6, single tokens
      const steps: Array<[number, number]> = [[0, 20]];
      for (let t = 20; t < 30; t++) steps.push([t, t + 1]);
      steps.push([30, 36]);
      for (let t = 36; t < 48; t++) steps.push([t, t + 1]);
      const worst = await worstCachedPieceDifference(provider, engine, long, steps, cache, (a, b) => {
        for (const l of windowed) {
          const keep = windows[l]! - 1;
          for (let s = 0; s < long.length; s++) {
            // the sequence's last positions, at least the W − 1 the next row attends to, in a buffer of at most max(16, 2(W − 1)) or a step's rows more
            expect(cache.held(s, l)).toBeGreaterThanOrEqual(Math.min(b, keep));
            expect(cache.allocated(s, l)).toBeLessThanOrEqual(Math.max(16, 2 * keep) + (b - a) + keep);
          }
        }
      });
      expect(worst).toBeLessThan(1e-5);
      expect(Array.from(cache.lengths)).toEqual([48, 48]);
      // the layers without a window hold everything
      for (let l = 0; l < config.numLayers; l++) if (windows[l] === null) expect(cache.held(0, l)).toBe(48);
      // and a windowed layer dropped most of it
      expect(cache.held(0, windowed[0])).toBeLessThan(48 / 2);
    },
  );

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

  it('a windowed layer: the copy takes the last W − 1 positions the source still holds; once the source moved on, no copy', () => {
    // layer 0 without a window, layer 1 with W = 5 (keeps 4); 2 kv heads of 2
    const cache = new KvCache(2, 3, 64, 4, 2, false, { windows: [null, 5] });
    const row = (layer: number, pos: number, kind: number) => Float32Array.from({ length: 4 }, (_, j) => 1000 * kind + 100 * layer + pos + j / 10);
    const prompt = 12;
    expect(cache.acquire()).toBe(0);
    cache.assertRoom([prompt], [0]);
    // a fresh prefill: the windowed layer stores the last of the prompt's rows its buffer takes (16 ≥ 12: all)
    const rows = (layer: number, kind: number, n: number) => {
      const out = new Float32Array(n * 4);
      for (let p = 0; p < n; p++) out.set(row(layer, p, kind), p * 4);
      return out;
    };
    for (let l = 0; l < 2; l++) cache.writeFresh(l, 0, rows(l, 1, prompt), rows(l, 2, prompt), 0, prompt);
    cache.advance([prompt], [0]);
    // n choices: the prompt but its last token
    expect(cache.canCopyPrefix(0, prompt - 1)).toBe(true);
    const to = cache.acquire()!;
    cache.copyPrefix(0, to, prompt - 1);
    expect([cache.lengths[to], cache.held(to, 0), cache.held(to, 1)]).toEqual([prompt - 1, prompt - 1, 4]);
    for (let p = 0; p < 4; p++) {
      const pos = prompt - 1 - 4 + p;
      for (let h = 0; h < 2; h++) {
        const at = (h * cache.allocated(to, 1) + p) * 2;
        expect(Array.from(cache.keys(1, to).subarray(at, at + 2))).toEqual(Array.from(row(1, pos, 1).subarray(h * 2, h * 2 + 2)));
        expect(Array.from(cache.values(1, to).subarray(at, at + 2))).toEqual(Array.from(row(1, pos, 2).subarray(h * 2, h * 2 + 2)));
      }
    }
    // the source decodes on: its windowed layer drops what no row can attend to any more
    for (let t = prompt; t < 40; t++) {
      cache.assertRoom([1], [0]);
      for (let l = 0; l < 2; l++) cache.write(l, 0, cache.held(0, l), row(l, t, 1), row(l, t, 2), 0, 1);
      cache.advance([1], [0]);
    }
    expect(cache.held(0, 0)).toBe(40);
    expect(cache.held(0, 1)).toBeLessThanOrEqual(16);
    expect(cache.allocated(0, 1)).toBeLessThanOrEqual(16);
    // the windowed layer's held positions are the sequence's last ones
    const last = cache.held(0, 1);
    for (let p = 0; p < last; p++) expect(cache.keys(1, 0)[p * 2]).toBe(row(1, 40 - last + p, 1)[0]);
    expect(cache.canCopyPrefix(0, prompt - 1)).toBe(false);
    const other = cache.acquire()!;
    expect(() => cache.copyPrefix(0, other, prompt - 1)).toThrow(/has dropped some a windowed layer needs/);
    expect(cache.canCopyPrefix(0, 38)).toBe(true);
  });
});
