/**
 * Llama 4's language model (`llama4_text`: transformers' Llama4ForCausalLM with Llama4TextConfig,
 * the text half of Llama 4 Scout and Maverick; the releases wrap it in the multimodal `llama4`
 * config, which is not read here). As transformers' modeling_llama4 has it:
 * - attention: grouped-query, no biases. The layers `no_rope_layers` marks 1 rotate their queries
 *   and keys (interleaved pairs: transformers multiplies complex numbers), then RMS-normalise each
 *   head without a weight (use_qk_norm; Llama4TextL2Norm, eps rms_norm_eps), and attend within
 *   chunks of attention_chunk_size positions (layer_types "chunked_attention", by default those
 *   same layers). The others (NoPE, by default every no_rope_layer_interval-th) attend to every
 *   earlier position, their queries scaled by 1 + attn_scale·ln(1 + ⌊(position + 1) / floor_scale⌋)
 *   (attn_temperature_tuning).
 * - MoE layers (`moe_layers`, else every interleave_moe_layer_step-th from step − 1): the router's
 *   logits → top-k → sigmoid of the chosen ones; each chosen expert takes the token's hidden state
 *   times that weight and the outputs are summed as they are (ModelConfig.routingWeightsScaleInputs),
 *   plus an ungated shared expert of intermediate_size. Other layers: a dense MLP of
 *   intermediate_size_mlp.
 * Tensor names as transformers holds them: `feed_forward.router`, `feed_forward.shared_expert.*`,
 * the experts fused and transposed (`feed_forward.experts.gate_up_proj` [E, H, 2I], the gate's
 * columns then the up's; `down_proj` [E, I, H]); dense layers `feed_forward.{gate,up,down}_proj`.
 * Defaults: transformers' Llama4TextConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import type { ModelConfig } from '../types.js';
import { llamaConfigPart, llamaKeys, llamaNames, noAttentionBias, positiveInt } from './common.js';

const LABEL = 'Llama 4 (text)';
const LAYER_TYPES = ['chunked_attention', 'full_attention'] as const;

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 202048,
    hidden_size: 5120,
    num_hidden_layers: 48,
    num_attention_heads: 40,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  head_dim: positiveInt.nullable().default(128),
  intermediate_size: positiveInt.default(8192),
  intermediate_size_mlp: positiveInt.default(16384),
  num_local_experts: positiveInt.default(16),
  num_experts_per_tok: positiveInt.default(1),
  moe_layers: z.array(z.number().int().nonnegative()).nullable().default(null),
  interleave_moe_layer_step: positiveInt.default(1),
  use_qk_norm: z.boolean().default(true),
  no_rope_layers: z.array(z.number().int()).nullable().default(null),
  no_rope_layer_interval: positiveInt.default(4),
  attention_chunk_size: positiveInt.nullable().default(8192),
  layer_types: z.array(z.string()).nullable().default(null),
  attn_temperature_tuning: z.boolean().default(true),
  floor_scale: positiveInt.default(8192),
  attn_scale: z.number().default(0.1),
  attention_bias: noAttentionBias.default(false),
});

type Parsed = z.infer<typeof configSchema>;

function invalid(message: string): CheckpointError {
  return new CheckpointError('InvalidConfig', `${message} (${LABEL} config); fix config.json`);
}

/** ropes[l]: layer l applies RoPE. no_rope_layers' 1 means RoPE (transformers' name is inverted); empty or absent: every no_rope_layer_interval-th layer has none. */
function ropeLayers(p: Parsed): boolean[] {
  const L = p.num_hidden_layers;
  // transformers: `no_rope_layers if no_rope_layers else default`, so an empty list is the default too
  if (p.no_rope_layers === null || p.no_rope_layers.length === 0) return Array.from({ length: L }, (_, l) => (l + 1) % p.no_rope_layer_interval !== 0);
  if (p.no_rope_layers.length < L) throw invalid(`config.json key 'no_rope_layers': ${p.no_rope_layers.length} entries for num_hidden_layers ${L}; list 1 (RoPE) or 0 (none) for every layer`);
  return p.no_rope_layers.slice(0, L).map((flag) => flag !== 0);
}

/** chunked[l]: layer l attends within its chunk (layer_types, by default the RoPE layers). */
function chunkedLayers(p: Parsed, ropes: readonly boolean[]): boolean[] {
  if (p.layer_types === null) return [...ropes];
  const types = p.layer_types;
  if (types.length !== p.num_hidden_layers || types.some((t) => !(LAYER_TYPES as readonly string[]).includes(t))) {
    throw invalid(`config.json key 'layer_types': must list "chunked_attention" or "full_attention" (the masks transformers' Llama 4 builds) for each of the ${p.num_hidden_layers} layers`);
  }
  return types.map((t) => t === 'chunked_attention');
}

/** transformers: moe_layers, else every interleave_moe_layer_step-th layer from step − 1. */
function moeLayers(p: Parsed): Set<number> {
  if (p.moe_layers !== null) return new Set(p.moe_layers);
  const step = p.interleave_moe_layer_step;
  const layers = new Set<number>();
  for (let l = step - 1; l < p.num_hidden_layers; l += step) layers.add(l);
  return layers;
}

/** Which layer marks a per-layer feature: every layer (no list), none (absent), or some. */
function someLayers(layers: readonly boolean[]): readonly boolean[] | undefined | 'all' {
  if (!layers.includes(true)) return undefined;
  return layers.every(Boolean) ? 'all' : layers;
}

/** Llama 4's attention: its RoPE and NoPE layers, the q/k norm and chunks of the former, the query scaling of the latter. */
function llama4Attention(p: Parsed): Pick<ModelConfig, 'ropeInterleave' | 'nopeLayers' | 'weightlessQkNormLayers' | 'attentionChunk' | 'llama4QueryScale'> {
  const ropes = ropeLayers(p);
  const nope = ropes.map((r) => !r);
  const chunked = someLayers(chunkedLayers(p, ropes));
  // transformers builds the chunked mask whether a layer uses it or not, and fails without a size
  if (p.attention_chunk_size === null) throw invalid(`config.json key 'attention_chunk_size': null, which transformers' Llama 4 fails on (it builds the chunked mask for every forward pass); set the chunk length the model was trained with (8192)`);
  const scaled = p.attn_temperature_tuning ? someLayers(nope) : undefined;
  return {
    // transformers multiplies (x[2i] + i·x[2i+1]) by e^(iθ): interleaved pairs
    ropeInterleave: true,
    ...(nope.includes(true) ? { nopeLayers: nope } : {}),
    ...(p.use_qk_norm && ropes.includes(true) ? { weightlessQkNormLayers: ropes } : {}),
    ...(chunked === undefined ? {} : { attentionChunk: chunked === 'all' ? { size: p.attention_chunk_size } : { size: p.attention_chunk_size, layers: chunked } }),
    ...(scaled === undefined
      ? {}
      : { llama4QueryScale: { beta: p.attn_scale, originalMaxPositions: p.floor_scale, positionOffset: 1, ...(scaled === 'all' ? {} : { layers: scaled }) } }),
  };
}

const feedForward = 'model.layers.{l}.feed_forward';

export const llama4Text = defineFamily({
  family: 'llama4_text',
  label: LABEL,
  modelTypes: ['llama4_text'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('llama4_text', p, raw, 500000),
    numExperts: p.num_local_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.intermediate_size,
    denseIntermediateSize: p.intermediate_size_mlp,
    // the sigmoid of each chosen logit, neither renormalised nor scaled
    normTopkProb: false,
    routedScalingFactor: 1,
    routing: 'topk-sigmoid',
    routingWeightsScaleInputs: true,
    sharedExpertIntermediateSize: p.intermediate_size,
    sharedExpertGated: false,
    qkvBias: false,
    qkNorm: 'none',
    attention: 'standard',
    ...llama4Attention(p),
  }),
  isMoeLayer: (p, layer) => moeLayers(p).has(layer),
  names: {
    ...llamaNames,
    router: `${feedForward}.router.weight`,
    fused: { gateUp: `${feedForward}.experts.gate_up_proj`, down: `${feedForward}.experts.down_proj`, form: 'transposed' },
    shared: {
      gate: `${feedForward}.shared_expert.gate_proj.weight`,
      up: `${feedForward}.shared_expert.up_proj.weight`,
      down: `${feedForward}.shared_expert.down_proj.weight`,
    },
    dense: { gate: `${feedForward}.gate_proj.weight`, up: `${feedForward}.up_proj.weight`, down: `${feedForward}.down_proj.weight` },
  },
});
