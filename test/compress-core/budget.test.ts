import { describe, expect, it } from 'vitest';
import { allocateEqualRanks, allocateRanks } from '../../src/rank-allocation/allocate.js';
import { breakEvenRank, layerBudget, rankCap, storedParams } from '../../src/rank-allocation/budget.js';
import { groupSizesFor } from '../../src/compress/recipe.js';
import { mulberry32 } from '../../src/residual/prng.js';

describe('layerBudget on Qwen3-30B-A3B shapes (n 128, p 768, d 2048)', () => {
  const qwen = { n: 128, p: 768, d: 2048, k: 4, retain: 0.6, residualShare: 0.03 };

  it('gives K_total 22,413 and break-even 1,228 at γ 0.6, β 0.03, k 4', () => {
    const b = layerBudget(qwen);
    // floor((0.6 − 0.03)·128·768·2048 / (4·768 + 2048)) worked by hand (docs/method.md's example).
    expect(b.kTotal).toBe(22413);
    expect(b.breakEvenRank).toBe(1228);
    expect(b.originalParams).toBe(201_326_592);
    expect(b.residualPerExpert).toBe(47_185); // floor(0.03·768·2048) = floor(47185.92)
    expect(b.rankUnitCost).toBe(5120);
  });

  it('break-even: factors at that rank cost no more than dense, one more rank costs more', () => {
    for (const k of [1, 2, 3, 4, 8]) {
      const K = breakEvenRank(k, 768, 2048);
      expect(K * (k * 768 + 2048)).toBeLessThanOrEqual(k * 768 * 2048);
      expect((K + 1) * (k * 768 + 2048)).toBeGreaterThan(k * 768 * 2048);
      expect(rankCap(k, 768, 2048)).toBe(K);
    }
  });

  it('refuses retain outside (0, 1) and residual shares that leave no rank', () => {
    expect(() => layerBudget({ ...qwen, retain: 1 })).toThrow(/retain/);
    expect(() => layerBudget({ ...qwen, retain: 0 })).toThrow(/retain/);
    expect(() => layerBudget({ ...qwen, residualShare: 0.6 })).toThrow(/residual share/);
  });
});

describe('allocation meets the budget within one rank unit', () => {
  it('holds for many random (n, p, d, k, γ, β) with random scores', () => {
    const rand = mulberry32(12345);
    let checked = 0;
    for (let trial = 0; trial < 400; trial++) {
      const n = 1 + Math.floor(rand() * 64);
      const p = 1 + Math.floor(rand() * 300);
      const d = 2 + Math.floor(rand() * 300);
      const k = 1 + Math.floor(rand() * Math.min(n, 8));
      const retain = 0.05 + rand() * 0.9;
      const residualShare = rand() < 0.3 ? 0 : rand() * retain * 0.5;
      const sizes = groupSizesFor(n, k);
      let budget;
      try {
        budget = layerBudget({ n, p, d, k, retain, residualShare });
      } catch {
        continue;
      }
      const oneEach = sizes.reduce((a, s) => a + s * p + d, 0);
      const usable = sizes.reduce((a, s) => a + rankCap(s, p, d) * (s * p + d), 0);
      if (budget.rankBudgetParams < oneEach || rankCap(1, p, d) < 1 || budget.rankBudgetParams > usable) continue;
      // Skewed scores, some zero, as frequency shares can be.
      const scores = sizes.map(() => (rand() < 0.1 ? 0 : rand() ** 3));
      const alloc = allocateRanks(scores, sizes, { p, d, rankBudgetParams: budget.rankBudgetParams });
      const stored = storedParams(alloc.ranks, sizes, p, d, budget.residualPerExpert);
      const unit = k * p + d; // the largest rank unit of the layer
      expect(stored).toBeLessThanOrEqual(budget.targetParams + 1e-6);
      expect(budget.targetParams - stored).toBeLessThan(unit);
      // The budget guarantee in ratio form (docs/method.md): |stored/original − γ| < one rank unit / original.
      expect(Math.abs(stored / budget.originalParams - retain)).toBeLessThan(unit / budget.originalParams);
      // The stronger definition: no uncapped group could take one more rank unit.
      alloc.ranks.forEach((K, g) => {
        expect(K).toBeGreaterThanOrEqual(1);
        expect(K).toBeLessThanOrEqual(alloc.caps[g]);
        if (K < alloc.caps[g]) expect(alloc.leftoverParams).toBeLessThan(alloc.unitCosts[g]);
      });
      checked++;
    }
    expect(checked).toBeGreaterThan(200);
  });

  it('spends the whole budget in Qwen3 shapes with 32 groups of 4 (Σ K_g = K_total)', () => {
    const b = layerBudget({ n: 128, p: 768, d: 2048, k: 4, retain: 0.6, residualShare: 0.03 });
    const sizes = groupSizesFor(128, 4);
    const rand = mulberry32(7);
    const scores = sizes.map(() => 0.5 + rand());
    const alloc = allocateRanks(scores, sizes, { p: 768, d: 2048, rankBudgetParams: b.rankBudgetParams });
    expect(alloc.ranks.reduce((a, c) => a + c, 0)).toBe(b.kTotal);
    expect(alloc.kTotal).toBe(22413);
  });
});

describe('allocation properties', () => {
  const p = 64;
  const d = 96;

  it('is proportional to the scores when no bound binds', () => {
    const sizes = [2, 2, 2, 2];
    const unit = 2 * p + d;
    const alloc = allocateRanks([1, 2, 3, 4], sizes, { p, d, rankBudgetParams: 40 * unit });
    expect(alloc.ranks).toEqual([4, 8, 12, 16]);
    expect(alloc.leftoverParams).toBe(0);
  });

  it('gives every group at least 1 and never more than its cap, redistributing what the cap refuses', () => {
    const sizes = [1, 1, 1, 1];
    const cap = rankCap(1, p, d); // 38
    const unit = p + d;
    const alloc = allocateRanks([100, 1e-9, 0, 1], sizes, { p, d, rankBudgetParams: 60 * unit });
    expect(alloc.ranks[0]).toBe(cap);
    expect(alloc.ranks[1]).toBe(1);
    expect(alloc.ranks[2]).toBe(1);
    expect(alloc.ranks.reduce((a, c) => a + c, 0)).toBe(60);
  });

  it('is monotone in the score among groups of equal size', () => {
    const rand = mulberry32(99);
    for (let trial = 0; trial < 50; trial++) {
      const G = 3 + Math.floor(rand() * 20);
      const sizes = Array.from({ length: G }, () => 4);
      const scores = sizes.map(() => rand());
      const budget = (G + Math.floor(rand() * G * 20)) * (4 * p + d);
      const { ranks } = allocateRanks(scores, sizes, { p, d, rankBudgetParams: budget });
      for (let a = 0; a < G; a++) for (let b = 0; b < G; b++) if (scores[a] > scores[b]) expect(ranks[a]).toBeGreaterThanOrEqual(ranks[b]);
    }
  });

  it('hands leftover rank by largest remainder, ties to the lower group index', () => {
    const unit = p + d;
    // ideal ranks 2.5, 2.5, 2.5, 2.5 with budget 10 units: floors 2 each, two leftover units
    const alloc = allocateRanks([1, 1, 1, 1], [1, 1, 1, 1], { p, d, rankBudgetParams: 10 * unit });
    expect(alloc.ranks).toEqual([3, 3, 2, 2]);
    // ideal 1.2, 2.4, 3.6, 4.8 (budget 12): remainders .2 .4 .6 .8 → the two largest gain
    const b = allocateRanks([1, 2, 3, 4], [1, 1, 1, 1], { p, d, rankBudgetParams: 12 * unit });
    expect(b.ranks).toEqual([1, 2, 4, 5]);
  });

  it("the paper's floor rounding leaks budget that largest remainder spends", () => {
    const unit = p + d;
    const floor = allocateRanks([1, 2, 3, 4], [1, 1, 1, 1], { p, d, rankBudgetParams: 12 * unit, rounding: 'floor' });
    expect(floor.ranks).toEqual([1, 2, 3, 4]);
    expect(floor.leftoverParams).toBe(2 * unit);
  });

  it('accounts for a smaller last group costing less per rank', () => {
    const sizes = groupSizesFor(10, 4); // 4, 4, 2
    const budget = 30 * (4 * p + d) + 17;
    const alloc = allocateRanks([1, 1, 1], sizes, { p, d, rankBudgetParams: budget });
    expect(alloc.usedParams).toBeLessThanOrEqual(budget);
    alloc.ranks.forEach((K, g) => {
      if (K < alloc.caps[g]) expect(alloc.leftoverParams).toBeLessThan(alloc.unitCosts[g]);
    });
  });

  it('equal-rank baselines give one rank to all, floor(B / Σc_g)', () => {
    const b = layerBudget({ n: 8, p, d, k: 1, retain: 0.5, residualShare: 0 });
    const eq = allocateEqualRanks(groupSizesFor(8, 1), { p, d, rankBudgetParams: b.rankBudgetParams });
    expect(new Set(eq.ranks)).toEqual(new Set([Math.floor((0.5 * p * d) / (p + d))]));
  });

  it('refuses a budget below one rank per group, naming the fix', () => {
    expect(() => allocateRanks([1, 1], [4, 4], { p, d, rankBudgetParams: 100 })).toThrow(/one rank.*raise retain/);
    expect(() => allocateRanks([1, -1], [4, 4], { p, d, rankBudgetParams: 1e6 })).toThrow(/score/);
  });
});
