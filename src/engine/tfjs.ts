/**
 * The `tfjs` engine: GEMM through TensorFlow.js on the best installed backend
 * (`@tensorflow/tfjs-node-gpu` → `@tensorflow/tfjs-node` → wasm), every other primitive on a
 * delegate engine (native when it loads, else ts).
 *
 * tfjs has no SVD, Cholesky or eigensolver, and the wasm backend's one-thread GEMM is ~10× slower
 * than native OpenBLAS (docs/engines.md), so this engine is for machines where the native addon
 * cannot be built, or for GPU users: `npm i @tensorflow/tfjs-node-gpu` (NVIDIA + CUDA; its
 * install downloads libtensorflow, which is why all tfjs packages are optional peer dependencies).
 *
 * Precision choice: tfjs computes in float32 only, so f32 GEMM runs on tfjs while f64 GEMM is
 * handed to the delegate. Silently rounding f64 inputs to f32 would break the callers that ask
 * for f64 precisely for accuracy (Gram matrices, whitening; ~1e-14 there against ~1e-6 in f32).
 */
import {
  EngineError,
  type CholeskyOptions,
  type CholeskyResult,
  type EigResult,
  type EigTopResult,
  type Engine,
  type FloatArray,
  type ForwardKernels,
  type GemmOptions,
  type MatmulActivations,
  type RandomizedSvdOptions,
  type SvdResult,
  type SyrkOptions,
  type TriangularSolveOptions,
} from './types.js';
import { loadTfjsBackend, type ModuleImporter, type TfjsBackend, type TfjsBackendKind } from './tfjs/backends.js';
import { tfjsGemmF32, validateGemm } from './tfjs/gemm.js';
import { loadBestNonTfjsEngine } from './tfjs/peer-engines.js';

export type { TfjsBackendKind } from './tfjs/backends.js';

export interface TfjsEngineOptions {
  /** threads for the wasm backend (honoured only by its threaded build) and for the delegate it loads */
  threads?: number;
  /** engine for everything except f32 GEMM; default: native when it loads, else ts. Not disposed by this engine. */
  delegate?: Engine;
  /** @internal replaces `import()` of the tfjs packages, for tests that simulate missing or broken ones */
  importer?: ModuleImporter;
}

export type TfjsEngineLoad = { ok: true; engine: TfjsEngine; backend: TfjsBackendKind } | { ok: false; reason: string; fix: string };

export const TFJS_INSTALL_FIX =
  'install a tfjs backend: `npm i @tensorflow/tfjs-core @tensorflow/tfjs-backend-wasm` (CPU, no download), ' +
  'or `npm i @tensorflow/tfjs-node-gpu` (NVIDIA GPU with CUDA; downloads libtensorflow at install)';

export class TfjsEngine implements Engine {
  readonly name = 'tfjs' as const;
  readonly threads: number;
  readonly backend: TfjsBackendKind;
  readonly coreVersion: string;
  private disposed = false;

  constructor(
    private readonly tfjs: TfjsBackend,
    private readonly delegate: Engine,
    private readonly ownsDelegate: boolean,
  ) {
    this.threads = tfjs.threads;
    this.backend = tfjs.kind;
    this.coreVersion = tfjs.coreVersion;
  }

  describe(): string {
    const threads = `${this.threads} thread${this.threads === 1 ? '' : 's'}`;
    return `tfjs (${this.backend} backend, tfjs-core ${this.coreVersion}, ${threads}, f32 GEMM only; f64 GEMM and other ops on ${this.delegate.describe()})`;
  }

  /** The delegate's: its kernels run every product against BF16 weights. */
  get matmulActivations(): MatmulActivations {
    return this.delegate.matmulActivations;
  }

  get bf16WeightsFaster(): boolean | undefined {
    return this.delegate.bf16WeightsFaster;
  }

  /** tfjs has no fused kernels of its own: the delegate's (native or TS) serve. */
  get kernels(): ForwardKernels {
    return this.live().kernels;
  }

  /** The engine running every primitive but f32 GEMM. */
  get delegateEngine(): Engine {
    return this.delegate;
  }

  private live(): Engine {
    if (this.disposed) throw new EngineError('the tfjs engine was disposed; load a new one with loadTfjsEngine()');
    return this.delegate;
  }

  gemm(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: Float64Array, b: Float64Array, c: Float64Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: FloatArray, b: FloatArray, c: FloatArray, opts: GemmOptions = {}): void {
    const delegate = this.live();
    const shapes = validateGemm(m, n, k, a, b, c, opts);
    if (a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array) {
      tfjsGemmF32(this.tfjs.tf, m, n, k, a, b, c, opts, shapes);
    } else {
      delegate.gemm(m, n, k, a as Float64Array, b as Float64Array, c as Float64Array, opts);
    }
  }

  syrk(n: number, k: number, a: Float32Array, c: Float32Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: Float64Array, c: Float64Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: FloatArray, c: FloatArray, opts?: SyrkOptions): void {
    const delegate = this.live();
    if (a instanceof Float32Array) delegate.syrk(n, k, a, c as Float32Array, opts);
    else delegate.syrk(n, k, a, c as Float64Array, opts);
  }

  cholesky(n: number, a: Float64Array, opts?: CholeskyOptions): CholeskyResult {
    return this.live().cholesky(n, a, opts);
  }

  eigSym(n: number, a: Float64Array): EigResult {
    return this.live().eigSym(n, a);
  }

  eigSymTop(n: number, a: Float64Array, k: number): EigTopResult {
    return this.live().eigSymTop(n, a, k);
  }

  svd(m: number, n: number, a: Float32Array): SvdResult<Float32Array>;
  svd(m: number, n: number, a: Float64Array): SvdResult<Float64Array>;
  svd(m: number, n: number, a: FloatArray): SvdResult {
    const delegate = this.live();
    return a instanceof Float32Array ? delegate.svd(m, n, a) : delegate.svd(m, n, a);
  }

  singularValues(m: number, n: number, a: FloatArray): Float64Array {
    return this.live().singularValues(m, n, a);
  }

  svdTop(m: number, n: number, a: Float32Array, r: number): SvdResult<Float32Array>;
  svdTop(m: number, n: number, a: Float64Array, r: number): SvdResult<Float64Array>;
  svdTop(m: number, n: number, a: FloatArray, r: number): SvdResult {
    const delegate = this.live();
    return a instanceof Float32Array ? delegate.svdTop(m, n, a, r) : delegate.svdTop(m, n, a, r);
  }

  svdRandomized(m: number, n: number, a: Float32Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float32Array>;
  svdRandomized(m: number, n: number, a: Float64Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float64Array>;
  svdRandomized(m: number, n: number, a: FloatArray, r: number, opts?: RandomizedSvdOptions): SvdResult {
    const delegate = this.live();
    return a instanceof Float32Array ? delegate.svdRandomized(m, n, a, r, opts) : delegate.svdRandomized(m, n, a, r, opts);
  }

  solveTriangular(n: number, m: number, L: Float64Array, b: Float64Array, opts?: TriangularSolveOptions): void {
    this.live().solveTriangular(n, m, L, b, opts);
  }

  /**
   * Disposes the delegate only when this engine loaded it. The tfjs backend is process-global
   * (other engines may share it), so it stays; every tensor this engine made is already freed.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsDelegate) this.delegate.dispose();
  }
}

/**
 * Loads the tfjs engine on the best installed backend. Never throws: a missing backend or
 * delegate is reported as `{ ok: false, reason, fix }`.
 */
export async function loadTfjsEngine(opts: TfjsEngineOptions = {}): Promise<TfjsEngineLoad> {
  try {
    const backend = await loadTfjsBackend({ threads: opts.threads, importer: opts.importer });
    if (!backend.ok) {
      const reasons = backend.attempts.map((attempt) => `${attempt.kind}: ${attempt.reason}`).join('; ');
      return { ok: false, reason: `no TensorFlow.js backend could be loaded (${reasons})`, fix: TFJS_INSTALL_FIX };
    }
    let delegate = opts.delegate;
    if (delegate === undefined) {
      const best = await loadBestNonTfjsEngine(opts.threads);
      if (!best.ok) return { ok: false, reason: `the tfjs engine needs another engine for everything but GEMM, and none loaded (${best.reason})`, fix: best.fix };
      delegate = best.engine;
    }
    return { ok: true, engine: new TfjsEngine(backend.backend, delegate, opts.delegate === undefined), backend: backend.backend.kind };
  } catch (err) {
    // Backends run foreign code during initialisation; keep the "never throws" promise regardless.
    return { ok: false, reason: `the tfjs engine failed to load: ${err instanceof Error ? err.message : String(err)}`, fix: TFJS_INSTALL_FIX };
  }
}
