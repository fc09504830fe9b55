/**
 * Causal self-attention of one decoder layer over a ragged batch, in the Hugging Face Llama
 * lineage: q/k/v projections (+ Qwen2-MoE's and GLM-4.5's biases), OLMoE whole-projection or
 * Qwen3 per-head q/k RMSNorm (Llama 4's without a weight), OLMoE clip_qkv, RoPE (rotate_half, over
 * the whole head or GLM-4.5's leading part), Llama 4's queries scaled by position, grouped-query
 * heads, softmax(QKᵀ/√d) with a causal mask (optionally a sliding window, or Llama 4's chunks) and
 * gpt-oss's per-head sinks, AFMoE's sigmoid gate on the heads' output, o_proj (+ gpt-oss's bias;
 * Granite: its own softmax scale, and its residual multiplier on the output). A layer's widths are
 * its own (MiMo-V2-Flash: kv heads and sinks by layer, value heads narrower than key heads, the
 * values scaled by attention_value_scale). The
 * projections go through productTransB (their weights f32 or BF16 as held), the attention
 * products through engine.gemm.
 */
import type { Engine } from '../engine/types.js';
import type { Llama4QueryScale, ModelConfig } from '../checkpoint/types.js';
import type { TokenBatch } from './batch.js';
import { addRowBias, clampInPlace, deinterleaveHeads, ones, scaleInPlace, scratch } from './numerics.js';
import type { RopeTables } from './rope.js';
import type { KvCache } from './kv-cache.js';
import type { AttentionWeights, StandardAttentionWeights } from './weights.js';
import { productTransB, type Weights } from './weight-matrix.js';
import { attentionShapeOf } from '../checkpoint/attention-shape.js';
import { mlaAttentionBlock } from './mla-attention.js';
import { attendWithCache, freshPrefill, writeToCache } from './attention-cache.js';
import { promptChunkOffsets } from './attention-chunks.js';
import { scaleQueriesByPosition } from './llama4-query-scale.js';
import { linearAttentionBlock } from './linear-attention.js';
import { cachedLinearStates } from './linear-state-cache.js';

export interface AttentionContext {
  engine: Engine;
  config: ModelConfig;
  batch: TokenBatch;
  positions: Int32Array;
  /** the decoder layer being run (attentionStep sets it): its attention widths (checkpoint/attention-shape.ts); absent: 0 */
  layer?: number;
  /** the RoPE tables of the layer being run (attentionStep sets them where layers rotate with bases of their own) */
  rope: RopeTables;
  /** the positions the tables must cover: the batch's longest sequence with its cached past */
  ropePositions?: number;
  /** the softmax's scale: 1/√(query head width), times DeepSeek's YaRN mscale² (RopeSpec.softmaxScale), or Granite's attention_multiplier */
  scale: number;
  /** keys further back than this many positions are masked: the window of the layer being run (attentionStep sets it), null = none */
  slidingWindow: number | null;
  /**
   * DeepSeek Sparse Attention: the positions the last layer with an indexer chose, per batch row
   * (sparse-attention.ts), for the layers that reuse its choice (GLM-5's "shared" layers)
   */
  indexChoice?: Map<number, Int32Array>;
  /** false: the layer being run applies no RoPE (ModelConfig.nopeLayers; attentionStep sets it); absent: it does */
  rotary?: boolean;
  /** the attention chunk of the layer being run (ModelConfig.attentionChunk; attentionStep sets it), null or absent: none */
  attentionChunk?: number | null;
  /** true: the layer being run RMS-normalises each q/k head without a weight after RoPE (ModelConfig.weightlessQkNormLayers; attentionStep sets it) */
  weightlessQkNorm?: boolean;
  /** the query scaling of the layer being run (ModelConfig.llama4QueryScale; attentionStep sets it), null or absent: none */
  queryScale?: Llama4QueryScale | null;
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
  if (w.kind === 'mla') return mlaAttentionBlock(ctx, w, x, residual);
  if (w.kind === 'linear') return linearAttentionBlock(ctx, w, x, residual, ctx.kv ? cachedLinearStates(ctx.kv) : undefined);
  const { engine, config, batch, positions, rope } = ctx;
  const kernels = engine.kernels;
  const rows = batch.ids.length;
  const { hiddenSize: hidden, rmsNormEps: eps } = config;
  // this layer's widths: MiMo-V2-Flash's layers differ in kv heads, and its value heads are narrower
  const { heads: numHeads, kvHeads: numKvHeads, headDim, valueHeadDim } = attentionShapeOf(config, ctx.layer ?? 0);
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  const vWidth = numKvHeads * valueHeadDim;

  // Everything up to the returned `out` is synchronous, so the intermediates are shared scratch
  // buffers (reallocating them per layer showed as GC and page faults); the cache copies k and v.
  const q = scratch('attention-q', rows * qWidth);
  const k = scratch('attention-k', rows * kvWidth);
  const v = scratch('attention-v', rows * vWidth);
  const queryGate = config.queryGate ? splitQueryGate(engine, rows, numHeads, headDim, hidden, x, w.q, q) : null;
  if (!queryGate) productTransB(engine, rows, qWidth, hidden, x, w.q, q);
  productTransB(engine, rows, kvWidth, hidden, x, w.k, k);
  productTransB(engine, rows, vWidth, hidden, x, w.v, v);
  if (w.qBias) addRowBias(q, rows, qWidth, w.qBias, kernels);
  if (w.kBias) addRowBias(k, rows, kvWidth, w.kBias, kernels);
  if (w.vBias) addRowBias(v, rows, vWidth, w.vBias, kernels);
  // MiMo-V2-Flash's attention_value_scale: v_proj's output times a constant
  scaleInPlace(v, config.attentionValueScale, rows * vWidth);

  if (config.qkNorm === 'whole') {
    kernels.rmsNorm(rows, qWidth, q, required(w.qNorm, 'q_norm'), eps, q);
    kernels.rmsNorm(rows, kvWidth, k, required(w.kNorm, 'k_norm'), eps, k);
  }
  if (config.clipQkv != null) {
    for (const t of [q, k, v]) clampInPlace(t, config.clipQkv);
  }
  // per-head q/k norms come before RoPE (Qwen3, GLM-4.5), or after it (Hunyuan)
  const perHeadNorm = config.qkNorm === 'per-head';
  if (perHeadNorm && !config.qkNormAfterRope) normHeads(kernels, rows, config, numKvHeads, w, q, k);
  // an interleaved RoPE (ERNIE-4.5: pairs x[2i], x[2i+1]) rotated as halves: the queries' and
  // keys' rotated values reordered alike, which every q·k (and so the attention) does not see
  if (config.ropeInterleave) {
    deinterleaveHeads(q, rows * numHeads, headDim, rope.half * 2);
    deinterleaveHeads(k, rows * numKvHeads, headDim, rope.half * 2);
  }
  // a partial rotary width (GLM-4.5) rotates the start of each head: the tables are that wide
  if (ctx.rotary !== false) {
    kernels.rope(rows, numHeads, headDim, positions, rope.cos, rope.sin, q, rope.half * 2);
    kernels.rope(rows, numKvHeads, headDim, positions, rope.cos, rope.sin, k, rope.half * 2);
  }
  if (perHeadNorm && config.qkNormAfterRope) normHeads(kernels, rows, config, numKvHeads, w, q, k);
  if (ctx.weightlessQkNorm) {
    kernels.rmsNorm(rows * numHeads, headDim, q, ones(headDim), eps, q);
    kernels.rmsNorm(rows * numKvHeads, headDim, k, ones(headDim), eps, k);
  }
  if (ctx.queryScale) scaleQueriesByPosition(ctx.queryScale, positions, rows, qWidth, q);

  // each head's output is as wide as its values
  const outWidth = numHeads * valueHeadDim;
  const valueDim = valueHeadDim !== headDim ? valueHeadDim : null;
  const context = scratch('attention-context', rows * outWidth);
  const scale = ctx.scale;
  if (!ctx.kv || freshPrefill(ctx.kv)) {
    // every sequence attends to its own rows only (no cache, or a prompt's first chunk, whose
    // keys and values go into the cache as well): all heads in one kernel call, which the native
    // engine spreads over its threads
    if (ctx.kv) writeToCache(ctx.kv, batch, k, v);
    const offsets = ctx.attentionChunk ? promptChunkOffsets(batch.offsets, ctx.attentionChunk) : batch.offsets;
    kernels.causalAttention(numHeads, numKvHeads, headDim, offsets, q, k, v, scale, ctx.slidingWindow, context, w.sinks ?? null, valueDim);
  } else {
    attendWithCache(ctx, ctx.kv, { heads: numHeads, kvHeads: numKvHeads, headDim, valueHeadDim }, q, k, v, context, scale, w.sinks ?? null);
  }
  if (w.outputGate) gateBySigmoid(engine, rows, outWidth, hidden, x, w.outputGate, context);
  // Qwen3-Next's gate, a query's width a head (its values are as wide as its queries)
  if (queryGate) for (let i = 0; i < rows * qWidth; i++) context[i] *= Math.fround(1 / (1 + Math.exp(-queryGate[i])));
  // Granite multiplies the attention's output by residual_multiplier: o_proj is linear, so its input is
  scaleInPlace(context, config.multipliers?.residual, rows * outWidth);
  const out = residual ?? new Float32Array(rows * hidden);
  productTransB(engine, rows, hidden, outWidth, context, w.o, out, residual ? 1 : 0);
  if (w.oBias) addRowBias(out, rows, hidden, w.oBias, kernels);
  return out;
}

/**
 * AFMoE's output gate: context ×= sigmoid(x·gateᵀ) element-wise (x the attention's input), the
 * sigmoid rounded to f32 and the product rounded once, as torch multiplies two f32 tensors.
 */
function gateBySigmoid(engine: Engine, rows: number, width: number, hidden: number, x: Float32Array, gate: Weights, context: Float32Array): void {
  const g = scratch('attention-output-gate', rows * width);
  productTransB(engine, rows, width, hidden, x, gate, g);
  for (let i = 0; i < rows * width; i++) context[i] *= Math.fround(1 / (1 + Math.exp(-g[i])));
}

/**
 * Qwen3-Next's q_proj (ModelConfig.queryGate): each head's query, then its gate. The queries go
 * to `q` (rows × heads·headDim, as a plain q_proj's), the gates are returned alike.
 */
function splitQueryGate(engine: Engine, rows: number, heads: number, headDim: number, hidden: number, x: Float32Array, w: Weights, q: Float32Array): Float32Array {
  const both = scratch('attention-query-gate', rows * 2 * heads * headDim);
  productTransB(engine, rows, 2 * heads * headDim, hidden, x, w, both);
  const gate = scratch('attention-gate', rows * heads * headDim);
  for (let i = 0; i < rows * heads; i++) {
    q.set(both.subarray(2 * i * headDim, (2 * i + 1) * headDim), i * headDim);
    gate.set(both.subarray((2 * i + 1) * headDim, (2 * i + 2) * headDim), i * headDim);
  }
  return gate;
}

/** Every head's slice of each row of q and k normalised on its own: rows·heads rows of headDim. */
function normHeads(kernels: Engine['kernels'], rows: number, config: ModelConfig, numKvHeads: number, w: StandardAttentionWeights, q: Float32Array, k: Float32Array): void {
  const { numHeads, headDim, rmsNormEps: eps } = config;
  kernels.rmsNorm(rows * numHeads, headDim, q, required(w.qNorm, 'q_norm'), eps, q);
  kernels.rmsNorm(rows * numKvHeads, headDim, k, required(w.kNorm, 'k_norm'), eps, k);
}

function required(t: Float32Array | undefined, name: string): Float32Array {
  if (!t) throw new Error(`the model's config asks for a q/k norm but the checkpoint has no ${name} weight`);
  return t;
}
