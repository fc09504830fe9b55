/**
 * Parameter arithmetic of one layer and one matrix type (gate or up): n experts, each p×d.
 *
 * The layer keeps a fraction γ (retain) of its n·p·d parameters. Of those, β·p·d per expert go
 * to the residual vector η (q numbers per expert) and the rest buys rank: a group of size |g| at
 * rank K stores its basis B (K×d) and |g| coefficient blocks A_i (p×K), i.e. K·(|g|·p + d).
 */

/** floor() that forgives the last-bit error of a float product landing just under an integer
 * (e.g. 0.3·10 = 2.9999999999999996). scripts/rfid_numpy.py uses the same rule. */
export function floorWithTolerance(x: number): number {
  return Math.floor(x * (1 + 1e-12));
}

/** Parameters one rank unit costs in a group of `groupSize` experts: |g|·p + d. */
export function rankUnitCost(groupSize: number, p: number, d: number): number {
  return groupSize * p + d;
}

/**
 * Break-even rank of a group: the largest K whose factors cost no more than the group's dense
 * matrices, floor(|g|·p·d / (|g|·p + d)). Beyond it factoring saves nothing.
 */
export function breakEvenRank(groupSize: number, p: number, d: number): number {
  return Math.floor((groupSize * p * d) / rankUnitCost(groupSize, p, d));
}

/** The most rank a group can use: min(|g|·p, d, break-even). (Break-even is always the smallest,
 * but the first two are the mathematical limits and are kept explicit.) */
export function rankCap(groupSize: number, p: number, d: number): number {
  return Math.min(groupSize * p, d, breakEvenRank(groupSize, p, d));
}

export interface LayerBudgetInput {
  /** experts in the layer */
  n: number;
  /** rows of one expert matrix (expert width) */
  p: number;
  /** columns of one expert matrix (hidden size) */
  d: number;
  /** nominal group size k */
  k: number;
  /** γ, fraction of parameters kept, in (0, 1) */
  retain: number;
  /** β as an absolute share of the original parameters (already resolved from a fraction-of-retain mode) */
  residualShare: number;
}

export interface LayerBudget {
  /** n·p·d */
  originalParams: number;
  /** γ·n·p·d: what the compressed layer may store (a real number; stored params are integers) */
  targetParams: number;
  /** q = floor(β·p·d): residual numbers per expert */
  residualPerExpert: number;
  /** n·q */
  residualParams: number;
  /** targetParams − residualParams: what the factors may spend */
  rankBudgetParams: number;
  /** k·p + d */
  rankUnitCost: number;
  /** K_total = floor(rankBudgetParams / (k·p + d)): rank units at the nominal group size */
  kTotal: number;
  /** break-even rank of a full group of k */
  breakEvenRank: number;
}

function requirePositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
}

/**
 * Budget of one layer and matrix type. For Qwen3-30B-A3B (n 128, p 768, d 2048, k 4, γ 0.6,
 * β 0.03): q = 47,185, K_total = 22,413, break-even 1,228.
 *
 * The rank budget is γ·n·p·d minus the integer residual n·q (not (γ − β)·n·p·d), so that the
 * whole stored total, residual included, is what is held to γ.
 */
export function layerBudget(input: LayerBudgetInput): LayerBudget {
  const { n, p, d, k, retain, residualShare } = input;
  requirePositiveInteger('n (experts)', n);
  requirePositiveInteger('p (rows)', p);
  requirePositiveInteger('d (columns)', d);
  requirePositiveInteger('k (group size)', k);
  if (!(retain > 0 && retain < 1)) throw new RangeError(`retain must be in (0, 1), got ${retain}`);
  if (!(residualShare >= 0 && residualShare < retain)) {
    throw new RangeError(`residual share must be in [0, retain=${retain}), got ${residualShare}`);
  }
  const originalParams = n * p * d;
  const targetParams = retain * originalParams;
  const residualPerExpert = floorWithTolerance(residualShare * p * d);
  const residualParams = n * residualPerExpert;
  const rankBudgetParams = targetParams - residualParams;
  const unit = rankUnitCost(k, p, d);
  return {
    originalParams,
    targetParams,
    residualPerExpert,
    residualParams,
    rankBudgetParams,
    rankUnitCost: unit,
    kTotal: floorWithTolerance(rankBudgetParams / unit),
    breakEvenRank: breakEvenRank(k, p, d),
  };
}

/** Parameters stored by factors at the given ranks plus the residual vectors. */
export function storedParams(ranks: readonly number[], groupSizes: readonly number[], p: number, d: number, residualPerExpert: number): number {
  let stored = 0;
  for (let g = 0; g < ranks.length; g++) stored += ranks[g] * rankUnitCost(groupSizes[g], p, d) + groupSizes[g] * residualPerExpert;
  return stored;
}
