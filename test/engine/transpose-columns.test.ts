/**
 * The native strided transpose (native/transpose.cc) against the JavaScript loop it replaces
 * (io/transpose.ts), bit for bit, on the odd sizes the tiles and the two-thread split must cover;
 * and its refusals of sizes that do not fit.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadNativeEngine, nativeAddonPath } from '../../src/engine/native.js';
import { setFastTransposeColumns, transposeColumns, transposeColumnsJs } from '../../src/io/transpose.js';
import { Rng } from '../helpers/rng.js';

type Arr = Uint16Array | Float32Array;
const loaded = loadNativeEngine();

describe.skipIf(!loaded.ok)('native transposeColumns', () => {
  const addon = createRequire(import.meta.url)(nativeAddonPath) as {
    transposeColumns(slab: Arr, rows: number, width: number, first: number, step: number, count: number, out: Arr): void;
  };

  /**
   * BF16: random bit patterns, NaNs included. f32: random values, no NaN: the JavaScript loop goes
   * through doubles, where V8 may quiet a signalling NaN, while the kernel copies bits.
   */
  function slabOf(kind: 'u16' | 'f32', n: number, rng: Rng): Arr {
    if (kind === 'u16') return Uint16Array.from({ length: n }, () => Math.floor(rng.next() * 65536));
    return Float32Array.from({ length: n }, () => rng.normal() * 2 ** Math.floor(rng.next() * 60 - 30));
  }
  /** the first index where the bits differ (-1: none); toEqual on millions of values is slow */
  function firstDifference(a: Arr, b: Arr): number {
    const x = bitsOf(a);
    const y = bitsOf(b);
    if (x.length !== y.length) return 0;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
    return -1;
  }
  const bitsOf = (a: Arr) => (a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a);

  const cases: Array<[rows: number, width: number, first: number, step: number, count: number]> = [
    [1, 1, 0, 1, 1],
    [7, 5, 0, 1, 5],
    [17, 10, 1, 2, 5],
    [33, 66, 0, 2, 33],
    [65, 40, 1, 2, 13], // count < width / step
    [31, 100, 3, 3, 30],
    [1100, 1001, 0, 1, 1001], // a million values: the two-thread split
    [1030, 2060, 1, 2, 1030],
    [70, 30000, 1, 2, 14999],
    [50, 9, 8, 1, 1],
  ];
  for (const kind of ['u16', 'f32'] as const) {
    it.each(cases)(`${kind}: rows %i, width %i, first %i, step %i, count %i`, (rows, width, first, step, count) => {
      const rng = new Rng(rows * 31 + width);
      const slab = slabOf(kind, rows * width, rng);
      const make = () => (kind === 'u16' ? new Uint16Array(count * rows) : new Float32Array(count * rows));
      const expected = transposeColumnsJs(slab, rows, { width, first, step, count }, make());
      const got = make();
      addon.transposeColumns(slab, rows, width, first, step, count, got);
      expect(firstDifference(got, expected)).toBe(-1);
      // spot check the loop itself against the definition
      const c = count - 1;
      expect(bitsOf(expected)[c * rows + rows - 1]).toBe(bitsOf(slab)[(rows - 1) * width + first + c * step]);
    });
  }

  it('is installed as the io hook when the addon loads, and serves views at offsets', () => {
    const hook = setFastTransposeColumns(undefined);
    expect(hook).toBeDefined();
    setFastTransposeColumns(hook);
    const rng = new Rng(3);
    const rows = 45, width = 38;
    const backing = slabOf('u16', rows * width + 3, rng) as Uint16Array;
    const slab = backing.subarray(3);
    const out = new Uint16Array(19 * rows + 1).subarray(1);
    transposeColumns(slab, rows, { width, first: 1, step: 2, count: 19 }, out);
    expect(out).toEqual(transposeColumnsJs(slab, rows, { width, first: 1, step: 2, count: 19 }, new Uint16Array(19 * rows)));
  });

  it('refuses sizes that do not fit, mixed element types, a zero step and overlapping arrays', () => {
    const slab = new Uint16Array(6 * 8);
    const t = (s: Arr, rows: number, width: number, first: number, step: number, count: number, out: Arr) => () => addon.transposeColumns(s, rows, width, first, step, count, out);
    expect(t(slab, 6, 8, 0, 2, 4, new Uint16Array(24))).not.toThrow();
    expect(t(slab, 6, 9, 0, 2, 4, new Uint16Array(24))).toThrow(/transposeColumns: slab must hold rows × width = 6×9 values, it holds 48/);
    expect(t(slab, 6, 8, 2, 2, 4, new Uint16Array(24))).toThrow(/pass the slab's width 8/);
    expect(t(slab, 6, 8, 0, 2, 4, new Uint16Array(25))).toThrow(/out must hold count × rows = 4×6 values, it holds 25/);
    expect(t(slab, 6, 8, 0, 0, 4, new Uint16Array(24))).toThrow(/step must be positive/);
    expect(t(slab, 6, 8, 0, 2, 4, new Float32Array(24))).toThrow(/slab and out must both be Uint16Arrays or both Float32Arrays/);
    expect(t(new Int16Array(48) as unknown as Uint16Array, 6, 8, 0, 2, 4, new Uint16Array(24))).toThrow(/slab and out must both be Uint16Arrays or both Float32Arrays/);
    expect(t(slab, -1, 8, 0, 2, 4, new Uint16Array(24))).toThrow(/transposeColumns/);
    expect(t(slab, 6, 8, 0, 2, 4, new Uint16Array(slab.buffer, 0, 24))).toThrow(/out must not share memory with slab/);
    // the JavaScript side refuses the same before any hook runs
    expect(() => transposeColumns(slab, 6, { width: 8, first: 2, step: 2, count: 4 }, new Uint16Array(24))).toThrow(RangeError);
    expect(() => transposeColumns(slab, 6, { width: 8, first: 0, step: 2, count: 4 }, new Uint16Array(23))).toThrow(RangeError);
  });
});
