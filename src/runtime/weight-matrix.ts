/**
 * A weight matrix as held in memory: f32 values, or BF16 bit patterns kept as the checkpoint
 * stores them (half the bytes; products through ForwardKernels.gemmBf16, whose widening is exact).
 */
import type { Engine } from '../engine/types.js';

export type Weights = Float32Array | Uint16Array;

/** out (rows × n) = x (rows × k) · Wᵀ (+ beta·out) for W (n × k) in either form. */
export function productTransB(engine: Engine, rows: number, n: number, k: number, x: Float32Array, w: Weights, out: Float32Array, beta = 0): void {
  if (w instanceof Uint16Array) engine.kernels.gemmBf16(rows, n, k, x, w, out, beta);
  else engine.gemm(rows, n, k, x, w, out, { transB: true, beta });
}

/** `count` BF16 patterns from src[from] widened into dst[to…] (exact: the 16 bits become the upper half). */
function widenBf16Into(src: Uint16Array, from: number, count: number, dst: Float32Array, to: number): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let j = 0; j < count; j++) bits[to + j] = src[from + j] << 16;
}

/** The f32 values of a matrix in either form (BF16 widened exactly; an f32 matrix is returned as it is). */
export function asF32(w: Weights): Float32Array {
  if (w instanceof Float32Array) return w;
  const out = new Float32Array(w.length);
  widenBf16Into(w, 0, w.length, out, 0);
  return out;
}

/**
 * Rows `ids` of a [rows × width] matrix in either form, widened into `out` (ids.length × width):
 * the embedding lookup of a table kept as stored.
 */
export function gatherRows(table: Weights, width: number, ids: ArrayLike<number>, out: Float32Array): void {
  for (let i = 0; i < ids.length; i++) {
    if (table instanceof Float32Array) out.set(table.subarray(ids[i] * width, (ids[i] + 1) * width), i * width);
    else widenBf16Into(table, ids[i] * width, width, out, i * width);
  }
}
