/**
 * DeepSeekMoE (`deepseek`, deepseek-moe-16b, trust_remote_code layout). Layer l is MoE iff
 * n_routed_experts is set, l ≥ first_k_dense_replace and l % moe_layer_freq == 0; dense layers use
 * `intermediate_size`. `n_shared_experts` ungated shared experts are stored as one MLP of width
 * moe_intermediate_size × n_shared_experts (`mlp.shared_experts`). Its routing has no
 * routed_scaling_factor (that arrived with V2), so the factor is 1 whatever the config says.
 * Defaults: the remote-code DeepseekConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import {
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
  sharedExpertsNames,
} from './common.js';

/** MoE keys DeepSeek V1 and V2 share (V1 remote-code defaults). */
export const deepseekMoeKeys = {
  intermediate_size: positiveInt.default(11008),
  moe_intermediate_size: positiveInt.default(1407),
  n_routed_experts: positiveInt.nullable().default(null),
  n_shared_experts: nonNegativeInt.nullable().default(null),
  num_experts_per_tok: positiveInt.nullable().default(null),
  first_k_dense_replace: nonNegativeInt.default(0),
  moe_layer_freq: positiveInt.default(1),
  norm_topk_prob: z.boolean().default(false),
  scoring_func: z.literal('softmax', { error: "scoring_func must be 'softmax' (sigmoid scoring, DeepSeek-V3 style, is not supported)" }).default('softmax'),
  attention_bias: noAttentionBias.default(false),
};

export interface ParsedDeepseekMoeKeys {
  intermediate_size: number;
  moe_intermediate_size: number;
  n_routed_experts: number | null;
  n_shared_experts: number | null;
  num_experts_per_tok: number | null;
  first_k_dense_replace: number;
  moe_layer_freq: number;
}

export function deepseekIsMoeLayer(p: ParsedDeepseekMoeKeys, layer: number): boolean {
  return p.n_routed_experts !== null && layer >= p.first_k_dense_replace && layer % p.moe_layer_freq === 0;
}

/** The routed/shared/dense widths of a DeepSeek config (and of Mistral 4's, which keeps the keys). */
export function deepseekMoePart(p: Pick<ParsedDeepseekMoeKeys, 'intermediate_size' | 'moe_intermediate_size' | 'n_routed_experts' | 'n_shared_experts' | 'num_experts_per_tok'>) {
  return {
    numExperts: p.n_routed_experts ?? 0,
    topK: p.num_experts_per_tok ?? 0,
    expertIntermediateSize: p.moe_intermediate_size,
    denseIntermediateSize: p.intermediate_size,
    sharedExpertIntermediateSize: p.moe_intermediate_size * (p.n_shared_experts ?? 0),
    sharedExpertGated: false,
  };
}

/**
 * DeepSeek-V3's `noaux_tc` routing as a config declares it (V3, GLM-4.5, GLM-4.7-Flash and
 * dots.llm1 write the same keys): sigmoid scores, groups, renormalised, scaled.
 */
export function noauxTcPart(p: { norm_topk_prob: boolean; routed_scaling_factor: number; n_group: number; topk_group: number }) {
  return { normTopkProb: p.norm_topk_prob, routedScalingFactor: p.routed_scaling_factor, topkMethod: 'noaux_tc' as const, nGroup: p.n_group, topkGroup: p.topk_group };
}

/** DeepSeek-V3's router correction bias, also GLM-4.5's (noaux_tc routing) */
export const correctionBiasName = 'model.layers.{l}.mlp.gate.e_score_correction_bias';

export const deepseekMoeNames = {
  router: mlpRouterName,
  expert: projExpertNames,
  fused: fusedExpertNames,
  shared: sharedExpertsNames,
  dense: denseMlpNames,
};

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 102400,
    hidden_size: 4096,
    num_hidden_layers: 30,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 100000,
    eos_token_id: 100001,
  }),
  ...deepseekMoeKeys,
});

export const deepseek = defineFamily({
  family: 'deepseek',
  label: 'DeepSeekMoE',
  modelTypes: ['deepseek'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('deepseek', p, raw, 10000),
    ...deepseekMoePart(p),
    normTopkProb: p.norm_topk_prob,
    routedScalingFactor: 1,
    qkvBias: false,
    qkNorm: 'none',
    attention: 'standard',
  }),
  isMoeLayer: deepseekIsMoeLayer,
  names: { ...llamaNames, ...deepseekMoeNames },
});
