/**
 * Every primitive on every engine that loads here, against numpy golden values
 * (scripts/gen-linalg-golden.py → test/golden/linalg) and mathematical identities.
 *
 * Tolerances are per dtype and stated once below. Errors are normwise relative
 * (max|x − y| / max|y|) unless a comment says otherwise.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import {
  EngineError, type Engine, type FloatArray, type GemmOptions, type RandomizedSvdOptions, type SyrkOptions,
} from '../../src/engine/types.js';
import { columnsUpToSign, loadGolden, relErr, rowsWithSigns, type GoldenCase } from './linalg-helpers.js';

/** Products (gemm, syrk): f32 accumulates k terms in at worst single precision. */
const PRODUCT_TOL = { f32: 2e-6, f64: 1e-13 } as const;
/** Factorisations and solves (Cholesky, eig, SVD values, triangular solves). */
const FACTOR_TOL = { f32: 1e-4, f64: 1e-10 } as const;
/** Singular/eigen vectors, compared up to sign; separated spectra in every golden case. */
const VECTOR_TOL = { f32: 2e-3, f64: 1e-8 } as const;

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));
const golden = loadGolden();
const casesOf = (op: string) => golden.cases.filter((c) => c.op === op);
const label = (c: GoldenCase) => `${c.dtype} ${JSON.stringify(c.params)}`;
const num = (c: GoldenCase, key: string) => c.params[key] as number;
const bool = (c: GoldenCase, key: string) => c.params[key] as boolean;

it('finds at least the ts engine', () => {
  expect(engines.map((e) => e.name)).toContain('ts');
});

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine: Engine) => {
  describe('against numpy golden values', () => {
    it.each(casesOf('gemm').map((c) => [label(c), c] as const))('gemm %s', (_l, c) => {
      const [m, n, k] = [num(c, 'm'), num(c, 'n'), num(c, 'k')];
      const out = golden.input(c, 'c0');
      callGemm(engine, m, n, k, golden.input(c, 'a'), golden.input(c, 'b'), out, {
        transA: bool(c, 'transA'), transB: bool(c, 'transB'), alpha: num(c, 'alpha'), beta: num(c, 'beta'),
      });
      expect(relErr(out, golden.get(c, 'c'))).toBeLessThan(PRODUCT_TOL[c.dtype]);
    });

    it('gemm ignores garbage in C when beta = 0', () => {
      const c = casesOf('gemm').find((x) => x.params.beta === 0 && x.dtype === 'f64')!;
      const out = new Float64Array(num(c, 'm') * num(c, 'n')).fill(Number.NaN);
      engine.gemm(num(c, 'm'), num(c, 'n'), num(c, 'k'), golden.get(c, 'a'), golden.get(c, 'b'), out, {
        transA: bool(c, 'transA'), transB: bool(c, 'transB'), alpha: num(c, 'alpha'), beta: 0,
      });
      expect(relErr(out, golden.get(c, 'c'))).toBeLessThan(PRODUCT_TOL.f64);
    });

    it.each(casesOf('syrk').map((c) => [label(c), c] as const))('syrk %s', (_l, c) => {
      const out = golden.input(c, 'c0');
      callSyrk(engine, num(c, 'n'), num(c, 'k'), golden.input(c, 'a'), out, {
        trans: bool(c, 'trans'), alpha: num(c, 'alpha'), beta: num(c, 'beta'),
      });
      expect(relErr(out, golden.get(c, 'c'))).toBeLessThan(PRODUCT_TOL[c.dtype]);
    });

    it.each(casesOf('cholesky').map((c) => [label(c), c] as const))('cholesky %s', (_l, c) => {
      const a = golden.get(c, 'a');
      const before = a.slice();
      const { L, damping } = engine.cholesky(num(c, 'n'), a);
      expect(damping).toBe(num(c, 'damping'));
      expect(relErr(L, golden.get(c, 'L'))).toBeLessThan(FACTOR_TOL.f64);
      expect(a).toEqual(before); // input untouched
    });

    it.each(casesOf('eigSym').map((c) => [label(c), c] as const))('eigSym %s', (_l, c) => {
      const n = num(c, 'n');
      const { values, vectors } = engine.eigSym(n, golden.get(c, 'a'));
      expect(relErr(values, golden.get(c, 'values'))).toBeLessThan(FACTOR_TOL.f64);
      expect(columnsUpToSign(n, n, vectors, golden.get(c, 'vectors')).err).toBeLessThan(VECTOR_TOL.f64);
    });

    it.each(casesOf('eigSym').map((c) => [label(c), c] as const))('eigSymTop (half the vectors) %s', (_l, c) => {
      const n = num(c, 'n');
      const k = Math.ceil(n / 2);
      const want = golden.get(c, 'vectors');
      const { values, rows } = engine.eigSymTop(n, golden.get(c, 'a'), k);
      expect(relErr(values, golden.get(c, 'values'))).toBeLessThan(FACTOR_TOL.f64);
      // rows (k×n) against the golden's first k columns, compared as columns up to sign
      const got = new Float64Array(n * k);
      const ref = new Float64Array(n * k);
      for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) {
        got[i * k + j] = rows[j * n + i];
        ref[i * k + j] = want[i * n + j];
      }
      expect(columnsUpToSign(n, k, got, ref).err).toBeLessThan(VECTOR_TOL.f64);
    });

    it.each(casesOf('svd').map((c) => [label(c), c] as const))('svd, svdTop, singularValues %s', (_l, c) => {
      const [m, n] = [num(c, 'm'), num(c, 'n')];
      const r = Math.min(m, n);
      const a = golden.input(c, 'a');
      const [U, S, Vt] = [golden.get(c, 'U'), golden.get(c, 'S'), golden.get(c, 'Vt')];

      const full = callSvd(engine, m, n, a);
      expect(full.U.constructor).toBe(a.constructor);
      expect(full.rank).toBe(r);
      expect(relErr(full.S, S)).toBeLessThan(FACTOR_TOL[c.dtype]);
      const cols = columnsUpToSign(m, r, full.U, U);
      expect(cols.err).toBeLessThan(VECTOR_TOL[c.dtype]);
      expect(rowsWithSigns(r, n, full.Vt, Vt, cols.signs)).toBeLessThan(VECTOR_TOL[c.dtype]);

      expect(relErr(engine.singularValues(m, n, a), S)).toBeLessThan(FACTOR_TOL[c.dtype]);

      const t = num(c, 'topRank');
      const top = callSvdTop(engine, m, n, a, t);
      expect(top.rank).toBe(t);
      expect([top.U.length, top.S.length, top.Vt.length]).toEqual([m * t, t, t * n]);
      expect(relErr(top.S, S.subarray(0, t))).toBeLessThan(FACTOR_TOL[c.dtype]);
      const topCols = columnsUpToSign(m, t, top.U, firstColumns(m, r, U, t));
      expect(topCols.err).toBeLessThan(VECTOR_TOL[c.dtype]);
      expect(rowsWithSigns(t, n, top.Vt, Vt.subarray(0, t * n), topCols.signs)).toBeLessThan(VECTOR_TOL[c.dtype]);
    });

    it.each(casesOf('svdRandomized').map((c) => [label(c), c] as const))('svdRandomized %s', (_l, c) => {
      const [m, n, r] = [num(c, 'm'), num(c, 'n'), num(c, 'r')];
      const res = callSvdRandomized(engine, m, n, golden.input(c, 'a'), r, {
        oversample: num(c, 'oversample'), powerIterations: num(c, 'powerIterations'), seed: 7,
      });
      // spectrum 0.5^i: the sketch captures the top r almost exactly, so exact-SVD tolerances apply
      expect(relErr(res.S, golden.get(c, 'S'))).toBeLessThan(FACTOR_TOL[c.dtype]);
      const cols = columnsUpToSign(m, r, res.U, golden.get(c, 'U'));
      expect(cols.err).toBeLessThan(VECTOR_TOL[c.dtype]);
      expect(rowsWithSigns(r, n, res.Vt, golden.get(c, 'Vt'), cols.signs)).toBeLessThan(VECTOR_TOL[c.dtype]);
    });

    it.each(casesOf('solveTriangular').map((c) => [label(c), c] as const))('solveTriangular %s', (_l, c) => {
      const b = golden.get(c, 'b');
      engine.solveTriangular(num(c, 'n'), num(c, 'm'), golden.get(c, 'L'), b, {
        lower: bool(c, 'lower'), transL: bool(c, 'transL'), side: c.params.side as 'left' | 'right',
      });
      expect(relErr(b, golden.get(c, 'x'))).toBeLessThan(FACTOR_TOL.f64);
    });
  });

  describe('non-positive-definite Cholesky', () => {
    it('throws EngineError naming the size once the damping schedule is exhausted', () => {
      const n = 5;
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) a[i * n + i] = i === 2 ? -1 : 1; // mean diag 0.6 > 0, eigenvalue −1
      expect(() => engine.cholesky(n, a)).toThrow(EngineError);
      expect(() => engine.cholesky(n, a)).toThrow(/5×5|5x5/);
      // a schedule that reaches far enough succeeds, and reports the λ it used
      const { damping } = engine.cholesky(n, a, { dampingSchedule: [0.1, 1, 10] });
      expect(damping).toBe(10);
    });
  });

  describe('bad arguments give EngineError', () => {
    const f64 = (len: number) => new Float64Array(len);
    const f32 = (len: number) => new Float32Array(len);
    const cases: Array<[string, () => unknown]> = [
      ['gemm with a too short', () => engine.gemm(4, 4, 4, f64(15), f64(16), f64(16))],
      ['gemm with b too long', () => engine.gemm(4, 4, 4, f64(16), f64(17), f64(16))],
      ['gemm with c too short', () => engine.gemm(4, 3, 2, f64(8), f64(6), f64(11))],
      ['gemm with a transposed shape mismatch', () => engine.gemm(4, 3, 2, f64(8), f64(6), f64(11), { transA: true })],
      ['gemm with a negative dimension', () => engine.gemm(-1, 3, 2, f64(0), f64(6), f64(0))],
      ['gemm with a fractional dimension', () => engine.gemm(2.5, 2, 2, f64(5), f64(4), f64(5))],
      ['gemm mixing dtypes', () => (engine.gemm as (...args: unknown[]) => void)(2, 2, 2, f32(4), f64(4), f64(4))],
      ['syrk with c of the wrong size', () => engine.syrk(3, 5, f32(15), f32(8))],
      ['cholesky with a of the wrong size', () => engine.cholesky(3, f64(8))],
      ['eigSym with a of the wrong size', () => engine.eigSym(3, f64(10))],
      ['eigSymTop with a of the wrong size', () => engine.eigSymTop(3, f64(10), 2)],
      ['eigSymTop with k = 0', () => engine.eigSymTop(3, f64(9), 0)],
      ['eigSymTop with k above n', () => engine.eigSymTop(3, f64(9), 4)],
      ['svd with a of the wrong size', () => engine.svd(3, 4, f64(11))],
      ['singularValues with a of the wrong size', () => engine.singularValues(3, 4, f32(13))],
      ['svdTop with rank 0', () => engine.svdTop(3, 4, f64(12), 0)],
      ['svdTop with rank above min(m, n)', () => engine.svdTop(3, 4, f64(12), 4)],
      ['svdRandomized with a of the wrong size', () => engine.svdRandomized(3, 4, f64(10), 2)],
      ['solveTriangular with b of the wrong size', () => engine.solveTriangular(3, 2, identity(3), f64(5))],
      ['solveTriangular right side with b of the wrong size', () => engine.solveTriangular(3, 2, identity(3), f64(5), { side: 'right' })],
    ];
    it.each(cases)('%s', (_what, call) => {
      expect(call).toThrow(EngineError);
    });
  });
});

function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

function firstColumns(rows: number, cols: number, x: Float64Array, t: number): Float64Array {
  const out = new Float64Array(rows * t);
  for (let i = 0; i < rows; i++) for (let j = 0; j < t; j++) out[i * t + j] = x[i * cols + j];
  return out;
}

// The Engine overloads take one dtype per call; these dispatch on the runtime dtype for the
// dtype-generic golden loop above.
function callGemm(e: Engine, m: number, n: number, k: number, a: FloatArray, b: FloatArray, c: FloatArray, opts: GemmOptions) {
  if (a instanceof Float32Array) e.gemm(m, n, k, a, b as Float32Array, c as Float32Array, opts);
  else e.gemm(m, n, k, a, b as Float64Array, c as Float64Array, opts);
}
function callSyrk(e: Engine, n: number, k: number, a: FloatArray, c: FloatArray, opts: SyrkOptions) {
  if (a instanceof Float32Array) e.syrk(n, k, a, c as Float32Array, opts);
  else e.syrk(n, k, a, c as Float64Array, opts);
}
function callSvd(e: Engine, m: number, n: number, a: FloatArray) {
  return a instanceof Float32Array ? e.svd(m, n, a) : e.svd(m, n, a);
}
function callSvdTop(e: Engine, m: number, n: number, a: FloatArray, r: number) {
  return a instanceof Float32Array ? e.svdTop(m, n, a, r) : e.svdTop(m, n, a, r);
}
function callSvdRandomized(e: Engine, m: number, n: number, a: FloatArray, r: number, opts: RandomizedSvdOptions) {
  return a instanceof Float32Array ? e.svdRandomized(m, n, a, r, opts) : e.svdRandomized(m, n, a, r, opts);
}
