/**
 * The native engine on its own: argument validation (wrong shapes must throw EngineError, never
 * crash), the damped-Cholesky path, and identity checks of every primitive against independent
 * truth (f64 loops written here, matrices with known spectra, A − UΣVᵀ, orthogonality, LLᵀ = A).
 * Cross-engine numerical conformance against numpy lives in test/engine/conformance.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { byteTableRows, type ByteTableRows } from '../io/byte-tables.js';
import { f32BitsToBf16, roundToBf16, widenHalvesInPlace } from '../io/dtype.js';
import { loadNativeEngine, nativeAddonPath, type NativeEngine } from './native.js';
import { coretypeForCpuFlags, decideOpenblasCoretype, applyOpenblasCoretype, parseCpuFlags } from './openblas-coretype.js';
import { EngineError, type FloatArray } from './types.js';

// ---------------------------------------------------------------- helpers (independent truth)

/** Deterministic uniform(-1, 1) values (mulberry32). */
function randomArray(length: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** op(A)·op(B) in f64 by the textbook triple loop; A is stored r×c row-major. */
function naiveProduct(
  m: number, n: number, k: number, a: ArrayLike<number>, b: ArrayLike<number>, transA = false, transB = false,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = sum;
    }
  }
  return c;
}

function transpose(rows: number, cols: number, a: ArrayLike<number>): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function maxAbs(a: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]));
  return worst;
}

function identity(n: number): Float64Array {
  const eye = new Float64Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1;
  return eye;
}

/** Orthogonal n×n matrix: a product of Householder reflections I − 2vvᵀ/vᵀv from seeded vectors. */
function orthogonal(n: number, seed: number): Float64Array {
  let q = identity(n);
  for (let r = 0; r < 3; r++) {
    const v = randomArray(n, seed + r);
    const vv = v.reduce((s, x) => s + x * x, 0);
    const h = identity(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] -= (2 * v[i] * v[j]) / vv;
    q = naiveProduct(n, n, n, q, h);
  }
  return q;
}

/** A (m×n) = P[:, :r]·diag(sigma)·Q[:, :r]ᵀ with orthogonal P, Q: its singular values are sigma. */
function matrixWithSpectrum(m: number, n: number, sigma: number[], seed: number): Float64Array {
  const r = sigma.length;
  const p = orthogonal(m, seed);
  const q = orthogonal(n, seed + 100);
  const pr = new Float64Array(m * r);
  const qr = new Float64Array(n * r);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) pr[i * r + j] = p[i * m + j] * sigma[j];
  for (let i = 0; i < n; i++) for (let j = 0; j < r; j++) qr[i * r + j] = q[i * n + j];
  return naiveProduct(m, n, r, pr, qr, false, true);
}

/** ‖XᵀX − I‖max for X (rows×cols): columns orthonormal. */
function columnOrthonormalityError(rows: number, cols: number, x: ArrayLike<number>): number {
  return maxAbsDiff(naiveProduct(cols, cols, rows, x, x, true, false), identity(cols));
}

/** U·diag(S)·Vt for U m×r, Vt r×n. */
function reconstruct(m: number, n: number, r: number, u: ArrayLike<number>, s: ArrayLike<number>, vt: ArrayLike<number>): Float64Array {
  const us = new Float64Array(m * r);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) us[i * r + j] = u[i * r + j] * s[j];
  return naiveProduct(m, n, r, us, vt);
}

function expectDescending(values: ArrayLike<number>): void {
  for (let i = 1; i < values.length; i++) expect(values[i]).toBeLessThanOrEqual(values[i - 1]);
}

function expectEngineError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(EngineError);
  expect((caught as Error).message).toMatch(pattern);
}

// ---------------------------------------------------------------- kernel selection (no addon needed)

describe('OPENBLAS_CORETYPE selection', () => {
  const cpuinfo = (flags: string) => `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: ${flags}\nbogomips\t: 4000\n`;

  it('reads the flags line of /proc/cpuinfo', () => {
    expect(parseCpuFlags(cpuinfo('fpu sse2 avx2 fma'))).toEqual(new Set(['fpu', 'sse2', 'avx2', 'fma']));
    expect(parseCpuFlags('processor : 0\nFeatures : fp asimd\n').size).toBe(0);
  });

  it('chooses SkylakeX only with avx512f, Haswell with avx2, nothing otherwise', () => {
    expect(coretypeForCpuFlags(new Set(['avx2', 'avx512f']))).toBe('SkylakeX');
    expect(coretypeForCpuFlags(new Set(['avx2', 'fma']))).toBe('Haswell');
    expect(coretypeForCpuFlags(new Set(['sse4_2', 'avx']))).toBeUndefined();
  });

  it("respects the user's value and only writes a detected one", () => {
    expect(decideOpenblasCoretype('Zen', cpuinfo('avx512f avx2'))).toEqual({ coretype: 'Zen', source: 'user' });
    expect(decideOpenblasCoretype('', cpuinfo('avx2'))).toEqual({ coretype: 'Haswell', source: 'detected' });
    expect(decideOpenblasCoretype(undefined, undefined)).toEqual({ coretype: undefined, source: 'none' });

    const userEnv: NodeJS.ProcessEnv = { OPENBLAS_CORETYPE: 'Sandybridge' };
    expect(applyOpenblasCoretype(userEnv, () => cpuinfo('avx512f'))).toEqual({ coretype: 'Sandybridge', source: 'user' });
    expect(userEnv.OPENBLAS_CORETYPE).toBe('Sandybridge');

    const freshEnv: NodeJS.ProcessEnv = {};
    expect(applyOpenblasCoretype(freshEnv, () => cpuinfo('avx512f avx2')).source).toBe('detected');
    expect(freshEnv.OPENBLAS_CORETYPE).toBe('SkylakeX');

    const oldCpuEnv: NodeJS.ProcessEnv = {};
    expect(applyOpenblasCoretype(oldCpuEnv, () => cpuinfo('sse2')).source).toBe('none');
    expect('OPENBLAS_CORETYPE' in oldCpuEnv).toBe(false);
  });
});

describe('install script', () => {
  it('never fails the install: a skipped build prints one line naming the fallback and the fix, exit 0', () => {
    const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/install-native.mjs');
    const run = spawnSync(process.execPath, [script], { env: { ...process.env, RFID_MOE_SKIP_NATIVE: '1' }, encoding: 'utf8' });
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/pure-TS engine will be used.*apt-get install libopenblas-dev liblapacke-dev.*npm rebuild rfid-moe/);
  });
});

// ---------------------------------------------------------------- the addon

const loaded = loadNativeEngine({ threads: 2 });
if (!loaded.ok) console.warn(`skipping native engine tests: ${loaded.reason} (to enable: ${loaded.fix})`);
const engine = (loaded.ok ? loaded.engine : undefined) as NativeEngine;

describe.skipIf(!loaded.ok)('native engine', () => {
  it('widens BF16 in place for the io layer once loaded, bit for bit (all 65,536 patterns, every tail length, a view at an offset)', () => {
    const addon = createRequire(import.meta.url)(nativeAddonPath) as { widenBf16(out: Float32Array): void };
    const reference = (h: number) => {
      const view = new DataView(new ArrayBuffer(4));
      view.setUint32(0, h << 16, true);
      return view.getUint32(0, true);
    };
    for (const count of [0, 1, 15, 16, 17, 33, 65536 + 3]) {
      for (const lead of [0, 1]) {
        // the result is a view `lead` floats into its buffer; its halves fill the upper half of its bytes
        const buffer = new ArrayBuffer((lead + count) * 4);
        const halves = new Uint16Array(buffer, (lead + count) * 4 - count * 2, count);
        for (let i = 0; i < count; i++) halves[i] = (i * 40503 + 7) & 0xffff;
        const want = Array.from(halves, reference);
        const out = new Float32Array(buffer, lead * 4, count);
        addon.widenBf16(out);
        expect(Array.from(new Uint32Array(buffer, lead * 4, count))).toEqual(want);
        // and the io layer's entry point now runs it
        halves.set(Uint16Array.from({ length: count }, (_, i) => (i * 40503 + 7) & 0xffff));
        widenHalvesInPlace('BF16', out);
        expect(Array.from(new Uint32Array(buffer, lead * 4, count))).toEqual(want);
      }
    }
    expect(() => addon.widenBf16(new Float64Array(2) as unknown as Float32Array)).toThrow(/out must be a Float32Array/);
  });

  it('rounds f32 to BF16 for the io layer once loaded, as f32BitsToBf16 does, bit for bit (ties, NaN, ±Inf, subnormals, max f32)', () => {
    const addon = createRequire(import.meta.url)(nativeAddonPath) as { roundToBf16(src: Float32Array, dst: Uint16Array): void };
    const special = [0, 0x80000000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0xffc00000, 0x7fbfffff, 0x00000001, 0x00008000, 0x00018000, 0x007fffff, 0x80008000];
    const count = 100_003; // a tail after every vector width
    const bits = new Uint32Array(count);
    bits.set(special);
    let x = 0x9e3779b9;
    for (let i = special.length; i < count; i++) {
      x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + i) >>> 0;
      // every fourth value a tie or one ulp beside it, where rounding decides
      bits[i] = i % 4 === 0 ? ((x & 0xffff0000) | 0x8000) + ((x >>> 3) % 3) - 1 : x;
    }
    const src = new Float32Array(bits.buffer);
    const want = Uint16Array.from(bits, (b) => f32BitsToBf16(b));
    const dst = new Uint16Array(count);
    addon.roundToBf16(src, dst);
    expect(dst.every((v, i) => v === want[i])).toBe(true);
    // the io layer's entry point now runs it, and a view at an offset is read from there
    const io = roundToBf16(src.subarray(5));
    expect(io.every((v, i) => v === want[i + 5])).toBe(true);
    expect(() => addon.roundToBf16(src, new Uint16Array(3))).toThrow(/dst holds 3 values and src 100003; pass arrays of the same length/);
  });

  it('looks codes up through per-block tables for the io layer once loaded, as the JavaScript loop does (BF16 patterns and f32, partial blocks, views at offsets)', () => {
    const addon = createRequire(import.meta.url)(nativeAddonPath) as { byteTableRows: ByteTableRows };
    const rows = 37;
    const cols = 301; // 3 blocks of 128, the last partial
    const blockCols = 128;
    const codes = Uint8Array.from({ length: rows * cols + 9 }, (_, i) => (Math.imul(i, 0x9e3779b1) >>> 24) & 0xff).subarray(9);
    const table16 = Uint16Array.from({ length: 3 * 256 }, (_, i) => Math.imul(i + 1, 40503) & 0xffff);
    const table32 = Float32Array.from({ length: 3 * 256 }, (_, i) => Math.fround(Math.sin(i) * 1000));
    for (const table of [table16, table32]) {
      const want = table instanceof Uint16Array ? new Uint16Array(rows * cols) : new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) want[r * cols + j] = table[256 * Math.floor(j / blockCols) + codes[r * cols + j]];
      const out = table instanceof Uint16Array ? new Uint16Array(rows * cols + 3).subarray(3) : new Float32Array(rows * cols + 3).subarray(3);
      addon.byteTableRows(out, codes, table, rows, cols, blockCols);
      expect(out).toEqual(want);
      // the io layer's entry point now runs it
      out.fill(0);
      byteTableRows(out, codes, table, rows, cols, blockCols);
      expect(out).toEqual(want);
    }
    expect(() => addon.byteTableRows(new Uint16Array(rows * cols), codes, table32, rows, cols, blockCols)).toThrow(/out and table must both be Uint16Arrays or both Float32Arrays/);
    expect(() => addon.byteTableRows(new Uint16Array(rows * cols), codes, table16.subarray(256), rows, cols, blockCols)).toThrow(/table must hold 256 entries per column block/);
    expect(() => addon.byteTableRows(new Uint16Array(rows * cols - 1), codes, table16, rows, cols, blockCols)).toThrow(/codes must hold rows × cols values and out at least as many/);
    expect(() => addon.byteTableRows(new Uint16Array(rows * cols), new Int8Array(codes.buffer) as unknown as Uint8Array, table16, rows, cols, blockCols)).toThrow(/codes must be a Uint8Array/);
  });

  it('reports OpenBLAS, its kernel and the thread count', () => {
    expect(engine.name).toBe('native');
    expect(engine.threads).toBe(2);
    expect(engine.describe()).toMatch(/^native \(OpenBLAS \d+\.\d+\.\d+, \w+ kernels.*2 threads\)$/);
    expect(engine.openblas.corename.length).toBeGreaterThan(0);
    if (process.env.OPENBLAS_CORETYPE) expect(engine.openblas.corename.toLowerCase()).toBe(process.env.OPENBLAS_CORETYPE.toLowerCase());
  });

  describe('argument validation', () => {
    const f32 = (n: number) => new Float32Array(n);
    const f64 = (n: number) => new Float64Array(n);

    it('gemm: wrong lengths, mixed dtypes, bad dims, aliasing', () => {
      expectEngineError(() => engine.gemm(2, 3, 4, f32(7), f32(12), f32(6)), /gemm: a has 7 elements but a 2×4 matrix needs 8/);
      expectEngineError(() => engine.gemm(2, 3, 4, f32(8), f32(11), f32(6), { transB: true }), /gemm: b has 11 elements but a 3×4/);
      expectEngineError(() => engine.gemm(2, 3, 4, f32(8), f32(12), f32(5)), /gemm: c has 5 elements.*2×3/);
      expectEngineError(() => engine.gemm(2, 3, 4, f32(8), f64(12) as unknown as Float32Array, f32(6)), /mixed precision/);
      expectEngineError(() => engine.gemm(2.5, 3, 4, f32(8), f32(12), f32(6)), /m must be a non-negative integer/);
      expectEngineError(() => engine.gemm(-1, 3, 4, f32(8), f32(12), f32(6)), /m must be a non-negative integer/);
      expectEngineError(() => engine.gemm(2, 3, 4, f32(8), f32(12), f32(6), { alpha: Number.NaN }), /alpha must be finite/);
      const plainArray = [1, 2, 3, 4] as unknown as Float32Array;
      expectEngineError(() => engine.gemm(2, 2, 2, plainArray, f32(4), f32(4)), /a must be a Float32Array or Float64Array/);
      const shared = f32(16);
      expectEngineError(() => engine.gemm(2, 2, 2, shared.subarray(0, 4), f32(4), shared.subarray(2, 6)), /c shares memory with a/);
      // 2^31 does not fit a BLAS int
      expectEngineError(() => engine.gemm(2 ** 31, 1, 1, f32(1), f32(1), f32(1)), /exceeds the 32-bit BLAS index range/);
    });

    it('syrk, cholesky, eigSym, solveTriangular: wrong shapes and types', () => {
      expectEngineError(() => engine.syrk(3, 2, f64(5), f64(9)), /syrk: a has 5 elements but a 3×2/);
      expectEngineError(() => engine.syrk(3, 2, f64(6), f64(8), { trans: true }), /syrk: c has 8 elements but a 3×3/);
      expectEngineError(() => engine.cholesky(3, f64(8)), /cholesky: a has 8 elements but a 3×3/);
      expectEngineError(() => engine.cholesky(2, new Float32Array(4) as unknown as Float64Array), /a must be a Float64Array/);
      expectEngineError(
        () => engine.cholesky(2, identity(2), { dampingSchedule: [1e-3, -1] }),
        /dampingSchedule\[1\] = -1 must be a positive/,
      );
      expectEngineError(() => engine.cholesky(2, Float64Array.from([1, 0, Number.NaN, 1])), /a\[1\]\[0\] is NaN or Inf/);
      expectEngineError(() => engine.eigSym(4, f64(15)), /eigSym: a has 15 elements but a 4×4/);
      expectEngineError(() => engine.solveTriangular(3, 2, f64(9), f64(5)), /solveTriangular: b has 5 elements but a 3×2/);
      const badSide = { side: 'up' as 'left' };
      expectEngineError(() => engine.solveTriangular(3, 2, identity(3), f64(6), badSide), /side must be 'left' or 'right'/);
      const singular = Float64Array.from([1, 0, 5, 0]);
      expectEngineError(() => engine.solveTriangular(2, 1, singular, f64(2)), /L is singular: diagonal element L\[1\]\[1\] = 0/);
    });

    it('svd family: wrong lengths, too large a rank, NaN input', () => {
      expectEngineError(() => engine.svd(4, 3, f32(11)), /svd: a has 11 elements but a 4×3/);
      expectEngineError(() => engine.svdTop(4, 3, f64(12), 4), /svdTop: rank r = 4 must be in \[1, min\(m, n\) = 3\]/);
      expectEngineError(() => engine.svdRandomized(4, 3, f32(12), 4), /svdRandomized: rank r = 4 must be in/);
      expectEngineError(() => engine.svdRandomized(4, 3, f32(12), 2, { seed: -1 }), /seed must be a non-negative safe integer/);
      const withInf = Float64Array.from([1, Number.POSITIVE_INFINITY, 0, 1]);
      expectEngineError(() => engine.singularValues(2, 2, withInf), /contains NaN or Inf \(first at flat index 1\)/);
      expectEngineError(() => engine.svd(2, 2, new Int32Array(4) as unknown as Float32Array), /Float32Array or Float64Array/);
    });

    it('refuses work after dispose, and a disposed engine leaves others usable', () => {
      const other = loadNativeEngine({ threads: 1 });
      expect(other.ok).toBe(true);
      if (!other.ok) return;
      other.engine.dispose();
      expectEngineError(() => other.engine.gemm(1, 1, 1, f32(1), f32(1), f32(1)), /disposed/);
      const c = f32(1);
      engine.gemm(1, 1, 1, Float32Array.of(3), Float32Array.of(4), c);
      expect(c[0]).toBe(12);
    });

    it("each engine's thread count is applied to OpenBLAS before its calls", () => {
      const addon = createRequire(import.meta.url)(nativeAddonPath) as { info(): { threads: number } };
      const one = loadNativeEngine({ threads: 1 });
      expect(one.ok).toBe(true);
      if (!one.ok) return;
      one.engine.gemm(1, 1, 1, f64(1), f64(1), f64(1));
      expect(addon.info().threads).toBe(1);
      engine.gemm(1, 1, 1, f64(1), f64(1), f64(1));
      expect(addon.info().threads).toBe(2);
    });

    it('rejects a non-positive thread count without throwing', () => {
      const bad = loadNativeEngine({ threads: 0 });
      expect(bad.ok).toBe(false);
      if (!bad.ok) expect(bad.reason).toMatch(/threads must be a positive integer/);
    });
  });

  describe('GEMM against an f64 triple loop', () => {
    const [m, n, k] = [37, 29, 53];
    for (const dtype of ['f32', 'f64'] as const) {
      for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        it(`${dtype} transA=${transA} transB=${transB}, with alpha and accumulation`, () => {
          const make = (len: number, seed: number): FloatArray =>
            dtype === 'f32' ? Float32Array.from(randomArray(len, seed)) : randomArray(len, seed);
          const a = make(m * k, 1);
          const b = make(k * n, 2);
          const c0 = make(m * n, 3);
          const tol = dtype === 'f32' ? 2e-5 : 1e-12;
          const product = naiveProduct(m, n, k, a, b, transA, transB);

          // beta = 0 must ignore C entirely, even NaN garbage.
          const c = (dtype === 'f32' ? new Float32Array(m * n) : new Float64Array(m * n)).fill(Number.NaN);
          engine.gemm(m, n, k, a as Float64Array, b as Float64Array, c as Float64Array, { transA, transB });
          expect(maxAbsDiff(c, product)).toBeLessThan(tol * k);

          const acc = c0.slice();
          engine.gemm(m, n, k, a as Float64Array, b as Float64Array, acc as Float64Array, { transA, transB, alpha: -0.5, beta: 1 });
          const expected = product.map((v, i) => -0.5 * v + c0[i]);
          expect(maxAbsDiff(acc, expected)).toBeLessThan(tol * k);
        });
      }
    }

    it('handles empty dimensions (k = 0 gives beta·C)', () => {
      const c = Float64Array.of(1, 2, 3, 4);
      engine.gemm(2, 2, 0, new Float64Array(0), new Float64Array(0), c, { beta: 2 });
      expect(Array.from(c)).toEqual([2, 4, 6, 8]);
      engine.gemm(0, 3, 2, new Float64Array(0), new Float64Array(6), new Float64Array(0));
    });
  });

  describe('syrk', () => {
    for (const trans of [false, true]) {
      it(`fills both triangles (trans=${trans}), f64 and f32, with accumulation`, () => {
        const [n, k] = [23, 41];
        const a = randomArray(n * k, 7);
        const gram = trans ? naiveProduct(n, n, k, a, a, true, false) : naiveProduct(n, n, k, a, a, false, true);
        const c = new Float64Array(n * n).fill(Number.NaN);
        engine.syrk(n, k, a, c, { trans });
        expect(maxAbsDiff(c, gram)).toBeLessThan(1e-12);

        const c32 = new Float32Array(n * n).fill(1);
        engine.syrk(n, k, Float32Array.from(a), c32, { trans, alpha: 2, beta: 1 });
        expect(maxAbsDiff(c32, gram.map((v) => 2 * v + 1))).toBeLessThan(1e-4);
      });
    }
  });

  describe('Cholesky', () => {
    const n = 40;
    // A = XᵀX with X 60×40 is positive definite (full column rank).
    const x = randomArray(60 * n, 11);
    const spd = naiveProduct(n, n, 60, x, x, true, false);

    it('L·Lᵀ = A with L lower-triangular, no damping, A untouched', () => {
      const before = spd.slice();
      const { L, damping } = engine.cholesky(n, spd);
      expect(damping).toBe(0);
      expect(spd).toEqual(before);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(L[i * n + j]).toBe(0);
      expect(maxAbsDiff(naiveProduct(n, n, n, L, L, false, true), spd) / maxAbs(spd)).toBeLessThan(1e-13);
    });

    it('reads only the lower triangle', () => {
      const lowerOnly = spd.slice();
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) lowerOnly[i * n + j] = 1e30;
      expect(maxAbsDiff(engine.cholesky(n, lowerOnly).L, engine.cholesky(n, spd).L)).toBe(0);
    });

    it('retries with damping on a rank-deficient Gram matrix and reports λ', () => {
      // XᵀX with X 10×40 has rank 10: positive semi-definite, not definite.
      const low = randomArray(10 * n, 12);
      const psd = naiveProduct(n, n, 10, low, low, true, false);
      let meanDiag = 0;
      for (let i = 0; i < n; i++) meanDiag += psd[i * n + i] / n;
      const { L, damping } = engine.cholesky(n, psd);
      expect(damping).toBeGreaterThan(0);
      expect([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]).toContain(damping);
      const damped = psd.map((v, idx) => (idx % (n + 1) === 0 ? v + damping * meanDiag : v));
      expect(maxAbsDiff(naiveProduct(n, n, n, L, L, false, true), damped) / maxAbs(psd)).toBeLessThan(1e-12);

      // A custom schedule is followed in order: the first λ that works is the one reported.
      expect(engine.cholesky(n, psd, { dampingSchedule: [0.5, 1e-6] }).damping).toBe(0.5);
    });

    it('throws a clear error when damping cannot help', () => {
      // Strongly indefinite: eigenvalues ±5 on a unit diagonal.
      const indefinite = Float64Array.from([1, 5, 5, 1]);
      expectEngineError(() => engine.cholesky(2, indefinite), /the 2×2 matrix is not positive definite.*even with damping λ = 0\.1/);
      expectEngineError(() => engine.cholesky(2, indefinite, { dampingSchedule: [] }), /damping is disabled/);
      expectEngineError(() => engine.cholesky(2, Float64Array.from([-1, 0, 0, -1])), /mean\(diag\(A\)\) = -1 is not positive/);
    });
  });

  it('eigSym: the 1-D Laplacian has eigenvalues 2 − 2cos(kπ/(n+1)); AV = VΛ, VᵀV = I, descending', () => {
    const n = 30;
    const lap = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      lap[i * n + i] = 2;
      if (i > 0) lap[i * n + i - 1] = lap[(i - 1) * n + i] = -1;
    }
    const before = lap.slice();
    const { values, vectors } = engine.eigSym(n, lap);
    expect(lap).toEqual(before);
    const exact = Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((n - k) * Math.PI) / (n + 1)));
    expect(maxAbsDiff(values, exact)).toBeLessThan(1e-13);
    expectDescending(values);
    expect(columnOrthonormalityError(n, n, vectors)).toBeLessThan(1e-13);
    const av = naiveProduct(n, n, n, lap, vectors);
    const vl = vectors.map((v, idx) => v * values[idx % n]);
    expect(maxAbsDiff(av, vl)).toBeLessThan(1e-13);
  });

  // Sizes past OpenBLAS's recursive/threaded dpotrf threshold and not multiples of the 32-wide
  // tiles the eigenvector transpose uses; the strict upper triangle of every input is NaN, which
  // both operations must never read (they copy only the lower triangle).
  describe('large inputs, lower triangle only (copy, NaN check, tiled transpose)', () => {
    const withNaNAbove = (n: number, a: Float64Array): Float64Array => {
      const out = a.slice();
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out[i * n + j] = Number.NaN;
      return out;
    };

    for (const threads of [1, 2]) {
      it(`cholesky 389 on ${threads} thread(s): L·Lᵀ = A, L exactly lower-triangular`, () => {
        const n = 389;
        const e = loadNativeEngine({ threads });
        if (!e.ok) throw new Error(e.reason);
        const x = randomArray(n * (n + 40), 31);
        const spd = naiveProduct(n, n, n + 40, x, x, false, true);
        const { L, damping } = e.engine.cholesky(n, withNaNAbove(n, spd));
        expect(damping).toBe(0);
        for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (L[i * n + j] !== 0) expect(L[i * n + j]).toBe(0);
        expect(maxAbsDiff(naiveProduct(n, n, n, L, L, false, true), spd) / maxAbs(spd)).toBeLessThan(1e-13);
        e.engine.dispose();
      });
    }

    it('cholesky 301 with damping: the retry restarts from A and L stays lower-triangular', () => {
      const n = 301;
      const low = randomArray(40 * n, 32);
      const psd = naiveProduct(n, n, 40, low, low, true, false); // rank 40: semi-definite only
      let meanDiag = 0;
      for (let i = 0; i < n; i++) meanDiag += psd[i * n + i] / n;
      const { L, damping } = engine.cholesky(n, withNaNAbove(n, psd));
      expect(damping).toBeGreaterThan(0);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (L[i * n + j] !== 0) expect(L[i * n + j]).toBe(0);
      const damped = psd.map((v, idx) => (idx % (n + 1) === 0 ? v + damping * meanDiag : v));
      expect(maxAbsDiff(naiveProduct(n, n, n, L, L, false, true), damped) / maxAbs(psd)).toBeLessThan(1e-12);
    });

    it('eigSym 269 with a known spectrum: values exact, AV = VΛ, VᵀV = I', () => {
      const n = 269;
      // A = Q·diag(λ)·Qᵀ with orthogonal Q: its eigenvalues are λ (distinct, both signs).
      const lambda = Array.from({ length: n }, (_, k) => 10 - (20 * k) / (n - 1) + (k % 7) * 1e-3);
      const q = orthogonal(n, 33);
      const ql = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) ql[i * n + j] = q[i * n + j] * lambda[j];
      const a = naiveProduct(n, n, n, ql, q, false, true);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i] = (a[i * n + j] + a[j * n + i]) / 2;
      const { values, vectors } = engine.eigSym(n, withNaNAbove(n, a));
      expect(maxAbsDiff(values, [...lambda].sort((x, y) => y - x))).toBeLessThan(1e-12);
      expectDescending(values);
      expect(columnOrthonormalityError(n, n, vectors)).toBeLessThan(1e-12);
      const av = naiveProduct(n, n, n, a, vectors);
      const vl = vectors.map((v, idx) => v * values[idx % n]);
      expect(maxAbsDiff(av, vl)).toBeLessThan(1e-11);
    });

    it('NaN or Inf in the lower triangle is reported with its position, in any row', () => {
      const n = 300;
      const a = identity(n);
      a[299 * n + 298] = Number.POSITIVE_INFINITY;
      expectEngineError(() => engine.cholesky(n, a), /cholesky: a\[299\]\[298\] is NaN or Inf/);
      expectEngineError(() => engine.eigSym(n, a), /eigSym: a\[299\]\[298\] is NaN or Inf/);
      a[299 * n + 298] = 0;
      a[150 * n + 150] = Number.NaN;
      expectEngineError(() => engine.eigSym(n, a), /eigSym: a\[150\]\[150\] is NaN or Inf/);
      expectEngineError(() => engine.eigSymTop(n, a, 10), /eigSymTop: a\[150\]\[150\] is NaN or Inf/);
    });

    it('eigSymTop 269 with a known spectrum, NaN above the diagonal: values exact, the 40 leading vectors', () => {
      const n = 269;
      const lambda = Array.from({ length: n }, (_, k) => 10 - (20 * k) / (n - 1) + (k % 7) * 1e-3);
      const q = orthogonal(n, 34);
      const ql = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) ql[i * n + j] = q[i * n + j] * lambda[j];
      const a = naiveProduct(n, n, n, ql, q, false, true);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i] = (a[i * n + j] + a[j * n + i]) / 2;
      const k = 40;
      const work = withNaNAbove(n, a);
      const { values, rows } = engine.eigSymTop(n, work, k);
      expect(maxAbsDiff(values, [...lambda].sort((x, y) => y - x))).toBeLessThan(1e-12);
      // rows as the columns of an n×k V: AV = VΛ_k, VᵀV = I
      const v = new Float64Array(n * k);
      for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) v[i * k + j] = rows[j * n + i];
      expect(columnOrthonormalityError(n, k, v)).toBeLessThan(1e-12);
      const av = naiveProduct(n, k, n, a, v);
      expect(maxAbsDiff(av, v.map((x, idx) => x * values[idx % k]))).toBeLessThan(1e-11);
    });
  });

  describe('SVD', () => {
    for (const [m, n] of [[30, 18], [18, 30]] as const) {
      const sigma = Array.from({ length: Math.min(m, n) }, (_, i) => 10 * 0.8 ** i);
      const a64 = matrixWithSpectrum(m, n, sigma, 5);

      it(`thin ${m}×${n}: known singular values, A = UΣVᵀ, orthonormal factors (f64 and f32)`, () => {
        const r = Math.min(m, n);
        const before = a64.slice();
        const res = engine.svd(m, n, a64);
        expect(a64).toEqual(before);
        expect(res.rank).toBe(r);
        expect(res.U.length).toBe(m * r);
        expect(res.Vt.length).toBe(r * n);
        expect(maxAbsDiff(res.S, sigma)).toBeLessThan(1e-13);
        expect(maxAbsDiff(reconstruct(m, n, r, res.U, res.S, res.Vt), a64)).toBeLessThan(1e-13);
        expect(columnOrthonormalityError(m, r, res.U)).toBeLessThan(1e-13);
        expect(columnOrthonormalityError(n, r, transpose(r, n, res.Vt))).toBeLessThan(1e-13);

        const a32 = Float32Array.from(a64);
        const res32 = engine.svd(m, n, a32);
        expect(res32.S).toBeInstanceOf(Float32Array);
        expect(maxAbsDiff(res32.S, sigma) / sigma[0]).toBeLessThan(1e-5);
        expect(maxAbsDiff(reconstruct(m, n, r, res32.U, res32.S, res32.Vt), a32)).toBeLessThan(1e-5);
      });

      it(`singularValues ${m}×${n}: exact spectrum in f64, from f32 or f64 input`, () => {
        const s = engine.singularValues(m, n, a64);
        expect(s).toBeInstanceOf(Float64Array);
        expect(maxAbsDiff(s, sigma)).toBeLessThan(1e-13);
        // f32 input: values of the rounded matrix, so within f32 rounding of A (‖ΔA‖₂ ≲ 1e-6·‖A‖).
        expect(maxAbsDiff(engine.singularValues(m, n, Float32Array.from(a64)), sigma)).toBeLessThan(1e-5);
      });

      it(`svdTop ${m}×${n}: the top r of the full decomposition, optimal truncation error`, () => {
        const r = 5;
        const top = engine.svdTop(m, n, a64, r);
        expect(top.rank).toBe(r);
        expect(maxAbsDiff(top.S, sigma.slice(0, r))).toBeLessThan(1e-13);
        expect(columnOrthonormalityError(m, r, top.U)).toBeLessThan(1e-13);
        // Eckart–Young: ‖A − A_r‖_F² = Σ_{i>r} σ_i².
        const residual = reconstruct(m, n, r, top.U, top.S, top.Vt).map((v, i) => a64[i] - v);
        const tail = sigma.slice(r).reduce((s, v) => s + v * v, 0);
        expect(residual.reduce((s, v) => s + v * v, 0)).toBeCloseTo(tail, 10);
      });
    }

    it('svdRandomized: recovers a decaying spectrum, orthonormal U, deterministic per seed', () => {
      const [m, n, r] = [120, 80, 10];
      const sigma = Array.from({ length: 80 }, (_, i) => 0.7 ** i);
      const a = matrixWithSpectrum(m, n, sigma, 9);
      const res = engine.svdRandomized(m, n, a, r, { seed: 3 });
      expect(res.rank).toBe(r);
      expect(res.U.length).toBe(m * r);
      expect(res.Vt.length).toBe(r * n);
      // With oversampling 16 and 2 power iterations the top 10 of this spectrum are near exact.
      expect(maxAbsDiff(res.S, sigma.slice(0, r))).toBeLessThan(1e-8);
      expect(columnOrthonormalityError(m, r, res.U)).toBeLessThan(1e-12);
      expect(columnOrthonormalityError(n, r, transpose(r, n, res.Vt))).toBeLessThan(1e-12);
      const residual = reconstruct(m, n, r, res.U, res.S, res.Vt).map((v, i) => a[i] - v);
      const optimal = Math.sqrt(sigma.slice(r).reduce((s, v) => s + v * v, 0));
      expect(Math.sqrt(residual.reduce((s, v) => s + v * v, 0)) / optimal).toBeLessThan(1.001);

      const again = engine.svdRandomized(m, n, a, r, { seed: 3 });
      expect(again.U).toEqual(res.U);
      // Without power iterations and oversampling a different seed gives a visibly different answer.
      const rough1 = engine.svdRandomized(m, n, a, r, { seed: 1, oversample: 0, powerIterations: 0 });
      const rough2 = engine.svdRandomized(m, n, a, r, { seed: 2, oversample: 0, powerIterations: 0 });
      expect(maxAbsDiff(rough1.S, rough2.S)).toBeGreaterThan(0);

      const res32 = engine.svdRandomized(m, n, Float32Array.from(a), r, { seed: 3 });
      expect(res32.U).toBeInstanceOf(Float32Array);
      expect(maxAbsDiff(res32.S, sigma.slice(0, r))).toBeLessThan(1e-5);
    });

    it('the sketch stream is standard normal, seeded, and is the Ω svdRandomized uses (column-major n×l)', () => {
      const count = 200_000;
      const z = engine.gaussianSketch(count, 5);
      const mean = z.reduce((s, v) => s + v, 0) / count;
      const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / count;
      const fourth = z.reduce((s, v) => s + v ** 4, 0) / count;
      // 5 standard errors: mean ±5/√N, variance ±5·√(2/N), E[z⁴] = 3 ± 5·√(96/N)
      expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(count));
      expect(Math.abs(variance - 1)).toBeLessThan(5 * Math.sqrt(2 / count));
      expect(Math.abs(fourth - 3)).toBeLessThan(5 * Math.sqrt(96 / count));
      expect(engine.gaussianSketch(10, 5)).toEqual(z.subarray(0, 10));
      expect(engine.gaussianSketch(10, 6)).not.toEqual(z.subarray(0, 10));

      // No oversampling or power iterations: range(U) = range(A·Ω) exactly.
      const [m, n, r] = [40, 25, 6];
      const a = randomArray(m * n, 31);
      const omega = transpose(r, n, engine.gaussianSketch(n * r, 8)); // stream is column-major n×r
      const sketch = naiveProduct(m, r, n, a, omega);
      const { U } = engine.svdRandomized(m, n, a, r, { seed: 8, oversample: 0, powerIterations: 0 });
      const projected = naiveProduct(m, r, m, naiveProduct(m, m, r, U, U, false, true), sketch);
      expect(maxAbsDiff(projected, sketch) / maxAbs(sketch)).toBeLessThan(1e-12);
    });

    it('empty matrices give empty factors; rank 0 of a non-empty matrix is an error', () => {
      const res = engine.svd(0, 4, new Float64Array(0));
      expect([res.U.length, res.S.length, res.Vt.length, res.rank]).toEqual([0, 0, 0, 0]);
      expect(engine.singularValues(0, 4, new Float64Array(0)).length).toBe(0);
      expectEngineError(() => engine.svdTop(3, 2, new Float64Array(6), 0), /svdTop: rank r = 0 must be in \[1, min\(m, n\) = 2\]/);
      expectEngineError(() => engine.svdRandomized(3, 2, new Float64Array(6), 0), /rank r = 0 must be in/);
    });
  });

  describe('solveTriangular', () => {
    const n = 12;
    const m = 5;
    // A well-conditioned lower-triangular L (dominant diagonal) and its transpose as upper.
    const lower = randomArray(n * n, 21).map((v, idx) => {
      const [i, j] = [Math.floor(idx / n), idx % n];
      return j > i ? 0 : i === j ? 3 + Math.abs(v) : v;
    });
    const upper = transpose(n, n, lower);

    for (const side of ['left', 'right'] as const) {
      for (const isLower of [true, false]) {
        for (const transL of [false, true]) {
          it(`side=${side} lower=${isLower} transL=${transL}: op(L)·X = B`, () => {
            const tri = isLower ? lower : upper;
            const op = transL ? transpose(n, n, tri) : tri;
            const b = randomArray(n * m, 22);
            const x = b.slice();
            engine.solveTriangular(n, m, tri, x, { side, lower: isLower, transL });
            const back = side === 'left' ? naiveProduct(n, m, n, op, x) : naiveProduct(m, n, n, x, op);
            expect(maxAbsDiff(back, b)).toBeLessThan(1e-13);
          });
        }
      }
    }
  });
});
