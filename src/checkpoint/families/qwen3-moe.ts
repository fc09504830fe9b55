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

/** The keys of Qwen3-MoE's MoE layers that Qwen3-VL-MoE's language model shares (its defaults aside) */
export interface ParsedQwen3MoeKeys {
  moe_intermediate_size: number;
  intermediate_size: number;
  num_experts?: number;
  num_local_experts?: number;
  num_experts_per_tok: number;
  decoder_sparse_step: number;
  mlp_only_layers: number[] | null;
}

/**
 * The expert count as the releases write it (num_experts) or as transformers 5 saves it
 * (num_local_experts), else the family's default.
 */
export function qwen3NumExperts(p: ParsedQwen3MoeKeys, fallback: number, label: string): number {
  return aliasedCount('num_local_experts', 'num_experts', { canonical: p.num_local_experts, alias: p.num_experts }, fallback, label);
}

/** Qwen3-MoE's MoE part of the config, the top-k renormalised or not */
export function qwen3MoePart(p: ParsedQwen3MoeKeys, numExperts: number, normTopkProb: boolean) {
  return {
    numExperts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.moe_intermediate_size,
    denseIntermediateSize: p.intermediate_size,
    normTopkProb,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: 0,
    sharedExpertGated: false,
    qkvBias: false,
    qkNorm: 'per-head' as const,
    attention: 'standard' as const,
  };
}

/** Qwen2-MoE's rule, which Qwen3-MoE keeps: MoE unless listed in mlp_only_layers, every decoder_sparse_step-th layer, none without experts */
export function qwen3IsMoeLayer(p: ParsedQwen3MoeKeys, layer: number, numExperts: number): boolean {
  return !(p.mlp_only_layers ?? []).includes(layer) && numExperts > 0 && (layer + 1) % p.decoder_sparse_step === 0;
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

const LABEL = 'Qwen3-MoE';

export const qwen3Moe = defineFamily({
  family: 'qwen3_moe',
  label: LABEL,
  modelTypes: ['qwen3_moe'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('qwen3_moe', p, raw, 10000),
    // transformers applies the window to every layer (Qwen3-MoE reads no max_window_layers)
    ...everyLayerWindow(raw.use_sliding_window === true ? windowSize(raw, LABEL, 4096) : null),
    ...qwen3MoePart(p, qwen3NumExperts(p, 128, LABEL), p.norm_topk_prob),
  }),
  isMoeLayer: (p, l) => qwen3IsMoeLayer(p, l, qwen3NumExperts(p, 128, LABEL)),
  names: qwen3MoeNames,
});
