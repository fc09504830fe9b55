/**
 * Integer rank allocation over the groups of one layer and matrix type.
 *
 * Budget meaning. Group g at rank K_g costs K_g·c_g parameters with c_g = |g|·p + d; groups of
 * different size (the last one when k does not divide n) cost differently per rank unit, so the
 * budget is held in parameters, not in a count of rank units. "Meets the budget exactly" is
 * defined as:
 *   Σ K_g·c_g ≤ B (never over), and no group below its cap could take one more rank unit
 *   without going over: B − Σ K_g·c_g < c_g for every uncapped g.
 * Hence the stored total is within one rank unit (≤ max c_g = k·p + d) of the target, unless every
 * group sits at its cap (the budget cannot be spent: reported as leftover).
 */
import { floorWithTolerance, rankCap, rankUnitCost } from './budget.js';
import { RfidMoeError } from '../errors.js';

export type Rounding = 'largest-remainder' | 'floor';

export class AllocationError extends RfidMoeError {
  readonly kind = 'AllocationError';
}

export interface AllocationOptions {
  p: number;
  d: number;
  /** parameters the factors may spend (LayerBudget.rankBudgetParams) */
  rankBudgetParams: number;
  /** 'largest-remainder' (default, meets the budget) or the paper's 'floor' (leaks budget) */
  rounding?: Rounding;
}

export interface Allocation {
  /** K_g per group */
  ranks: number[];
  /** rank cap per group: min(|g|·p, d, break-even) */
  caps: number[];
  /** parameters per rank unit per group, |g|·p + d */
  unitCosts: number[];
  /** K_total at the largest group size: floor(budget / (k·p + d)) — the paper's rank count */
  kTotal: number;
  /** Σ K_g·c_g */
  usedParams: number;
  /** rankBudgetParams − usedParams (≥ 0 for every rounding) */
  leftoverParams: number;
}

function checkInputs(scores: readonly number[], groupSizes: readonly number[], opts: AllocationOptions): void {
  if (scores.length !== groupSizes.length) throw new AllocationError(`${scores.length} scores for ${groupSizes.length} groups`);
  if (scores.length === 0) throw new AllocationError('no groups to allocate rank to');
  for (let g = 0; g < scores.length; g++) {
    if (!Number.isFinite(scores[g]) || scores[g] < 0) throw new AllocationError(`score of group ${g} is ${scores[g]}; scores must be finite and ≥ 0`);
    if (!Number.isInteger(groupSizes[g]) || groupSizes[g] < 1) throw new AllocationError(`group ${g} has size ${groupSizes[g]}`);
  }
  if (!Number.isInteger(opts.p) || opts.p < 1 || !Number.isInteger(opts.d) || opts.d < 1) {
    throw new AllocationError(`matrix shape must be positive integers, got ${opts.p}×${opts.d}`);
  }
  if (!Number.isFinite(opts.rankBudgetParams)) throw new AllocationError(`rank budget is ${opts.rankBudgetParams}`);
}

function describe(groupSizes: readonly number[], opts: AllocationOptions, ranks: number[]): Allocation {
  const unitCosts = groupSizes.map((s) => rankUnitCost(s, opts.p, opts.d));
  const caps = groupSizes.map((s) => rankCap(s, opts.p, opts.d));
  let used = 0;
  for (let g = 0; g < ranks.length; g++) used += ranks[g] * unitCosts[g];
  const largest = Math.max(...groupSizes);
  return {
    ranks,
    caps,
    unitCosts,
    kTotal: floorWithTolerance(opts.rankBudgetParams / rankUnitCost(largest, opts.p, opts.d)),
    usedParams: used,
    leftoverParams: opts.rankBudgetParams - used,
  };
}

/** One rank per group is the floor of every allocation; refuse budgets below it. */
function requireOneRankEach(unitCosts: readonly number[], caps: readonly number[], budget: number): void {
  const minimum = unitCosts.reduce((a, b) => a + b, 0);
  if (budget < minimum) {
    throw new AllocationError(`rank budget ${Math.floor(budget)} params cannot give each of the ${unitCosts.length} groups one rank (needs ${minimum}); raise retain or lower the residual share`);
  }
  const g = caps.findIndex((c) => c < 1);
  if (g >= 0) throw new AllocationError(`group ${g} cannot hold even rank 1 without costing more than its dense matrices (matrices too small to factor)`);
}

/**
 * Continuous allocation x_g = clamp(λ·C_g, 1, cap_g) with λ found by bisection so that
 * Σ c_g·x_g is as large as possible without exceeding the budget (water-filling with bounds).
 * The bisection runs a fixed 100 halvings in plain float arithmetic, the same sequence
 * scripts/rfid_numpy.py runs, so both land on bit-identical λ.
 */
function continuousAllocation(scores: readonly number[], unitCosts: readonly number[], caps: readonly number[], budget: number): number[] {
  const G = scores.length;
  const spend = (lambda: number): number => {
    let s = 0;
    for (let g = 0; g < G; g++) s += unitCosts[g] * Math.min(Math.max(lambda * scores[g], 1), caps[g]);
    return s;
  };
  let hi = 1;
  let capped = 0;
  for (let g = 0; g < G; g++) capped += unitCosts[g] * caps[g];
  // Budget beyond what every group at its cap can use: everyone sits at the cap.
  if (capped <= budget) return caps.slice();
  while (spend(hi) < budget) hi *= 2;
  let lo = 0;
  for (let iter = 0; iter < 100; iter++) {
    const mid = (lo + hi) / 2;
    if (spend(mid) <= budget) lo = mid;
    else hi = mid;
  }
  const out = new Array<number>(G);
  for (let g = 0; g < G; g++) out[g] = Math.min(Math.max(lo * scores[g], 1), caps[g]);
  return out;
}

/**
 * Ranks proportional to the scores C_g (minimum 1, capped at min(|g|·p, d, break-even)).
 *
 * 'largest-remainder': floors of the water-filled continuous allocation, then one extra rank to
 * groups in order of their fractional remainder (ties: lower group index) while the leftover
 * pays for it, repeated until no uncapped group fits (see the budget definition above).
 * 'floor': the paper's K_g = floor(K_total · C_g / ΣC), clamped to [1, cap]; leaks up to one rank
 * per group (kept as an option for comparison).
 *
 * Scores that are all zero mean "no preference" and are treated as equal.
 */
export function allocateRanks(scores: readonly number[], groupSizes: readonly number[], opts: AllocationOptions): Allocation {
  checkInputs(scores, groupSizes, opts);
  const unitCosts = groupSizes.map((s) => rankUnitCost(s, opts.p, opts.d));
  const caps = groupSizes.map((s) => rankCap(s, opts.p, opts.d));
  const budget = opts.rankBudgetParams;
  requireOneRankEach(unitCosts, caps, budget);
  const total = scores.reduce((a, b) => a + b, 0);
  const shares = total > 0 ? scores.map((s) => s / total) : scores.map(() => 1 / scores.length);

  if ((opts.rounding ?? 'largest-remainder') === 'floor') {
    const kTotal = floorWithTolerance(budget / rankUnitCost(Math.max(...groupSizes), opts.p, opts.d));
    const ranks = shares.map((c, g) => Math.min(Math.max(floorWithTolerance(kTotal * c), 1), caps[g]));
    return describe(groupSizes, opts, ranks);
  }

  const ideal = continuousAllocation(shares, unitCosts, caps, budget);
  const ranks = ideal.map((x) => Math.floor(x));
  let left = budget;
  for (let g = 0; g < ranks.length; g++) left -= ranks[g] * unitCosts[g];
  const order = ideal
    .map((x, g) => ({ g, remainder: x - Math.floor(x) }))
    .sort((a, b) => b.remainder - a.remainder || a.g - b.g)
    .map((e) => e.g);
  for (;;) {
    let gave = false;
    for (const g of order) {
      if (ranks[g] < caps[g] && unitCosts[g] <= left) {
        ranks[g] += 1;
        left -= unitCosts[g];
        gave = true;
      }
    }
    if (!gave) break;
  }
  return describe(groupSizes, opts, ranks);
}

/**
 * Equal rank for every group (the uniform and grouped-uniform baselines): the largest K with
 * K·Σc_g within the budget, clamped to [1, cap_g]. With groups of one this is per-expert
 * floor(B / (n·(p + d))) = floor((γ − β)·p·d / (p + d)). It leaks up to one rank per group, as the
 * baselines define it.
 */
export function allocateEqualRanks(groupSizes: readonly number[], opts: AllocationOptions): Allocation {
  checkInputs(groupSizes.map(() => 1), groupSizes, opts);
  const unitCosts = groupSizes.map((s) => rankUnitCost(s, opts.p, opts.d));
  const caps = groupSizes.map((s) => rankCap(s, opts.p, opts.d));
  requireOneRankEach(unitCosts, caps, opts.rankBudgetParams);
  const perGroup = floorWithTolerance(opts.rankBudgetParams / unitCosts.reduce((a, b) => a + b, 0));
  return describe(groupSizes, opts, caps.map((cap) => Math.min(Math.max(perGroup, 1), cap)));
}
