/**
 * ForwardKernels.addTileResidual (a factored expert's 'tile' residual, out += x·Rᵀ with
 * R = unvec(P·η)): every engine against x·Rᵀ in f64, R built densely from the projection's
 * contract (bucket b = entries [⌊b·L/q⌋, ⌊(b+1)·L/q⌋), each η_b/√|b|, bounds in exact BigInt
 * arithmetic) and checked against the projection module's own reconstruction; buckets inside rows,
 * across several rows, one entry each, one for all; the engines against each other; refusals.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { createProjection } from '../../src/residual/projection.js';
import { mulberry32 } from '../helpers/rng.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

/** R (p×d, f64) of the tile projection, from its stated contract. */
function tileMatrix(p: number, d: number, q: number, eta: Float32Array): Float64Array {
  const L = BigInt(p * d);
  const R = new Float64Array(p * d);
  for (let b = 0; b < q; b++) {
    const start = Number((BigInt(b) * L) / BigInt(q));
    const end = Number((BigInt(b + 1) * L) / BigInt(q));
    for (let j = start; j < end; j++) R[j] = eta[b] / Math.sqrt(end - start);
  }
  return R;
}

/** out + x·Rᵀ in f64. */
function reference(d: number, p: number, R: Float64Array, x: Float32Array, rows: number, out: Float32Array): Float64Array {
  const want = Float64Array.from(out);
  for (let r = 0; r < rows; r++) for (let i = 0; i < p; i++) {
    let acc = 0;
    for (let j = 0; j < d; j++) acc += x[r * d + j] * R[i * d + j];
    want[r * p + i] += acc;
  }
  return want;
}

function inputs(p: number, d: number, q: number, rows: number, seed: number) {
  const r = mulberry32(seed);
  return {
    eta: Float32Array.from({ length: q }, () => 2 * r() - 1),
    x: Float32Array.from({ length: rows * d }, () => 2 * r() - 1),
    out: Float32Array.from({ length: rows * p }, () => r() - 0.5),
  };
}

// [label, p, d, q, rows]
const CASES: Array<[string, number, number, number, number]> = [
  ['buckets inside rows, q not dividing p·d', 37, 53, 400, 3],
  ['buckets spanning several rows', 16, 8, 5, 2],
  ['one entry per bucket (q = p·d)', 4, 6, 24, 2],
  ['one bucket for the whole matrix', 3, 5, 1, 2],
  ['one column', 7, 1, 3, 2],
  ['one row', 1, 13, 4, 3],
  ['many rows of x', 64, 256, 3001, 9],
  ['a long row (L = 600,009) with a prime q', 3, 200_003, 99_991, 1],
  ['no rows of x', 5, 7, 6, 0],
];

describe('the reference', () => {
  it("matches the projection module's reconstruction", () => {
    for (const [, p, d, q] of CASES.slice(0, 7)) {
      const { eta } = inputs(p, d, q, 0, q);
      const R = tileMatrix(p, d, q, eta);
      const fromProjection = createProjection({ scheme: 'tile', q, length: p * d, seed: 0 }).reconstruct(eta);
      for (let j = 0; j < R.length; j++) expect(Math.abs(fromProjection[j] - R[j])).toBeLessThanOrEqual(2 ** -23 * Math.abs(R[j]));
    }
  });
});

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(CASES)('%s: out += x·Rᵀ against f64', (_label, p, d, q, rows) => {
    const { eta, x, out } = inputs(p, d, q, rows, p * 31 + q);
    const want = reference(d, p, tileMatrix(p, d, q, eta), x, rows, out);
    engine.kernels.addTileResidual(d, p, q, eta, x, rows, out);
    for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - want[i])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want[i])));
  });

  it('refuses q outside 1..p·d, a short eta, x or out, before writing', () => {
    const { eta, x, out } = inputs(4, 8, 10, 2, 1);
    const before = Array.from(out);
    const k = engine.kernels;
    expect(() => k.addTileResidual(8, 4, 0, eta, x, 2, out)).toThrow(/q = 0 buckets cannot cover a 4×8 matrix/);
    expect(() => k.addTileResidual(8, 4, 33, new Float32Array(33), x, 2, out)).toThrow(/q = 33 buckets cannot cover a 4×8 matrix \(.*1 ≤ q ≤ p·d\)/);
    expect(() => k.addTileResidual(8, 4, 11, eta, x, 2, out)).toThrow(/eta has 10 elements but at least 11/);
    expect(() => k.addTileResidual(8, 4, 10, eta, new Float32Array(15), 2, out)).toThrow(/x has 15 elements but at least 16/);
    expect(() => k.addTileResidual(8, 4, 10, eta, x, 2, new Float32Array(7))).toThrow(/out has 7 elements but at least 8/);
    expect(() => k.addTileResidual(8, 4, 2.5, eta, x, 2, out)).toThrow(/q/);
    expect(Array.from(out)).toEqual(before);
  });
});

describe('the engines agree', () => {
  it.skipIf(engines.length < 2)('to f32 rounding on the same residual', () => {
    const [p, d, q, rows] = [64, 256, 3000, 4];
    const { eta, x } = inputs(p, d, q, rows, 5);
    const outs = engines.map((e) => {
      const out = new Float32Array(rows * p);
      e.kernels.addTileResidual(d, p, q, eta, x, rows, out);
      return out;
    });
    for (const o of outs.slice(1)) for (let i = 0; i < o.length; i++) expect(Math.abs(o[i] - outs[0][i])).toBeLessThanOrEqual(2 ** -22 * (1 + Math.abs(outs[0][i])));
  });
});
