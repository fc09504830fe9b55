/**
 * The forward kernels (Engine.kernels) of every available engine against f64 references written
 * here from the definitions. Tolerances are f32 rounding: the native kernels compute each exp in
 * f32 (≈1 ulp) and sum in f64, the ts kernels use Math.exp; both must land within a few f32 ulps
 * of the exact result. Also: masks are exact zeros, ties pick the first index, NaN propagates,
 * and bad sizes or indices throw EngineError instead of touching memory.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { EngineError, type Engine } from '../../src/engine/types.js';
import { mulberry32 } from '../helpers/rng.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

/** f32 unit roundoff */
const U = 2 ** -24;

function uniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** the masked softmax in f64, and each kept score's distance below its row max */
function referenceCausalSoftmax(scores: Float32Array, blocks: number, rows: number, cols: number, past: number, window: number | null) {
  const out = new Float64Array(scores.length);
  const spread = new Float64Array(scores.length);
  for (let r = 0; r < blocks * rows; r++) {
    const last = past + (r % rows);
    const first = window === null ? 0 : Math.max(0, last - window + 1);
    let max = -Infinity;
    for (let j = first; j <= last; j++) max = Math.max(max, scores[r * cols + j]);
    let sum = 0;
    for (let j = first; j <= last; j++) sum += Math.exp(scores[r * cols + j] - max);
    for (let j = first; j <= last; j++) {
      out[r * cols + j] = Math.exp(scores[r * cols + j] - max) / sum;
      spread[r * cols + j] = max - scores[r * cols + j];
    }
  }
  return { probs: out, spread };
}

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine: Engine) => {
  const k = engine.kernels;

  it.each([
    { blocks: 3, rows: 17, cols: 17, past: 0, window: null },
    { blocks: 2, rows: 5, cols: 300, past: 295, window: null },
    { blocks: 1, rows: 70, cols: 90, past: 20, window: 33 },
    { blocks: 4, rows: 1, cols: 129, past: 128, window: null },
  ])('causalSoftmax $blocks×$rows×$cols past $past window $window', ({ blocks, rows, cols, past, window }) => {
    const scores = uniform(blocks * rows * cols, 11 + cols, -30, 30);
    const { probs: expected, spread } = referenceCausalSoftmax(scores, blocks, rows, cols, past, window);
    k.causalSoftmax(blocks, rows, cols, past, window, scores);
    let worst = 0;
    for (let i = 0; i < scores.length; i++) {
      // f32 arithmetic rounds x − max (as torch does), an error of |x − max|·U in the exponent
      if (expected[i] === 0) expect(scores[i]).toBe(0);
      else worst = Math.max(worst, Math.abs(scores[i] - expected[i]) / (expected[i] * (2 + spread[i])));
    }
    expect(worst).toBeLessThan(4 * U);
  });

  it('causalSoftmax refuses a query that cannot see its own key, and wrong sizes', () => {
    expect(() => k.causalSoftmax(1, 4, 4, 1, null, new Float32Array(16))).toThrow(EngineError);
    expect(() => k.causalSoftmax(2, 4, 4, 0, null, new Float32Array(16))).toThrow(EngineError);
  });

  it('logitStats: max, first argmax, Σ exp(l − max) and the KL sum against f64', () => {
    const rows = 6;
    const cols = 4099; // not a multiple of any vector width or chunk
    const a = uniform(rows * cols, 5, -12, 9);
    const b = uniform(rows * cols, 6, -12, 9);
    // a tie for the max (the first index must win), and a row spanning exp's whole f32 range
    a[2 * cols + 100] = 20;
    a[2 * cols + 3000] = 20;
    for (let j = 0; j < cols; j++) a[4 * cols + j] = -87 * (j / cols);
    const out = { max: new Float64Array(rows), sumExp: new Float64Array(rows), argmax: new Int32Array(rows) };
    const weightedDiff = new Float64Array(rows);
    k.logitStats(rows, cols, a, out, { logits: b, weightedDiff });
    for (let r = 0; r < rows; r++) {
      const row = a.subarray(r * cols, (r + 1) * cols);
      let max = -Infinity;
      let arg = -1;
      row.forEach((v, j) => {
        if (v > max) [max, arg] = [v, j];
      });
      let sum = 0;
      let wd = 0;
      let wdScale = 0;
      row.forEach((v, j) => {
        const e = Math.exp(v - max);
        sum += e;
        wd += e * (v - b[r * cols + j]);
        wdScale += e * Math.abs(v - b[r * cols + j]);
      });
      expect(out.max[r]).toBe(max);
      expect(out.argmax[r]).toBe(arg);
      expect(Math.abs(out.sumExp[r] - sum) / sum).toBeLessThan(4 * U);
      expect(Math.abs(weightedDiff[r] - wd) / wdScale).toBeLessThan(4 * U);
    }
    expect(out.argmax[2]).toBe(100);
  });

  it('logitStats: a NaN logit makes the sum NaN (so the loss is reported non-finite)', () => {
    const a = uniform(2 * 40, 8, -3, 3);
    a[40 + 7] = NaN;
    const out = { max: new Float64Array(2), sumExp: new Float64Array(2), argmax: new Int32Array(2) };
    k.logitStats(2, 40, a, out);
    expect(Number.isFinite(out.sumExp[0])).toBe(true);
    expect(out.sumExp[1]).toBeNaN();
    expect(() => k.logitStats(3, 40, a, out)).toThrow(EngineError);
  });

  it('rmsNorm in place and out of place against f64', () => {
    const [rows, width] = [9, 131];
    const x = uniform(rows * width, 9, -4, 4);
    const w = uniform(width, 10, 0.5, 1.5);
    const eps = 1e-6;
    const out = new Float32Array(rows * width);
    k.rmsNorm(rows, width, x, w, eps, out);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let j = 0; j < width; j++) ss += x[r * width + j] ** 2;
      const inv = 1 / Math.sqrt(ss / width + eps);
      for (let j = 0; j < width; j++) {
        const e = w[j] * x[r * width + j] * inv;
        expect(Math.abs(out[r * width + j] - e)).toBeLessThanOrEqual(4 * U * Math.abs(e) + 1e-30);
      }
    }
    const copy = x.slice();
    k.rmsNorm(rows, width, copy, w, eps, copy);
    expect(copy).toEqual(out);
    expect(() => k.rmsNorm(rows, width, x, w.subarray(1), eps, out)).toThrow(EngineError);
  });

  it('siluMul against f64, including saturated gates', () => {
    const n = 1001;
    const gate = uniform(n, 12, -20, 20);
    gate[0] = -100;
    gate[1] = 100;
    gate[2] = 0;
    const up = uniform(n, 13, -2, 2);
    const expected = Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]);
    k.siluMul(n, gate, up);
    gate.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(6 * U * Math.abs(expected[i]) + 1e-37));
    expect(() => k.siluMul(n + 1, gate, up)).toThrow(EngineError);
  });

  it('rope rotates each head by its row position: the f32 rounding of the exact rotation, and norm-preserving', () => {
    const rows = 9;
    const heads = 3;
    const headDim = 8;
    const half = headDim / 2;
    const tablePositions = 40;
    // arbitrary angles (not a real frequency ladder): any table must be applied as given
    const angles = uniform(tablePositions * half, 20, -7, 7);
    const cos = Float32Array.from(angles, (a) => Math.cos(a));
    const sin = Float32Array.from(angles, (a) => Math.sin(a));
    const positions = Int32Array.from([0, 1, 2, 39, 5, 5, 17, 0, 38]);
    const x = uniform(rows * heads * headDim, 21, -3, 3);
    const before = Float32Array.from(x);
    k.rope(rows, heads, headDim, positions, cos, sin, x);
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < heads; h++) {
        const base = (r * heads + h) * headDim;
        let normBefore = 0;
        let normAfter = 0;
        for (let i = 0; i < half; i++) {
          const a = before[base + i];
          const b = before[base + i + half];
          const c = cos[positions[r] * half + i];
          const sn = sin[positions[r] * half + i];
          // f32·f32 products are exact in f64: one rounding to f64, one to f32
          expect(x[base + i]).toBe(Math.fround(a * c - b * sn));
          expect(x[base + i + half]).toBe(Math.fround(b * c + a * sn));
          normBefore += a * a + b * b;
          normAfter += x[base + i] ** 2 + x[base + i + half] ** 2;
        }
        expect(Math.abs(normAfter - normBefore)).toBeLessThanOrEqual(1e-5 * normBefore);
      }
    }
    // position 0 of a real table (angle 0) is the identity
    const identity = uniform(headDim, 22, -1, 1);
    const kept = Float32Array.from(identity);
    k.rope(1, 1, headDim, Int32Array.from([0]), new Float32Array(half).fill(1), new Float32Array(half), identity);
    expect(identity).toEqual(kept);

    expect(() => k.rope(rows, heads, headDim, Int32Array.from([...positions.slice(0, 8), 40]), cos, sin, x)).toThrow(/position 40 of row 8 is outside the tables/);
    expect(() => k.rope(rows, heads, headDim, Int32Array.from([-1, ...positions.slice(1)]), cos, sin, x)).toThrow(EngineError);
    expect(() => k.rope(rows, heads, 7, positions, cos, sin, x)).toThrow(/must be even/);
    expect(() => k.rope(rows + 1, heads, headDim, Int32Array.from([...positions, 0]), cos, sin, x)).toThrow(EngineError);
    expect(() => k.rope(rows, heads, headDim, positions, cos, sin.subarray(1), x)).toThrow(/give tables of one size/);
  });

  it('rope with a partial rotary width rotates the first rotaryDim values of each head as a head of that width, the rest untouched', () => {
    const rows = 5;
    const heads = 3;
    const headDim = 10;
    const rotaryDim = 4;
    const half = rotaryDim / 2;
    const angles = uniform(16 * half, 25, -7, 7);
    const cos = Float32Array.from(angles, (a) => Math.cos(a));
    const sin = Float32Array.from(angles, (a) => Math.sin(a));
    const positions = Int32Array.from([0, 3, 15, 7, 7]);
    const x = uniform(rows * heads * headDim, 26, -3, 3);
    // the reference: each head's first rotaryDim values copied out and rotated as whole heads
    const rotated = new Float32Array(rows * heads * rotaryDim);
    for (let i = 0; i < rows * heads; i++) rotated.set(x.subarray(i * headDim, i * headDim + rotaryDim), i * rotaryDim);
    k.rope(rows, heads, rotaryDim, positions, cos, sin, rotated);
    const before = Float32Array.from(x);
    k.rope(rows, heads, headDim, positions, cos, sin, x, rotaryDim);
    for (let i = 0; i < rows * heads; i++) {
      expect(x.subarray(i * headDim, i * headDim + rotaryDim)).toEqual(rotated.subarray(i * rotaryDim, (i + 1) * rotaryDim));
      expect(x.subarray(i * headDim + rotaryDim, (i + 1) * headDim)).toEqual(before.subarray(i * headDim + rotaryDim, (i + 1) * headDim));
    }
    expect(() => k.rope(rows, heads, headDim, positions, cos, sin, x, 12)).toThrow(/exceeds headDim/);
    expect(() => k.rope(rows, heads, headDim, positions, cos, sin, x, 5)).toThrow(/must be even/);
  });

  it('addInto adds element by element (one f32 rounding) and checks sizes', () => {
    const n = 1003;
    const target = uniform(n, 23, -5, 5);
    target[0] = 3e38;
    const source = uniform(n, 24, -5, 5);
    source[0] = 3e38; // overflows to Infinity, as f32 addition does
    const expected = Array.from(target, (t, i) => Math.fround(t + source[i]));
    k.addInto(n, target, source);
    expect(Array.from(target)).toEqual(expected);
    expect(target[0]).toBe(Infinity);
    expect(() => k.addInto(n + 1, target, source)).toThrow(EngineError);
    expect(() => k.addInto(n, target, source.subarray(1))).toThrow(EngineError);
  });

  it('gatherRows, scatterAddRows and copyBlock move the right rows', () => {
    const width = 7;
    const src = uniform(5 * width, 14, -1, 1);
    const index = Int32Array.from([4, 0, 4, 2]);
    const gathered = new Float32Array(4 * width);
    k.gatherRows(width, index, 4, src, gathered);
    index.forEach((row, i) => expect(gathered.subarray(i * width, (i + 1) * width)).toEqual(src.subarray(row * width, (row + 1) * width)));

    const weights = Float32Array.from([0.5, -1, 0.25, 2]);
    const dst = uniform(5 * width, 15, -1, 1);
    const expected = Float64Array.from(dst);
    index.forEach((row, i) => {
      for (let j = 0; j < width; j++) expected[row * width + j] += weights[i] * gathered[i * width + j];
    });
    k.scatterAddRows(width, index, weights, 4, gathered, dst);
    dst.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(4 * U * 4));

    // columns 3..5 of rows 1..3 of a 5×7 matrix into a 3×3 block at offset 2 with stride 4
    const block = new Float32Array(2 + 2 * 4 + 3);
    k.copyBlock(3, 3, src, 1 * width + 3, width, block, 2, 4);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(block[2 + i * 4 + j]).toBe(src[(1 + i) * width + 3 + j]);

    expect(() => k.gatherRows(width, Int32Array.from([5]), 1, src, gathered)).toThrow(EngineError);
    expect(() => k.scatterAddRows(width, Int32Array.from([-1]), weights, 1, gathered, dst)).toThrow(EngineError);
    expect(() => k.copyBlock(4, 3, src, 1 * width + 3, width, block, 2, 4)).toThrow(EngineError);
  });
});
