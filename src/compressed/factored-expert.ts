/**
 * Running compressed experts directly. A compressed matrix W ≈ A·B + unvec(P·η) (A p×K, B K×d)
 * is applied to x (rows × d) either factored — y = (x·Bᵀ)·Aᵀ plus the residual term — or by
 * materialising W once and doing one dense product, whichever costs fewer multiply-adds for the
 * rows at hand:
 *
 *   factored:     rows·K·(d + p) + residual
 *                 residual 'tile': rows·(d + p + q) — P·η is constant on q contiguous runs of the
 *                   row-major p×d matrix, so (R·x)_i is a sum of run values × prefix-sum spans of x;
 *                 residual 'random': p·d to scatter R once + rows·p·d;
 *   materialised: p·K·d (+ p·d for the residual) once, then rows·p·d.
 *
 * With few rows (a cold expert) factored wins; a hot expert at a high rank is materialised.
 */
import type { Engine } from '../engine/types.js';
import { createProjection, type ProjectionDescriptor } from '../residual/projection.js';
import { siluMulInPlace } from '../runtime/numerics.js';
import type { ExpertWeights } from '../runtime/weights.js';
import { CompressedFormatError } from '../compress/output/block.js';

/** y (rows × p) = x (rows × d) · Wᵀ */
export interface LinearOperator {
  readonly p: number;
  readonly d: number;
  apply(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void;
}

export class DenseLinear implements LinearOperator {
  constructor(
    readonly weight: Float32Array,
    readonly p: number,
    readonly d: number,
  ) {
    if (weight.length !== p * d) throw new CompressedFormatError(`dense matrix has ${weight.length} values, expected ${p}×${d}`);
  }

  apply(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    engine.gemm(rows, this.p, this.d, x, this.weight, out, { transB: true });
  }
}

export interface FactoredMatrix {
  p: number;
  d: number;
  rank: number;
  /** B, rank × d */
  basis: Float32Array;
  /** A, p × rank */
  coefficients: Float32Array;
  residual?: { descriptor: ProjectionDescriptor; vector: Float32Array };
}

export type ApplyMode = 'auto' | 'factored' | 'materialised';

/** W = A·B + unvec(P·η) as f32, p × d. */
export function materialise(engine: Engine, m: FactoredMatrix): Float32Array {
  const W = new Float32Array(m.p * m.d);
  engine.gemm(m.p, m.d, m.rank, m.coefficients, m.basis, W);
  if (m.residual) createProjection(m.residual.descriptor).addReconstruction(W, m.residual.vector);
  return W;
}

/** Multiply-adds of the two ways of applying `m` to `rows` rows. */
export function applyCosts(m: FactoredMatrix, rows: number): { factored: number; materialised: number } {
  const { p, d, rank: K } = m;
  let factored = rows * K * (d + p);
  let materialised = p * K * d + rows * p * d;
  if (m.residual) {
    factored += m.residual.descriptor.scheme === 'tile' ? rows * (d + p + m.residual.descriptor.q) : p * d + rows * p * d;
    materialised += p * d;
  }
  return { factored, materialised };
}

export class FactoredLinear implements LinearOperator {
  private dense: Float32Array | null = null;
  private scatteredResidual: Float32Array | null = null;

  constructor(
    readonly matrix: FactoredMatrix,
    private readonly mode: ApplyMode = 'auto',
  ) {
    const { p, d, rank, basis, coefficients } = matrix;
    if (basis.length !== rank * d || coefficients.length !== p * rank) {
      throw new CompressedFormatError(`factors do not match p=${p}, d=${d}, rank=${rank} (basis ${basis.length}, coefficients ${coefficients.length} values)`);
    }
    if (matrix.residual && matrix.residual.descriptor.length !== p * d) {
      throw new CompressedFormatError(`residual descriptor covers ${matrix.residual.descriptor.length} entries, the matrix has ${p * d}`);
    }
  }

  get p(): number {
    return this.matrix.p;
  }

  get d(): number {
    return this.matrix.d;
  }

  /** which path `apply` takes for this many rows */
  pathFor(rows: number): 'factored' | 'materialised' {
    if (this.dense || this.mode === 'materialised') return 'materialised';
    if (this.mode === 'factored') return 'factored';
    const cost = applyCosts(this.matrix, rows);
    return cost.materialised < cost.factored ? 'materialised' : 'factored';
  }

  apply(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    const { p, d, rank } = this.matrix;
    if (this.pathFor(rows) === 'materialised') {
      this.dense ??= materialise(engine, this.matrix);
      engine.gemm(rows, p, d, x, this.dense, out, { transB: true });
      return;
    }
    const t = new Float32Array(rows * rank);
    engine.gemm(rows, rank, d, x, this.matrix.basis, t, { transB: true });
    engine.gemm(rows, p, rank, t, this.matrix.coefficients, out, { transB: true });
    const residual = this.matrix.residual;
    if (!residual) return;
    if (residual.descriptor.scheme === 'tile') {
      addTileResidual(residual.descriptor, residual.vector, p, d, x, rows, out);
    } else {
      this.scatteredResidual ??= createProjection(residual.descriptor).reconstruct(residual.vector);
      engine.gemm(rows, p, d, x, this.scatteredResidual, out, { transB: true, beta: 1 });
    }
  }
}

/**
 * out (rows × p) += x · Rᵀ for R = unvec(P·η) with P's 'tile' buckets: bucket b covers the
 * row-major entries [⌊b·L/q⌋, ⌊(b+1)·L/q⌋) with the value η_b/√|b| (the contract of
 * src/residual/projection.ts). Per row of x: one prefix sum, then each bucket's span per matrix row.
 */
export function addTileResidual(desc: ProjectionDescriptor, eta: Float32Array, p: number, d: number, x: Float32Array, rows: number, out: Float32Array): void {
  const { q, length } = desc;
  const prefix = new Float64Array(d + 1);
  for (let r = 0; r < rows; r++) {
    const xr = r * d;
    for (let j = 0; j < d; j++) prefix[j + 1] = prefix[j] + x[xr + j];
    const yr = r * p;
    for (let b = 0; b < q; b++) {
      const start = Math.floor((b * length) / q);
      const end = Math.floor(((b + 1) * length) / q);
      const value = eta[b] / Math.sqrt(end - start);
      let i = Math.floor(start / d);
      let pos = start;
      while (pos < end) {
        const rowStart = i * d;
        const stop = Math.min(end, rowStart + d);
        out[yr + i] += value * (prefix[stop - rowStart] - prefix[pos - rowStart]);
        pos = stop;
        i++;
      }
    }
  }
}

/** A SwiGLU expert whose three projections may each be dense or factored. */
export class SwiGluExpert implements ExpertWeights {
  constructor(
    readonly gate: LinearOperator,
    readonly up: LinearOperator,
    readonly down: LinearOperator,
  ) {
    if (gate.d !== up.d || gate.p !== up.p || down.d !== gate.p || down.p !== gate.d) {
      throw new CompressedFormatError(`expert projections do not fit: gate ${gate.p}×${gate.d}, up ${up.p}×${up.d}, down ${down.p}×${down.d}`);
    }
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    const width = this.gate.p;
    const g = new Float32Array(rows * width);
    const u = new Float32Array(rows * width);
    this.gate.apply(engine, x, rows, g);
    this.up.apply(engine, x, rows, u);
    siluMulInPlace(g, u, rows * width);
    this.down.apply(engine, g, rows, out);
  }
}
