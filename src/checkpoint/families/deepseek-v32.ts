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
import { llamaKeys, mlpLayerTypes, positiveInt } from './common.js';
import { dsaConfigPart, dsaModelKeys, dsaNames } from './dsa.js';

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
  ...dsaModelKeys('deepseek_v32', {
    intermediate_size: 18432,
    moe_intermediate_size: 2048,
    n_group: 8,
    topk_group: 4,
    mla: { q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128 },
    index_topk: 2048,
    index_head_dim: 128,
    index_n_heads: 64,
  }),
  n_shared_experts: positiveInt.nullable().default(1),
  topk_method: z.literal('noaux_tc', { error: "topk_method must be 'noaux_tc' for deepseek_v32" }).default('noaux_tc'),
});

export const deepseekV32 = defineFamily({
  family: 'deepseek_v32',
  label: LABEL,
  modelTypes: ['deepseek_v32'],
  configSchema,
  normalize: (p, raw) => dsaConfigPart('deepseek_v32', p, raw, LABEL, Array<boolean>(p.num_hidden_layers).fill(true), false),
  isMoeLayer: (p, layer) => mlpLayerTypes(p, LABEL)[layer] === 'sparse',
  names: dsaNames,
});
