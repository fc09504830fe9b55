/**
 * MiMo-V2-Flash beyond the whole-prompt logits and greedy tokens test/hf/families.test.ts holds
 * against transformers, on each engine: layers of different widths (its windowed layers have twice
 * the kv heads, and sinks) and values narrower than keys (held at their own width) in a
 * KV cache that drops what the windows no longer reach, prompts in chunks after a cached past, and
 * several sequences decoded together in the serving decoder (whose cache and bound take each
 * layer's width) giving each its tokens alone.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointWeights, KvCache } from '../../src/runtime/index.js';
import { kvCacheOptions, kvCacheShape, kvSlotBoundBytes, kvWindows } from '../../src/runtime/kv-cache.js';
import { expectBatchedGreedyEqualsAlone } from '../helpers/batched-greedy-check.js';
import { prefillChunkAndTokenSteps, twoSequences, worstCachedPieceDifference } from '../helpers/cached-pieces.js';
import { useTinyCheckpoint } from '../helpers/test-engines.js';

const fixture = useTinyCheckpoint('mimo-v2-flash', 'mimo_v2_flash', { seed: 61, numLayers: 4 });
const { engines } = fixture;

describe('MiMo-V2-Flash’s attention with a KV cache', () => {
  it('the fixture’s windowed layers have twice the kv heads and sinks, its values are narrower than its keys', () => {
    const config = fixture.checkpoint().config;
    expect(config).toMatchObject({ slidingWindow: { size: 5, layers: [false, true, true, true] }, layerKvHeads: [2, 4, 4, 4], sinkLayers: [false, true, true, true], headDim: 12, valueHeadDim: 8 });
    const shape = kvCacheShape(config);
    expect(shape).toMatchObject({ layerWidths: [24, 48, 48, 48], headDim: 12, valueHeadDim: 8 });
    // the bound counts each layer at its own width, its values at 8 for every 12 of its keys
    const windows = kvWindows(config);
    expect(kvSlotBoundBytes(4, shape.width, 64, 64, false, { windows, maxStep: 1, layerWidths: shape.layerWidths, headDim: 12, valueHeadDim: 8 })).toBe(4 * (64 * (24 + 16) + 3 * 16 * (48 + 32)));
  });

  it('two sequences prefilled in chunks after a cached past and decoded a token at a time give the hidden states of the whole sequences', async () => {
    const provider = new CheckpointWeights(fixture.checkpoint());
    const len = 40;
    const sequences = twoSequences(len);
    const steps = prefillChunkAndTokenSteps(len);
    for (const { name, engine } of engines) {
      const shape = kvCacheShape(provider.config);
      const cache = new KvCache(provider.config.numLayers, sequences.length, len, shape.width, shape.headDim, shape.valuesAreKeys, kvCacheOptions(provider.config));
      const worst = await worstCachedPieceDifference(provider, engine, sequences, steps, cache);
      expect(Array.from(cache.lengths), name).toEqual([len, len]);
      // the windowed layers dropped what the window no longer reaches; the full layer keeps all
      expect([cache.held(0, 1) < len, cache.held(0, 0)], name).toEqual([true, len]);
      // the values at their own width: 2 kv heads of 8 in layer 0, 4 in the others
      expect([cache.values(0, 0).length, cache.values(1, 0).length], name).toEqual([cache.allocated(0, 0) * 16, cache.allocated(0, 1) * 32]);
      expect(worst, name).toBeLessThan(1e-5);
    }
  });

  it('prompts of different lengths decoded together give each its greedy tokens alone', async () => {
    const prompts = [[3, 17, 41, 5, 29, 11, 60, 2, 33], [8, 50], [19, 8, 50, 7, 12, 44]];
    for (const { name, engine } of engines) await expectBatchedGreedyEqualsAlone(fixture.checkpoint(), engine, prompts, name);
  });
});
