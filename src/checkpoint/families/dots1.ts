/**
 * dots.llm1 (`dots1`, Dots1ForCausalLM: rednote-hilab's dots.llm1.base and .inst, 142B total, 14B
 * active). Attention is Qwen3's: grouped-query, q/k RMSNorm per head over head_dim, RoPE over
 * whole heads, q/k/v biases only with attention_bias. Routing is DeepSeek-V3's `noaux_tc`: sigmoid
 * scores, `mlp.gate.e_score_correction_bias` added for the choice only, groups scored by their two
 * best (n_group, topk_group), the chosen scores renormalised (norm_topk_prob) and multiplied by
 * routed_scaling_factor; n_shared_experts ungated shared experts of the routed width. Layer l is
 * MoE iff l ≥ first_k_dense_replace. Tensor names are DeepSeek-V3's for the MLP and Llama's for
 * attention. Sliding-window layers (layer_types, or sliding_window from max_window_layers on)
 * attend through the window; dots.llm1's own configs have none. Defaults: transformers' Dots1Config.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { layerCountKey, perLayerWindow, windowSize } from '../sliding-window.js';
import { llamaConfigPart, llamaKeys, llamaNames, nonNegativeInt, positiveInt, qkNormNames, qkvBiasNames } from './common.js';
import { correctionBiasName, deepseekMoeNames, noauxTcPart } from './deepseek.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 152064,
    hidden_size: 4608,
    num_hidden_layers: 62,
    num_attention_heads: 32,
    num_key_value_heads: null,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  intermediate_size: positiveInt.default(10944),
  moe_intermediate_size: positiveInt.default(1408),
  num_experts_per_tok: positiveInt,
  n_shared_experts: nonNegativeInt.nullable().default(null),
  n_routed_experts: positiveInt,
  routed_scaling_factor: z.number().positive().default(1),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  first_k_dense_replace: nonNegativeInt.default(0),
  norm_topk_prob: z.boolean().default(false),
  attention_bias: z.boolean().default(false),
});

export const dots1 = defineFamily({
  family: 'dots1',
  label: 'dots.llm1',
  modelTypes: ['dots1'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('dots1', p, raw, 10000),
    // transformers' default layer_types: sliding from max_window_layers on, where a window is set
    ...perLayerWindow(raw, p.num_hidden_layers, 'dots.llm1', windowSize(raw, 'dots.llm1', 4096), (l) => l >= layerCountKey(raw, 'max_window_layers', 'dots.llm1', 62)),
    numExperts: p.n_routed_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.moe_intermediate_size,
    denseIntermediateSize: p.intermediate_size,
    sharedExpertIntermediateSize: p.moe_intermediate_size * (p.n_shared_experts ?? 0),
    sharedExpertGated: false,
    ...noauxTcPart(p),
    qkvBias: p.attention_bias,
    qkNorm: 'per-head',
    attention: 'standard',
  }),
  isMoeLayer: (p, layer) => layer >= p.first_k_dense_replace,
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkvBiasNames, ...qkNormNames },
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
  },
});
