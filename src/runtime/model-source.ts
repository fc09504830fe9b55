/** What the runtime accepts as a model: an opened checkpoint or any weight provider. */
import type { Checkpoint } from '../checkpoint/types.js';
import type { Engine } from '../engine/types.js';
import { CheckpointWeights, type CheckpointWeightsOptions } from './checkpoint-weights.js';
import type { WeightProvider } from './weights.js';

export type ModelSource = Checkpoint | WeightProvider;

/** A model that builds its own provider for the options (a compressed model, for its factored experts). */
interface ProviderFactory {
  providerWith(opts: CheckpointWeightsOptions): WeightProvider;
}

/**
 * `opts` apply when `model` is a checkpoint, or a model that builds its providers itself
 * (`providerWith`); any other provider is returned as it is.
 */
export function weightProviderOf(model: ModelSource, opts: CheckpointWeightsOptions = {}): WeightProvider {
  if (typeof (model as Partial<ProviderFactory>).providerWith === 'function') return (model as unknown as ProviderFactory).providerWith(opts);
  return 'layer' in model && typeof model.layer === 'function' ? model : new CheckpointWeights(model as Checkpoint, opts);
}

/**
 * How a pass over many rows at once (evaluation, calibration, sampling a batch of sequences) holds
 * the matrices stored BF16: as stored where the engine's products use them so (BF16 matmul
 * activations), or where it multiplies them faster than their f32 widening with f32 activations
 * too (`Engine.bf16WeightsFaster`: AMX tiles, whose products are the same exact ones). Otherwise
 * every weight is widened to f32: sgemm beat the BF16 kernels at a prompt's rows elsewhere.
 */
export function manyRowsWeights(engine: Engine): CheckpointWeightsOptions {
  return { bf16Weights: engine.matmulActivations === 'bf16' || engine.bf16WeightsFaster === true };
}
