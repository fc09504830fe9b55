/**
 * The compression recipe: every knob of the per-layer algorithm, typed and validated (zod),
 * loadable from JSON and saved with every output so a run can be reproduced.
 *
 * The parsed form is canonical: the budget is always `retain` γ (with `budgetGivenAs` recording
 * whether the user wrote retain or remove), every default is filled in, and re-parsing a saved
 * recipe yields the same object and the same fingerprint.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { breakEvenRank, layerBudget, rankCap, rankUnitCost, type LayerBudget } from '../rank-allocation/budget.js';
import type { GroupOrder } from './grouping.js';
import { mergeOver, PRESET_NAMES, presetBody } from './presets.js';
import { GRAM_WEIGHTINGS } from '../routing-stats/gram.js';
import { RfidMoeError } from '../errors.js';

export class RecipeError extends RfidMoeError {
  readonly kind = 'RecipeError';
}

/** 'waterfill': marginal-gain water-filling over each group's (whitened) σ² per parameter (beyond the paper) */
export const ALLOCATIONS = ['fused', 'uniform', 'grouped-uniform', 'frequency', 'erank', 'waterfill'] as const;
export type AllocationMode = (typeof ALLOCATIONS)[number];

export const MATRIX_TYPES = ['gate', 'up', 'down'] as const;
export type MatrixType = (typeof MATRIX_TYPES)[number];

/** SVD-LLM's damping: λ·mean(diag(XᵀX)) added to the diagonal, λ tried in this order. */
export const DEFAULT_DAMPING_SCHEDULE = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

const fraction01 = (what: string) =>
  z.number().refine((v) => v > 0 && v < 1, { message: `${what} must be strictly between 0 and 1` });

const ResidualSchema = z.strictObject({
  /** β: share of the layer's parameters spent on residual vectors; 0 disables the residual */
  share: z.number().min(0, 'residual.share must be ≥ 0').max(0.999, 'residual.share must be < 1').default(0.03),
  /** 'absolute': β of the original parameters (the paper); 'fraction-of-retain': β·γ, which
   * keeps the residual's part of a small budget small (see docs/method.md) */
  shareMode: z.enum(['absolute', 'fraction-of-retain']).default('absolute'),
  /** bucket scheme of the sparse projection P */
  buckets: z.enum(['tile', 'random']).default('tile'),
  /** seed of the 'random' scheme (per group it is mixed with the group index) */
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  /** spend β on residual vectors in a layer only when the energy they recover per parameter beats
   * the same parameters spent as rank (otherwise the layer spends them as rank) */
  gate: z.boolean().default(false),
});

const WhitenSchema = z.union(
  [
    z.literal(false),
    z.strictObject({
      dampingSchedule: z.array(z.number().positive()).min(1).default(DEFAULT_DAMPING_SCHEDULE),
    }),
  ],
  { error: 'whiten must be false or an object such as {"dampingSchedule": [1e-6, 1e-4, 1e-2]}' },
);

const RandomizedSvdSchema = z.strictObject({
  oversample: z.number().int().min(0).default(16),
  powerIterations: z.number().int().min(0).default(2),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
});

/** The group structures a layer may be factored in (compress/structures.ts, group-factorisation.ts). */
export const STRUCTURE_KINDS = ['per-expert', 'input-basis', 'output-basis', 'base-delta'] as const;
export type StructureKind = (typeof STRUCTURE_KINDS)[number];
/** What structure 'auto' compares when the recipe names no `structures`. */
export const DEFAULT_STRUCTURES: readonly StructureKind[] = ['per-expert', 'input-basis'];

export const RecipeSchema = z
  .strictObject({
    /** γ: fraction of gate+up parameters kept (give this or `remove`) */
    retain: fraction01('retain').optional(),
    /** ρ = 1 − γ: fraction removed (give this or `retain`) */
    remove: fraction01('remove').optional(),
    /** which of the two the user wrote; kept so reports can speak the user's language */
    budgetGivenAs: z.enum(['retain', 'remove']).optional(),
    /** k experts per shared basis; 1 is per-expert adaptive SVD */
    groupSize: z.number().int().min(1, 'groupSize must be ≥ 1').default(4),
    /** ξ in C = ξ·E + (1 − ξ)·F */
    xi: z.number().min(0, 'xi must be in [0, 1]').max(1, 'xi must be in [0, 1]').default(0.8),
    allocation: z.enum(ALLOCATIONS).default('fused'),
    rounding: z.enum(['largest-remainder', 'floor']).default('largest-remainder'),
    residual: ResidualSchema.prefault({}),
    /** activation-aware whitening (SVD-LLM); false = plain SVD (the paper) */
    whiten: WhitenSchema.default(false),
    svd: z.enum(['exact', 'randomized']).default('exact'),
    randomizedSvd: RandomizedSvdSchema.prefault({}),
    /** 'grouped': groups of groupSize as given; 'auto': per layer and matrix type, the lower
     * predicted output-space error at equal budget of per-expert factors and groups of groupSize */
    structure: z.enum(['grouped', 'auto']).default('grouped'),
    /** the structures 'auto' compares (default per-expert and input-basis): 'per-expert',
     * 'input-basis' (one basis B_g per group, W_i ≈ A_i·B_g), 'output-basis' (W_i ≈ U_g·C_i),
     * 'base-delta' (W_i ≈ W̄_g + A_i·B_i); the last two need allocation 'waterfill' */
    structures: z
      .array(z.enum(STRUCTURE_KINDS))
      .min(1, 'structures needs at least one of per-expert, input-basis, output-basis, base-delta')
      .refine((a) => new Set(a).size === a.length, { message: 'structures lists a structure twice' })
      .optional(),
    /** how groups are formed; default: index order for grouped-uniform, routing frequency otherwise;
     * 'affinity': experts whose leading input subspaces overlap most share a basis */
    grouping: z.enum(['frequency', 'index', 'affinity']).optional(),
    /** refit each expert's coefficients in closed form against its own calibration Gram matrix */
    refit: z.boolean().default(false),
    /** water-filling within each layer and matrix type ('layer'), or over every MoE layer of the
     * model under one budget ('model'; each layer's share follows its spectra, relative to its own
     * output energy) */
    allocationScope: z.enum(['layer', 'model']).default('layer'),
    /** how routed tokens count in the calibration Gram matrices (whitening, refit): 'tokens' (each
     * once), 'routing' (× routing weight w), 'routing-squared' (× w², the first-order weight of the
     * expert's error in the block output) */
    gramWeighting: z.enum(GRAM_WEIGHTINGS as unknown as ['tokens', 'routing', 'routing-squared']).default('tokens'),
    /** the named preset this recipe started from (its values are filled in; written fields win) */
    preset: z.string().optional(),
    matrixTypes: z
      .array(z.enum(MATRIX_TYPES))
      .min(1, 'matrixTypes needs at least one of gate, up, down')
      .refine((a) => new Set(a).size === a.length, { message: 'matrixTypes lists a type twice' })
      .default(['gate', 'up']),
    /** warn when an expert was routed fewer calibration tokens than this */
    minExpertTokens: z.number().int().min(0).default(10),
  })
  .superRefine((r, ctx) => {
    if (r.retain === undefined && r.remove === undefined) {
      ctx.addIssue({ code: 'custom', message: 'give the budget as retain (fraction kept, e.g. 0.6) or remove (fraction removed, e.g. 0.4)' });
    }
    if (r.retain !== undefined && r.remove !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'give either retain or remove, not both' });
    }
  })
  .transform((r) => {
    const givenAs = r.remove !== undefined ? 'remove' : (r.budgetGivenAs ?? 'retain');
    // 1 − ρ in floats is not always the decimal the user meant (1 − 0.7 = 0.30000000000000004);
    // rounding to 12 digits keeps the budget arithmetic identical to `retain: 0.3`.
    const retain = r.remove !== undefined ? Math.round((1 - r.remove) * 1e12) / 1e12 : (r.retain as number);
    const { remove: _remove, budgetGivenAs: _given, retain: _retain, ...rest } = r;
    return { retain, budgetGivenAs: givenAs as 'retain' | 'remove', ...rest };
  })
  .superRefine((r, ctx) => {
    if (r.structures && r.structure !== 'auto') {
      ctx.addIssue({ code: 'custom', path: ['structures'], message: 'structures lists the candidates of structure "auto"; set structure: "auto" or drop structures' });
    }
    if (r.structures?.some((s) => s === 'output-basis' || s === 'base-delta') && r.allocation !== 'waterfill') {
      ctx.addIssue({ code: 'custom', path: ['structures'], message: 'structures output-basis and base-delta allocate rank per unit and need allocation "waterfill"' });
    }
    if (r.allocationScope === 'model' && r.allocation !== 'waterfill') {
      ctx.addIssue({ code: 'custom', path: ['allocationScope'], message: 'allocationScope "model" needs allocation "waterfill" (the only allocation that compares groups across layers)' });
    }
    const beta = resolvedResidualShare(r);
    if (beta >= r.retain) {
      ctx.addIssue({
        code: 'custom',
        path: ['residual', 'share'],
        message: `residual share ${beta} leaves nothing for rank out of retain ${r.retain}; use residual.share < retain or shareMode "fraction-of-retain"`,
      });
    }
  });

/** The canonical, fully defaulted recipe. */
export type Recipe = z.output<typeof RecipeSchema>;
/** What a user may write (JSON file or CLI options). */
export type RecipeInput = z.input<typeof RecipeSchema>;

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : 'recipe';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/** Parse a recipe from a JSON string or an already-parsed object. Throws RecipeError naming every problem. */
export function parseRecipe(json: unknown): Recipe {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new RecipeError(`recipe is not valid JSON (${(err as Error).message}); fix the file's syntax`);
    }
  }
  const result = RecipeSchema.safeParse(withPreset(value));
  if (!result.success) throw new RecipeError(`invalid recipe: ${formatIssues(result.error)}`);
  return result.data;
}

/** Fill in the named preset under the written fields (see presets.ts). */
function withPreset(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const written = value as Record<string, unknown>;
  if (written.preset === undefined) return value;
  if (typeof written.preset !== 'string') throw new RecipeError(`invalid recipe: preset must be a name, one of ${PRESET_NAMES.join(', ')}`);
  const body = presetBody(written.preset);
  if (!body) throw new RecipeError(`invalid recipe: unknown preset "${written.preset}"; choose one of ${PRESET_NAMES.join(', ')}`);
  return mergeOver(body as Record<string, unknown>, written);
}

/** Read and parse a recipe JSON file. */
export function loadRecipe(path: string): Recipe {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RecipeError(`cannot read recipe file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseRecipe(text);
  } catch (err) {
    throw new RecipeError(`${path}: ${(err as Error).message}`);
  }
}

function canonicalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalise);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = canonicalise((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** JSON with sorted keys and 2-space indentation: what gets saved next to an output. */
export function recipeToJson(recipe: Recipe): string {
  return JSON.stringify(canonicalise(recipe), null, 2) + '\n';
}

/** Stable hash (sha256, first 16 hex digits) of the canonical JSON of the parsed recipe. */
export function recipeFingerprint(recipe: Recipe): string {
  return createHash('sha256').update(JSON.stringify(canonicalise(recipe))).digest('hex').slice(0, 16);
}

// ---- what a recipe means for one layer -------------------------------------------------------

/** β as an absolute share of the original parameters. */
export function resolvedResidualShare(recipe: Pick<Recipe, 'retain' | 'residual'>): number {
  return recipe.residual.shareMode === 'absolute' ? recipe.residual.share : recipe.residual.share * recipe.retain;
}

/** The uniform baseline is per-expert by definition; every other mode uses `groupSize`. */
export function effectiveGroupSize(recipe: Pick<Recipe, 'allocation' | 'groupSize'>): number {
  return recipe.allocation === 'uniform' ? 1 : recipe.groupSize;
}

/** ξ actually used: frequency-only is ξ = 0, effective-rank-only ξ = 1. */
export function effectiveXi(recipe: Pick<Recipe, 'allocation' | 'xi'>): number {
  if (recipe.allocation === 'frequency') return 0;
  if (recipe.allocation === 'erank') return 1;
  return recipe.xi;
}

/** grouped-uniform groups in index order (MoBE); everything else by routing frequency, unless
 * `grouping` says otherwise ('affinity' orders seeds by frequency). */
export function groupOrderOf(recipe: Pick<Recipe, 'allocation'> & { grouping?: Recipe['grouping'] }): GroupOrder {
  if (recipe.grouping === 'index') return 'index';
  if (recipe.grouping === 'frequency' || recipe.grouping === 'affinity') return 'frequency';
  return recipe.allocation === 'grouped-uniform' ? 'index' : 'frequency';
}

/** Whether the recipe needs each expert's calibration Gram matrix (whitening or refit). */
export function recipeNeedsGrams(recipe: Pick<Recipe, 'whiten' | 'refit'>): boolean {
  return recipe.whiten !== false || recipe.refit;
}

/** Whether the layer runs the spectral path (one factorisation per group, see compress-layer.ts). */
export function usesSpectralPath(recipe: Recipe): boolean {
  return (
    recipe.whiten !== false ||
    recipe.allocation === 'waterfill' ||
    recipe.allocationScope === 'model' ||
    recipe.structure === 'auto' ||
    recipe.refit ||
    recipe.residual.gate ||
    recipe.grouping === 'affinity'
  );
}

/** The equal-rank baselines. */
export function usesEqualRanks(recipe: Pick<Recipe, 'allocation'>): boolean {
  return recipe.allocation === 'uniform' || recipe.allocation === 'grouped-uniform';
}

export interface LayerShape {
  numExperts: number;
  /** rows of one expert matrix */
  p: number;
  /** columns of one expert matrix */
  d: number;
}

/** Sizes of the groups of k over n experts (the last one smaller when k does not divide n). */
export function groupSizesFor(n: number, k: number): number[] {
  const sizes: number[] = [];
  for (let start = 0; start < n; start += k) sizes.push(Math.min(k, n - start));
  return sizes;
}

/**
 * Refuse, before any work, a recipe this layer cannot honour; returns the layer's budget.
 * Checks: shape, group size ≤ experts, the budget buys one rank per group, and the budget is not
 * beyond what factors can use (every group at break-even).
 */
export function validateRecipeForLayer(recipe: Recipe, shape: LayerShape): LayerBudget {
  const { numExperts: n, p, d } = shape;
  for (const [name, v] of [['numExperts', n], ['p', p], ['d', d]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RecipeError(`layer ${name} must be a positive integer, got ${v}`);
  }
  const k = effectiveGroupSize(recipe);
  if (k > n) {
    throw new RecipeError(`group size ${k} is larger than the ${n} experts of this layer; use a group size ≤ ${n}`);
  }
  const beta = resolvedResidualShare(recipe);
  const budget = layerBudget({ n, p, d, k, retain: recipe.retain, residualShare: beta });
  const sizes = groupSizesFor(n, k);
  if (sizes.some((s) => rankCap(s, p, d) < 1)) {
    throw new RecipeError(`${p}×${d} matrices are too small to factor: rank 1 already costs more than the dense matrix`);
  }
  const oneRankEach = sizes.reduce((acc, s) => acc + rankUnitCost(s, p, d), 0);
  if (budget.rankBudgetParams < oneRankEach) {
    const needed = (oneRankEach + budget.residualParams) / budget.originalParams;
    throw new RecipeError(
      `retain ${recipe.retain} is too small for one rank per group: ${sizes.length} groups need ${oneRankEach} parameters ` +
        `but the rank budget is ${Math.floor(budget.rankBudgetParams)}; use retain ≥ ${needed.toPrecision(3)}, a larger group size, or a smaller residual share`,
    );
  }
  const usable = sizes.reduce((acc, s) => acc + rankCap(s, p, d) * rankUnitCost(s, p, d), 0);
  if (budget.rankBudgetParams > usable + rankUnitCost(k, p, d)) {
    throw new RecipeError(
      `retain ${recipe.retain} is beyond what factoring can use: at the break-even rank (${breakEvenRank(k, p, d)} for a group of ${k}) ` +
        `factors already cost as much as the dense matrices; lower retain (≤ ${((usable + budget.residualParams) / budget.originalParams).toPrecision(3)})`,
    );
  }
  return budget;
}
