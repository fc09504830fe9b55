/**
 * The shared output-side basis and the shared base + per-expert delta (compress/structures.ts) and
 * their place in the structure choice. Truth: exact identities of the objectives (the error at
 * rank K is the sum of the discarded eigenvalues; for a fixed orthonormal U the coefficients UᵀW
 * zero the gradient under any Gram; no other orthonormal U does better), ml-matrix least squares,
 * and a count of the stored numbers for the budget.
 */
import { Matrix, QrDecomposition } from 'ml-matrix';
import { afterAll, describe, expect, it } from 'vitest';
import { compressLayerType, reconstructExpert } from '../../src/compress/compress-layer.js';
import { parseRecipe } from '../../src/compress/recipe.js';
import { factoriseBaseDelta, factoriseOutputBasis, frequencyWeightedMean, outputBasisColumns, outputCoefficients } from '../../src/compress/structures.js';
import { refitCoefficients } from '../../src/compress/refit.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { anisotropicGram, gaussian, lowRankPlusNoise, toMatrix } from './fixtures.js';

// made at load time: the describe blocks below factorise their fixtures once, outside the tests
const engine = createTsEngine({ threads: 1 });
afterAll(() => engine.dispose());

/** tr(D·G·Dᵀ) = ‖D·Xᵀ‖² for D p×d, G d×d, in f64 through ml-matrix (independent of the engine) */
function outputEnergy(p: number, d: number, D: ArrayLike<number>, G: Float64Array): number {
  const Dm = toMatrix(p, d, D);
  return Dm.mmul(toMatrix(d, d, G)).mmul(Dm.transpose()).trace();
}

/** Experts around a common matrix (so a shared base or basis has something to share). */
function experts(n: number, p: number, d: number, seed: number, spread = 0.5): Float32Array[] {
  const common = lowRankPlusNoise(p, d, seed, 6, 0.1);
  return Array.from({ length: n }, (_, e) => {
    const own = lowRankPlusNoise(p, d, seed + 100 + e, 3, 0.05);
    return Float32Array.from(common, (v, i) => v + spread * own[i]);
  });
}

describe('shared output-side basis', () => {
  const p = 24;
  const d = 10;
  const n = 3;
  const Ws = experts(n, p, d, 1);
  const grams = Ws.map((_, e) => anisotropicGram(d, 40 + 10 * e, 7 + e).gram);
  const f = factoriseOutputBasis(engine, p, d, Ws, p, grams);

  it('U has orthonormal columns and the eigenvalues are descending', () => {
    const U = toMatrix(p, p, f.basis);
    const UtU = U.transpose().mmul(U);
    for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) expect(UtU.get(i, j)).toBeCloseTo(i === j ? 1 : 0, 5);
    for (let j = 1; j < p; j++) expect(f.energies[j]).toBeLessThanOrEqual(f.energies[j - 1] * (1 + 1e-12) + 1e-12);
    expect(f.whitened).toBe(true);
  });

  it('the output-space error at rank K is the sum of the discarded eigenvalues, and the total their sum', () => {
    const total = Ws.reduce((a, W, e) => a + outputEnergy(p, d, W, grams[e]), 0);
    expect(f.energies.reduce((a, b) => a + b, 0)).toBeCloseTo(total, 6 - Math.round(Math.log10(total)));
    for (const K of [1, 3, 7, 12]) {
      const U = outputBasisColumns(f, p, K);
      let err = 0;
      Ws.forEach((W, e) => {
        const C = outputCoefficients(engine, p, d, K, U, W);
        const UC = toMatrix(p, K, U).mmul(toMatrix(K, d, C));
        err += outputEnergy(p, d, Array.from(W, (v, i) => v - UC.get(Math.floor(i / d), i % d)), grams[e]);
      });
      let discarded = 0;
      for (let j = K; j < p; j++) discarded += f.energies[j];
      expect(Math.abs(err - discarded)).toBeLessThanOrEqual(1e-5 * total);
    }
  });

  it('for fixed U the coefficients UᵀW are optimal under each expert own Gram: gradient Uᵀ(W − U·C)·G is zero', () => {
    const K = 4;
    const U = outputBasisColumns(f, p, K);
    Ws.forEach((W, e) => {
      const C = outputCoefficients(engine, p, d, K, U, W);
      const Um = toMatrix(p, K, U);
      const R = toMatrix(p, d, W).sub(Um.mmul(toMatrix(K, d, C)));
      const grad = Um.transpose().mmul(R).mmul(toMatrix(d, d, grams[e]));
      const scale = toMatrix(p, d, W).mmul(toMatrix(d, d, grams[e])).norm();
      expect(grad.norm()).toBeLessThanOrEqual(1e-5 * scale);
    });
  });

  it('no random orthonormal U of the same rank does better', () => {
    const K = 4;
    let discarded = 0;
    for (let j = K; j < p; j++) discarded += f.energies[j];
    const rand = gaussian(5);
    for (let trial = 0; trial < 5; trial++) {
      const Q = new Matrix(p, K);
      for (let i = 0; i < p; i++) for (let j = 0; j < K; j++) Q.set(i, j, rand());
      const U = new QrDecomposition(Q).orthogonalMatrix.subMatrix(0, p - 1, 0, K - 1);
      let err = 0;
      Ws.forEach((W, e) => {
        const Wm = toMatrix(p, d, W);
        const R = Wm.sub(U.mmul(U.transpose().mmul(Wm)));
        err += outputEnergy(p, d, R.to1DArray(), grams[e]);
      });
      expect(err).toBeGreaterThanOrEqual(discarded * (1 - 1e-9));
    }
  });

  it('without Grams it is the SVD of [W_1 … W_k]: the eigenvalues are its squared singular values', () => {
    const raw = factoriseOutputBasis(engine, p, d, Ws, 3);
    const wide = new Matrix(p, n * d);
    Ws.forEach((W, e) => {
      for (let i = 0; i < p; i++) for (let j = 0; j < d; j++) wide.set(i, e * d + j, W[i * d + j]);
    });
    const sv = engine.singularValues(p, n * d, Float32Array.from(wide.to1DArray()));
    for (let j = 0; j < Math.min(p, n * d); j++) expect(raw.energies[j]).toBeCloseTo(sv[j] * sv[j], 3);
    expect(raw.whitened).toBe(false);
  });
});

describe('shared base plus per-expert delta', () => {
  const p = 12;
  const d = 16;
  const Ws = experts(3, p, d, 21, 0.2);
  const freq = [5, 0, 15];

  it('the base is the frequency-weighted mean (the plain mean with no routed token)', () => {
    const mean = frequencyWeightedMean(p, d, Ws, freq);
    for (let i = 0; i < p * d; i += 7) expect(mean[i]).toBeCloseTo((5 * Ws[0][i] + 15 * Ws[2][i]) / 20, 5);
    const plain = frequencyWeightedMean(p, d, Ws, [0, 0, 0]);
    for (let i = 0; i < p * d; i += 7) expect(plain[i]).toBeCloseTo((Ws[0][i] + Ws[1][i] + Ws[2][i]) / 3, 5);
  });

  it("each delta's output error at rank K is the sum of its discarded whitened energies (coefficients by least squares through its Gram)", () => {
    const grams = Ws.map((_, e) => anisotropicGram(d, 50, 30 + e).gram);
    const f = factoriseBaseDelta(engine, p, d, Ws, freq, Math.min(p, d), (j) => grams[j]);
    Ws.forEach((W, j) => {
      const D = Float32Array.from(W, (v, i) => v - f.base[i]);
      const total = outputEnergy(p, d, D, grams[j]);
      for (const K of [1, 4, 9]) {
        const A = refitCoefficients(engine, p, d, K, D, f.deltas[j].basis.slice(0, K * d), grams[j]);
        const AB = toMatrix(p, K, A).mmul(toMatrix(K, d, f.deltas[j].basis.slice(0, K * d)));
        const err = outputEnergy(p, d, Array.from(D, (v, i) => v - AB.get(Math.floor(i / d), i % d)), grams[j]);
        let discarded = 0;
        for (let k = K; k < f.deltas[j].energies.length; k++) discarded += f.deltas[j].energies[k];
        expect(Math.abs(err - discarded)).toBeLessThanOrEqual(1e-5 * total);
      }
    });
  });
});

describe('structure choice with the new candidates', () => {
  const p = 32;
  const d = 12;
  const n = 8;
  const freq = [40, 35, 30, 25, 20, 15, 10, 5];

  function run(structures: string[], Ws: Float32Array[], retain: number, residual = 0) {
    const grams = Ws.map((_, e) => anisotropicGram(d, 60, 50 + e).gram);
    const recipe = parseRecipe({ retain, preset: 'waterfill-whiten', structures, residual: { share: residual, gate: false } } as never);
    return { r: compressLayerType({ engine, recipe, matrices: Ws, p, d, frequencies: freq, gram: (e) => grams[e] }), grams };
  }

  /** every number the factors store, counted from the arrays themselves */
  function counted(r: ReturnType<typeof compressLayerType>): number {
    let s = 0;
    for (const g of r.groups) {
      s += g.basis.length + (g.base?.length ?? 0);
      g.coefficients.forEach((c) => (s += c.length));
      g.expertBases?.forEach((b) => (s += b.length));
      g.residual?.vectors.forEach((v) => (s += v.length));
    }
    return s;
  }

  it.each([['output-basis'], ['base-delta'], ['per-expert', 'input-basis', 'output-basis', 'base-delta']])('equal budget, exactly: %j', (...structures) => {
    for (const retain of [0.4, 0.6]) {
      for (const residual of [0, 0.02]) {
        const { r } = run(structures, experts(n, p, d, 3, 0.3), retain, residual);
        expect(counted(r)).toBe(r.params.stored);
        expect(r.params.stored).toBeLessThanOrEqual(retain * n * p * d);
        // water-filling stops only when no unit fits: what is left is less than the dearest unit
        const dearest = Math.max(p + 2 * d, d + 4 * p, p + d, p + 4 * d);
        expect(retain * n * p * d - r.params.stored).toBeLessThan(dearest);
      }
    }
  });

  it('the chosen structure has the lowest predicted error, and its measured output error is that prediction', () => {
    for (const spread of [0.05, 1]) {
      const Ws = experts(n, p, d, 11, spread);
      const { r } = run(['per-expert', 'input-basis', 'output-basis', 'base-delta'], Ws, 0.5);
      const cands = r.choices!.structure.candidates.filter((c) => c.feasible);
      expect(cands.map((c) => c.structure).sort()).toEqual(['base-delta', 'input-basis', 'output-basis', 'per-expert']);
      const bestRel = Math.min(...cands.map((c) => c.predictedRelError));
      const chosen = cands.find((c) => c.structure === r.choices!.structure.chosen)!;
      expect(chosen.predictedRelError).toBe(bestRel);
      // output-basis is exact in each expert's own Gram, the metric the report measures in
      const { r: out } = run(['output-basis'], Ws, 0.5);
      const predicted = out.choices!.structure.candidates[0].predictedRelError;
      expect(out.errors.outputRelBefore! ** 2).toBeCloseTo(predicted, 4);
    }
  });

  it('near-identical experts choose base + delta; unrelated ones do not', () => {
    expect(run(['per-expert', 'input-basis', 'output-basis', 'base-delta'], experts(n, p, d, 13, 0.02), 0.5).r.choices!.structure.chosen).toBe('base-delta');
    expect(run(['per-expert', 'input-basis', 'output-basis', 'base-delta'], experts(n, p, d, 13, 5), 0.5).r.choices!.structure.chosen).not.toBe('base-delta');
  });

  it('reconstructExpert follows the structure: Ŵ = U·C_e and Ŵ = W̄ + A_e·B_e', () => {
    for (const s of ['output-basis', 'base-delta']) {
      const { r } = run([s], experts(n, p, d, 17, 0.3), 0.6);
      const g = r.groups[0];
      expect(g.structure).toBe(s);
      const W = reconstructExpert(g, 1, engine);
      const ref =
        s === 'output-basis'
          ? toMatrix(p, g.rank, g.basis).mmul(toMatrix(g.rank, d, g.coefficients[1]))
          : toMatrix(p, d, g.base!).add(toMatrix(p, g.expertRanks![1], g.coefficients[1]).mmul(toMatrix(g.expertRanks![1], d, g.expertBases![1])));
      for (let i = 0; i < p * d; i += 5) expect(W[i]).toBeCloseTo(ref.get(Math.floor(i / d), i % d), 5);
    }
  });
});

describe('recipe option structures', () => {
  it('refuses structures without structure "auto", and the new ones without water-filling, naming the fix', () => {
    expect(() => parseRecipe({ retain: 0.5, structures: ['per-expert'] })).toThrow(/structure: "auto"/);
    expect(() => parseRecipe({ retain: 0.5, structure: 'auto', allocation: 'fused', structures: ['output-basis'] })).toThrow(/need allocation "waterfill"/);
    expect(() => parseRecipe({ retain: 0.5, preset: 'waterfill-whiten', structures: ['base-delta', 'base-delta'] } as never)).toThrow(/twice/);
    expect(parseRecipe({ retain: 0.5, preset: 'waterfill-whiten', structures: ['output-basis'] } as never).structures).toEqual(['output-basis']);
  });
});
