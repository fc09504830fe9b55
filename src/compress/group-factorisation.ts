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
  /**
   * The caller hands `gram` over: once the Cholesky has read it, its memory is reused for the
   * d×d product (m ≥ d), so the group holds one d×d f64 fewer at its peak. Its content is then
   * overwritten; never set this for a Gram someone else still reads (a cache's).
   */
  gramIsScratch?: boolean;
  dampingSchedule?: number[];
}

function trace(d: number, g: Float64Array): number {
  let t = 0;
  for (let i = 0; i < d; i++) t += g[i * d + i];
  return t;
}

/** Rows of the stack converted to f64 (and whitened) at a time: ~8 MiB per block. (2 MiB blocks
 * measured no lower peak at Qwen3-30B-A3B shapes, within the run-to-run spread, and a slower
 * spectrum pass: 145.7 s against 129.1 s for the whole layer.) */
function blockRows(m: number, d: number): number {
  return Math.max(1, Math.min(m, Math.floor(2 ** 20 / d)));
}

/** The group's matrices: one stacked m×d array, or its experts' p×d matrices in stacking order. */
export type GroupRows = Float32Array | readonly Float32Array[];

/** Rows [r0, r1) of the stack into `dst` (f64, exactly (r1 − r0)·d), read across the experts. */
function copyRows(M: GroupRows, d: number, r0: number, r1: number, dst: Float64Array): void {
  if (!Array.isArray(M)) {
    dst.set((M as Float32Array).subarray(r0 * d, r1 * d));
    return;
  }
  const parts = M as readonly Float32Array[];
  const p = parts[0].length / d;
  for (let r = r0; r < r1; ) {
    const e = Math.floor(r / p);
    const upto = Math.min(r1, (e + 1) * p);
    dst.set(parts[e].subarray((r - e * p) * d, (upto - e * p) * d), (r - r0) * d);
    r = upto;
  }
}

/**
 * Rows [r0, r1) of the stack as f64, whitened (·L) when L is given, into `out` (f64, at least
 * (r1 − r0)·d; `raw` is the conversion buffer of the same size when whitening).
 */
function rowsF64(engine: Engine, d: number, M: GroupRows, r0: number, r1: number, L: Float64Array | undefined, raw: Float64Array, out: Float64Array): Float64Array {
  const rows = r1 - r0;
  const x = out.subarray(0, rows * d);
  if (!L) {
    copyRows(M, d, r0, r1, x);
    return x;
  }
  const r = raw.subarray(0, rows * d);
  copyRows(M, d, r0, r1, r);
  engine.gemm(rows, d, d, r, L, x);
  return x;
}

/**
 * Factorise the stacked group M (m×d f32, or its experts' matrices in stacking order, which saves
 * the stacked copy) and keep the basis rows for ranks up to `cap`.
 */
export function factoriseGroup(engine: Engine, m: number, d: number, M: GroupRows, cap: number, opts: FactoriseOptions = {}): GroupFactorisation {
  const entries = Array.isArray(M) ? (M as readonly Float32Array[]).reduce((a, x) => a + x.length, 0) : (M as Float32Array).length;
  if (entries !== m * d || (Array.isArray(M) && (M as readonly Float32Array[]).some((x) => x.length !== (M as readonly Float32Array[])[0].length))) {
    throw new RangeError(`group matrix has ${entries} entries, expected ${m}×${d}${Array.isArray(M) ? ' in experts of equal shape' : ''}`);
  }
  const r = Math.min(m, d);
  if (!Number.isInteger(cap) || cap < 1 || cap > r) throw new RangeError(`rank cap ${cap} outside [1, ${r}]`);
  let whitening: WhiteningUsed = 'none';
  let damping = 0;
  let L: Float64Array | undefined;
  let spare: Float64Array | undefined;
  if (opts.gram) {
    if (opts.gram.length !== d * d) throw new RangeError(`Gram matrix has ${opts.gram.length} entries, expected ${d}×${d}`);
    if (!(trace(d, opts.gram) > 0)) {
      whitening = 'identity-fallback';
    } else {
      const chol = engine.cholesky(d, opts.gram, opts.dampingSchedule ? { dampingSchedule: opts.dampingSchedule } : {});
      L = chol.L;
      damping = chol.damping;
      whitening = 'cholesky';
      if (opts.gramIsScratch) spare = opts.gram;
    }
  }

  const energies = new Float64Array(r);
  let Vt: Float64Array;
  // Peak memory: the stack is never held in f64 as a whole when m ≥ d: its (whitened) rows go
  // through one block at a time into XᵀX (blocked accumulation: the same sums up to rounding).
  // Each temporary is let go as soon as it is used up. The eigensolver works in place on the d×d
  // product and returns only the cap leading vectors (eigSymTop): with L, the product and those
  // vectors are the largest things alive together (a full eigSym added ≈ 5.5·d² f64, 163 MiB
  // at d = 2048, more than one group's Gram matrices).
  const block = blockRows(m, d);
  if (m >= d) {
    let C: Float64Array | undefined = spare ?? new Float64Array(d * d);
    spare = undefined;
    {
      const raw = new Float64Array(L ? block * d : 0);
      const out = new Float64Array(block * d);
      for (let r0 = 0; r0 < m; r0 += block) {
        const r1 = Math.min(m, r0 + block);
        const x = rowsF64(engine, d, M, r0, r1, L, raw, out);
        engine.syrk(d, r1 - r0, x, C, { trans: true, beta: r0 === 0 ? 0 : 1 });
      }
    }
    const { values, rows } = engine.eigSymTop(d, C, cap);
    C = undefined;
    for (let j = 0; j < r; j++) energies[j] = Math.max(0, values[j]);
    Vt = rows;
  } else {
    // X (m×d f64) is needed twice here (XXᵀ, then Uᵀ·X); m < d keeps it the smaller side
    let X: Float64Array | undefined = new Float64Array(m * d);
    {
      const raw = new Float64Array(L ? block * d : 0);
      for (let r0 = 0; r0 < m; r0 += block) {
        const r1 = Math.min(m, r0 + block);
        rowsF64(engine, d, M, r0, r1, L, raw, X.subarray(r0 * d, r1 * d));
      }
    }
    const C = new Float64Array(m * m);
    engine.syrk(m, d, X, C);
    const { values, vectors } = engine.eigSym(m, C);
    for (let j = 0; j < r; j++) energies[j] = Math.max(0, values[j]);
    const U = new Float64Array(m * cap);
    for (let i = 0; i < m; i++) for (let j = 0; j < cap; j++) U[i * cap + j] = vectors[i * m + j];
    // v_j = Xᵀu_j / σ_j; directions with no energy carry nothing: left at zero
    Vt = new Float64Array(cap * d);
    engine.gemm(cap, d, m, U, X, Vt, { transA: true });
    X = undefined;
    const floor = 1e-12 * Math.sqrt(energies[0]);
    for (let j = 0; j < cap; j++) {
      const s = Math.sqrt(energies[j]);
      const scale = s > floor ? 1 / s : 0;
      for (let i = 0; i < d; i++) Vt[j * d + i] *= scale;
    }
  }
  // B·L = Vᵀ  ⇒  B = Vᵀ·L⁻¹ (the basis in the original input coordinates)
  if (L) engine.solveTriangular(d, cap, L, Vt, { lower: true, side: 'right' });
  return { energies, basis: Float32Array.from(Vt), cap, whitening, damping };
}
