/**
 * The small-rows product check shared by test/engine/small-rows-gemm.test.ts and the child
 * processes it starts with RFID_MOE_NATIVE_SIMD set: C = alpha·A·Bᵀ + beta·C for every shape in
 * SMALL_ROWS_SHAPES against an f64 sum of products written here. The bound is f32 accumulation of
 * k terms (any order), plus the rounding of alpha·x + beta·c.
 */
import type { Engine } from '../../src/engine/types.js';
import { mulberry32, uniform } from './rng.js';

export { uniform };

const U = 2 ** -24;

/**
 * (m, n, k): the native kernels' blocks and tails. m 1-2 run the one-pass kernel while A's rows
 * fit in 16 KiB (k ≤ 4096 at one row, ≤ 2048 at two: four sets of accumulators, k in steps of 32
 * or 64, then single vectors, then scalars) and the grouped kernel beyond (rows in pairs, B rows in
 * fours, k in steps of 8); m 3-8 the one-pass kernel (k in steps of 8 or 16, two sets of
 * accumulators up to m = 4, k in chunks of 24 KiB of A: 768 floats at m = 8, 2048 at m = 3, so
 * k = 1600 and 4200 give a partial last chunk, and rows read ahead past n's end at small n).
 */
export const SMALL_ROWS_SHAPES: Array<[number, number, number]> = [];
for (const m of [1, 2, 3, 4, 5, 6, 7, 8, 9, 17]) {
  for (const [n, k] of [[1, 1], [3, 7], [4, 8], [5, 9], [2, 16], [6, 33], [33, 40], [130, 515]]) SMALL_ROWS_SHAPES.push([m, n, k]);
}
for (const m of [3, 4, 8]) for (const [n, k] of [[7, 1600], [5, 4200]]) SMALL_ROWS_SHAPES.push([m, n, k]);
// either side of the one-pass kernel's limit at 1-2 rows, and its tails after a whole step of 64
for (const [m, n, k] of [[1, 6, 4096], [1, 6, 4097], [2, 5, 2048], [2, 5, 2050], [1, 3, 127], [2, 3, 100]] as const) SMALL_ROWS_SHAPES.push([m, n, k]);

/** The failures (empty when every element is within its bound) of `engine.gemm` on one shape. */
export function checkSmallRows(engine: Engine, m: number, n: number, k: number): string[] {
  const failures: string[] = [];
  const a = uniform(m * k, 1 + m * 1000 + n);
  const b = uniform(n * k, 2 + k);
  for (const [alpha, beta] of [[1, 0], [0.5, 1], [-2, 0.25]]) {
    const c0 = uniform(m * n, 3);
    const c = Float32Array.from(c0);
    engine.gemm(m, n, k, a, b, c, { transB: true, alpha, beta });
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let exact = 0;
        let scale = 0;
        for (let p = 0; p < k; p++) {
          exact += a[i * k + p] * b[j * k + p];
          scale += Math.abs(a[i * k + p] * b[j * k + p]);
        }
        const want = alpha * exact + beta * c0[i * n + j];
        const bound = 2 * k * U * Math.abs(alpha) * scale + 4 * U * (Math.abs(want) + Math.abs(beta * c0[i * n + j]));
        const got = c[i * n + j];
        if (!(Math.abs(got - want) <= bound)) failures.push(`m=${m} n=${n} k=${k} alpha=${alpha} beta=${beta} C[${i},${j}] = ${got}, want ${want} ± ${bound}`);
      }
    }
  }
  return failures;
}
