/**
 * Stage 1, plan: everything that can be refused without reading a weight — the recipe against
 * every MoE layer (γ, group size, budget), contradictory options, statistics made on another model.
 */
import type { Checkpoint, LayerLayout } from '../../checkpoint/types.js';
import { checkCalibrationSeqLen } from '../../eval/seq-len.js';
import { RoutingStatsError, type RoutingStats } from '../../routing-stats/schema.js';
import { droppedTensors } from '../output/layer-shard.js';
import { CompressError, type CompressOptions } from '../options.js';
import { recipeNeedsGrams, validateRecipeForLayer, type MatrixType, type Recipe } from '../recipe.js';

export function moeLayers(ckpt: Checkpoint): LayerLayout[] {
  return ckpt.layout.layers.filter((l) => l.kind === 'moe');
}

/** p × d of one expert matrix of each type. */
export function shapeOf(ckpt: Checkpoint, type: MatrixType): { p: number; d: number } {
  const { hiddenSize: H, expertIntermediateSize: I } = ckpt.config;
  return type === 'down' ? { p: H, d: I } : { p: I, d: H };
}

export function validateBeforeWork(ckpt: Checkpoint, recipe: Recipe, storage: 'factored' | 'dense', opts: CompressOptions): void {
  const layers = moeLayers(ckpt);
  if (layers.length === 0) throw new CompressError('the model has no MoE layer: there is nothing to compress');
  for (const type of recipe.matrixTypes) {
    const { p, d } = shapeOf(ckpt, type);
    try {
      validateRecipeForLayer(recipe, { numExperts: ckpt.config.numExperts, p, d });
    } catch (err) {
      throw new CompressError(`${type} matrices (${p}×${d}, ${ckpt.config.numExperts} experts per layer): ${(err as Error).message}`);
    }
  }
  if (storage === 'factored') for (const l of layers) droppedTensors(l, recipe.matrixTypes);
  if (opts.stats !== undefined && opts.dataset !== undefined) throw new CompressError('give routing statistics either as `stats` or as `dataset`, not both');
  // a window longer than the model's context is meaningless and, sampled token by token, would crawl
  if (opts.dataset?.seqLen !== undefined) checkCalibrationSeqLen(ckpt.config, opts.dataset.seqLen);
  if (opts.stats === undefined && opts.dataset === undefined && opts.selfSampled?.seqLen !== undefined) checkCalibrationSeqLen(ckpt.config, opts.selfSampled.seqLen);
  if (recipeNeedsGrams(recipe) && opts.stats !== undefined && opts.grams === undefined) {
    throw new CompressError('whitening and refit need each expert\'s input Gram matrix: pass `grams`, a directory of Gram matrices written by calibration (rfid-moe calibrate with its grams directory), or calibrate here with `dataset`');
  }
}

export function checkStatsMatchModel(stats: RoutingStats, ckpt: Checkpoint, fingerprint: string, source: string): void {
  if (stats.model.fingerprint !== fingerprint) {
    throw new RoutingStatsError(
      `${source} was collected on another model (fingerprint ${stats.model.fingerprint.slice(0, 19)}…, this model ${fingerprint.slice(0, 19)}…, ${stats.model.family} with ${stats.model.numLayers} layers vs ${ckpt.config.family} with ${ckpt.config.numLayers}); calibrate this model with \`rfid-moe calibrate\` or pass \`dataset\``,
    );
  }
  for (const l of moeLayers(ckpt)) {
    const entry = stats.layers.find((s) => s.layer === l.index);
    if (!entry) throw new RoutingStatsError(`${source} has no counts for MoE layer ${l.index}; recalibrate the whole model`);
  }
}
