/**
 * Exact SVD through the f64 Gram matrix of the smaller side and a symmetric eigensolver:
 * for A (m×n, m ≥ n): AᵀA = V·Σ²·Vᵀ, then U = A·V·Σ⁻¹ (the wide case mirrors this).
 *
 * The Gram step squares the condition number: singular values carry an absolute error of about
 * 1e-16·σ_max²/σ, and directions with σ far below σ_max lose orthogonality in U = A·V/σ. Those
 * directions (σ < 1e-3·σ_max, or exactly zero) take σ = ‖A·v‖ instead of √λ, are
 * re-orthonormalised by Gram–Schmidt against the earlier ones and completed with seeded random
 * directions when the column is null, so U and V are always orthonormal and U·Σ·Vᵀ reproduces A
 * to working precision even for rank-deficient A. singularValues() (no vectors) keeps √λ.
 */
import type { FloatArray, SvdResult } from '../types.js';
import { fillGaussian, Xoshiro128 } from '../random.js';
import { eigSymUnchecked, eigSymValues } from './eig-sym.js';
import type { AnyFloatArray } from './gemm-kernel.js';
import { gemmUnchecked } from './gemm.js';
import type { GemmPool } from './gemm-parallel.js';
import { syrkUnchecked } from './syrk.js';
import { transpose } from './transpose.js';
import { checkDims, checkLength, checkRank } from './validate.js';

/** Below this fraction of σ_max, A·v/σ is not trusted to be orthogonal to the earlier vectors. */
const REORTHOGONALIZE_BELOW = 1e-3;

export interface SvdF64 {
  U: Float64Array;
  S: Float64Array;
  Vt: Float64Array;
}

export function svd(pool: GemmPool | null, m: number, n: number, a: FloatArray): SvdResult {
  checkSvdArgs('svd', m, n, a);
  return castLike(a, svdFactor(pool, m, n, a, Math.min(m, n)));
}

export function svdTop(pool: GemmPool | null, m: number, n: number, a: FloatArray, r: number): SvdResult {
  checkSvdArgs('svdTop', m, n, a);
  checkRank('svdTop', r, m, n);
  return castLike(a, svdFactor(pool, m, n, a, r));
}

export function singularValues(pool: GemmPool | null, m: number, n: number, a: FloatArray): Float64Array {
  checkSvdArgs('singularValues', m, n, a);
  const tall = m >= n;
  const small = tall ? n : m;
  const G = new Float64Array(small * small);
  syrkUnchecked(pool, small, tall ? m : n, a, tall, G);
  const values = eigSymValues(small, G);
  return values.map((v) => Math.sqrt(Math.max(v, 0)));
}

function checkSvdArgs(op: string, m: number, n: number, a: FloatArray): void {
  checkDims(op, { m, n });
  checkLength(op, 'a (m×n)', a, m, n);
}

export function castLike(a: FloatArray, f: SvdF64): SvdResult {
  const rank = f.S.length;
  if (a instanceof Float64Array) return { U: f.U, S: f.S, Vt: f.Vt, rank };
  return { U: Float32Array.from(f.U), S: Float32Array.from(f.S), Vt: Float32Array.from(f.Vt), rank };
}

/** Top-r SVD in f64 of A (m×n, any float dtype). Shapes are trusted. */
export function svdFactor(pool: GemmPool | null, m: number, n: number, a: AnyFloatArray, r: number): SvdF64 {
  const tall = m >= n;
  const small = tall ? n : m;
  const big = tall ? m : n;

  const G = new Float64Array(small * small);
  syrkUnchecked(pool, small, big, a, tall, G); // AᵀA (tall) or AAᵀ (wide)
  const eig = eigSymUnchecked(small, G, true);

  const S = new Float64Array(r);
  for (let j = 0; j < r; j++) S[j] = Math.sqrt(Math.max(eig.values[j], 0));

  // Et (r×small): the top r eigenvectors as rows — V's rows of Vt (tall) or U's columns (wide).
  const Et = new Float64Array(r * small);
  for (let j = 0; j < r; j++) for (let x = 0; x < small; x++) Et[j * small + x] = eig.vectors[x * small + j];

  // The other side, as rows: Uᵀ = Vtᵣ·Aᵀ (tall) or Vt = Uᵣᵀ·A (wide), then unit length.
  const Xt = new Float64Array(r * big);
  if (tall) gemmUnchecked(pool, r, m, n, Et, false, a, true, Xt);
  else gemmUnchecked(pool, r, n, m, Et, false, a, false, Xt);
  refineSmallSingularValues(r, small, big, Et, Xt, S);
  orthonormalizeSingularRows(r, big, Xt, S);

  if (tall) return { U: transpose(r, m, Xt), S, Vt: Et };
  return { U: transpose(r, m, Et), S, Vt: Xt };
}

/**
 * Below REORTHOGONALIZE_BELOW·σ_max, √λ from the Gram matrix is dominated by its rounding
 * (≈ 1e-8·σ_max for a true zero), while ‖A·v_j‖ (the row norm of Xt) is the energy A actually has
 * along v_j. Those σ_j take the row norm, and that tail is re-sorted (rows of Et and Xt moved
 * along) so S stays descending and U·diag(S)·Vt reproduces A to working precision.
 */
function refineSmallSingularValues(r: number, small: number, big: number, Et: Float64Array, Xt: Float64Array, S: Float64Array): void {
  const sigmaMax = r > 0 ? S[0] : 0;
  let first = 0;
  while (first < r && S[first] > REORTHOGONALIZE_BELOW * sigmaMax) first++;
  if (first >= r) return;
  const tail = Array.from({ length: r - first }, (_, t) => {
    const j = first + t;
    const row = Xt.subarray(j * big, (j + 1) * big);
    return { sigma: Math.sqrt(dot(row, row)), e: Et.slice(j * small, (j + 1) * small), x: row.slice() };
  });
  tail.sort((p, q) => q.sigma - p.sigma);
  tail.forEach((entry, t) => {
    const j = first + t;
    S[j] = entry.sigma;
    Et.set(entry.e, j * small);
    Xt.set(entry.x, j * big);
  });
}

/**
 * Rows of Xt are A·v_j (norm ≈ σ_j). Rows with σ_j well below σ_max are Gram–Schmidt'ed (twice)
 * against all earlier rows; null rows get a seeded random direction first.
 */
function orthonormalizeSingularRows(r: number, p: number, Xt: Float64Array, S: Float64Array): void {
  const sigmaMax = r > 0 ? S[0] : 0;
  let rng: Xoshiro128 | null = null;
  for (let j = 0; j < r; j++) {
    const row = Xt.subarray(j * p, (j + 1) * p);
    const norm = Math.sqrt(dot(row, row));
    const trusted = S[j] > REORTHOGONALIZE_BELOW * sigmaMax && norm > 0;
    if (trusted) {
      scale(row, 1 / norm);
      continue;
    }
    for (let attempt = 0; ; attempt++) {
      let before = Math.sqrt(dot(row, row));
      if (!(before > 0) || attempt > 0) {
        rng ??= new Xoshiro128(0x5eed + j);
        fillGaussian(row, rng);
        before = Math.sqrt(dot(row, row));
      }
      for (let pass = 0; pass < 2; pass++) {
        for (let i = 0; i < j; i++) {
          const prev = Xt.subarray(i * p, (i + 1) * p);
          axpy(-dot(prev, row), prev, row);
        }
      }
      const after = Math.sqrt(dot(row, row));
      // Nearly all of it lay in the span of earlier rows: its direction is noise, draw another.
      if (after > 1e-8 * before || attempt >= 8) {
        scale(row, 1 / after);
        break;
      }
    }
  }
}

function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

function axpy(alpha: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) y[i] += alpha * x[i];
}

function scale(x: Float64Array, s: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= s;
}
