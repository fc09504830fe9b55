/**
 * The MoE forward pass on the engine. `forwardLogits` returns full logits for small runs;
 * evaluation and calibration use `runDecoder` with streamed heads (src/eval, src/routing-stats).
 */
import type { Engine } from '../engine/types.js';
import type { TokenBatch } from './batch.js';
import { fullLogits } from './head.js';
import { runDecoder, type DecoderOptions } from './layerwise.js';
import { weightProviderOf, type ModelSource } from './model-source.js';

export * from './batch.js';
export * from './weights.js';
export { DenseSwiGlu, Bf16SwiGlu, SwiGlu, swiGlu } from './mlp.js';
export { CheckpointWeights, type CheckpointWeightsOptions, withExperts, assertRunnable, bf16HeldTensorNames, UnsupportedModelError } from './checkpoint-weights.js';
export { runDecoder, type DecoderOptions, type LayerProgress } from './layerwise.js';
export { slidingWindowOf } from '../checkpoint/sliding-window.js';
export { route, moeBlock, type Routing, type MoeObserver } from './moe.js';
export { streamLogits, fullLogits, NextTokenStats, KlStats, type LogitBlock } from './head.js';

export { manyRowsWeights, weightProviderOf, type ModelSource } from './model-source.js';

export interface ModelRun {
  /** final-normed hidden states, rows × hidden (rows = batch.ids.length) */
  hidden: Float32Array;
  /** rows × vocab, row r = next-token logits after token r */
  logits: Float32Array;
}

/** Runs the whole model over a batch and returns hidden states and full logits. */
export async function runModel(model: ModelSource, engine: Engine, batch: TokenBatch, opts: DecoderOptions = {}): Promise<ModelRun> {
  const provider = weightProviderOf(model);
  const hidden = await runDecoder(provider, engine, batch, opts);
  const logits = await fullLogits(provider, engine, hidden, batch.ids.length);
  return { hidden, logits };
}

/** Next-token logits (rows × vocab) of every token of the batch. */
export async function forwardLogits(model: ModelSource, engine: Engine, batch: TokenBatch, opts: DecoderOptions = {}): Promise<Float32Array> {
  return (await runModel(model, engine, batch, opts)).logits;
}
export { stderrLayerProgress } from './progress.js';
export { ResidentWeights, residentIfFits, residentWeightBytes, DEFAULT_RESIDENT_BYTES } from './resident-weights.js';
export { KvCache } from './kv-cache.js';
export * from './generation/index.js';
