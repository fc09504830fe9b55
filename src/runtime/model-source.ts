/** What the runtime accepts as a model: an opened checkpoint or any weight provider. */
import type { Checkpoint } from '../checkpoint/types.js';
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
