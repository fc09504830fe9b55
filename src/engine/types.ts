/**
 * The linear-algebra contract every heavy step of rfid-moe runs on.
 *
 * All matrices are dense, row-major typed arrays with explicit dimensions (BLAS style), so the
 * native addon can hand them to OpenBLAS/LAPACKE without copies. Every call is synchronous: the
 * native engine is synchronous by nature, and the pure-TS engine parallelises large products with
 * worker_threads over SharedArrayBuffer while the calling thread blocks (Atomics.wait).
 *
 * Implementations must validate dimensions against array lengths and throw `EngineError` (never
 * read or write out of bounds).
 */

import { RfidMoeError } from '../errors.js';
import type { Fp8Matrix } from '../io/fp8-matrix.js';
import type { Mxfp4Matrix } from '../io/mxfp4-matrix.js';

export type FloatArray = Float32Array | Float64Array;

export type EngineName = 'native' | 'ts' | 'tfjs';

export class EngineError extends RfidMoeError {
  readonly kind = 'EngineError';
}

/**
 * What products against BF16 weights multiply those weights with:
 * - 'f32': the f32 activations as they are; every product exact, sums in f32 (the default, and
 *   what the tests hold to transformers in f32).
 * - 'bf16': each activation rounded to BF16 first (to nearest, ties to even), as a model loaded in
 *   BF16 has them in PyTorch; products still exact, sums in f32. On a CPU with BF16 dot products
 *   (AVX512_BF16: AMD Zen 4 on, Intel Cooper Lake and Sapphire Rapids on) the native engine then
 *   does two multiply-adds per lane and instruction where f32 does one, and the multiply-adds are
 *   what bind a decoding step of several sequences and a prompt's prefill. Elsewhere it rounds the
 *   same way at f32's speed. Products against f32 weights, attention over the cache, norms and
 *   everything else stay f32.
 */
export type MatmulActivations = 'f32' | 'bf16';

export const MATMUL_ACTIVATIONS: readonly MatmulActivations[] = ['f32', 'bf16'];

/** `value` as MatmulActivations ('f32' when undefined); anything else is refused, naming the choices. */
export function checkMatmulActivations(who: string, value: unknown): MatmulActivations {
  if (value === undefined) return 'f32';
  if (typeof value === 'string' && (MATMUL_ACTIVATIONS as readonly string[]).includes(value)) return value as MatmulActivations;
  throw new EngineError(`${who}: matmulActivations must be one of ${MATMUL_ACTIVATIONS.join(', ')}, got ${JSON.stringify(value) ?? String(value)}`);
}

/** C (m×n) = alpha · op(A) · op(B) + beta · C. op(A) is m×k, op(B) is k×n. */
export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  /** default 1 */
  alpha?: number;
  /** default 0: C's previous content is ignored (may be garbage). beta = 1 accumulates. */
  beta?: number;
}

/** C (n×n) = alpha · AᵀA + beta · C when trans (A is k×n), or alpha · AAᵀ + beta · C (A is n×k). Both triangles of C are filled. */
export interface SyrkOptions {
  trans?: boolean;
  alpha?: number;
  beta?: number;
}

export interface CholeskyOptions {
  /**
   * When A is not positive definite, retry with A + λ·mean(diag(A))·I for λ in this sequence
   * (default [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]); if all fail, throw EngineError naming the
   * matrix size and the last λ tried.
   */
  dampingSchedule?: number[];
}

export interface CholeskyResult {
  /** lower-triangular L (n×n, row-major, upper part zero) with L·Lᵀ = A (+ damping) */
  L: Float64Array;
  /** the relative damping λ that succeeded, 0 when none was needed */
  damping: number;
}

export interface EigResult {
  /** eigenvalues in DESCENDING order */
  values: Float64Array;
  /** n×n row-major; column j is the unit eigenvector of values[j] */
  vectors: Float64Array;
}

export interface EigTopResult {
  /** all n eigenvalues, DESCENDING */
  values: Float64Array;
  /** k×n row-major; row j is the unit eigenvector of values[j] */
  rows: Float64Array;
}

/** Thin SVD A (m×n) = U · diag(S) · Vt with r = min(m, n) (or the requested rank). */
export interface SvdResult<T extends FloatArray = FloatArray> {
  /** m×r row-major */
  U: T;
  /** r singular values, descending, non-negative */
  S: T;
  /** r×n row-major */
  Vt: T;
  rank: number;
}

export interface RandomizedSvdOptions {
  /** default 16 */
  oversample?: number;
  /** default 2 (with re-orthonormalisation between iterations) */
  powerIterations?: number;
  /** seed of the Gaussian sketch; default 0 */
  seed?: number;
}

export interface TriangularSolveOptions {
  /** L is lower triangular (default true) or upper */
  lower?: boolean;
  /** solve with Lᵀ instead of L */
  transL?: boolean;
  /** 'left': L·X = B (B is n×m); 'right': X·L = B (B is m×n). default 'left' */
  side?: 'left' | 'right';
}

/** Per-row results of `ForwardKernels.logitStats`, one entry per row of the block. */
export interface LogitStatsOut {
  /** largest logit of the row (NaN ignored; −Infinity when there is none) */
  max: Float64Array;
  /** Σ_j exp(l_j − max): NaN when a logit is NaN */
  sumExp: Float64Array;
  /** first column holding the max (−1 when there is none) */
  argmax: Int32Array;
}

/**
 * The element-wise and row kernels of the forward pass (f32, row-major, single-threaded but for
 * gemmBf16, causalAttention, cachedAttention and swiGluExperts, which run products on the
 * engine's threads). The ts engine runs them in TypeScript (src/engine/ts/kernels); the native
 * engine in vectorised C++ (native/softmax.cc, pointwise.cc, rows.cc, attention.cc,
 * moe_experts.cc), whose exp is f32 (≈1 ulp) with f64 sums, so the two agree to f32 rounding.
 * All validate sizes and throw `EngineError`.
 */
export interface ForwardKernels {
  /**
   * `scores` holds `blocks` stacked rows×cols blocks (one per attention head). Row i is the query
   * at position past + i: it keeps key columns first..past+i, first = max(0, past + i − window + 1)
   * with a sliding window (null: none), gets their softmax, and exact zeros elsewhere.
   * Requires past + rows ≤ cols.
   */
  causalSoftmax(blocks: number, rows: number, cols: number, past: number, window: number | null, scores: Float32Array): void;
  /**
   * Row statistics of a rows×cols logits block (see `LogitStatsOut`). With `other` (a second
   * rows×cols block b of the same rows), also weightedDiff[r] = Σ_j exp(l_j − max_r)·(l_j − b_j),
   * the unnormalised KL sum.
   */
  logitStats(rows: number, cols: number, logits: Float32Array, out: LogitStatsOut, other?: { logits: Float32Array; weightedDiff: Float64Array }): void;
  /**
   * out[r] = the first column of row r of a rows×cols logits block holding the row's largest
   * value, NaN ignored (0 for a row of NaN alone): the greedy token of each row, as
   * `argmax` in src/runtime/generation/sampling.ts picks it.
   */
  argmaxRows(rows: number, cols: number, logits: Float32Array, out: Int32Array): void;
  /** out row r = weight · x_r / sqrt(mean(x_r²) + eps), the inverse root rounded to f32 (HF RMSNorm); out may be x. */
  rmsNorm(rows: number, width: number, x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void;
  /** gate[i] = silu(gate[i]) · up[i] for i < length (SwiGLU), in place. */
  siluMul(length: number, gate: Float32Array, up: Float32Array): void;
  /**
   * Rotary position embedding, rotate-half form, in place: each of the `heads` heads of row r of x
   * (rows × heads·headDim) has its pairs (i, i + rotaryDim/2) rotated by the angles of table row
   * positions[r]; cos and sin hold rotaryDim/2 values per position. `rotaryDim` (even, at most
   * headDim; default headDim) is the rotated width at the start of each head, the rest passes
   * through (a partial rotary width, GLM-4.5's).
   */
  rope(rows: number, heads: number, headDim: number, positions: Int32Array, cos: Float32Array, sin: Float32Array, x: Float32Array, rotaryDim?: number): void;
  /** target[i] += source[i] for i < length. */
  addInto(length: number, target: Float32Array, source: Float32Array): void;
  /** dst row i = src row index[i] for i < count (rows `width` wide). */
  gatherRows(width: number, index: Int32Array, count: number, src: Float32Array, dst: Float32Array): void;
  /** dst row index[i] += weights[i] · src row i for i < count. */
  scatterAddRows(width: number, index: Int32Array, weights: Float32Array, count: number, src: Float32Array, dst: Float32Array): void;
  /**
   * out (rows × p) += x · Rᵀ for x rows × d and R = unvec(P·η) of a factored expert's 'tile'
   * residual: R's L = p·d row-major entries in q contiguous buckets [⌊b·L/q⌋, ⌊(b+1)·L/q⌋), bucket
   * b's entries all η_b/√|b| (src/residual/projection.ts). Per row of x an f64 prefix sum, then one
   * multiply-add per bucket (cut at the ends of R's rows); a row of R's products is summed in f64
   * and added to out once. Needs 1 ≤ q ≤ p·d and η of at least q values; keeps nothing between calls.
   */
  addTileResidual(d: number, p: number, q: number, eta: Float32Array, x: Float32Array, rows: number, out: Float32Array): void;
  /**
   * c (m×n) = a·bᵀ + beta·c for a (m×k, f32) and b (n×k) a weight matrix kept in BF16 as the
   * checkpoint stores it (each value the upper 16 bits of an f32: widening is exact, so the
   * result is that of gemm on the widened matrix, to the engine's summation order). Half the
   * memory of an f32 copy, and half the bytes a decoding step reads. beta = 0 ignores c's old
   * contents. The native engine runs the product through the same kernels as gemm. At the
   * engine's matmul activations 'bf16', a's values are rounded to BF16 first (MatmulActivations).
   */
  gemmBf16(m: number, n: number, k: number, a: Float32Array, b: Uint16Array, c: Float32Array, beta: number): void;
  /**
   * c (m×n) = a·bᵀ + beta·c for a (m×k, f32) and b (n×k) a weight matrix kept in MXFP4 as the
   * checkpoint stores it (Mxfp4Matrix: `blocks` n × k/2 bytes, `scales` n × k/32; k a multiple of
   * 32). Each value of b is exact in f32 and in BF16, so the result is that of gemmBf16 on b
   * decoded to BF16, to the engine's summation order; a quarter of its memory. beta = 0 ignores
   * c's old contents. At the engine's matmul activations 'bf16', a's values are rounded to BF16
   * first, as gemmBf16 does.
   */
  gemmMxfp4(m: number, n: number, k: number, a: Float32Array, blocks: Uint8Array, scales: Uint8Array, c: Float32Array, beta: number): void;
  /**
   * c (m×n) = a·bᵀ + beta·c for a (m×k, f32) and b (n×k) a weight matrix kept in FP8 as the
   * checkpoint stores it (Fp8Matrix: `codes` n×k E4M3 codes, `scales` n × ⌈k / group⌉ f32, one a
   * group of `group` values along a row). Each value of b is code × scale in f32 rounded to BF16,
   * the checkpoint's decoded form, so the result is that of gemmBf16 on b decoded, to the engine's
   * summation order; half its memory. beta = 0 ignores c's old contents. At the engine's matmul
   * activations 'bf16', a's values are rounded to BF16 first, as gemmBf16 does.
   */
  gemmFp8(m: number, n: number, k: number, a: Float32Array, codes: Uint8Array, scales: Float32Array, group: number, c: Float32Array, beta: number): void;
  /** Copies a rows×cols block: row i from src[srcOffset + i·srcStride …) to dst[dstOffset + i·dstStride …). */
  copyBlock(rows: number, cols: number, src: Float32Array, srcOffset: number, srcStride: number, dst: Float32Array, dstOffset: number, dstStride: number): void;
  /**
   * Causal self-attention of a ragged batch without a KV cache, after the projections and RoPE:
   * q and context are rows × numHeads·headDim, k and v rows × numKvHeads·headDim; sequence s is
   * rows offsets[s]..offsets[s+1] (offsets[0] = 0). Query head h uses kv head h / (numHeads /
   * numKvHeads); row i of a sequence attends to its keys max(0, i − window + 1)..i (window null:
   * from 0) with weights softmax(scale · q·k). `context` is overwritten. Unlike the other kernels
   * this one runs products, and the native engine spreads its heads over the engine's threads.
   *
   * `sinks` (gpt-oss's attention sinks): one logit per query head (length numHeads, f32) that
   * joins each of that head's softmax normalisers and is then dropped, so a row's weights sum to
   * less than 1: for allowed scores s_j, weight_j = exp(s_j − m) / (Σ_j exp(s_j − m) +
   * exp(sinks[h] − m)) with m = max(max_j s_j, sinks[h]) (transformers' GptOssAttention). Absent or
   * null: plain softmax, the result bit for bit that of a call without it; −Infinity is a head
   * without a sink. Another length is refused.
   */
  causalAttention(
    numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
    q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array,
    sinks?: Float32Array | null,
    /** width of a value head, and of each query head's output (MiMo-V2-Flash's are narrower than its keys): v is rows × numKvHeads·valueHeadDim, context rows × numHeads·valueHeadDim; absent or null: headDim */
    valueHeadDim?: number | null,
  ): void;
  /**
   * Causal self-attention of a ragged batch whose sequences continue those in a KV cache (a
   * decoding step; a prompt's chunk after its first), after the projections and RoPE: q and
   * context as for causalAttention; sequence s's keys and values are keys[s] and values[s], its
   * past[s] cached positions followed by its own new rows (written there before the call),
   * head-major [numKvHeads][headStride[s]][headDim], or row-major rows of numKvHeads·headDim when
   * headStride[s] = 0. Row i of sequence s is position past[s] + i and attends to positions
   * max(from[s], past[s] + i − window + 1)..past[s] + i. One call for the whole batch: the native
   * engine spreads its sequences and heads over the engine's threads. `sinks`: one logit per query
   * head, as for causalAttention (absent or null: none). `from` (chunked attention: where the
   * rows' chunk starts): one first attended position per sequence, 0 ≤ from[s] ≤ past[s]; absent
   * or null: 0 for every sequence.
   */
  cachedAttention(
    numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
    past: Int32Array, keys: Float32Array[], values: Float32Array[], headStride: Int32Array,
    q: Float32Array, scale: number, window: number | null, context: Float32Array,
    sinks?: Float32Array | null, from?: Int32Array | null,
    /** as for causalAttention; the values are then [numKvHeads][headStride[s]][valueHeadDim], or rows of numKvHeads·valueHeadDim */
    valueHeadDim?: number | null,
  ): void;
  /**
   * The routed experts of one MoE block in one call (a decoding step, or a prompt's): routed
   * expert i (0 ≤ i < first.length − 1) takes rows order[first[i]..first[i+1]) of x (tokens ×
   * hidden), at most 8 where one of its matrices is f32 (a factored one's factors included; more
   * only when every matrix is BF16), computes down(silu(x·gateᵀ) ⊙ x·upᵀ) with gates[i], ups[i] (width × hidden) and
   * downs[i] (hidden × width), each BF16 as stored (Uint16Array), f32, packed (Fp8Matrix,
   * Mxfp4Matrix: multiplied as gemmFp8 and gemmMxfp4 multiply them, any number of rows) or factored
   * (FactoredOperand), and adds weights[j] times row j's
   * result into out row order[j] (out: tokens × hidden, accumulated), expert after expert in
   * order. `work` is scratch of at least (first[last] − first[0])·(2·hidden + 2·width) floats.
   * The native engine runs the experts on its threads, with the products and kernels each would
   * get from separate calls, so the result is theirs bit for bit. Products against BF16 matrices
   * take the engine's matmul activations, as gemmBf16 does.
   *
   * `clamped` (gpt-oss's experts, ClampedSwiGluExperts): the activation and biases of
   * transformers' GptOssExperts in place of SwiGLU's. Absent or null: SwiGLU, the result bit for
   * bit that of a call without it.
   */
  swiGluExperts(
    hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
    gates: ExpertOperand[], ups: ExpertOperand[], downs: ExpertOperand[],
    work: Float32Array, out: Float32Array,
    clamped?: ClampedSwiGluExperts | null,
  ): void;
}

/**
 * gpt-oss's routed experts for ForwardKernels.swiGluExperts: routed expert i computes
 *   g = x·gates[i]ᵀ + gateBiases[i],  u = x·ups[i]ᵀ + upBiases[i]  (each sum rounded to f32)
 *   g' = min(g, limit),  u' = min(max(u, −limit), limit)
 *   a = (u' + 1) · g' · sigmoid(alpha · g')
 *   y = a·downs[i]ᵀ + downBiases[i]
 * and adds weights[j] · y into out row order[j], as for SwiGLU. One bias array per routed expert,
 * in the order of `gates` (gate and up biases `width` values, down biases `hidden`). The activation
 * is the MoE block's expert-by-expert reference (src/runtime/moe.ts, clampedSwiGluExpert) step for
 * step: f32 roundings where it rounds, alpha · g' rounded to f32 and its sigmoid computed in f64
 * (Math.exp; the native engine libm's exp) and rounded to f32. NaN passes through the clamps.
 */
export interface ClampedSwiGluExperts {
  /** the sigmoid's slope (gpt-oss: 1.702) */
  alpha: number;
  /** the clamp (gpt-oss: swiglu_limit, 7) */
  limit: number;
  gateBiases: Float32Array[];
  upBiases: Float32Array[];
  downBiases: Float32Array[];
}

/**
 * One projection (p × d) of a routed expert for ForwardKernels.swiGluExperts: a dense matrix (BF16
 * as stored, or f32), one kept packed as its checkpoint stores it (FP8, MXFP4), or a factored one.
 */
export type ExpertOperand = Uint16Array | Float32Array | Fp8Matrix | Mxfp4Matrix | FactoredOperand;

/**
 * W = A·B (+ W̄) + R applied factored, as a compressed expert's FactoredLinear applies it for a few
 * rows: t = x·Bᵀ, then y = t·Aᵀ (added onto x·W̄ᵀ when there is a base), then the 'tile' residual
 * R = unvec(P·η) added (addTileResidual with q buckets). At most 8 rows an expert where a factor
 * is f32.
 */
export interface FactoredOperand {
  rank: number;
  /** B, rank × d */
  basis: Uint16Array | Float32Array;
  /** A, p × rank */
  coefficients: Uint16Array | Float32Array;
  /** W̄, p × d */
  base?: Uint16Array | Float32Array;
  /** buckets of the 'tile' residual (none when absent) */
  residualQ?: number;
  /** the residual's η, one value a bucket */
  residualEta?: Float32Array;
}

export interface Engine {
  readonly name: EngineName;
  /** the forward pass's element-wise and row kernels */
  readonly kernels: ForwardKernels;
  /** one line for users, e.g. "native (OpenBLAS 0.3.21, SkylakeX kernels, own kernels avx512, 2 threads)" */
  describe(): string;
  /** number of threads this engine uses for large operations */
  readonly threads: number;
  /** how the forward kernels' products against BF16 weights treat their activations */
  readonly matmulActivations: MatmulActivations;
  /**
   * whether products against BF16 weights run faster than against the same weights widened to
   * f32 at a prompt's many rows, with f32 activations too (the native engine on AMX tiles): a pass
   * over many rows (evaluation, calibration) then holds its weights BF16 as stored (manyRowsWeights;
   * the products are the same, exact either way)
   */
  readonly bf16WeightsFaster?: boolean;

  gemm(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array, opts?: GemmOptions): void;
  gemm(m: number, n: number, k: number, a: Float64Array, b: Float64Array, c: Float64Array, opts?: GemmOptions): void;

  syrk(n: number, k: number, a: Float32Array, c: Float32Array, opts?: SyrkOptions): void;
  syrk(n: number, k: number, a: Float64Array, c: Float64Array, opts?: SyrkOptions): void;

  /** Cholesky of a symmetric n×n matrix (only the lower triangle is read); A is not modified. */
  cholesky(n: number, a: Float64Array, opts?: CholeskyOptions): CholeskyResult;

  /** Symmetric eigendecomposition of n×n A (lower triangle read); A is not modified. */
  eigSym(n: number, a: Float64Array): EigResult;

  /**
   * Every eigenvalue of symmetric n×n A (lower triangle read) and the eigenvectors of the k
   * largest, 1 ≤ k ≤ n. A's content is undefined afterwards (the native engine reduces it in
   * place): memory beyond A is the k×n vectors, not eigSym's n×n vectors and their workspace.
   */
  eigSymTop(n: number, a: Float64Array, k: number): EigTopResult;

  /** Thin SVD with vectors; A (m×n) not modified. Same dtype out as in. */
  svd(m: number, n: number, a: Float32Array): SvdResult<Float32Array>;
  svd(m: number, n: number, a: Float64Array): SvdResult<Float64Array>;

  /** All min(m,n) singular values, descending, computed exactly (effective rank needs the whole spectrum). */
  singularValues(m: number, n: number, a: FloatArray): Float64Array;

  /** Exact top-r truncated SVD (from a full decomposition). */
  svdTop(m: number, n: number, a: Float32Array, r: number): SvdResult<Float32Array>;
  svdTop(m: number, n: number, a: Float64Array, r: number): SvdResult<Float64Array>;

  /** Randomized top-r SVD (Halko et al.): Gaussian sketch with oversampling and power iterations. */
  svdRandomized(m: number, n: number, a: Float32Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float32Array>;
  svdRandomized(m: number, n: number, a: Float64Array, r: number, opts?: RandomizedSvdOptions): SvdResult<Float64Array>;

  /** Solve a triangular system in place: B is overwritten with X. L is n×n. m is the other dimension of B. */
  solveTriangular(n: number, m: number, L: Float64Array, b: Float64Array, opts?: TriangularSolveOptions): void;

  /** release threads/workers; the engine is unusable afterwards */
  dispose(): void;
}
