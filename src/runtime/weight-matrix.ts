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

/** The f32 values of a matrix in either form (BF16 widened exactly; an f32 matrix is returned as it is). */
export function asF32(w: Weights): Float32Array {
  if (w instanceof Float32Array) return w;
  const out = new Float32Array(w.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < w.length; i++) bits[i] = w[i] << 16;
  return out;
}

/**
 * Rows `ids` of a [rows × width] matrix in either form, widened into `out` (ids.length × width):
 * the embedding lookup of a table kept as stored.
 */
export function gatherRows(table: Weights, width: number, ids: ArrayLike<number>, out: Float32Array): void {
  if (table instanceof Float32Array) {
    for (let i = 0; i < ids.length; i++) out.set(table.subarray(ids[i] * width, (ids[i] + 1) * width), i * width);
    return;
  }
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < ids.length; i++) {
    const from = ids[i] * width;
    const to = i * width;
    for (let j = 0; j < width; j++) bits[to + j] = table[from + j] << 16;
  }
}
