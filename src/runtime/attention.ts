/**
 * Causal self-attention of one decoder layer over a ragged batch, in the Hugging Face Llama
 * lineage: q/k/v projections (+ Qwen2-MoE biases), OLMoE whole-projection or Qwen3 per-head
 * q/k RMSNorm, OLMoE clip_qkv, RoPE (rotate_half), grouped-query heads, softmax(QKᵀ/√d) with a
 * causal (optionally sliding-window) mask, o_proj. Every product goes through engine.gemm.
 */
import type { Engine } from '../engine/types.js';
import type { ModelConfig } from '../checkpoint/types.js';
import type { TokenBatch } from './batch.js';
import { addRowBias, applyRope, clampInPlace, rmsNormRows, rmsNormSegments, softmaxInPlace, type RopeTables } from './numerics.js';
import type { KvCache } from './kv-cache.js';
import type { AttentionWeights } from './weights.js';

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

/** Returns attention output (rows × hidden) for the normalised input `x` (rows × hidden). */
export function attentionBlock(ctx: AttentionContext, w: AttentionWeights, x: Float32Array): Float32Array {
  const { engine, config, batch, positions, rope } = ctx;
  const rows = batch.ids.length;
  const { hiddenSize: hidden, numHeads, numKvHeads, headDim, rmsNormEps: eps } = config;
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;

  const q = new Float32Array(rows * qWidth);
  const k = new Float32Array(rows * kvWidth);
  const v = new Float32Array(rows * kvWidth);
  engine.gemm(rows, qWidth, hidden, x, w.q, q, { transB: true });
  engine.gemm(rows, kvWidth, hidden, x, w.k, k, { transB: true });
  engine.gemm(rows, kvWidth, hidden, x, w.v, v, { transB: true });
  if (w.qBias) addRowBias(q, rows, qWidth, w.qBias);
  if (w.kBias) addRowBias(k, rows, kvWidth, w.kBias);
  if (w.vBias) addRowBias(v, rows, kvWidth, w.vBias);

  if (config.qkNorm === 'whole') {
    rmsNormRows(q, rows, qWidth, required(w.qNorm, 'q_norm'), eps);
    rmsNormRows(k, rows, kvWidth, required(w.kNorm, 'k_norm'), eps);
  }
  if (config.clipQkv != null) {
    for (const t of [q, k, v]) clampInPlace(t, config.clipQkv);
  }
  if (config.qkNorm === 'per-head') {
    rmsNormSegments(q, rows, qWidth, headDim, required(w.qNorm, 'q_norm'), eps);
    rmsNormSegments(k, rows, kvWidth, headDim, required(w.kNorm, 'k_norm'), eps);
  }
  applyRope(q, rows, numHeads, headDim, rope, (r) => positions[r]);
  applyRope(k, rows, numKvHeads, headDim, rope, (r) => positions[r]);

  const context = new Float32Array(rows * qWidth);
  const groupSize = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    const start = batch.offsets[s];
    const len = batch.offsets[s + 1] - start;
    if (len === 0) continue;
    // keys/values this sequence attends to: the cached past (if any) followed by its new rows
    let keys: Float32Array = k;
    let values: Float32Array = v;
    let keyStart = start;
    let past = 0;
    if (ctx.kv) {
      const { cache, layer, slots } = ctx.kv;
      const slot = slots ? slots[s] : s;
      past = cache.lengths[slot];
      keys = cache.keys(layer, slot);
      values = cache.values(layer, slot);
      keyStart = 0;
      keys.set(k.subarray(start * kvWidth, (start + len) * kvWidth), past * kvWidth);
      values.set(v.subarray(start * kvWidth, (start + len) * kvWidth), past * kvWidth);
    }
    const total = past + len;
    const qh = new Float32Array(len * headDim);
    const kh = new Float32Array(total * headDim);
    const vh = new Float32Array(total * headDim);
    const scores = new Float32Array(len * total);
    const oh = new Float32Array(len * headDim);
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      gatherHead(keys, keyStart, total, kvWidth, kvHead * headDim, headDim, kh);
      gatherHead(values, keyStart, total, kvWidth, kvHead * headDim, headDim, vh);
      for (let g = 0; g < groupSize; g++) {
        const head = kvHead * groupSize + g;
        gatherHead(q, start, len, qWidth, head * headDim, headDim, qh);
        engine.gemm(len, total, headDim, qh, kh, scores, { transB: true, alpha: scale });
        maskedSoftmax(scores, len, total, past, ctx.slidingWindow);
        engine.gemm(len, headDim, total, scores, vh, oh);
        scatterHead(oh, start, len, qWidth, head * headDim, headDim, context);
      }
    }
  }
  const out = new Float32Array(rows * hidden);
  engine.gemm(rows, hidden, qWidth, context, w.o, out, { transB: true });
  return out;
}

function required(t: Float32Array | undefined, name: string): Float32Array {
  if (!t) throw new Error(`the model's config asks for a q/k norm but the checkpoint has no ${name} weight`);
  return t;
}

function gatherHead(src: Float32Array, start: number, len: number, width: number, col: number, headDim: number, dst: Float32Array): void {
  for (let r = 0; r < len; r++) {
    const from = (start + r) * width + col;
    dst.set(src.subarray(from, from + headDim), r * headDim);
  }
}

function scatterHead(src: Float32Array, start: number, len: number, width: number, col: number, headDim: number, dst: Float32Array): void {
  for (let r = 0; r < len; r++) dst.set(src.subarray(r * headDim, (r + 1) * headDim), (start + r) * width + col);
}

/**
 * Query row i sits at position past + i and keeps key columns j ≤ past + i (and, with a sliding
 * window, past + i − j < window); the rest become exact zeros. `scores` is rows × cols.
 */
function maskedSoftmax(scores: Float32Array, rows: number, cols: number, past: number, window: number | null): void {
  for (let i = 0; i < rows; i++) {
    const last = past + i;
    const first = window === null ? 0 : Math.max(0, last - window + 1);
    const row = i * cols;
    scores.fill(0, row, row + first);
    softmaxInPlace(scores, row + first, last + 1 - first);
    scores.fill(0, row + last + 1, row + cols);
  }
}
