/**
 * Products with a few rows against a row-major weight matrix, C = alpha·A·Bᵀ + beta·C (the
 * native engine runs m ≤ 8 through its own kernel, native/small_gemm.cc, instead of sgemm):
 * every engine against an f64 sum of products written here, over the shapes that exercise the
 * kernel's blocks and tails (rows in pairs, B rows in fours, k in steps of 8), with alpha and
 * beta, and beta = 0 ignoring NaN already in C. The bound is f32 accumulation of k terms.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { mulberry32 } from '../helpers/rng.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

const U = 2 ** -24;

function uniform(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => 2 * r() - 1);
}

const SHAPES: Array<[number, number, number]> = [];
for (const m of [1, 2, 3, 7, 8, 9, 17]) for (const [n, k] of [[1, 1], [3, 7], [4, 8], [5, 9], [33, 40], [130, 515]]) SHAPES.push([m, n, k]);

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(SHAPES)('m=%i n=%i k=%i: alpha·A·Bᵀ + beta·C against an f64 reference', (m, n, k) => {
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
          expect(Math.abs(c[i * n + j] - want)).toBeLessThanOrEqual(bound);
        }
      }
    }
  });

  it('beta = 0 ignores NaN already in C; a subarray view of A is read from its offset', () => {
    const [m, n, k] = [5, 9, 13];
    const backing = uniform(3 + m * k, 7);
    const a = backing.subarray(3);
    const b = uniform(n * k, 8);
    const c = new Float32Array(m * n).fill(Number.NaN);
    engine.gemm(m, n, k, a, b, c, { transB: true });
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let exact = 0;
        for (let p = 0; p < k; p++) exact += a[i * k + p] * b[j * k + p];
        expect(c[i * n + j]).toBeCloseTo(exact, 4);
      }
    }
  });
});
