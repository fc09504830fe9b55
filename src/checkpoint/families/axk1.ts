/**
 * A.X K1 (`axk1`, AXK1ForCausalLM: SK Telecom's A.X-K1). DeepSeek-V3's architecture with one
 * addition: in MoE layers the block's output (routed plus shared experts) is RMS-normalised
 * before it joins the residual stream (ModelConfig.norms' mlpOutput 'moe'). The releases store that norm at
 * `model.layers.{l}.post_mlp_layernorm.weight`, which transformers renames into the MoE module on
 * load and back on save; dense layers have none. Attention is MLA and always uses q-LoRA
 * (transformers builds q_a_proj whatever the config says, so a null q_lora_rank is refused).
 * Routing is `noaux_tc` with groups; layer l is MoE iff l ≥ first_k_dense_replace.
 * Defaults: transformers' AXK1Config.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { PRE_NORMS } from '../layout.js';
import { llamaConfigPart, llamaKeys, llamaNames, positiveInt } from './common.js';
import { correctionBiasName, deepseekIsMoeLayer, deepseekMoeKeys, deepseekMoeNames, deepseekMoePart, noauxTcPart } from './deepseek.js';
import { deepseekV2MlaNames, mlaConfigPart, mlaKeys } from './deepseek-v2.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 163840,
    hidden_size: 7168,
    num_hidden_layers: 61,
    num_attention_heads: 64,
    num_key_value_heads: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 163691,
    eos_token_id: 163691,
  }),
  ...deepseekMoeKeys,
  intermediate_size: positiveInt.default(18432),
  moe_intermediate_size: positiveInt.default(2048),
  n_routed_experts: positiveInt.default(192),
  n_shared_experts: positiveInt.default(1),
  num_experts_per_tok: positiveInt.default(8),
  first_k_dense_replace: z.number().int().min(0).default(1),
  norm_topk_prob: z.boolean().default(true),
  routed_scaling_factor: z.number().positive().default(2.5),
  n_group: positiveInt.default(8),
  topk_group: positiveInt.default(4),
  ...mlaKeys({ q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128 }),
  q_lora_rank: positiveInt.default(1536),
  rope_interleave: z.boolean().default(true),
});

export const axk1 = defineFamily({
  family: 'axk1',
  label: 'A.X K1',
  modelTypes: ['axk1'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('axk1', p, raw, 10000),
    ...deepseekMoePart(p),
    ...noauxTcPart(p),
    ...mlaConfigPart(p, p.rope_interleave),
    norms: { ...PRE_NORMS, mlpOutput: 'moe' },
  }),
  isMoeLayer: deepseekIsMoeLayer,
  names: {
    ...llamaNames,
    norms: { ...llamaNames.norms, mlpOutput: 'model.layers.{l}.post_mlp_layernorm.weight' },
    mla: deepseekV2MlaNames,
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
  },
});
