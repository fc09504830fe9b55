/**
 * Qwen2-MoE (`qwen2_moe`, e.g. Qwen1.5-MoE-A2.7B). Layer l is MoE iff l ∉ mlp_only_layers,
 * num_experts > 0 and (l+1) % decoder_sparse_step == 0; other layers are dense MLPs of
 * `intermediate_size`. One shared expert per MoE layer, scaled by sigmoid(shared_expert_gate(x)).
 * q/k/v carry biases (qkv_bias, true by default). Defaults: transformers Qwen2MoeConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { layerCountKey, perLayerWindow, windowSize } from '../sliding-window.js';
import {
  denseMlpNames,
  fusedExpertNames,
  llamaConfigPart,
  llamaKeys,
  llamaNames,
  mlpRouterName,
  nonNegativeInt,
  positiveInt,
  projExpertNames,
  qwen2SharedExpertNames,
  qkvBiasNames,
} from './common.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 151936,
    hidden_size: 2048,
    num_hidden_layers: 24,
    num_attention_heads: 16,
    num_key_value_heads: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  intermediate_size: positiveInt.default(5632),
  moe_intermediate_size: positiveInt.default(1408),
  shared_expert_intermediate_size: positiveInt.default(5632),
  num_experts: nonNegativeInt.default(60),
  num_experts_per_tok: positiveInt.default(4),
  norm_topk_prob: z.boolean().default(false),
  decoder_sparse_step: positiveInt.default(1),
  mlp_only_layers: z.array(nonNegativeInt).nullable().default(null),
  qkv_bias: z.boolean().default(true),
});

export const qwen2Moe = defineFamily({
  family: 'qwen2_moe',
  label: 'Qwen2-MoE',
  modelTypes: ['qwen2_moe'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('qwen2_moe', p, raw, 10000),
    // transformers' default layer_types: every other layer from the first, below max_window_layers
    ...perLayerWindow(raw, p.num_hidden_layers, 'Qwen2-MoE', raw.use_sliding_window === true ? windowSize(raw, 'Qwen2-MoE', 4096) : null, (l) => l % 2 === 0 && l < layerCountKey(raw, 'max_window_layers', 'Qwen2-MoE', 28)),
    numExperts: p.num_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.moe_intermediate_size,
    denseIntermediateSize: p.intermediate_size,
    normTopkProb: p.norm_topk_prob,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: p.shared_expert_intermediate_size,
    sharedExpertGated: true,
    qkvBias: p.qkv_bias,
    qkNorm: 'none',
    attention: 'standard',
  }),
  isMoeLayer: (p, l) => !(p.mlp_only_layers ?? []).includes(l) && p.num_experts > 0 && (l + 1) % p.decoder_sparse_step === 0,
  names: {
    ...llamaNames,
    attention: {
      ...llamaNames.attention,
      ...qkvBiasNames,
    },
    router: mlpRouterName,
    expert: projExpertNames,
    fused: fusedExpertNames,
    ...qwen2SharedExpertNames,
    dense: denseMlpNames,
  },
});
