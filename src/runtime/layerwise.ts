/**
 * Layer-by-layer execution: the batch's hidden states (rows × hidden) are carried from layer to
 * layer while only the current decoder layer's weights are resident (and, inside a MoE layer,
 * one expert at a time), plus the next layer's (or expert's) being read meanwhile. Peak memory ≈
 * two layers' attention weights + two experts + the batch's activations, so checkpoints larger
 * than RAM can be calibrated and evaluated.
 */
import type { Engine } from '../engine/types.js';
import { attentionBlock, type AttentionContext } from './attention.js';
import { longestSequence, positionsOf, type TokenBatch } from './batch.js';
import { moeBlock, type MoeObserver } from './moe.js';
import { ropeSpecOf, ropeTables } from './rope.js';
import { prefetch } from './prefetch.js';
import { scaleInPlace } from './numerics.js';
import type { KvCache } from './kv-cache.js';
import type { LayerWeights, NormWeights, WeightProvider } from './weights.js';
import { applyNorm } from './norm.js';
import type { ModelConfig, NormSite } from '../checkpoint/types.js';
import { attentionChunkOf, slidingWindowOf } from '../checkpoint/sliding-window.js';
import { queryScaleOf } from './llama4-query-scale.js';
import { layerNormSites } from '../checkpoint/layout.js';

export interface LayerProgress {
  layer: number;
  numLayers: number;
  /** milliseconds since the run started */
  elapsedMs: number;
}

export interface DecoderOptions {
  observer?: MoeObserver;
  /** called after each decoder layer */
  onLayer?(progress: LayerProgress): void;
  /** stop after this many layers (e.g. routing statistics of the first layers only); default all */
  layers?: number;
  /** apply the final norm (default true) */
  finalNorm?: boolean;
  /**
   * Incremental decoding: batch sequence s continues cache sequence s (its rows are positions
   * cache.lengths[s]…); keys and values are appended and the cache advanced after the last layer.
   * Requires every layer to run (no `layers` limit).
   */
  kvCache?: KvCache;
  /** with `kvCache`: batch sequence s continues cache slot kvSlots[s] (default: slot s, and the batch must cover every slot) */
  kvSlots?: ArrayLike<number>;
}

/** Hidden states after the decoder (final-normed unless told otherwise), rows × hidden. */
export async function runDecoder(provider: WeightProvider, engine: Engine, batch: TokenBatch, opts: DecoderOptions = {}): Promise<Float32Array> {
  const config = provider.config;
  const rows = batch.ids.length;
  const h = config.hiddenSize;
  const started = Date.now();
  const cache = opts.kvCache;
  const slots = opts.kvSlots;
  const added = new Int32Array(batch.offsets.length - 1);
  for (let s = 0; s < added.length; s++) added[s] = batch.offsets[s + 1] - batch.offsets[s];
  if (cache) {
    if (slots && slots.length !== added.length) throw new RangeError(`${slots.length} KV slots given for a batch of ${added.length} sequences`);
    if (!slots && cache.sequences !== added.length) throw new RangeError(`the KV cache holds ${cache.sequences} sequences but the batch has ${added.length}`);
    if (cache.numLayers !== config.numLayers || (opts.layers !== undefined && opts.layers < config.numLayers)) {
      throw new RangeError('a KV cache needs every decoder layer of the model to run');
    }
    // a linear-attention layer keeps its state in the cache only where the cache was made for it
    const linear = config.linearAttention?.layers;
    if (linear?.some((on, l) => on && !cache.isLinearLayer(l))) throw new RangeError('the model has linear-attention layers but the KV cache holds no state for them: make it with kvCacheOptions(config)');
    cache.assertRoom(added, slots);
  }
  const positions = positionsOf(batch);
  let longest = longestSequence(batch);
  if (cache) {
    for (let s = 0; s < added.length; s++) {
      const past = cache.lengths[slots ? slots[s] : s];
      for (let r = batch.offsets[s]; r < batch.offsets[s + 1]; r++) positions[r] += past;
      longest = Math.max(longest, past + added[s]);
    }
  }
  const ctx = decoderContext(engine, config, batch, positions, longest);

  const x = await embedTokens(provider, config, batch.ids);
  const normed = new Float32Array(rows * h);
  const numLayers = Math.min(opts.layers ?? config.numLayers, config.numLayers);
  // The next layer's weights are read from disk while this layer computes: the compute is
  // synchronous native work, so the reads (libuv's threads) would otherwise wait for it and it for them.
  let next = numLayers > 0 ? prefetch(provider.layer(0)) : undefined;
  for (let l = 0; l < numLayers; l++) {
    const layer = await next!;
    next = l + 1 < numLayers ? prefetch(provider.layer(l + 1)) : undefined;
    if (cache) ctx.kv = { cache, layer: l, slots };
    attentionStep(ctx, l, layer, x, normed);
    await mlpStep(ctx, l, layer, x, normed, opts.observer);
    opts.onLayer?.({ layer: l, numLayers, elapsedMs: Date.now() - started });
  }
  cache?.advance(added, slots);
  if (opts.finalNorm ?? true) {
    applyNorm(engine, config, rows, x, await provider.finalNorm(), x);
    // Granite divides its logits by logits_scaling: the head is linear, so its input is divided instead
    if (config.multipliers?.logits !== undefined) scaleInPlace(x, 1 / config.multipliers.logits);
  }
  return x;
}

/** The decoder's first hidden states: the tokens' embeddings (× Granite's embedding multiplier, AFMoE's muP scale). */
export async function embedTokens(provider: Pick<WeightProvider, 'embed'>, config: ModelConfig, ids: Int32Array): Promise<Float32Array> {
  const x = await provider.embed(ids);
  scaleInPlace(x, config.multipliers?.embedding);
  return x;
}

/** Attention context of a batch without a KV cache (positions from 0), for stepping layer by layer. */
export function decoderContext(engine: Engine, config: ModelConfig, batch: TokenBatch, positions: Int32Array = positionsOf(batch), longest: number = longestSequence(batch)): AttentionContext {
  const spec = ropeSpecOf(config);
  return {
    engine,
    config,
    batch,
    positions,
    rope: ropeTables(spec, Math.max(1, longest)),
    ropePositions: Math.max(1, longest),
    // Granite's attention_multiplier is the scale itself; the query head width is MLA's nope + rope too
    scale: config.multipliers?.attention ?? spec.softmaxScale / Math.sqrt(config.headDim),
    slidingWindow: slidingWindowOf(config, 0),
  };
}

/**
 * The first half of a decoder layer: x += attention(x normed at its input), the attention's output
 * normed before the add where the config places a norm there (ModelConfig.norms); then `normed` =
 * the MLP's input (x normed, or x itself where the MLP's input has no norm; in Cohere's parallel
 * block, ModelConfig.parallelBlock, the attention's normed input as it was). Split from `mlpStep`
 * so that a caller can look at the MLP's input (sequential calibration) before choosing the MLP
 * weights that finish the layer.
 */
export function attentionStep(ctx: AttentionContext, index: number, layer: LayerWeights, x: Float32Array, normed: Float32Array): void {
  const { config } = ctx;
  ctx.layer = index;
  ctx.slidingWindow = slidingWindowOf(config, index);
  ctx.attentionChunk = attentionChunkOf(config, index);
  ctx.rotary = config.nopeLayers?.[index] !== true;
  ctx.weightlessQkNorm = config.weightlessQkNormLayers?.[index] === true;
  ctx.queryScale = queryScaleOf(config, index);
  // a layer with a RoPE base of its own rotates with its own tables
  if (config.layerRopeThetas !== undefined) ctx.rope = ropeTables(ropeSpecOf(config, index), ctx.ropePositions ?? ctx.rope.positions);
  const rows = ctx.batch.ids.length;
  const h = config.hiddenSize;
  const kernels = ctx.engine.kernels;
  const sites = layerNormSites(config, layer.mlp.kind === 'moe');
  normInto(ctx.engine, config, rows, x, normed, sites.attentionInput ? normWeight(layer, 'attentionInput') : null);
  if (sites.attentionOutput) {
    const out = attentionBlock(ctx, layer.attention, normed);
    applyNorm(ctx.engine, config, rows, out, normWeight(layer, 'attentionOutput'), out);
    kernels.addInto(rows * h, x, out);
  } else {
    attentionBlock(ctx, layer.attention, normed, x); // x += attention(normed)
  }
  // the parallel block's MLP reads what the attention read
  if (config.parallelBlock) return;
  normInto(ctx.engine, config, rows, x, normed, sites.mlpInput ? normWeight(layer, 'mlpInput') : null);
}

/** The second half: x += mlp(normed), MoE or dense, with the MLP weights of `layer` (decoder layer `index`), its output normed where the config places a norm there. */
export async function mlpStep(ctx: AttentionContext, index: number, layer: LayerWeights, x: Float32Array, normed: Float32Array, observer?: MoeObserver): Promise<void> {
  const { engine, config } = ctx;
  const rows = ctx.batch.ids.length;
  const mlpOut =
    layer.mlp.kind === 'moe'
      ? await moeBlock(engine, config, index, layer.mlp.moe, normed, rows, observer)
      : denseForward(engine, layer.mlp.dense, normed, rows, config.hiddenSize);
  scaleInPlace(mlpOut, config.multipliers?.residual, rows * config.hiddenSize);
  if (layerNormSites(config, layer.mlp.kind === 'moe').mlpOutput) applyNorm(engine, config, rows, mlpOut, normWeight(layer, 'mlpOutput'), mlpOut);
  engine.kernels.addInto(rows * config.hiddenSize, x, mlpOut);
}

/** `out` = x normed with `norm`, or a copy of x where the site has no norm. */
function normInto(engine: Engine, config: ModelConfig, rows: number, x: Float32Array, out: Float32Array, norm: NormWeights | null): void {
  if (norm) applyNorm(engine, config, rows, x, norm, out);
  else out.set(x.subarray(0, rows * config.hiddenSize));
}

function normWeight(layer: LayerWeights, site: NormSite): NormWeights {
  const weight = layer.norms[site];
  if (!weight) throw new Error(`layer ${layer.index} has no weight for its ${site} norm, which its config's norm placement needs`);
  return weight;
}

function denseForward(engine: Engine, mlp: { forward: (e: Engine, x: Float32Array, rows: number, out: Float32Array) => void }, x: Float32Array, rows: number, h: number): Float32Array {
  const out = new Float32Array(rows * h);
  mlp.forward(engine, x, rows, out);
  return out;
}
