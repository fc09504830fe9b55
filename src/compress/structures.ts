/**
 * The two group structures beyond per-expert factors and a shared input-side basis
 * (group-factorisation.ts), each with the spectrum that drives water-filling and structure choice.
 *
 * Matrices are out×in (p×d) as everywhere in compress/: for gate/up p is the expert width and d the
 * hidden size, for down the other way round.
 *
 * **Shared output-side basis.** W_e ≈ U·C_e with U (p×K, orthonormal columns) shared by the
 * group's k experts and C_e (K×d) per expert: r·(p + k·d) parameters per rank, against r·(d + k·p)
 * for the input-side basis; it is the cheaper side when p > d (gate/up of Mixtral-like models,
 * down of fine-grained ones). Activation-aware: minimise Σ_e ‖(W_e − U·C_e)X_eᵀ‖² with each
 * expert's own Gram G_e = X_eᵀX_e. For fixed orthonormal U the optimal C_e is UᵀW_e whatever G_e
 * (the residual (I − UUᵀ)W_e is orthogonal to U's columns in output space), and the error is
 * tr((I − UUᵀ)·S) with S = Σ_e W_e·G_e·W_eᵀ (p×p): U = S's top eigenvectors, and the error at
 * rank K is exactly the sum of S's discarded eigenvalues. Without Grams (G_e = I) it is the SVD
 * of [W_1 … W_k].
 *
 * **Shared base plus per-expert delta (D²-MoE-like).** W_e ≈ W̄ + A_e·B_e with W̄ the
 * routing-frequency-weighted mean of the group (p·d parameters per group) and each delta
 * W_e − W̄ factored on its own (whitened by the expert's Gram, shrunk towards the group's as the
 * refit does), so each expert has its own rank and costs p + d per rank. It pays only when the
 * experts are close to their mean; the structure choice measures whether they are.
 */
import type { Engine } from '../engine/types.js';
import { factoriseGroup, type GroupFactorisation } from './group-factorisation.js';

export interface OutputBasisFactorisation {
  /** eigenvalues of S = Σ_e W_e·G_e·W_eᵀ (descending, p values): output energy per rank */
  energies: Float64Array;
  /** U's first `cap` columns, p×cap row-major */
  basis: Float32Array;
  cap: number;
  /** whether S used calibration Grams (false: raw weights, or no token reached the group) */
  whitened: boolean;
}

/**
 * S = Σ_e W_e·G_e·W_eᵀ (G_e = I when `grams` is absent) and its eigendecomposition; the basis
 * keeps the leading `cap` eigenvectors. W_e are p×d f32, G_e d×d f64.
 */
export function factoriseOutputBasis(engine: Engine, p: number, d: number, matrices: readonly Float32Array[], cap: number, grams?: readonly Float64Array[]): OutputBasisFactorisation {
  if (!Number.isInteger(cap) || cap < 1 || cap > p) throw new RangeError(`rank cap ${cap} outside [1, ${p}]`);
  const S = new Float64Array(p * p);
  const T = new Float64Array(p * d);
  let whitened = grams !== undefined;
  if (grams) {
    let trace = 0;
    for (const G of grams) for (let i = 0; i < d; i++) trace += G[i * d + i];
    whitened = trace > 0;
  }
  matrices.forEach((M, j) => {
    if (M.length !== p * d) throw new RangeError(`expert matrix has ${M.length} entries, expected ${p}×${d}`);
    const W = Float64Array.from(M);
    if (whitened) {
      const G = (grams as readonly Float64Array[])[j];
      if (G.length !== d * d) throw new RangeError(`Gram matrix has ${G.length} entries, expected ${d}×${d}`);
      engine.gemm(p, d, d, W, G, T);
      engine.gemm(p, p, d, T, W, S, { transB: true, beta: 1 });
    } else {
      engine.syrk(p, d, W, S, { beta: 1 });
    }
  });
  symmetrise(p, S);
  const { values, vectors } = engine.eigSym(p, S);
  const energies = new Float64Array(p);
  for (let j = 0; j < p; j++) energies[j] = Math.max(0, values[j]);
  const basis = new Float32Array(p * cap);
  for (let i = 0; i < p; i++) for (let j = 0; j < cap; j++) basis[i * cap + j] = vectors[i * p + j];
  return { energies, basis, cap, whitened };
}

/** S = Σ W·G·Wᵀ is symmetric; the products leave rounding asymmetry that eigSym should not see */
function symmetrise(n: number, S: Float64Array): void {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (S[i * n + j] + S[j * n + i]);
      S[i * n + j] = v;
      S[j * n + i] = v;
    }
  }
}

/** U_K (p×K) as its own array: the first K columns of the stored p×cap basis. */
export function outputBasisColumns(f: OutputBasisFactorisation, p: number, K: number): Float32Array {
  if (K < 1 || K > f.cap) throw new RangeError(`rank ${K} outside [1, ${f.cap}]`);
  const U = new Float32Array(p * K);
  for (let i = 0; i < p; i++) for (let j = 0; j < K; j++) U[i * K + j] = f.basis[i * f.cap + j];
  return U;
}

/** C_e = U_Kᵀ·W_e (K×d): the optimal coefficients for an orthonormal U under any Gram. */
export function outputCoefficients(engine: Engine, p: number, d: number, K: number, U: Float32Array, W: Float32Array): Float32Array {
  const C = new Float32Array(K * d);
  engine.gemm(K, d, p, U, W, C, { transA: true });
  return C;
}

/** Σ_e f_e·W_e / Σ_e f_e (the plain mean when no expert was routed). */
export function frequencyWeightedMean(p: number, d: number, matrices: readonly Float32Array[], frequencies: readonly number[]): Float32Array {
  const total = frequencies.reduce((a, f) => a + f, 0);
  const w = total > 0 ? frequencies.map((f) => f / total) : frequencies.map(() => 1 / frequencies.length);
  const mean = new Float64Array(p * d);
  matrices.forEach((M, j) => {
    if (w[j] === 0) return;
    for (let i = 0; i < mean.length; i++) mean[i] += w[j] * M[i];
  });
  return Float32Array.from(mean);
}

export interface BaseDeltaFactorisation {
  /** W̄, p×d */
  base: Float32Array;
  /** per expert, the (whitened) factorisation of W_e − W̄ (input-side basis of one expert) */
  deltas: GroupFactorisation[];
  /** per expert, the Gram its delta was whitened with (for the coefficients), or none */
  grams: Array<Float64Array | undefined>;
}

/**
 * W̄ and each expert's delta factorisation. `gramOf(j)` gives the Gram the j-th expert's delta is
 * fitted in (its own, shrunk towards the group's), or undefined for raw weights.
 */
export function factoriseBaseDelta(
  engine: Engine,
  p: number,
  d: number,
  matrices: readonly Float32Array[],
  frequencies: readonly number[],
  cap: number,
  gramOf: (j: number) => Float64Array | undefined,
  dampingSchedule?: number[],
): BaseDeltaFactorisation {
  const base = frequencyWeightedMean(p, d, matrices, frequencies);
  const grams: Array<Float64Array | undefined> = [];
  const deltas = matrices.map((M, j) => {
    const D = new Float32Array(p * d);
    for (let i = 0; i < D.length; i++) D[i] = M[i] - base[i];
    const G = gramOf(j);
    grams.push(G);
    return factoriseGroup(engine, p, d, D, cap, { ...(G ? { gram: G } : {}), ...(dampingSchedule ? { dampingSchedule } : {}) });
  });
  return { base, deltas, grams };
}
