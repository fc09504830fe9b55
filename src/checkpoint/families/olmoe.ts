/**
 * OLMoE (`olmoe`, allenai/OLMoE-1B-7B). Every layer is MoE; `intermediate_size` is the expert
 * width (there is no moe_intermediate_size); q_norm/k_norm are RMSNorms over the whole q and k
 * projections (before the reshape to heads); `clip_qkv` optionally clamps q/k/v.
 * Defaults: transformers OlmoeConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import {
  fusedExpertNames,
  llamaConfigPart,
  llamaKeys,
  llamaNames,
  mlpRouterName,
  noAttentionBias,
  positiveInt,
  projExpertNames,
  qkNormNames,
} from './common.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 50304,
    hidden_size: 2048,
    num_hidden_layers: 16,
    num_attention_heads: 16,
    num_key_value_heads: null,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: 1,
    bos_token_id: null,
    eos_token_id: 50279,
  }),
  intermediate_size: positiveInt.default(2048),
  num_experts: positiveInt.default(64),
  num_experts_per_tok: positiveInt.default(8),
  norm_topk_prob: z.boolean().default(false),
  clip_qkv: z.number().positive().nullable().default(null),
  attention_bias: noAttentionBias.default(false),
});

/** OLMoE's routed experts and attention as a config gives them (FlexOlmo shares them). */
export function olmoeMoePart(p: { intermediate_size: number; num_experts: number; num_experts_per_tok: number; norm_topk_prob: boolean }) {
  return {
    numExperts: p.num_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.intermediate_size,
    denseIntermediateSize: 0,
    normTopkProb: p.norm_topk_prob,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: 0,
    sharedExpertGated: false,
    qkvBias: false,
    qkNorm: 'whole' as const,
    attention: 'standard' as const,
  };
}

/** OLMoE's tensor names (FlexOlmo adds its post-feedforward norm). */
export const olmoeNames = {
  ...llamaNames,
  attention: {
    ...llamaNames.attention,
    ...qkNormNames,
  },
  router: mlpRouterName,
  expert: projExpertNames,
  fused: fusedExpertNames,
};

export const olmoe = defineFamily({
  family: 'olmoe',
  label: 'OLMoE',
  modelTypes: ['olmoe'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('olmoe', p, raw, 10000),
    ...olmoeMoePart(p),
    clipQkv: p.clip_qkv,
  }),
  isMoeLayer: () => true,
  names: olmoeNames,
});
