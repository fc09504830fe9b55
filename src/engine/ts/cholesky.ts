/**
 * Cholesky factorisation A = L·Lᵀ in f64, blocked right-looking: each 64-column block is factored
 * left-looking (row-contiguous dot products), then the trailing matrix gets one symmetric rank-64
 * update through the packed (and, when large, multi-threaded) GEMM kernel.
 *
 * Not positive definite → retry on A + λ·mean(diag(A))·I over the damping schedule, then a clear
 * EngineError.
 */
import { EngineError, type CholeskyOptions, type CholeskyResult } from '../types.js';
import type { GemmPool } from './gemm-parallel.js';
import { syrkLowerUnchecked } from './syrk.js';
import { checkDim, checkFloat64, checkLength } from './validate.js';

export const DEFAULT_DAMPING_SCHEDULE: readonly number[] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

const BLOCK = 64;

export function cholesky(pool: GemmPool | null, n: number, a: Float64Array, opts: CholeskyOptions = {}): CholeskyResult {
  const op = 'cholesky';
  checkDim(op, 'n', n);
  checkFloat64(op, 'a', a);
  checkLength(op, 'a (n×n)', a, n, n);
  const schedule = opts.dampingSchedule ?? DEFAULT_DAMPING_SCHEDULE;
  for (const lambda of schedule) {
    if (!Number.isFinite(lambda) || lambda < 0) {
      throw new EngineError(`cholesky: dampingSchedule entries must be finite and >= 0, got ${String(lambda)}`);
    }
  }
  checkFiniteLowerTriangle(n, a);

  const L = new Float64Array(n * n);
  if (factorShifted(pool, n, a, 0, L)) return { L, damping: 0 };

  let diagSum = 0;
  for (let i = 0; i < n; i++) diagSum += a[i * n + i];
  const meanDiag = diagSum / n;
  if (!(meanDiag > 0)) {
    throw new EngineError(
      `cholesky: the ${n}×${n} matrix is not positive definite and its mean diagonal is ${meanDiag}, so damping ` +
        'cannot help; a Gram/covariance matrix must have a positive diagonal: check how it was accumulated',
    );
  }
  for (const lambda of schedule) {
    if (lambda > 0 && factorShifted(pool, n, a, lambda * meanDiag, L)) return { L, damping: lambda };
  }
  const last = schedule.length > 0 ? schedule[schedule.length - 1] : 0;
  throw new EngineError(
    `cholesky: the ${n}×${n} matrix is not positive definite, even after damping with λ = ${last} ` +
      '(A + λ·mean(diag(A))·I); pass a dampingSchedule with larger λ values, or check the input matrix',
  );
}

function checkFiniteLowerTriangle(n: number, a: Float64Array): void {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) {
        throw new EngineError(`cholesky: a[${i}][${j}] is ${v}; the matrix must be finite`);
      }
    }
  }
}

/** Factors A + shift·I into L (overwritten). Returns false when a pivot is not positive. */
function factorShifted(pool: GemmPool | null, n: number, a: Float64Array, shift: number, L: Float64Array): boolean {
  L.fill(0);
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = 0; j <= i; j++) L[row + j] = a[row + j];
    L[row + i] += shift;
  }
  let panel = new Float64Array(0);
  let update = new Float64Array(0);

  for (let j0 = 0; j0 < n; j0 += BLOCK) {
    const j1 = Math.min(n, j0 + BLOCK);
    // Columns j0..j1 of L, for the diagonal block and the panel below it. Earlier blocks' updates
    // are already folded into L, so sums only run over this block's columns.
    for (let j = j0; j < j1; j++) {
      const rj = j * n;
      let d = L[rj + j];
      for (let p = j0; p < j; p++) d -= L[rj + p] * L[rj + p];
      if (!(d > 0)) return false; // also catches NaN
      d = Math.sqrt(d);
      L[rj + j] = d;
      for (let i = j + 1; i < n; i++) {
        const ri = i * n;
        let s = L[ri + j];
        for (let p = j0; p < j; p++) s -= L[ri + p] * L[rj + p];
        L[ri + j] = s / d;
      }
    }

    const rest = n - j1;
    if (rest === 0) break;
    const nb = j1 - j0;
    // Trailing update L[j1:, j1:] -= P·Pᵀ (lower triangle), P = L[j1:, j0:j1] copied contiguous.
    if (panel.length < rest * nb) panel = new Float64Array(rest * nb);
    if (update.length < rest * rest) update = new Float64Array(rest * rest);
    const P = panel.subarray(0, rest * nb);
    const T = update.subarray(0, rest * rest);
    for (let i = 0; i < rest; i++) P.set(L.subarray((j1 + i) * n + j0, (j1 + i) * n + j1), i * nb);
    syrkLowerUnchecked(pool, rest, nb, P, false, T);
    for (let i = 0; i < rest; i++) {
      const dst = (j1 + i) * n + j1;
      const src = i * rest;
      for (let j = 0; j <= i; j++) L[dst + j] -= T[src + j];
    }
  }
  return true;
}
