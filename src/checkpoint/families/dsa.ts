/**
 * DeepSeek Sparse Attention (DSA), shared by DeepSeek-V3.2 (`deepseek_v32`) and GLM-5
 * (`glm_moe_dsa`): DeepSeek-V3's MLA, with an indexer in each attention layer that scores every
 * earlier position for each query and keeps the best index_topk of them; the attention then sees
 * only those (src/runtime/sparse-attention.ts runs it). The indexer's tensors are validated and
 * written back as they are.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import type { FamilyName, SparseAttentionConfig } from '../types.js';
import { llamaConfigPart, llamaNames, mlpLayerTypes, mlpLayerTypesKey, positiveInt, type ParsedLlamaKeys } from './common.js';
import { correctionBiasName, deepseekMoeKeys, deepseekMoeNames, deepseekMoePart, noauxTcPart, type ParsedDeepseekMoeKeys } from './deepseek.js';
import { deepseekV2MlaNames, mlaConfigPart, mlaKeys, type ParsedMlaKeys } from './deepseek-v2.js';

/**
 * config.json's keys past Llama's that DeepSeek-V3.2 and GLM-5 share (V3's MoE with noaux_tc
 * routing, MLA, mlp_layer_types, the indexer's), with a model's defaults.
 */
export function dsaModelKeys(
  family: FamilyName,
  d: {
    intermediate_size: number;
    moe_intermediate_size: number;
    n_group: number;
    topk_group: number;
    mla: Parameters<typeof mlaKeys>[0];
    index_topk: number;
    index_head_dim: number;
    index_n_heads: number;
  },
) {
  return {
    ...deepseekMoeKeys,
    intermediate_size: positiveInt.default(d.intermediate_size),
    moe_intermediate_size: positiveInt.default(d.moe_intermediate_size),
    n_routed_experts: positiveInt.default(256),
    num_experts_per_tok: positiveInt.default(8),
    first_k_dense_replace: z.number().int().min(0).default(3),
    norm_topk_prob: z.boolean().default(true),
    scoring_func: z.literal('sigmoid', { error: `scoring_func must be 'sigmoid' for ${family}` }).default('sigmoid'),
    routed_scaling_factor: z.number().positive().default(2.5),
    n_group: positiveInt.default(d.n_group),
    topk_group: positiveInt.default(d.topk_group),
    ...mlaKeys(d.mla),
    mlp_layer_types: mlpLayerTypesKey,
    index_topk: positiveInt.default(d.index_topk),
    index_head_dim: positiveInt.default(d.index_head_dim),
    index_n_heads: positiveInt.default(d.index_n_heads),
  };
}

export interface ParsedDsaKeys {
  index_topk: number;
  index_head_dim: number;
  index_n_heads: number;
  q_lora_rank: number | null;
  qk_rope_head_dim: number;
}

/**
 * The sparse-attention part of a config; `withIndexer[l]` says whether layer l runs an indexer of
 * its own. The indexer reads the query's q-LoRA projection and ropes its first qk_rope_head_dim
 * values, so both must exist.
 */
function sparseAttentionPart(p: ParsedDsaKeys, withIndexer: readonly boolean[], ropeInterleave: boolean, label: string): { sparseAttention: SparseAttentionConfig } {
  if (p.q_lora_rank === null)
    throw new CheckpointError('InvalidConfig', `config.json key 'q_lora_rank' is null, but ${label}'s sparse-attention indexer reads the q-LoRA projection (transformers builds it with q_a_proj always); fix config.json`);
  if (p.index_head_dim < p.qk_rope_head_dim)
    throw new CheckpointError('InvalidConfig', `config.json key 'index_head_dim' ${p.index_head_dim} is narrower than qk_rope_head_dim ${p.qk_rope_head_dim}, which the indexer ropes (${label} config); fix config.json`);
  return { sparseAttention: { indexTopK: p.index_topk, indexHeads: p.index_n_heads, indexHeadDim: p.index_head_dim, layers: withIndexer, ropeInterleave } };
}

/** The indexer's tensor names (transformers' and the released checkpoints'). */
export const indexerNames = {
  wqB: 'model.layers.{l}.self_attn.indexer.wq_b.weight',
  wk: 'model.layers.{l}.self_attn.indexer.wk.weight',
  kNorm: 'model.layers.{l}.self_attn.indexer.k_norm.weight',
  kNormBias: 'model.layers.{l}.self_attn.indexer.k_norm.bias',
  weightsProj: 'model.layers.{l}.self_attn.indexer.weights_proj.weight',
};

/**
 * A DSA model's normalised config: Llama's keys, V3's MoE and routing, MLA (interleaved rope
 * pairs always, as transformers has it for both), and the sparse attention.
 */
export function dsaConfigPart(
  family: FamilyName,
  p: ParsedLlamaKeys & ParsedDeepseekMoeKeys & ParsedMlaKeys & ParsedDsaKeys & { norm_topk_prob: boolean; routed_scaling_factor: number; n_group: number; topk_group: number; mlp_layer_types: readonly ('dense' | 'sparse')[] | null },
  raw: Record<string, unknown>,
  label: string,
  withIndexer: readonly boolean[],
  indexerRopeInterleave: boolean,
) {
  mlpLayerTypes(p, label);
  return {
    ...llamaConfigPart(family, p, raw, 10000),
    ...deepseekMoePart(p),
    ...noauxTcPart(p),
    ...mlaConfigPart(p, true),
    ...sparseAttentionPart(p, withIndexer, indexerRopeInterleave, label),
  };
}

/** Their tensor names: V3's, and the indexer's where a layer runs one. */
export const dsaNames = {
  ...llamaNames,
  mla: deepseekV2MlaNames,
  indexer: indexerNames,
  ...deepseekMoeNames,
  routerBias: correctionBiasName,
};
