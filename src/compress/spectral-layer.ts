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
import { rankCap, rankUnitCost, type LayerBudget } from '../rank-allocation/budget.js';
import { fuseImportance, shareNormalise } from '../rank-allocation/fuse.js';
import { waterfill, type WaterfillGroup } from '../rank-allocation/waterfill.js';
import { effectiveRank } from '../svd/effective-rank.js';
import { affinityGroups } from './affinity.js';
import { compressGroup, poolErrors, releaseMatrices, rememberLastGram, weightOf, type CompressedGroup, type GroupFactors, type CompressLayerInput, type CompressLayerResult } from './compress-layer.js';
import { factoriseGroup, type GroupFactorisation } from './group-factorisation.js';
import { factoriseBaseDelta, factoriseOutputBasis, outputBasisColumns, outputCoefficients, type BaseDeltaFactorisation, type OutputBasisFactorisation } from './structures.js';
import { groupExperts } from './grouping.js';
import { DEFAULT_STRUCTURES, effectiveGroupSize, effectiveXi, groupOrderOf, type StructureKind, recipeFingerprint, resolvedResidualShare, usesEqualRanks } from './recipe.js';
import { gramTrace, refitCoefficients } from './refit.js';
import { sumGramsOf } from './whitening.js';
import { RowSpill, type SpillHandle } from '../io/row-spill.js';
import { releaseGarbageOf } from '../util/release-garbage.js';

/**
 * Per-expert refit shrinks each expert's Gram towards its group's average input statistics with
 * the weight of this many tokens: negligible for an expert that saw thousands of tokens, while one
 * that saw a handful (or none) gets its group's coefficients instead of an underdetermined fit.
 */
export const REFIT_PRIOR_TOKENS = 32;


export interface StructureCandidate {
  structure: StructureKind;
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
  structure: { chosen: StructureKind; chosenGroupSize: number; candidates: StructureCandidate[] };
  residualGate?: ResidualGate;
  /** groups no calibration token reached: plain SVD instead of whitening */
  whiteningFallbacks: number;
}

/** One allocation unit: a group's shared factor (input/output basis) or one expert's delta. */
interface Unit {
  energies: Float64Array;
  weight: number;
  unitCost: number;
  cap: number;
}

interface Candidate {
  kind: StructureKind;
  groupSize: number;
  groups: number[][];
  units: Unit[];
  /** parameters spent before any rank (the bases W̄ of base-delta) */
  fixedParams: number;
  /** input-side bases (per-expert, input-basis), one per group */
  facts?: GroupFactorisation[];
  /** where `facts`' bases went when they were parked on disk (their `basis` is then empty) */
  spill?: { file: RowSpill; handles: SpillHandle[] };
  outFacts?: OutputBasisFactorisation[];
  bdFacts?: BaseDeltaFactorisation[];
  /** gain multiplier per group (1 whitened, 0 for unreached groups; frequency share on raw weights) */
  weights: number[];
  fallbacks: number;
  F: number[];
  E: number[];
  C: number[];
  eranks: number[];
  total: number;
}

function lostEnergy(c: Candidate, ranks: readonly number[]): number {
  let lost = 0;
  c.units.forEach((u, i) => {
    for (let j = ranks[i]; j < u.energies.length; j++) lost += u.weight * u.energies[j];
  });
  return lost;
}

/** Pass 1 for a model-wide allocation: the chosen structure's units as water-filling input, each
 * layer's gains relative to its own total energy (so layers of different scale compare), and the
 * parameters the structure spends before any rank (W̄ of base-delta). */
export function planLayerSpectra(input: CompressLayerInput, budget: LayerBudget): { groups: WaterfillGroup[]; residualParams: number; fixedParams: number } {
  const q = resolvedResidualShare(input.recipe) > 0 ? budget.residualPerExpert : 0;
  // only the spectra are used here: bases are dropped as soon as they are made
  const { best } = chooseStructure(input, q > 0 ? budget.rankBudgetParams : budget.targetParams, 0, false);
  const c = best.c;
  const scale = c.total > 0 ? 1 / c.total : 0;
  return {
    groups: c.units.map((u) => ({ energies: u.energies, weight: u.weight * scale, unitCost: u.unitCost, cap: u.cap })),
    residualParams: input.matrices.length * q,
    fixedParams: c.fixedParams,
  };
}

/** The structures 'auto' compares, in order (the first wins ties). */
function structuresToTry(recipe: CompressLayerInput['recipe'], k: number): StructureKind[] {
  if (recipe.structure !== 'auto' || recipe.allocation === 'uniform') return [k === 1 ? 'per-expert' : 'input-basis'];
  const wanted = new Set<StructureKind>(recipe.structures ?? DEFAULT_STRUCTURES);
  // input-basis first, as before; with k = 1 every shared structure is per-expert
  const order: StructureKind[] = ['input-basis', 'per-expert', 'output-basis', 'base-delta'];
  const kinds = order.filter((s) => wanted.has(s) && (k > 1 || s === 'per-expert' || s === 'input-basis'));
  // the shared output basis and base+delta allocate per unit: only water-filling does
  const out = recipe.allocation === 'waterfill' ? kinds : kinds.filter((s) => s === 'per-expert' || s === 'input-basis');
  const sizes = new Set<number>();
  return out.filter((s) => {
    if (s !== 'per-expert' && s !== 'input-basis') return true;
    const size = s === 'per-expert' ? 1 : k;
    if (sizes.has(size)) return false;
    sizes.add(size);
    return true;
  });
}

/**
 * Peak memory: a candidate's bases are cut to the rows its allocation can use (with and, for the
 * residual gate, without the residual's share) as soon as it is allocated, so the best candidate
 * so far is held at its ranks, not at its rank caps, while the next one is factorised; a losing
 * candidate is dropped whole. Bases are read only up to the allocated rank, so outputs are the same.
 */
function trimToRanks(c: Candidate, ...allocations: ReadonlyArray<readonly number[]>): void {
  const need = (u: number) => Math.max(...allocations.map((r) => r[u]));
  if (c.facts && !c.spill) {
    c.facts = c.facts.map((f, u) => {
      const rows = need(u);
      const d = f.basis.length / f.cap;
      return f.basis.length > rows * d ? { ...f, basis: f.basis.slice(0, rows * d) } : f;
    });
  }
  if (c.bdFacts) {
    let u = 0;
    c.bdFacts = c.bdFacts.map((f) => ({
      ...f,
      deltas: f.deltas.map((x) => {
        const rows = need(u++);
        const d = x.basis.length / x.cap;
        return x.basis.length > rows * d ? { ...x, basis: x.basis.slice(0, rows * d) } : x;
      }),
    }));
  }
}

/**
 * Default limit on a candidate's bases held at their rank caps: 16 MiB. Small models keep them in
 * memory (no file per layer); at real shapes (one Qwen3-30B-A3B expert's basis at its cap is
 * 4.4 MiB) they go to disk, where they cost a write and a read of the rows kept, instead of up to
 * a third of the layer's weights held through the whole factorisation.
 */
const DEFAULT_SPILL_BYTES = 16 * 2 ** 20;

/** B_K of group g (K×d, its own array), from memory or from the spill file. */
function basisRows(c: Candidate, g: number, K: number, d: number): Float32Array {
  const f = (c.facts as GroupFactorisation[])[g];
  if (c.spill) return c.spill.file.read(c.spill.handles[g], K * d);
  return f.basis.slice(0, K * d);
}

/**
 * The best structure for this layer and type. `keepBases` false: the bases are dropped as they are
 * made (only the spectra are wanted). The returned candidate may hold a spill file: the caller
 * closes it (best.c.spill?.file.close()).
 */
function chooseStructure(input: CompressLayerInput, rankBudget: number, gateParams = 0, keepBases = true): { best: { c: Candidate; ranks: number[]; rel: number }; candidates: StructureCandidate[] } {
  const { engine, recipe, matrices, p, d, frequencies } = input;
  const whiten = recipe.whiten !== false;
  const schedule = recipe.whiten !== false ? recipe.whiten.dampingSchedule : undefined;
  const k = effectiveGroupSize(recipe);
  const gramOf = (e: number): Float64Array => (input.gram as (e: number) => Float64Array)(e);
  const groupGram = (experts: readonly number[]): Float64Array => sumGramsOf(d, experts, gramOf);
  const formGroups = (size: number): number[][] => {
    if (size === 1) return groupExperts(frequencies, 1, groupOrderOf(recipe));
    if (recipe.grouping === 'affinity') return affinityGroups(engine, (e) => weightOf(input, e), matrices.length, p, d, frequencies, size);
    return groupExperts(frequencies, size, groupOrderOf(recipe));
  };
  const grouping = recipe.grouping ?? (groupOrderOf(recipe) === 'index' ? 'index' : 'frequency');
  const candidates: StructureCandidate[] = [];
  let best: { c: Candidate; ranks: number[]; rel: number } | undefined;
  let groupsOfK: number[][] | undefined;
  for (const kind of structuresToTry(recipe, k)) {
    const size = kind === 'per-expert' ? 1 : k;
    const groups = size === 1 ? formGroups(1) : (groupsOfK ??= formGroups(size));
    const sizes = groups.map((g) => g.length);
    const F = shareNormalise(groups.map((g) => g.reduce((acc, e) => acc + frequencies[e], 0)));
    const report = (rel: number, feasible: boolean) => candidates.push({ structure: kind, groupSize: size, grouping: size === 1 ? 'frequency' : grouping, predictedRelError: rel, feasible });
    let c: Candidate | undefined;
    try {
      c = buildCandidate(kind, size, groups, sizes, F, rankBudget);
    } catch (err) {
      best?.c.spill?.file.close();
      throw err;
    }
    if (!c) {
      report(NaN, false);
      continue;
    }
    const ranks = allocateFor(input, c, rankBudget);
    const rel = c.total > 0 ? lostEnergy(c, ranks) / c.total : 0;
    report(rel, true);
    if (!best || rel < best.rel) {
      trimToRanks(c, ranks, ...(gateParams > 0 ? [allocateFor(input, c, rankBudget + gateParams)] : []));
      best?.c.spill?.file.close();
      best = { c, ranks, rel };
    } else c.spill?.file.close();
  }
  if (!best) throw new Error(`no structure fits the rank budget of ${Math.floor(rankBudget)} parameters (tried ${candidates.map((c) => c.structure).join(', ')}; one rank per group, and for base-delta each group's base, is the minimum): raise retain or add per-expert to structures`);
  return { best, candidates };

  function buildCandidate(kind: StructureKind, size: number, groups: number[][], sizes: number[], F: number[], budgetParams: number): Candidate | undefined {
    if (kind === 'per-expert' || kind === 'input-basis') {
      const oneEach = sizes.reduce((a, s) => a + rankUnitCost(s, p, d), 0);
      if (oneEach > budgetParams || sizes.some((s) => rankCap(s, p, d) < 1)) return undefined;
      // Peak memory: bases at their rank caps wait for the allocation; beyond a few MiB
      // (input.spillBasesOverBytes, default 16 MiB) they wait on disk, so that what is held does
      // not grow with the number of experts.
      const capBytes = groups.reduce((a, g) => a + rankCap(g.length, p, d) * d * 4, 0);
      const spill = keepBases && capBytes > (input.spillBasesOverBytes ?? DEFAULT_SPILL_BYTES) ? { file: RowSpill.create(), handles: [] as SpillHandle[] } : undefined;
      let facts: GroupFactorisation[];
      try {
        // the experts' own matrices (no stacked copy) and the group's summed Gram handed over
        facts = groups.map((g) => {
          const f = factoriseGroup(engine, g.length * p, d, g.map((e) => weightOf(input, e)), rankCap(g.length, p, d), {
            // a single expert's Gram as given (read only); a group's sum is ours to reuse
            ...(whiten ? (g.length === 1 ? { gram: gramOf(g[0]) } : { gram: groupGram(g), gramIsScratch: true }) : {}),
            ...(schedule ? { dampingSchedule: schedule } : {}),
          });
          if (spill) spill.handles.push(spill.file.put(f.basis));
          // the group's d×d temporaries (its Gram sum, Cholesky factor, product) are dead now
          releaseGarbageOf(d * d * 8);
          return spill || !keepBases ? { ...f, basis: new Float32Array(0) } : f;
        });
      } catch (err) {
        spill?.file.close();
        throw err;
      }
      const eranks = facts.map((f) => effectiveRank(f.energies.map(Math.sqrt)));
      const E = shareNormalise(eranks);
      const C = fuseImportance(F, E, effectiveXi(recipe));
      const weights = whiten ? facts.map((f) => (f.whitening === 'identity-fallback' ? 0 : 1)) : F;
      const units = facts.map((f, g) => ({ energies: f.energies, weight: weights[g], unitCost: rankUnitCost(sizes[g], p, d), cap: f.cap }));
      return finish({ kind, groupSize: size, groups, units, fixedParams: 0, facts, ...(spill ? { spill } : {}), weights, fallbacks: weights.filter((w, g) => whiten && facts[g].whitening === 'identity-fallback').length, F, E, C, eranks, total: 0 });
    }
    if (kind === 'output-basis') {
      // W_e ≈ U·C_e: the input-side formulas with p and d swapped
      const oneEach = sizes.reduce((a, s) => a + rankUnitCost(s, d, p), 0);
      if (oneEach > budgetParams || sizes.some((s) => rankCap(s, d, p) < 1)) return undefined;
      const outFacts = groups.map((g) => factoriseOutputBasis(engine, p, d, g.map((e) => weightOf(input, e)), rankCap(g.length, d, p), whiten ? g.map(gramOf) : undefined));
      const eranks = outFacts.map((f) => effectiveRank(f.energies.map(Math.sqrt)));
      const E = shareNormalise(eranks);
      const weights = whiten ? outFacts.map((f) => (f.whitened ? 1 : 0)) : F;
      const units = outFacts.map((f, g) => ({ energies: f.energies, weight: weights[g], unitCost: rankUnitCost(sizes[g], d, p), cap: f.cap }));
      return finish({ kind, groupSize: size, groups, units, fixedParams: 0, outFacts, weights, fallbacks: outFacts.filter((f) => whiten && !f.whitened).length, F, E, C: fuseImportance(F, E, effectiveXi(recipe)), eranks, total: 0 });
    }
    // base-delta: W̄ per group, then one rank at least per expert's delta
    const fixedParams = groups.length * p * d;
    const cap = rankCap(1, p, d);
    if (cap < 1 || fixedParams + matrices.length * rankUnitCost(1, p, d) > budgetParams) return undefined;
    const bdFacts = groups.map((g) => {
      const groupTokens = g.reduce((a, e) => a + frequencies[e], 0);
      const groupMetric = whiten ? groupGram(g) : undefined;
      const metricOf = (j: number): Float64Array | undefined => {
        if (!groupMetric) return undefined;
        const own = gramOf(g[j]);
        const prior = groupTokens > 0 ? REFIT_PRIOR_TOKENS / groupTokens : 1;
        const G = new Float64Array(d * d);
        for (let i = 0; i < G.length; i++) G[i] = own[i] + prior * groupMetric[i];
        return G;
      };
      return factoriseBaseDelta(engine, p, d, g.map((e) => weightOf(input, e)), g.map((e) => frequencies[e]), cap, metricOf, schedule);
    });
    const units: Unit[] = [];
    let fallbacks = 0;
    const weights: number[] = [];
    // the error is measured against the whole matrices' energy, not the deltas': total below
    let total = 0;
    bdFacts.forEach((f, g) => {
      const w = whiten ? (f.deltas.every((x) => x.whitening === 'identity-fallback') ? 0 : 1) : F[g];
      weights.push(w);
      if (whiten && w === 0) fallbacks++;
      f.deltas.forEach((x, j) => {
        const wu = whiten ? (x.whitening === 'identity-fallback' ? 0 : 1) : F[g] / groups[g].length;
        units.push({ energies: x.energies, weight: wu, unitCost: rankUnitCost(1, p, d), cap: x.cap });
        total += wu * wholeEnergy(groups[g][j], f.grams[j]);
      });
    });
    const eranks = bdFacts.map((f) => effectiveRank(f.deltas.flatMap((x) => Array.from(x.energies, Math.sqrt)).sort((a, b) => b - a)));
    const E = shareNormalise(eranks);
    return { kind, groupSize: size, groups, units, fixedParams, bdFacts, weights, fallbacks, F, E, C: fuseImportance(F, E, effectiveXi(recipe)), eranks, total };
  }

  /** ‖W_e‖² in the metric G (the energy the other structures' spectra sum to) */
  function wholeEnergy(e: number, G: Float64Array | undefined): number {
    const W = weightOf(input, e);
    if (!G) {
      let s = 0;
      for (let i = 0; i < W.length; i++) s += W[i] * W[i];
      return s;
    }
    const Wd = Float64Array.from(W);
    const T = new Float64Array(p * d);
    engine.gemm(p, d, d, Wd, G, T);
    let s = 0;
    for (let i = 0; i < T.length; i++) s += T[i] * Wd[i];
    return Math.max(0, s);
  }

  function finish(c: Candidate): Candidate {
    let total = 0;
    c.units.forEach((u) => u.energies.forEach((e) => (total += u.weight * e)));
    c.total = total;
    return c;
  }
}

/** Bytes of a compressed group's factors and residual vectors. */
function groupBytes(g: CompressedGroup): number {
  let bytes = g.basis.byteLength + (g.base?.byteLength ?? 0);
  for (const x of g.coefficients) bytes += x.byteLength;
  for (const x of g.expertBases ?? []) bytes += x.byteLength;
  for (const x of g.residual?.vectors ?? []) bytes += x.byteLength;
  return bytes;
}

function allocateFor(input: CompressLayerInput, c: Candidate, budgetParams: number): number[] {
  const { recipe, p, d } = input;
  if (recipe.allocation === 'waterfill') return waterfill(c.units, budgetParams - c.fixedParams).ranks;
  const sizes = c.groups.map((g) => g.length);
  const opts = { p, d, rankBudgetParams: budgetParams, rounding: recipe.rounding };
  if (usesEqualRanks(recipe)) return allocateEqualRanks(sizes, opts).ranks;
  return allocateRanks(c.C, sizes, opts).ranks;
}

export function compressLayerSpectral(input: CompressLayerInput, budget: LayerBudget, warnings: string[], t0: number): CompressLayerResult & { choices: LayerChoices } {
  const { recipe, matrices } = input;
  const q = resolvedResidualShare(recipe) > 0 ? budget.residualPerExpert : 0;
  // 1–2. candidate structures: factorise every group once, allocate, predict the error
  const rankBudget = input.rankBudgetParams ?? (q > 0 ? budget.rankBudgetParams : budget.targetParams);
  const { best, candidates } = chooseStructure(input, rankBudget, q > 0 && recipe.residual.gate ? matrices.length * q : 0);
  try {
    return finishLayer(input, budget, warnings, t0, best, candidates);
  } finally {
    best.c.spill?.file.close();
  }
}

/** 3. The chosen structure's factors, residual gate and errors. */
function finishLayer(
  input: CompressLayerInput,
  budget: LayerBudget,
  warnings: string[],
  t0: number,
  best: { c: Candidate; ranks: number[]; rel: number },
  candidates: StructureCandidate[],
): CompressLayerResult & { choices: LayerChoices } {
  const { engine, recipe, matrices, p, d, frequencies } = input;
  const n = matrices.length;
  const whiten = recipe.whiten !== false;
  const schedule = recipe.whiten !== false ? recipe.whiten.dampingSchedule : undefined;
  const q = resolvedResidualShare(recipe) > 0 ? budget.residualPerExpert : 0;
  const gramOf = (e: number): Float64Array => (input.gram as (e: number) => Float64Array)(e);
  const groupGram = (experts: readonly number[]): Float64Array => sumGramsOf(d, experts, gramOf);
  const allocate = (c: Candidate, budgetParams: number): number[] => allocateFor(input, c, budgetParams);
  const ownRankBudget = q > 0 ? budget.rankBudgetParams : budget.targetParams;
  const rankBudget = input.rankBudgetParams ?? ownRankBudget;
  const chosen = best.c;
  const tSpectrum = performance.now();

  const fallbacks = chosen.fallbacks;
  if (fallbacks > 0) {
    warnings.push(`${fallbacks} group(s) saw no calibration token: factored on raw weights (no whitening) at the minimum rank the budget leaves them; use more calibration tokens`);
  }
  const sizes = chosen.groups.map((g) => g.length);
  const ranksWithResidual = best.ranks;
  const ranksWithout = q > 0 && recipe.residual.gate ? allocate(chosen, rankBudget + n * q) : undefined;
  const tAllocate = performance.now();
  // base-delta allocates per expert: the units of group g start at unitStart[g]
  const unitStart: number[] = [];
  sizes.reduce((acc, s) => (unitStart.push(acc), acc + s), 0);
  const groupRanks = (unitRanks: readonly number[]): number[] =>
    chosen.kind === 'base-delta' ? chosen.groups.map((g, gi) => Math.max(...unitRanks.slice(unitStart[gi], unitStart[gi] + g.length))) : [...unitRanks];

  // 3. factors
  const timings = { factorMs: 0, residualMs: 0, errorsMs: 0 };
  const factorGroupAt = (g: number, unitRanks: readonly number[], qq: number): CompressedGroup => {
    const experts = chosen.groups[g];
    // within one group, an expert's Gram is asked for up to three times in a row (metric, refit,
    // output errors): remembered for the group only, so nothing outlives it
    const gi: CompressLayerInput = input.gram ? { ...input, gram: rememberLastGram(input.gram) } : input;
    const signals = { erank: chosen.eranks[g], F: chosen.F[g], E: chosen.E[g], C: chosen.C[g] };
    let group: CompressedGroup;
    if (chosen.kind === 'output-basis') {
      const K = unitRanks[g];
      const fact = (chosen.outFacts as OutputBasisFactorisation[])[g];
      const makeFactors = (): GroupFactors => {
        const U = outputBasisColumns(fact, p, K);
        return { structure: 'output-basis', U, C: experts.map((e) => outputCoefficients(engine, p, d, K, U, weightOf(input, e))) };
      };
      const alt = { spectrum: fact.energies.map(Math.sqrt), rank: K, unitCost: chosen.units[g].unitCost };
      group = compressGroup(gi, g, experts, K, alt.spectrum, signals, qq, timings, makeFactors, whiten && fact.whitened, alt);
    } else if (chosen.kind === 'base-delta') {
      const fact = (chosen.bdFacts as BaseDeltaFactorisation[])[g];
      const Ks = experts.map((_, j) => unitRanks[unitStart[g] + j]);
      const makeFactors = (): GroupFactors => {
        const B = fact.deltas.map((x, j) => x.basis.slice(0, Ks[j] * d));
        const A = experts.map((e, j) => {
          const D = new Float32Array(p * d);
          const W = weightOf(input, e);
          for (let i = 0; i < D.length; i++) D[i] = W[i] - fact.base[i];
          const G = fact.grams[j];
          if (!G || fact.deltas[j].whitening !== 'cholesky') {
            const Aj = new Float32Array(p * Ks[j]);
            engine.gemm(p, Ks[j], d, D, B[j], Aj, { transB: true });
            return Aj;
          }
          return refitCoefficients(engine, p, d, Ks[j], D, B[j], G, schedule);
        });
        return { structure: 'base-delta', base: fact.base, A, B, ranks: Ks };
      };
      // the next rank units of this group, best first, as the residual's alternative
      const tail = fact.deltas.flatMap((x, j) => Array.from(x.energies.subarray(Ks[j]))).sort((x, y) => y - x);
      const K = Math.max(...Ks);
      const alt = { spectrum: Float64Array.from(tail, Math.sqrt), rank: 0, unitCost: rankUnitCost(1, p, d) };
      group = compressGroup(gi, g, experts, K, alt.spectrum, signals, qq, timings, makeFactors, whiten && fact.deltas.every((x) => x.whitening === 'cholesky'), alt);
    } else {
      const K = unitRanks[g];
      const fact = (chosen.facts as GroupFactorisation[])[g];
      const makeFactors = (M: Float32Array): GroupFactors => {
        const B = basisRows(chosen, g, K, d);
        return { A: coefficients(gi, experts, M, fact, K, B), B, ...(whiten ? { damping: fact.damping } : {}) };
      };
      group = compressGroup(gi, g, experts, K, fact.energies.map(Math.sqrt), signals, qq, timings, makeFactors, whiten && fact.whitening === 'cholesky');
    }
    // the group's d×d temporaries are dead now
    releaseGarbageOf(d * d * 8);
    input.onGroupDone?.(g + 1, chosen.groups.length);
    return group;
  };
  // The final pass: with handOverMatrices, each group's matrices go as soon as its factors are
  // made, so the result replaces the weights group by group.
  const factorPass = (unitRanks: readonly number[], qq: number): CompressedGroup[] =>
    chosen.groups.map((experts, g) => {
      const group = factorGroupAt(g, unitRanks, qq);
      if (input.handOverMatrices) releaseMatrices(input, experts);
      return group;
    });

  const coefficients = (gi: CompressLayerInput, experts: readonly number[], M: Float32Array, fact: GroupFactorisation, K: number, B: Float32Array): Float32Array => {
    const gramOf = gi.gram as (e: number) => Float64Array;
    const groupGram = (members: readonly number[]): Float64Array => sumGramsOf(d, members, gramOf);
    const m = experts.length * p;
    const A = new Float32Array(m * K);
    // A single expert's metric is its own Gram, used as given (no summed copy): its refit blend
    // would be (1 + prior)·G, and the coefficients do not change with the metric's scale (the
    // Cholesky's damping is relative too).
    const single = experts.length === 1;
    const groupMetric = input.gram && (whiten || recipe.refit) ? (single ? gramOf(experts[0]) : groupGram(experts)) : undefined;
    const groupTokens = experts.reduce((a, e) => a + frequencies[e], 0);
    if (!groupMetric || !(gramTrace(d, groupMetric) > 0)) {
      if (fact.whitening === 'cholesky') throw new Error('whitened basis without a Gram matrix (bug)');
      // raw basis: orthonormal rows, A = M·Bᵀ
      engine.gemm(m, K, d, M, B, A, { transB: true });
      return A;
    }
    // Peak memory: one blended Gram buffer serves the group's experts in turn, and the last
    // expert's blend is written over the group metric (our own sum, read by nothing after it).
    let blended: Float64Array | undefined;
    experts.forEach((e, j) => {
      const W = M.subarray(j * p * d, (j + 1) * p * d);
      let G = groupMetric;
      if (recipe.refit && !single) {
        const own = gramOf(e);
        const prior = groupTokens > 0 ? REFIT_PRIOR_TOKENS / groupTokens : 1;
        const into = j === experts.length - 1 ? groupMetric : (blended ??= new Float64Array(d * d));
        for (let i = 0; i < into.length; i++) into[i] = own[i] + prior * groupMetric[i];
        G = into;
      }
      A.set(refitCoefficients(engine, p, d, K, W, B, G, schedule), j * p * K);
      // the refit's f64 copies of W and B and its products are dead before the errors are made
      releaseGarbageOf(d * d * 8);
    });
    return A;
  };

  let ranks = ranksWithResidual;
  let qUsed = q;
  let groups: CompressedGroup[];
  let gate: ResidualGate | undefined;
  if (ranksWithout) {
    // The gate's trial pass (with the residual) is needed for its error energies only. Peak
    // memory: its factors are kept only while they stay small (the spill limit), so that a layer
    // whose residual is dropped never holds two results at once; a kept residual is then
    // factorised again unless its trial factors were all kept.
    const limit = input.spillBasesOverBytes ?? DEFAULT_SPILL_BYTES;
    let held: CompressedGroup[] | undefined = [];
    let heldBytes = 0;
    const trial = chosen.groups.map((_, g) => {
      const grp = factorGroupAt(g, ranksWithResidual, q);
      if (held) {
        heldBytes += groupBytes(grp);
        if (heldBytes <= limit) held.push(grp);
        else held = undefined;
      }
      return grp.energies;
    });
    const rankGain = lostEnergy(chosen, ranksWithResidual) - lostEnergy(chosen, ranksWithout);
    const residualGain = trial.reduce((acc, energies, g) => {
      const out = energies.output;
      const recovered = whiten && out ? out.before - out.after : energies.residualBefore - energies.residualAfter;
      return acc + (whiten ? recovered : chosen.weights[g] * recovered);
    }, 0);
    gate = { residualGain, rankGain, params: n * q, kept: residualGain > rankGain };
    if (gate.kept) {
      groups = held ?? factorPass(ranks, q);
      if (held && input.handOverMatrices) chosen.groups.forEach((experts) => releaseMatrices(input, experts));
    } else {
      held = undefined;
      ranks = ranksWithout;
      qUsed = 0;
      groups = factorPass(ranks, 0);
    }
  } else groups = factorPass(ranks, q);

  const unitCosts = chosen.units.map((u) => u.unitCost);
  const used = chosen.fixedParams + ranks.reduce((a, K, i) => a + K * unitCosts[i], 0);
  const stored = used + n * qUsed;
  const shortfall = rankBudget + n * q - stored;
  if (shortfall >= Math.max(...unitCosts) && !usesEqualRanks(recipe)) {
    warnings.push(`stored parameters ${stored} fall ${Math.round(shortfall)} short of retain ${recipe.retain} (${(stored / budget.originalParams).toFixed(4)} kept): every group is at its rank cap`);
  }
  const tEnd = performance.now();
  return {
    groups,
    ranks: groupRanks(ranks),
    budget,
    errors: poolErrors(groups.map((g) => g.energies)),
    allocation: {
      kTotal: budget.kTotal,
      usedParams: used,
      leftoverParams: (qUsed > 0 ? rankBudget : rankBudget + n * q) - used,
      caps: chosen.groups.map((_, g) => chosen.units[chosen.kind === 'base-delta' ? unitStart[g] : g].cap),
    },
    params: { original: budget.originalParams, stored, rank: used, residual: n * qUsed, ratio: stored / budget.originalParams },
    warnings,
    recipeFingerprint: recipeFingerprint(recipe),
    engine: engine.describe(),
    timings: { spectrumMs: tSpectrum - t0, allocateMs: tAllocate - tSpectrum, ...timings, totalMs: tEnd - t0 },
    choices: { structure: { chosen: chosen.kind, chosenGroupSize: chosen.groupSize, candidates }, ...(gate ? { residualGate: gate } : {}), whiteningFallbacks: fallbacks },
  };
}

