/**
 * ForwardKernels.addRowSegments (a factored expert's 'tile' residual applied as row segments):
 * every engine against x·Rᵀ in f64 with R built densely from the segments, for segments in row
 * order (as tileSegments writes them) and out of it, empty runs, several rows of x; the engines
 * against each other; and the refusals of segments outside R.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { RowSegments } from '../../src/engine/types.js';
import { mulberry32 } from '../helpers/rng.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

function segments(p: number, d: number, n: number, seed: number, ordered: boolean): RowSegments {
  const r = mulberry32(seed);
  const list = Array.from({ length: n }, () => {
    const a = Math.floor(r() * (d + 1));
    const b = Math.floor(r() * (d + 1));
    return { row: Math.floor(r() * p), from: Math.min(a, b), to: Math.max(a, b), value: 2 * r() - 1 };
  });
  if (ordered) list.sort((u, v) => u.row - v.row || u.from - v.from);
  return {
    row: Int32Array.from(list, (s) => s.row),
    from: Int32Array.from(list, (s) => s.from),
    to: Int32Array.from(list, (s) => s.to),
    value: Float64Array.from(list, (s) => s.value),
  };
}

/** out + x·Rᵀ in f64, R dense from the segments (overlapping segments add up). */
function reference(d: number, p: number, seg: RowSegments, x: Float32Array, rows: number, out: Float32Array): Float64Array {
  const R = new Float64Array(p * d);
  for (let s = 0; s < seg.row.length; s++) for (let j = seg.from[s]; j < seg.to[s]; j++) R[seg.row[s] * d + j] += seg.value[s];
  const want = Float64Array.from(out);
  for (let r = 0; r < rows; r++) for (let i = 0; i < p; i++) {
    let acc = 0;
    for (let j = 0; j < d; j++) acc += x[r * d + j] * R[i * d + j];
    want[r * p + i] += acc;
  }
  return want;
}

const CASES: Array<[string, number, number, number, number, boolean]> = [
  ['in row order', 37, 53, 400, 3, true],
  ['out of row order', 37, 53, 400, 3, false],
  ['one row of x, one segment', 5, 9, 1, 1, true],
  ['no segments', 4, 6, 0, 2, true],
  ['many rows of x', 16, 64, 700, 9, true],
];

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(CASES)('%s: out += x·Rᵀ against f64', (_label, p, d, n, rows, ordered) => {
    const seg = segments(p, d, n, p * 31 + n, ordered);
    const r = mulberry32(n + 7);
    const x = Float32Array.from({ length: rows * d }, () => 2 * r() - 1);
    const out = Float32Array.from({ length: rows * p }, () => r() - 0.5);
    const want = reference(d, p, seg, x, rows, out);
    engine.kernels.addRowSegments(d, p, seg, x, rows, out);
    for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - want[i])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want[i])));
  });

  it('refuses a segment outside R, segments of different lengths, and a short x, before writing', () => {
    const seg = segments(4, 8, 10, 1, true);
    const x = new Float32Array(2 * 8);
    const out = new Float32Array(2 * 4);
    const bad = (change: Partial<RowSegments>) => ({ ...seg, ...change });
    expect(() => engine.kernels.addRowSegments(8, 4, bad({ row: Int32Array.from(seg.row, (v, i) => (i === 3 ? 4 : v)) }), x, 2, out)).toThrow(/segment 3 \(row 4, columns .*\) is outside the 4×8 matrix/);
    expect(() => engine.kernels.addRowSegments(8, 4, bad({ to: Int32Array.from(seg.to, (v, i) => (i === 5 ? 9 : v)) }), x, 2, out)).toThrow(/segment 5 .* is outside the 4×8 matrix/);
    expect(() => engine.kernels.addRowSegments(8, 4, bad({ from: Int32Array.from(seg.from, (v, i) => (i === 2 ? seg.to[2] + 1 : v)) }), x, 2, out)).toThrow(/segment 2 .* is outside/);
    expect(() => engine.kernels.addRowSegments(8, 4, bad({ value: new Float64Array(9) }), x, 2, out)).toThrow(/segments disagree in length/);
    expect(() => engine.kernels.addRowSegments(8, 4, seg, new Float32Array(15), 2, out)).toThrow(/x has 15 elements but at least 16/);
    expect(Array.from(out)).toEqual(new Array(8).fill(0));
  });
});

describe('the engines agree', () => {
  it.skipIf(engines.length < 2)('to f32 rounding on the same segments', () => {
    const [p, d, n, rows] = [64, 256, 3000, 4];
    const seg = segments(p, d, n, 5, true);
    const r = mulberry32(3);
    const x = Float32Array.from({ length: rows * d }, () => 2 * r() - 1);
    const outs = engines.map((e) => {
      const out = new Float32Array(rows * p);
      e.kernels.addRowSegments(d, p, seg, x, rows, out);
      return out;
    });
    for (const o of outs.slice(1)) for (let i = 0; i < o.length; i++) expect(Math.abs(o[i] - outs[0][i])).toBeLessThanOrEqual(2 ** -22 * (1 + Math.abs(outs[0][i])));
  });
});
