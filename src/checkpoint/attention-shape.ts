/**
 * The widths of a standard-attention layer, where they may differ from layer to layer
 * (MiMo-V2-Flash: its sliding layers have twice the kv heads, and sinks) or between keys and values
 * (its value heads are narrower than its query/key heads). One reading for the shapes a checkpoint
 * must hold (expected.ts), the runtime's attention and its KV cache.
 */
import type { ModelConfig } from './types.js';

type ShapeConfig = Pick<ModelConfig, 'numHeads' | 'numKvHeads' | 'headDim' | 'layerKvHeads' | 'valueHeadDim'>;

export interface AttentionShape {
  heads: number;
  kvHeads: number;
  /** width of a query/key head */
  headDim: number;
  /** width of a value head (and of each head's output) */
  valueHeadDim: number;
}

/** The attention widths of decoder layer `layer`. */
export function attentionShapeOf(config: ShapeConfig, layer: number): AttentionShape {
  return {
    heads: config.numHeads,
    kvHeads: config.layerKvHeads?.[layer] ?? config.numKvHeads,
    headDim: config.headDim,
    valueHeadDim: config.valueHeadDim ?? config.headDim,
  };
}

/** Whether decoder layer `layer` has attention sinks (ModelConfig.attentionSinks, sinkLayers). */
export function hasSinks(config: Pick<ModelConfig, 'attentionSinks' | 'sinkLayers'>, layer: number): boolean {
  return config.attentionSinks === true && (config.sinkLayers?.[layer] ?? true);
}
