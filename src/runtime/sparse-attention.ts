/**
 * DeepSeek Sparse Attention (DSA: DeepSeek-V3.2, GLM-5), on top of MLA (mla-attention.ts). In each
 * layer that has one, an indexer scores every earlier position t for a query at position p:
 *
 *   score(t) = Σ_h w_h · relu(qᴵ_h · kᴵ_t) / √dim,   w = x·weights_projᵀ / √heads,
 *   qᴵ = RoPE(q_resid·wq_bᵀ) per head,   kᴵ_t = RoPE(LayerNorm(x_t·wkᵀ)),
 *
 * (q_resid is the query's q-LoRA projection after its norm; RoPE turns the first qk_rope_head_dim
 * values, as halves for V3.2 and as interleaved pairs for GLM-5) and the query attends only to the
 * index_topk best-scoring positions, as transformers' DeepseekV32Indexer computes it. A query with
 * at most index_topk positions to attend to keeps them all, so its attention is MLA's own: only
 * rows at a position ≥ index_topk take this path; the dense kernels run the others alone
 * (mla-attention.ts attendBelowTopK).
 * GLM-5's "shared" layers have no indexer and reuse the choice of the last layer that ran one
 * (AttentionContext.indexChoice).
 *
 * The index key of every position is cached after its latent row (mla-attention.ts widens the
 * cached row by index_head_dim, and the absorbed queries are zero there, so the dense scores are
 * unchanged), so a decoding step scores its past without recomputing it. Ties between equal
 * scores keep the earlier position, as the routers' top-k does (numerics.ts topK).
 *
 * The chosen positions' attention is the absorbed form's: per row, the heads' absorbed queries
 * against the chosen latent rows (one product), a softmax per head, the weighted sum of the same
 * rows (a second product).
 */
import type { AttentionContext } from './attention.js';
import { deinterleaveHeads, scratch } from './numerics.js';
import type { MlaAttentionWeights } from './weights.js';
import { productTransB } from './weight-matrix.js';
import { layerNormRows } from './norm.js';

/** torch's LayerNorm eps in the indexer (its k_norm). */
const INDEX_KEY_NORM_EPS = 1e-6;

function dsaOf(ctx: AttentionContext) {
  const dsa = ctx.config.sparseAttention;
  const m = ctx.config.mla;
  if (!dsa || !m) throw new Error('sparse attention run for a model whose config has no DSA and MLA sizes');
  return { ...dsa, ropeDim: m.qkRopeHeadDim, row: m.kvLoraRank + m.qkRopeHeadDim + dsa.indexHeadDim };
}

/** Rows of the batch at a position ≥ index_topk: those whose indexer keeps fewer positions than they could attend to. */
export function sparseRows(ctx: AttentionContext): number[] {
  const { indexTopK } = dsaOf(ctx);
  const out: number[] = [];
  for (let r = 0; r < ctx.positions.length; r++) if (ctx.positions[r] >= indexTopK) out.push(r);
  return out;
}

/** RoPE over the first qk_rope_head_dim values of each of `heads` index heads per row (GLM-5's pairs made halves first). */
function ropeIndexHeads(ctx: AttentionContext, x: Float32Array, rows: number, heads: number, positions: Int32Array): void {
  const { indexHeadDim: dim, ropeDim, ropeInterleave } = dsaOf(ctx);
  if (ropeInterleave) deinterleaveHeads(x, rows * heads, dim, ropeDim);
  ctx.engine.kernels.rope(rows, heads, dim, positions, ctx.rope.cos, ctx.rope.sin, x, ropeDim);
}

/**
 * Each row's index key, rows × index_head_dim: what the cache keeps after the latent row. Zeros
 * in a layer without an indexer (GLM-5's shared layers), whose rows are then never scored.
 */
export function indexKeys(ctx: AttentionContext, w: MlaAttentionWeights, x: Float32Array): Float32Array {
  const { indexHeadDim: dim } = dsaOf(ctx);
  const rows = ctx.batch.ids.length;
  const keys = scratch('dsa-index-keys', rows * dim);
  if (!w.indexer) {
    keys.fill(0);
    return keys;
  }
  productTransB(ctx.engine, rows, dim, ctx.config.hiddenSize, x, w.indexer.wk, keys);
  layerNormRows(keys, rows, dim, w.indexer.kNorm, w.indexer.kNormBias, INDEX_KEY_NORM_EPS);
  ropeIndexHeads(ctx, keys, rows, 1, ctx.positions);
  return keys;
}

/**
 * The cached rows of the sequence that batch row `r` belongs to, position t at (base + t)·width:
 * the KV cache slot's (which the step has already written), or without a cache the batch's own.
 */
function sequenceRows(ctx: AttentionContext, kv: Float32Array, r: number): { rows: Float32Array; base: number; sequence: number } {
  const offsets = ctx.batch.offsets;
  let s = 0;
  while (offsets[s + 1] <= r) s++;
  if (ctx.kv) return { rows: ctx.kv.cache.keys(ctx.kv.layer, ctx.kv.slots ? ctx.kv.slots[s] : s), base: 0, sequence: s };
  const first = offsets[s];
  if (ctx.positions[first] !== 0) throw new Error('sparse attention over a batch without a KV cache needs each sequence to start at position 0');
  return { rows: kv, base: first, sequence: s };
}

/** The `k` positions of the best scores among score[0…count), earlier positions first among equal scores. */
function chooseTop(score: Float32Array, count: number, k: number): Int32Array {
  const sorted = Float32Array.from(score.subarray(0, count)).sort();
  const threshold = sorted[count - k];
  let ties = k;
  for (let t = 0; t < count; t++) if (score[t] > threshold) ties--;
  const out = new Int32Array(k);
  let n = 0;
  for (let t = 0; t < count && n < k; t++) {
    if (score[t] > threshold) out[n++] = t;
    else if (score[t] === threshold && ties > 0) {
      out[n++] = t;
      ties--;
    }
  }
  return out;
}

/**
 * The indexer's choice for each of `sparse` rows: their index queries and head weights, scored
 * against the index keys of every position up to theirs.
 */
function choose(ctx: AttentionContext, indexer: NonNullable<MlaAttentionWeights['indexer']>, sparse: readonly number[], qa: Float32Array, x: Float32Array, kv: Float32Array): Map<number, Int32Array> {
  const { engine, config } = ctx;
  const { indexHeads: heads, indexHeadDim: dim, indexTopK, row, ropeDim } = dsaOf(ctx);
  const keyAt = config.mla!.kvLoraRank + ropeDim;
  const rank = qa.length / ctx.batch.ids.length;
  const hidden = config.hiddenSize;
  const n = sparse.length;
  const qaRows = scratch('dsa-qa', n * rank);
  const xRows = scratch('dsa-x', n * hidden);
  const positions = new Int32Array(n);
  sparse.forEach((r, i) => {
    qaRows.set(qa.subarray(r * rank, (r + 1) * rank), i * rank);
    xRows.set(x.subarray(r * hidden, (r + 1) * hidden), i * hidden);
    positions[i] = ctx.positions[r];
  });
  const queries = scratch('dsa-queries', n * heads * dim);
  productTransB(engine, n, heads * dim, rank, qaRows, indexer.wqB, queries);
  ropeIndexHeads(ctx, queries, n, heads, positions);
  const weights = scratch('dsa-weights', n * heads);
  productTransB(engine, n, heads, hidden, xRows, indexer.weightsProj, weights);
  // torch: (q·k)·dim^-½, relu, then Σ_h w_h·heads^-½·(…)
  const headScale = Math.fround(heads ** -0.5);
  const dotScale = Math.fround(dim ** -0.5);

  const chosen = new Map<number, Int32Array>();
  const offsets = ctx.batch.offsets;
  let keys = scratch('dsa-keys', 0);
  let keysOf = -1;
  sparse.forEach((r, i) => {
    const count = positions[i] + 1;
    const { rows, base, sequence } = sequenceRows(ctx, kv, r);
    if (sequence !== keysOf) {
      // the sequence's index keys up to its last row here, gathered once for all its rows (the
      // rows of a prompt past index_topk share them: each scores a prefix)
      let last = i;
      while (last + 1 < n && sparse[last + 1] < offsets[sequence + 1]) last++;
      const upTo = positions[last] + 1;
      keys = scratch('dsa-keys', upTo * dim);
      engine.kernels.copyBlock(upTo, dim, rows, base * row + keyAt, row, keys, 0, dim);
      keysOf = sequence;
    }
    const dots = scratch('dsa-dots', heads * count);
    engine.gemm(heads, count, dim, queries.subarray(i * heads * dim, (i + 1) * heads * dim), keys.subarray(0, count * dim), dots, { transB: true });
    const score = scratch('dsa-score', count);
    score.fill(0);
    for (let h = 0; h < heads; h++) {
      const wh = Math.fround(weights[i * heads + h] * headScale);
      for (let t = 0; t < count; t++) {
        const d = Math.fround(dots[h * count + t] * dotScale);
        if (d > 0) score[t] += wh * d;
      }
    }
    chosen.set(r, chooseTop(score, count, indexTopK));
  });
  return chosen;
}

/**
 * Rows at a position ≥ index_topk attend to the positions their indexer keeps (or, in a layer
 * without one, those the last indexer chose), written to their rows of `context` (rows × heads ×
 * the cached row's width).
 */
export function attendToChosen(
  ctx: AttentionContext,
  w: MlaAttentionWeights,
  sparse: readonly number[],
  qa: Float32Array | null,
  x: Float32Array,
  absorbed: Float32Array,
  kv: Float32Array,
  scale: number,
  context: Float32Array,
): void {
  const { engine, config } = ctx;
  const { indexTopK: k, row } = dsaOf(ctx);
  const heads = config.numHeads;
  let chosen: Map<number, Int32Array> | undefined;
  if (w.indexer) {
    if (!qa) throw new Error('the sparse-attention indexer needs the q-LoRA projection');
    chosen = choose(ctx, w.indexer, sparse, qa, x, kv);
    ctx.indexChoice = chosen;
  } else {
    chosen = ctx.indexChoice;
  }
  const picked = scratch('dsa-picked', k * row);
  const scores = scratch('dsa-attention-scores', heads * k);
  const at = new Int32Array(k);
  const s = Math.fround(scale);
  for (const r of sparse) {
    const positions = chosen?.get(r);
    if (!positions) throw new Error(`a layer that reuses an earlier layer's sparse-attention choice found none for batch row ${r}: no earlier layer ran an indexer`);
    const { rows, base } = sequenceRows(ctx, kv, r);
    for (let j = 0; j < k; j++) at[j] = base + positions[j];
    engine.kernels.gatherRows(row, at, k, rows, picked);
    const query = absorbed.subarray(r * heads * row, (r + 1) * heads * row);
    engine.gemm(heads, k, row, query, picked, scores, { transB: true });
    for (let i = 0; i < heads * k; i++) scores[i] *= s;
    // each head's row over all k chosen positions (a causal softmax whose one row is the last of k)
    engine.kernels.causalSoftmax(heads, 1, k, k - 1, null, scores);
    engine.gemm(heads, row, k, scores, picked, context.subarray(r * heads * row, (r + 1) * heads * row));
  }
}
