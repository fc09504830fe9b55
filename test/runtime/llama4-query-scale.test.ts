/**
 * Mistral 4's queries are scaled by their position (src/runtime/llama4-query-scale.ts), so every
 * way a row reaches attention must give it its own position's scale: a prompt's later chunks after
 * a cached past, decoding steps of several sequences at once, and the decoder's chunked prefill.
 * The fixture's scale steps every 4 positions (original_max_position_embeddings 4), so the
 * sequences here cross it several times. test/hf/families.test.ts holds the whole-prompt logits
 * and the greedy tokens against transformers; these check that the other paths give the same.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointWeights, KvCache } from '../../src/runtime/index.js';
import { kvCacheShape } from '../../src/runtime/kv-cache.js';
import { expectBatchedGreedyEqualsAlone } from '../helpers/batched-greedy-check.js';
import { worstCachedPieceDifference } from '../helpers/cached-pieces.js';
import { useTinyCheckpoint } from '../helpers/test-engines.js';

const PROMPT = [3, 17, 41, 5, 29, 11, 60, 2, 33, 47, 19, 8, 50, 7];

// q-LoRA and groups as well, so that nothing but the scaling is left out of the paths checked
const fixture = useTinyCheckpoint('llama4-query-scale', 'mistral4', { seed: 43, topK: 3, qLoraRank: 6, topkMethod: { method: 'greedy', nGroup: 4, topkGroup: 2 } });
const { engines } = fixture;

describe('Mistral 4’s position-scaled queries', () => {
  it('the fixture scales its queries, stepping every 4 positions', () => {
    expect(fixture.checkpoint().config.llama4QueryScale).toEqual({ beta: 0.1, originalMaxPositions: 4 });
  });

  it('two prompts prefilled in chunks after a cached past, then decoded a token at a time, give the hidden states of the whole sequences', async () => {
    const engine = engines[0].engine;
    const provider = new CheckpointWeights(fixture.checkpoint());
    const sequences = [PROMPT, PROMPT.map((t) => (t * 7 + 1) % 64)];
    const len = PROMPT.length;
    const shape = kvCacheShape(provider.config);
    const cache = new KvCache(provider.config.numLayers, sequences.length, len, shape.width, shape.width, shape.valuesAreKeys);
    // a prefill of 3, chunks of 5 and 1 (each row past a multiple of 4 from the one before), then single tokens
    const steps: Array<[number, number]> = [[0, 3], [3, 8], [8, 9]];
    for (let t = 9; t < len; t++) steps.push([t, t + 1]);
    const worst = await worstCachedPieceDifference(provider, engine, sequences, steps, cache);
    expect(Array.from(cache.lengths)).toEqual([len, len]);
    expect(worst).toBeLessThan(1e-5);
  });

  it('prompts of different lengths decoded in one batch, whole and in prefill chunks of 3, give each its own greedy tokens, on each engine', async () => {
    const prompts = [PROMPT.slice(0, 2), PROMPT.slice(0, 11), PROMPT.slice(0, 6)];
    for (const { name, engine } of engines) {
      await expectBatchedGreedyEqualsAlone(fixture.checkpoint(), engine, prompts, `${name} engine`);
    }
  });
});
