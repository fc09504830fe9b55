/**
 * RFID-MoE for one layer and one matrix type (gate or up): group the experts, measure each
 * group's effective rank, fuse it with routing frequency, allocate ranks within the budget, factor
 * every group by truncated SVD (shared basis B_g, per-expert coefficients A_i), and keep each
 * expert's residual as q numbers through a sparse projection shared within the group.
 *
 * Everything runs on the synchronous Engine. The caller's matrices are only read (unless the caller
 * hands them over: handOverMatrices).
 */
import { performance } from 'node:perf_hooks';
import type { Engine } from '../engine/types.js';
import { allocateEqualRanks, allocateRanks, type Allocation } from '../rank-allocation/allocate.js';
import { rankUnitCost, storedParams, type LayerBudget } from '../rank-allocation/budget.js';
import { fuseImportance, shareNormalise } from '../rank-allocation/fuse.js';
import { createProjection, type ProjectionDescriptor, type SparseProjection } from '../residual/projection.js';
import { mixSeed } from '../residual/prng.js';
import { effectiveRank, energyBetween } from '../svd/effective-rank.js';
import { truncatedFactors, type LowRankFactors } from '../svd/truncated.js';
import { groupExperts } from './grouping.js';
import {
  effectiveGroupSize,
  effectiveXi,
  groupOrderOf,
  recipeFingerprint,
  resolvedResidualShare,
  usesEqualRanks,
  usesSpectralPath,
  validateRecipeForLayer,
  type Recipe,
} from './recipe.js';
import { sumGramsOf, whitenedTruncatedSvd } from './whitening.js';
import { compressLayerSpectral, type LayerChoices } from './spectral-layer.js';
import { RfidMoeError } from '../errors.js';
import { mapLargeAllocations } from '../engine/native.js';
import { copyInto, decodesFresh, firstNonFinite, PackedBf16, toF32, valueAt, type ExpertWeights } from './expert-weights.js';

export interface CompressLayerInput {
  engine: Engine;
  recipe: Recipe;
  /** n experts, each p×d row-major: f32, or packed bf16 (packLossless; half the memory, same results) */
  matrices: readonly ExpertWeights[];
  p: number;
  d: number;
  /** routing counts per expert (tokens that chose it) */
  frequencies: readonly number[];
  /** XᵀX (d×d, f64) of the calibration inputs each expert saw: needed for whitening and the
   * output-space error; called once or twice per expert, never stored */
  gram?: (expert: number) => Float64Array;
  /** called after each group is factored */
  onGroupDone?: (done: number, total: number) => void;
  /** parameters the factors may spend in this layer and type, when a model-wide allocation set it
   * (spectral path only; default: the layer's own share of the budget) */
  rankBudgetParams?: number;
  /**
   * spectral path: bases at their rank caps beyond this many bytes (all groups of a candidate
   * structure together) wait on disk for the allocation instead of in memory; default 16 MiB.
   * Results are the same either way.
   */
  spillBasesOverBytes?: number;
  /**
   * The caller hands the matrices over: once a group's final factors and errors are made, its
   * experts' entries in `matrices` are replaced by empty arrays, so that the layer's weights and
   * its result are never both whole in memory (the result replaces the weights group by group).
   * Only for a `matrices` array that nothing else holds or reads afterwards.
   */
  handOverMatrices?: boolean;
}

const RELEASED = new Float32Array(0);

/** With handOverMatrices: the experts' matrices are let go (see CompressLayerInput). */
export function releaseMatrices(input: CompressLayerInput, experts: readonly number[]): void {
  for (const e of experts) (input.matrices as ExpertWeights[])[e] = RELEASED;
}

/** Expert e's matrix in f32: the caller's array (read only), or a fresh decode of a packed one. */
export function weightOf(input: Pick<CompressLayerInput, 'matrices'>, e: number): Float32Array {
  return toF32(input.matrices[e]);
}

export interface ResidualVsRank {
  /** residual energy recovered per stored residual number */
  residualEnergyPerParam: number;
  /** energy the next rank units would have recovered per parameter (weight space, from the exact
   * spectrum of the unwhitened group) */
  rankEnergyPerParam: number;
  /** how many rank units the residual's parameters would have bought in this group */
  equivalentRanks: number;
}

export interface GroupErrors {
  /** ‖M_g − A·B‖_F / ‖M_g‖_F over the stacked group, before the residual */
  weightRelBefore: number;
  /** the same with the residual added (equal to before when there is none) */
  weightRelAfter: number;
  /** √(Σ_i ‖(W_i − Ŵ_i)X_iᵀ‖²) / √(Σ_i ‖W_i X_iᵀ‖²) before / after the residual (with gram) */
  outputRelBefore?: number;
  outputRel?: number;
  /** fraction of the low-rank residual energy ‖R‖² the residual vectors recover (0 without) */
  residualEnergyRecovered: number;
  residualVsRank?: ResidualVsRank;
}

/** Absolute squared norms behind the ratios, so errors can be pooled over groups, layers, models. */
export interface ErrorEnergies {
  /** Σ ‖W_i‖² */
  weight: number;
  /** Σ ‖W_i − A_i·B‖² (low-rank error, before the residual) */
  residualBefore: number;
  /** Σ ‖W_i − Ŵ_i‖² (final) */
  residualAfter: number;
  /** Σ ‖W_i X_iᵀ‖², Σ ‖(W_i − A_i·B)X_iᵀ‖², Σ ‖(W_i − Ŵ_i)X_iᵀ‖² (with gram) */
  output?: { weight: number; before: number; after: number };
}

/** Pooled relative errors: √(Σ error² / Σ norm²) over the given groups. */
export interface PooledErrors {
  weightRelBefore: number;
  weightRelAfter: number;
  outputRelBefore?: number;
  outputRel?: number;
  residualEnergyRecovered: number;
}

export function poolErrors(energies: readonly ErrorEnergies[]): PooledErrors {
  let weight = 0;
  let before = 0;
  let after = 0;
  let outWeight = 0;
  let outBefore = 0;
  let outAfter = 0;
  let withOutput = energies.length > 0;
  for (const e of energies) {
    weight += e.weight;
    before += e.residualBefore;
    after += e.residualAfter;
    if (e.output) {
      outWeight += e.output.weight;
      outBefore += e.output.before;
      outAfter += e.output.after;
    } else withOutput = false;
  }
  const pooled: PooledErrors = {
    weightRelBefore: ratio(before, weight),
    weightRelAfter: ratio(after, weight),
    residualEnergyRecovered: before > 0 ? Math.max(0, before - after) / before : 0,
  };
  if (withOutput) {
    pooled.outputRelBefore = ratio(outBefore, outWeight);
    pooled.outputRel = ratio(outAfter, outWeight);
  }
  return pooled;
}

export interface ExpertErrors {
  expert: number;
  /** ‖W_i − Ŵ_i‖ / ‖W_i‖ of the final reconstruction */
  weightRel: number;
  /** ‖(W_i − Ŵ_i)X_iᵀ‖ / ‖W_i X_iᵀ‖ of the final reconstruction (with gram) */
  outputRel?: number;
}

export interface CompressedGroup {
  /** expert indices, in the order of the stacked rows */
  experts: number[];
  /** rows p and columns d of one expert matrix */
  p: number;
  d: number;
  rank: number;
  /** effective rank of the stacked raw matrices */
  erank: number;
  /** routing-frequency share F_g, effective-rank share E_g, fused importance C_g */
  F: number;
  E: number;
  C: number;
  /**
   * absent: shared input-side basis, Ŵ_i = A_i·B_g (basis B_g rank×d, coefficients A_i p×rank);
   * 'output-basis': Ŵ_i = U_g·C_i (basis U_g p×rank, coefficients C_i rank×d);
   * 'base-delta': Ŵ_i = W̄_g + A_i·B_i (`base` W̄_g p×d, coefficients A_i p×K_i, expertBases B_i
   * K_i×d, K_i = expertRanks[i]; `basis` is empty and `rank` the largest K_i)
   */
  structure?: 'output-basis' | 'base-delta';
  /** B_g (rank×d) shared by the group; U_g (p×rank) for 'output-basis' */
  basis: Float32Array;
  /** per expert (same order as `experts`): A_i p×rank; C_i rank×d for 'output-basis' */
  coefficients: Float32Array[];
  /** 'base-delta' only */
  base?: Float32Array;
  expertBases?: Float32Array[];
  expertRanks?: number[];
  residual?: { descriptor: ProjectionDescriptor; vectors: Float32Array[] };
  /** relative damping the whitening Cholesky needed */
  whiteningDamping?: number;
  errors: GroupErrors;
  energies: ErrorEnergies;
  expertErrors: ExpertErrors[];
}

export interface LayerTimings {
  spectrumMs: number;
  allocateMs: number;
  factorMs: number;
  residualMs: number;
  errorsMs: number;
  totalMs: number;
}

export interface CompressLayerResult {
  groups: CompressedGroup[];
  /** ranks per group, in group order */
  ranks: number[];
  budget: LayerBudget;
  /** errors pooled over the whole layer and matrix type */
  errors: PooledErrors;
  allocation: Pick<Allocation, 'kTotal' | 'usedParams' | 'leftoverParams' | 'caps'>;
  params: {
    original: number;
    stored: number;
    rank: number;
    residual: number;
    /** stored / original: γ to within one rank unit for largest-remainder allocation */
    ratio: number;
  };
  /** experts with fewer routed calibration tokens than recipe.minExpertTokens, etc. */
  warnings: string[];
  /** what the spectral path chose by measurement (structure, residual gate); absent on the paper path */
  choices?: LayerChoices;
  recipeFingerprint: string;
  engine: string;
  timings: LayerTimings;
}

export class CompressInputError extends RfidMoeError {
  readonly kind = 'CompressInputError';
}

export function checkInput(input: CompressLayerInput): void {
  const { matrices, p, d, frequencies } = input;
  if (matrices.length !== frequencies.length) {
    throw new CompressInputError(`${matrices.length} expert matrices but ${frequencies.length} routing frequencies; give one count per expert`);
  }
  for (const [i, m] of matrices.entries()) {
    if (!(m instanceof Float32Array) && !(m instanceof PackedBf16)) {
      throw new CompressInputError(`expert ${i}: matrix must be a Float32Array or packed bf16 (packLossless); convert f16 weights to f32 first`);
    }
    if (m.length !== p * d) throw new CompressInputError(`expert ${i}: matrix has ${m.length} entries, expected ${p}×${d} = ${p * d}`);
    const j = firstNonFinite(m);
    if (j >= 0) throw new CompressInputError(`expert ${i}: entry ${j} (row ${Math.floor(j / d)}, column ${j % d}) is ${valueAt(m, j)}; weights must be finite`);
  }
  for (const [i, f] of frequencies.entries()) {
    if (!Number.isFinite(f) || f < 0) throw new CompressInputError(`expert ${i}: routing frequency ${f} must be a finite count ≥ 0`);
  }
  if (input.recipe.refit && !input.gram) {
    throw new CompressInputError('the recipe asks to refit coefficients against calibration activations but no Gram matrices were given; collect activations or set refit: false');
  }
  if (input.recipe.whiten !== false && !input.gram) {
    throw new CompressInputError('the recipe asks for whitening but no calibration Gram matrices were given; collect activations or set whiten: false');
  }
}

/**
 * The group's matrices stacked row-wise, (|g|·p)×d; a single f32 expert is used as is (no copy:
 * read only, see stackIsOwn).
 */
export function stack(matrices: readonly ExpertWeights[], experts: readonly number[], p: number, d: number): Float32Array {
  if (experts.length === 1) return toF32(matrices[experts[0]]);
  const out = new Float32Array(experts.length * p * d);
  experts.forEach((e, j) => copyInto(matrices[e], out, j * p * d));
  return out;
}

/** Whether stack() returns an array of our own (stacked or decoded) rather than the caller's. */
function stackIsOwn(matrices: readonly ExpertWeights[], experts: readonly number[]): boolean {
  return experts.length > 1 || decodesFresh(matrices[experts[0]]);
}

function squaredNorm(x: Float32Array | Float64Array, start = 0, end = x.length): number {
  let s = 0;
  for (let j = start; j < end; j++) s += x[j] * x[j];
  return s;
}

/** Columns of the Gram converted to f32 at a time in outputSquaredNorms. */
const GRAM_COLUMN_BLOCK = 256;

/**
 * ‖D·Xᵀ‖² = Σ (D·G) ∘ D for each D (p×d f32) and G = XᵀX (d×d f64), in f32 products over blocks
 * of G's columns. Peak memory: a d×256 f32 block and a p×256 product instead of G in f32 and a
 * p×d product (22 MiB at Qwen3-30B-A3B shapes) beside the group's factors.
 */
function outputSquaredNorms(engine: Engine, p: number, d: number, Ds: readonly Float32Array[], G: Float64Array): number[] {
  const sums = Ds.map(() => 0);
  const bw = Math.min(GRAM_COLUMN_BLOCK, d);
  const block = new Float32Array(d * bw);
  const prod = new Float32Array(p * bw);
  for (let c0 = 0; c0 < d; c0 += bw) {
    const w = Math.min(bw, d - c0);
    for (let i = 0; i < d; i++) for (let c = 0; c < w; c++) block[i * w + c] = G[i * d + c0 + c];
    Ds.forEach((D, k) => {
      engine.gemm(p, w, d, D, block.subarray(0, d * w), prod.subarray(0, p * w));
      let s = 0;
      for (let r = 0; r < p; r++) {
        const row = r * d + c0;
        for (let c = 0; c < w; c++) s += prod[r * w + c] * D[row + c];
      }
      sums[k] += s;
    });
  }
  return sums.map((x) => Math.max(x, 0));
}

function ratio(num: number, den: number): number {
  return den > 0 ? Math.sqrt(num / den) : 0;
}

/**
 * The Gram callback with its last answer remembered. The factor pass asks for one expert's Gram up
 * to three times in a row (group metric, refit, output errors); a callback that builds or reads a
 * fresh d×d f64 array each time would otherwise leave two spare copies per expert (64 MiB at
 * Qwen3-30B-A3B shapes) for the garbage collector, which frees them late.
 */
export function rememberLastGram(gram: (expert: number) => Float64Array): (expert: number) => Float64Array {
  let last = -1;
  let value: Float64Array | undefined;
  return (expert) => {
    if (expert !== last || !value) {
      value = undefined; // the previous one can go before the next is made
      value = gram(expert);
      last = expert;
    }
    return value;
  };
}

/** Compress one matrix type of one layer. Validates everything before any heavy work. */
export function compressLayerType(input: CompressLayerInput): CompressLayerResult {
  const t0 = performance.now();
  const { engine, recipe, matrices, p, d, frequencies } = input;
  const n = matrices.length;
  const budget = validateRecipeForLayer(recipe, { numExperts: n, p, d });
  checkInput(input);
  // the layer's large temporaries go back to the system when freed (peak memory; see there)
  if (engine.name === 'native') mapLargeAllocations();

  const warnings: string[] = [];
  const rare = frequencies.flatMap((f, i) => (f < recipe.minExpertTokens ? [i] : []));
  if (rare.length > 0) {
    warnings.push(
      `${rare.length} expert(s) were routed fewer than ${recipe.minExpertTokens} calibration tokens (${rare.slice(0, 8).join(', ')}${rare.length > 8 ? ', …' : ''}): their frequency share is noisy; use more calibration tokens`,
    );
  }

  if (usesSpectralPath(recipe)) return compressLayerSpectral(input, budget, warnings, t0);

  // 1–3. groups and their exact spectra (raw weights, as the paper)
  const groups = groupExperts(frequencies, effectiveGroupSize(recipe), groupOrderOf(recipe));
  const sizes = groups.map((g) => g.length);
  const spectra = groups.map((g) => engine.singularValues(g.length * p, d, stack(matrices, g, p, d)));
  const eranks = spectra.map((s) => effectiveRank(s));
  const tSpectrum = performance.now();

  // 4. fusion and allocation
  const F = shareNormalise(groups.map((g) => g.reduce((acc, e) => acc + frequencies[e], 0)));
  const E = shareNormalise(eranks);
  const C = fuseImportance(F, E, effectiveXi(recipe));
  const allocOpts = { p, d, rankBudgetParams: budget.rankBudgetParams, rounding: recipe.rounding };
  const allocation = usesEqualRanks(recipe) ? allocateEqualRanks(sizes, allocOpts) : allocateRanks(C, sizes, allocOpts);
  const tAllocate = performance.now();

  // 5–6. factors, residual, errors, group by group (only one stacked group alive at a time)
  const q = resolvedResidualShare(recipe) > 0 ? budget.residualPerExpert : 0;
  const timings = { factorMs: 0, residualMs: 0, errorsMs: 0 };
  const out: CompressedGroup[] = [];
  for (const [g, experts] of groups.entries()) {
    const signals = { erank: eranks[g], F: F[g], E: E[g], C: C[g] };
    const factorise = (M: Float32Array) => factorGroup(input, g, experts, M, allocation.ranks[g]);
    out.push(compressGroup(input, g, experts, allocation.ranks[g], spectra[g], signals, q, timings, factorise));
    if (input.handOverMatrices) releaseMatrices(input, experts);
    input.onGroupDone?.(g + 1, groups.length);
  }

  const rankParams = allocation.usedParams;
  const stored = storedParams(allocation.ranks, sizes, p, d, q);
  const shortfall = budget.targetParams - stored;
  if (shortfall >= budget.rankUnitCost) {
    const why = usesEqualRanks(recipe)
      ? `the ${recipe.allocation} baseline gives every group the same rank`
      : recipe.rounding === 'floor'
        ? "the paper's floor rounding drops each group's fractional rank"
        : 'every group is at its rank cap';
    warnings.push(
      `stored parameters ${stored} fall ${Math.round(shortfall)} short of retain ${recipe.retain} (${(stored / budget.originalParams).toFixed(4)} kept): ${why}`,
    );
  }
  const tEnd = performance.now();
  return {
    groups: out,
    ranks: allocation.ranks,
    budget,
    errors: poolErrors(out.map((g) => g.energies)),
    allocation: { kTotal: allocation.kTotal, usedParams: allocation.usedParams, leftoverParams: allocation.leftoverParams, caps: allocation.caps },
    params: { original: budget.originalParams, stored, rank: rankParams, residual: n * q, ratio: stored / budget.originalParams },
    warnings,
    recipeFingerprint: recipeFingerprint(recipe),
    engine: engine.describe(),
    timings: {
      spectrumMs: tSpectrum - t0,
      allocateMs: tAllocate - tSpectrum,
      ...timings,
      totalMs: tEnd - t0,
    },
  };
}

function factorGroup(input: CompressLayerInput, g: number, experts: readonly number[], M: Float32Array, rank: number): LowRankFactors & { damping?: number } {
  const { engine, recipe, p, d } = input;
  const m = experts.length * p;
  if (recipe.whiten !== false) {
    // One basis per group needs one whitening: the summed Gram weighs each expert's inputs by how
    // many tokens it saw, i.e. the group objective Σ_i ‖(W_i − Ŵ_i)X_iᵀ‖² with a common metric.
    // Whitened factors always use the exact SVD (W·L is f64 and the optimum is the point).
    const gram = sumGramsOf(d, experts, input.gram as (e: number) => Float64Array);
    return whitenedTruncatedSvd(engine, m, d, M, gram, rank, { dampingSchedule: recipe.whiten.dampingSchedule });
  }
  const randomized = { ...recipe.randomizedSvd, seed: mixSeed(recipe.randomizedSvd.seed, g) };
  return truncatedFactors(engine, m, d, M, rank, recipe.svd, randomized);
}

/** The factors of one group, in the structure it was factored in (see CompressedGroup). */
export type GroupFactors =
  | { structure?: undefined; A: Float32Array; B: Float32Array; damping?: number }
  | { structure: 'output-basis'; U: Float32Array; C: Float32Array[]; damping?: number }
  | { structure: 'base-delta'; base: Float32Array; A: Float32Array[]; B: Float32Array[]; ranks: number[]; damping?: number };

export function compressGroup(
  input: CompressLayerInput,
  g: number,
  experts: number[],
  rank: number,
  spectrum: Float64Array,
  signals: Pick<CompressedGroup, 'erank' | 'F' | 'E' | 'C'>,
  q: number,
  timings: { factorMs: number; residualMs: number; errorsMs: number },
  makeFactors: (M: Float32Array) => GroupFactors,
  rankEnergyIsOutput = false,
  /** what the residual's parameters would buy as rank, when not the group's own spectrum beyond `rank` at |g|·p + d per unit */
  rankAlternative?: { spectrum: Float64Array; rank: number; unitCost: number },
): CompressedGroup {
  const { engine, recipe, matrices, p, d } = input;
  const size = p * d;
  const m = experts.length * p;
  let t = performance.now();
  const M = stack(matrices, experts, p, d);
  const factors = makeFactors(M);
  // the residual starts as M: a stacked or decoded group is our own copy (makeFactors is done
  // reading it), a single f32 expert is the caller's matrix and is copied
  const R = stackIsOwn(matrices, experts) ? M : Float32Array.from(M);
  let shape: Pick<CompressedGroup, 'structure' | 'basis' | 'coefficients' | 'base' | 'expertBases' | 'expertRanks'>;
  if (factors.structure === 'output-basis') {
    // R_i = W_i − U·C_i
    factors.C.forEach((C, j) => engine.gemm(p, d, rank, factors.U, C, R.subarray(j * size, (j + 1) * size), { alpha: -1, beta: 1 }));
    shape = { structure: 'output-basis', basis: factors.U, coefficients: factors.C };
  } else if (factors.structure === 'base-delta') {
    // R_i = W_i − W̄ − A_i·B_i
    experts.forEach((_, j) => {
      const Rj = R.subarray(j * size, (j + 1) * size);
      for (let i = 0; i < size; i++) Rj[i] -= factors.base[i];
      engine.gemm(p, d, factors.ranks[j], factors.A[j], factors.B[j], Rj, { alpha: -1, beta: 1 });
    });
    shape = { structure: 'base-delta', basis: new Float32Array(0), coefficients: factors.A, base: factors.base, expertBases: factors.B, expertRanks: factors.ranks };
  } else {
    // R = M − A·B in one GEMM (C starts as a copy of M, beta = 1)
    engine.gemm(m, d, rank, factors.A, factors.B, R, { alpha: -1, beta: 1 });
    shape = { basis: factors.B, coefficients: experts.map((_, j) => factors.A.slice(j * p * rank, (j + 1) * p * rank)) };
  }
  const now1 = performance.now();
  timings.factorMs += now1 - t;
  t = now1;

  // Per expert, one at a time: its Gram serves the output error before and after its residual,
  // so only one expert's Gram is alive, never the group's.
  const weightNorms: number[] = [];
  const residualBefore: number[] = [];
  const residualAfter: number[] = [];
  const outputBefore: number[] | undefined = input.gram ? [] : undefined;
  const outputNorms: number[] | undefined = input.gram ? [] : undefined;
  const outputAfter: number[] | undefined = input.gram ? [] : undefined;
  let residual: CompressedGroup['residual'];
  let projection: SparseProjection | undefined;
  let vectors: Float32Array[] | undefined;
  if (q > 0) {
    const descriptor: ProjectionDescriptor = {
      scheme: recipe.residual.buckets,
      q,
      length: size,
      seed: recipe.residual.buckets === 'random' ? mixSeed(recipe.residual.seed, g) : 0,
    };
    projection = createProjection(descriptor);
    vectors = [];
    residual = { descriptor, vectors };
  }
  let recoveredEnergy = 0;
  for (const [j, e] of experts.entries()) {
    const Rj = R.subarray(j * size, (j + 1) * size);
    // (a packed expert is decoded again: M became the residual)
    const W = toF32(matrices[e]);
    weightNorms.push(squaredNorm(W));
    const before = squaredNorm(Rj);
    residualBefore.push(before);
    // output error before the residual (Rj is still the pure low-rank error)
    if (input.gram && outputNorms && outputBefore) {
      const [norm, err] = outputSquaredNorms(engine, p, d, [W, Rj], input.gram(e));
      outputNorms.push(norm);
      outputBefore.push(err);
    }
    const now2 = performance.now();
    timings.errorsMs += now2 - t;
    t = now2;
    if (projection && vectors) {
      const eta = projection.project(Rj);
      projection.addReconstruction(Rj, eta, -1); // R_j ← R_j − P·η_j
      recoveredEnergy += squaredNorm(eta);
      vectors.push(eta);
      residualAfter.push(squaredNorm(Rj));
    } else residualAfter.push(before);
    const now3 = performance.now();
    timings.residualMs += now3 - t;
    t = now3;
    if (input.gram && outputAfter && outputBefore) {
      outputAfter.push(q > 0 ? outputSquaredNorms(engine, p, d, [Rj], input.gram(e))[0] : outputBefore[j]);
    }
  }
  timings.errorsMs += performance.now() - t;

  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const totalWeight = sum(weightNorms);
  const totalBefore = sum(residualBefore);
  const errors: GroupErrors = {
    weightRelBefore: ratio(totalBefore, totalWeight),
    weightRelAfter: ratio(sum(residualAfter), totalWeight),
    residualEnergyRecovered: totalBefore > 0 ? recoveredEnergy / totalBefore : 0,
  };
  if (outputBefore && outputAfter && outputNorms) {
    errors.outputRelBefore = ratio(sum(outputBefore), sum(outputNorms));
    errors.outputRel = ratio(sum(outputAfter), sum(outputNorms));
  }
  if (q > 0) {
    // with a whitened spectrum the next ranks are priced in output space, and so is the residual
    const recovered = rankEnergyIsOutput && outputBefore && outputAfter ? Math.max(0, sum(outputBefore) - sum(outputAfter)) : recoveredEnergy;
    const alt = rankAlternative ?? { spectrum, rank, unitCost: rankUnitCost(experts.length, p, d) };
    errors.residualVsRank = residualVsRank(alt.spectrum, alt.rank, experts.length * q, alt.unitCost, recovered);
  }
  const energies: ErrorEnergies = { weight: totalWeight, residualBefore: totalBefore, residualAfter: sum(residualAfter) };
  if (outputBefore && outputAfter && outputNorms) energies.output = { weight: sum(outputNorms), before: sum(outputBefore), after: sum(outputAfter) };

  return {
    experts,
    p,
    d,
    rank,
    ...signals,
    ...shape,
    residual,
    ...(factors.damping !== undefined ? { whiteningDamping: factors.damping } : {}),
    errors,
    energies,
    expertErrors: experts.map((e, j) => ({
      expert: e,
      weightRel: ratio(residualAfter[j], weightNorms[j]),
      ...(outputAfter && outputNorms ? { outputRel: ratio(outputAfter[j], outputNorms[j]) } : {}),
    })),
  };
}

/** What the residual's |g|·q numbers recovered, against what as many parameters buy as rank. */
function residualVsRank(spectrum: Float64Array, rank: number, params: number, unit: number, recovered: number): ResidualVsRank {
  const equivalentRanks = params / unit;
  const whole = Math.floor(equivalentRanks);
  // σ² of the next ranks, the fractional last one pro rata
  const next = energyBetween(spectrum, rank, rank + whole) + (equivalentRanks - whole) * energyBetween(spectrum, rank + whole, rank + whole + 1);
  return { residualEnergyPerParam: recovered / params, rankEnergyPerParam: next / params, equivalentRanks };
}

const projectionCache = new WeakMap<ProjectionDescriptor, SparseProjection>();

/**
 * Ŵ_i = A_i·B_g + P·η_i (or the group's structure's form) for the expert at `position` in the group (not the expert index):
 * what dense output writes and what tests compare against.
 */
export function reconstructExpert(group: CompressedGroup, position: number, engine: Engine): Float32Array {
  if (!Number.isInteger(position) || position < 0 || position >= group.experts.length) {
    throw new RangeError(`position ${position} outside the group's ${group.experts.length} experts`);
  }
  const { p, d, rank } = group;
  const W = new Float32Array(p * d);
  if (group.structure === 'output-basis') engine.gemm(p, d, rank, group.basis, group.coefficients[position], W);
  else if (group.structure === 'base-delta') {
    W.set(group.base as Float32Array);
    const K = (group.expertRanks as number[])[position];
    engine.gemm(p, d, K, group.coefficients[position], (group.expertBases as Float32Array[])[position], W, { beta: 1 });
  } else engine.gemm(p, d, rank, group.coefficients[position], group.basis, W);
  if (group.residual) {
    const { descriptor, vectors } = group.residual;
    let projection = projectionCache.get(descriptor);
    if (!projection) {
      projection = createProjection(descriptor);
      projectionCache.set(descriptor, projection);
    }
    projection.addReconstruction(W, vectors[position]);
  }
  return W;
}
