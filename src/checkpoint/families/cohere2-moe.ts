/**
 * Cohere2-MoE (`cohere2_moe`, Cohere2MoeForCausalLM). Cohere's parallel block: one norm on the
 * layer's input (input_layernorm), read by both the attention and the MLP, whose outputs join the
 * residual together (ModelConfig.parallelBlock). That norm and the final one are Cohere's
 * LayerNorm (mean-centred, a weight and no bias, eps layer_norm_eps) where rms_norm_eps is null,
 * as by default, else RMSNorms with rms_norm_eps (ModelConfig.normKind). Attention is
 * grouped-query; RoPE rotates interleaved pairs (x[2i], x[2i+1]), and only in the sliding-window
 * layers (`layer_types`, else every sliding_window_pattern-th layer full, the dense prefix by
 * prefix_dense_sliding_window_pattern) and the dense layers where prefix_dense_sliding_window_pattern
 * is 1 (transformers' force_rope); the other full-attention layers apply none. MLPs follow
 * `mlp_layer_types`, else first_k_dense_replace dense layers then MoE; the dense ones are
 * prefix_dense_intermediate_size wide (else intermediate_size), the experts intermediate_size.
 * The router takes the top-k logits and weighs them by a softmax over those k, or by their
 * sigmoids (divided by their sum where norm_topk_prob) with expert_selection_fn "sigmoid"; the
 * num_shared_experts shared experts form one MLP of intermediate_size × their count, added to the
 * routed sum or averaged with it (shared_expert_combination_strategy). The logits are multiplied
 * by logit_scale. Tensor names are Qwen2-MoE's (per expert, or transformers' fused form).
 * Defaults: transformers' Cohere2MoeConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { perLayerWindow, windowSize } from '../sliding-window.js';
import type { ModelConfig } from '../types.js';
import { denseMlpNames, fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, mlpLayerTypes, mlpLayerTypesKey, nonNegativeInt, positiveInt, projExpertNames, qkvBiasNames, sharedExpertsNames } from './common.js';

const LABEL = 'Cohere2-MoE';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 256000,
    hidden_size: 8192,
    num_hidden_layers: 40,
    num_attention_heads: 64,
    num_key_value_heads: null,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    pad_token_id: 0,
    bos_token_id: 5,
    eos_token_id: 255001,
  }),
  // null (the default): LayerNorms with layer_norm_eps; a number: RMSNorms with it
  rms_norm_eps: z.number().positive().nullable().default(null),
  layer_norm_eps: z.number().positive().default(1e-5),
  // transformers sizes the attention by head_dim itself: null does not fall back to hidden_size / heads there
  head_dim: positiveInt.default(128),
  intermediate_size: positiveInt.default(22528),
  prefix_dense_intermediate_size: positiveInt.nullable().default(null),
  logit_scale: z.number().positive().default(0.0625),
  num_experts: positiveInt.default(8),
  num_experts_per_tok: positiveInt.default(2),
  num_shared_experts: nonNegativeInt.default(0),
  shared_expert_combination_strategy: z.enum(['average', 'sum'], { error: "shared_expert_combination_strategy must be 'average' or 'sum', as transformers' Cohere2MoeSparseMoeBlock requires" }).default('average'),
  expert_selection_fn: z.enum(['softmax', 'sigmoid'], { error: "expert_selection_fn must be 'softmax' or 'sigmoid', as transformers' Cohere2MoeTopKRouter requires" }).default('softmax'),
  norm_topk_prob: z.boolean().default(true),
  first_k_dense_replace: nonNegativeInt.default(0),
  mlp_layer_types: mlpLayerTypesKey,
  sliding_window_pattern: positiveInt.default(4),
  prefix_dense_sliding_window_pattern: positiveInt.default(1),
  attention_bias: z.boolean().default(false),
});

type Parsed = z.infer<typeof configSchema>;

/**
 * transformers' default layer_types: the first first_k_dense_replace layers sliding unless their
 * index + 1 is a multiple of prefix_dense_sliding_window_pattern (with 1, all full), the rest
 * counted again from 1 by sliding_window_pattern.
 */
function slidingByPattern(p: Parsed): (layer: number) => boolean {
  const prefix = p.first_k_dense_replace;
  return (l) => (l < prefix ? (l + 1) % p.prefix_dense_sliding_window_pattern !== 0 : (l - prefix + 1) % p.sliding_window_pattern !== 0);
}

/** The window of the sliding layers, and the layers without RoPE: full attention and not forced to rope. */
function attentionLayers(p: Parsed, raw: Record<string, unknown>): Pick<ModelConfig, 'slidingWindow' | 'nopeLayers'> {
  const size = windowSize(raw, LABEL, 4096);
  const listed = raw.layer_types !== undefined && raw.layer_types !== null;
  const byDefault = slidingByPattern(p);
  // transformers fails on such a config (its sliding masks take the window as an integer)
  if (!listed && size === null && Array.from({ length: p.num_hidden_layers }, (_, l) => byDefault(l)).includes(true))
    throw new CheckpointError('InvalidConfig', `config.json sets sliding_window to null while layers are sliding by sliding_window_pattern (${LABEL} config); set sliding_window, or list layer_types all "full_attention"`);
  // checks a listed layer_types, and refuses sliding layers without a window
  const window = perLayerWindow(raw, p.num_hidden_layers, LABEL, size, byDefault);
  const sliding = (l: number) => (listed ? (raw.layer_types as unknown[])[l] === 'sliding_attention' : byDefault(l)) && size !== null;
  const mlpTypes = mlpLayerTypes(p, LABEL);
  // transformers' force_rope: dense layers rope whatever their attention when the prefix pattern is 1
  const forced = (l: number) => mlpTypes[l] === 'dense' && p.prefix_dense_sliding_window_pattern === 1;
  const nope = Array.from({ length: p.num_hidden_layers }, (_, l) => !sliding(l) && !forced(l));
  return { ...window, ...(nope.includes(true) ? { nopeLayers: nope } : {}) };
}

/** transformers fails on layer_types other than its two (validate_layer_type), so do we, before the window reads them. */
function checkLayerTypes(raw: Record<string, unknown>, layers: number): void {
  const types = raw.layer_types;
  if (types === undefined || types === null) return;
  if (!Array.isArray(types) || types.length !== layers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention'))
    throw new CheckpointError('InvalidConfig', `config.json key 'layer_types': must list "sliding_attention" or "full_attention" for each of the ${layers} layers (${LABEL} config); fix config.json`);
}

export const cohere2Moe = defineFamily({
  family: 'cohere2_moe',
  label: LABEL,
  modelTypes: ['cohere2_moe'],
  configSchema,
  normalize: (p, raw) => {
    checkLayerTypes(raw, p.num_hidden_layers);
    const layerNorm = p.rms_norm_eps === null;
    const sharedWidth = p.intermediate_size * p.num_shared_experts;
    return {
      ...llamaConfigPart('cohere2_moe', { ...p, rms_norm_eps: p.rms_norm_eps ?? p.layer_norm_eps }, raw, 10000),
      ...attentionLayers(p, raw),
      ropeInterleave: true,
      norms: { attentionInput: true, attentionOutput: false, mlpInput: false, mlpOutput: false },
      normKind: layerNorm ? { kind: 'layer', bias: false } : { kind: 'rms' },
      parallelBlock: true,
      // the head multiplies by logit_scale: the multipliers divide by their logits value
      multipliers: { logits: 1 / p.logit_scale },
      numExperts: p.num_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.intermediate_size,
      denseIntermediateSize: p.prefix_dense_intermediate_size ?? p.intermediate_size,
      sharedExpertIntermediateSize: sharedWidth,
      sharedExpertGated: false,
      ...(sharedWidth > 0 && p.shared_expert_combination_strategy === 'average' ? { sharedExpertCombination: 'average' as const } : {}),
      routing: p.expert_selection_fn === 'softmax' ? 'topk-softmax' : 'topk-sigmoid',
      // only the sigmoid router reads norm_topk_prob
      normTopkProb: p.expert_selection_fn === 'sigmoid' && p.norm_topk_prob,
      routedScalingFactor: 1,
      qkvBias: p.attention_bias,
      ...(p.attention_bias ? { oBias: true } : {}),
      qkNorm: 'none',
      attention: 'standard',
    };
  },
  isMoeLayer: (p, layer) => mlpLayerTypes(p, LABEL)[layer] === 'sparse',
  names: {
    ...llamaNames,
    // one norm a layer, the parallel block's
    norms: { attentionInput: llamaNames.norms.attentionInput },
    attention: { ...llamaNames.attention, ...qkvBiasNames, oBias: 'model.layers.{l}.self_attn.o_proj.bias' },
    router: 'model.layers.{l}.mlp.gate.weight',
    expert: projExpertNames,
    fused: fusedExpertNames,
    shared: sharedExpertsNames,
    dense: denseMlpNames,
  },
});
