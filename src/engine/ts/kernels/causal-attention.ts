/**
 * ForwardKernels.causalAttention in TypeScript (see src/engine/types.ts): the per-head loop, one
 * product pair per sequence, kv head, group of query heads and causal tile of query rows. The
 * native engine runs the same units, with the same tiling, on its threads (native/attention.cc);
 * `causalAttentionUnits` with the native engine's own products is what that kernel is tested
 * against, bit for bit.
 */
import { EngineError } from '../../types.js';
import { checkDims, checkFloat32, checkWindow } from './check.js';
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
  causalSoftmax(blocks: number, rows: number, cols: number, past: number, window: number | null, scores: Float32Array): void;
  copyBlock(rows: number, cols: number, src: Float32Array, srcOffset: number, srcStride: number, dst: Float32Array, dstOffset: number, dstStride: number): void;
}

/** Checks the arguments as the native kernel does. */
export function checkCausalAttention(
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array,
): void {
  const op = 'causalAttention';
  checkDims(op, { numHeads, numKvHeads, headDim });
  checkWindow(op, window);
  if (numHeads === 0 || numKvHeads === 0 || headDim === 0) throw new EngineError(`${op}: numHeads, numKvHeads and headDim must be at least 1`);
  if (numHeads % numKvHeads !== 0) throw new EngineError(`${op}: numHeads = ${numHeads} is not a multiple of numKvHeads = ${numKvHeads}`);
  if (!Number.isFinite(scale)) throw new EngineError(`${op}: scale must be finite`);
  if (!(offsets instanceof Int32Array)) throw new EngineError(`${op}: offsets must be an Int32Array`);
  if (offsets.length < 1 || offsets[0] !== 0) throw new EngineError(`${op}: offsets must start at 0 (one more entry than sequences)`);
  for (let s = 0; s + 1 < offsets.length; s++) {
    if (offsets[s + 1] < offsets[s]) throw new EngineError(`${op}: offsets must not decrease (sequence ${s})`);
  }
  const rows = offsets[offsets.length - 1];
  const sizes: Array<[string, Float32Array, number]> = [
    ['q', q, numHeads],
    ['k', k, numKvHeads],
    ['v', v, numKvHeads],
    ['context', context, numHeads],
  ];
  for (const [name, array, heads] of sizes) {
    checkFloat32(op, name, array);
    if (array.length !== rows * heads * headDim) {
      throw new EngineError(`${op}: ${name} has ${array.length} elements but is ${rows}×${heads * headDim} (check offsets, heads and headDim)`);
    }
  }
  for (const [name, array] of [['q', q], ['k', k], ['v', v]] as const) {
    if (array.buffer === context.buffer && array.byteOffset < context.byteOffset + context.byteLength && context.byteOffset < array.byteOffset + array.byteLength) {
      throw new EngineError(`${op}: context shares memory with ${name}`);
    }
  }
}

/** The per-head loop on the given products (arguments already checked). */
export function causalAttentionUnits(
  products: AttentionProducts,
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array,
): void {
  const qWidth = numHeads * headDim;
  const kvWidth = numKvHeads * headDim;
  const groupSize = numHeads / numKvHeads;
  // the query heads that share a kv head go through one pair of products (rows [g][i]), as many
  // at a time as keep the score block under SCORE_BLOCK values; query rows go in tiles: tile rows
  // i0..i0+tr see keys only up to i0 + tr (and, with a window, from i0 − window + 1), so the
  // products skip the masked upper triangle (62% of the full work for 4 tiles)
  const headsFor = (len: number) => Math.max(1, Math.min(groupSize, Math.floor(SCORE_BLOCK / (len * len))));
  const tileFor = (len: number) => Math.max(QUERY_TILE, Math.ceil(len / 8));
  // buffers for the largest unit of the batch, allocated once
  let qhSize = 0;
  let khSize = 0;
  let scoreSize = 0;
  for (let s = 0; s + 1 < offsets.length; s++) {
    const len = offsets[s + 1] - offsets[s];
    if (len === 0) continue;
    const block = headsFor(len) * Math.min(tileFor(len), len);
    qhSize = Math.max(qhSize, block * headDim);
    khSize = Math.max(khSize, len * headDim);
    scoreSize = Math.max(scoreSize, block * len);
  }
  const qh = new Float32Array(qhSize);
  const kh = new Float32Array(khSize);
  const vh = new Float32Array(khSize);
  const scores = new Float32Array(scoreSize);
  const oh = new Float32Array(qhSize);
  for (let s = 0; s + 1 < offsets.length; s++) {
    const start = offsets[s];
    const len = offsets[s + 1] - start;
    if (len === 0) continue;
    const heads = headsFor(len);
    const tile = tileFor(len);
    for (let kvHead = 0; kvHead < numKvHeads; kvHead++) {
      for (let g0 = 0; g0 < groupSize; g0 += heads) {
        const hb = Math.min(heads, groupSize - g0);
        for (let i0 = 0; i0 < len; i0 += tile) {
          const tr = Math.min(tile, len - i0);
          const keyEnd = i0 + tr;
          const keyFirst = window === null ? 0 : Math.max(0, i0 - window + 1);
          const kc = keyEnd - keyFirst;
          const m = hb * tr;
          products.copyBlock(kc, headDim, k, (start + keyFirst) * kvWidth + kvHead * headDim, kvWidth, kh, 0, headDim);
          products.copyBlock(kc, headDim, v, (start + keyFirst) * kvWidth + kvHead * headDim, kvWidth, vh, 0, headDim);
          for (let g = 0; g < hb; g++) {
            const col = (kvHead * groupSize + g0 + g) * headDim;
            products.copyBlock(tr, headDim, q, (start + i0) * qWidth + col, qWidth, qh, g * tr * headDim, headDim);
          }
          const blockScores = scores.subarray(0, m * kc);
          const blockOut = oh.subarray(0, m * headDim);
          products.gemm(m, kc, headDim, qh.subarray(0, m * headDim), kh.subarray(0, kc * headDim), blockScores, true, scale);
          products.causalSoftmax(hb, tr, kc, i0 - keyFirst, window, blockScores);
          products.gemm(m, headDim, kc, blockScores, vh.subarray(0, kc * headDim), blockOut, false, 1);
          for (let g = 0; g < hb; g++) {
            const col = (kvHead * groupSize + g0 + g) * headDim;
            products.copyBlock(tr, headDim, oh, g * tr * headDim, headDim, context, (start + i0) * qWidth + col, qWidth);
          }
        }
      }
    }
  }
}

const tsProducts: AttentionProducts = {
  gemm: (m, n, kk, a, b, c, transB, alpha) => gemmBlock(m, n, kk, a, false, b, transB, c, alpha, 0, 0, m, 0, n),
  causalSoftmax,
  copyBlock,
};

export function causalAttention(
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array,
): void {
  checkCausalAttention(numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, context);
  causalAttentionUnits(tsProducts, numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, context);
}
