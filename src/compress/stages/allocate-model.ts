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

/** key `${layer}/${type}` → parameters the factors of that layer and type may spend */
export type RankBudgets = Map<string, number>;

export async function modelRankBudgets(args: {
  ckpt: Checkpoint;
  recipe: Recipe;
  engine: Engine;
  countsOf: (layer: number) => number[];
  gramsDir?: string;
  emit: ProgressListener;
}): Promise<RankBudgets> {
  const { ckpt, recipe, engine, countsOf, emit } = args;
  const parts: Array<{ key: string; from: number; to: number }> = [];
  const groups: WaterfillGroup[] = [];
  let total = 0;
  const L = ckpt.config.numLayers;
  for (const layout of ckpt.layout.layers) {
    if (layout.kind !== 'moe') continue;
    const l = layout.index;
    emit({ type: 'layer-start', layer: l, of: L, etaSeconds: null });
    const gram = args.gramsDir ? await lazyLayerGrams(args.gramsDir, l, ckpt.config.hiddenSize, recipe.groupSize + 1) : undefined;
    for (const type of recipe.matrixTypes as MatrixType[]) {
      const { p, d } = shapeOf(ckpt, type);
      const matrices: Float32Array[] = [];
      for (let e = 0; e < ckpt.config.numExperts; e++) matrices.push(await ckpt.readExpert(l, e, type));
      const n = matrices.length;
      const budget = layerBudget({ n, p, d, k: effectiveGroupSize(recipe), retain: recipe.retain, residualShare: resolvedResidualShare(recipe) });
      const plan = planLayerSpectra({ engine, recipe, matrices, p, d, frequencies: countsOf(l), ...(gram ? { gram } : {}) }, budget);
      total += plan.residualParams > 0 ? budget.rankBudgetParams : budget.targetParams;
      parts.push({ key: `${l}/${type}`, from: groups.length, to: groups.length + plan.groups.length });
      groups.push(...plan.groups);
    }
  }
  const { ranks } = waterfill(groups, total);
  const budgets: RankBudgets = new Map();
  for (const part of parts) {
    let spent = 0;
    for (let g = part.from; g < part.to; g++) spent += ranks[g] * groups[g].unitCost;
    budgets.set(part.key, spent);
  }
  return budgets;
}
