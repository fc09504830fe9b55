/**
 * GLM-5 (`glm_moe_dsa`, GlmMoeDsaForCausalLM): DeepSeek-V3.2's architecture under GLM's name (MLA
 * with q-LoRA and interleaved rope pairs, `noaux_tc` routing, DeepSeek Sparse Attention: ./dsa.ts),
 * where some layers reuse an earlier layer's choice of positions instead of running an indexer of
 * their own. `indexer_types` says which ("full" runs one, "shared" reuses), else the string or list
 * `index_topk_pattern` ("F"/"S"), else the schedule from index_topk_freq and
 * index_skip_topk_offset, as transformers derives it. A shared layer holds no indexer tensors.
 * Defaults: transformers' GlmMoeDsaConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { llamaKeys, mlpLayerTypes, nonNegativeInt } from './common.js';
import { dsaConfigPart, dsaModelKeys, dsaNames } from './dsa.js';

const LABEL = 'GLM-5 (GLM MoE DSA)';

const indexerType = z.enum(['full', 'shared']);

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 154880,
    hidden_size: 6144,
    num_hidden_layers: 78,
    num_attention_heads: 64,
    num_key_value_heads: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 0,
    eos_token_id: 1,
  }),
  ...dsaModelKeys('glm_moe_dsa', {
    intermediate_size: 12288,
    moe_intermediate_size: 2048,
    n_group: 1,
    topk_group: 1,
    mla: { q_lora_rank: 2048, kv_lora_rank: 512, qk_nope_head_dim: 192, qk_rope_head_dim: 64, v_head_dim: 256 },
    index_topk: 2048,
    index_head_dim: 128,
    index_n_heads: 32,
  }),
  n_shared_experts: nonNegativeInt.nullable().default(1),
  indexer_types: z.array(indexerType).nullable().default(null),
  index_topk_pattern: z.union([z.string().regex(/^[FS]*$/, { message: 'must be a string of F (full) and S (shared), one per layer' }), z.array(indexerType)]).nullable().default(null),
  index_topk_freq: z.number().int().default(1),
  index_skip_topk_offset: z.number().int().default(2),
});

type Parsed = z.infer<typeof configSchema>;

/** Whether each layer runs its own indexer, as transformers' GlmMoeDsaConfig derives it. */
function indexerLayers(p: Parsed): boolean[] {
  const L = p.num_hidden_layers;
  let types: readonly string[];
  let key: string;
  if (p.indexer_types !== null) [types, key] = [p.indexer_types, 'indexer_types'];
  else if (p.index_topk_pattern !== null)
    [types, key] = [typeof p.index_topk_pattern === 'string' ? [...p.index_topk_pattern].map((c) => (c === 'F' ? 'full' : 'shared')) : p.index_topk_pattern, 'index_topk_pattern'];
  else {
    const freq = Math.max(p.index_topk_freq, 1);
    const offset = p.index_skip_topk_offset;
    [types, key] = [Array.from({ length: L }, (_, i) => (Math.max(i - offset + 1, 0) % freq === 0 ? 'full' : 'shared')), 'index_topk_freq'];
  }
  if (types.length !== L) throw new CheckpointError('InvalidConfig', `config.json key '${key}': ${types.length} entries for num_hidden_layers ${L} (${LABEL} config); fix config.json`);
  if (types[0] === 'shared')
    throw new CheckpointError('InvalidConfig', `config.json key '${key}': layer 0 is "shared", but a shared layer reuses an earlier layer's indexer and there is none before it (${LABEL} config); fix config.json`);
  return types.map((t) => t === 'full');
}

export const glmMoeDsa = defineFamily({
  family: 'glm_moe_dsa',
  label: LABEL,
  modelTypes: ['glm_moe_dsa'],
  configSchema,
  normalize: (p, raw) => dsaConfigPart('glm_moe_dsa', p, raw, LABEL, indexerLayers(p), true),
  isMoeLayer: (p, layer) => mlpLayerTypes(p, LABEL)[layer] === 'sparse',
  names: dsaNames,
});
