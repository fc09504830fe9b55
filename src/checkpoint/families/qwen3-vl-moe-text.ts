/**
 * Qwen3-VL-MoE's language model (`qwen3_vl_moe_text`: Qwen3-VL-30B-A3B, Qwen3-VL-235B-A22B), read
 * inside its multimodal checkpoint (`qwen3_vl_moe`, wrapped.ts). Qwen3-MoE's layers (per-head q/k
 * norm, decoder_sparse_step, mlp_only_layers) with the chosen experts' probabilities always
 * renormalised and no sliding window. Its RoPE is interleaved multimodal RoPE (mrope_section); on
 * text, whose three position components are equal, that is the ordinary RoPE over whole heads.
 * The releases store the experts fused and transposed (gate_up [E, H, 2I] gate columns first, down
 * [E, I, H]); transformers' own saves keep its modules' form ([E, 2I, H], [E, H, I]). Which one a
 * checkpoint holds is read from down_proj's shape, as transformers' conversion reads it (the
 * modules' form where the two agree, I = H). Defaults: transformers' Qwen3VLMoeTextConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, noAttentionBias, nonNegativeInt, positiveInt } from './common.js';
import { qwen3IsMoeLayer, qwen3MoeNames, qwen3MoePart, qwen3NumExperts } from './qwen3-moe.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 151936,
    hidden_size: 2048,
    num_hidden_layers: 24,
    num_attention_heads: 16,
    num_key_value_heads: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 500000,
    tie_word_embeddings: true,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  intermediate_size: positiveInt.default(5632),
  moe_intermediate_size: positiveInt.default(1408),
  // the releases' name; transformers 5 saves num_local_experts (numExpertsOf)
  num_experts: nonNegativeInt.optional(),
  num_local_experts: nonNegativeInt.optional(),
  num_experts_per_tok: positiveInt.default(4),
  decoder_sparse_step: positiveInt.default(1),
  mlp_only_layers: z.array(nonNegativeInt).nullable().default(null),
  attention_bias: noAttentionBias.default(false),
});

const LABEL = 'Qwen3-VL-MoE (language model)';

export const qwen3VlMoeText = defineFamily({
  family: 'qwen3_vl_moe_text',
  label: LABEL,
  modelTypes: ['qwen3_vl_moe_text'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('qwen3_vl_moe_text', p, raw, 500000),
    // transformers' Qwen3-VL-MoE router always renormalises (no norm_topk_prob)
    ...qwen3MoePart(p, qwen3NumExperts(p, 60, LABEL), true),
  }),
  isMoeLayer: (p, l) => qwen3IsMoeLayer(p, l, qwen3NumExperts(p, 60, LABEL)),
  names: { ...qwen3MoeNames, fused: { ...qwen3MoeNames.fused, formFromShape: true } },
});
