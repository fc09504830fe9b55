/**
 * DeepSeek Sparse Attention (DSA), shared by DeepSeek-V3.2 (`deepseek_v32`) and GLM-5
 * (`glm_moe_dsa`): DeepSeek-V3's MLA, with an indexer in each attention layer that scores every
 * earlier position for each query and keeps the best index_topk of them; the attention then sees
 * only those (src/runtime/sparse-attention.ts runs it). The indexer's tensors are validated and
 * written back as they are.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import type { SparseAttentionConfig } from '../types.js';
import { positiveInt } from './common.js';

/** config.json's indexer keys with a model's defaults. */
export function dsaKeys(d: { index_topk: number; index_head_dim: number; index_n_heads: number }) {
  return {
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
export function sparseAttentionPart(p: ParsedDsaKeys, withIndexer: readonly boolean[], ropeInterleave: boolean, label: string): { sparseAttention: SparseAttentionConfig } {
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
