import { describe, expect, it } from 'vitest';
import { Matrix, solve } from 'ml-matrix';
import { createProjection, type BucketScheme, type ProjectionDescriptor } from '../../src/residual/projection.js';
import { mixSeed, mulberry32 } from '../../src/residual/prng.js';

/** P built densely, column b = P·e_b. */
function densePFromReconstruct(desc: ProjectionDescriptor): Matrix {
  const proj = createProjection(desc);
  const P = new Matrix(desc.length, desc.q);
  for (let b = 0; b < desc.q; b++) {
    const e = new Float64Array(desc.q);
    e[b] = 1;
    const col = proj.reconstruct(e);
    for (let j = 0; j < desc.length; j++) P.set(j, b, col[j]);
  }
  return P;
}

function randomVector(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

describe.each<BucketScheme>(['tile', 'random'])('sparse projection (%s)', (scheme) => {
  const desc: ProjectionDescriptor = { scheme, q: 7, length: 45, seed: 1234 };

  it('has orthonormal columns: PᵀP = I, each entry in exactly one bucket, all buckets non-empty', () => {
    const P = densePFromReconstruct(desc);
    const PtP = P.transpose().mmul(P);
    for (let a = 0; a < desc.q; a++) for (let b = 0; b < desc.q; b++) expect(PtP.get(a, b)).toBeCloseTo(a === b ? 1 : 0, 6);
    for (let j = 0; j < desc.length; j++) {
      const nonzero = P.getRow(j).filter((v) => v !== 0);
      expect(nonzero.length).toBe(1);
    }
    const proj = createProjection(desc);
    const sizes = Array.from({ length: desc.q }, (_, b) => proj.bucketSize(b));
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(desc.length);
  });

  it('project(r) is Pᵀr and is the least-squares optimum of min‖r − Pη‖', () => {
    const P = densePFromReconstruct(desc);
    const r = randomVector(desc.length, 5);
    const eta = createProjection(desc).project(r);
    const rCol = Matrix.columnVector(Array.from(r));
    const PtR = P.transpose().mmul(rCol);
    // normal equations (PᵀP)η = Pᵀr solved independently by ml-matrix
    const ls = solve(P.transpose().mmul(P), PtR);
    for (let b = 0; b < desc.q; b++) {
      expect(eta[b]).toBeCloseTo(PtR.get(b, 0), 5);
      expect(eta[b]).toBeCloseTo(ls.get(b, 0), 5);
    }
    // and least squares through QR of P itself
    const qr = solve(P, rCol);
    for (let b = 0; b < desc.q; b++) expect(eta[b]).toBeCloseTo(qr.get(b, 0), 5);
  });

  it('P·η sets each entry to its bucket mean; recovered energy ‖η‖² ∈ [0, ‖r‖²]', () => {
    const proj = createProjection(desc);
    const r = randomVector(desc.length, 8);
    const eta = proj.project(r);
    const rec = proj.reconstruct(eta);
    const P = densePFromReconstruct(desc);
    for (let j = 0; j < desc.length; j++) {
      const b = P.getRow(j).findIndex((v) => v !== 0);
      const members = P.getColumn(b).map((v, i) => (v !== 0 ? i : -1)).filter((i) => i >= 0);
      const mean = members.reduce((a, i) => a + r[i], 0) / members.length;
      expect(rec[j]).toBeCloseTo(mean, 6);
    }
    const recovered = eta.reduce((a, v) => a + v * v, 0);
    const total = r.reduce((a, v) => a + v * v, 0);
    const after = r.reduce((a, v, j) => a + (v - rec[j]) ** 2, 0);
    expect(recovered).toBeGreaterThanOrEqual(0);
    expect(recovered).toBeLessThanOrEqual(total);
    expect(after).toBeCloseTo(total - recovered, 5); // Pythagoras: the residual of an orthogonal projection
  });

  it('is regenerated identically from its descriptor', () => {
    const r = randomVector(desc.length, 11);
    expect(createProjection(desc).project(r)).toEqual(createProjection({ ...desc }).project(r));
  });

  it('q = length reproduces r exactly', () => {
    const full = createProjection({ ...desc, q: desc.length });
    const r = randomVector(desc.length, 3);
    const rec = full.reconstruct(full.project(r));
    rec.forEach((v, j) => expect(v).toBeCloseTo(r[j], 6));
  });
});

describe('projection schemes', () => {
  it('tile buckets are contiguous runs', () => {
    const P = densePFromReconstruct({ scheme: 'tile', q: 4, length: 10, seed: 0 });
    const owner = Array.from({ length: 10 }, (_, j) => P.getRow(j).findIndex((v) => v !== 0));
    expect(owner).toEqual([0, 0, 1, 1, 1, 2, 2, 3, 3, 3]);
  });

  it('random buckets depend on the seed and are not contiguous', () => {
    const r = randomVector(1000, 1);
    const a = createProjection({ scheme: 'random', q: 50, length: 1000, seed: 1 }).project(r);
    const b = createProjection({ scheme: 'random', q: 50, length: 1000, seed: 2 }).project(r);
    const t = createProjection({ scheme: 'tile', q: 50, length: 1000, seed: 1 }).project(r);
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(t);
    expect(mixSeed(0, 1)).not.toBe(mixSeed(0, 2));
  });

  it('refuses impossible descriptors with the reason', () => {
    expect(() => createProjection({ scheme: 'tile', q: 11, length: 10, seed: 0 })).toThrow(/1 ≤ q ≤ length/);
    expect(() => createProjection({ scheme: 'tile', q: 0, length: 10, seed: 0 })).toThrow(/1 ≤ q ≤ length/);
    expect(() => createProjection({ scheme: 'zigzag' as BucketScheme, q: 1, length: 10, seed: 0 })).toThrow(/unknown bucket scheme/);
    const proj = createProjection({ scheme: 'tile', q: 2, length: 10, seed: 0 });
    expect(() => proj.project(new Float32Array(9))).toThrow(/9 entries/);
  });
});
