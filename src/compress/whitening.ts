/**
 * Activation-aware truncated SVD (SVD-LLM): minimise ‖(W − Ŵ)Xᵀ‖_F instead of ‖W − Ŵ‖_F.
 *
 * With G = XᵀX = L·Lᵀ (Cholesky, L lower), ‖D·Xᵀ‖² = tr(D·G·Dᵀ) = ‖D·L‖², so the best rank-K Ŵ
 * in output space is (W·L)_K · L⁻¹: truncate the SVD of W·L and undo L on the basis side.
 * When G is not positive definite (too few calibration tokens, dead inputs) it is damped by
 * λ·mean(diag(G)) over a schedule; the result is then optimal for the damped G only.
 */
import type { Engine } from '../engine/types.js';
import { releaseGarbageOf } from '../util/release-garbage.js';

export interface WhitenedFactors {
  /** m×K row-major, U_K·Σ_K of W·L (the same convention as unwhitened factors: A carries Σ) */
  A: Float32Array;
  /** K×d row-major, V_Kᵀ·L⁻¹: the basis in the original input coordinates */
  B: Float32Array;
  /** the K leading singular values of W·L */
  singularValues: Float64Array;
  /** relative damping λ the Cholesky needed (0: none) */
  damping: number;
}

export interface WhiteningOptions {
  dampingSchedule?: number[];
}

/**
 * Rank-K factors of M (m×d, f32 row-major) optimal for ‖(M − A·B)Xᵀ‖ given G = XᵀX (d×d f64).
 * Work runs in f64 because L can be badly conditioned; only the factors are stored as f32.
 */
export function whitenedTruncatedSvd(
  engine: Engine,
  m: number,
  d: number,
  M: Float32Array,
  gram: Float64Array,
  rank: number,
  opts: WhiteningOptions = {},
): WhitenedFactors {
  if (M.length !== m * d) throw new RangeError(`matrix has ${M.length} entries, expected ${m}×${d}`);
  if (gram.length !== d * d) throw new RangeError(`Gram matrix has ${gram.length} entries, expected ${d}×${d} (XᵀX over the ${d} input features)`);
  if (!Number.isInteger(rank) || rank < 1 || rank > Math.min(m, d)) throw new RangeError(`rank ${rank} outside [1, ${Math.min(m, d)}]`);
  const { L, damping } = engine.cholesky(d, gram, opts.dampingSchedule ? { dampingSchedule: opts.dampingSchedule } : {});
  const ML = new Float64Array(m * d);
  engine.gemm(m, d, d, Float64Array.from(M), L, ML);
  const { U, S, Vt } = engine.svdTop(m, d, ML, rank);
  const A = new Float32Array(m * rank);
  for (let i = 0; i < m; i++) for (let j = 0; j < rank; j++) A[i * rank + j] = U[i * rank + j] * S[j];
  // B·L = V_Kᵀ  ⇒  B = V_Kᵀ·L⁻¹ (right-side solve with the lower triangle, in place on Vt)
  engine.solveTriangular(d, rank, L, Vt, { lower: true, side: 'right' });
  return { A, B: Float32Array.from(Vt), singularValues: Float64Array.from(S), damping };
}

/**
 * Σ_e G_e over a group's experts, fetching one Gram at a time: the same sum, in the same order, as
 * sumGrams of all of them, without holding k of them at once (k·d²·8 bytes at real shapes).
 */
export function sumGramsOf(d: number, experts: readonly number[], gramOf: (e: number) => Float64Array): Float64Array {
  const total = new Float64Array(d * d);
  for (const e of experts) {
    let g: Float64Array | undefined = gramOf(e);
    if (g.length !== d * d) throw new RangeError(`Gram matrix of expert ${e} has ${g.length} entries, expected ${d}×${d}`);
    for (let j = 0; j < total.length; j++) total[j] += g[j];
    // a Gram read fresh for this sum is dead now: at real shapes (32 MiB at d = 2048) it goes
    // before the next is read, not with the group's other temporaries
    g = undefined;
    if (experts.length > 1) releaseGarbageOf(d * d * 8);
  }
  return total;
}

/** Σ of several d×d Gram matrices (a group's experts share one whitening). */
export function sumGrams(d: number, grams: readonly Float64Array[]): Float64Array {
  const total = new Float64Array(d * d);
  for (const [i, g] of grams.entries()) {
    if (g.length !== d * d) throw new RangeError(`Gram matrix ${i} has ${g.length} entries, expected ${d}×${d}`);
    for (let j = 0; j < total.length; j++) total[j] += g[j];
  }
  return total;
}
