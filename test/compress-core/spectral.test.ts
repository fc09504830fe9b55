/**
 * The spectral path (beyond the paper): water-filling, whitened factorisation, refit, structure
 * choice, residual gate, unreached-expert fallback, presets. Truth: brute force, exact identities
 * of the whitened objective, ml-matrix least squares, and the errors of competing runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Matrix, solve } from 'ml-matrix';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { compressLayerType, reconstructExpert, type CompressLayerResult } from '../../src/compress/compress-layer.js';
import { factoriseGroup } from '../../src/compress/group-factorisation.js';
import { parseRecipe, validateRecipeForLayer, RecipeError, type RecipeInput } from '../../src/compress/recipe.js';
import { PRESET_NAMES } from '../../src/compress/presets.js';
import { refitCoefficients } from '../../src/compress/refit.js';
import { createProjection } from '../../src/residual/projection.js';
import { mixSeed } from '../../src/residual/prng.js';
import { waterfill, type WaterfillGroup } from '../../src/rank-allocation/waterfill.js';
import { anisotropicGram, gaussian, lowRankPlusNoise, toMatrix } from './fixtures.js';

let engine: Engine;
beforeAll(async () => {
  engine = (await createEngine('ts', { threads: 1 })).engine;
});
afterAll(() => engine.dispose());

describe('water-filling', () => {
  function bruteForce(groups: WaterfillGroup[], budget: number): number {
    // best kept gain over every rank vector with 1 ≤ K_g ≤ cap_g within the budget
    let best = -1;
    const ranks = groups.map(() => 1);
    const visit = (g: number, spent: number): void => {
      if (spent > budget) return;
      if (g === groups.length) {
        let gain = 0;
        groups.forEach((x, i) => {
          for (let j = 0; j < ranks[i]; j++) gain += x.weight * x.energies[j];
        });
        best = Math.max(best, gain);
        return;
      }
      for (let K = 1; K <= groups[g].cap; K++) {
        ranks[g] = K;
        visit(g + 1, spent + K * groups[g].unitCost);
      }
    };
    visit(0, 0);
    return best;
  }

  it('is optimal against brute force when unit costs are equal, and never exceeds the budget', () => {
    const rand = gaussian(7);
    for (let trial = 0; trial < 30; trial++) {
      const G = 3 + (trial % 2);
      const groups: WaterfillGroup[] = Array.from({ length: G }, () => {
        const e = Array.from({ length: 6 }, () => Math.abs(rand()) * 10).sort((a, b) => b - a);
        return { energies: e, weight: Math.abs(rand()) + 0.1, unitCost: 5, cap: 5 };
      });
      const budget = 5 * (G + (trial % 9));
      const r = waterfill(groups, budget);
      expect(r.usedParams).toBeLessThanOrEqual(budget);
      // no uncapped group could take one more unit
      r.ranks.forEach((K, g) => expect(K === groups[g].cap || r.leftoverParams < groups[g].unitCost).toBe(true));
      expect(r.keptGain).toBeCloseTo(bruteForce(groups, budget), 9);
    }
  });

  it('spends the exact budget with unequal costs and stays within one unit of the optimum gain', () => {
    const groups: WaterfillGroup[] = [
      { energies: [9, 4, 1, 0.5], weight: 1, unitCost: 7, cap: 4 },
      { energies: [8, 8, 2, 1], weight: 1, unitCost: 5, cap: 4 },
      { energies: [3, 2, 2, 2], weight: 1, unitCost: 3, cap: 4 },
    ];
    for (let budget = 15; budget <= 60; budget++) {
      const r = waterfill(groups, budget);
      expect(r.usedParams).toBeLessThanOrEqual(budget);
      r.ranks.forEach((K, g) => expect(K === groups[g].cap || r.leftoverParams < groups[g].unitCost).toBe(true));
      expect(bruteForce(groups, budget) - r.keptGain).toBeLessThanOrEqual(9 + 1e-12);
    }
  });

  it('a hand-checkable case: gain per parameter decides', () => {
    // group 0 units give 10/10 = 1 per param, group 1 units give 6/4 = 1.5 then 1/4
    const r = waterfill(
      [
        { energies: [10, 10, 10], weight: 1, unitCost: 10, cap: 3 },
        { energies: [6, 6, 1], weight: 1, unitCost: 4, cap: 3 },
      ],
      10 + 4 + 4 + 10,
    );
    expect(r.ranks).toEqual([2, 2]);
    expect(r.leftoverParams).toBe(0);
  });
});

describe('whitened factorisation', () => {
  const p = 10;
  const d = 16;
  const W = lowRankPlusNoise(p, d, 11, 5, 0.1);
  const { X, gram } = anisotropicGram(d, 60, 3);

  function outputError(approx: Float32Array): number {
    const D = toMatrix(p, d, W).sub(toMatrix(p, d, approx));
    return D.mmul(X.transpose()).norm('frobenius') ** 2;
  }

  it('Σ of the σ² left out is the exact output error ‖(W − A·B)Xᵀ‖², and beats plain SVD in output space', () => {
    const f = factoriseGroup(engine, p, d, W, 8, { gram });
    expect(f.whitening).toBe('cholesky');
    for (const K of [1, 3, 6]) {
      const B = f.basis.slice(0, K * d);
      const A = refitCoefficients(engine, p, d, K, W, B, gram);
      const approx = new Float32Array(p * d);
      engine.gemm(p, d, K, A, B, approx);
      let tail = 0;
      for (let j = K; j < f.energies.length; j++) tail += f.energies[j];
      expect(outputError(approx) / tail).toBeCloseTo(1, 3);
      const plain = factoriseGroup(engine, p, d, W, 8);
      const Bp = plain.basis.slice(0, K * d);
      const Ap = new Float32Array(p * K);
      engine.gemm(p, K, d, W, Bp, Ap, { transB: true });
      const approxPlain = new Float32Array(p * d);
      engine.gemm(p, d, K, Ap, Bp, approxPlain);
      expect(outputError(approx)).toBeLessThanOrEqual(outputError(approxPlain) * (1 + 1e-6));
    }
  });

  it('an unreached group (G = 0) falls back to the plain SVD instead of failing in the Cholesky', () => {
    const f = factoriseGroup(engine, p, d, W, 4, { gram: new Float64Array(d * d) });
    expect(f.whitening).toBe('identity-fallback');
    const plain = factoriseGroup(engine, p, d, W, 4);
    for (let j = 0; j < 4; j++) expect(f.energies[j]).toBeCloseTo(plain.energies[j], 8);
  });

  it('a stack larger than one block (m·d > 2²⁰), given as its experts, matches the SVD of the whitened stack', () => {
    // 4 experts of 2200×128: whitened rows go through XᵀX in blocks of 8192 rows, the block
    // boundary inside the last expert, each block read across expert boundaries
    const pp = 2200;
    const dd = 128;
    const experts = [0, 1, 2, 3].map((s) => lowRankPlusNoise(pp, dd, 40 + s, 6, 0.2));
    const m = 4 * pp;
    const { gram: G } = anisotropicGram(dd, 400, 9);
    const stacked = new Float32Array(m * dd);
    experts.forEach((x, j) => stacked.set(x, j * pp * dd));
    const f = factoriseGroup(engine, m, dd, experts, 20, { gram: Float64Array.from(G), gramIsScratch: true });
    const g = factoriseGroup(engine, m, dd, stacked, 20, { gram: G });
    expect(Array.from(f.basis)).toEqual(Array.from(g.basis));
    expect(Array.from(f.energies)).toEqual(Array.from(g.energies));
    // truth: σ² of M·L (Cholesky of G), by a singular-value routine on the whole f64 stack
    const { L } = engine.cholesky(dd, G);
    const ML = new Float64Array(m * dd);
    engine.gemm(m, dd, dd, Float64Array.from(stacked), L, ML);
    const sv = engine.singularValues(m, dd, ML);
    for (let j = 0; j < 20; j++) expect(f.energies[j] / sv[j] ** 2).toBeCloseTo(1, 8);
    // and the basis is orthonormal in the metric G: B·G·Bᵀ = I
    const B = toMatrix(20, dd, f.basis);
    const I = B.mmul(toMatrix(dd, dd, G)).mmul(B.transpose());
    for (let i = 0; i < 20; i++) for (let j = 0; j < 20; j++) expect(I.get(i, j)).toBeCloseTo(i === j ? 1 : 0, 4);
  });

  it('the m < d route (Gram of rows) gives the same spectrum and subspace as the m ≥ d route', () => {
    const wide = factoriseGroup(engine, p, d, W, 5); // p < d: XXᵀ route
    const Wt = new Float32Array(d * p);
    for (let i = 0; i < p; i++) for (let j = 0; j < d; j++) Wt[j * p + i] = W[i * d + j];
    const tall = factoriseGroup(engine, d, p, Wt, 5); // d ≥ p: XᵀX route
    for (let j = 0; j < 5; j++) expect(wide.energies[j]).toBeCloseTo(tall.energies[j], 8);
  });
});

describe('refit', () => {
  it('the closed form equals a direct least-squares solve on the activations', () => {
    const p = 6;
    const d = 9;
    const K = 3;
    const W = lowRankPlusNoise(p, d, 21, 4, 0.2);
    const B = lowRankPlusNoise(K, d, 22, 3, 0.5);
    const { X, gram } = anisotropicGram(d, 40, 5);
    const A = refitCoefficients(engine, p, d, K, W, B, gram);
    // each row a_i minimises ‖X·w_iᵀ − (X·Bᵀ)·a_iᵀ‖: ml-matrix's solver on the tall system
    const design = X.mmul(toMatrix(K, d, B).transpose());
    const target = X.mmul(toMatrix(p, d, W).transpose());
    const truth = solve(design, target).transpose();
    for (let i = 0; i < p; i++) for (let j = 0; j < K; j++) expect(A[i * K + j]).toBeCloseTo(truth.get(i, j), 3);
  });
});

describe('compressLayerType on the spectral path', () => {
  const p = 6;
  const d = 24;
  const n = 8;

  function grams(seed: number, tokensOf: (e: number) => number): Float64Array[] {
    return Array.from({ length: n }, (_, e) => (tokensOf(e) === 0 ? new Float64Array(d * d) : anisotropicGram(d, tokensOf(e), seed + e).gram));
  }

  function run(matrices: Float32Array[], frequencies: number[], recipe: RecipeInput, G: Float64Array[]): CompressLayerResult {
    return compressLayerType({ engine, recipe: parseRecipe(recipe), matrices, p, d, frequencies, gram: (e) => G[e] });
  }

  /** experts that share one input subspace (group wins) or each have their own (per-expert can win) */
  function layer(shared: boolean, seed: number): Float32Array[] {
    const g = gaussian(seed);
    const common = Array.from({ length: 3 * d }, g);
    return Array.from({ length: n }, (_, e) => {
      const W = lowRankPlusNoise(p, d, seed * 100 + e, 3, 0.02);
      if (shared) {
        W.fill(0);
        for (let i = 0; i < p; i++) for (let r = 0; r < 3; r++) {
          const c = g();
          for (let j = 0; j < d; j++) W[i * d + j] += c * common[r * d + j];
        }
        for (let j = 0; j < W.length; j++) W[j] += 0.01 * g();
      }
      return W;
    });
  }

  it('an expert calibration never reached gets a clear fallback, not a Cholesky error', () => {
    const matrices = layer(false, 3);
    const freq = [50, 40, 0, 30, 0, 20, 10, 5];
    const G = grams(30, (e) => freq[e]);
    // per expert: the unreached experts are whole groups with G = 0
    const r = run(matrices, freq, { retain: 0.5, preset: 'uniform-whiten' }, G);
    expect(r.warnings.join(' ')).toMatch(/2 group\(s\) saw no calibration token/);
    expect(r.choices?.whiteningFallbacks).toBe(2);
    // grouped with refit: unreached experts inside reached groups take the group's coefficients
    const r2 = run(matrices, freq, { retain: 0.5, preset: 'waterfill-whiten-grouped', groupSize: 2 }, G);
    for (const grp of r2.groups) for (let j = 0; j < grp.experts.length; j++) expect(reconstructExpert(grp, j, engine).every(Number.isFinite)).toBe(true);
  });

  it('structure "auto" picks the structure with the lower output-space error at equal budget', () => {
    for (const shared of [true, false]) {
      const matrices = layer(shared, shared ? 5 : 6);
      const freq = [90, 70, 60, 50, 40, 30, 20, 10];
      const G = grams(40, () => 50);
      const base = { retain: 0.5, preset: 'waterfill-whiten-norefit', residual: { share: 0 } } as const;
      const grouped = run(matrices, freq, { ...base, structure: 'grouped', groupSize: 4 }, G);
      const perExpert = run(matrices, freq, { ...base, structure: 'grouped', groupSize: 1 }, G);
      const auto = run(matrices, freq, { ...base, structure: 'auto', groupSize: 4 }, G);
      const better = grouped.errors.outputRel! <= perExpert.errors.outputRel! ? 4 : 1;
      expect(auto.choices?.structure.chosenGroupSize).toBe(better);
      expect(auto.errors.outputRel).toBeCloseTo(Math.min(grouped.errors.outputRel!, perExpert.errors.outputRel!), 6);
      if (shared) expect(better).toBe(4);
      // equal budget: both within one rank unit of the target
      for (const r of [grouped, perExpert]) expect(Math.abs(r.params.stored - 0.5 * r.params.original)).toBeLessThanOrEqual(4 * p + d);
    }
  });

  it('the residual gate drops a residual that does not pay and keeps one that does, reporting both gains', () => {
    const freq = [90, 70, 60, 50, 40, 30, 20, 10];
    const G = grams(50, () => 80);
    const recipe = { retain: 0.5, preset: 'waterfill-whiten-grouped', groupSize: 4, residual: { share: 0.1, gate: true } } as const;
    // noise-like residual: rank buys more than bucket means
    const noisy = run(layer(false, 8), freq, recipe, G);
    expect(noisy.choices?.residualGate?.kept).toBe(false);
    expect(noisy.choices!.residualGate!.rankGain).toBeGreaterThan(noisy.choices!.residualGate!.residualGain);
    expect(noisy.groups.every((g) => g.residual === undefined)).toBe(true);
    expect(noisy.params.residual).toBe(0);
    // wide experts: a shared rank-2 part the rank captures, plus a part constant on the residual's
    // random buckets (full rank, flat spectrum, exactly what the residual stores)
    const [pw, dw] = [4, 64];
    const L = pw * dw;
    const q = Math.floor(0.1 * L);
    const g = gaussian(9);
    const common = Array.from({ length: 2 * dw }, g);
    const wide = Array.from({ length: n }, (_, e) => {
      const W = new Float32Array(L);
      for (let i = 0; i < pw; i++) for (let r = 0; r < 2; r++) {
        const c = 3 * g();
        for (let j = 0; j < dw; j++) W[i * dw + j] += c * common[r * dw + j];
      }
      // experts sorted by frequency fill groups of 4 in index order here: group ⌊e/4⌋
      const P = createProjection({ scheme: 'random', q, length: L, seed: mixSeed(0, Math.floor(e / 4)) });
      P.addReconstruction(W, Float32Array.from({ length: q }, g));
      return W;
    });
    // isotropic inputs: the residual's weight-space optimum is then also its output-space optimum
    // (under anisotropic inputs bucket means can even raise the output error: the gate sees that too)
    const iso = Array.from({ length: n }, () => {
      const I = new Float64Array(dw * dw);
      for (let i = 0; i < dw; i++) I[i * dw + i] = 80;
      return I;
    });
    const kept = compressLayerType({
      engine,
      recipe: parseRecipe({ ...recipe, residual: { ...recipe.residual, buckets: 'random' } }),
      matrices: wide,
      p: pw,
      d: dw,
      frequencies: freq,
      gram: (e) => iso[e],
    });
    expect(kept.choices?.residualGate?.kept).toBe(true);
    expect(kept.choices!.residualGate!.residualGain).toBeGreaterThan(kept.choices!.residualGate!.rankGain);
    expect(kept.groups.every((grp) => grp.residual !== undefined)).toBe(true);

    // Peak memory changes nothing in the result: the gate's trial factors not held (spill limit 0:
    // a kept residual is factorised again) and the matrices handed over (let go group by group)
    // give both layers bit for bit, and leave the handed-over array empty.
    const noisyMatrices = layer(false, 8);
    const cases = [
      { want: noisy, matrices: noisyMatrices, args: { recipe: parseRecipe(recipe), p, d, gram: (e: number) => G[e] } },
      { want: kept, matrices: wide, args: { recipe: parseRecipe({ ...recipe, residual: { ...recipe.residual, buckets: 'random' } }), p: pw, d: dw, gram: (e: number) => iso[e] } },
    ];
    for (const { want, matrices, args } of cases) {
      const handed = matrices.map((w) => w.slice());
      const again = compressLayerType({ engine, ...args, matrices: handed, frequencies: freq, spillBasesOverBytes: 0, handOverMatrices: true });
      expect(handed.every((w) => w.length === 0)).toBe(true);
      expect(again.ranks).toEqual(want.ranks);
      expect(again.choices).toEqual(want.choices);
      expect(again.errors).toEqual(want.errors);
      again.groups.forEach((grp, g) => {
        const ref = want.groups[g];
        expect(Array.from(grp.basis)).toEqual(Array.from(ref.basis));
        grp.coefficients.forEach((A, j) => expect(Array.from(A)).toEqual(Array.from(ref.coefficients[j])));
        expect(grp.residual?.vectors.map((v) => Array.from(v))).toEqual(ref.residual?.vectors.map((v) => Array.from(v)));
      });
    }
  });

  it('bases parked on disk until the allocation (spillBasesOverBytes) give the same layer, bit for bit, as bases held in memory', () => {
    const matrices = layer(false, 14);
    const freq = [90, 70, 60, 50, 40, 30, 20, 10];
    const G = grams(70, (e) => 20 + 10 * e);
    for (const preset of ['default', 'waterfill-whiten-grouped'] as const) {
      const recipe = parseRecipe({ retain: 0.5, preset, groupSize: 2, residual: { share: 0.05, gate: true } });
      const common = { engine, recipe, matrices, p, d, frequencies: freq, gram: (e: number) => G[e] };
      const held = compressLayerType({ ...common, spillBasesOverBytes: Infinity });
      const parked = compressLayerType({ ...common, spillBasesOverBytes: 0 });
      expect(parked.ranks).toEqual(held.ranks);
      expect(parked.choices).toEqual(held.choices);
      expect(parked.errors).toEqual(held.errors);
      parked.groups.forEach((grp, g) => {
        expect(Array.from(grp.basis)).toEqual(Array.from(held.groups[g].basis));
        grp.coefficients.forEach((A, j) => expect(Array.from(A)).toEqual(Array.from(held.groups[g].coefficients[j])));
      });
    }
  });

  it('refit never raises the calibration output error of a shared basis', () => {
    const matrices = layer(false, 12);
    const freq = [90, 70, 60, 50, 40, 30, 20, 10];
    const G = grams(60, (e) => 20 + 10 * e);
    const base = { retain: 0.5, preset: 'waterfill-whiten-grouped', groupSize: 4, residual: { share: 0 } } as const;
    const refit = run(matrices, freq, { ...base, refit: true }, G);
    const group = run(matrices, freq, { ...base, refit: false }, G);
    expect(refit.ranks).toEqual(group.ranks);
    expect(refit.errors.outputRel!).toBeLessThanOrEqual(group.errors.outputRel! * (1 + 1e-3));
  });
});

describe('presets', () => {
  it('every preset parses, written fields win, unknown names are refused', () => {
    for (const name of PRESET_NAMES) expect(() => parseRecipe({ retain: 0.6, preset: name })).not.toThrow();
    const r = parseRecipe({ retain: 0.6, preset: 'waterfill-whiten', residual: { share: 0.01 }, refit: false });
    expect(r.residual).toMatchObject({ share: 0.01, gate: true });
    expect(r.refit).toBe(false);
    expect(r.preset).toBe('waterfill-whiten');
    expect(() => parseRecipe({ retain: 0.6, preset: 'best-ever' })).toThrow(RecipeError);
    expect(() => parseRecipe({ retain: 0.6, preset: 'best-ever' })).toThrow(/unknown preset "best-ever".*paper/);
  });

  it('the paper preset is the spec: K_total 22,413 at Qwen3-30B-A3B shapes (γ 0.6, β 0.03, k 4)', () => {
    const r = parseRecipe({ retain: 0.6, preset: 'paper' });
    expect(r).toMatchObject({ groupSize: 4, xi: 0.8, allocation: 'fused', rounding: 'largest-remainder', whiten: false, refit: false, structure: 'grouped' });
    expect(r.residual).toMatchObject({ share: 0.03, shareMode: 'absolute', buckets: 'tile', gate: false });
    expect(validateRecipeForLayer(r, { numExperts: 128, p: 768, d: 2048 }).kTotal).toBe(22413);
  });

  it('a saved recipe re-parses to itself (the preset is recorded, its values written out)', () => {
    const r = parseRecipe({ remove: 0.4, preset: 'default' });
    expect(parseRecipe(JSON.parse(JSON.stringify(r)))).toEqual(r);
  });
});
