/**
 * Qwen3.5-MoE's language model (`qwen3_5_moe_text`, Qwen3_5MoeForCausalLM; the language model of
 * the Qwen3.5 MoE releases, read inside their multimodal checkpoint, wrapped.ts). Qwen3-Next's
 * layers (qwen3-next.ts) with three differences, as transformers' Qwen3_5Moe modules have them:
 * - the Gated DeltaNet's input projections are four, in the convolution's order: in_proj_qkv (all
 *   queries, all keys, all values), in_proj_z, in_proj_b, in_proj_a (Qwen3-Next's two are grouped
 *   by key head);
 * - every layer is MoE (the config has no intermediate_size, decoder_sparse_step or
 *   mlp_only_layers) and the router always renormalises its top-k (no norm_topk_prob);
 * - its multimodal RoPE (mrope_section) is, on text alone, the ordinary RoPE over the rotated
 *   quarter of each head.
 * Defaults: transformers' Qwen3_5MoeTextConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { qwen3NextConfigPart, qwen3NextKeys, qwen3NextNames } from './qwen3-next.js';

const LABEL = 'Qwen3.5-MoE';

const configSchema = z.looseObject(qwen3NextKeys({ vocab_size: 248320, num_hidden_layers: 40, num_experts: 256, num_experts_per_tok: 8 }));

const linearAttn = 'model.layers.{l}.linear_attn';

export const qwen35MoeText = defineFamily({
  family: 'qwen3_5_moe_text',
  label: LABEL,
  modelTypes: ['qwen3_5_moe_text'],
  configSchema,
  normalize: (p, raw) => ({
    ...qwen3NextConfigPart('qwen3_5_moe_text', p, raw, LABEL),
    denseIntermediateSize: 0,
    normTopkProb: true,
  }),
  isMoeLayer: (p) => p.num_experts > 0,
  names: qwen3NextNames({ qkv: `${linearAttn}.in_proj_qkv.weight`, z: `${linearAttn}.in_proj_z.weight`, b: `${linearAttn}.in_proj_b.weight`, a: `${linearAttn}.in_proj_a.weight` }),
});
