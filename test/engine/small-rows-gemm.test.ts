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
    expect(invalidSimdSetting({ RFID_MOE_NATIVE_SIMD: 'avx-512' })).toMatch(/RFID_MOE_NATIVE_SIMD is "avx-512"; it must be one of avx512, avx2, baseline/);
  });
});
