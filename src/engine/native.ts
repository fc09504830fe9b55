/**
 * The native engine: an N-API addon (native/*.cc) over OpenBLAS (CBLAS) and LAPACKE, built by
 * scripts/install-native.mjs at install time when the system has the libraries. This module
 * loads it (never throwing: the pure-TS engine is the fallback) and adapts it to `Engine`.
 *
 * The addon validates every dimension against its typed array in C++ and throws; this wrapper
 * fills in option defaults and turns those errors into `EngineError`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { setFastByteTableRows } from '../io/byte-tables.js';
import { setFastBf16Rounder, setFastBf16Widener } from '../io/dtype.js';
import { reportsFreePages, setLargeBufferAllocator } from '../io/tensor-buffers.js';
import { setFileMapper } from '../io/file-map.js';
import { setFastTransposeColumns } from '../io/transpose.js';
import { applyOpenblasCoretype, type CoretypeDecision } from './openblas-coretype.js';
import { checkSinks, checkWindow } from './ts/kernels/check.js';
import {
  EngineError,
  MATMUL_ACTIVATIONS,
  checkMatmulActivations,
  type ClampedSwiGluExperts,
  type CholeskyOptions,
  type CholeskyResult,
  type EigResult,
  type EigTopResult,
  type Engine,
  type ExpertOperand,
  type FloatArray,
  type ForwardKernels,
  type GemmOptions,
  type MatmulActivations,
  type RandomizedSvdOptions,
  type SvdResult,
  type SyrkOptions,
  type TriangularSolveOptions,
} from './types.js';

/** What build/Release/rfid_moe_native.node exports (see native/ops.h for each function). */
interface NativeBinding {
  info(): { config: string; corename: string; threads: number; simd?: string; bf16Dot?: boolean };
  widenBf16(out: Float32Array): void;
  roundToBf16(src: Float32Array, dst: Uint16Array): void;
  byteTableRows(out: Uint16Array | Float32Array, codes: Uint8Array, table: Uint16Array | Float32Array, rows: number, cols: number, blockCols: number): void;
  addTileResidual(d: number, p: number, q: number, eta: Float32Array, x: Float32Array, rows: number, out: Float32Array): void;
  /** `threads`: the most threads its small-rows products may use (the engine's count); `bf16Activations`: round a to BF16 first (MatmulActivations 'bf16') */
  /** out (count × rows) = the transpose of columns first, first + step, … of slab (rows × width); both Uint16Array or both Float32Array */
  transposeColumns(slab: Uint16Array | Float32Array, rows: number, width: number, first: number, step: number, count: number, out: Uint16Array | Float32Array): void;
  gemmBf16(m: number, n: number, k: number, a: Float32Array, b: Uint16Array, c: Float32Array, beta: number, threads: number, bf16Activations: boolean): void;
  gemmMxfp4(m: number, n: number, k: number, a: Float32Array, blocks: Uint8Array, scales: Uint8Array, c: Float32Array, beta: number, threads: number, bf16Activations: boolean): void;
  gemmFp8(m: number, n: number, k: number, a: Float32Array, codes: Uint8Array, scales: Float32Array, group: number, c: Float32Array, beta: number, threads: number, bf16Activations: boolean): void;
  setThreads(threads: number): void;
  mapLargeAllocations(bytes: number): boolean;
  /** an ArrayBuffer of `bytes` in memory advised to use huge pages; null where unavailable */
  hugePageBuffer(bytes: number): ArrayBuffer | null;
  /** the first `bytes` of the open file `fd` mapped private and read-only; null where unavailable */
  mapFile(fd: number, bytes: number): ArrayBuffer | null;
  /** resolves once the pages under a view of a mapFile mapping are in memory (read on a worker thread) */
  populatePages(view: Uint8Array): Promise<void>;
  /** hands the pages under a view of a mapFile mapping back */
  dropPages(view: Uint8Array): void;
  gemm(
    m: number, n: number, k: number, a: FloatArray, b: FloatArray, c: FloatArray,
    transA: boolean, transB: boolean, alpha: number, beta: number,
  ): void;
  syrk(n: number, k: number, a: FloatArray, c: FloatArray, trans: boolean, alpha: number, beta: number): void;
  solveTriangular(n: number, m: number, L: Float64Array, b: Float64Array, lower: boolean, transL: boolean, left: boolean): void;
  cholesky(n: number, a: Float64Array, dampingSchedule: Float64Array): CholeskyResult;
  eigSym(n: number, a: Float64Array): EigResult;
  eigSymTop(n: number, a: Float64Array, k: number): EigTopResult;
  svd(m: number, n: number, a: FloatArray, r: number): SvdResult;
  svdTop(m: number, n: number, a: FloatArray, r: number): SvdResult;
  singularValues(m: number, n: number, a: FloatArray): Float64Array;
  svdRandomized(m: number, n: number, a: FloatArray, r: number, oversample: number, powerIterations: number, seed: number): SvdResult;
  gaussian(count: number, seed: number): Float64Array;
  causalSoftmax(blocks: number, rows: number, cols: number, past: number, window: number, scores: Float32Array): void;
  logitStats(
    rows: number, cols: number, logits: Float32Array, max: Float64Array, sumExp: Float64Array, argmax: Int32Array,
    other?: Float32Array, weightedDiff?: Float64Array,
  ): void;
  argmaxRows(rows: number, cols: number, logits: Float32Array, out: Int32Array): void;
  rmsNorm(rows: number, width: number, x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void;
  siluMul(length: number, gate: Float32Array, up: Float32Array): void;
  rope(rows: number, heads: number, headDim: number, positions: Int32Array, cos: Float32Array, sin: Float32Array, x: Float32Array, rotaryDim?: number): void;
  addInto(length: number, target: Float32Array, source: Float32Array): void;
  gatherRows(width: number, index: Int32Array, count: number, src: Float32Array, dst: Float32Array): void;
  scatterAddRows(width: number, index: Int32Array, weights: Float32Array, count: number, src: Float32Array, dst: Float32Array): void;
  copyBlock(rows: number, cols: number, src: Float32Array, srcOffset: number, srcStride: number, dst: Float32Array, dstOffset: number, dstStride: number): void;
  causalAttention(
    numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
    q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number, threads: number, context: Float32Array,
    sinks: Float32Array | null, valueHeadDim: number | null,
  ): void;
  cachedAttention(
    numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array, past: Int32Array,
    keys: Float32Array[], values: Float32Array[], headStride: Int32Array,
    q: Float32Array, scale: number, window: number, threads: number, context: Float32Array,
    sinks: Float32Array | null, from: Int32Array | null, valueHeadDim: number | null,
  ): void;
  swiGluExperts(
    hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
    gates: ExpertOperand[], ups: ExpertOperand[], downs: ExpertOperand[],
    work: Float32Array, threads: number, out: Float32Array, bf16Activations: boolean,
    clamped: ClampedSwiGluExperts | null,
  ): void;
  /** what the functions accept (native/addon.cc KernelRevision) */
  kernelRevision(): number;
}

/** The kernel revision these sources need (native/addon.cc KernelRevision). */
export const KERNEL_REVISION = 14;

export const DEFAULT_DAMPING_SCHEDULE: readonly number[] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/** Both src/engine/ and dist/engine/ sit two levels below the package root. */
const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Where node-gyp puts the addon. */
export const nativeAddonPath: string = path.join(packageRoot, 'build', 'Release', 'rfid_moe_native.node');

const ENABLE_FIX =
  'install OpenBLAS and LAPACKE (Debian/Ubuntu: apt-get install libopenblas-dev liblapacke-dev) and a C++ compiler, ' +
  'then run `npm rebuild rfid-moe`';

export interface NativeEngineOptions {
  /** OpenBLAS threads; default: the number of available cores */
  threads?: number;
  /** how products against BF16 weights treat their activations (MatmulActivations); default 'f32' */
  matmulActivations?: MatmulActivations;
}

/** OpenBLAS facts the engine reports (describe(), benchmarks). */
export interface OpenblasInfo {
  /** e.g. "0.3.21" */
  version: string;
  /** the kernel family in use, e.g. "Haswell" or "SkylakeX" */
  corename: string;
  /** openblas_get_config() */
  config: string;
  /** how OPENBLAS_CORETYPE was chosen before the library loaded */
  coretype: CoretypeDecision;
  /** the instruction set of the addon's own kernels: "amx" (AVX-512 with AMX tiles for BF16 matmul activations), "avx512", "avx2", "baseline" ("unknown": an older addon) */
  simd: string;
  /** whether BF16 matmul activations run on the CPU's BF16 dot products (AVX512_BF16, not capped off) */
  bf16Dot: boolean;
}

/** The values RFID_MOE_NATIVE_SIMD may take: a cap on the instruction set of the addon's own kernels. */
export const NATIVE_SIMD_LEVELS = ['amx', 'avx512', 'avx2', 'baseline'] as const;

/**
 * Why RFID_MOE_NATIVE_SIMD cannot be used (undefined when it is unset or valid). The addon reads it
 * once and would ignore a value it does not know, so a typo is refused here instead.
 */
export function invalidSimdSetting(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env.RFID_MOE_NATIVE_SIMD;
  if (value === undefined || value === '' || (NATIVE_SIMD_LEVELS as readonly string[]).includes(value)) return undefined;
  return `RFID_MOE_NATIVE_SIMD is "${value}"; it must be one of ${NATIVE_SIMD_LEVELS.join(', ')} (the widest instruction set the native kernels may use), or unset`;
}

export type NativeLoadResult = { ok: true; engine: NativeEngine } | { ok: false; reason: string; fix: string };

let loaded: { binding: NativeBinding; coretype: CoretypeDecision } | undefined;

/**
 * Every function the engine calls. An addon built from older sources (a checkout updated without
 * rebuilding it) lacks the newest: it is refused at load, with the fix, instead of failing in the
 * middle of a forward pass.
 */
const BINDING_FUNCTIONS: ReadonlyArray<keyof NativeBinding> = [
  'info', 'kernelRevision', 'setThreads', 'mapLargeAllocations', 'hugePageBuffer', 'mapFile', 'populatePages', 'dropPages', 'gemm', 'syrk', 'solveTriangular', 'cholesky', 'eigSym', 'eigSymTop', 'svd', 'svdTop',
  'singularValues', 'svdRandomized', 'gaussian', 'causalSoftmax', 'logitStats', 'argmaxRows', 'rmsNorm', 'siluMul', 'rope', 'addInto', 'gatherRows',
  'scatterAddRows', 'copyBlock', 'causalAttention', 'cachedAttention', 'swiGluExperts', 'widenBf16', 'roundToBf16', 'byteTableRows', 'addTileResidual', 'gemmBf16', 'gemmMxfp4', 'gemmFp8', 'transposeColumns',
];

/** The functions the engine needs that `binding` does not export (empty when it is current). */
export function missingBindingFunctions(binding: Record<string, unknown>): string[] {
  return BINDING_FUNCTIONS.filter((name) => typeof binding[name] !== 'function');
}

function loadBinding(): { binding: NativeBinding; coretype: CoretypeDecision } | { reason: string; fix?: string } {
  if (loaded) return loaded;
  if (!existsSync(nativeAddonPath)) return { reason: `the native addon is not built (${nativeAddonPath} is missing)` };
  const badSimd = invalidSimdSetting();
  if (badSimd) return { reason: badSimd, fix: `set RFID_MOE_NATIVE_SIMD to one of ${NATIVE_SIMD_LEVELS.join(', ')}, or unset it` };
  // Must precede the first load of libopenblas: it reads OPENBLAS_CORETYPE in its constructor.
  const coretype = applyOpenblasCoretype();
  const restoreTimeout = applyOpenblasThreadTimeout();
  try {
    const binding = createRequire(import.meta.url)(nativeAddonPath) as NativeBinding;
    const missing = missingBindingFunctions(binding as unknown as Record<string, unknown>);
    const revision = missing.length > 0 ? 0 : binding.kernelRevision();
    const stale = missing.length > 0 ? `it lacks ${missing.join(', ')}` : revision < KERNEL_REVISION ? `its kernels are revision ${revision}, these sources need ${KERNEL_REVISION}` : '';
    if (stale) {
      return { reason: `the native addon is older than this code (${stale}); rebuild it with \`npm rebuild rfid-moe\` (in a checkout: node scripts/install-native.mjs)` };
    }
    loaded = { binding, coretype };
    // BF16 weights read from here on are widened by the addon (io cannot import the engine)
    setFastBf16Widener((out) => binding.widenBf16(out));
    setFastBf16Rounder((src, dst) => binding.roundToBf16(src, dst));
    // block-FP8 weights are looked up through the addon (io/byte-tables.ts)
    setFastByteTableRows((out, codes, table, rows, cols, blockCols) => binding.byteTableRows(out, codes, table, rows, cols, blockCols));
    // tensors of 2 MiB or more are read into memory that may use huge pages (io/tensor-buffers.ts),
    // unless this is a VM whose fresh huge pages cost host faults (then only when asked for)
    setLargeBufferAllocator(Object.assign((bytes: number) => binding.hugePageBuffer(bytes), { byDefault: !reportsFreePages() }));
    // a served model's weights kept as stored are views of its mapped files (io/file-map.ts)
    // the BF16 release of gpt-oss's expert transposes (io/transpose.ts)
    setFastTransposeColumns((slab, rows, cols, out) => binding.transposeColumns(slab, rows, cols.width, cols.first, cols.step, cols.count, out));
    setFileMapper({ map: (fd, bytes) => binding.mapFile(fd, bytes), populate: (view) => binding.populatePages(view), drop: (view) => binding.dropPages(view) });
    return loaded;
  } catch (err) {
    return { reason: `the native addon failed to load: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    restoreTimeout();
  }
}

/**
 * OpenBLAS's idle worker threads spin for 2^28 cycles (about 0.1 s) after each threaded call
 * before they sleep. Where this addon runs its own threads right after a BLAS call (eigSym's two
 * divide-and-conquer halves, the forward kernels), a spinning worker then holds one of the cores
 * they need. 2^20 cycles (about 0.4 ms) still keeps the workers awake across back-to-back BLAS
 * calls. The variable is read once, by the library's constructor, so it is set only around the
 * load and then restored: child processes see the user's environment. A value the user set wins.
 */
export const OPENBLAS_THREAD_TIMEOUT_EXPONENT = 20;
export function applyOpenblasThreadTimeout(env: NodeJS.ProcessEnv = process.env): () => void {
  if (env.OPENBLAS_THREAD_TIMEOUT !== undefined) return () => {};
  env.OPENBLAS_THREAD_TIMEOUT = String(OPENBLAS_THREAD_TIMEOUT_EXPONENT);
  return () => {
    delete env.OPENBLAS_THREAD_TIMEOUT;
  };
}

/** Heap blocks from this size on get their own mapping (see mapLargeAllocations). */
export const MAPPED_ALLOCATION_BYTES = 4 * 2 ** 20;
let largeAllocationsMapped: boolean | undefined;

/**
 * Makes C heap blocks of at least 4 MiB (typed arrays included: Node allocates them with malloc)
 * their own mappings, returned to the system as soon as they are freed. Called when a compression
 * starts: glibc's default moves its threshold up after each large free (to 32 MiB at most), so a
 * layer's many d×d and p×d temporaries soon come from the heap and the holes they leave between
 * live blocks stay resident (measured: ≈ 110 MiB at the peak of a 128-expert Qwen3-30B-A3B layer).
 * Fresh mappings cost page faults, which are small against the products run on such buffers.
 * Process-wide and kept; a MALLOC_MMAP_THRESHOLD_ the user set wins; false where it does not apply
 * (no addon, not glibc).
 */
export function mapLargeAllocations(env: NodeJS.ProcessEnv = process.env): boolean {
  if (largeAllocationsMapped !== undefined) return largeAllocationsMapped;
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined) return (largeAllocationsMapped = false);
  const result = loadBinding();
  largeAllocationsMapped = 'binding' in result && result.binding.mapLargeAllocations(MAPPED_ALLOCATION_BYTES);
  return largeAllocationsMapped;
}

/** Loads the addon and creates an engine; never throws. */
export function loadNativeEngine(opts: NativeEngineOptions = {}): NativeLoadResult {
  const threads = opts.threads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    const reason = `threads must be a positive integer, got ${String(opts.threads)}`;
    return { ok: false, reason, fix: 'pass threads ≥ 1 or leave it out' };
  }
  let activations: MatmulActivations;
  try {
    activations = checkMatmulActivations('native engine', opts.matmulActivations);
  } catch (err) {
    return { ok: false, reason: (err as Error).message, fix: `pass one of ${MATMUL_ACTIVATIONS.join(', ')} or leave it out` };
  }
  const result = loadBinding();
  if ('reason' in result) return { ok: false, reason: result.reason, fix: result.fix ?? ENABLE_FIX };
  try {
    return { ok: true, engine: new NativeEngine(result.binding, result.coretype, threads, activations) };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: `the native addon did not initialise: ${message}`, fix: ENABLE_FIX };
  }
}

/** Like loadNativeEngine, but throws EngineError (with the fix) when the addon is unavailable. */
export function createNativeEngine(opts: NativeEngineOptions = {}): NativeEngine {
  const result = loadNativeEngine(opts);
  if (!result.ok) throw new EngineError(`native engine unavailable: ${result.reason}; to enable it, ${result.fix}`);
  return result.engine;
}

function toEngineError(err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  return new EngineError(err instanceof Error ? err.message : String(err));
}

/**
 * The addon's forward kernels. They neither use OpenBLAS nor its threads, so unlike the
 * primitives below they skip setThreads (they run per attention head and per logits block, often
 * enough for the extra N-API call to show); the kernels that run products (gemmBf16,
 * causalAttention, cachedAttention, swiGluExperts) take the engine's thread count.
 */
function nativeKernels(b: NativeBinding, live: () => void, threads: number, activations: MatmulActivations): ForwardKernels {
  const bf16 = activations === 'bf16';
  const guard = <T>(op: () => T): T => {
    live();
    try {
      return op();
    } catch (err) {
      throw toEngineError(err);
    }
  };
  return {
    causalSoftmax: (blocks, rows, cols, past, window, scores) => {
      checkWindow('causalSoftmax', window);
      guard(() => b.causalSoftmax(blocks, rows, cols, past, window ?? 0, scores));
    },
    logitStats: (rows, cols, logits, out, other) =>
      guard(() => b.logitStats(rows, cols, logits, out.max, out.sumExp, out.argmax, other?.logits, other?.weightedDiff)),
    argmaxRows: (rows, cols, logits, out) => guard(() => b.argmaxRows(rows, cols, logits, out)),
    rmsNorm: (rows, width, x, weight, eps, out) => guard(() => b.rmsNorm(rows, width, x, weight, eps, out)),
    siluMul: (length, gate, up) => guard(() => b.siluMul(length, gate, up)),
    rope: (rows, heads, headDim, positions, cos, sin, x, rotaryDim) => guard(() => b.rope(rows, heads, headDim, positions, cos, sin, x, rotaryDim)),
    addInto: (length, target, source) => guard(() => b.addInto(length, target, source)),
    gatherRows: (width, index, count, src, dst) => guard(() => b.gatherRows(width, index, count, src, dst)),
    scatterAddRows: (width, index, weights, count, src, dst) => guard(() => b.scatterAddRows(width, index, weights, count, src, dst)),
    copyBlock: (rows, cols, src, srcOffset, srcStride, dst, dstOffset, dstStride) =>
      guard(() => b.copyBlock(rows, cols, src, srcOffset, srcStride, dst, dstOffset, dstStride)),
    addTileResidual: (d, p, q, eta, x, rows, out) => guard(() => b.addTileResidual(d, p, q, eta, x, rows, out)),
    gemmBf16: (m, n, k, a, w, c, beta) => guard(() => b.gemmBf16(m, n, k, a, w, c, beta, threads, bf16)),
    gemmMxfp4: (m, n, k, a, blocks, scales, c, beta) => guard(() => b.gemmMxfp4(m, n, k, a, blocks, scales, c, beta, threads, bf16)),
    gemmFp8: (m, n, k, a, codes, scales, group, c, beta) => guard(() => b.gemmFp8(m, n, k, a, codes, scales, group, c, beta, threads, bf16)),
    // runs its units on threads of its own (OpenBLAS held to one thread meanwhile), at most the engine's count
    // sinks are checked here as the ts kernel checks them (the addon checks them again)
    causalAttention: (numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, context, sinks, valueHeadDim) => {
      checkWindow('causalAttention', window);
      checkSinks('causalAttention', sinks, numHeads, context);
      guard(() => {
        b.setThreads(threads);
        b.causalAttention(numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window ?? 0, threads, context, sinks ?? null, valueHeadDim ?? null);
      });
    },
    // the same on the persistent pool's threads (a decoding step calls it once per layer); it sets
    // OpenBLAS's count to the engine's itself, saving a call
    cachedAttention: (numHeads, numKvHeads, headDim, offsets, past, keys, values, headStride, q, scale, window, context, sinks, from, valueHeadDim) => {
      checkWindow('cachedAttention', window);
      checkSinks('cachedAttention', sinks, numHeads, context);
      guard(() => b.cachedAttention(numHeads, numKvHeads, headDim, offsets, past, keys, values, headStride, q, scale, window ?? 0, threads, context, sinks ?? null, from ?? null, valueHeadDim ?? null));
    },
    // on the engine's threads: whole experts per thread, or each product's rows shared (moe_experts.cc)
    swiGluExperts: (hidden, width, x, first, order, weights, gates, ups, downs, work, out, clamped) =>
      guard(() => b.swiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, threads, out, bf16, clamped ?? null)),
  };
}

export class NativeEngine implements Engine {
  readonly name = 'native' as const;
  readonly openblas: OpenblasInfo;
  readonly kernels: ForwardKernels;
  private disposed = false;

  constructor(
    private readonly binding: NativeBinding,
    coretype: CoretypeDecision,
    readonly threads: number,
    readonly matmulActivations: MatmulActivations = 'f32',
  ) {
    this.useThreads();
    this.kernels = nativeKernels(
      binding,
      () => {
        if (this.disposed) throw new EngineError('the native engine was disposed; create a new one');
      },
      threads,
      matmulActivations,
    );
    const info = binding.info();
    const version = /OpenBLAS\s+(\S+)/.exec(info.config)?.[1] ?? 'unknown version';
    this.openblas = {
      version, corename: info.corename, config: info.config.trim(), coretype, simd: info.simd ?? 'unknown', bf16Dot: info.bf16Dot === true,
    };
  }

  get bf16WeightsFaster(): boolean {
    return this.openblas.simd === 'amx';
  }

  describe(): string {
    const { version, corename, coretype, simd, bf16Dot } = this.openblas;
    const how = { user: ', OPENBLAS_CORETYPE from the environment', detected: ', kernel chosen from CPU flags', none: '' }[coretype.source];
    const activations = this.matmulActivations !== 'bf16' ? ''
      : simd === 'amx' ? ', BF16 matmul activations on AMX tiles'
      : bf16Dot ? ', BF16 matmul activations on BF16 dot products'
      : ', BF16 matmul activations (this CPU has no BF16 dot products: rounded, not faster)';
    return `native (OpenBLAS ${version}, ${corename} kernels${how}, own kernels ${simd}, ${this.threads} thread${this.threads === 1 ? '' : 's'}${activations})`;
  }

  /** OpenBLAS's thread count is process-wide: claim ours before each call (cheap when unchanged). */
  private useThreads(): void {
    this.binding.setThreads(this.threads);
  }

  /** Every primitive goes through here: disposal check, thread count, error type. */
  private run<T>(op: () => T): T {
    if (this.disposed) throw new EngineError('the native engine was disposed; create a new one');
    this.useThreads();
    try {
      return op();
    } catch (err) {
      throw toEngineError(err);
    }
  }

  gemm(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: Float64Array, b: Float64Array, c: Float64Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: FloatArray, b: FloatArray, c: FloatArray, opts: GemmOptions = {}): void {
    this.run(() => this.binding.gemm(m, n, k, a, b, c, opts.transA ?? false, opts.transB ?? false, opts.alpha ?? 1, opts.beta ?? 0));
  }

  syrk(n: number, k: number, a: Float32Array, c: Float32Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: Float64Array, c: Float64Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: FloatArray, c: FloatArray, opts: SyrkOptions = {}): void {
    this.run(() => this.binding.syrk(n, k, a, c, opts.trans ?? false, opts.alpha ?? 1, opts.beta ?? 0));
  }

  cholesky(n: number, a: Float64Array, opts: CholeskyOptions = {}): CholeskyResult {
    const schedule = Float64Array.from(opts.dampingSchedule ?? DEFAULT_DAMPING_SCHEDULE);
    return this.run(() => this.binding.cholesky(n, a, schedule));
  }

  eigSym(n: number, a: Float64Array): EigResult {
    return this.run(() => this.binding.eigSym(n, a));
  }

  eigSymTop(n: number, a: Float64Array, k: number): EigTopResult {
    return this.run(() => this.binding.eigSymTop(n, a, k));
  }

  svd(m: number, n: number, a: Float32Array): SvdResult<Float32Array>;
  svd(m: number, n: number, a: Float64Array): SvdResult<Float64Array>;
  svd(m: number, n: number, a: FloatArray): SvdResult {
    return this.run(() => this.binding.svd(m, n, a, Math.min(m, n)));
  }

  singularValues(m: number, n: number, a: FloatArray): Float64Array {
    return this.run(() => this.binding.singularValues(m, n, a));
  }

  svdTop(m: number, n: number, a: Float32Array, r: number): SvdResult<Float32Array>;
  svdTop(m: number, n: number, a: Float64Array, r: number): SvdResult<Float64Array>;
  svdTop(m: number, n: number, a: FloatArray, r: number): SvdResult {
    return this.run(() => this.binding.svdTop(m, n, a, r));
  }

  svdRandomized(m: number, n: number, a: Float32Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float32Array>;
  svdRandomized(m: number, n: number, a: Float64Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float64Array>;
  svdRandomized(m: number, n: number, a: FloatArray, r: number, opts: RandomizedSvdOptions = {}): SvdResult {
    return this.run(() => this.binding.svdRandomized(m, n, a, r, opts.oversample ?? 16, opts.powerIterations ?? 2, opts.seed ?? 0));
  }

  /**
   * The standard normals svdRandomized draws for `seed`: its n×l sketch Ω (l = r + oversample,
   * capped at min(m, n)) is the first n·l values, column-major, rounded to f32 for f32 input.
   * Lets a benchmark give a peer implementation the very same sketch.
   */
  gaussianSketch(count: number, seed = 0): Float64Array {
    return this.run(() => this.binding.gaussian(count, seed));
  }

  solveTriangular(n: number, m: number, L: Float64Array, b: Float64Array, opts: TriangularSolveOptions = {}): void {
    const side = opts.side ?? 'left';
    if (side !== 'left' && side !== 'right') throw new EngineError(`solveTriangular: side must be 'left' or 'right', got ${String(side)}`);
    this.run(() => this.binding.solveTriangular(n, m, L, b, opts.lower ?? true, opts.transL ?? false, side === 'left'));
  }

  dispose(): void {
    this.disposed = true;
  }
}
