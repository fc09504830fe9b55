/**
 * DeepSeek-V2 / V2-Lite (`deepseek_v2`). The MoE part is DeepSeekMoE's (first_k_dense_replace,
 * moe_layer_freq, ungated shared experts) plus `routed_scaling_factor` and `topk_method`
 * ('greedy' or 'group_limited_greedy' with n_group/topk_group). Attention is MLA (multi-head
 * latent attention, src/runtime/mla-attention.ts), its rope pairs interleaved. `headDim` is the
 * query/key head width qk_nope_head_dim + qk_rope_head_dim. Defaults: the remote-code
 * DeepseekV2Config.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, llamaNames, positiveInt } from './common.js';
import { deepseekIsMoeLayer, deepseekMoeKeys, deepseekMoeNames, deepseekMoePart } from './deepseek.js';

/** MLA's config keys as V2 and V3 write them. */
export interface ParsedMlaKeys {
  q_lora_rank: number | null;
  kv_lora_rank: number;
  qk_nope_head_dim: number;
  qk_rope_head_dim: number;
  v_head_dim: number;
}

/** config.json's MLA keys with a model's defaults (DeepSeek-V2, V3 and GLM-4.7-Flash differ only in these). */
export function mlaKeys(d: { q_lora_rank: number | null; kv_lora_rank: number; qk_nope_head_dim: number; qk_rope_head_dim: number; v_head_dim: number }) {
  return {
    q_lora_rank: positiveInt.nullable().default(d.q_lora_rank),
    kv_lora_rank: positiveInt.default(d.kv_lora_rank),
    qk_nope_head_dim: positiveInt.default(d.qk_nope_head_dim),
    qk_rope_head_dim: positiveInt.default(d.qk_rope_head_dim),
    v_head_dim: positiveInt.default(d.v_head_dim),
  };
}

/** The attention part of a DeepSeek MLA config (V2 always interleaves its rope pairs; V3 says so in rope_interleave). */
export function mlaConfigPart(p: ParsedMlaKeys, ropeInterleave: boolean) {
  return {
    headDim: p.qk_nope_head_dim + p.qk_rope_head_dim,
    qkvBias: false,
    qkNorm: 'none' as const,
    attention: 'mla' as const,
    mla: {
      qLoraRank: p.q_lora_rank,
      kvLoraRank: p.kv_lora_rank,
      qkNopeHeadDim: p.qk_nope_head_dim,
      qkRopeHeadDim: p.qk_rope_head_dim,
      vHeadDim: p.v_head_dim,
      ropeInterleave,
    },
  };
}

/** MLA's tensor names (DeepSeek-V3 keeps them). */
export const deepseekV2MlaNames = {
  qProj: 'model.layers.{l}.self_attn.q_proj.weight',
  qA: 'model.layers.{l}.self_attn.q_a_proj.weight',
  qANorm: 'model.layers.{l}.self_attn.q_a_layernorm.weight',
  qB: 'model.layers.{l}.self_attn.q_b_proj.weight',
  kvA: 'model.layers.{l}.self_attn.kv_a_proj_with_mqa.weight',
  kvANorm: 'model.layers.{l}.self_attn.kv_a_layernorm.weight',
  kvB: 'model.layers.{l}.self_attn.kv_b_proj.weight',
};

const configSchema = z
  .looseObject({
    ...llamaKeys({
      vocab_size: 102400,
      hidden_size: 5120,
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
    intermediate_size: positiveInt.default(12288),
    routed_scaling_factor: z.number().positive().default(1),
    topk_method: z
      .enum(['greedy', 'group_limited_greedy'], { error: "topk_method must be 'greedy' or 'group_limited_greedy' (DeepSeek-V3's noaux_tc is not supported)" })
      .default('greedy'),
    n_group: positiveInt.nullable().default(null),
    topk_group: positiveInt.nullable().default(null),
    ...mlaKeys({ q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128 }),
  })
  .refine((p) => p.topk_method !== 'group_limited_greedy' || (p.n_group !== null && p.topk_group !== null), {
    message: "topk_method 'group_limited_greedy' needs n_group and topk_group",
    path: ['topk_method'],
  });

export const deepseekV2 = defineFamily({
  family: 'deepseek_v2',
  label: 'DeepSeek-V2',
  modelTypes: ['deepseek_v2'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('deepseek_v2', p, raw, 10000),
    ...deepseekMoePart(p),
    normTopkProb: p.norm_topk_prob,
    routedScalingFactor: p.routed_scaling_factor,
    topkMethod: p.topk_method,
    ...(p.n_group !== null ? { nGroup: p.n_group } : {}),
    ...(p.topk_group !== null ? { topkGroup: p.topk_group } : {}),
    ...mlaConfigPart(p, true),
  }),
  isMoeLayer: deepseekIsMoeLayer,
  names: {
    ...llamaNames,
    mla: deepseekV2MlaNames,
    ...deepseekMoeNames,
  },
});
