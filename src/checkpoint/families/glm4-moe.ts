/**
 * GLM-4.5 / GLM-4.6 and GLM-4.5-Air (`glm4_moe`, Glm4MoeForCausalLM). Attention is grouped-query
 * with q/k/v biases (attention_bias), per-head q/k RMSNorm when use_qk_norm, and RoPE over the
 * first head_dim × partial_rotary_factor values of each head only (rotate-half pairs; 0.5 when the
 * config does not say, as transformers fills it in). Routing is DeepSeek-V3's `noaux_tc`: sigmoid
 * scores, `mlp.gate.e_score_correction_bias` added for the choice only, groups scored by their two
 * best (n_group, topk_group), the chosen scores renormalised (norm_topk_prob) and multiplied by
 * routed_scaling_factor; n_shared_experts ungated shared experts of the routed width. Layer l is
 * MoE iff l ≥ first_k_dense_replace. The multi-token-prediction layer a checkpoint carries beyond
 * num_hidden_layers (num_nextn_predict_layers) is not part of the model (transformers ignores it
 * too). Tensor names are DeepSeek-V3's for the MLP and Llama's for attention.
 * Defaults: transformers' Glm4MoeConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import {
  llamaConfigPart,
  llamaKeys,
  llamaNames,
  nonNegativeInt,
  positiveInt,
  qkNormNames,
  qkvBiasNames,
  checkedPartialRotaryFactor,
} from './common.js';
import { correctionBiasName, deepseekMoeNames, noauxTcPart } from './deepseek.js';

/** transformers' Glm4MoeConfig fills partial_rotary_factor in with 0.5 when a config has none */
const DEFAULT_PARTIAL_ROTARY_FACTOR = 0.5;

/** GLM-4.5's config keys; GLM-4.5V's language model changes two defaults */
const glm4MoeSchema = (d: { vocab_size: number; attention_bias: boolean }) => z.looseObject({
  ...llamaKeys({
    vocab_size: d.vocab_size,
    hidden_size: 4096,
    num_hidden_layers: 46,
    num_attention_heads: 96,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  intermediate_size: positiveInt.default(10944),
  moe_intermediate_size: positiveInt.default(1408),
  num_experts_per_tok: positiveInt.default(8),
  n_shared_experts: nonNegativeInt.default(1),
  n_routed_experts: positiveInt.default(128),
  routed_scaling_factor: z.number().positive().default(1),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  first_k_dense_replace: nonNegativeInt.default(1),
  norm_topk_prob: z.boolean().default(true),
  use_qk_norm: z.boolean().default(false),
  attention_bias: z.boolean().default(d.attention_bias),
  // read through partialRotaryFactor (the scaling block's wins); checked here where it is written at the top level
  partial_rotary_factor: z.number().gt(0).lte(1).optional(),
});

/**
 * A GLM-4.5 MoE family: GLM-4.5's own (`glm4_moe`), or GLM-4.5V's language model
 * (`glm4v_moe_text`), which has no q/k norm and defaults to q/k/v biases and another vocabulary.
 */
function glm4MoeFamily(spec: { family: 'glm4_moe' | 'glm4v_moe_text'; label: string; defaults: { vocab_size: number; attention_bias: boolean }; qkNorm: boolean }) {
  return defineFamily({
    family: spec.family,
    label: spec.label,
    modelTypes: [spec.family],
    configSchema: glm4MoeSchema(spec.defaults),
    normalize: (p, raw) => {
      const base = llamaConfigPart(spec.family, p, raw, 10000);
      const factor = checkedPartialRotaryFactor(raw, DEFAULT_PARTIAL_ROTARY_FACTOR, spec.label);
      return {
        ...base,
        // transformers: int(head_dim * partial_rotary_factor)
        rotaryDim: Math.trunc(base.headDim * factor),
        numExperts: p.n_routed_experts,
        topK: p.num_experts_per_tok,
        expertIntermediateSize: p.moe_intermediate_size,
        denseIntermediateSize: p.intermediate_size,
        sharedExpertIntermediateSize: p.moe_intermediate_size * p.n_shared_experts,
        sharedExpertGated: false,
        ...noauxTcPart(p),
        qkvBias: p.attention_bias,
        qkNorm: spec.qkNorm && p.use_qk_norm ? 'per-head' : 'none',
        attention: 'standard',
      };
    },
    isMoeLayer: (p, layer) => layer >= p.first_k_dense_replace,
    names: {
      ...llamaNames,
      attention: {
        ...llamaNames.attention,
        ...qkvBiasNames,
        ...(spec.qkNorm ? qkNormNames : {}),
      },
      ...deepseekMoeNames,
      routerBias: correctionBiasName,
    },
  });
}

export const glm4Moe = glm4MoeFamily({ family: 'glm4_moe', label: 'GLM-4.5 MoE', defaults: { vocab_size: 151552, attention_bias: false }, qkNorm: true });

/**
 * GLM-4.5V / GLM-4.6V's language model (`glm4v_moe_text`), read inside its multimodal checkpoint
 * (`glm4v_moe`, wrapped.ts): GLM-4.5's without q/k norm (its attention has none, whatever
 * use_qk_norm says), q/k/v biases by default. Its multimodal RoPE (mrope_section over the rotated
 * part) is, on text alone, the ordinary RoPE over the first head_dim × partial_rotary_factor
 * values. Defaults: transformers' Glm4vMoeTextConfig.
 */
export const glm4vMoeText = glm4MoeFamily({ family: 'glm4v_moe_text', label: 'GLM-4.5V (language model)', defaults: { vocab_size: 151424, attention_bias: true }, qkNorm: false });
