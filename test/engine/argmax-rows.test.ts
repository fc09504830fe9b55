/**
 * kernels.argmaxRows (the greedy token of each row of a logits block) of every available engine
 * against a reference written here from the definition: the first column holding the row's
 * largest value, NaN ignored, 0 for a row of NaN alone. Rows as wide as real vocabularies, the
 * maximum planted at the edges of the native kernel's 64-wide blocks, ties, infinities, NaN, and
 * sizes that must be refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { EngineError, type Engine } from '../../src/engine/types.js';
import { argmax } from '../../src/runtime/generation/sampling.js';
import { mulberry32 } from '../helpers/rng.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

/** the definition, on plain numbers */
function reference(row: ArrayLike<number>): number {
  const values = Array.from(row);
  const finiteOrInf = values.filter((v) => !Number.isNaN(v));
  if (finiteOrInf.length === 0) return 0;
  const max = finiteOrInf.reduce((a, b) => (b > a ? b : a));
  return values.findIndex((v) => v === max);
}

function block(rows: number, cols: number, seed: number, plant: (row: Float32Array, r: number) => void): Float32Array {
  const next = mulberry32(seed);
  const logits = new Float32Array(rows * cols);
  for (let i = 0; i < logits.length; i++) logits[i] = (next() - 0.5) * 20;
  for (let r = 0; r < rows; r++) plant(logits.subarray(r * cols, (r + 1) * cols), r);
  return logits;
}

function check(engine: Engine, rows: number, cols: number, logits: Float32Array): Int32Array {
  const out = new Int32Array(rows + 2).fill(-7);
  engine.kernels.argmaxRows(rows, cols, logits, out);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * cols, (r + 1) * cols);
    expect(out[r], `row ${r} of ${cols}`).toBe(reference(row));
    expect(argmax(row)).toBe(out[r]);
  }
  expect(Array.from(out.subarray(rows))).toEqual([-7, -7]); // nothing past `rows` written
  return out;
}

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine: Engine) => {
  it('the first column of the maximum, wherever it is, at vocabulary widths', () => {
    for (const cols of [1, 2, 7, 63, 64, 65, 127, 128, 130, 1000, 32000, 151936]) {
      const spots = [0, cols - 1, Math.floor(cols / 2), 63, 64, 127, 128].filter((j) => j < cols);
      const logits = block(spots.length, cols, cols, (row, r) => { row[spots[r]] = 50 + r; });
      const out = check(engine, spots.length, cols, logits);
      expect(Array.from(out.subarray(0, spots.length))).toEqual(spots);
    }
  });

  it('ties go to the lowest column, within a 64-wide block and across blocks', () => {
    const cols = 300;
    const pairs = [[3, 4], [10, 70], [63, 64], [64, 65], [130, 299], [0, 299]];
    const logits = block(pairs.length, cols, 5, (row, r) => { row[pairs[r][0]] = 40; row[pairs[r][1]] = 40; });
    const out = check(engine, pairs.length, cols, logits);
    expect(Array.from(out.subarray(0, pairs.length))).toEqual(pairs.map((p) => p[0]));
    // −0 and +0 are equal: the first of them
    const zeros = Float32Array.of(-1, -0, 0, -2);
    check(engine, 1, 4, zeros);
    expect(reference(zeros)).toBe(1);
  });

  it('NaN is ignored; infinities count; a row of NaN alone gives column 0', () => {
    const { NaN: n } = Number;
    const cases: number[][] = [
      [n, 1, 3, 2],
      [1, n, 3, n],
      [n, n, n],
      [-Infinity, -Infinity],
      [n, -Infinity, n, -Infinity],
      [1, Infinity, Infinity, n],
      [n, ...Array.from({ length: 200 }, (_, j) => (j === 150 ? 9 : -j))],
    ];
    const expected = [2, 2, 0, 0, 1, 1, 151];
    cases.forEach((row, i) => {
      const cols = row.length;
      const out = check(engine, 1, cols, Float32Array.from(row));
      expect(out[0]).toBe(expected[i]);
    });
    // NaN throughout a wide row except one value
    const wide = new Float32Array(5000).fill(n);
    wide[4321] = -1e30;
    expect(check(engine, 1, 5000, wide)[0]).toBe(4321);
  });

  it('refuses a logits block or an output shorter than its sizes', () => {
    const logits = new Float32Array(30);
    expect(() => engine.kernels.argmaxRows(4, 8, logits, new Int32Array(4))).toThrow(EngineError);
    expect(() => engine.kernels.argmaxRows(3, 10, logits, new Int32Array(2))).toThrow(EngineError);
    expect(() => engine.kernels.argmaxRows(-1, 10, logits, new Int32Array(2))).toThrow(EngineError);
  });
});
