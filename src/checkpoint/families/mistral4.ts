/**
 * Mistral Small 4 (`mistral4`: the text model of Mistral-Small-4-119B, whose releases wrap it in a
 * `mistral3` multimodal config, which is not read). DeepSeek-V3's layer: MLA attention (q-LoRA
 * optional, interleaved rope pairs unless rope_interleave is false), MoE blocks of routed experts
 * plus ungated shared experts (moe_intermediate_size × n_shared_experts), dense MLPs of
 * intermediate_size in the first first_k_dense_replace layers. It differs in two places:
 * - routing ('group_limited_top2'): softmax probabilities over all experts, the n_group groups
 *   scored by the sum of their two best, the top-k among the topk_group best groups, the chosen
 *   probabilities renormalised (norm_topk_prob, + 1e-20) and times routed_scaling_factor; no
 *   correction bias;
 * - each query is multiplied by 1 + beta·ln(1 + ⌊position / original⌋) (Llama 4's scaling,
 *   ModelConfig.llama4QueryScale) with rope_parameters' llama_4_scaling_beta and
 *   original_max_position_embeddings, which transformers cannot run without.
 * RoPE: head_dim is qk_nope_head_dim + qk_rope_head_dim, of which partial_rotary_factor (default
 * qk_rope / head_dim) rotates the rope part. transformers' "default" RoPE ignores that factor and
 * fails, so the block must name a scaling; transformers' default block is YaRN, and a config
 * without one is refused rather than run without it.
 * transformers 5.18 loads this model through Mistral4ForCausalLM (its AutoModelForCausalLM does
 * not map mistral4) and its routed experts only fused (mlp.experts.gate_up_proj / down_proj).
 * Defaults: transformers' Mistral4Config.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { ropeScalingOf } from '../rope-scaling.js';
import type { Llama4QueryScale } from '../types.js';
import { llamaConfigPart, llamaKeys, llamaNames, noAttentionBias, nonNegativeInt, positiveInt } from './common.js';
import { deepseekMoeNames, deepseekMoePart } from './deepseek.js';
import { deepseekV2MlaNames, mlaConfigPart, mlaKeys, type ParsedMlaKeys } from './deepseek-v2.js';

const LABEL = 'Mistral 4';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 131072,
    hidden_size: 4096,
    num_hidden_layers: 36,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: 11,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  intermediate_size: positiveInt.default(12288),
  moe_intermediate_size: positiveInt.default(2048),
  n_routed_experts: positiveInt.default(128),
  n_shared_experts: nonNegativeInt.default(1),
  num_experts_per_tok: positiveInt.default(4),
  first_k_dense_replace: nonNegativeInt.default(0),
  norm_topk_prob: z.boolean().default(true),
  routed_scaling_factor: z.number().positive().default(1),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  attention_bias: noAttentionBias.default(false),
  ...mlaKeys({ q_lora_rank: 1024, kv_lora_rank: 256, qk_nope_head_dim: 64, qk_rope_head_dim: 64, v_head_dim: 128 }),
  rope_interleave: z.boolean().default(true),
});

function invalid(message: string): CheckpointError {
  return new CheckpointError('InvalidConfig', `${message} (${LABEL} config); fix config.json`);
}

/**
 * The rotated width (qk_rope_head_dim, checked against partial_rotary_factor as transformers
 * resolves it) and the query scaling, from the RoPE block; refused where transformers would fail.
 */
function mistral4Rope(p: ParsedMlaKeys, raw: Record<string, unknown>): { rotaryDim: number; llama4QueryScale: Llama4QueryScale } {
  const { key, type, params } = ropeScalingOf(raw);
  if (key === null || params === null) {
    throw invalid(
      'config.json has no rope_parameters (or rope_scaling); transformers gives Mistral 4 YaRN by default (rope_theta 10000, factor 128, original_max_position_embeddings 8192, beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 1, llama_4_scaling_beta 0.1), and so would not run it with the plain RoPE; add that block',
    );
  }
  const headDim = p.qk_nope_head_dim + p.qk_rope_head_dim;
  if (type === 'default') {
    throw invalid(`config.json key '${key}.rope_type': "default" rotates all ${headDim} values of each head in transformers' Mistral 4, which fails against its ${p.qk_rope_head_dim}-wide rope part; name the scaling the model was trained with ("yarn")`);
  }
  // transformers fills rope_parameters' factor with qk_rope / head_dim; an older rope_scaling block takes the top-level key, else rotates whole heads
  const partial = params.partial_rotary_factor ?? (key === 'rope_parameters' ? p.qk_rope_head_dim / headDim : (raw.partial_rotary_factor ?? 1));
  if (typeof partial !== 'number' || Math.trunc(headDim * partial) !== p.qk_rope_head_dim) {
    throw invalid(`config.json key '${key}.partial_rotary_factor': ${JSON.stringify(partial)} does not rotate exactly qk_rope_head_dim ${p.qk_rope_head_dim} of each ${headDim}-wide head, which transformers fails on; set it to ${p.qk_rope_head_dim}/${headDim}`);
  }
  const beta = params.llama_4_scaling_beta;
  if (typeof beta !== 'number' || !Number.isFinite(beta)) {
    throw invalid(`config.json key '${key}.llama_4_scaling_beta': ${beta === undefined ? 'absent' : JSON.stringify(beta)}; Mistral 4 multiplies each query by 1 + beta·ln(1 + ⌊position / original_max_position_embeddings⌋) and transformers fails without a number (its default block has 0.1)`);
  }
  const original = params.original_max_position_embeddings;
  if (typeof original !== 'number' || !(original > 0)) {
    throw invalid(`config.json key '${key}.original_max_position_embeddings': ${original === undefined ? 'absent' : JSON.stringify(original)}; Mistral 4's query scaling divides positions by it, so it must be a positive number (transformers' default block has 8192)`);
  }
  return { rotaryDim: p.qk_rope_head_dim, llama4QueryScale: { beta, originalMaxPositions: original } };
}

export const mistral4 = defineFamily({
  family: 'mistral4',
  label: LABEL,
  modelTypes: ['mistral4'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('mistral4', p, raw, 10000),
    ...deepseekMoePart(p),
    normTopkProb: p.norm_topk_prob,
    routedScalingFactor: p.routed_scaling_factor,
    topkMethod: 'group_limited_top2',
    nGroup: p.n_group,
    topkGroup: p.topk_group,
    ...mlaConfigPart(p, p.rope_interleave),
    ...mistral4Rope(p, raw),
  }),
  // no moe_layer_freq: every layer from first_k_dense_replace on is MoE
  isMoeLayer: (p, layer) => layer >= p.first_k_dense_replace,
  names: {
    ...llamaNames,
    mla: deepseekV2MlaNames,
    ...deepseekMoeNames,
  },
});
