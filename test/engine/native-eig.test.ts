/**
 * The native eigSym path (native/eig_sym.cc: dsytrd, dstedc, then its own blocked
 * back-transformation, split by eigenvector columns over the OpenBLAS thread count). Checked on
 * 1, 2 and 3 threads (3 gives uneven column slices) at sizes around the block size (64) and the
 * per-thread minimum, against identities that do not depend on the solver: AV = VΛ, VᵀV = I,
 * Σλ = trace(A), Σλ² = ‖A‖²_F, and values descending. Every thread count must give the same values.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadNativeEngine, type NativeEngine } from '../../src/engine/native.js';
import { naiveMatmul, orthonormalityError, relErr, testMatrix } from './linalg-helpers.js';

const THREADS = [1, 2, 3] as const;
const loaded = THREADS.map((threads) => loadNativeEngine({ threads }));
const engines = loaded.flatMap((r) => (r.ok ? [r.engine] : []));
const skipReason = loaded[0].ok ? undefined : loaded[0].reason;
afterAll(() => engines.forEach((e) => e.dispose()));

function symmetricMatrix(n: number, seed: number): Float64Array {
  const x = testMatrix(n * n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = x[i * n + j] + x[j * n + i];
  return a;
}

describe.skipIf(skipReason !== undefined)(`native eigSym${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it.each([1, 2, 63, 65, 129, 200, 333])('n = %i on 1, 2 and 3 threads: AV = VΛ, VᵀV = I, trace and Frobenius identities', (n) => {
    const a = symmetricMatrix(n, 40 + n);
    let trace = 0;
    let frobenius2 = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i];
    for (const v of a) frobenius2 += v * v;
    const results = engines.map((engine: NativeEngine) => engine.eigSym(n, a));
    expect(results).toHaveLength(THREADS.length);
    for (const { values, vectors } of results) {
      const scale = Math.max(...Array.from(values, Math.abs));
      for (let i = 1; i < n; i++) expect(values[i]).toBeLessThanOrEqual(values[i - 1]);
      expect(Math.abs(values.reduce((s, v) => s + v, 0) - trace)).toBeLessThan(1e-12 * n * scale);
      expect(Math.abs(values.reduce((s, v) => s + v * v, 0) - frobenius2)).toBeLessThan(1e-12 * n * scale * scale);
      const av = naiveMatmul(n, n, n, a, false, vectors, false);
      let residual = 0;
      for (let i = 0; i < n * n; i++) residual = Math.max(residual, Math.abs(av[i] - vectors[i] * values[i % n]));
      expect(residual).toBeLessThan(1e-12 * scale);
      expect(orthonormalityError(n, n, vectors)).toBeLessThan(1e-12);
    }
    for (const { values } of results.slice(1)) expect(relErr(values, results[0].values)).toBeLessThan(1e-14);
  });

  it('I + J (all ones), n = 300: λ = n + 1 once and 1 n − 1 times (divide and conquer deflates almost everything)', () => {
    const n = 300;
    const a = new Float64Array(n * n).fill(1);
    for (let i = 0; i < n; i++) a[i * n + i] = 2;
    for (const engine of engines) {
      const { values, vectors } = engine.eigSym(n, a);
      expect(Math.abs(values[0] - (n + 1))).toBeLessThan(1e-12 * n);
      for (let i = 1; i < n; i++) expect(Math.abs(values[i] - 1)).toBeLessThan(1e-12 * n);
      expect(orthonormalityError(n, n, vectors)).toBeLessThan(1e-12);
      for (let i = 0; i < n; i++) expect(Math.abs(Math.abs(vectors[i * n]) - 1 / Math.sqrt(n))).toBeLessThan(1e-12);
    }
  });

  it('block-diagonal n = 300 (the split point falls between independent blocks): spectra of the blocks', () => {
    const n = 300;
    const h = n / 2;
    const top = symmetricMatrix(h, 11);
    const bottom = symmetricMatrix(h, 12);
    const a = new Float64Array(n * n);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < h; j++) {
        a[i * n + j] = top[i * h + j];
        a[(i + h) * n + j + h] = bottom[i * h + j];
      }
    }
    const [reference] = engines;
    const parts = [...reference.eigSym(h, top).values, ...reference.eigSym(h, bottom).values].sort((x, y) => y - x);
    for (const engine of engines) {
      const { values, vectors } = engine.eigSym(n, a);
      expect(relErr(values, parts)).toBeLessThan(1e-13);
      expect(orthonormalityError(n, n, vectors)).toBeLessThan(1e-12);
      const av = naiveMatmul(n, n, n, a, false, vectors, false);
      let residual = 0;
      for (let i = 0; i < n * n; i++) residual = Math.max(residual, Math.abs(av[i] - vectors[i] * values[i % n]));
      expect(residual).toBeLessThan(1e-12 * Math.abs(values[0]));
    }
  });

  it('names the first NaN or Inf of the lower triangle (row-major position) and rejects it', () => {
    const n = 300;
    for (const [i, j, bad] of [[200, 150, Number.NaN], [299, 0, Number.POSITIVE_INFINITY], [40, 40, Number.NEGATIVE_INFINITY]] as const) {
      const a = symmetricMatrix(n, 5);
      a[i * n + j] = bad;
      if (j < i) a[i * n + j + 1] = Number.NaN; // a later element in row order: not the one named
      for (const engine of engines) expect(() => engine.eigSym(n, a)).toThrow(`a[${i}][${j}] is NaN or Inf`);
    }
  });

  it('reads only the lower triangle and leaves the input untouched', () => {
    const n = 130;
    const a = symmetricMatrix(n, 7);
    const lowerOnly = a.slice();
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) lowerOnly[i * n + j] = Number.NaN;
    const copy = lowerOnly.slice();
    for (const engine of engines) {
      const full = engine.eigSym(n, a);
      const lower = engine.eigSym(n, lowerOnly);
      expect(Array.from(lower.values)).toEqual(Array.from(full.values));
      expect(Array.from(lowerOnly)).toEqual(Array.from(copy));
    }
  });
});
