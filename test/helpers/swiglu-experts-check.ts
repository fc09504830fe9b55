/**
 * The routed experts of a prompt in one native call (swiGluExperts with more than 8 rows an
 * expert, BF16 matrices) against the per-expert loop of separate native calls (gatherRows,
 * gemmBf16 × 3, siluMul, scatterAddRows: what the MoE block runs otherwise), bit for bit on 1, 2, 3
 * and 5 threads. Shared by test/engine/swiglu-experts.test.ts and the child processes it starts
 * with RFID_MOE_NATIVE_SIMD or OPENBLAS_CORETYPE set, where gemmBf16 sends some of these products
 * through sgemm's panels (whose sums depend on the thread count), which the kernel must then run
 * as the loop does.
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

interface Binding {
  gatherRows(width: number, index: Int32Array, count: number, src: Float32Array, dst: Float32Array): void;
  scatterAddRows(width: number, index: Int32Array, weights: Float32Array, count: number, src: Float32Array, dst: Float32Array): void;
  siluMul(length: number, gate: Float32Array, up: Float32Array): void;
  gemmBf16(m: number, n: number, k: number, a: Float32Array, b: Uint16Array, c: Float32Array, beta: number, threads: number): void;
  swiGluExperts(
    hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
    gates: Uint16Array[], ups: Uint16Array[], downs: Uint16Array[], work: Float32Array, threads: number, out: Float32Array,
  ): void;
}

/**
 * The failures (empty when every call matched) of the native swiGluExperts against the loop, on
 * 1, 2, 3 and 5 threads. The addon is called directly, since an engine's thread count is fixed
 * when it is made; `engine` only says which kernels the process runs.
 */
export function checkSwiGluExpertsPrompt(_engine: Engine, tokens: number, width: number, hidden: number): string[] {
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
  const gates = rows.map((_, i) => bf16Uniform(width * hidden, 100 + 3 * i));
  const ups = rows.map((_, i) => bf16Uniform(width * hidden, 101 + 3 * i));
  const downs = rows.map((_, i) => bf16Uniform(hidden * width, 102 + 3 * i));
  const x = uniform(tokens * hidden, 7);
  const start = uniform(tokens * hidden, 8);
  const failures: string[] = [];
  for (const threads of [1, 2, 3, 5]) {
    const kernel = start.slice();
    const work = new Float32Array(order.length * (2 * hidden + 2 * width)).fill(Number.NaN);
    binding.swiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, threads, kernel);
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
      binding.gemmBf16(n, width, hidden, xe, gates[i], g, 0, threads);
      binding.gemmBf16(n, width, hidden, xe, ups[i], u, 0, threads);
      binding.siluMul(n * width, g, u);
      binding.gemmBf16(n, hidden, width, g, downs[i], y, 0, threads);
      binding.scatterAddRows(hidden, idx, weights.subarray(first[i], first[i + 1]), n, y, loop);
    }
    const got = new Uint32Array(kernel.buffer);
    const want = new Uint32Array(loop.buffer);
    const at = got.findIndex((bits, i) => bits !== want[i]);
    if (at >= 0) {
      failures.push(`tokens=${tokens} width=${width} hidden=${hidden} on ${threads} threads: out[${Math.floor(at / hidden)},${at % hidden}] = ${kernel[at]}, the loop gives ${loop[at]}`);
    }
    if (!loop.some((v, i) => v !== start[i])) failures.push(`tokens=${tokens} width=${width} hidden=${hidden}: the loop changed nothing (the check would pass vacuously)`);
  }
  return failures;
}
