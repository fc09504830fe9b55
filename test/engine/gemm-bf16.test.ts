/**
 * Products against weights kept in BF16 (ForwardKernels.gemmBf16, the served routed experts):
 * every engine against an f64 reference on the exactly widened matrix
 * (test/helpers/bf16-gemm-check.ts), beta = 0 ignoring NaN already in c, the native kernel of each
 * instruction set in a child process capped by RFID_MOE_NATIVE_SIMD, sizes refused before
 * anything is written. (Against gemm on the widened f32 matrix the native results are bit for bit
 * equal with the AVX2 kernels and differ in the last bit for some k with AVX-512, where the
 * compiler treats the two element types' tails differently; the bound here covers both.) With
 * BF16 matmul activations, every engine that offers them against the same reference on the
 * activations rounded to BF16: the native AMX kernels (where the CPU has them, in this process),
 * the dot kernel (AVX512_BF16; in a child process capped at avx512 on an AMX CPU), the f32
 * kernels on the rounded rows (narrower instruction sets; 1-2 rows beyond k = 4096 / 2048 below
 * AMX), on every thread count.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { BF16_ACTIVATION_THREAD_SHAPES, BF16_SHAPES, bf16Uniform, checkGemmBf16, checkGemmBf16Threads, widenBf16 } from '../helpers/bf16-gemm-check.js';
import { uniform } from '../helpers/small-rows-check.js';
import { expectClean, runCappedCheck, simdLevelsOf } from '../helpers/simd-levels.js';

const engines = await listAvailableEngines();
const bf16Engines = await listAvailableEngines({ matmulActivations: 'bf16' });
afterAll(() => [...engines, ...bf16Engines].forEach((e) => e.dispose()));

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(BF16_SHAPES)('m=%i n=%i k=%i: a·bᵀ + beta·c against an f64 reference on the widened b', (m, n, k) => {
    expect(checkGemmBf16(engine, m, n, k)).toEqual([]);
  });

  it('no rows, no columns or k = 0: c is beta·c (beta = 0 clears NaN)', () => {
    engine.kernels.gemmBf16(0, 3, 4, new Float32Array(0), new Uint16Array(12), new Float32Array(0), 0);
    const c = Float32Array.of(Number.NaN, 2);
    engine.kernels.gemmBf16(1, 2, 0, new Float32Array(0), new Uint16Array(0), c, 0);
    expect(Array.from(c)).toEqual([0, 0]);
    const d = Float32Array.of(3, -4);
    engine.kernels.gemmBf16(2, 1, 0, new Float32Array(0), new Uint16Array(0), d, 0.5);
    expect(Array.from(d)).toEqual([1.5, -2]);
  });

  // AMX splits each f32 row into three BF16 parts (amx_bf16.cc SplitRow): an infinity must not
  // leave a NaN in the parts after it, and a NaN stays a NaN
  it.each([2, 20])('%i rows: an infinite or NaN activation gives what the exact products give', (m) => {
    const n = 48;
    const k = 64;
    const a = uniform(m * k, 5);
    a[3] = Number.POSITIVE_INFINITY;
    a[k + 7] = Number.NaN;
    const b = bf16Uniform(n * k, 6);
    const w = widenBf16(b);
    const c = new Float32Array(m * n);
    engine.kernels.gemmBf16(m, n, k, a, b, c, 0);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < n; j++) {
        let want = 0;
        for (let p = 0; p < k; p++) want += a[i * k + p] * w[j * k + p];
        // row 0 is ±∞ wherever the weight beside the ∞ is nonzero, row 1 NaN throughout
        if (Number.isNaN(want)) expect(c[i * n + j], `C[${i},${j}]`).toBeNaN();
        else expect(c[i * n + j], `C[${i},${j}]`).toBe(want);
      }
    }
  });

  it('refuses wrong types, sizes and an output that overlaps an input, before writing', () => {
    const a = uniform(6, 1);
    const b = bf16Uniform(12, 2);
    const c = new Float32Array(8).fill(7);
    const k = engine.kernels;
    expect(() => k.gemmBf16(2, 4, 3, a, new Float32Array(12) as unknown as Uint16Array, c, 0)).toThrow(/b must be a Uint16Array/);
    expect(() => k.gemmBf16(2, 4, 3, a, b.subarray(1), c, 0)).toThrow(/b holds 11 values, expected 4×3/);
    expect(() => k.gemmBf16(2, 4, 3, a.subarray(1), b, c, 0)).toThrow(/a/);
    expect(() => k.gemmBf16(2, 4, 3, a, b, c.subarray(1), 0)).toThrow(/c/);
    expect(() => k.gemmBf16(2, 4, -1, a, b, c, 0)).toThrow(/k/);
    const shared = new Float32Array(14);
    expect(() => k.gemmBf16(2, 4, 3, shared.subarray(0, 6), b, shared.subarray(6, 14), 0)).not.toThrow();
    expect(() => k.gemmBf16(2, 4, 3, shared.subarray(2, 8), b, shared.subarray(6, 14), 0)).toThrow(/shares memory/);
    const bytes = new ArrayBuffer(64);
    expect(() => k.gemmBf16(2, 4, 3, a, new Uint16Array(bytes, 0, 12), new Float32Array(bytes, 16, 8), 0)).toThrow(/shares memory/);
    expect(Array.from(c)).toEqual(new Array(8).fill(7));
  });
});

const native = engines.find((e) => e.name === 'native');

describe('native', () => {
  // with AMX the f32 activations run on the tiles too (split into three exact BF16 parts), so
  // the AVX-512 kernels are checked capped at avx512
  const levels = simdLevelsOf(native, { amx: true });
  it.skipIf(!native || levels.length < 2).each(levels.slice(1))('capped at %s: every shape within its bound', (level) => {
    expectClean(runCappedCheck(level, 'test/helpers/bf16-gemm-check.ts', 'BF16_SHAPES', 'checkGemmBf16'), `own kernels ${level},`);
  }, 120_000);

  // Below AVX-512 more than 32 rows go through widened panels, and a weight of fewer panels than
  // threads has its rows cut into blocks too, one a thread: every unit must land where it belongs.
  it.skipIf(!native || levels.length < 2).each(levels.slice(1))('capped at %s: the panel path on 2, 3, 5 and 8 threads, within the bound and bit for bit where there is a panel a thread', (level) => {
    expectClean(runCappedCheck(level, 'test/helpers/bf16-gemm-check.ts', 'PANEL_THREAD_SHAPES', 'checkGemmBf16Threads'), `own kernels ${level},`);
  }, 120_000);

  // With OpenBLAS's AVX-512 kernels, products of 128 rows and more against weights of several
  // panels go through the panels and sgemm again (bf16_gemm.cc): the shapes of 130 rows take them.
  it.skipIf(!native || !levels.includes('avx512'))('with OpenBLAS running its SkylakeX kernels: every shape within its bound', () => {
    expectClean(runCappedCheck('avx512', 'test/helpers/bf16-gemm-check.ts', 'BF16_SHAPES', 'checkGemmBf16', { OPENBLAS_CORETYPE: 'SkylakeX' }), /SkylakeX kernels/);
  }, 120_000);

  // There the path depends on the thread count (the panels with a panel a thread, the tiled
  // product with fewer): on any count within the bound, bit for bit where the panels suffice.
  it.skipIf(!native || !levels.includes('avx512'))('with OpenBLAS running its SkylakeX kernels: 2, 3, 5 and 8 threads within the bound, bit for bit where there is a panel a thread', () => {
    expectClean(runCappedCheck('avx512', 'test/helpers/bf16-gemm-check.ts', 'PANEL_THREAD_SHAPES', 'checkGemmBf16Threads', { OPENBLAS_CORETYPE: 'SkylakeX' }), /SkylakeX kernels/);
  }, 120_000);
});

describe.each(bf16Engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(BF16_SHAPES)('m=%i n=%i k=%i: a rounded to BF16, then ·bᵀ + beta·c against an f64 reference', (m, n, k) => {
    expect(checkGemmBf16(engine, m, n, k)).toEqual([]);
  });
});

// More rows than one pass of AMX's many-rows product holds (64 MiB of A's parts, amx_bf16.cc
// kRowBlockBytes): at k = 8200 blocks of 672 rows split three ways (f32 activations) and of 2032
// rows (BF16 activations), the last block partial. Only the AMX kernels cut rows so.
describe('native on AMX tiles, rows in blocks', () => {
  const amx = [...engines, ...bf16Engines].filter((e) => e.name === 'native' && /own kernels amx/.test(e.describe()));
  // (an each() of no cases would leave the suite empty, which vitest fails: a CPU without AMX gets one skipped test that says so)
  if (amx.length === 0) it.skip('[skipped: this CPU has no AMX tiles, or the native engine is not built]', () => {});
  else {
    it.each(amx.map((e) => [e.matmulActivations, e] as const))('%s activations: m=2100 n=17 k=8200 within the bound', (_activations, engine) => {
      expect(checkGemmBf16(engine, 2100, 17, 8200)).toEqual([]);
    }, 120_000);
  }
});

describe('native, BF16 activations', () => {
  const bf16Native = bf16Engines.find((e) => e.name === 'native');
  const levels = simdLevelsOf(bf16Native, { amx: true });

  it.skipIf(!bf16Native)('2, 3, 5 and 8 threads: within the bound, and bit for bit the one-thread result on BF16 dot products', () => {
    expect(BF16_ACTIVATION_THREAD_SHAPES.flatMap(([m, n, k]) => checkGemmBf16Threads(bf16Native!, m, n, k))).toEqual([]);
  });

  // below AMX the BF16 dot products run them; narrower instruction sets have neither, and the
  // rounded rows go through the f32 kernels
  it.skipIf(!bf16Native || levels.length < 2).each(levels.slice(1))('capped at %s: every shape within its bound', (level) => {
    expectClean(runCappedCheck(level, 'test/helpers/bf16-gemm-check.ts', 'BF16_SHAPES', 'checkGemmBf16', {}, 'bf16'), `own kernels ${level},`);
  }, 120_000);
});
