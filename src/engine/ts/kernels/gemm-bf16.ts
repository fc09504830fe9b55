/**
 * ForwardKernels.gemmBf16 in TypeScript: c (m×n) = a·bᵀ + beta·c for a (m×k, f32) and b (n×k) a
 * weight matrix kept as the checkpoint stores it, BF16 (the upper 16 bits of an f32, so widening
 * is exact). Each row of b is widened once into a row buffer and multiplied with every row of a,
 * so b is read once per call; sums run in f64 and round to f32 once, as the TypeScript gemm does.
 */
import { f32BitsToBf16 } from '../../../io/dtype.js';
import { EngineError, type MatmulActivations } from '../../types.js';
import { checkDims, checkFloat32, sharesMemory } from './check.js';

/** The checks the native addon makes too. */
function checkGemmBf16(op: string, m: number, n: number, k: number, a: unknown, b: unknown, c: unknown, beta: number): void {
  checkDims(op, { m, n, k });
  checkFloat32(op, 'a', a);
  if (!(b instanceof Uint16Array)) throw new EngineError(`${op}: b must be a Uint16Array`);
  checkFloat32(op, 'c', c);
  if (!Number.isFinite(beta)) throw new EngineError(`${op}: beta must be a finite number, got ${String(beta)}`);
  const shape = (name: string, arr: ArrayLike<number>, rows: number, cols: number, hint: string) => {
    if (arr.length !== rows * cols) throw new EngineError(`${op}: ${name} holds ${arr.length} values, expected ${rows}×${cols} (check ${hint})`);
  };
  shape('a', a, m, k, 'm and k: a is m×k');
  shape('b', b, n, k, 'n and k: b is n×k');
  shape('c', c, m, n, 'm and n: c is m×n');
  if (sharesMemory(c, a)) {
    throw new EngineError(`${op}: c shares memory with a; pass a separate output array`);
  }
  if (sharesMemory(c, b)) {
    throw new EngineError(`${op}: c shares memory with b; pass a separate output array`);
  }
}

/**
 * a's values rounded to BF16 (to nearest, ties to even; NaN stays NaN), kept as f32: what the
 * matmul activations 'bf16' multiply (MatmulActivations). A new array.
 */
export function roundedToBf16(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  const src = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const dst = new Uint32Array(out.buffer);
  for (let i = 0; i < a.length; i++) dst[i] = f32BitsToBf16(src[i]) << 16;
  return out;
}

export function gemmBf16(
  m: number, n: number, k: number, a: Float32Array, b: Uint16Array, c: Float32Array, beta: number, activations: MatmulActivations = 'f32',
): void {
  checkGemmBf16('gemmBf16', m, n, k, a, b, c, beta);
  if (activations === 'bf16') a = roundedToBf16(a);
  const row = new Float32Array(k);
  const bits = new Uint32Array(row.buffer);
  for (let j = 0; j < n; j++) {
    const base = j * k;
    for (let p = 0; p < k; p++) bits[p] = b[base + p] << 16;
    rowsTimesWeightRow(m, n, k, a, row, j, c, beta);
  }
}

/**
 * Column j of c (m×n) = a (m×k) · row (one row of b, widened) + beta·c's: each sum in f64, rounded
 * to f32 once. What the TypeScript products against weights kept as stored share.
 */
export function rowsTimesWeightRow(m: number, n: number, k: number, a: Float32Array, row: Float32Array, j: number, c: Float32Array, beta: number): void {
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    let sum = 0;
    for (let p = 0; p < k; p++) sum += a[ai + p] * row[p];
    const at = i * n + j;
    c[at] = beta === 0 ? sum : sum + beta * c[at];
  }
}
