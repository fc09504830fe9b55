/**
 * The factored expert forward: y = (x·Bᵀ)·Aᵀ + x·Rᵀ with R = unvec(P·η) computed without
 * building R ('tile' prefix sums) must equal x·Wᵀ for W = A·B + R built densely; the FLOP rule
 * picks factored for few rows and the materialised matrix for many.
 */
import { Matrix } from 'ml-matrix';
import { afterAll, describe, expect, it } from 'vitest';
import { FactoredLinear, addTileResidual, applyCosts, type FactoredMatrix } from '../../src/compressed/factored-expert.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { createProjection, type BucketScheme } from '../../src/residual/projection.js';
import { gaussian } from '../compress-core/fixtures.js';
import { mulberry32 } from '../helpers/rng.js';

const engine = createTsEngine({ threads: 1 });
afterAll(() => engine.dispose());

function randomArray(n: number, seed: number): Float32Array {
  const g = gaussian(seed);
  return Float32Array.from({ length: n }, g);
}

function factored(p: number, d: number, rank: number, q: number, scheme: BucketScheme): FactoredMatrix {
  return {
    p,
    d,
    rank,
    basis: randomArray(rank * d, 1),
    coefficients: randomArray(p * rank, 2),
    residual: { descriptor: { scheme, q, length: p * d, seed: 9 }, vector: randomArray(q, 3) },
  };
}

/** x·Wᵀ with W = A·B + unvec(P·η), by ml-matrix in f64. */
function reference(m: FactoredMatrix, x: Float32Array, rows: number): Float64Array {
  const toM = (r: number, c: number, a: ArrayLike<number>) => new Matrix(Array.from({ length: r }, (_, i) => Array.from({ length: c }, (_, j) => a[i * c + j])));
  const R = createProjection(m.residual!.descriptor).reconstruct(m.residual!.vector);
  const W = toM(m.p, m.rank, m.coefficients).mmul(toM(m.rank, m.d, m.basis)).add(toM(m.p, m.d, R));
  return Float64Array.from(toM(rows, m.d, x).mmul(W.transpose()).to1DArray());
}

function maxRelErr(got: Float32Array, want: Float64Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / scale;
}

describe('factored expert matrices', () => {
  // q not dividing p·d and d not dividing bucket sizes: buckets straddle matrix rows
  it.each([
    ['tile', 7, 13, 3, 10],
    ['tile', 16, 32, 5, 96],
    ['tile', 5, 9, 2, 45],
    ['random', 12, 20, 4, 17],
  ] as const)('%s residual, %i×%i rank %i q %i: factored and materialised paths equal x·Wᵀ', (scheme, p, d, rank, q) => {
    const m = factored(p, d, rank, q, scheme);
    const rows = 6;
    const x = randomArray(rows * d, 4);
    const want = reference(m, x, rows);
    for (const mode of ['factored', 'materialised'] as const) {
      const out = new Float32Array(rows * p);
      new FactoredLinear(m, mode).apply(engine, x, rows, out);
      expect(maxRelErr(out, want)).toBeLessThan(1e-5);
    }
  });

  it('the tile residual term alone equals x·Rᵀ', () => {
    const p = 9;
    const d = 11;
    const desc = { scheme: 'tile' as const, q: 14, length: p * d, seed: 0 };
    const eta = randomArray(desc.q, 5);
    const R = createProjection(desc).reconstruct(eta);
    const x = randomArray(3 * d, 6);
    const out = new Float32Array(3 * p);
    addTileResidual(desc, eta, p, d, x, 3, out);
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < p; i++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += x[r * d + j] * R[i * d + j];
        expect(out[r * p + i]).toBeCloseTo(s, 5);
      }
    }
  });

  it('chooses by multiply-add count: factored for few rows, materialised for many at high rank', () => {
    // rank 60 is above p·d/(p + d) ≈ 42.7, where a factored row costs more than a dense one
    const m = factored(64, 128, 60, 100, 'tile');
    const linear = new FactoredLinear(m);
    expect(linear.pathFor(1)).toBe('factored');
    const many = 10_000;
    const cost = applyCosts(m, many);
    expect(cost.materialised).toBeLessThan(cost.factored);
    expect(linear.pathFor(many)).toBe('materialised');
    // a random-bucket residual costs a dense product either way, so materialising wins early
    expect(new FactoredLinear(factored(64, 128, 40, 100, 'random')).pathFor(64)).toBe('materialised');
  });

  it('with keepDense false builds a dense form for one call only: same output, and few rows stay factored afterwards', () => {
    for (const scheme of ['tile', 'random'] as const) {
      const m = factored(64, 128, 60, 100, scheme);
      const kept = new FactoredLinear(m);
      const dropped = new FactoredLinear(m, 'auto', { keepDense: false });
      const rows = scheme === 'tile' ? 10_000 : 64;
      expect(dropped.pathFor(rows)).toBe('materialised');
      const rand = mulberry32(21);
      const x = Float32Array.from({ length: rows * m.d }, () => rand() * 2 - 1);
      const a = new Float32Array(rows * m.p);
      const b = new Float32Array(rows * m.p);
      kept.apply(engine, x, rows, a);
      dropped.apply(engine, x, rows, b);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      // the default keeps the dense form, so one row then takes it too; keepDense false does not
      expect(kept.pathFor(1)).toBe('materialised');
      expect(dropped.pathFor(1)).toBe('factored');
      // and the factored path with a scattered residual neither keeps the p×d residual
      const one = new Float32Array(m.p);
      const factoredOnly = new FactoredLinear(m, 'factored', { keepDense: false });
      factoredOnly.apply(engine, x.subarray(0, m.d), 1, one);
      expect((factoredOnly as unknown as { scatteredResidual: Float32Array | null }).scatteredResidual).toBeNull();
      const keptResidual = new FactoredLinear(m, 'factored');
      const two = new Float32Array(m.p);
      keptResidual.apply(engine, x.subarray(0, m.d), 1, two);
      expect(Buffer.from(one.buffer).equals(Buffer.from(two.buffer))).toBe(true);
      expect((keptResidual as unknown as { scatteredResidual: Float32Array | null }).scatteredResidual !== null).toBe(scheme !== 'tile');
    }
  });
});
