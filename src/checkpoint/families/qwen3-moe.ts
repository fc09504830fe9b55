/**
 * Qwen3-MoE (`qwen3_moe`, e.g. Qwen3-30B-A3B). MoE layers as Qwen2-MoE (decoder_sparse_step,
 * mlp_only_layers) but no shared expert and no q/k/v biases; `head_dim` may differ from
 * hidden/heads; q_norm/k_norm are RMSNorms over head_dim applied per head. On disk the expert
 * count is `num_experts` (transformers 5 aliases it to num_local_experts in memory).
 * Defaults: transformers Qwen3MoeConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { everyLayerWindow, windowSize } from '../sliding-window.js';
import {
  aliasedCount,
  denseMlpNames,
  fusedExpertNames,
  llamaConfigPart,
  llamaKeys,
  llamaNames,
  mlpRouterName,
  noAttentionBias,
  nonNegativeInt,
  positiveInt,
  projExpertNames,
  qkNormNames,
} from './common.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 151936,
    hidden_size: 2048,
    num_hidden_layers: 24,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  intermediate_size: positiveInt.default(6144),
  moe_intermediate_size: positiveInt.default(768),
  // the releases' name; transformers 5 saves num_local_experts (numExpertsOf)
  num_experts: nonNegativeInt.optional(),
  num_local_experts: nonNegativeInt.optional(),
  num_experts_per_tok: positiveInt.default(8),
  norm_topk_prob: z.boolean().default(false),
  decoder_sparse_step: positiveInt.default(1),
  mlp_only_layers: z.array(nonNegativeInt).nullable().default(null),
  attention_bias: noAttentionBias.default(false),
});

/** The expert count under either name transformers reads it by */
function numExpertsOf(p: { num_experts?: number; num_local_experts?: number }, raw: Record<string, unknown> = {}): number {
  return aliasedCount(raw, 'num_local_experts', 'num_experts', { canonical: p.num_local_experts, alias: p.num_experts }, 128, 'Qwen3-MoE');
}

/** Qwen3-MoE's tensor names, Qwen3-VL-MoE's language model's too */
export const qwen3MoeNames = {
  ...llamaNames,
  attention: {
    ...llamaNames.attention,
    ...qkNormNames,
  },
  router: mlpRouterName,
  expert: projExpertNames,
  fused: fusedExpertNames,
  dense: denseMlpNames,
};

export const qwen3Moe = defineFamily({
  family: 'qwen3_moe',
  label: 'Qwen3-MoE',
  modelTypes: ['qwen3_moe'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('qwen3_moe', p, raw, 10000),
    // transformers applies the window to every layer (Qwen3-MoE reads no max_window_layers)
    ...everyLayerWindow(raw.use_sliding_window === true ? windowSize(raw, 'Qwen3-MoE', 4096) : null),
    numExperts: numExpertsOf(p, raw),
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.moe_intermediate_size,
    denseIntermediateSize: p.intermediate_size,
    normTopkProb: p.norm_topk_prob,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: 0,
    sharedExpertGated: false,
    qkvBias: false,
    qkNorm: 'per-head',
    attention: 'standard',
  }),
  isMoeLayer: (p, l) => !(p.mlp_only_layers ?? []).includes(l) && numExpertsOf(p) > 0 && (l + 1) % p.decoder_sparse_step === 0,
  names: qwen3MoeNames,
});
