/**
 * Randomized top-r SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4 with a Gaussian sketch):
 * range finder Y = A·Ω with l = r + oversample columns, q power iterations re-orthonormalised at
 * every half-step (plain (AAᵀ)^q·A·Ω loses the small directions to rounding), then the exact SVD
 * of the small l×n matrix B = Qᵀ·A.
 *
 * Everything is kept in "rows" layout (Yᵀ, Qᵀ: l×m) so QR walks contiguous rows and every
 * product is one GEMM with transpose flags. Ω = gaussianMatrix(n, l, seed), shared with the
 * other engines.
 */
import { EngineError, type FloatArray, type RandomizedSvdOptions, type SvdResult } from '../types.js';
import { gaussianMatrix } from '../random.js';
import { gemmUnchecked } from './gemm.js';
import type { GemmPool } from './gemm-parallel.js';
import { orthonormalizeRows } from './qr.js';
import { castLike, svdFactor } from './svd.js';
import { checkDims, checkLength, checkRank } from './validate.js';

export function svdRandomized(
  pool: GemmPool | null, m: number, n: number, a: FloatArray, r: number, opts: RandomizedSvdOptions = {},
): SvdResult {
  const op = 'svdRandomized';
  checkDims(op, { m, n });
  checkLength(op, 'a (m×n)', a, m, n);
  checkRank(op, r, m, n);
  const oversample = opts.oversample ?? 16;
  const powerIterations = opts.powerIterations ?? 2;
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(oversample) || oversample < 0) {
    throw new EngineError(`${op}: oversample must be a non-negative integer, got ${String(oversample)}`);
  }
  if (!Number.isSafeInteger(powerIterations) || powerIterations < 0) {
    throw new EngineError(`${op}: powerIterations must be a non-negative integer, got ${String(powerIterations)}`);
  }
  if (!Number.isFinite(seed)) throw new EngineError(`${op}: seed must be a finite number, got ${String(seed)}`);

  const l = Math.min(r + oversample, m, n);
  const omega = gaussianMatrix(n, l, seed); // n×l

  let Yt = new Float64Array(l * m);
  gemmUnchecked(pool, l, m, n, omega, true, a, true, Yt); // (A·Ω)ᵀ = Ωᵀ·Aᵀ
  let Qt = orthonormalizeRows(l, m, Yt);
  const Zt = new Float64Array(l * n);
  for (let q = 0; q < powerIterations; q++) {
    gemmUnchecked(pool, l, n, m, Qt, false, a, false, Zt); // (Aᵀ·Q)ᵀ = Qᵀ·A
    const Zq = orthonormalizeRows(l, n, Zt);
    Yt = new Float64Array(l * m);
    gemmUnchecked(pool, l, m, n, Zq, false, a, true, Yt); // (A·Z)ᵀ = Zᵀ·Aᵀ
    Qt = orthonormalizeRows(l, m, Yt);
  }

  const B = new Float64Array(l * n);
  gemmUnchecked(pool, l, n, m, Qt, false, a, false, B); // B = Qᵀ·A, l×n
  const small = svdFactor(pool, l, n, B, r);
  const U = new Float64Array(m * r);
  gemmUnchecked(pool, m, r, l, Qt, true, small.U, false, U); // U = Q·U_B
  return castLike(a, { U, S: small.S, Vt: small.Vt });
}
