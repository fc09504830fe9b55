/**
 * Causal self-attention of one decoder layer over a ragged batch, in the Hugging Face Llama
 * lineage: q/k/v projections (+ Qwen2-MoE biases), OLMoE whole-projection or Qwen3 per-head
 * q/k RMSNorm, OLMoE clip_qkv, RoPE (rotate_half), grouped-query heads, softmax(QKᵀ/√d) with a
 * causal (optionally sliding-window) mask, o_proj. The projections go through productTransB (their
 * weights f32 or BF16 as held), the attention products through engine.gemm.
 */
import type { Engine } from '../engine/types.js';
import type { ModelConfig } from '../checkpoint/types.js';
import type { TokenBatch } from './batch.js';
import { addRowBias, clampInPlace, scratch, type RopeTables } from './numerics.js';
import type { KvCache } from './kv-cache.js';
import { QUERY_TILE, SCORE_BLOCK } from '../engine/ts/kernels/causal-attention.js';
import type { AttentionWeights } from './weights.js';
import { productTransB } from './weight-matrix.js';

export interface AttentionContext {
  engine: Engine;
  config: ModelConfig;
  batch: TokenBatch;
  positions: Int32Array;
  rope: RopeTables;
  /** keys further back than this many positions are masked (Mistral/Mixtral sliding window), null = none */
  slidingWindow: number | null;
  /**
   * Incremental decoding: the batch's sequences continue those in the cache (sequence s of the
   * batch is sequence s of the cache, its rows are positions lengths[s]…), this layer's keys and
   * values are appended, and attention also covers the cached positions. With `slots`, batch
   * sequence s continues cache slot slots[s] instead.
   */
  kv?: { cache: KvCache; layer: number; slots?: ArrayLike<number> };
}

/**
 * Returns attention output (rows × hidden) for the normalised input `x` (rows × hidden). With
 * `residual`, the output is added into it (o_proj accumulates there: no output array, no extra
 * pass) and `residual` is returned.
 */
export function attentionBlock(ctx: AttentionContext, w: AttentionWeights, x: Float32Array, residual?: Float32Array): Float32Array {
  const { engine, config, batch, positions, rope } = ctx;
  const kernels = engine.kernels;
  const rows = batch.ids.length;
  const { hiddenSize: hidden, numHeads, numKvHeads, headDim, rmsNormEps: eps } = config;
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;

  // Everything up to the returned `out` is synchronous, so the intermediates are shared scratch
  // buffers (reallocating them per layer showed as GC and page faults); the cache copies k and v.
  const q = scratch('attention-q', rows * qWidth);
  const k = scratch('attention-k', rows * kvWidth);
  const v = scratch('attention-v', rows * kvWidth);
  productTransB(engine, rows, qWidth, hidden, x, w.q, q);
  productTransB(engine, rows, kvWidth, hidden, x, w.k, k);
  productTransB(engine, rows, kvWidth, hidden, x, w.v, v);
  if (w.qBias) addRowBias(q, rows, qWidth, w.qBias);
  if (w.kBias) addRowBias(k, rows, kvWidth, w.kBias);
  if (w.vBias) addRowBias(v, rows, kvWidth, w.vBias);

  if (config.qkNorm === 'whole') {
    kernels.rmsNorm(rows, qWidth, q, required(w.qNorm, 'q_norm'), eps, q);
    kernels.rmsNorm(rows, kvWidth, k, required(w.kNorm, 'k_norm'), eps, k);
  }
  if (config.clipQkv != null) {
    for (const t of [q, k, v]) clampInPlace(t, config.clipQkv);
  }
  if (config.qkNorm === 'per-head') {
    // every head's slice of each row normalised on its own: rows·heads rows of headDim
    kernels.rmsNorm(rows * numHeads, headDim, q, required(w.qNorm, 'q_norm'), eps, q);
    kernels.rmsNorm(rows * numKvHeads, headDim, k, required(w.kNorm, 'k_norm'), eps, k);
  }
  kernels.rope(rows, numHeads, headDim, positions, rope.cos, rope.sin, q);
  kernels.rope(rows, numKvHeads, headDim, positions, rope.cos, rope.sin, k);

  const context = scratch('attention-context', rows * qWidth);
  const scale = 1 / Math.sqrt(headDim);
  if (!ctx.kv || freshPrefill(ctx.kv, batch)) {
    // every sequence attends to its own rows only (no cache, or a prompt's first chunk, whose
    // keys and values go into the cache as well): all heads in one kernel call, which the native
    // engine spreads over its threads
    if (ctx.kv) writeToCache(ctx.kv, batch, k, v);
    kernels.causalAttention(numHeads, numKvHeads, headDim, batch.offsets, q, k, v, scale, ctx.slidingWindow, context);
  } else {
    attendWithCache(ctx, ctx.kv, q, k, v, context, scale);
  }
  const out = residual ?? new Float32Array(rows * hidden);
  productTransB(engine, rows, hidden, qWidth, context, w.o, out, residual ? 1 : 0);
  return out;
}

/** True when no sequence of the batch has a cached past: each then attends to its own new rows only. */
function freshPrefill(kv: NonNullable<AttentionContext['kv']>, batch: TokenBatch): boolean {
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    if (kv.cache.lengths[kv.slots ? kv.slots[s] : s] !== 0) return false;
  }
  return true;
}

/** This layer's keys and values of every sequence of the batch, appended to its cache slot. */
function writeToCache(kv: NonNullable<AttentionContext['kv']>, batch: TokenBatch, k: Float32Array, v: Float32Array): void {
  const { cache, layer, slots } = kv;
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    const len = batch.offsets[s + 1] - batch.offsets[s];
    if (len === 0) continue;
    const slot = slots ? slots[s] : s;
    cache.write(layer, slot, cache.lengths[slot], k, v, batch.offsets[s], len);
  }
}

/**
 * Attention of sequences that continue those in the KV cache (decoding, a prompt's prefill into
 * the cache): this layer's new keys and values are appended, and each sequence's rows attend to
 * its cached past and its own rows, one product pair per kv head and causal tile.
 */
function attendWithCache(
  ctx: AttentionContext,
  kv: NonNullable<AttentionContext['kv']>,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  context: Float32Array,
  scale: number,
): void {
  const { engine, config, batch } = ctx;
  const kernels = engine.kernels;
  const { numHeads, numKvHeads, headDim } = config;
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  const groupSize = numHeads / numKvHeads;
  const { cache, layer, slots } = kv;
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    const start = batch.offsets[s];
    const len = batch.offsets[s + 1] - start;
    if (len === 0) continue;
    // keys/values this sequence attends to: its cached past followed by its new rows
    const slot = slots ? slots[s] : s;
    const past = cache.lengths[slot];
    const keys = cache.keys(layer, slot);
    const values = cache.values(layer, slot);
    cache.write(layer, slot, past, k, v, start, len);
    /** positions per kv head in a head-major cache buffer (0: keys/values are row-major, gathered per head) */
    const headStride = cache.headDim === headDim ? cache.allocated(slot) : 0;
    const total = past + len;
    // the query heads that share a kv head go through one pair of products (rows [g][i]), as many
    // at a time as keep the score block under SCORE_BLOCK values
    const heads = Math.max(1, Math.min(groupSize, Math.floor(SCORE_BLOCK / (len * total))));
    const qh = scratch('attention-qh', heads * len * headDim);
    const kh = headStride ? null : scratch('attention-kh', total * headDim);
    const vh = headStride ? null : scratch('attention-vh', total * headDim);
    const scores = scratch('attention-scores', heads * len * total);
    const oh = scratch('attention-oh', heads * len * headDim);
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      let kHead: Float32Array;
      let vHead: Float32Array;
      if (headStride) {
        // head-major cache: this head's positions are contiguous, no copy needed
        const base = kvHead * headStride * headDim;
        kHead = keys.subarray(base, base + total * headDim);
        vHead = values.subarray(base, base + total * headDim);
      } else {
        kernels.copyBlock(total, headDim, keys, kvHead * headDim, kvWidth, kh!, 0, headDim);
        kernels.copyBlock(total, headDim, values, kvHead * headDim, kvWidth, vh!, 0, headDim);
        kHead = kh!;
        vHead = vh!;
      }
      for (let g0 = 0; g0 < groupSize; g0 += heads) {
        const hb = Math.min(heads, groupSize - g0);
        // Query rows in tiles: tile rows i0..i0+tr see keys only up to past + i0 + tr (and, with a
        // window, from past + i0 − window + 1), so the products skip the masked upper triangle
        // (62% of the full work for 4 tiles).
        const tile = Math.max(QUERY_TILE, Math.ceil(len / 8));
        for (let i0 = 0; i0 < len; i0 += tile) {
          const tr = Math.min(tile, len - i0);
          const keyEnd = past + i0 + tr;
          const keyFirst = ctx.slidingWindow === null ? 0 : Math.max(0, past + i0 - ctx.slidingWindow + 1);
          const kc = keyEnd - keyFirst;
          const m = hb * tr;
          for (let g = 0; g < hb; g++) {
            const col = (kvHead * groupSize + g0 + g) * headDim;
            kernels.copyBlock(tr, headDim, q, (start + i0) * qWidth + col, qWidth, qh, g * tr * headDim, headDim);
          }
          const blockScores = view(scores, m * kc);
          const blockOut = view(oh, m * headDim);
          const kBlock = kHead.subarray(keyFirst * headDim, keyEnd * headDim);
          const vBlock = vHead.subarray(keyFirst * headDim, keyEnd * headDim);
          engine.gemm(m, kc, headDim, view(qh, m * headDim), kBlock, blockScores, { transB: true, alpha: scale });
          kernels.causalSoftmax(hb, tr, kc, past + i0 - keyFirst, ctx.slidingWindow, blockScores);
          engine.gemm(m, headDim, kc, blockScores, vBlock, blockOut);
          for (let g = 0; g < hb; g++) {
            const col = (kvHead * groupSize + g0 + g) * headDim;
            kernels.copyBlock(tr, headDim, oh, g * tr * headDim, headDim, context, (start + i0) * qWidth + col, qWidth);
          }
        }
      }
    }
  }
}

/** The first `length` values of a scratch buffer (the buffer itself when that is all of it). */
function view(buf: Float32Array, length: number): Float32Array {
  return length === buf.length ? buf : buf.subarray(0, length);
}

function required(t: Float32Array | undefined, name: string): Float32Array {
  if (!t) throw new Error(`the model's config asks for a q/k norm but the checkpoint has no ${name} weight`);
  return t;
}
