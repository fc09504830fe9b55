/**
 * Mathematical identities at moderate size (hundreds), on every engine that loads here:
 * products against a plain triple loop, A = UΣVᵀ with orthonormal factors, LLᵀ = A, AV = VΛ,
 * known spectra, and randomized SVD within 5% of the optimal rank-r error.
 * Sizes are above the ts engine's worker threshold, so its threaded paths are exercised too.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import {
  matrixWithSpectrum, naiveMatmul, orthonormalityError, reconstructionError, relErr, testMatrix,
} from './linalg-helpers.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

const M = 300;
const N = 200;

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine: Engine) => {
  it.each([
    [false, false],
    [true, true],
    [true, false],
  ] as const)('gemm 300×200×250 (transA %s, transB %s) matches a triple loop in f64 and f32', (transA, transB) => {
    const [m, n, k] = [M, N, 250];
    const a = testMatrix(m * k, 1);
    const b = testMatrix(k * n, 2);
    const truth = naiveMatmul(m, n, k, a, transA, b, transB);
    const c64 = new Float64Array(m * n);
    engine.gemm(m, n, k, a, b, c64, { transA, transB });
    expect(relErr(c64, truth)).toBeLessThan(1e-13);
    const c32 = new Float32Array(m * n);
    engine.gemm(m, n, k, Float32Array.from(a), Float32Array.from(b), c32, { transA, transB });
    // inputs rounded to f32 (rel 6e-8 each) dominate: compare against the f64 product loosely
    expect(relErr(c32, truth)).toBeLessThan(1e-5);
  });

  it('syrk 200×300 equals AᵀA with both triangles', () => {
    const a = testMatrix(M * N, 3);
    const c = new Float64Array(N * N);
    engine.syrk(N, M, a, c, { trans: true });
    expect(relErr(c, naiveMatmul(N, N, M, a, true, a, false))).toBeLessThan(1e-13);
  });

  it.each([
    [M, N],
    [N, M],
  ])('svd %i×%i: A = UΣVᵀ, UᵀU = I, VVᵀ = I (f64 and f32)', (m, n) => {
    const a = testMatrix(m * n, 4);
    const r = Math.min(m, n);
    const s64 = engine.svd(m, n, a);
    expect(reconstructionError(m, n, a, s64.U, s64.S, s64.Vt)).toBeLessThan(1e-12);
    expect(orthonormalityError(m, r, s64.U)).toBeLessThan(1e-11);
    expect(orthonormalityError(r, n, s64.Vt, true)).toBeLessThan(1e-11);
    for (let i = 1; i < r; i++) expect(s64.S[i]).toBeLessThanOrEqual(s64.S[i - 1]);

    const a32 = Float32Array.from(a);
    const s32 = engine.svd(m, n, a32);
    expect(reconstructionError(m, n, a32, s32.U, s32.S, s32.Vt)).toBeLessThan(1e-5);
    expect(orthonormalityError(m, r, s32.U)).toBeLessThan(1e-5);
    expect(orthonormalityError(r, n, s32.Vt, true)).toBeLessThan(1e-5);
  });

  it('svd of a rank-40 300×200 matrix keeps U and V orthonormal', () => {
    const sigma = Array.from({ length: 40 }, (_, i) => 10 / (i + 1));
    const a = matrixWithSpectrum(M, N, sigma, 5);
    const s = engine.svd(M, N, a);
    expect(reconstructionError(M, N, a, s.U, s.S, s.Vt)).toBeLessThan(1e-12);
    expect(orthonormalityError(M, N, s.U)).toBeLessThan(1e-10);
    expect(orthonormalityError(N, N, s.Vt, true)).toBeLessThan(1e-10);
    expect(relErr(s.S.subarray(0, 40), sigma)).toBeLessThan(1e-12);
    expect(Math.max(...s.S.subarray(40))).toBeLessThan(1e-6);
  });

  it('singularValues and svdTop recover a known spectrum', () => {
    const sigma = Array.from({ length: N }, (_, i) => 0.98 ** i);
    const a = matrixWithSpectrum(M, N, sigma, 6);
    expect(relErr(engine.singularValues(M, N, a), sigma)).toBeLessThan(1e-12);
    const top = engine.svdTop(M, N, a, 25);
    expect(relErr(top.S, sigma.slice(0, 25))).toBeLessThan(1e-12);
    expect(orthonormalityError(M, 25, top.U)).toBeLessThan(1e-11);
    expect(orthonormalityError(25, N, top.Vt, true)).toBeLessThan(1e-11);
  });

  it.each(['f64', 'f32'] as const)('svdRandomized (%s) is within 1.05× of the optimal rank-r error', (dtype) => {
    const sigma = Array.from({ length: N }, (_, i) => 0.9 ** i);
    const a64 = matrixWithSpectrum(M, N, sigma, 7);
    const a = dtype === 'f64' ? a64 : Float32Array.from(a64);
    const r = 20;
    const res = dtype === 'f64' ? engine.svdRandomized(M, N, a64, r) : engine.svdRandomized(M, N, a as Float32Array, r);
    const optimal = Math.sqrt(sigma.slice(r).reduce((s, x) => s + x * x, 0)) / Math.sqrt(sigma.reduce((s, x) => s + x * x, 0));
    const err = reconstructionError(M, N, a, res.U, res.S, res.Vt);
    expect(err).toBeLessThan(1.05 * optimal);
    expect(orthonormalityError(M, r, res.U)).toBeLessThan(dtype === 'f64' ? 1e-10 : 1e-5);
    // deterministic in the seed
    const again = dtype === 'f64' ? engine.svdRandomized(M, N, a64, r) : engine.svdRandomized(M, N, a as Float32Array, r);
    expect(Array.from(again.S)).toEqual(Array.from(res.S));
  });

  it('cholesky 200: L is lower triangular and LLᵀ = A', () => {
    const x = testMatrix(N * M, 8);
    const a = naiveMatmul(N, N, M, x, false, x, true);
    const { L, damping } = engine.cholesky(N, a);
    expect(damping).toBe(0);
    for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) expect(L[i * N + j]).toBe(0);
    expect(relErr(naiveMatmul(N, N, N, L, false, L, true), a)).toBeLessThan(1e-13);
  });

  it('eigSym 200: AV = VΛ, VᵀV = I, values descending', () => {
    const x = testMatrix(N * N, 9);
    const a = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) a[i * N + j] = x[i * N + j] + x[j * N + i];
    const { values, vectors } = engine.eigSym(N, a);
    const av = naiveMatmul(N, N, N, a, false, vectors, false);
    const vl = vectors.map((v, idx) => v * values[idx % N]);
    expect(relErr(av, vl) * Math.max(...vl.map(Math.abs))).toBeLessThan(1e-12 * Math.abs(values[0]));
    expect(orthonormalityError(N, N, vectors)).toBeLessThan(1e-12);
    for (let i = 1; i < N; i++) expect(values[i]).toBeLessThanOrEqual(values[i - 1]);
  });

  it('eigSymTop 200, 60 vectors: the same values as eigSym, A·v = λv for each row, rows orthonormal', () => {
    const x = testMatrix(N * N, 12);
    const a = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) a[i * N + j] = x[i * N + j] + x[j * N + i];
    const full = engine.eigSym(N, a);
    const k = 60;
    const { values, rows } = engine.eigSymTop(N, a.slice(), k);
    expect(relErr(values, full.values)).toBeLessThan(1e-12);
    expectEigenRows(a, values, rows, k);
  });

  it('eigSymTop with repeated eigenvalues (Q·diag·Qᵀ, multiplicities 5 and 3 at the top): an orthonormal basis of each eigenspace', () => {
    // Q from the eigenvectors of a random symmetric matrix; spectrum 9 (×5), 4 (×3), then 1…
    const x = testMatrix(N * N, 13);
    const s = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) s[i * N + j] = x[i * N + j] + x[j * N + i];
    const Q = engine.eigSym(N, s).vectors;
    const spectrum = Array.from({ length: N }, (_, i) => (i < 5 ? 9 : i < 8 ? 4 : 1 / (i - 6)));
    const a = new Float64Array(N * N);
    for (let i = 0; i < N; i++) for (let j = 0; j <= i; j++) {
      let v = 0;
      for (let t = 0; t < N; t++) v += Q[i * N + t] * spectrum[t] * Q[j * N + t];
      a[i * N + j] = v;
      a[j * N + i] = v;
    }
    const k = 8;
    const { values, rows } = engine.eigSymTop(N, a.slice(), k);
    const sorted = [...spectrum].sort((p, q) => q - p);
    expect(relErr(values, sorted)).toBeLessThan(1e-12);
    expectEigenRows(a, values, rows, k);
  });

  it('solveTriangular 200×30 with a Cholesky factor: L·X = B', () => {
    const x = testMatrix(N * M, 10);
    const { L } = engine.cholesky(N, naiveMatmul(N, N, M, x, false, x, true));
    const b = testMatrix(N * 30, 11);
    const sol = b.slice();
    engine.solveTriangular(N, 30, L, sol);
    expect(relErr(naiveMatmul(N, 30, N, L, false, sol, false), b)).toBeLessThan(1e-12);
  });
});

/** Each of the k rows is a unit eigenvector of a for values[j] (residual relative to |λ₁|), and the rows are orthonormal. */
function expectEigenRows(a: Float64Array, values: Float64Array, rows: Float64Array, k: number): void {
  const n = values.length;
  expect(rows.length).toBe(k * n);
  for (let j = 0; j < k; j++) {
    let res = 0;
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let t = 0; t < n; t++) av += a[i * n + t] * rows[j * n + t];
      res = Math.max(res, Math.abs(av - values[j] * rows[j * n + i]));
    }
    expect(res).toBeLessThan(1e-11 * Math.abs(values[0]));
  }
  for (let p = 0; p < k; p++) for (let q = 0; q <= p; q++) {
    let dot = 0;
    for (let i = 0; i < n; i++) dot += rows[p * n + i] * rows[q * n + i];
    expect(Math.abs(dot - (p === q ? 1 : 0))).toBeLessThan(1e-12);
  }
}
