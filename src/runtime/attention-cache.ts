/**
 * The KV cache's side of attention, for every kind of attention block (attention.ts,
 * mla-attention.ts): whether a batch starts fresh, appending a batch's keys and values, and
 * attending over a cache slot's past and the new rows in one kernel call.
 */
import type { TokenBatch } from './batch.js';
import type { AttentionContext } from './attention.js';
import { chunkPieces } from './attention-chunks.js';

/**
 * True when no sequence of the batch has a cached past: each then attends to its own new rows
 * only. The cache decides it (KvCache.allEmpty), as it decides what a fresh prefill stores.
 */
export function freshPrefill(kv: NonNullable<AttentionContext['kv']>): boolean {
  // without slots the batch's sequences are the cache's, one a slot (runDecoder checks their number)
  return kv.cache.allEmpty(kv.slots);
}

/** This layer's keys and values of every sequence of the batch, appended to its cache slot. */
export function writeToCache(kv: NonNullable<AttentionContext['kv']>, batch: TokenBatch, k: Float32Array, v: Float32Array): void {
  const { cache, layer, slots } = kv;
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    const len = batch.offsets[s + 1] - batch.offsets[s];
    if (len === 0) continue;
    const slot = slots ? slots[s] : s;
    cache.writeFresh(layer, slot, k, v, batch.offsets[s], len);
  }
}

/**
 * This layer's new keys and values of every sequence of the batch appended after its cached past;
 * returns each sequence's past (the positions held before them).
 */
export function appendToCache(ctx: AttentionContext, kv: NonNullable<AttentionContext['kv']>, k: Float32Array, v: Float32Array): Int32Array {
  const { batch } = ctx;
  const { cache, layer, slots } = kv;
  const sequences = batch.offsets.length - 1;
  const past = new Int32Array(sequences);
  for (let s = 0; s < sequences; s++) {
    const start = batch.offsets[s];
    const len = batch.offsets[s + 1] - start;
    const slot = slots ? slots[s] : s;
    // the positions this layer holds, the sequence's last ones (a windowed layer's window is
    // relative to each row, so attending over them is attending over the whole past)
    past[s] = cache.held(slot, layer);
    if (len > 0) cache.write(layer, slot, past[s], k, v, start, len);
  }
  return past;
}

/**
 * Attention of sequences that continue those in the KV cache (decoding, a prompt's prefill into
 * the cache): this layer's new keys and values are appended, and each sequence's rows attend to
 * its cached past and its own rows, the whole batch in one kernel call (ForwardKernels.cachedAttention).
 */
export function attendWithCache(
  ctx: AttentionContext,
  kv: NonNullable<AttentionContext['kv']>,
  /** valueHeadDim: the width of a value head and of each head's output, where it differs from headDim */
  shape: { heads: number; kvHeads: number; headDim: number; valueHeadDim?: number },
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  context: Float32Array,
  scale: number,
  /** one sink logit per query head (gpt-oss), null: none */
  sinks: Float32Array | null = null,
): void {
  const past = appendToCache(ctx, kv, k, v);
  attendCached(ctx, kv, shape, ctx.batch.offsets, past, q, context, scale, sinks);
}

/**
 * The kernel call of attendWithCache for rows already appended (`past`: each sequence's positions
 * before them): sequence s's queries are rows offsets[s]… of q, its first rows of the step, which
 * may be fewer than the step appended (DSA runs only those below index_topk here). A chunked
 * layer's rows go in pieces, one a chunk (attention-chunks.ts), each attending from its chunk's
 * start among the positions the cache holds.
 */
export function attendCached(
  ctx: AttentionContext,
  kv: NonNullable<AttentionContext['kv']>,
  shape: { heads: number; kvHeads: number; headDim: number; valueHeadDim?: number },
  offsets: Int32Array,
  past: Int32Array,
  q: Float32Array,
  context: Float32Array,
  scale: number,
  sinks: Float32Array | null = null,
): void {
  const { heads, kvHeads, headDim } = shape;
  const { cache, layer, slots } = kv;
  const sequences = offsets.length - 1;
  const slotOf = (s: number) => (slots ? slots[s] : s);
  const pieces = ctx.attentionChunk
    ? chunkPieces(offsets, past, Int32Array.from({ length: sequences }, (_, s) => cache.lengths[slotOf(s)] - past[s]), ctx.attentionChunk)
    : { offsets, sequence: Int32Array.from({ length: sequences }, (_, s) => s), past, from: null };
  const entries = pieces.sequence.length;
  const headStride = new Int32Array(entries);
  const keys: Float32Array[] = [];
  const values: Float32Array[] = [];
  for (let e = 0; e < entries; e++) {
    const slot = slotOf(pieces.sequence[e]);
    keys.push(cache.keys(layer, slot));
    values.push(cache.values(layer, slot));
    // positions per kv head in a head-major cache buffer (0: keys/values are row-major)
    headStride[e] = cache.headDim === headDim ? cache.allocated(slot, layer) : 0;
  }
  ctx.engine.kernels.cachedAttention(heads, kvHeads, headDim, pieces.offsets, pieces.past, keys, values, headStride, q, scale, ctx.slidingWindow, context, sinks, pieces.from, shape.valueHeadDim ?? null);
}
