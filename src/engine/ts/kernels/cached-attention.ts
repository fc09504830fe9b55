/**
 * ForwardKernels.cachedAttention in TypeScript (see src/engine/types.ts): attention of sequences
 * that continue those in a KV cache, one product pair per sequence, kv head, group of query heads
 * and causal tile of query rows. The native engine runs the same units on its threads
 * (native/attention.cc); `cachedAttentionUnits` with the native engine's own products is what that
 * kernel is tested against, bit for bit.
 */
import { EngineError } from '../../types.js';
import { checkDims, checkedValueHeadDim, checkFloat32, checkSinks, checkWindow, sharesMemory } from './check.js';
import { causalSoftmax } from './causal-softmax.js';
import { copyBlock } from './rows.js';
import { gemmBlock } from '../gemm-kernel.js';

/** Largest score block (values) computed at once: 8 M floats = 32 MiB. */
export const SCORE_BLOCK = 8 * 1024 * 1024;

/** Fewest query rows per causal tile: smaller tiles skip more masked work but make thinner GEMMs. */
export const QUERY_TILE = 64;

/** The products and kernels the loop runs on (an engine's, or the ts ones). */
export interface AttentionProducts {
  /** C (m×n) = alpha·A·op(B) (B n×k when transB, else k×n), C overwritten */
  gemm(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, transB: boolean, alpha: number): void;
  /** `sinks`: one attention sink a block (see causal-softmax.ts), only when the loop is given sinks */
  causalSoftmax(blocks: number, rows: number, cols: number, past: number, window: number | null, scores: Float32Array, sinks?: Float32Array): void;
  copyBlock(rows: number, cols: number, src: Float32Array, srcOffset: number, srcStride: number, dst: Float32Array, dstOffset: number, dstStride: number): void;
}

/** Each sequence's cache: what cachedAttention reads besides q. */
export interface CachedKeys {
  /** positions cached before this call, per sequence */
  past: Int32Array;
  /** per sequence: every position (past ones, then the new rows, already written) */
  keys: Float32Array[];
  values: Float32Array[];
  /** per sequence: positions per kv head of a head-major buffer (keys and values alike), or 0 for row-major rows of numKvHeads·headDim (values: ·valueHeadDim) */
  headStride: Int32Array;
  /** per sequence: the first position its rows attend to (chunked attention: their chunk's start); absent: 0 */
  from?: Int32Array | null;
}

/** Checks the arguments as the native kernel does. */
export function checkCachedAttention(
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array, cache: CachedKeys,
  q: Float32Array, scale: number, window: number | null, context: Float32Array, sinks?: Float32Array | null,
  valueHeadDim?: number | null,
): void {
  const op = 'cachedAttention';
  checkDims(op, { numHeads, numKvHeads, headDim });
  const vDim = checkedValueHeadDim(op, valueHeadDim, headDim);
  checkWindow(op, window);
  if (numHeads === 0 || numKvHeads === 0 || headDim === 0) throw new EngineError(`${op}: numHeads, numKvHeads and headDim must be at least 1`);
  if (numHeads % numKvHeads !== 0) throw new EngineError(`${op}: numHeads = ${numHeads} is not a multiple of numKvHeads = ${numKvHeads}`);
  if (!Number.isFinite(scale)) throw new EngineError(`${op}: scale must be finite`);
  if (!(offsets instanceof Int32Array)) throw new EngineError(`${op}: offsets must be an Int32Array`);
  if (offsets.length < 1 || offsets[0] !== 0) throw new EngineError(`${op}: offsets must start at 0 (one more entry than sequences)`);
  const sequences = offsets.length - 1;
  if (!(cache.past instanceof Int32Array)) throw new EngineError(`${op}: past must be an Int32Array`);
  if (!(cache.headStride instanceof Int32Array)) throw new EngineError(`${op}: headStride must be an Int32Array`);
  if (!Array.isArray(cache.keys) || !Array.isArray(cache.values)) throw new EngineError(`${op}: keys and values must be arrays of Float32Array (one per sequence)`);
  if (cache.past.length !== sequences || cache.headStride.length !== sequences || cache.keys.length !== sequences || cache.values.length !== sequences) {
    throw new EngineError(`${op}: past, keys, values and headStride must have one entry per sequence (${sequences})`);
  }
  if (cache.from != null) {
    if (!(cache.from instanceof Int32Array)) throw new EngineError(`${op}: from must be an Int32Array`);
    if (cache.from.length !== sequences) throw new EngineError(`${op}: from must have one entry per sequence (${sequences})`);
  }
  const rows = offsets[sequences];
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  checkFloat32(op, 'q', q);
  checkFloat32(op, 'context', context);
  for (const [name, array, width] of [['q', q, qWidth], ['context', context, numHeads * vDim]] as const) {
    if (array.length !== rows * width) throw new EngineError(`${op}: ${name} has ${array.length} elements but is ${rows}×${width} (check offsets, heads, headDim and valueHeadDim)`);
  }
  if (sharesMemory(q, context)) throw new EngineError(`${op}: context shares memory with q`);
  for (let s = 0; s < sequences; s++) {
    if (offsets[s + 1] < offsets[s]) throw new EngineError(`${op}: offsets must not decrease (sequence ${s})`);
    const past = cache.past[s];
    const stride = cache.headStride[s];
    if (past < 0 || stride < 0) throw new EngineError(`${op}: past and headStride must not be negative (sequence ${s})`);
    const from = cache.from?.[s] ?? 0;
    if (from < 0 || from > past) throw new EngineError(`${op}: from[${s}] = ${from} is not within 0..past = ${past}`);
    const len = offsets[s + 1] - offsets[s];
    if (len === 0) continue;
    const total = past + len;
    if (stride !== 0 && stride < total) throw new EngineError(`${op}: headStride[${s}] = ${stride} holds fewer than the sequence's ${total} positions`);
    for (const [name, array, dim] of [['keys', cache.keys[s], headDim], ['values', cache.values[s], vDim]] as const) {
      const needed = stride === 0 ? total * numKvHeads * dim : numKvHeads * stride * dim;
      if (!(array instanceof Float32Array)) throw new EngineError(`${op}: ${name}[${s}] must be a Float32Array`);
      if (array.length < needed) {
        throw new EngineError(`${op}: ${name} has ${array.length} elements but at least ${needed} are needed (check past, headStride and the new rows: ${name}[s] holds every position of sequence s)`);
      }
      if (sharesMemory(array, context)) throw new EngineError(`${op}: context shares memory with ${name}`);
    }
  }
  checkSinks(op, sinks, numHeads, context);
}

/**
 * The per-sequence loop on the given products (arguments already checked); causalAttention's too
 * (sequences with no past, reading their own rows). With `sinks` (one logit per query head) each
 * unit's softmax takes its heads' sinks.
 */
export function cachedAttentionUnits(
  products: AttentionProducts,
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array, cache: CachedKeys,
  q: Float32Array, scale: number, window: number | null, context: Float32Array, sinks: Float32Array | null = null,
  valueHeadDim: number = headDim,
): void {
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  const vDim = valueHeadDim;
  const vWidth = numKvHeads * vDim;
  const contextWidth = numHeads * vDim;
  const groupSize = numHeads / numKvHeads;
  // the query heads that share a kv head go through one pair of products (rows [g][i]), as many
  // at a time as keep the score block under SCORE_BLOCK values; query rows go in tiles: tile rows
  // i0..i0+tr see keys only up to past + i0 + tr (and, with a window, from past + i0 − window + 1;
  // with `from`, from there), so the products skip the masked upper triangle (62% of the full work
  // for 4 tiles)
  const headsFor = (len: number, total: number) => Math.max(1, Math.min(groupSize, Math.floor(SCORE_BLOCK / (len * total))));
  const tileFor = (len: number) => Math.max(QUERY_TILE, Math.ceil(len / 8));
  // buffers for the largest unit of the batch, allocated once
  let qhSize = 0;
  let ohSize = 0;
  let khSize = 0;
  let vhSize = 0;
  let scoreSize = 0;
  for (let s = 0; s + 1 < offsets.length; s++) {
    const len = offsets[s + 1] - offsets[s];
    if (len === 0) continue;
    const total = cache.past[s] + len;
    const block = headsFor(len, total) * Math.min(tileFor(len), len);
    qhSize = Math.max(qhSize, block * headDim);
    ohSize = Math.max(ohSize, block * vDim);
    if (!cache.headStride[s]) {
      khSize = Math.max(khSize, total * headDim);
      vhSize = Math.max(vhSize, total * vDim);
    }
    scoreSize = Math.max(scoreSize, block * total);
  }
  const qh = new Float32Array(qhSize);
  const oh = new Float32Array(ohSize);
  const scores = new Float32Array(scoreSize);
  const kh = new Float32Array(khSize);
  const vh = new Float32Array(vhSize);
  for (let s = 0; s + 1 < offsets.length; s++) {
    const start = offsets[s];
    const len = offsets[s + 1] - start;
    if (len === 0) continue;
    const past = cache.past[s];
    const stride = cache.headStride[s];
    const heads = headsFor(len, past + len);
    const tile = tileFor(len);
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      for (let g0 = 0; g0 < groupSize; g0 += heads) {
        const hb = Math.min(heads, groupSize - g0);
        for (let i0 = 0; i0 < len; i0 += tile) {
          const tr = Math.min(tile, len - i0);
          const keyEnd = past + i0 + tr;
          // every row of the tile sees none before `from`, so its columns start there at the earliest
          const keyFirst = Math.max(cache.from?.[s] ?? 0, window === null ? 0 : past + i0 - window + 1);
          const kc = keyEnd - keyFirst;
          const m = hb * tr;
          let kBlock: Float32Array;
          let vBlock: Float32Array;
          if (stride) {
            // head-major: this head's positions are contiguous rows of headDim (values: of vDim)
            const at = kvHead * stride + keyFirst;
            kBlock = cache.keys[s].subarray(at * headDim, (at + kc) * headDim);
            vBlock = cache.values[s].subarray(at * vDim, (at + kc) * vDim);
          } else {
            products.copyBlock(kc, headDim, cache.keys[s], keyFirst * kvWidth + kvHead * headDim, kvWidth, kh, 0, headDim);
            products.copyBlock(kc, vDim, cache.values[s], keyFirst * vWidth + kvHead * vDim, vWidth, vh, 0, vDim);
            kBlock = kh.subarray(0, kc * headDim);
            vBlock = vh.subarray(0, kc * vDim);
          }
          for (let g = 0; g < hb; g++) {
            const col = (kvHead * groupSize + g0 + g) * headDim;
            products.copyBlock(tr, headDim, q, (start + i0) * qWidth + col, qWidth, qh, g * tr * headDim, headDim);
          }
          const blockScores = scores.subarray(0, m * kc);
          const blockOut = oh.subarray(0, m * vDim);
          products.gemm(m, kc, headDim, qh.subarray(0, m * headDim), kBlock, blockScores, true, scale);
          // the unit's blocks are query heads kvHead·groupSize + g0 … + hb − 1, in order
          const h0 = kvHead * groupSize + g0;
          products.causalSoftmax(hb, tr, kc, past + i0 - keyFirst, window, blockScores, sinks?.subarray(h0, h0 + hb));
          products.gemm(m, vDim, kc, blockScores, vBlock, blockOut, false, 1);
          for (let g = 0; g < hb; g++) {
            const col = (kvHead * groupSize + g0 + g) * vDim;
            products.copyBlock(tr, vDim, oh, g * tr * vDim, vDim, context, (start + i0) * contextWidth + col, contextWidth);
          }
        }
      }
    }
  }
}

/** The TypeScript products the ts kernels run the loop on. */
export const tsProducts: AttentionProducts = {
  gemm: (m, n, kk, a, b, c, transB, alpha) => gemmBlock(m, n, kk, a, false, b, transB, c, alpha, 0, 0, m, 0, n),
  causalSoftmax,
  copyBlock,
};

export function cachedAttention(
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  past: Int32Array, keys: Float32Array[], values: Float32Array[], headStride: Int32Array,
  q: Float32Array, scale: number, window: number | null, context: Float32Array, sinks?: Float32Array | null, from?: Int32Array | null,
  valueHeadDim?: number | null,
): void {
  const cache = { past, keys, values, headStride, from };
  checkCachedAttention(numHeads, numKvHeads, headDim, offsets, cache, q, scale, window, context, sinks, valueHeadDim);
  cachedAttentionUnits(tsProducts, numHeads, numKvHeads, headDim, offsets, cache, q, scale, window, context, sinks ?? null, valueHeadDim ?? headDim);
}
