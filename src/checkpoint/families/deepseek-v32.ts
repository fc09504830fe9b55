/**
 * DeepSeek-V3.2 (`deepseek_v32`: V3.2-Exp, V3.2): DeepSeek-V3 with DeepSeek Sparse
 * Attention (./dsa.ts). MLA always has q-LoRA and always ropes interleaved pairs (transformers
 * drops both of V3's switches); routing is V3's `noaux_tc`; the MoE layers are those
 * `mlp_layer_types` marks "sparse", else all from first_k_dense_replace on (moe_layer_freq is not
 * read, as transformers and DeepSeek's own inference code do not read it). Every layer runs an
 * indexer. Multi-token-prediction layers beyond num_hidden_layers are not part of the model.
 * Defaults: transformers' DeepseekV32Config.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, llamaNames, mlpLayerTypes, mlpLayerTypesKey, positiveInt } from './common.js';
import { correctionBiasName, deepseekMoeKeys, deepseekMoeNames, deepseekMoePart, noauxTcPart } from './deepseek.js';
import { deepseekV2MlaNames, mlaConfigPart, mlaKeys } from './deepseek-v2.js';
import { dsaKeys, indexerNames, sparseAttentionPart } from './dsa.js';

const LABEL = 'DeepSeek-V3.2';

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
  n_routed_experts: positiveInt.default(256),
  n_shared_experts: positiveInt.nullable().default(1),
  num_experts_per_tok: positiveInt.default(8),
  first_k_dense_replace: z.number().int().min(0).default(3),
  norm_topk_prob: z.boolean().default(true),
  scoring_func: z.literal('sigmoid', { error: "scoring_func must be 'sigmoid' for deepseek_v32" }).default('sigmoid'),
  topk_method: z.literal('noaux_tc', { error: "topk_method must be 'noaux_tc' for deepseek_v32" }).default('noaux_tc'),
  routed_scaling_factor: z.number().positive().default(2.5),
  n_group: positiveInt.default(8),
  topk_group: positiveInt.default(4),
  ...mlaKeys({ q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128 }),
  mlp_layer_types: mlpLayerTypesKey,
  ...dsaKeys({ index_topk: 2048, index_head_dim: 128, index_n_heads: 64 }),
});

export const deepseekV32 = defineFamily({
  family: 'deepseek_v32',
  label: LABEL,
  modelTypes: ['deepseek_v32'],
  configSchema,
  normalize: (p, raw) => {
    mlpLayerTypes(p, LABEL);
    return {
      ...llamaConfigPart('deepseek_v32', p, raw, 10000),
      ...deepseekMoePart(p),
      ...noauxTcPart(p),
      ...mlaConfigPart(p, true),
      ...sparseAttentionPart(p, Array<boolean>(p.num_hidden_layers).fill(true), false, LABEL),
    };
  },
  isMoeLayer: (p, layer) => mlpLayerTypes(p, LABEL)[layer] === 'sparse',
  names: {
    ...llamaNames,
    mla: deepseekV2MlaNames,
    indexer: indexerNames,
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
  },
});
