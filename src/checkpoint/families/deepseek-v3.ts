/**
 * DeepSeek-V3 / R1 and the models built on its architecture (`deepseek_v3`: Moonlight-16B-A3B,
 * DeepSeek-V3-0324, R1 and their distilled MoE variants). Attention is DeepSeek-V2's MLA (q-LoRA
 * optional, interleaved rope pairs unless `rope_interleave` is false). Routing is `noaux_tc`:
 * sigmoid scores, a per-expert `e_score_correction_bias` (mlp.gate.e_score_correction_bias) added
 * for the choice only, the experts in n_group groups each scored by the sum of its two best
 * biased scores, the top-k chosen among the topk_group best groups, their unbiased scores
 * renormalised (norm_topk_prob) and multiplied by routed_scaling_factor. Layer l is MoE iff
 * l ≥ first_k_dense_replace (and l % moe_layer_freq == 0, which the released configs leave at 1).
 * The multi-token-prediction layers a checkpoint may carry beyond num_hidden_layers are not part
 * of the model (transformers ignores them too). Defaults: transformers' DeepseekV3Config.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, llamaNames, positiveInt } from './common.js';
import { correctionBiasName, deepseekIsMoeLayer, deepseekMoeKeys, deepseekMoeNames, deepseekMoePart, noauxTcPart } from './deepseek.js';
import { deepseekV2MlaNames, mlaConfigPart, mlaKeys } from './deepseek-v2.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 129280,
    hidden_size: 7168,
    num_hidden_layers: 61,
    num_attention_heads: 128,
    num_key_value_heads: 128,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 0,
    eos_token_id: 1,
  }),
  ...deepseekMoeKeys,
  intermediate_size: positiveInt.default(18432),
  moe_intermediate_size: positiveInt.default(2048),
  n_routed_experts: positiveInt.nullable().default(256),
  n_shared_experts: positiveInt.nullable().default(1),
  num_experts_per_tok: positiveInt.nullable().default(8),
  first_k_dense_replace: z.number().int().min(0).default(3),
  norm_topk_prob: z.boolean().default(true),
  scoring_func: z.literal('sigmoid', { error: "scoring_func must be 'sigmoid' for deepseek_v3 (DeepSeek-V2's softmax routing is model_type deepseek_v2)" }).default('sigmoid'),
  topk_method: z.literal('noaux_tc', { error: "topk_method must be 'noaux_tc' for deepseek_v3" }).default('noaux_tc'),
  routed_scaling_factor: z.number().positive().default(2.5),
  n_group: positiveInt.default(8),
  topk_group: positiveInt.default(4),
  ...mlaKeys({ q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128 }),
  rope_interleave: z.boolean().default(true),
});

export const deepseekV3 = defineFamily({
  family: 'deepseek_v3',
  label: 'DeepSeek-V3',
  modelTypes: ['deepseek_v3'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('deepseek_v3', p, raw, 10000),
    ...deepseekMoePart(p),
    ...noauxTcPart(p),
    ...mlaConfigPart(p, p.rope_interleave),
  }),
  isMoeLayer: deepseekIsMoeLayer,
  names: {
    ...llamaNames,
    mla: deepseekV2MlaNames,
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
  },
});
