/**
 * Solar Open (`solar_open`, SolarOpenForCausalLM: Upstage's Solar-Open-100B). GLM-4.5's MoE block
 * on Llama's attention: grouped-query attention with q/k/v biases where attention_bias is set and
 * none on o_proj, no q/k norm, RoPE over whole heads. A partial_rotary_factor below 1 is refused
 * as not implemented (ropeProblem): transformers' SolarOpen sizes its frequencies by it but rotates
 * whole heads, and fails on such a config.
 * Every layer is MoE: DeepSeek-V3's `noaux_tc` routing (sigmoid scores, the correction bias for
 * the choice only, n_group / topk_group, renormalised, times routed_scaling_factor) and
 * n_shared_experts ungated shared experts of the routed width. Tensor names are GLM-4.5's.
 * Defaults: transformers' SolarOpenConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, llamaNames, nonNegativeInt, positiveInt, qkvBiasNames } from './common.js';
import { correctionBiasName, deepseekMoeNames, noauxTcPart } from './deepseek.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 196608,
    hidden_size: 4096,
    num_hidden_layers: 48,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 1_000_000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  head_dim: positiveInt.nullable().default(128),
  moe_intermediate_size: positiveInt.default(1280),
  num_experts_per_tok: positiveInt.default(8),
  n_shared_experts: nonNegativeInt.default(1),
  n_routed_experts: positiveInt.default(128),
  routed_scaling_factor: z.number().positive().default(1),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  norm_topk_prob: z.boolean().default(true),
  attention_bias: z.boolean().default(false),
});

export const solarOpen = defineFamily({
  family: 'solar_open',
  label: 'Solar Open',
  modelTypes: ['solar_open'],
  configSchema,
  normalize: (p, raw) => {
    const base = llamaConfigPart('solar_open', p, raw, 1_000_000);
    return {
      ...base,
      numExperts: p.n_routed_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.moe_intermediate_size,
      denseIntermediateSize: 0,
      sharedExpertIntermediateSize: p.moe_intermediate_size * p.n_shared_experts,
      sharedExpertGated: false,
      ...noauxTcPart(p),
      qkvBias: p.attention_bias,
      qkNorm: 'none',
      attention: 'standard',
    };
  },
  isMoeLayer: () => true,
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkvBiasNames },
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
  },
});
