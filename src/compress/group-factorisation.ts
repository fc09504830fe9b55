/**
 * One factorisation per group, made once and used for everything: its spectrum drives effective
 * rank, allocation and structure choice, and its leading directions are the basis at whatever
 * rank the allocation then gives (no second SVD per group).
 *
 * With a Gram matrix G = XᵀX of the group's calibration inputs (summed over its experts, each
 * token weighted as calibration collected it), the factorisation is of the whitened stack
 * M·L (G = L·Lᵀ, SVD-LLM): σ² is then output-space energy ‖·Xᵀ‖², so the best rank-K basis in
 * output space is B_K = V_Kᵀ·L⁻¹ and the error of rank K is Σ_{j≥K} σ_j² exactly. Without G it is
 * the plain SVD of M (B_K = V_Kᵀ, the paper's factors).
 *
 * Computed through the smaller Gram of X (XᵀX or XXᵀ, f64) and a symmetric eigendecomposition:
 * the same spectrum and right vectors as an SVD of X for a fraction of its cost. Squaring costs
 * precision only in singular values below ~1e-8·σ₁, far below anything a rank budget keeps.
 *
 * A group that calibration never reached (G = 0) cannot be whitened: it falls back to the plain
 * SVD and says so (`whitening: 'identity-fallback'`), instead of failing in the Cholesky.
 */
import type { Engine } from '../engine/types.js';

export type WhiteningUsed = 'none' | 'cholesky' | 'identity-fallback';

export interface GroupFactorisation {
  /** σ_j² of the (whitened) stack, descending, min(m, d) values */
  energies: Float64Array;
  /** basis rows for every rank up to `cap`: cap×d f32 row-major; B_K is the first K rows */
  basis: Float32Array;
  cap: number;
  whitening: WhiteningUsed;
  /** relative damping the Cholesky needed (0: none) */
  damping: number;
}

export interface FactoriseOptions {
  /** Σ of the group's experts' Gram matrices (d×d f64): whiten with it; absent: plain SVD */
  gram?: Float64Array;
  dampingSchedule?: number[];
}

function trace(d: number, g: Float64Array): number {
  let t = 0;
  for (let i = 0; i < d; i++) t += g[i * d + i];
  return t;
}

/** Factorise the stacked group M (m×d f32) and keep the basis rows for ranks up to `cap`. */
export function factoriseGroup(engine: Engine, m: number, d: number, M: Float32Array, cap: number, opts: FactoriseOptions = {}): GroupFactorisation {
  if (M.length !== m * d) throw new RangeError(`group matrix has ${M.length} entries, expected ${m}×${d}`);
  const r = Math.min(m, d);
  if (!Number.isInteger(cap) || cap < 1 || cap > r) throw new RangeError(`rank cap ${cap} outside [1, ${r}]`);
  let whitening: WhiteningUsed = 'none';
  let damping = 0;
  let L: Float64Array | undefined;
  // the stack in f64: whitened (M·L) or as it is; one f64 copy of M besides X at most
  let X: Float64Array | undefined;
  if (opts.gram) {
    if (opts.gram.length !== d * d) throw new RangeError(`Gram matrix has ${opts.gram.length} entries, expected ${d}×${d}`);
    if (!(trace(d, opts.gram) > 0)) {
      whitening = 'identity-fallback';
    } else {
      const chol = engine.cholesky(d, opts.gram, opts.dampingSchedule ? { dampingSchedule: opts.dampingSchedule } : {});
      L = chol.L;
      damping = chol.damping;
      whitening = 'cholesky';
      X = new Float64Array(m * d);
      engine.gemm(m, d, d, Float64Array.from(M), L, X);
    }
  }
  X ??= Float64Array.from(M);

  const energies = new Float64Array(r);
  const Vt = new Float64Array(cap * d);
  // Peak memory: each temporary is let go as soon as it is used up (references cleared), so that
  // the stack, its d×d Gram and the eigenvectors are never all held at once at real shapes.
  if (m >= d) {
    let C: Float64Array | undefined = new Float64Array(d * d);
    engine.syrk(d, m, X, C, { trans: true });
    X = undefined;
    let eig: ReturnType<Engine['eigSym']> | undefined = engine.eigSym(d, C);
    C = undefined;
    const { values, vectors } = eig;
    eig = undefined;
    for (let j = 0; j < r; j++) energies[j] = Math.max(0, values[j]);
    for (let j = 0; j < cap; j++) for (let i = 0; i < d; i++) Vt[j * d + i] = vectors[i * d + j];
  } else {
    const C = new Float64Array(m * m);
    engine.syrk(m, d, X, C);
    const { values, vectors } = engine.eigSym(m, C);
    for (let j = 0; j < r; j++) energies[j] = Math.max(0, values[j]);
    const U = new Float64Array(m * cap);
    for (let i = 0; i < m; i++) for (let j = 0; j < cap; j++) U[i * cap + j] = vectors[i * m + j];
    // v_j = Xᵀu_j / σ_j; directions with no energy carry nothing: left at zero
    engine.gemm(cap, d, m, U, X, Vt, { transA: true });
    const floor = 1e-12 * Math.sqrt(energies[0]);
    for (let j = 0; j < cap; j++) {
      const s = Math.sqrt(energies[j]);
      const scale = s > floor ? 1 / s : 0;
      for (let i = 0; i < d; i++) Vt[j * d + i] *= scale;
    }
  }
  X = undefined;
  // B·L = Vᵀ  ⇒  B = Vᵀ·L⁻¹ (the basis in the original input coordinates)
  if (L) engine.solveTriangular(d, cap, L, Vt, { lower: true, side: 'right' });
  return { energies, basis: Float32Array.from(Vt), cap, whitening, damping };
}
