/**
 * DeepSeek-V2/V3's multi-head latent attention (MLA). Decoding runs it in its absorbed form, so
 * that the KV cache holds one latent row per position instead of every head's keys and values;
 * a prompt with no cached past runs transformers' expanded form, which is cheaper there.
 *
 * transformers (modeling_deepseek_v2.py) computes, per head h with kv_b_proj's blocks W_UK_h
 * [nope × lora] and W_UV_h [v × lora]:
 *   c = RMSNorm(x·W_kvaᵀ[:lora]), k_pe = RoPE(x·W_kvaᵀ[lora:])        (one of each per position)
 *   k_h = [W_UK_h·c ; k_pe], v_h = W_UV_h·c, q_h = [q_nope_h ; RoPE(q_pe_h)]
 *   o_h = softmax(q_h·k_hᵀ · scale) · v_h
 * Since q_nope_h·(W_UK_h·c) = (q_nope_h·W_UK_h)·c, the same scores come from the query
 * q̃_h = [q_nope_h·W_UK_h ; q_pe_h] against one shared key per position, the latent
 * [c ; k_pe] (width lora + rope): multi-query attention with one kv head. Its values are the same
 * latent rows, so Σ p·[c ; k_pe] holds Σ p·c in its first lora entries, and o_h = W_UV_h·(Σ p·c).
 * The engine's attention kernels therefore run MLA unchanged (numKvHeads 1, head width
 * lora + rope, keys = values) wherever a past is cached, and the cache stores the latent rows:
 * (lora + rope) values per position and layer where the expanded form needs
 * heads·(nope + rope + v) (576 against 5120 on V2-Lite), held once as both key and value
 * (kvCacheShape's valuesAreKeys). Every prompt's latent rows go into the cache whichever form
 * computed its attention.
 *
 * RoPE: DeepSeek rotates the rope part as interleaved pairs (x[2i], x[2i+1]) (V3 unless its
 * rope_interleave is false); the engine's kernel rotates halves (x[i], x[i + rope/2]). The
 * query's and key's rope parts are de-interleaved as they are copied out of the projections,
 * which turns one into the other; scores are dot products, unchanged by the same reordering of
 * both sides.
 *
 * Mistral 4 multiplies each query by a factor of its position (llama4-query-scale.ts); the
 * absorbed query is linear in it, so both forms take the scaled query.
 */
import type { ModelConfig } from '../checkpoint/types.js';
import type { AttentionContext } from './attention.js';
import { appendToCache, attendCached, attendWithCache, freshPrefill, writeToCache } from './attention-cache.js';
import { scaleQueriesByPosition } from './llama4-query-scale.js';
import { deinterleave, scratch } from './numerics.js';
import { attendToChosen, indexKeys, sparseRows } from './sparse-attention.js';
import type { MlaAttentionWeights } from './weights.js';
import { productTransB } from './weight-matrix.js';

/**
 * MLA's widths from a config: heads, lora (kv_lora_rank), nope, rope, v, the query head
 * (nope + rope) and latent row (lora + rope) they make, and `row`, the width of a cached row: the
 * latent, and with DeepSeek Sparse Attention the position's index key after it (sparse-attention.ts).
 */
function mlaSizes(config: ModelConfig) {
  const m = config.mla;
  if (!m) throw new Error('MLA weights given for a model whose config has no MLA sizes');
  const { kvLoraRank: lora, qkNopeHeadDim: nope, qkRopeHeadDim: ropeDim, vHeadDim: vDim } = m;
  const latent = lora + ropeDim;
  return { m, heads: config.numHeads, lora, nope, ropeDim, vDim, qHead: nope + ropeDim, latent, row: latent + (config.sparseAttention?.indexHeadDim ?? 0) };
}

/**
 * The eps of q_a_layernorm and kv_a_layernorm: transformers builds both with its RMSNorm's
 * default, 1e-6, in every MLA family, whatever rms_norm_eps says (GLM-4.7-Flash's is 1e-5).
 */
const MLA_LATENT_NORM_EPS = 1e-6;

export function mlaAttentionBlock(ctx: AttentionContext, w: MlaAttentionWeights, x: Float32Array, residual?: Float32Array): Float32Array {
  const { engine, config, batch, positions, rope } = ctx;
  const kernels = engine.kernels;
  const { m, heads, lora, nope, ropeDim, vDim, qHead, latent, row } = mlaSizes(config);
  const rows = batch.ids.length;
  const hidden = config.hiddenSize;
  const eps = MLA_LATENT_NORM_EPS;
  // the rope part as the engine's rotate-half kernel takes it
  const toHalves = m.ropeInterleave ? deinterleave : copyRope;

  // queries: q_proj, or q_a_proj → q_a_layernorm → q_b_proj
  const q = scratch('mla-q', rows * heads * qHead);
  let qa: Float32Array | null = null;
  if (w.qA) {
    const rank = m.qLoraRank!;
    qa = scratch('mla-q-a', rows * rank);
    productTransB(engine, rows, rank, hidden, x, w.qA, qa);
    kernels.rmsNorm(rows, rank, qa, w.qANorm!, eps, qa);
    productTransB(engine, rows, heads * qHead, rank, qa, w.q, q);
  } else {
    productTransB(engine, rows, heads * qHead, hidden, x, w.q, q);
  }

  // each position's c and k_pe, apart
  const projected = scratch('mla-kv-a', rows * latent);
  productTransB(engine, rows, latent, hidden, x, w.kvA, projected);
  const c = scratch('mla-c', rows * lora);
  const kPe = scratch('mla-k-pe', rows * ropeDim);
  for (let r = 0; r < rows; r++) {
    c.set(projected.subarray(r * latent, r * latent + lora), r * lora);
    toHalves(projected, r * latent + lora, ropeDim, kPe, r * ropeDim);
  }
  kernels.rmsNorm(rows, lora, c, w.kvANorm, eps, c);
  kernels.rope(rows, 1, ropeDim, positions, rope.cos, rope.sin, kPe);

  // every query head's rope part, roped and put back in place: q is then rows × heads × [nope ; rope]
  const qPe = scratch('mla-q-pe', rows * heads * ropeDim);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) toHalves(q, (r * heads + h) * qHead + nope, ropeDim, qPe, (r * heads + h) * ropeDim);
  }
  kernels.rope(rows, heads, ropeDim, positions, rope.cos, rope.sin, qPe);
  for (let i = 0; i < rows * heads; i++) q.set(qPe.subarray(i * ropeDim, (i + 1) * ropeDim), i * qHead + nope);
  // Mistral 4: each row's whole query scaled by its position, before either form absorbs or expands it
  if (ctx.queryScale) scaleQueriesByPosition(ctx.queryScale, positions, rows, heads * qHead, q);

  const scale = ctx.scale;
  const fresh = !ctx.kv || freshPrefill(ctx.kv);
  // DeepSeek Sparse Attention: every position's index key (cached after its latent row), and the
  // rows whose indexer keeps fewer positions than they could attend to (sparse-attention.ts)
  const sparse = config.sparseAttention ? sparseRows(ctx) : [];
  const indexKeyRows = config.sparseAttention && (ctx.kv || sparse.length > 0) ? indexKeys(ctx, w, x) : null;
  // a prompt with no cached past: the expanded form (expandedAttention) costs the same products
  // as absorbing (T·lora·heads·(nope + v) multiply-adds either way) and its scores and weighted
  // sums run at the head width (nope + rope) instead of the latent width (lora + rope): 192
  // against 576 on V2-Lite. Decoding, whose past is cached as latent rows, stays absorbed, as do
  // rows that attend to an indexer's choice of positions.
  const expanded = fresh && vDim <= qHead && sparse.length === 0;
  // the latent rows [RMSNorm(c) ; RoPE(k_pe)] (and the index key): what the cache holds and the absorbed form attends to
  const kv = ctx.kv || !expanded ? latentRows(c, kPe, indexKeyRows, rows, lora, ropeDim, row) : null;
  if (ctx.kv && fresh) writeToCache(ctx.kv, batch, kv!, kv!);
  const headsOut = scratch('mla-heads-out', rows * heads * vDim);
  if (expanded) expandedAttention(ctx, w, q, c, kPe, scale, headsOut);
  else absorbedAttention(ctx, w, q, kv!, fresh, scale, headsOut, sparse.length > 0 ? { rows: sparse, qa, x } : null);
  const out = residual ?? new Float32Array(rows * hidden);
  productTransB(engine, rows, hidden, heads * vDim, headsOut, w.o, out, residual ? 1 : 0);
  return out;
}

/** The cached row of each position, [c ; k_pe] (and DSA's index key after them), rows × `width`. */
function latentRows(c: Float32Array, kPe: Float32Array, indexKey: Float32Array | null, rows: number, lora: number, ropeDim: number, width: number): Float32Array {
  const kv = scratch('mla-latent', rows * width);
  const extra = width - lora - ropeDim;
  for (let r = 0; r < rows; r++) {
    kv.set(c.subarray(r * lora, (r + 1) * lora), r * width);
    kv.set(kPe.subarray(r * ropeDim, (r + 1) * ropeDim), r * width + lora);
    if (indexKey) kv.set(indexKey.subarray(r * extra, (r + 1) * extra), r * width + lora + ropeDim);
  }
  return kv;
}

/** The absorbed form over the latent rows (see the top of the file): decoding, and any batch with a cached past. */
function absorbedAttention(
  ctx: AttentionContext,
  w: MlaAttentionWeights,
  q: Float32Array,
  kv: Float32Array,
  fresh: boolean,
  scale: number,
  headsOut: Float32Array,
  /** DSA: the rows whose indexer chooses their positions, and the q-LoRA projection its queries come from */
  sparse: { rows: readonly number[]; qa: Float32Array | null; x: Float32Array } | null = null,
): void {
  const { engine, config, batch } = ctx;
  const { heads, lora, nope, vDim, qHead, row: latent } = mlaSizes(config);
  const rows = batch.ids.length;
  const headBlock = (nope + vDim) * lora;
  // absorbed queries q̃_h = [q_nope_h·W_UK_h ; RoPE(q_pe_h)], rows × heads × the cached row's
  // width (zeros against a DSA index key, so that it adds nothing to a score)
  const absorbed = scratch('mla-q-absorbed', rows * heads * latent);
  if (latent > lora + qHead - nope) absorbed.fill(0);
  const qNope = scratch('mla-q-nope', rows * nope);
  const qLatent = scratch('mla-q-latent', rows * lora);
  for (let h = 0; h < heads; h++) {
    for (let r = 0; r < rows; r++) qNope.set(q.subarray((r * heads + h) * qHead, (r * heads + h) * qHead + nope), r * nope);
    const uk = w.kvB.subarray(h * headBlock, h * headBlock + nope * lora); // [nope × lora]
    engine.gemm(rows, lora, nope, qNope, uk, qLatent);
    for (let r = 0; r < rows; r++) {
      const at = (r * heads + h) * latent;
      absorbed.set(qLatent.subarray(r * lora, (r + 1) * lora), at);
      absorbed.set(q.subarray((r * heads + h) * qHead + nope, (r * heads + h + 1) * qHead), at + lora);
    }
  }
  // multi-query attention over the latent rows (keys = values)
  const context = scratch('mla-context', rows * heads * latent);
  if (sparse) {
    // DSA: the rows below index_topk attend densely, the others to the positions their indexer keeps
    attendBelowTopK(ctx, absorbed, kv, fresh, scale, context);
    attendToChosen(ctx, w, sparse.rows, sparse.qa, sparse.x, absorbed, kv, scale, context);
  } else if (fresh) engine.kernels.causalAttention(heads, 1, latent, batch.offsets, absorbed, kv, kv, scale, ctx.slidingWindow, context);
  else attendWithCache(ctx, ctx.kv!, { heads, kvHeads: 1, headDim: latent }, absorbed, kv, kv, context, scale);
  // o_h = (Σ p·c)·W_UV_hᵀ
  const ctxLatent = scratch('mla-context-latent', rows * lora);
  const oHead = scratch('mla-o-head', rows * vDim);
  for (let h = 0; h < heads; h++) {
    for (let r = 0; r < rows; r++) ctxLatent.set(context.subarray((r * heads + h) * latent, (r * heads + h) * latent + lora), r * lora);
    const uv = w.kvB.subarray(h * headBlock + nope * lora, (h + 1) * headBlock); // [v × lora]
    engine.gemm(rows, vDim, lora, ctxLatent, uv, oHead, { transB: true });
    for (let r = 0; r < rows; r++) headsOut.set(oHead.subarray(r * vDim, (r + 1) * vDim), (r * heads + h) * vDim);
  }
}

/**
 * DSA: the dense kernels for the rows whose position is below index_topk (in each sequence, its
 * first rows), gathered into a batch of their own and their results put back; the step's cached
 * rows are all appended first. The other rows are left to attendToChosen (sparse-attention.ts):
 * running them here too would be the whole prompt's dense attention, replaced.
 */
function attendBelowTopK(ctx: AttentionContext, absorbed: Float32Array, kv: Float32Array, fresh: boolean, scale: number, context: Float32Array): void {
  const { engine, config, batch, positions } = ctx;
  const { heads, row } = mlaSizes(config);
  const topK = config.sparseAttention!.indexTopK;
  const sequences = batch.offsets.length - 1;
  const denseOffsets = new Int32Array(sequences + 1);
  for (let s = 0; s < sequences; s++) {
    let n = 0;
    for (let r = batch.offsets[s]; r < batch.offsets[s + 1] && positions[r] < topK; r++) n++;
    denseOffsets[s + 1] = denseOffsets[s] + n;
  }
  const past = ctx.kv && !fresh ? appendToCache(ctx, ctx.kv, kv, kv) : null;
  const total = denseOffsets[sequences];
  if (total === 0) return;
  const block = heads * row;
  const q = scratch('mla-dense-q', total * block);
  const out = scratch('mla-dense-context', total * block);
  const keys = fresh ? scratch('mla-dense-kv', total * row) : null;
  for (let s = 0; s < sequences; s++) {
    for (let i = 0; i < denseOffsets[s + 1] - denseOffsets[s]; i++) {
      const from = batch.offsets[s] + i;
      const to = denseOffsets[s] + i;
      q.set(absorbed.subarray(from * block, (from + 1) * block), to * block);
      keys?.set(kv.subarray(from * row, (from + 1) * row), to * row);
    }
  }
  if (keys) engine.kernels.causalAttention(heads, 1, row, denseOffsets, q, keys, keys, scale, null, out);
  else attendCached(ctx, ctx.kv!, { heads, kvHeads: 1, headDim: row }, denseOffsets, past!, q, out, scale);
  for (let s = 0; s < sequences; s++) {
    for (let i = 0; i < denseOffsets[s + 1] - denseOffsets[s]; i++) {
      const to = batch.offsets[s] + i;
      context.set(out.subarray((denseOffsets[s] + i) * block, (denseOffsets[s] + i + 1) * block), to * block);
    }
  }
}

/**
 * transformers' own form, for a prompt with no cached past: each head's keys [W_UK_h·c ; k_pe]
 * and values W_UV_h·c (zero-padded to the key width, so the engine's kernel, which takes one
 * head width, runs them), multi-head attention, the first v entries of each head's output.
 */
function expandedAttention(ctx: AttentionContext, w: MlaAttentionWeights, q: Float32Array, c: Float32Array, kPe: Float32Array, scale: number, headsOut: Float32Array): void {
  const { engine, config, batch } = ctx;
  const { heads, lora, nope, ropeDim, vDim, qHead } = mlaSizes(config);
  const rows = batch.ids.length;
  // the queries are q as it stands ([nope ; roped rope] per head)
  const expanded = scratch('mla-kv-expanded', rows * heads * (nope + vDim));
  engine.gemm(rows, heads * (nope + vDim), lora, c, w.kvB, expanded, { transB: true });
  const keys = scratch('mla-keys', rows * heads * qHead);
  const values = scratch('mla-values', rows * heads * qHead);
  values.fill(0);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const at = (r * heads + h) * qHead;
      const from = (r * heads + h) * (nope + vDim);
      keys.set(expanded.subarray(from, from + nope), at);
      keys.set(kPe.subarray(r * ropeDim, (r + 1) * ropeDim), at + nope);
      values.set(expanded.subarray(from + nope, from + nope + vDim), at);
    }
  }
  const context = scratch('mla-context-expanded', rows * heads * qHead);
  engine.kernels.causalAttention(heads, heads, qHead, batch.offsets, q, keys, values, scale, ctx.slidingWindow, context);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) headsOut.set(context.subarray((r * heads + h) * qHead, (r * heads + h) * qHead + vDim), (r * heads + h) * vDim);
  }
}

function copyRope(src: Float32Array, from: number, width: number, dst: Float32Array, to: number): void {
  dst.set(src.subarray(from, from + width), to);
}

