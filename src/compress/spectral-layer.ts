/**
 * The spectral path of one layer and matrix type (whitening, water-filling, structure choice,
 * refit, residual gate: every option beyond the paper). Three passes:
 *
 *  1. per candidate structure (per-expert, groups of k), one factorisation per group
 *     (group-factorisation.ts): its (whitened) spectrum and its basis rows up to the rank cap;
 *  2. allocation on those spectra under the exact budget; the structure with the lower predicted
 *     error at equal budget wins (Σ of the σ² left out is the exact error of the group objective
 *     Σ_i ‖(W_i − Ŵ_i)X_iᵀ‖² when whitened, of the frequency-weighted weight error when not);
 *  3. per group, the basis truncated to its rank, the coefficients (refit per expert against its
 *     own Gram, or in the group's metric), the residual and the errors.
 *
 * Residual gate: with residual.gate, the layer keeps the residual only when the energy it recovers
 * exceeds what the same parameters buy as rank (the drop in predicted error between the allocation
 * with and without the residual's share); the comparison is returned either way.
 */
import { performance } from 'node:perf_hooks';
import { allocateEqualRanks, allocateRanks } from '../rank-allocation/allocate.js';
import { rankCap, rankUnitCost, storedParams, type LayerBudget } from '../rank-allocation/budget.js';
import { fuseImportance, shareNormalise } from '../rank-allocation/fuse.js';
import { waterfill, type WaterfillGroup } from '../rank-allocation/waterfill.js';
import { effectiveRank } from '../svd/effective-rank.js';
import { affinityGroups } from './affinity.js';
import { compressGroup, poolErrors, stack, type CompressedGroup, type CompressLayerInput, type CompressLayerResult } from './compress-layer.js';
import { factoriseGroup, type GroupFactorisation } from './group-factorisation.js';
import { groupExperts } from './grouping.js';
import { effectiveGroupSize, effectiveXi, groupOrderOf, recipeFingerprint, resolvedResidualShare, usesEqualRanks } from './recipe.js';
import { gramTrace, refitCoefficients } from './refit.js';
import { sumGrams } from './whitening.js';

/**
 * Per-expert refit shrinks each expert's Gram towards its group's average input statistics with
 * the weight of this many tokens: negligible for an expert that saw thousands of tokens, while one
 * that saw a handful (or none) gets its group's coefficients instead of an underdetermined fit.
 */
export const REFIT_PRIOR_TOKENS = 32;

export interface StructureCandidate {
  groupSize: number;
  grouping: 'frequency' | 'index' | 'affinity';
  /** predicted error energy at this structure's allocation, over the total energy */
  predictedRelError: number;
  feasible: boolean;
}

export interface ResidualGate {
  /** energy the residual vectors recovered (output space when whitened) */
  residualGain: number;
  /** energy the same parameters recover as rank (drop in predicted error) */
  rankGain: number;
  params: number;
  kept: boolean;
}

export interface LayerChoices {
  structure: { chosenGroupSize: number; candidates: StructureCandidate[] };
  residualGate?: ResidualGate;
  /** groups no calibration token reached: plain SVD instead of whitening */
  whiteningFallbacks: number;
}

interface Candidate {
  groupSize: number;
  groups: number[][];
  facts: GroupFactorisation[];
  /** gain multiplier per group (1 whitened, 0 for unreached groups; frequency share on raw weights) */
  weights: number[];
  F: number[];
  E: number[];
  C: number[];
  eranks: number[];
  total: number;
}

function lostEnergy(c: Candidate, ranks: readonly number[]): number {
  let lost = 0;
  c.facts.forEach((f, g) => {
    for (let j = ranks[g]; j < f.energies.length; j++) lost += c.weights[g] * f.energies[j];
  });
  return lost;
}

/** Pass 1 for a model-wide allocation: the chosen structure's groups as water-filling input, each
 * layer's gains relative to its own total energy (so layers of different scale compare). */
export function planLayerSpectra(input: CompressLayerInput, budget: LayerBudget): { groups: WaterfillGroup[]; residualParams: number } {
  const q = resolvedResidualShare(input.recipe) > 0 ? budget.residualPerExpert : 0;
  const { best } = chooseStructure(input, q > 0 ? budget.rankBudgetParams : budget.targetParams);
  const c = best.c;
  const scale = c.total > 0 ? 1 / c.total : 0;
  return {
    groups: c.facts.map((f, g) => ({ energies: f.energies, weight: c.weights[g] * scale, unitCost: rankUnitCost(c.groups[g].length, input.p, input.d), cap: f.cap })),
    residualParams: input.matrices.length * q,
  };
}

function chooseStructure(input: CompressLayerInput, rankBudget: number): { best: { c: Candidate; ranks: number[]; rel: number }; candidates: StructureCandidate[] } {
  const { engine, recipe, matrices, p, d, frequencies } = input;
  const whiten = recipe.whiten !== false;
  const schedule = recipe.whiten !== false ? recipe.whiten.dampingSchedule : undefined;
  const k = effectiveGroupSize(recipe);
  const gramOf = (e: number): Float64Array => (input.gram as (e: number) => Float64Array)(e);
  const groupGram = (experts: readonly number[]): Float64Array => sumGrams(d, experts.map(gramOf));
  const formGroups = (size: number): number[][] => {
    if (size === 1) return groupExperts(frequencies, 1, groupOrderOf(recipe));
    if (recipe.grouping === 'affinity') return affinityGroups(engine, matrices, p, d, frequencies, size);
    return groupExperts(frequencies, size, groupOrderOf(recipe));
  };
  const sizesToTry = recipe.structure === 'auto' && recipe.allocation !== 'uniform' ? [...new Set([k, 1])] : [k];
  const candidates: StructureCandidate[] = [];
  let best: { c: Candidate; ranks: number[]; rel: number } | undefined;
  for (const size of sizesToTry) {
    const groups = formGroups(size);
    const sizes = groups.map((g) => g.length);
    const grouping = recipe.grouping ?? (groupOrderOf(recipe) === 'index' ? 'index' : 'frequency');
    const oneEach = sizes.reduce((a, s) => a + rankUnitCost(s, p, d), 0);
    if (oneEach > rankBudget || sizes.some((s) => rankCap(s, p, d) < 1)) {
      candidates.push({ groupSize: size, grouping, predictedRelError: NaN, feasible: false });
      continue;
    }
    const facts = groups.map((g) =>
      factoriseGroup(engine, g.length * p, d, stack(matrices, g, p, d), rankCap(g.length, p, d), {
        ...(whiten ? { gram: groupGram(g) } : {}),
        ...(schedule ? { dampingSchedule: schedule } : {}),
      }),
    );
    const F = shareNormalise(groups.map((g) => g.reduce((acc, e) => acc + frequencies[e], 0)));
    const eranks = facts.map((f) => effectiveRank(f.energies.map(Math.sqrt)));
    const E = shareNormalise(eranks);
    const C = fuseImportance(F, E, effectiveXi(recipe));
    const weights = whiten ? facts.map((f) => (f.whitening === 'identity-fallback' ? 0 : 1)) : F;
    let total = 0;
    facts.forEach((f, g) => f.energies.forEach((e) => (total += weights[g] * e)));
    const c: Candidate = { groupSize: size, groups, facts, weights, F, E, C, eranks, total };
    const ranks = allocateFor(input, c, rankBudget);
    const rel = total > 0 ? lostEnergy(c, ranks) / total : 0;
    candidates.push({ groupSize: size, grouping: size === 1 ? 'frequency' : grouping, predictedRelError: rel, feasible: true });
    if (!best || rel < best.rel) best = { c, ranks, rel };
  }
  if (!best) throw new Error(`no structure fits the rank budget of ${Math.floor(rankBudget)} parameters (one rank per group is the minimum)`);
  return { best, candidates };
}

function allocateFor(input: CompressLayerInput, c: Candidate, budgetParams: number): number[] {
  const { recipe, p, d } = input;
  const sizes = c.groups.map((g) => g.length);
  const opts = { p, d, rankBudgetParams: budgetParams, rounding: recipe.rounding };
  if (recipe.allocation === 'waterfill') {
    return waterfill(
      c.facts.map((f, g) => ({ energies: f.energies, weight: c.weights[g], unitCost: rankUnitCost(sizes[g], p, d), cap: f.cap })),
      budgetParams,
    ).ranks;
  }
  if (usesEqualRanks(recipe)) return allocateEqualRanks(sizes, opts).ranks;
  return allocateRanks(c.C, sizes, opts).ranks;
}

export function compressLayerSpectral(input: CompressLayerInput, budget: LayerBudget, warnings: string[], t0: number): CompressLayerResult & { choices: LayerChoices } {
  const { engine, recipe, matrices, p, d, frequencies } = input;
  const n = matrices.length;
  const whiten = recipe.whiten !== false;
  const schedule = recipe.whiten !== false ? recipe.whiten.dampingSchedule : undefined;
  const q = resolvedResidualShare(recipe) > 0 ? budget.residualPerExpert : 0;
  const gramOf = (e: number): Float64Array => (input.gram as (e: number) => Float64Array)(e);
  const groupGram = (experts: readonly number[]): Float64Array => sumGrams(d, experts.map(gramOf));

  const allocate = (c: Candidate, budgetParams: number): number[] => allocateFor(input, c, budgetParams);

  // 1–2. candidate structures: factorise every group once, allocate, predict the error
  const ownRankBudget = q > 0 ? budget.rankBudgetParams : budget.targetParams;
  const rankBudget = input.rankBudgetParams ?? ownRankBudget;
  const { best, candidates } = chooseStructure(input, rankBudget);
  const chosen = best.c;
  const tSpectrum = performance.now();

  const fallbacks = chosen.facts.filter((f) => f.whitening === 'identity-fallback').length;
  if (fallbacks > 0) {
    warnings.push(`${fallbacks} group(s) saw no calibration token: factored on raw weights (no whitening) at the minimum rank the budget leaves them; use more calibration tokens`);
  }
  const sizes = chosen.groups.map((g) => g.length);
  const ranksWithResidual = best.ranks;
  const ranksWithout = q > 0 && recipe.residual.gate ? allocate(chosen, rankBudget + n * q) : undefined;
  const tAllocate = performance.now();

  // 3. factors
  const timings = { factorMs: 0, residualMs: 0, errorsMs: 0 };
  const factorPass = (ranks: readonly number[], qq: number): CompressedGroup[] =>
    chosen.groups.map((experts, g) => {
      const K = ranks[g];
      const fact = chosen.facts[g];
      const makeFactors = (M: Float32Array) => ({ A: coefficients(experts, M, fact, K), B: fact.basis.slice(0, K * d), ...(whiten ? { damping: fact.damping } : {}) });
      const group = compressGroup(
        input,
        g,
        experts,
        K,
        fact.energies.map(Math.sqrt),
        { erank: chosen.eranks[g], F: chosen.F[g], E: chosen.E[g], C: chosen.C[g] },
        qq,
        timings,
        makeFactors,
        whiten && fact.whitening === 'cholesky',
      );
      input.onGroupDone?.(g + 1, chosen.groups.length);
      return group;
    });

  const coefficients = (experts: readonly number[], M: Float32Array, fact: GroupFactorisation, K: number): Float32Array => {
    const m = experts.length * p;
    const A = new Float32Array(m * K);
    const B = fact.basis.subarray(0, K * d);
    const groupMetric = input.gram && (whiten || recipe.refit) ? groupGram(experts) : undefined;
    const groupTokens = experts.reduce((a, e) => a + frequencies[e], 0);
    if (!groupMetric || !(gramTrace(d, groupMetric) > 0)) {
      if (fact.whitening === 'cholesky') throw new Error('whitened basis without a Gram matrix (bug)');
      // raw basis: orthonormal rows, A = M·Bᵀ
      engine.gemm(m, K, d, M, B, A, { transB: true });
      return A;
    }
    experts.forEach((e, j) => {
      const W = M.subarray(j * p * d, (j + 1) * p * d);
      let G = groupMetric;
      if (recipe.refit) {
        const own = gramOf(e);
        const prior = groupTokens > 0 ? REFIT_PRIOR_TOKENS / groupTokens : 1;
        G = new Float64Array(d * d);
        for (let i = 0; i < G.length; i++) G[i] = own[i] + prior * groupMetric[i];
      }
      A.set(refitCoefficients(engine, p, d, K, W, B, G, schedule), j * p * K);
    });
    return A;
  };

  let ranks = ranksWithResidual;
  let qUsed = q;
  let groups = factorPass(ranks, q);
  let gate: ResidualGate | undefined;
  if (ranksWithout) {
    const rankGain = lostEnergy(chosen, ranksWithResidual) - lostEnergy(chosen, ranksWithout);
    const residualGain = groups.reduce((acc, grp, g) => {
      const out = grp.energies.output;
      const recovered = whiten && out ? out.before - out.after : grp.energies.residualBefore - grp.energies.residualAfter;
      return acc + (whiten ? recovered : chosen.weights[g] * recovered);
    }, 0);
    gate = { residualGain, rankGain, params: n * q, kept: residualGain > rankGain };
    if (!gate.kept) {
      ranks = ranksWithout;
      qUsed = 0;
      groups = factorPass(ranks, 0);
    }
  }

  const unitCosts = sizes.map((s) => rankUnitCost(s, p, d));
  const used = ranks.reduce((a, K, g) => a + K * unitCosts[g], 0);
  const stored = storedParams(ranks, sizes, p, d, qUsed);
  const shortfall = rankBudget + n * q - stored;
  if (shortfall >= Math.max(...unitCosts) && !usesEqualRanks(recipe)) {
    warnings.push(`stored parameters ${stored} fall ${Math.round(shortfall)} short of retain ${recipe.retain} (${(stored / budget.originalParams).toFixed(4)} kept): every group is at its rank cap`);
  }
  const tEnd = performance.now();
  return {
    groups,
    ranks,
    budget,
    errors: poolErrors(groups.map((g) => g.energies)),
    allocation: {
      kTotal: budget.kTotal,
      usedParams: used,
      leftoverParams: (qUsed > 0 ? rankBudget : rankBudget + n * q) - used,
      caps: sizes.map((s) => rankCap(s, p, d)),
    },
    params: { original: budget.originalParams, stored, rank: used, residual: n * qUsed, ratio: stored / budget.originalParams },
    warnings,
    recipeFingerprint: recipeFingerprint(recipe),
    engine: engine.describe(),
    timings: { spectrumMs: tSpectrum - t0, allocateMs: tAllocate - tSpectrum, ...timings, totalMs: tEnd - t0 },
    choices: { structure: { chosenGroupSize: chosen.groupSize, candidates }, ...(gate ? { residualGate: gate } : {}), whiteningFallbacks: fallbacks },
  };
}

