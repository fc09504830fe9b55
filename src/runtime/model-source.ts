/** What the runtime accepts as a model: an opened checkpoint or any weight provider. */
import type { Checkpoint } from '../checkpoint/types.js';
import { CheckpointWeights, type CheckpointWeightsOptions } from './checkpoint-weights.js';
import type { WeightProvider } from './weights.js';

export type ModelSource = Checkpoint | WeightProvider;

/** `opts` apply when `model` is a checkpoint (a provider is returned as it is). */
export function weightProviderOf(model: ModelSource, opts: CheckpointWeightsOptions = {}): WeightProvider {
  return 'layer' in model && typeof model.layer === 'function' ? model : new CheckpointWeights(model as Checkpoint, opts);
}
