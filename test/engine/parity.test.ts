/**
 * Cross-engine parity: every other engine present (native, tfjs) against the pure-TS engine on
 * the same inputs. Stated tolerances (normwise relative to the largest entry):
 *   f64: products 1e-13, factorisations and spectra 1e-11
 *   f32: products 2e-6 (f32 accumulation in the peer), spectra 1e-5
 * Vectors are compared through identities elsewhere (their signs are arbitrary).
 * The spectrum test keeps κ(A) ≈ 6e3: the ts engine's Gram-based SVD has absolute σ error
 * ≈ 1e-16·σ_max²/σ (docs/engines.md), i.e. ~1e-8·σ_max for σ near zero, which a κ of 1e12 would
 * expose (that limitation is documented, not a parity failure).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { matrixWithSpectrum, naiveMatmul, relErr, testMatrix } from './linalg-helpers.js';

const TOL = {
  f64: { product: 1e-13, spectrum: 1e-11 },
  f32: { product: 2e-6, spectrum: 1e-5 },
} as const;

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));
const ts = engines.find((e) => e.name === 'ts')!;
const peers = engines.filter((e) => e.name !== 'ts');

describe.skipIf(peers.length === 0)('parity with the ts engine', () => {
  describe.each(peers.map((e) => [e.describe(), e] as const))('%s', (_name, peer: Engine) => {
    const [m, n, k] = [160, 120, 200];

    it.each([false, true])('gemm f64 and f32 (transA %s)', (transA) => {
      const a = testMatrix(m * k, 21);
      const b = testMatrix(k * n, 22);
      for (const dtype of ['f64', 'f32'] as const) {
        const [x, y] = dtype === 'f64' ? [new Float64Array(m * n), new Float64Array(m * n)] : [new Float32Array(m * n), new Float32Array(m * n)];
        const [aa, bb] = dtype === 'f64' ? [a, b] : [Float32Array.from(a), Float32Array.from(b)];
        const c0 = testMatrix(m * n, 23);
        x.set(c0);
        y.set(c0);
        const opts = { transA, alpha: 0.75, beta: -0.5 };
        (ts.gemm as (...args: unknown[]) => void)(m, n, k, aa, bb, x, opts);
        (peer.gemm as (...args: unknown[]) => void)(m, n, k, aa, bb, y, opts);
        expect(relErr(x, y), dtype).toBeLessThan(TOL[dtype].product);
      }
    });

    // one row (a decoding step) takes the native engine's gemv path; one column too for symmetry
    it.each([
      [1, 300, 70, false],
      [1, 300, 70, true],
      [1, 1, 70, true],
      [5, 1, 70, false],
    ])('f32 gemm %i×%i×%i (transB %s) with alpha and beta', (mm, nn, kk, transB) => {
      const a = Float32Array.from(testMatrix(mm * kk, 31));
      const b = Float32Array.from(testMatrix(kk * nn, 32));
      const c0 = Float32Array.from(testMatrix(mm * nn, 33));
      for (const beta of [0, 1, -0.5]) {
        const x = c0.slice();
        const y = c0.slice();
        if (beta === 0) y.fill(NaN); // beta = 0 ignores C's previous content
        ts.gemm(mm, nn, kk, a, b, x, { transB, alpha: 0.75, beta });
        peer.gemm(mm, nn, kk, a, b, y, { transB, alpha: 0.75, beta });
        expect(relErr(x, y), `beta ${beta}`).toBeLessThan(TOL.f32.product);
      }
    });

    it('syrk f64 and f32', () => {
      const a = testMatrix(n * k, 24);
      const x = new Float64Array(n * n);
      const y = new Float64Array(n * n);
      ts.syrk(n, k, a, x);
      peer.syrk(n, k, a, y);
      expect(relErr(x, y)).toBeLessThan(TOL.f64.product);
      const x32 = new Float32Array(n * n);
      const y32 = new Float32Array(n * n);
      ts.syrk(n, k, Float32Array.from(a), x32, { trans: false });
      peer.syrk(n, k, Float32Array.from(a), y32, { trans: false });
      expect(relErr(x32, y32)).toBeLessThan(TOL.f32.product);
    });

    it('cholesky, eigSym and triangular solve (f64)', () => {
      const x = testMatrix(n * k, 25);
      const spd = naiveMatmul(n, n, k, x, false, x, true);
      expect(relErr(ts.cholesky(n, spd).L, peer.cholesky(n, spd).L)).toBeLessThan(TOL.f64.spectrum);
      expect(relErr(ts.eigSym(n, spd).values, peer.eigSym(n, spd).values)).toBeLessThan(TOL.f64.spectrum);
      const { L } = ts.cholesky(n, spd);
      const b1 = testMatrix(n * 9, 26);
      const b2 = b1.slice();
      ts.solveTriangular(n, 9, L, b1, { transL: true });
      peer.solveTriangular(n, 9, L, b2, { transL: true });
      expect(relErr(b1, b2)).toBeLessThan(TOL.f64.spectrum);
    });

    it('singular values: svd, singularValues, svdTop, svdRandomized (f64 and f32)', () => {
      const sigma = Array.from({ length: n }, (_, i) => 0.93 ** i);
      const a = matrixWithSpectrum(m, n, sigma, 27);
      for (const dtype of ['f64', 'f32'] as const) {
        const input = dtype === 'f64' ? a : Float32Array.from(a);
        const call = <T>(e: Engine, f: (e: Engine) => T) => f(e);
        const both = <T extends ArrayLike<number>>(f: (e: Engine) => T) => [call(ts, f), call(peer, f)] as const;
        const tol = TOL[dtype].spectrum;
        const svdS = both((e) => (e.svd as (m: number, n: number, a: unknown) => { S: Float64Array })(m, n, input).S);
        expect(relErr(svdS[0], svdS[1]), `${dtype} svd`).toBeLessThan(tol);
        const values = both((e) => e.singularValues(m, n, input));
        expect(relErr(values[0], values[1]), `${dtype} singularValues`).toBeLessThan(tol);
        const top = both((e) => (e.svdTop as (m: number, n: number, a: unknown, r: number) => { S: Float64Array })(m, n, input, 12).S);
        expect(relErr(top[0], top[1]), `${dtype} svdTop`).toBeLessThan(tol);
      }
    });

    it('svdRandomized top values (f64 and f32) on a fast-decaying spectrum', () => {
      // Engines may draw different sketches (native has its own generator), so parity is only
      // meaningful where the sketch captures the top r exactly: spectrum 0.5^i, r = 12.
      const sigma = Array.from({ length: n }, (_, i) => 0.5 ** i);
      const a = matrixWithSpectrum(m, n, sigma, 28);
      for (const dtype of ['f64', 'f32'] as const) {
        const input = dtype === 'f64' ? a : Float32Array.from(a);
        const run = (e: Engine) => (e.svdRandomized as (m: number, n: number, a: unknown, r: number) => { S: Float64Array })(m, n, input, 12).S;
        expect(relErr(run(ts), run(peer)), dtype).toBeLessThan(TOL[dtype].spectrum);
      }
    });
  });
});
