/**
 * GLM-4.7-Flash (`glm4_moe_lite`, Glm4MoeLiteForCausalLM): DeepSeek-V3's architecture under GLM's
 * name. Attention is MLA (q-LoRA optional, interleaved rope pairs unless `rope_interleave` is
 * false, the rotated width qk_rope_head_dim); routing is `noaux_tc` (sigmoid scores, the
 * correction bias for the choice only, groups, renormalised, × routed_scaling_factor) with
 * n_shared_experts ungated shared experts. Which layers are MoE is `mlp_layer_types` ("dense" /
 * "sparse" per layer), and without it the first layer is dense and the others MoE, as
 * transformers has it. Tensor names are DeepSeek-V3's. Defaults: transformers' Glm4MoeLiteConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, llamaNames, nonNegativeInt, positiveInt } from './common.js';
import { correctionBiasName, deepseekMoeKeys, deepseekMoeNames, deepseekMoePart, noauxTcPart } from './deepseek.js';
import { deepseekV2MlaNames, mlaConfigPart, mlaKeys } from './deepseek-v2.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 154880,
    hidden_size: 2048,
    num_hidden_layers: 47,
    num_attention_heads: 20,
    num_key_value_heads: 20,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 0,
    eos_token_id: 1,
  }),
  ...deepseekMoeKeys,
  intermediate_size: positiveInt.default(10240),
  moe_intermediate_size: positiveInt.default(1536),
  n_routed_experts: positiveInt.default(64),
  n_shared_experts: nonNegativeInt.default(1),
  num_experts_per_tok: positiveInt.default(4),
  norm_topk_prob: z.boolean().default(true),
  scoring_func: z.literal('sigmoid', { error: "scoring_func must be 'sigmoid' for glm4_moe_lite" }).default('sigmoid'),
  routed_scaling_factor: z.number().positive().default(1.8),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  ...mlaKeys({ q_lora_rank: 768, kv_lora_rank: 512, qk_nope_head_dim: 192, qk_rope_head_dim: 64, v_head_dim: 256 }),
  rope_interleave: z.boolean().default(true),
  mlp_layer_types: z.array(z.enum(['dense', 'sparse'])).nullable().default(null),
});

export const glm4MoeLite = defineFamily({
  family: 'glm4_moe_lite',
  label: 'GLM-4.7-Flash (GLM-4 MoE Lite)',
  modelTypes: ['glm4_moe_lite'],
  configSchema,
  normalize: (p, raw) => {
    if (p.mlp_layer_types !== null && p.mlp_layer_types.length !== p.num_hidden_layers)
      throw new CheckpointError('InvalidConfig', `config.json key 'mlp_layer_types': ${p.mlp_layer_types.length} entries for num_hidden_layers ${p.num_hidden_layers} (GLM-4 MoE Lite config); fix config.json`);
    return {
      ...llamaConfigPart('glm4_moe_lite', p, raw, 10000),
      ...deepseekMoePart(p),
      ...noauxTcPart(p),
      ...mlaConfigPart(p, p.rope_interleave),
    };
  },
  isMoeLayer: (p, layer) => (p.mlp_layer_types ?? ['dense', ...Array<'sparse'>(p.num_hidden_layers - 1).fill('sparse')])[layer] === 'sparse',
  names: {
    ...llamaNames,
    mla: deepseekV2MlaNames,
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
  },
});
