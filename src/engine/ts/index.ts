/**
 * The pure-TypeScript engine: always available, no native code. Large GEMMs (and the products
 * inside syrk, Cholesky and the SVDs) run on worker threads; everything else on the caller.
 */
import { availableParallelism } from 'node:os';
import {
  EngineError,
  checkMatmulActivations,
  type CholeskyOptions,
  type Engine,
  type ForwardKernels,
  type FloatArray,
  type GemmOptions,
  type MatmulActivations,
  type RandomizedSvdOptions,
  type SvdResult,
  type SyrkOptions,
  type TriangularSolveOptions,
} from '../types.js';
import { cholesky } from './cholesky.js';
import { tsKernelsAt } from './kernels/index.js';
import { eigSym, eigSymTop } from './eig-sym.js';
import { gemm } from './gemm.js';
import { GemmPool } from './gemm-parallel.js';
import { singularValues, svd, svdTop } from './svd.js';
import { svdRandomized } from './svd-randomized.js';
import { syrk } from './syrk.js';
import { solveTriangular } from './triangular-solve.js';

export interface TsEngineOptions {
  /** threads for large products, including the calling thread; default min(2, cores) */
  threads?: number;
  /** how products against BF16 weights treat their activations (MatmulActivations); default 'f32' */
  matmulActivations?: MatmulActivations;
}

export function defaultTsThreads(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

export function createTsEngine(opts: TsEngineOptions = {}): Engine {
  const threads = opts.threads ?? defaultTsThreads();
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new EngineError(`ts engine: threads must be a positive integer, got ${String(threads)}`);
  }
  return new TsEngine(threads, checkMatmulActivations('ts engine', opts.matmulActivations));
}

class TsEngine implements Engine {
  readonly name = 'ts' as const;
  readonly kernels: ForwardKernels;
  private readonly pool: GemmPool | null;
  private disposed = false;

  constructor(
    readonly threads: number,
    readonly matmulActivations: MatmulActivations,
  ) {
    this.pool = threads > 1 ? new GemmPool(threads) : null;
    this.kernels = tsKernelsAt(matmulActivations);
  }

  describe(): string {
    const activations = this.matmulActivations === 'bf16' ? ', BF16 matmul activations' : '';
    return `ts (pure TypeScript, ${this.threads} thread${this.threads === 1 ? '' : 's'}${activations})`;
  }

  private live(): GemmPool | null {
    if (this.disposed) throw new EngineError('ts engine: used after dispose(); create a new engine');
    return this.pool;
  }

  gemm(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: Float64Array, b: Float64Array, c: Float64Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: FloatArray, b: FloatArray, c: FloatArray, opts?: GemmOptions): void {
    gemm(this.live(), m, n, k, a, b, c, opts);
  }

  syrk(n: number, k: number, a: Float32Array, c: Float32Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: Float64Array, c: Float64Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: FloatArray, c: FloatArray, opts?: SyrkOptions): void {
    syrk(this.live(), n, k, a, c, opts);
  }

  cholesky(n: number, a: Float64Array, opts?: CholeskyOptions) {
    return cholesky(this.live(), n, a, opts);
  }

  eigSym(n: number, a: Float64Array) {
    this.live();
    return eigSym(n, a);
  }

  eigSymTop(n: number, a: Float64Array, k: number) {
    this.live();
    return eigSymTop(n, a, k);
  }

  svd(m: number, n: number, a: Float32Array): SvdResult<Float32Array>;
  svd(m: number, n: number, a: Float64Array): SvdResult<Float64Array>;
  svd(m: number, n: number, a: FloatArray): SvdResult {
    return svd(this.live(), m, n, a);
  }

  singularValues(m: number, n: number, a: FloatArray): Float64Array {
    return singularValues(this.live(), m, n, a);
  }

  svdTop(m: number, n: number, a: Float32Array, r: number): SvdResult<Float32Array>;
  svdTop(m: number, n: number, a: Float64Array, r: number): SvdResult<Float64Array>;
  svdTop(m: number, n: number, a: FloatArray, r: number): SvdResult {
    return svdTop(this.live(), m, n, a, r);
  }

  svdRandomized(m: number, n: number, a: Float32Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float32Array>;
  svdRandomized(m: number, n: number, a: Float64Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float64Array>;
  svdRandomized(m: number, n: number, a: FloatArray, r: number, opts?: RandomizedSvdOptions): SvdResult {
    return svdRandomized(this.live(), m, n, a, r, opts);
  }

  solveTriangular(n: number, m: number, L: Float64Array, b: Float64Array, opts?: TriangularSolveOptions): void {
    this.live();
    solveTriangular(n, m, L, b, opts);
  }

  dispose(): void {
    this.disposed = true;
    this.pool?.dispose();
  }
}
