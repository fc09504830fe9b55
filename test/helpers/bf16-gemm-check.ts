/**
 * The BF16-weight product check shared by test/engine/gemm-bf16.test.ts and the child processes
 * it starts with RFID_MOE_NATIVE_SIMD set: c = a·bᵀ + beta·c with b held as BF16 bit patterns,
 * against an f64 sum of products over b widened here (BF16 → f32 is the bit pattern shifted up by
 * 16, exact). The bound is f32 accumulation of k terms in any order, plus the rounding of the
 * final add.
 */
import { createRequire } from 'node:module';
import { nativeAddonPath } from '../../src/engine/native.js';
import { roundedToBf16 } from '../../src/engine/ts/kernels/gemm-bf16.js';
import type { Engine } from '../../src/engine/types.js';
import { uniform } from './small-rows-check.js';

const U = 2 ** -24;

/** BF16 bit patterns of n seeded values in [−1, 1) (their f32's upper halves). */
export function bf16Uniform(n: number, seed: number): Uint16Array {
  const f = uniform(n, seed);
  const bits = new Uint32Array(f.buffer);
  return Uint16Array.from(bits, (b) => b >>> 16);
}

/** The f32 values of BF16 bit patterns (exact). */
export function widenBf16(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return out;
}

/**
 * (m, n, k): the native paths. m 1-8 run the small-rows kernels on BF16 directly (one-pass, or
 * grouped for 1-2 rows beyond k = 4096 / 2048, with their k steps and chunks, B's rows in pairs
 * from 3 rows on, odd n leaving one); more rows run the tiled product: blocks of 8 rows and a
 * remainder against tiles of B of 256 KiB (k = 515: 240 rows a tile, so n = 1100 takes five and
 * n = 300 two), with k beyond the 8-row kernel's chunk of 768 (k = 1600). Capped below AVX-512
 * (the child processes of gemm-bf16.test.ts) the tiled product takes up to 32 rows and more rows
 * widen B in panels of 2^18 values (k = 515: 509 rows a panel, so n = 1100 takes three) for
 * sgemm, a panel per thread. So do 128 rows and more against weights of two panels or more when
 * OpenBLAS runs its AVX-512 kernels (m = 130 with n = 1100 at k = 515: three panels).
 */
export const BF16_SHAPES: Array<[number, number, number]> = [];
for (const m of [1, 2, 3, 4, 5, 8, 9, 12, 16, 17, 40]) {
  for (const [n, k] of [[1, 1], [3, 7], [4, 8], [5, 9], [6, 33], [33, 40], [130, 515]]) BF16_SHAPES.push([m, n, k]);
}
for (const m of [3, 8]) for (const [n, k] of [[7, 1600], [5, 4200]]) BF16_SHAPES.push([m, n, k]);
for (const m of [17, 65, 130]) BF16_SHAPES.push([m, 1100, 515]);
for (const m of [20, 130]) BF16_SHAPES.push([m, 300, 515], [m, 33, 1600]);
BF16_SHAPES.push([97, 1100, 515], [257, 64, 1600]);
// A's rows past 1 MiB as BF16: AMX's many-rows product cuts k into chunks of 1024 (with a tail of 8)
BF16_SHAPES.push([130, 40, 4200]);
// either side of the one-pass kernel's limit at 1-2 rows (k 4096 at one row, 2048 at two), and
// its tails after a whole step of 64
for (const [m, n, k] of [[1, 6, 4096], [1, 6, 4097], [2, 5, 2048], [2, 5, 2050], [1, 3, 127], [2, 3, 100]] as const) BF16_SHAPES.push([m, n, k]);

/**
 * The failures (empty when every element is within its bound) of `kernels.gemmBf16` on one shape.
 * With an engine whose matmul activations are BF16, the reference multiplies a rounded to BF16
 * (roundedToBf16, whose bits test/engine/matmul-activations.test.ts holds to hand-worked values):
 * unrounded activations miss that reference by far more than the bound.
 */
export function checkGemmBf16(engine: Engine, m: number, n: number, k: number): string[] {
  return boundFailures(m, n, k, '', (a, b, c, beta) => engine.kernels.gemmBf16(m, n, k, a, b, c, beta), engine.matmulActivations === 'bf16');
}

type Bf16Product = (a: Float32Array, b: Uint16Array, c: Float32Array, beta: number) => void;

/** The elements of `run`'s c = a·bᵀ + beta·c outside their bound, for beta 0 (c full of NaN), 1 and −0.5. */
function boundFailures(m: number, n: number, k: number, label: string, run: Bf16Product, bf16Activations = false): string[] {
  const failures: string[] = [];
  const given = uniform(m * k, 11 + m * 1000 + n);
  const a = bf16Activations ? roundedToBf16(given) : given;
  const b = bf16Uniform(n * k, 12 + k);
  const w = widenBf16(b);
  for (const beta of [0, 1, -0.5]) {
    const c0 = uniform(m * n, 13);
    const c = beta === 0 ? new Float32Array(m * n).fill(Number.NaN) : Float32Array.from(c0);
    run(given, b, c, beta);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let exact = 0;
        let scale = 0;
        for (let p = 0; p < k; p++) {
          exact += a[i * k + p] * w[j * k + p];
          scale += Math.abs(a[i * k + p] * w[j * k + p]);
        }
        const old = beta === 0 ? 0 : beta * c0[i * n + j];
        const want = exact + old;
        const bound = 2 * k * U * scale + 4 * U * (Math.abs(want) + Math.abs(old));
        const got = c[i * n + j];
        if (!(Math.abs(got - want) <= bound)) failures.push(`m=${m} n=${n} k=${k} beta=${beta}${label} C[${i},${j}] = ${got}, want ${want} ± ${bound}`);
      }
    }
  }
  return failures;
}

/** The 1 MiB f32 panels (2^18 values) native/bf16_gemm.cc widens an n × k weight in, on its panel path. */
export function panelsOf(n: number, k: number): number {
  return Math.ceil(n / Math.max(1, Math.min(n, Math.floor(2 ** 18 / k))));
}

/**
 * (m, n, k) for the panel path's units: below AVX-512 (more than 32 rows) weights of one panel
 * (n·k ≤ 2^18), whose rows are cut into blocks, one a thread, and of three panels (n = 1100,
 * k = 515) against 5 threads, rows not a multiple of the blocks or of 16; where OpenBLAS runs
 * AVX-512 kernels, 130 rows against three panels (the panels on up to 3 threads, the tiled
 * product on more).
 */
export const PANEL_THREAD_SHAPES: Array<[number, number, number]> = [
  [40, 300, 515],
  [130, 300, 515],
  [97, 1100, 515],
  [130, 1100, 515],
  [257, 64, 1600],
];

/**
 * (m, n, k) for BF16 activations across thread counts: the dot kernel (pieces of B's rows) at 1-2
 * rows up to k = 4096 / 2048 and from 3 rows, the tiled product beyond 8 rows (every row count,
 * where f32 activations would take the panels from 128 rows; with AMX, its many-rows product,
 * k whole and, past 1 MiB of A, in chunks of 1024), and 1-2 rows beyond those k (the f32 kernels
 * on the rounded rows).
 */
export const BF16_ACTIVATION_THREAD_SHAPES: Array<[number, number, number]> = [
  [1, 300, 515],
  [2, 130, 1600],
  [1, 70, 4500],
  [2, 70, 2100],
  [3, 1100, 515],
  [8, 300, 515],
  [17, 1100, 515],
  [130, 1100, 515],
  [257, 64, 1600],
  [40, 300, 2100],
  [130, 40, 4200],
];

interface Bf16GemmBinding {
  gemmBf16(m: number, n: number, k: number, a: Float32Array, b: Uint16Array, c: Float32Array, beta: number, threads: number, bf16Activations?: boolean): void;
}

/**
 * The failures of the native gemmBf16 called on 2, 3, 5 and 8 threads: every element within its
 * bound, and bit for bit the one-thread result wherever the weights have a panel a thread (the
 * rows are not cut then), and everywhere with BF16 activations on BF16 dot products. The addon is
 * called directly, since an engine's thread count is fixed when it is made; `engine` says which
 * kernels the process runs and its matmul activations.
 */
export function checkGemmBf16Threads(engine: Engine, m: number, n: number, k: number): string[] {
  const binding = createRequire(import.meta.url)(nativeAddonPath) as Bf16GemmBinding;
  const failures: string[] = [];
  const bf16 = engine.matmulActivations === 'bf16';
  // with BF16 dot products no product takes the panels: every one is the same on any thread count
  // (the engine says "on BF16 dot products"; a CPU without them says it has "no BF16 dot products")
  const panels = bf16 && /on BF16 dot products/.test(engine.describe()) ? Infinity : panelsOf(n, k);
  const a = uniform(m * k, 31 + m);
  const b = bf16Uniform(n * k, 32 + n);
  const reference = new Float32Array(m * n);
  binding.gemmBf16(m, n, k, a, b, reference, 0, 1, bf16);
  const want = new Uint32Array(reference.buffer);
  for (const threads of [2, 3, 5, 8]) {
    failures.push(...boundFailures(m, n, k, ` on ${threads} threads`, (a2, b2, c, beta) => binding.gemmBf16(m, n, k, a2, b2, c, beta, threads, bf16), bf16));
    if (panels < threads) continue;
    const c = new Float32Array(m * n);
    binding.gemmBf16(m, n, k, a, b, c, 0, threads, bf16);
    const got = new Uint32Array(c.buffer);
    const first = got.findIndex((bits, i) => bits !== want[i]);
    if (first >= 0) failures.push(`m=${m} n=${n} k=${k} on ${threads} threads (${panels} panels): C[${Math.floor(first / n)},${first % n}] = ${c[first]}, one thread gives ${reference[first]}`);
  }
  return failures;
}
