/**
 * The routed experts of a prompt in one native call (swiGluExperts with more than 8 rows an
 * expert, BF16 matrices) against the per-expert loop of separate native calls (gatherRows,
 * gemmBf16 × 3, siluMul, scatterAddRows: what the MoE block runs otherwise), bit for bit on 1, 2, 3
 * and 5 threads. Shared by test/engine/swiglu-experts.test.ts and the child processes it starts
 * with RFID_MOE_NATIVE_SIMD or OPENBLAS_CORETYPE set, where gemmBf16 sends some of these products
 * through sgemm's panels (whose sums depend on the thread count), which the kernel must then run
 * as the loop does. With gpt-oss's clamped activation and biases (checkSwiGluExpertsPromptClamped)
 * the loop's activation is the MoE block's reference in JavaScript (clampedSwiGluReference) and its
 * down bias an addInto a row. Experts kept packed (checkSwiGluExpertsPromptPacked) go through
 * gemmFp8 and gemmMxfp4 calls in the loop.
 */
import { createRequire } from 'node:module';
import { nativeAddonPath } from '../../src/engine/native.js';
import type { Engine } from '../../src/engine/types.js';
import { bf16Uniform } from './bf16-gemm-check.js';
import { mulberry32, uniform } from './rng.js';

/**
 * (tokens, width, hidden). Each routes its tokens to 7 experts (rows below), with at least 1 MiB
 * of BF16 weights in all, so that the kernel hands experts to threads: 60 × 192 × 256, every
 * product one panel; 160 × 300 × 1100, two panels a matrix, so that with OpenBLAS's AVX-512
 * kernels the experts of 128 rows and more take the panels on up to 2 threads; and with the AVX2
 * or baseline kernels every expert of more than 32 rows takes them.
 */
export const SWIGLU_PROMPT_SHAPES: Array<[number, number, number]> = [
  [60, 192, 256],
  [160, 300, 1100],
];

/**
 * Rows per expert for `tokens` tokens: every token (more than a thread's share: the expert runs on
 * all threads), 60%, none, 9 (the tiled product's fewest), 35%, 1 and 8 (the small-rows kernels).
 */
export function promptRows(tokens: number): number[] {
  return [tokens, Math.ceil(tokens * 0.6), 0, 9, Math.ceil(tokens * 0.35), 1, 8];
}

/** (tokens, width, hidden) for the same check with factored experts (checkSwiGluExpertsPromptFactored). */
export const SWIGLU_PROMPT_FACTORED_SHAPES: Array<[number, number, number]> = [
  [60, 300, 515],
  [160, 300, 1100],
];

/**
 * (tokens, width, hidden) for the same check with experts kept packed (checkSwiGluExpertsPromptPacked):
 * sides whole groups of 32 (MXFP4's), FP8 groups of 128 that leave a short last one at 1088.
 */
export const SWIGLU_PROMPT_PACKED_SHAPES: Array<[number, number, number]> = [
  [60, 192, 256],
  [160, 320, 1088],
];

/** Values an FP8 scale covers in the packed check. */
const FP8_GROUP = 128;

interface Clamped {
  alpha: number;
  limit: number;
  gateBiases: Float32Array[];
  upBiases: Float32Array[];
  downBiases: Float32Array[];
}

interface Binding {
  addInto(length: number, target: Float32Array, source: Float32Array): void;
  gatherRows(width: number, index: Int32Array, count: number, src: Float32Array, dst: Float32Array): void;
  scatterAddRows(width: number, index: Int32Array, weights: Float32Array, count: number, src: Float32Array, dst: Float32Array): void;
  siluMul(length: number, gate: Float32Array, up: Float32Array): void;
  gemmBf16(m: number, n: number, k: number, a: Float32Array, b: Uint16Array, c: Float32Array, beta: number, threads: number): void;
  gemmFp8(m: number, n: number, k: number, a: Float32Array, codes: Uint8Array, scales: Float32Array, group: number, c: Float32Array, beta: number, threads: number, bf16Activations: boolean): void;
  gemmMxfp4(m: number, n: number, k: number, a: Float32Array, blocks: Uint8Array, scales: Uint8Array, c: Float32Array, beta: number, threads: number, bf16Activations: boolean): void;
  addTileResidual(d: number, p: number, q: number, eta: Float32Array, x: Float32Array, rows: number, out: Float32Array): void;
  swiGluExperts(
    hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
    gates: Operand[], ups: Operand[], downs: Operand[], work: Float32Array, threads: number, out: Float32Array,
    bf16Activations?: boolean, clamped?: Clamped | null,
  ): void;
}

/**
 * gpt-oss's activation in place of g (rows × width), step for step as the MoE block's
 * expert-by-expert reference computes it (src/runtime/moe.ts, clampedSwiGluExpert, with the biases
 * de-interleaved): the loop that swiGluExperts's `clamped` must reproduce.
 */
export function clampedSwiGluReference(rows: number, width: number, g: Float32Array, u: Float32Array, gateBias: Float32Array, upBias: Float32Array, alpha: number, limit: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    for (let i = 0; i < width; i++) {
      const gate = Math.min(Math.fround(g[o + i] + gateBias[i]), limit);
      const up = Math.min(Math.max(Math.fround(u[o + i] + upBias[i]), -limit), limit);
      const glu = Math.fround(gate * Math.fround(1 / (1 + Math.exp(-Math.fround(gate * alpha)))));
      g[o + i] = Math.fround(Math.fround(up + 1) * glu);
    }
  }
}

/**
 * The failures (empty when every call matched) of the native swiGluExperts against the loop, on
 * 1, 2, 3 and 5 threads. The addon is called directly, since an engine's thread count is fixed
 * when it is made; `engine` only says which kernels the process runs.
 */
export function checkSwiGluExpertsPrompt(_engine: Engine, tokens: number, width: number, hidden: number): string[] {
  return checkPrompt(tokens, width, hidden, 'bf16');
}

/**
 * The same with gpt-oss's clamped activation and biases (gate and up biases up to ±12, so that the
 * clamps bite), against the loop with the MoE block's activation (clampedSwiGluReference).
 */
export function checkSwiGluExpertsPromptClamped(_engine: Engine, tokens: number, width: number, hidden: number): string[] {
  return checkPrompt(tokens, width, hidden, 'bf16', true);
}

/**
 * The same with factored experts: every other expert's projections BF16 factors (rank a third of
 * the smaller side, a 'tile' residual; some with a base), the others dense, applied as FactoredLinear
 * applies them (t = x·Bᵀ, y = t·Aᵀ onto x·W̄ᵀ, the residual added), through separate native calls.
 */
export function checkSwiGluExpertsPromptFactored(_engine: Engine, tokens: number, width: number, hidden: number): string[] {
  return checkPrompt(tokens, width, hidden, 'factored');
}

/**
 * The same with experts kept packed as their checkpoints store them: the projections FP8 (codes
 * with a scale a group of 128), MXFP4 and BF16 in turn, through gemmFp8, gemmMxfp4 and gemmBf16
 * calls in the loop, as FP8 and MXFP4 experts ran before the kernel took them.
 */
export function checkSwiGluExpertsPromptPacked(_engine: Engine, tokens: number, width: number, hidden: number): string[] {
  return checkPrompt(tokens, width, hidden, 'packed');
}

interface Factored {
  rank: number;
  basis: Uint16Array;
  coefficients: Uint16Array;
  base?: Uint16Array;
  residualQ: number;
  residualEta: Float32Array;
}
interface Fp8 {
  codes: Uint8Array;
  scales: Float32Array;
  group: number;
}
interface Mxfp4 {
  blocks: Uint8Array;
  scales: Uint8Array;
}
type Operand = Uint16Array | Factored | Fp8 | Mxfp4;

/** Random bytes: every FP8 code but NaN's (0x7f, 0xff), or any MXFP4 pair of codes. */
function randomBytes(count: number, seed: number, noNan: boolean): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: count }, () => {
    const b = Math.floor(r() * 256);
    return noNan && (b & 0x7f) === 0x7f ? b - 1 : b;
  });
}

/** A p × d matrix packed: FP8 with scales around 2^-9 (weights below 1), or MXFP4 with exponents 2^-10 to 2^-6. */
function packed(format: 'fp8' | 'mxfp4', p: number, d: number, seed: number): Fp8 | Mxfp4 {
  if (format === 'fp8') {
    const groups = Math.ceil(d / FP8_GROUP);
    return { codes: randomBytes(p * d, seed, true), scales: Float32Array.from(uniform(p * groups, seed + 1), (v) => 2 ** -9 * (1.5 + v)), group: FP8_GROUP };
  }
  return { blocks: randomBytes((p * d) / 2, seed, false), scales: Uint8Array.from(randomBytes((p * d) / 32, seed + 1, false), (b) => 117 + (b % 5)) };
}

function checkPrompt(tokens: number, width: number, hidden: number, kind: 'bf16' | 'factored' | 'packed', withClamped = false): string[] {
  const binding = createRequire(import.meta.url)(nativeAddonPath) as Binding;
  const r = mulberry32(tokens * 31 + hidden);
  const rows = promptRows(tokens);
  const first = new Int32Array(rows.length + 1);
  rows.forEach((n, i) => (first[i + 1] = first[i] + n));
  // each expert takes distinct tokens in ascending order, as the MoE block groups them
  const order = new Int32Array(first[rows.length]);
  rows.forEach((n, i) => {
    const picked = Array.from({ length: tokens }, (_, t) => t).sort(() => r() - 0.5).slice(0, n).sort((a, b) => a - b);
    order.set(picked, first[i]);
  });
  const weights = Float32Array.from(order, () => r());
  const operand = (p: number, d: number, seed: number, i: number): Operand => {
    if (kind === 'packed') return i % 3 === 2 ? bf16Uniform(p * d, seed) : packed(i % 3 === 0 ? 'fp8' : 'mxfp4', p, d, seed);
    if (kind === 'bf16' || i % 2 === 0) return bf16Uniform(p * d, seed);
    const rank = Math.ceil(Math.min(p, d) / 3);
    const f: Factored = { rank, basis: bf16Uniform(rank * d, seed + 1000), coefficients: bf16Uniform(p * rank, seed + 2000), residualQ: 37, residualEta: uniform(37, seed) };
    if (seed % 3 === 0) f.base = bf16Uniform(p * d, seed + 3000);
    return f;
  };
  const gates = rows.map((_, i) => operand(width, hidden, 100 + 3 * i, i));
  const ups = rows.map((_, i) => operand(width, hidden, 101 + 3 * i, i));
  const downs = rows.map((_, i) => operand(hidden, width, 102 + 3 * i, i));
  const apply = (n: number, p: number, d: number, a: Float32Array, o: Operand, y: Float32Array, threads: number) => {
    if (o instanceof Uint16Array) {
      binding.gemmBf16(n, p, d, a, o, y, 0, threads);
      return;
    }
    if ('codes' in o) {
      binding.gemmFp8(n, p, d, a, o.codes, o.scales, o.group, y, 0, threads, false);
      return;
    }
    if ('blocks' in o) {
      binding.gemmMxfp4(n, p, d, a, o.blocks, o.scales, y, 0, threads, false);
      return;
    }
    const t = new Float32Array(n * o.rank);
    binding.gemmBf16(n, o.rank, d, a, o.basis, t, 0, threads);
    if (o.base) binding.gemmBf16(n, p, d, a, o.base, y, 0, threads);
    binding.gemmBf16(n, p, o.rank, t, o.coefficients, y, o.base ? 1 : 0, threads);
    binding.addTileResidual(d, p, o.residualQ, o.residualEta, a, n, y);
  };
  const x = uniform(tokens * hidden, 7);
  const start = uniform(tokens * hidden, 8);
  const clamped: Clamped | null = withClamped
    ? {
      alpha: 1.702,
      limit: 7,
      gateBiases: rows.map((_, i) => uniform(width, 400 + i, 12)),
      upBiases: rows.map((_, i) => uniform(width, 500 + i, 12)),
      downBiases: rows.map((_, i) => uniform(hidden, 600 + i, 1)),
    }
    : null;
  const failures: string[] = [];
  for (const threads of [1, 2, 3, 5]) {
    const kernel = start.slice();
    const work = new Float32Array(order.length * (2 * hidden + 2 * width)).fill(Number.NaN);
    binding.swiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, threads, kernel, false, clamped);
    const loop = start.slice();
    for (let i = 0; i < rows.length; i++) {
      const n = rows[i];
      if (n === 0) continue;
      const idx = order.subarray(first[i], first[i + 1]);
      const xe = new Float32Array(n * hidden);
      const g = new Float32Array(n * width);
      const u = new Float32Array(n * width);
      const y = new Float32Array(n * hidden);
      binding.gatherRows(hidden, idx, n, x, xe);
      apply(n, width, hidden, xe, gates[i], g, threads);
      apply(n, width, hidden, xe, ups[i], u, threads);
      if (clamped) clampedSwiGluReference(n, width, g, u, clamped.gateBiases[i], clamped.upBiases[i], clamped.alpha, clamped.limit);
      else binding.siluMul(n * width, g, u);
      apply(n, hidden, width, g, downs[i], y, threads);
      if (clamped) for (let r = 0; r < n; r++) binding.addInto(hidden, y.subarray(r * hidden, (r + 1) * hidden), clamped.downBiases[i]);
      binding.scatterAddRows(hidden, idx, weights.subarray(first[i], first[i + 1]), n, y, loop);
    }
    const got = new Uint32Array(kernel.buffer);
    const want = new Uint32Array(loop.buffer);
    const at = got.findIndex((bits, i) => bits !== want[i]);
    if (at >= 0) {
      failures.push(`tokens=${tokens} width=${width} hidden=${hidden}${kind === 'bf16' ? '' : ` ${kind}`} on ${threads} threads: out[${Math.floor(at / hidden)},${at % hidden}] = ${kernel[at]}, the loop gives ${loop[at]}`);
    }
    if (!loop.some((v, i) => v !== start[i])) failures.push(`tokens=${tokens} width=${width} hidden=${hidden}: the loop changed nothing (the check would pass vacuously)`);
  }
  return failures;
}
