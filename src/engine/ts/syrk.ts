/**
 * Symmetric rank-k update C = alpha·AᵀA + beta·C (trans) or alpha·AAᵀ + beta·C. Only the lower
 * triangle is computed (by row blocks of the packed GEMM kernel, about half the flops of a full
 * product) and then mirrored, so C is exactly symmetric.
 */
import type { FloatArray, SyrkOptions } from '../types.js';
import { gemmBlock, type AnyFloatArray } from './gemm-kernel.js';
import type { GemmPool } from './gemm-parallel.js';
import { checkDims, checkFiniteNumber, checkLength, checkNoOverlap, checkSameDtype } from './validate.js';

/** Row-block height: small enough that the triangle's waste (the diagonal blocks) stays low. */
const ROW_BLOCK = 64;

export function syrk(pool: GemmPool | null, n: number, k: number, a: FloatArray, c: FloatArray, opts: SyrkOptions = {}): void {
  const op = 'syrk';
  checkDims(op, { n, k });
  checkSameDtype(op, { a, c });
  const trans = opts.trans ?? false;
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  checkLength(op, trans ? 'a (trans: k×n)' : 'a (n×k)', a, trans ? k : n, trans ? n : k);
  checkLength(op, 'c (n×n)', c, n, n);
  checkFiniteNumber(op, 'alpha', alpha);
  checkFiniteNumber(op, 'beta', beta);
  checkNoOverlap(op, 'c', c, 'a', a);
  syrkUnchecked(pool, n, k, a, trans, c, alpha, beta);
}

/** Internal entry: dtypes may be mixed (f32 A into an f64 Gram matrix). */
export function syrkUnchecked(
  pool: GemmPool | null, n: number, k: number, a: AnyFloatArray, trans: boolean, c: AnyFloatArray, alpha = 1, beta = 0,
): void {
  syrkLowerUnchecked(pool, n, k, a, trans, c, alpha, beta);
  mirrorLowerToUpper(n, c);
}

/** Like syrkUnchecked but leaves the strict upper triangle of C untouched (Cholesky's update). */
export function syrkLowerUnchecked(
  pool: GemmPool | null, n: number, k: number, a: AnyFloatArray, trans: boolean, c: AnyFloatArray, alpha = 1, beta = 0,
): void {
  // C = op(A)·op(A)ᵀ with op(A) n×k: as a GEMM, the first operand is A (transposed when trans)
  // and the second is the same array read transposed the other way.
  if (pool && pool.wants(n, n, k)) {
    pool.run(n, n, k, a, trans, a, !trans, c, alpha, beta, true);
  } else {
    for (let r0 = 0; r0 < n; r0 += ROW_BLOCK) {
      const r1 = Math.min(n, r0 + ROW_BLOCK);
      gemmBlock(n, n, k, a, trans, a, !trans, c, alpha, beta, r0, r1, 0, r1);
    }
  }
}

/** Copies the strict lower triangle onto the upper one, in tiles so the strided reads stay in cache. */
export function mirrorLowerToUpper(n: number, c: AnyFloatArray): void {
  const TILE = 32;
  for (let i0 = 0; i0 < n; i0 += TILE) {
    const i1 = Math.min(n, i0 + TILE);
    for (let j0 = i0; j0 < n; j0 += TILE) {
      const j1 = Math.min(n, j0 + TILE);
      for (let i = i0; i < i1; i++) {
        const row = i * n;
        for (let j = Math.max(j0, i + 1); j < j1; j++) c[row + j] = c[j * n + i];
      }
    }
  }
}
