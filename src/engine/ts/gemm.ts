/**
 * GEMM entry point: validates, then runs the packed kernel on the calling thread or, for large
 * products, across the worker pool.
 */
import type { FloatArray, GemmOptions } from '../types.js';
import { gemmBlock, type AnyFloatArray } from './gemm-kernel.js';
import type { GemmPool } from './gemm-parallel.js';
import { checkDims, checkFiniteNumber, checkLength, checkNoOverlap, checkSameDtype } from './validate.js';

export function gemm(
  pool: GemmPool | null,
  m: number, n: number, k: number,
  a: FloatArray, b: FloatArray, c: FloatArray,
  opts: GemmOptions = {},
): void {
  const op = 'gemm';
  checkDims(op, { m, n, k });
  checkSameDtype(op, { a, b, c });
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  checkLength(op, transA ? 'a (transA: k×m)' : 'a (m×k)', a, transA ? k : m, transA ? m : k);
  checkLength(op, transB ? 'b (transB: n×k)' : 'b (k×n)', b, transB ? n : k, transB ? k : n);
  checkLength(op, 'c (m×n)', c, m, n);
  checkFiniteNumber(op, 'alpha', alpha);
  checkFiniteNumber(op, 'beta', beta);
  checkNoOverlap(op, 'c', c, 'a', a);
  checkNoOverlap(op, 'c', c, 'b', b);
  gemmUnchecked(pool, m, n, k, a, transA, b, transB, c, alpha, beta);
}

/**
 * For internal callers that already know the shapes are right. Dtypes may be mixed (e.g. f32 A,
 * f64 C for a Gram matrix in double precision).
 */
export function gemmUnchecked(
  pool: GemmPool | null,
  m: number, n: number, k: number,
  a: AnyFloatArray, transA: boolean,
  b: AnyFloatArray, transB: boolean,
  c: AnyFloatArray, alpha = 1, beta = 0,
): void {
  if (pool && pool.wants(m, n, k)) pool.run(m, n, k, a, transA, b, transB, c, alpha, beta);
  else gemmBlock(m, n, k, a, transA, b, transB, c, alpha, beta, 0, m, 0, n);
}
