/**
 * Stage 4, factorise: one MoE layer at a time, read its experts one matrix type at a time, run the
 * per-layer algorithm (grouping, allocation, factors, residual), and describe the result for the
 * report and the config block. Memory stays bounded by one layer's experts of one type.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import type { Engine } from '../../engine/types.js';
import { lazyLayerGrams } from '../../routing-stats/gram.js';
import { rankUnitCost } from '../../rank-allocation/budget.js';
import { compressLayerType, type CompressLayerResult } from '../compress-layer.js';
import type { LayerBlock } from '../output/block.js';
import { roundFactors, type CompressedTypeData } from '../output/layer-shard.js';
import type { ProgressListener } from '../progress.js';
import type { MatrixType, Recipe } from '../recipe.js';
import type { GroupReport, LayerReport, TypeReport } from '../report.js';
import { shapeOf } from './plan.js';
import type { EncodableDType } from '../../io/dtype.js';
import { packLossless, type ExpertWeights } from '../expert-weights.js';

export interface FactorisedLayer {
  compressed: CompressedTypeData[];
  types: LayerReport['types'];
  block: LayerBlock;
  warnings: string[];
}

/** Compresses every matrix type of MoE layer `layer` (factors rounded to the stored dtype). */
export async function factoriseLayer(args: {
  ckpt: Checkpoint;
  layer: number;
  recipe: Recipe;
  engine: Engine;
  frequencies: number[];
  gramsDir?: string;
  factorDtype: EncodableDType;
  emit: ProgressListener;
  /** per `${layer}/${type}`, from a model-wide allocation */
  rankBudgets?: Map<string, number>;
}): Promise<FactorisedLayer> {
  const { ckpt, layer: l, recipe, engine, frequencies, factorDtype, emit } = args;
  const L = ckpt.config.numLayers;
  // read on demand, one at a time: compressLayerType remembers the last one within a group, and
  // a re-read (a page-cached file) costs little against factorising the group; more kept here
  // would sit beside the group's own sum and factors (32 MiB each at Qwen3-30B-A3B shapes)
  const gram = args.gramsDir ? await lazyLayerGrams(args.gramsDir, l, ckpt.config.hiddenSize, 1) : undefined;
  const compressed: CompressedTypeData[] = [];
  const types: LayerReport['types'] = {};
  const warnings: string[] = [];
  for (const type of recipe.matrixTypes) {
    const { p, d } = shapeOf(ckpt, type);
    // held packed while it stays exact (a bf16 checkpoint): half the memory of f32, same results
    const matrices: ExpertWeights[] = [];
    for (let e = 0; e < ckpt.config.numExperts; e++) matrices.push(packLossless(await ckpt.readExpert(l, e, type)));
    const result = compressLayerType({
      engine,
      recipe,
      matrices,
      p,
      d,
      frequencies,
      // nothing else holds these arrays: each group's weights go once its factors are made
      handOverMatrices: true,
      ...(gram ? { gram } : {}),
      ...(args.rankBudgets?.has(`${l}/${type}`) ? { rankBudgetParams: args.rankBudgets.get(`${l}/${type}`) } : {}),
      onGroupDone: (done, total) => emit({ type: 'layer-group', layer: l, of: L, matrixType: type, group: done, groups: total }),
    });
    roundFactors(result.groups, factorDtype);
    compressed.push({ type, p, d, groups: result.groups });
    types[type] = typeReport(result, p, d, Math.min(recipe.groupSize, ckpt.config.numExperts));
    for (const w of result.warnings) warnings.push(`layer ${l} ${type}: ${w}`);
  }
  return { compressed, types, block: layerBlock(l, frequencies, compressed), warnings };
}

function groupReports(result: CompressLayerResult): GroupReport[] {
  return result.groups.map((g, i) => ({
    group: i,
    experts: g.experts,
    rank: g.rank,
    erank: g.erank,
    F: g.F,
    E: g.E,
    C: g.C,
    weightRelBefore: g.errors.weightRelBefore,
    weightRelAfter: g.errors.weightRelAfter,
    ...(g.errors.outputRelBefore !== undefined ? { outputRelBefore: g.errors.outputRelBefore } : {}),
    ...(g.errors.outputRel !== undefined ? { outputRelAfter: g.errors.outputRel } : {}),
    residualEnergyRecovered: g.errors.residualEnergyRecovered,
    residual: g.residual ? { ...g.residual.descriptor } : null,
    ...(g.whiteningDamping !== undefined ? { whiteningDamping: g.whiteningDamping } : {}),
    ...structureFields(g),
  }));
}

/** The structure tag of a group that is not a shared input-side basis (block and report). */
function structureFields(g: { structure?: 'output-basis' | 'base-delta'; expertRanks?: number[] }): { structure?: 'output-basis' | 'base-delta'; expertRanks?: number[] } {
  return { ...(g.structure ? { structure: g.structure } : {}), ...(g.expertRanks ? { expertRanks: [...g.expertRanks] } : {}) };
}

function typeReport(result: CompressLayerResult, p: number, d: number, groupSize: number): TypeReport {
  return {
    p,
    d,
    params: { original: result.params.original, stored: result.params.stored },
    ratio: result.params.ratio,
    rankUnitShare: rankUnitCost(groupSize, p, d) / result.params.original,
    groups: groupReports(result),
    warnings: result.warnings,
    ...(result.choices ? { choices: result.choices } : {}),
  };
}

function layerBlock(layer: number, counts: number[], compressed: CompressedTypeData[]): LayerBlock {
  const types: LayerBlock['types'] = {};
  for (const c of compressed) {
    types[c.type] = {
      p: c.p,
      d: c.d,
      groups: c.groups.map((g) => ({
        experts: g.experts,
        rank: g.rank,
        erank: g.erank,
        frequencyShare: g.F,
        erankShare: g.E,
        fusedScore: g.C,
        residual: g.residual ? { ...g.residual.descriptor } : null,
        ...structureFields(g),
      })),
    };
  }
  return { layer, routingCounts: counts, types };
}

/** The layer's block entry as recorded in the progress file's report (groups and descriptors). */
export function layerBlockFromReport(report: LayerReport, counts: number[]): LayerBlock {
  const types: LayerBlock['types'] = {};
  for (const [type, t] of Object.entries(report.types)) {
    if (!t) continue;
    types[type as MatrixType] = {
      p: t.p,
      d: t.d,
      groups: t.groups.map((g) => ({ experts: g.experts, rank: g.rank, erank: g.erank, frequencyShare: g.F, erankShare: g.E, fusedScore: g.C, residual: g.residual, ...structureFields(g) })),
    };
  }
  return { layer: report.layer, routingCounts: counts, types };
}
