/**
 * Products with a few rows against a row-major weight matrix, C = alpha·A·Bᵀ + beta·C (the
 * native engine runs m ≤ 8 through its own kernels, native/small_gemm.cc, instead of sgemm):
 * every engine against an f64 sum of products (test/helpers/small-rows-check.ts), with alpha and
 * beta, and beta = 0 ignoring NaN already in C. The native kernels are compiled for several
 * instruction sets and the CPU's widest is used, so the narrower ones are checked in child
 * processes capped by RFID_MOE_NATIVE_SIMD.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { NATIVE_SIMD_LEVELS, invalidSimdSetting } from '../../src/engine/native.js';
import { SMALL_ROWS_SHAPES, checkSmallRows, uniform } from '../helpers/small-rows-check.js';
import { runCappedCheck, simdLevelsOf } from '../helpers/simd-levels.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(SMALL_ROWS_SHAPES)('m=%i n=%i k=%i: alpha·A·Bᵀ + beta·C against an f64 reference', (m, n, k) => {
    expect(checkSmallRows(engine, m, n, k)).toEqual([]);
  });

  it('beta = 0 ignores NaN already in C; a subarray view of A is read from its offset', () => {
    for (const [m, n, k] of [[5, 9, 13], [2, 9, 13], [8, 3, 900]]) {
      const backing = uniform(3 + m * k, 7);
      const a = backing.subarray(3);
      const b = uniform(n * k, 8);
      const c = new Float32Array(m * n).fill(Number.NaN);
      engine.gemm(m, n, k, a, b, c, { transB: true });
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let exact = 0;
          for (let p = 0; p < k; p++) exact += a[i * k + p] * b[j * k + p];
          expect(c[i * n + j]).toBeCloseTo(exact, 3);
        }
      }
    }
  });
});

const native = engines.find((e) => e.name === 'native');

function sameBits(x: Float32Array, y: Float32Array): boolean {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const v = new Uint32Array(y.buffer, y.byteOffset, y.length);
  return u.length === v.length && u.every((bits, i) => bits === v[i]);
}

// The native kernels read A's rows from a cache-line-aligned copy when they are not aligned
// already (JavaScript arrays rarely are): sixteen offsets of 4 bytes cover every position in a
// 64-byte line, so one of them is read in place and the others through the copy, with k that
// leaves rows unaligned, with m = 1 (no row stride) and past 8 rows (gemmBf16's passes of 8).
describe.skipIf(!native)('native small-rows products wherever A starts', () => {
  it.each([
    [1, 37, 300],
    [2, 37, 300],
    [4, 40, 512],
    [8, 37, 515],
    [8, 20, 1600],
    [12, 21, 64],
  ])('m=%i n=%i k=%i: the same bits at every offset of A, f32 and BF16 weights', (m, n, k) => {
    const b = uniform(n * k, 5);
    const bBf16 = new Uint16Array(n * k);
    for (let i = 0; i < b.length; i++) bBf16[i] = new Uint32Array(Float32Array.of(b[i]).buffer)[0] >>> 16;
    const a0 = uniform(m * k, 6);
    const results: Array<[Float32Array, Float32Array]> = [];
    for (let offset = 0; offset < 16; offset++) {
      const a = new Float32Array(offset + m * k).subarray(offset);
      a.set(a0);
      const c = new Float32Array(m * n);
      const cBf16 = new Float32Array(m * n);
      native!.gemm(m, n, k, a, b, c, { transB: true });
      native!.kernels.gemmBf16(m, n, k, a, bBf16, cBf16, 0);
      results.push([c, cBf16]);
    }
    for (let offset = 1; offset < 16; offset++) {
      expect(sameBits(results[offset][0], results[0][0]), `f32 weights, A at +${4 * offset} bytes`).toBe(true);
      expect(sameBits(results[offset][1], results[0][1]), `BF16 weights, A at +${4 * offset} bytes`).toBe(true);
    }
    // and the products themselves are right (the copy is of the whole of every row)
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let exact = 0;
        for (let p = 0; p < k; p++) exact += a0[i * k + p] * b[j * k + p];
        expect(results[0][0][i * n + j]).toBeCloseTo(exact, 3);
      }
    }
  });
});

describe('the native kernels of each instruction set (RFID_MOE_NATIVE_SIMD)', () => {
  const widest = native ? /own kernels (\w+)/.exec(native.describe())?.[1] : undefined;
  const levels = simdLevelsOf(native);

  it.skipIf(!native)('the engine names the instruction set its kernels use', () => {
    expect(NATIVE_SIMD_LEVELS).toContain(widest);
  });

  // The CPU's widest set runs in this process (above); each narrower one the CPU also runs, here.
  it.skipIf(!native || levels.length < 2).each(levels.slice(1))('capped at %s: every shape within its bound', (level) => {
    const { status, stderr, result } = runCappedCheck(level, 'test/helpers/small-rows-check.ts', 'SMALL_ROWS_SHAPES', 'checkSmallRows');
    expect(status, stderr).toBe(0);
    expect(result.describe).toContain(`own kernels ${level},`);
    expect(result.failures).toEqual([]);
    expect(result.count).toBe(0);
  }, 60_000);

  it('an unknown RFID_MOE_NATIVE_SIMD is refused with the values it may take', () => {
    expect(invalidSimdSetting({})).toBeUndefined();
    expect(invalidSimdSetting({ RFID_MOE_NATIVE_SIMD: 'avx2' })).toBeUndefined();
    expect(invalidSimdSetting({ RFID_MOE_NATIVE_SIMD: 'amx' })).toBeUndefined();
    expect(invalidSimdSetting({ RFID_MOE_NATIVE_SIMD: 'avx-512' })).toMatch(/RFID_MOE_NATIVE_SIMD is "avx-512"; it must be one of amx, avx512, avx2, baseline/);
  });
});
