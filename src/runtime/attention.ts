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
import type { AttentionWeights } from './weights.js';

export interface AttentionContext {
  engine: Engine;
  config: ModelConfig;
  batch: TokenBatch;
  positions: Int32Array;
  rope: RopeTables;
  /** keys further back than this many positions are masked (Mistral/Mixtral sliding window), null = none */
  slidingWindow: number | null;
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
    const qh = new Float32Array(len * headDim);
    const kh = new Float32Array(len * headDim);
    const vh = new Float32Array(len * headDim);
    const scores = new Float32Array(len * len);
    const oh = new Float32Array(len * headDim);
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      gatherHead(k, start, len, kvWidth, kvHead * headDim, headDim, kh);
      gatherHead(v, start, len, kvWidth, kvHead * headDim, headDim, vh);
      for (let g = 0; g < groupSize; g++) {
        const head = kvHead * groupSize + g;
        gatherHead(q, start, len, qWidth, head * headDim, headDim, qh);
        engine.gemm(len, len, headDim, qh, kh, scores, { transB: true, alpha: scale });
        maskedSoftmax(scores, len, ctx.slidingWindow);
        engine.gemm(len, headDim, len, scores, vh, oh);
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

/** Row i keeps columns j ≤ i (and i − j < window); the rest become exact zeros. */
function maskedSoftmax(scores: Float32Array, len: number, window: number | null): void {
  for (let i = 0; i < len; i++) {
    const first = window === null ? 0 : Math.max(0, i - window + 1);
    const row = i * len;
    scores.fill(0, row, row + first);
    softmaxInPlace(scores, row + first, i + 1 - first);
    scores.fill(0, row + i + 1, row + len);
  }
}
