/**
 * Products against weights kept in FP8 (ForwardKernels.gemmFp8, block-FP8 checkpoints' experts
 * held as stored): every engine against an f64 reference on b decoded from the format's definition,
 * and bit for bit against its own gemmBf16 on b decoded to BF16 (test/helpers/fp8-gemm-check.ts);
 * every code under scales that reach infinity, f32 subnormals and NaN; the native kernel of each
 * instruction set in a child process capped by RFID_MOE_NATIVE_SIMD; bad arguments refused before
 * anything is written.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { checkFp8Codes, checkGemmFp8, e4m3Value, FP8_CODE_ROWS, FP8_SHAPES } from '../helpers/fp8-gemm-check.js';
import { uniform } from '../helpers/small-rows-check.js';
import { expectClean, runCappedCheck, simdLevelsOf } from '../helpers/simd-levels.js';

const engines = await listAvailableEngines();
const bf16Engines = await listAvailableEngines({ matmulActivations: 'bf16' });
afterAll(() => [...engines, ...bf16Engines].forEach((e) => e.dispose()));

describe('the reference decoding', () => {
  it('gives E4M3\'s landmarks: 448 the largest, 2^-9 the smallest, NaN at 0x7f and 0xff only', () => {
    const values = Array.from({ length: 256 }, (_, c) => e4m3Value(c));
    expect(values.filter(Number.isNaN).length).toBe(2);
    expect([values[0x7e], values[0xfe], values[0x01], values[0x08], values[0x38], values[0x80]]).toEqual([448, -448, 2 ** -9, 2 ** -6, 1, -0]);
  });
});

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(FP8_SHAPES)('m=%i n=%i k=%i group=%i: a·bᵀ + beta·c against an f64 reference, and gemmBf16 on b decoded', (m, n, k, group) => {
    expect(checkGemmFp8(engine, m, n, k, group)).toEqual([]);
  });

  it.each(FP8_CODE_ROWS)('every code under every kind of scale, %i rows: rounded once to f32 and once to BF16, infinity past f32, subnormals, NaN codes', (m) => {
    expect(checkFp8Codes(engine, m)).toEqual([]);
  });

  it('refuses wrong types, sizes, a bad group and an output that overlaps an input, before writing', () => {
    const a = uniform(2 * 32, 1);
    const codes = new Uint8Array(4 * 32);
    const scales = new Float32Array(4 * 2);
    const c = new Float32Array(8).fill(7);
    const k = engine.kernels;
    expect(() => k.gemmFp8(2, 4, 32, a, new Uint16Array(128) as unknown as Uint8Array, scales, 16, c, 0)).toThrow(/codes must be a Uint8Array/);
    expect(() => k.gemmFp8(2, 4, 32, a, codes.subarray(1), scales, 16, c, 0)).toThrow(/codes holds 127 values, expected 128/);
    expect(() => k.gemmFp8(2, 4, 32, a, codes, scales.subarray(1), 16, c, 0)).toThrow(/scales holds 7 values, expected 8/);
    expect(() => k.gemmFp8(2, 4, 32, a, codes, scales, 32, c, 0)).toThrow(/scales holds 8 values, expected 4/);
    expect(() => k.gemmFp8(2, 4, 32, a, codes, scales, 0, c, 0)).toThrow(/group must be a positive integer/);
    expect(() => k.gemmFp8(2, 4, 32, a.subarray(1), codes, scales, 16, c, 0)).toThrow(/a/);
    expect(() => k.gemmFp8(2, 4, 32, a, codes, scales, 16, c.subarray(1), 0)).toThrow(/c/);
    const bytes = new ArrayBuffer(256);
    expect(() => k.gemmFp8(2, 4, 32, a, new Uint8Array(bytes, 0, 128), scales, 16, new Float32Array(bytes, 96, 8), 0)).toThrow(/shares memory/);
    expect(() => k.gemmFp8(2, 4, 32, a, codes, new Float32Array(bytes, 0, 8), 16, new Float32Array(bytes, 16, 8), 0)).toThrow(/shares memory/);
    expect(Array.from(c)).toEqual(new Array(8).fill(7));
  });
});

describe.each(bf16Engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(FP8_SHAPES)('m=%i n=%i k=%i group=%i: a rounded to BF16, then ·bᵀ + beta·c against an f64 reference', (m, n, k, group) => {
    expect(checkGemmFp8(engine, m, n, k, group)).toEqual([]);
  });
});

describe('native', () => {
  const native = engines.find((e) => e.name === 'native');
  // AMX runs the many-rows product on B decoded, as gemmBf16 does: capped at avx512 and below too
  const levels = simdLevelsOf(native, { amx: true });
  it.skipIf(!native || levels.length < 2).each(levels.slice(1))('capped at %s: every shape within its bound and bit for bit gemmBf16\'s, every code exact', (level) => {
    expectClean(runCappedCheck(level, 'test/helpers/fp8-gemm-check.ts', 'FP8_SHAPES', 'checkGemmFp8'), `own kernels ${level},`);
    expectClean(runCappedCheck(level, 'test/helpers/fp8-gemm-check.ts', 'FP8_CODE_ROWS', 'checkFp8Codes'), `own kernels ${level},`);
  }, 120_000);
});
