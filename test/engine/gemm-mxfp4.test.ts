/**
 * Products against weights kept in MXFP4 (ForwardKernels.gemmMxfp4, gpt-oss's experts held as
 * stored): every engine against an f64 reference on b decoded from the format's definition, and
 * bit for bit against its own gemmBf16 on b decoded to BF16 (test/helpers/mxfp4-gemm-check.ts);
 * every exponent from 0 to 255 with every code, infinities and zeros included; the native kernel of
 * each instruction set in a child process capped by RFID_MOE_NATIVE_SIMD (AVX-512 decodes with
 * permutes, narrower sets a lookup a code); bad arguments refused before anything is written.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { checkGemmMxfp4, decodeMxfp4, MXFP4_SHAPES } from '../helpers/mxfp4-gemm-check.js';
import { uniform } from '../helpers/small-rows-check.js';
import { expectClean, runCappedCheck, simdLevelsOf } from '../helpers/simd-levels.js';

const engines = await listAvailableEngines();
const bf16Engines = await listAvailableEngines({ matmulActivations: 'bf16' });
afterAll(() => [...engines, ...bf16Engines].forEach((e) => e.dispose()));

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(MXFP4_SHAPES)('m=%i n=%i k=%i: a·bᵀ + beta·c against an f64 reference, and gemmBf16 on b decoded', (m, n, k) => {
    expect(checkGemmMxfp4(engine, m, n, k)).toEqual([]);
  });

  it('every exponent with every code: each value exactly, ±infinity from 2^128, a zero code zero whatever the exponent', () => {
    // b: a row for each exponent s and code q, holding q at one place (it moves along the row, so
    // both nibbles and every place in a group are used) and zero codes elsewhere; a: a row of ones
    const k = 32;
    const n = 256 * 16;
    const blocks = new Uint8Array((n * k) / 2);
    const scales = new Uint8Array(n);
    for (let s = 0; s < 256; s++) {
      for (let q = 0; q < 16; q++) {
        const row = s * 16 + q;
        const place = (s + q) % k;
        blocks[row * 16 + (place >> 1)] = place % 2 === 0 ? q : q << 4;
        scales[row] = s;
      }
    }
    const want = decodeMxfp4(blocks, scales, n, k);
    // many rows go through gemmBf16's own product on B decoded, which on AMX tiles reads values
    // below 2^−126 (f32 subnormals) as zero and gives NaN for an infinite weight (the zero parts
    // of a split activation times it): exponents 0-1 and 253-255 here, never a real checkpoint's.
    // There the promise is gemmBf16's result, checked bit for bit below.
    const check = (m: number, extremes = true) => {
      const a = new Float32Array(m * k).fill(1);
      const c = new Float32Array(m * n).fill(Number.NaN);
      engine.kernels.gemmMxfp4(m, n, k, a, blocks, scales, c, 0);
      const wrong: string[] = [];
      for (let i = 0; i < m; i++) {
        for (let row = 0; row < n; row++) {
          const w = want[row * k + ((Math.floor(row / 16) + (row % 16)) % k)];
          if (!extremes && (!Number.isFinite(w) || (w !== 0 && Math.abs(w) < 2 ** -126))) continue;
          // a −0 code sums to +0 with the zeros around it
          if (c[i * n + row] !== (w === 0 ? 0 : w)) wrong.push(`rows ${m}: s=${row >> 4} code ${row % 16}: ${c[i * n + row]}, want ${w}`);
        }
      }
      return wrong.slice(0, 5);
    };
    // the reference reaches both ends: 2^−128 (0.5 at s = 0, an f32 subnormal), 1.5·2^127, and
    // +infinity for magnitudes 1-6 at s = 255, 2-6 at 254 and 4-6 at 253
    const values = Array.from(want);
    expect(values.filter((v) => v > 0).reduce((x, y) => Math.min(x, y))).toBe(2 ** -128);
    expect(values.filter(Number.isFinite).reduce((x, y) => Math.max(x, y))).toBe(1.5 * 2 ** 127);
    expect(values.filter((v) => v === Number.POSITIVE_INFINITY).length).toBe(6 + 4 + 2);
    // a decoding step's rows (B a panel at a time) and a prompt's (B decoded whole)
    expect(check(1)).toEqual([]);
    expect(check(3)).toEqual([]);
    expect(check(20, false)).toEqual([]);
    const a = new Float32Array(20 * k).fill(1);
    const c = new Float32Array(20 * n);
    engine.kernels.gemmMxfp4(20, n, k, a, blocks, scales, c, 0);
    const viaBf16 = new Float32Array(20 * n);
    const bits = new Uint32Array(new Float32Array(want).buffer);
    engine.kernels.gemmBf16(20, n, k, a, Uint16Array.from(bits, (b) => b >>> 16), viaBf16, 0);
    expect(c).toEqual(viaBf16);
  });

  it('refuses wrong types, sizes, k not a multiple of 32 and an output that overlaps an input, before writing', () => {
    const a = uniform(2 * 32, 1);
    const blocks = new Uint8Array(4 * 16);
    const scales = new Uint8Array(4);
    const c = new Float32Array(8).fill(7);
    const k = engine.kernels;
    expect(() => k.gemmMxfp4(2, 4, 32, a, new Uint16Array(64) as unknown as Uint8Array, scales, c, 0)).toThrow(/blocks must be a Uint8Array/);
    expect(() => k.gemmMxfp4(2, 4, 32, a, blocks.subarray(1), scales, c, 0)).toThrow(/blocks holds 63 values, expected 64/);
    expect(() => k.gemmMxfp4(2, 4, 32, a, blocks, scales.subarray(1), c, 0)).toThrow(/scales holds 3 values, expected 4/);
    expect(() => k.gemmMxfp4(2, 4, 16, a.subarray(0, 32), blocks.subarray(0, 32), scales.subarray(0, 2), c, 0)).toThrow(/k must be a multiple of 32/);
    expect(() => k.gemmMxfp4(2, 4, 32, a.subarray(1), blocks, scales, c, 0)).toThrow(/a/);
    expect(() => k.gemmMxfp4(2, 4, 32, a, blocks, scales, c.subarray(1), 0)).toThrow(/c/);
    const bytes = new ArrayBuffer(128);
    expect(() => k.gemmMxfp4(2, 4, 32, a, new Uint8Array(bytes, 0, 64), scales, new Float32Array(bytes, 32, 8), 0)).toThrow(/shares memory/);
    expect(Array.from(c)).toEqual(new Array(8).fill(7));
  });
});

describe.each(bf16Engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(MXFP4_SHAPES)('m=%i n=%i k=%i: a rounded to BF16, then ·bᵀ + beta·c against an f64 reference', (m, n, k) => {
    expect(checkGemmMxfp4(engine, m, n, k)).toEqual([]);
  });
});

describe('native', () => {
  const native = engines.find((e) => e.name === 'native');
  // AMX runs the many-rows product on B decoded, as gemmBf16 does: capped at avx512 and below too
  const levels = simdLevelsOf(native, { amx: true });
  it.skipIf(!native || levels.length < 2).each(levels.slice(1))('capped at %s: every shape within its bound and bit for bit gemmBf16\'s', (level) => {
    expectClean(runCappedCheck(level, 'test/helpers/mxfp4-gemm-check.ts', 'MXFP4_SHAPES', 'checkGemmMxfp4'), `own kernels ${level},`);
  }, 120_000);
});
