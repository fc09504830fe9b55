/** What the runtime accepts as a model: an opened checkpoint or any weight provider. */
import type { Checkpoint } from '../checkpoint/types.js';
import { CheckpointWeights } from './checkpoint-weights.js';
import type { WeightProvider } from './weights.js';

export type ModelSource = Checkpoint | WeightProvider;

export function weightProviderOf(model: ModelSource): WeightProvider {
  return 'layer' in model && typeof model.layer === 'function' ? model : new CheckpointWeights(model as Checkpoint);
}
