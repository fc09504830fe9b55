/**
 * Llama 4's text model beyond the whole-prompt logits and greedy tokens test/hf/families.test.ts
 * holds against transformers: every other way rows reach its attention and MoE must give the same.
 * - Chunked attention (chunks of 4 in the fixture's RoPE layers) and the NoPE layer's queries
 *   scaled by position (a step every 3 positions): a prompt's later chunks after a cached past, in
 *   a cache that keeps all positions and in one that drops what the chunks no longer reach, decoding
 *   steps of several sequences at once, and the decoder's chunked prefill, on each engine.
 * - Routing weights on the experts' inputs: what a calibration observer sees (running the block, or
 *   sequential calibration's observing without it) is each expert's actual input (the routed row
 *   times its weight) with an output weight of 1, and the block is Σ_k expert_k(w_k·x) + shared(x),
 *   checked in f64 from the experts' matrices.
 */
import { describe, expect, it } from 'vitest';
import { chunkPieces } from '../../src/runtime/attention-chunks.js';
import { observeMoeInputs } from '../../src/runtime/moe.js';
import { CheckpointWeights, KvCache, moeBlock, route } from '../../src/runtime/index.js';
import { kvCacheShape, kvWindows } from '../../src/runtime/kv-cache.js';
import { uniform } from '../helpers/small-rows-check.js';
import { expectBatchedGreedyEqualsAlone } from '../helpers/batched-greedy-check.js';
import { prefillChunkAndTokenSteps, twoSequences, worstCachedPieceDifference } from '../helpers/cached-pieces.js';
import { useTinyCheckpoint } from '../helpers/test-engines.js';

const PROMPT = [3, 17, 41, 5, 29, 11, 60, 2, 33, 47, 19, 8, 50, 7];

const fixture = useTinyCheckpoint('llama4-text', 'llama4_text', { seed: 51 });
const { engines } = fixture;

describe('chunk pieces', () => {
  it('cut each sequence where a chunk starts, each piece attending from its chunk’s start among its keys', () => {
    // chunks of 4: 6 new rows after 3 held positions, the first of them position 8 (so the rows are
    // positions 11…16: chunks 8–11, 12–15, 16–19); an empty sequence; 3 rows from position 0
    const pieces = chunkPieces(Int32Array.of(0, 6, 6, 9), [3, 5, 0], [8, 0, 0], 4);
    expect(Array.from(pieces.offsets)).toEqual([0, 1, 5, 6, 9]);
    expect(Array.from(pieces.sequence)).toEqual([0, 0, 0, 2]);
    // among each sequence's keys: where the piece's first row is, and where its chunk starts
    expect(Array.from(pieces.past)).toEqual([3, 4, 8, 0]);
    expect(Array.from(pieces.from)).toEqual([0, 4, 8, 0]);
  });

  it('refuses a chunk whose start the cache no longer holds, and a chunk of no positions', () => {
    // position 11's chunk starts at 8, but the first key held is position 9
    expect(() => chunkPieces(Int32Array.of(0, 1), [2], [9], 4)).toThrow(/chunk starts at position 8, before the first key held \(9\)/);
    expect(() => chunkPieces(Int32Array.of(0, 1), [0], [0], 0)).toThrow(/positive number of positions/);
  });
});

describe('Llama 4’s chunked attention and position-scaled queries', () => {
  it('the fixture chunks its RoPE layers by 4 and scales its NoPE layer’s queries every 3 positions', () => {
    expect(fixture.checkpoint().config).toMatchObject({ attentionChunk: { size: 4, layers: [true, true, true, false] }, llama4QueryScale: { beta: 0.5, originalMaxPositions: 3, positionOffset: 1, layers: [false, false, false, true] } });
  });

  it.each(['every position kept', 'what the chunks reach kept'] as const)('two sequences prefilled in chunks after a cached past and decoded a token at a time give the hidden states of the whole sequences (%s)', async (kept) => {
    const provider = new CheckpointWeights(fixture.checkpoint());
    const len = 40;
    const sequences = twoSequences(len);
    // a prefill of 3, a chunk of 6 across two chunk starts (4, 8), one of 1, single tokens, a chunk of 7, single tokens
    const steps = prefillChunkAndTokenSteps(len);
    for (const { name, engine } of engines) {
      const shape = kvCacheShape(provider.config);
      const cache = new KvCache(provider.config.numLayers, sequences.length, len, shape.width, shape.headDim, shape.valuesAreKeys, kept === 'every position kept' ? {} : { windows: kvWindows(provider.config) });
      const worst = await worstCachedPieceDifference(provider, engine, sequences, steps, cache);
      expect(Array.from(cache.lengths), name).toEqual([len, len]);
      // a chunked layer has dropped the positions no chunk reaches any more; the NoPE layer keeps all
      if (kept === 'what the chunks reach kept') expect([cache.held(0, 0) < len, cache.held(0, 3)], name).toEqual([true, len]);
      expect(worst, name).toBeLessThan(1e-5);
    }
  });

  it('prompts of different lengths decoded in one batch, whole and in prefill chunks of 3, give each its own greedy tokens, on each engine', async () => {
    const prompts = [PROMPT.slice(0, 2), PROMPT.slice(0, 11), PROMPT.slice(0, 6)];
    for (const { name, engine } of engines) {
      await expectBatchedGreedyEqualsAlone(fixture.checkpoint(), engine, prompts, `${name} engine`);
    }
  });
});

describe('Llama 4’s routing weights on the experts’ inputs', () => {
  it('the block is Σ_k expert_k(w_k·x) + shared(x), and an observer sees each expert’s scaled rows with output weights of 1', async () => {
    const { engine } = engines[0];
    const config = fixture.checkpoint().config;
    const { hiddenSize: H, expertIntermediateSize: I, topK } = config;
    const layer = 1;
    const weights = await new CheckpointWeights(fixture.checkpoint()).layer(layer);
    if (weights.mlp.kind !== 'moe') throw new Error('layer 1 of the fixture is an MoE layer');
    const moe = weights.mlp.moe;
    const tokens = 5;
    const x = uniform(tokens * H, 8);
    const seen: Array<{ expert: number; rows: Float32Array; weights: Float32Array }> = [];
    const out = await moeBlock(engine, config, layer, moe, x, tokens, { onExpertInput: (_l, expert, rows, _n, w) => void seen.push({ expert, rows: rows.slice(), weights: Float32Array.from(w!) }) });
    const routing = route(engine, config, moe, x, tokens);

    // f64 from the checkpoint's matrices: SwiGLU of an input row
    const matrices = new Map<number, { gate: Float32Array; up: Float32Array; down: Float32Array }>();
    for (const e of new Set(routing.experts)) matrices.set(e, { gate: await fixture.checkpoint().readExpert(layer, e, 'gate'), up: await fixture.checkpoint().readExpert(layer, e, 'up'), down: await fixture.checkpoint().readExpert(layer, e, 'down') });
    const shared = fixture.checkpoint().layout.layers[layer].moe!.shared as { gate: string; up: string; down: string };
    const sharedMatrices = { gate: await fixture.checkpoint().readF32(shared.gate), up: await fixture.checkpoint().readF32(shared.up), down: await fixture.checkpoint().readF32(shared.down) };
    const swiglu = (m: { gate: Float32Array; up: Float32Array; down: Float32Array }, row: ArrayLike<number>): Float64Array => {
      const act = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        let g = 0;
        let u = 0;
        for (let j = 0; j < H; j++) {
          g += m.gate[i * H + j] * row[j];
          u += m.up[i * H + j] * row[j];
        }
        act[i] = (g / (1 + Math.exp(-g))) * u;
      }
      const y = new Float64Array(H);
      for (let j = 0; j < H; j++) for (let i = 0; i < I; i++) y[j] += m.down[j * I + i] * act[i];
      return y;
    };
    let worst = 0;
    for (let t = 0; t < tokens; t++) {
      const row = x.subarray(t * H, (t + 1) * H);
      const want = swiglu(sharedMatrices, row);
      for (let k = 0; k < topK; k++) {
        const w = routing.weights[t * topK + k];
        // Llama 4's weights are sigmoids of the chosen logits, in (0, 1), not summing to 1
        expect(w).toBeGreaterThan(0);
        expect(w).toBeLessThan(1);
        const y = swiglu(matrices.get(routing.experts[t * topK + k])!, Array.from(row, (v) => v * w));
        for (let j = 0; j < H; j++) want[j] += y[j];
      }
      for (let j = 0; j < H; j++) worst = Math.max(worst, Math.abs(out[t * H + j] - want[j]) / (1 + Math.abs(want[j])));
    }
    expect(worst).toBeLessThan(1e-5);

    // the observer: expert e's rows are its tokens' rows times their weights for e, its output weights 1
    expect(seen.reduce((n, s) => n + s.weights.length, 0)).toBe(tokens * topK);
    for (const { expert, rows, weights: outputWeights } of seen) {
      expect(Array.from(outputWeights)).toEqual(Array.from(outputWeights, () => 1));
      const routed = Array.from({ length: tokens * topK }, (_, i) => i).filter((i) => routing.experts[i] === expert);
      expect(rows.length).toBe(routed.length * H);
      routed.forEach((i, r) => {
        const t = Math.floor(i / topK);
        for (let j = 0; j < H; j++) expect(rows[r * H + j]).toBe(Math.fround(x[t * H + j] * routing.weights[i]));
      });
    }
    // sequential calibration observes the inputs without running the experts: the same rows and weights
    const observed: typeof seen = [];
    await observeMoeInputs(engine, config, layer, moe, x, tokens, { onExpertInput: (_l, expert, rows, _n, w) => void observed.push({ expert, rows: rows.slice(), weights: Float32Array.from(w!) }) });
    expect(observed).toEqual(seen);
  });
});
