/**
 * Running compressed experts directly. A compressed matrix W ≈ A·B + unvec(P·η) (A p×K, B K×d)
 * is applied to x (rows × d) either factored — y = (x·Bᵀ)·Aᵀ plus the residual term — or by
 * materialising W once and doing one dense product, whichever costs less for the rows at hand:
 *
 *   factored:     rows·K·(d + p) + residual
 *                 residual 'tile': rows·(d + p + q) scalar steps — P·η is constant on q contiguous
 *                   runs of the row-major p×d matrix, so (R·x)_i is a sum of run values × prefix-sum
 *                   spans of x;
 *                 residual 'random': p·d to scatter R once + rows·p·d;
 *   materialised: p·K·d (+ p·d scalar steps for the residual) once, then rows·p·d.
 *
 * Multiply-adds inside BLAS and scalar steps of the residual do not cost the same: profiling an
 * eval of a factored model put one step of the tile residual, then a JavaScript loop, at about 100
 * BLAS multiply-adds (20 ns against 0.2 ns), so scalar steps are weighted by SCALAR_STEP_COST. The
 * engines' addTileResidual kernel now takes 0.7–2 ns a step natively: still 30–70 multiply-adds of
 * a compute-bound GEMM, the many-row regime where the choice is made, so the weight stays. With
 * few rows (decoding, a cold expert) factored wins; with many (a prefill, an eval batch) the
 * matrix is materialised.
 */
import { tsKernels } from '../engine/ts/kernels/index.js';
import type { Engine, ExpertOperand } from '../engine/types.js';
import { createProjection, type ProjectionDescriptor } from '../residual/projection.js';
import { scratch } from '../runtime/numerics.js';
import type { ExpertWeights, SwiGluMatrices, SwiGluOperands } from '../runtime/weights.js';
import { asF32, productTransB, type Weights } from '../runtime/weight-matrix.js';
import { CompressedFormatError } from '../compress/output/block.js';

/** y (rows × p) = x (rows × d) · Wᵀ */
export interface LinearOperator {
  readonly p: number;
  readonly d: number;
  apply(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void;
}

export class DenseLinear implements LinearOperator {
  constructor(
    readonly weight: Weights,
    readonly p: number,
    readonly d: number,
  ) {
    if (weight.length !== p * d) throw new CompressedFormatError(`dense matrix has ${weight.length} values, expected ${p}×${d}`);
  }

  apply(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    productTransB(engine, rows, this.p, this.d, x, this.weight, out);
  }

  operand(): ExpertOperand {
    return this.weight;
  }
}

export interface FactoredMatrix {
  p: number;
  d: number;
  rank: number;
  /** B, rank × d */
  basis: Weights;
  /** A, p × rank */
  coefficients: Weights;
  /** W̄, p × d, added to A·B (a 'base-delta' group's shared base) */
  base?: Weights;
  residual?: { descriptor: ProjectionDescriptor; vector: Float32Array };
}

export type ApplyMode = 'auto' | 'factored' | 'materialised';

/** W = A·B + unvec(P·η) as f32, p × d. */
export function materialise(engine: Engine, m: FactoredMatrix): Float32Array {
  const W = m.base ? Float32Array.from(asF32(m.base)) : new Float32Array(m.p * m.d);
  engine.gemm(m.p, m.d, m.rank, asF32(m.coefficients), asF32(m.basis), W, { beta: m.base ? 1 : 0 });
  if (m.residual) createProjection(m.residual.descriptor).addReconstruction(W, m.residual.vector);
  return W;
}

/** Cost of one scalar step of the residual, in BLAS multiply-adds (measured; see above). */
export const SCALAR_STEP_COST = 64;

/** Cost (in BLAS multiply-adds) of the two ways of applying `m` to `rows` rows. */
export function applyCosts(m: FactoredMatrix, rows: number): { factored: number; materialised: number } {
  const { p, d, rank: K } = m;
  let factored = rows * K * (d + p) + (m.base ? rows * p * d : 0);
  let materialised = p * K * d + rows * p * d;
  if (m.residual) {
    factored += m.residual.descriptor.scheme === 'tile' ? SCALAR_STEP_COST * rows * (d + p + m.residual.descriptor.q) : SCALAR_STEP_COST * p * d + rows * p * d;
    materialised += SCALAR_STEP_COST * p * d;
  }
  return { factored, materialised };
}

export interface FactoredLinearOptions {
  /**
   * Keep the dense forms built on the way (the materialised matrix a big batch asks for, a
   * scattered residual) for later calls (default true: an evaluation reuses them). false builds
   * them per call and drops them, so the operator never holds more than its factors: the server,
   * whose memory budget counts a factored expert at its factored size, sets it.
   */
  keepDense?: boolean;
}

export class FactoredLinear implements LinearOperator {
  private dense: Float32Array | null = null;
  private scatteredResidual: Float32Array | null = null;
  private readonly keepDense: boolean;

  constructor(
    readonly matrix: FactoredMatrix,
    private readonly mode: ApplyMode = 'auto',
    opts: FactoredLinearOptions = {},
  ) {
    this.keepDense = opts.keepDense ?? true;
    const { p, d, rank, basis, coefficients } = matrix;
    if (basis.length !== rank * d || coefficients.length !== p * rank || (matrix.base && matrix.base.length !== p * d)) {
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

  /**
   * What `apply` computes for `rows` rows as ForwardKernels.swiGluExperts takes it (the same
   * products and residual kernel in the same order): the kept dense matrix, or the factors when it
   * would apply them factored with a 'tile' residual or none; null where it would materialise the
   * matrix first or scatter a 'random' residual.
   */
  operand(rows: number): ExpertOperand | null {
    if (this.dense) return this.dense;
    if (this.pathFor(rows) !== 'factored') return null;
    const { rank, basis, coefficients, base, residual } = this.matrix;
    if (residual && residual.descriptor.scheme !== 'tile') return null;
    return { rank, basis, coefficients, base, residualQ: residual?.descriptor.q, residualEta: residual?.vector };
  }

  apply(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    const { p, d, rank } = this.matrix;
    if (this.pathFor(rows) === 'materialised') {
      // the cost model counts building the dense form on every call, so dropping it is never a loss it did not weigh
      const dense = this.dense ?? materialise(engine, this.matrix);
      if (this.keepDense) this.dense = dense;
      engine.gemm(rows, p, d, x, dense, out, { transB: true });
      return;
    }
    const t = new Float32Array(rows * rank);
    productTransB(engine, rows, rank, d, x, this.matrix.basis, t);
    if (this.matrix.base) productTransB(engine, rows, p, d, x, this.matrix.base, out);
    productTransB(engine, rows, p, rank, t, this.matrix.coefficients, out, this.matrix.base ? 1 : 0);
    const residual = this.matrix.residual;
    if (!residual) return;
    if (residual.descriptor.scheme === 'tile') {
      engine.kernels.addTileResidual(d, p, residual.descriptor.q, residual.vector, x, rows, out);
    } else {
      const scattered = this.scatteredResidual ?? createProjection(residual.descriptor).reconstruct(residual.vector);
      if (this.keepDense) this.scatteredResidual = scattered;
      engine.gemm(rows, p, d, x, scattered, out, { transB: true, beta: 1 });
    }
  }
}

/** out (rows × p) += x · Rᵀ for R = unvec(P·η) with P's 'tile' buckets (the ts kernel, for callers without an engine). */
export function addTileResidual(desc: ProjectionDescriptor, eta: Float32Array, p: number, d: number, x: Float32Array, rows: number, out: Float32Array): void {
  if (desc.scheme !== 'tile' || desc.length !== p * d) throw new CompressedFormatError(`addTileResidual needs a 'tile' projection over ${p}×${d} entries, got '${desc.scheme}' over ${desc.length}`);
  tsKernels.addTileResidual(d, p, desc.q, eta, x, rows, out);
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

  /** The matrices when all three are dense (materialised or never factored); null otherwise. */
  swiGluMatrices(): SwiGluMatrices | null {
    const { gate, up, down } = this;
    if (gate instanceof DenseLinear && up instanceof DenseLinear && down instanceof DenseLinear) return { gate: gate.weight, up: up.weight, down: down.weight };
    return null;
  }

  /** The projections for the MoE block's one-call path (ExpertWeights.swiGluOperands). */
  swiGluOperands(rows: number): SwiGluOperands | null {
    const operand = (op: LinearOperator) => (op instanceof DenseLinear || op instanceof FactoredLinear ? op.operand(rows) : null);
    const gate = operand(this.gate);
    const up = operand(this.up);
    const down = operand(this.down);
    return gate && up && down ? { width: this.gate.p, gate, up, down } : null;
  }

  project(engine: Engine, which: 'gate' | 'up' | 'down', x: Float32Array, rows: number, out: Float32Array): void {
    this[which].apply(engine, x, rows, out);
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    const width = this.gate.p;
    // synchronous from here to the end: the shared scratch buffers cannot be reused meanwhile
    const g = scratch('swiglu-gate', rows * width);
    const u = scratch('swiglu-up', rows * width);
    this.gate.apply(engine, x, rows, g);
    this.up.apply(engine, x, rows, u);
    engine.kernels.siluMul(rows * width, g, u);
    this.down.apply(engine, g, rows, out);
  }
}
