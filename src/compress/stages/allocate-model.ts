/**
 * Stage 3 (optional), model-wide allocation (recipe.allocationScope 'model'): one water-filling
 * over the groups of every MoE layer and matrix type under the whole model's budget, instead of one
 * per layer. A first pass factorises every layer's groups for their spectra only (each layer's gains
 * relative to its own output energy, so layers of different scale compare); the result is each
 * layer and type's rank budget, which the factorise stage then spends exactly. The spectra are
 * computed again there: holding every layer's bases would cost a model's worth of memory.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import type { Engine } from '../../engine/types.js';
import { layerBudget } from '../../rank-allocation/budget.js';
import { waterfill, type WaterfillGroup } from '../../rank-allocation/waterfill.js';
import { lazyLayerGrams } from '../../routing-stats/gram.js';
import { effectiveGroupSize, resolvedResidualShare, type MatrixType, type Recipe } from '../recipe.js';
import { planLayerSpectra } from '../spectral-layer.js';
import type { ProgressListener } from '../progress.js';
import { shapeOf } from './plan.js';
import { packLossless, type ExpertWeights } from '../expert-weights.js';

/** key `${layer}/${type}` → parameters the factors of that layer and type may spend */
export type RankBudgets = Map<string, number>;

/** One layer and matrix type's groups as the model-wide water-filling sees them (JSON-safe). */
export interface SpectraPart {
  layer: number;
  type: MatrixType;
  /** parameters this layer and type contribute to the model's budget */
  budgetParams: number;
  /** parameters the chosen structure spends before any rank (W̄ of base-delta); not water-filled */
  fixedParams?: number;
  groups: Array<{ energies: number[]; weight: number; unitCost: number; cap: number }>;
}

/** Phase 1: the spectra of the given MoE layers (every MoE layer by default), layer by layer. */
export async function layerSpectra(args: {
  ckpt: Checkpoint;
  recipe: Recipe;
  engine: Engine;
  countsOf: (layer: number) => number[];
  gramsDir?: string;
  emit: ProgressListener;
  layers?: ReadonlySet<number>;
}): Promise<SpectraPart[]> {
  const { ckpt, recipe, engine, countsOf, emit } = args;
  const parts: SpectraPart[] = [];
  const L = ckpt.config.numLayers;
  for (const layout of ckpt.layout.layers) {
    if (layout.kind !== 'moe' || (args.layers && !args.layers.has(layout.index))) continue;
    const l = layout.index;
    emit({ type: 'layer-start', layer: l, of: L, etaSeconds: null });
    const gram = args.gramsDir ? await lazyLayerGrams(args.gramsDir, l, ckpt.config.hiddenSize, 1) : undefined;
    for (const type of recipe.matrixTypes as MatrixType[]) {
      const { p, d } = shapeOf(ckpt, type);
      // held packed while it stays exact (a bf16 checkpoint): half the memory of f32, same results
      const matrices: ExpertWeights[] = [];
      for (let e = 0; e < ckpt.config.numExperts; e++) matrices.push(packLossless(await ckpt.readExpert(l, e, type)));
      const n = matrices.length;
      const budget = layerBudget({ n, p, d, k: effectiveGroupSize(recipe), retain: recipe.retain, residualShare: resolvedResidualShare(recipe) });
      const plan = planLayerSpectra({ engine, recipe, matrices, p, d, frequencies: countsOf(l), ...(gram ? { gram } : {}) }, budget);
      parts.push({
        layer: l,
        type,
        budgetParams: (plan.residualParams > 0 ? budget.rankBudgetParams : budget.targetParams) - plan.fixedParams,
        ...(plan.fixedParams > 0 ? { fixedParams: plan.fixedParams } : {}),
        groups: plan.groups.map((g) => ({ energies: Array.from(g.energies), weight: g.weight, unitCost: g.unitCost, cap: g.cap })),
      });
    }
  }
  return parts;
}

/**
 * Phase 2: one water-filling over every part's groups under the sum of their budgets. Parts are
 * taken in layer order and, within a layer, in the recipe's type order, whichever order they come
 * in, so that spectra gathered from shards give the budgets of a one-process run.
 */
export function budgetsFromSpectra(parts: readonly SpectraPart[], recipe: Recipe): RankBudgets {
  const order = (t: MatrixType) => recipe.matrixTypes.indexOf(t);
  const sorted = [...parts].sort((a, b) => a.layer - b.layer || order(a.type) - order(b.type));
  const groups: WaterfillGroup[] = [];
  const spans: Array<{ key: string; from: number; to: number }> = [];
  let total = 0;
  for (const part of sorted) {
    spans.push({ key: `${part.layer}/${part.type}`, from: groups.length, to: groups.length + part.groups.length });
    groups.push(...part.groups);
    total += part.budgetParams;
  }
  const { ranks } = waterfill(groups, total);
  const budgets: RankBudgets = new Map();
  for (const span of spans) {
    let spent = sorted.find((p) => `${p.layer}/${p.type}` === span.key)?.fixedParams ?? 0;
    for (let g = span.from; g < span.to; g++) spent += ranks[g] * groups[g].unitCost;
    budgets.set(span.key, spent);
  }
  return budgets;
}

/** Phases 1 and 2 in one process: every MoE layer's spectra, then the budgets. */
export async function modelRankBudgets(args: Omit<Parameters<typeof layerSpectra>[0], 'layers'>): Promise<RankBudgets> {
  return budgetsFromSpectra(await layerSpectra(args), args.recipe);
}
