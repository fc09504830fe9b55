/**
 * Qwen3-Next beyond the whole-prompt logits and greedy tokens test/hf/families.test.ts holds
 * against transformers: its Gated DeltaNet layers keep a state per sequence in the KV cache (the
 * convolution's last inputs and the recurrent state), so every other way rows reach them must give
 * what the whole sequence gives:
 * - a prompt's later pieces and single tokens after a cached past, several sequences of different
 *   lengths at once in their own slots, on each engine;
 * - the cache holds no keys or values for those layers, a state of fixed size instead, counted in
 *   its bytes and in the server's reservation (kvSlotBoundBytes);
 * - a state is that of all a slot's positions: a shorter prefix is never copied, a whole one is
 *   (and continues as the original does), a released or re-acquired slot starts from zero;
 * - the decoder's batched and chunked prefills, and n equal prompts (which share nothing), give
 *   each sequence the tokens it gets alone;
 * - with BF16 weights kept as stored, the linear layers' projections are held BF16 (their
 *   convolution taps and the rest f32) and compute what f32 weights do.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { batchFromSequences, CheckpointWeights, forwardLogits, KvCache, residentWeightBytes, runDecoder, type LinearAttentionWeights } from '../../src/runtime/index.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { kvCacheOptions, kvCacheShape, kvSlotBoundBytes, linearCacheLayout, linearStateBytes } from '../../src/runtime/kv-cache.js';
import { expectBatchedGreedyEqualsAlone } from '../helpers/batched-greedy-check.js';
import { useTinyCheckpoint } from '../helpers/test-engines.js';

const fixture = useTinyCheckpoint('qwen3-next', 'qwen3_next', { seed: 53 });
const { engines } = fixture;

const SEQUENCES = [
  [3, 17, 41, 5, 29, 11, 60, 2, 33, 47, 19, 8, 50, 7],
  [12, 9, 30, 44, 1, 56, 23, 38, 14],
];

/** the largest difference relative to 1 + |reference| */
function worstDifference(got: Float32Array, ref: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i] - ref[i]) / (1 + Math.abs(ref[i])));
  return worst;
}

function newCache(provider: CheckpointWeights, slots: number, capacity: number): KvCache {
  const shape = kvCacheShape(provider.config);
  return new KvCache(provider.config.numLayers, slots, capacity, shape.width, shape.headDim, shape.valuesAreKeys, kvCacheOptions(provider.config));
}

describe('Qwen3-Next with a KV cache', () => {
  it('pieces of prompts and single tokens after a cached past, sequences of different lengths in their own slots, equal the whole sequences (each engine)', async () => {
    const provider = new CheckpointWeights(fixture.checkpoint());
    const h = provider.config.hiddenSize;
    for (const { name, engine } of engines) {
      const full = await Promise.all(SEQUENCES.map((s) => runDecoder(provider, engine, batchFromSequences([s]))));
      const cache = newCache(provider, 3, 32);
      // slot 0 stays empty: the sequences run in slots 2 and 1
      const slots = [2, 1];
      for (let i = 0; i < 3; i++) cache.acquire();
      // pieces of 5 and 3, 4 and 1 (the second sequence ends its prompt first), then single tokens
      const cuts = [
        [0, 5, 9, 10, 11, 12, 13, 14],
        [0, 3, 4, 5, 6, 7, 8, 9],
      ];
      let worst = 0;
      for (let step = 0; step + 1 < cuts[0].length; step++) {
        const pieces = SEQUENCES.map((s, i) => s.slice(cuts[i][step], cuts[i][step + 1]));
        const got = await runDecoder(provider, engine, batchFromSequences(pieces), { kvCache: cache, kvSlots: slots });
        let row = 0;
        for (let i = 0; i < SEQUENCES.length; i++) {
          for (let t = cuts[i][step]; t < cuts[i][step + 1]; t++, row++) worst = Math.max(worst, worstDifference(got.subarray(row * h, (row + 1) * h), full[i].subarray(t * h, (t + 1) * h)));
        }
      }
      // the TS engine's products round alike whatever their rows; the native engine's one-row and
      // many-row products do not (here about 5e-5 after the final norm, where the TS engine gives 1e-6)
      expect(worst, name).toBeLessThan(name === 'ts' ? 1e-5 : 1e-4);
      expect([cache.lengths[2], cache.lengths[1], cache.lengths[0]]).toEqual([14, 9, 0]);
    }
  });

  it('holds no keys or values in the linear layers but a state of fixed size, counted in its bytes and in the server’s reservation', async () => {
    const provider = new CheckpointWeights(fixture.checkpoint());
    const { config } = provider;
    const layout = linearCacheLayout(config)!;
    const lin = config.linearAttention!;
    expect(layout.layers).toEqual([true, false, true]);
    // the conv's last kernel − 1 inputs of every channel (queries, keys, values), S per value head
    const keyWidth = lin.numKeyHeads * lin.keyHeadDim;
    expect(layout.convStateSize).toBe((lin.convKernel - 1) * (2 * keyWidth + lin.numValueHeads * lin.valueHeadDim));
    expect(layout.stateSize).toBe(lin.numValueHeads * lin.keyHeadDim * lin.valueHeadDim);
    const cache = newCache(provider, 1, 64);
    cache.acquire();
    await runDecoder(provider, engines[0].engine, batchFromSequences([SEQUENCES[0]]), { kvCache: cache });
    const shape = kvCacheShape(config);
    for (const l of [0, 2]) {
      expect(cache.keys(l, 0).length).toBe(0);
      expect(cache.linearState(0, l)!.recurrent.length).toBe(layout.stateSize);
    }
    const attended = cache.allocated(0, 1);
    expect(attended).toBeGreaterThanOrEqual(SEQUENCES[0].length);
    expect(cache.allocatedBytes).toBe(2 * attended * shape.width * 4 + linearStateBytes(layout));
    // the reservation: one attention layer's keys and values, the two linear layers' states
    const bound = kvSlotBoundBytes(config.numLayers, shape.width, 64, 40, shape.valuesAreKeys, { linear: layout });
    expect(bound).toBe(2 * Math.min(64, 2 * 40) * shape.width * 4 + 2 * (layout.convStateSize + layout.stateSize) * 4);
    expect(linearStateBytes(layout)).toBe(2 * (layout.convStateSize + layout.stateSize) * 4);
  });

  it('copies a slot’s cache only whole (the state is that of all its positions); the copy continues as the original; a released slot starts from zero', async () => {
    const provider = new CheckpointWeights(fixture.checkpoint());
    const engine = engines[0].engine;
    const h = provider.config.hiddenSize;
    const prompt = SEQUENCES[0];
    const cache = newCache(provider, 3, 32);
    const from = cache.acquire()!;
    await runDecoder(provider, engine, batchFromSequences([prompt.slice(0, 10)]), { kvCache: cache, kvSlots: [from] });
    expect(cache.holdsLinearState).toBe(true);
    // n choices' copy: the prompt but its last token, which the linear layers' state has moved past
    expect(cache.canCopyPrefix(from, 9)).toBe(false);
    const to = cache.acquire()!;
    expect(() => cache.copyPrefix(from, to, 9)).toThrow(/linear-attention layers hold the state of all of them and of no shorter prefix/);
    expect(cache.canCopyPrefix(from, 10)).toBe(true);
    cache.copyPrefix(from, to, 10);
    // both continue with the same tokens: the same rows as the whole sequence, and the copy's state is its own
    const rest = prompt.slice(10);
    const full = await runDecoder(provider, engine, batchFromSequences([prompt]));
    const both = await runDecoder(provider, engine, batchFromSequences([rest, rest]), { kvCache: cache, kvSlots: [from, to] });
    const tail = full.subarray(10 * h);
    expect(worstDifference(both.subarray(0, rest.length * h), tail)).toBeLessThan(1e-5);
    expect(worstDifference(both.subarray(rest.length * h), tail)).toBeLessThan(1e-5);
    // a cache made without the linear layers' states is refused before anything runs
    const shape = kvCacheShape(provider.config);
    const plain = new KvCache(provider.config.numLayers, 1, 32, shape.width, shape.headDim);
    await expect(runDecoder(provider, engine, batchFromSequences([prompt]), { kvCache: plain })).rejects.toThrow(/linear-attention layers but the KV cache holds no state for them: make it with kvCacheOptions/);
    expect(plain.lengths[0]).toBe(0);
    // released and acquired again: no state, so the slot starts from zero
    cache.release(to);
    expect(cache.acquire()).toBe(to);
    expect(cache.linearState(to, 0)).toBeNull();
    const again = await runDecoder(provider, engine, batchFromSequences([prompt]), { kvCache: cache, kvSlots: [to] });
    expect(worstDifference(again, full)).toBeLessThan(1e-5);
  });

  it('the decoder gives each sequence its tokens alone: prompts of different lengths together, whole and in prefill chunks of 3, and n equal prompts', async () => {
    for (const { name, engine } of engines) {
      await expectBatchedGreedyEqualsAlone(fixture.checkpoint(), engine, [SEQUENCES[0], SEQUENCES[1], SEQUENCES[1].slice(0, 4)], name);
      await expectBatchedGreedyEqualsAlone(fixture.checkpoint(), engine, [SEQUENCES[0], SEQUENCES[0], SEQUENCES[0]], `${name}, equal prompts`);
    }
  });

  it('BF16 weights: the linear layers’ projections held as stored, the convolution’s taps and vectors f32, the forward pass as with f32 weights (each engine)', async () => {
    const dir = path.join(fixture.dir(), 'bf16');
    await makeTinyCheckpoint(dir, 'qwen3_next', { seed: 53, dtype: 'BF16' });
    const ckpt = await openCheckpoint(dir);
    try {
      const layer = await new CheckpointWeights(ckpt, { bf16Weights: true }).layer(0);
      const w = layer.attention as LinearAttentionWeights;
      expect(w.kind).toBe('linear');
      if (!('qkvz' in w.inProj)) throw new Error('Qwen3-Next’s projections are grouped');
      for (const m of [w.inProj.qkvz, w.inProj.ba, w.outProj]) expect(m).toBeInstanceOf(Uint16Array);
      for (const v of [w.conv1d, w.dtBias, w.aLog, w.norm]) expect(v).toBeInstanceOf(Float32Array);
      // 2 bytes a value where f32 takes 4: every matrix (the fixture's are all 2-D) but the routers
      // and the shared experts' gates, which stay f32; so the linear layers' projections, not their taps
      const held = ckpt.tensorNames().filter((n) => ckpt.tensor(n)!.shape.length === 2 && !/mlp\.gate\.weight$|shared_expert_gate\.weight$/.test(n));
      expect(held).toEqual(expect.arrayContaining(['model.layers.0.linear_attn.in_proj_qkvz.weight', 'model.layers.0.linear_attn.in_proj_ba.weight', 'model.layers.0.linear_attn.out_proj.weight']));
      const heldValues = held.reduce((sum, name) => sum + ckpt.tensor(name)!.shape.reduce((a, b) => a * b, 1), 0);
      expect(residentWeightBytes(ckpt) - residentWeightBytes(ckpt, { bf16Weights: true })).toBe(2 * heldValues);
      const batch = batchFromSequences(SEQUENCES);
      for (const { name, engine } of engines) {
        const a = await forwardLogits(new CheckpointWeights(ckpt, { bf16Weights: true }), engine, batch);
        const b = await forwardLogits(new CheckpointWeights(ckpt), engine, batch);
        const scale = Math.max(...b.map(Math.abs));
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
        expect(worst, name).toBeLessThanOrEqual(1e-4 * scale);
      }
    } finally {
      await ckpt.close();
    }
  });
});
