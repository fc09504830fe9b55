/**
 * The most positions a sequence may hold for the runtime to compute a model as its checkpoint
 * declares it. Today one architecture bounds it below max_position_embeddings: DeepSeek Sparse
 * Attention (DeepSeek-V3.2, GLM-5), whose indexer keeps every position only while there are at most
 * index_topk of them. The runtime attends densely, which is the same computation up to there and a
 * different one beyond, so every place that sizes or accepts a sequence (eval and calibration
 * windows, generate's and serve's context, the attention itself) holds to this limit.
 */
import type { ModelConfig } from './types.js';

export interface PositionLimit {
  positions: number;
  /** why, for messages: what the limit is and where it comes from */
  why: string;
}

/** The limit the runtime's computation imposes, or null where the model's own context is the only one. */
export function exactPositionLimit(config: ModelConfig): PositionLimit | null {
  const dsa = config.sparseAttention;
  if (!dsa) return null;
  return {
    positions: dsa.indexTopK,
    why: `index_topk (${dsa.indexTopK}): this model's sparse attention keeps every earlier position only up to that many, and rfid-moe runs it as dense attention, which is exact there and not beyond`,
  };
}
