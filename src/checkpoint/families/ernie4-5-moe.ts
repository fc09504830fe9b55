/**
 * ERNIE-4.5 MoE (`ernie4_5_moe`, Ernie4_5_MoeForCausalLM: ERNIE-4.5-21B-A3B and -300B-A47B, base
 * and instruct). Grouped-query attention whose RoPE rotates interleaved pairs (x[2i], x[2i+1]), not
 * halves; no q/k norm. Routing is a softmax over the experts, the top-k chosen on probability +
 * `moe_statics.e_score_correction_bias` (stored as one row, [1, E]) and weighted by their
 * probabilities renormalised (divided by their sum, at least moe_norm_min: 1e-12, which an f32 sum
 * of k probabilities never falls below); moe_num_shared_experts ungated shared experts of the
 * routed width. Layer l is MoE iff moe_layer_start_index ≤ l ≤ moe_layer_end_index (−1: the last)
 * and (l + 1) % moe_layer_interval == 0; the others have a dense MLP of intermediate_size. Tensor
 * names are DeepSeek's for the MLP, with the bias at `mlp.moe_statics.e_score_correction_bias`
 * (transformers ≥ 5 writes it under `mlp.gate.`). Linear biases (use_bias) are not implemented
 * and refused. Defaults: transformers' Ernie4_5_MoeConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { denseMlpNames, fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, mlpRouterName, nonNegativeInt, positiveInt, projExpertNames, sharedExpertsNames } from './common.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 103424,
    hidden_size: 2560,
    num_hidden_layers: 28,
    num_attention_heads: 20,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: true,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  intermediate_size: positiveInt.default(12288),
  moe_intermediate_size: positiveInt.default(1536),
  moe_k: positiveInt.default(6),
  moe_num_experts: positiveInt.default(64),
  moe_num_shared_experts: nonNegativeInt.nullable().default(2),
  moe_layer_start_index: nonNegativeInt.default(1),
  moe_layer_end_index: z.number().int().min(-1).default(-1),
  moe_layer_interval: positiveInt.default(1),
  use_bias: z.literal(false, { error: 'use_bias true (biases on every linear layer) is not implemented for ernie4_5_moe' }).default(false),
});

export const ernie45Moe = defineFamily({
  family: 'ernie4_5_moe',
  label: 'ERNIE-4.5 MoE',
  modelTypes: ['ernie4_5_moe'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('ernie4_5_moe', p, raw, 500000),
    ropeInterleave: true,
    numExperts: p.moe_num_experts,
    topK: p.moe_k,
    expertIntermediateSize: p.moe_intermediate_size,
    denseIntermediateSize: p.intermediate_size,
    sharedExpertIntermediateSize: p.moe_intermediate_size * (p.moe_num_shared_experts ?? 0),
    sharedExpertGated: false,
    normTopkProb: true,
    routedScalingFactor: 1,
    qkvBias: false,
    qkNorm: 'none',
    attention: 'standard',
  }),
  isMoeLayer: (p, layer) => {
    const end = p.moe_layer_end_index === -1 ? p.num_hidden_layers - 1 : p.moe_layer_end_index;
    return (layer + 1) % p.moe_layer_interval === 0 && layer >= p.moe_layer_start_index && layer <= end;
  },
  names: {
    ...llamaNames,
    router: mlpRouterName,
    routerBias: 'model.layers.{l}.mlp.moe_statics.e_score_correction_bias',
    routerBiasRow: true,
    expert: projExpertNames,
    fused: { ...fusedExpertNames, routerBias: 'model.layers.{l}.mlp.gate.moe_statics.e_score_correction_bias' },
    shared: sharedExpertsNames,
    dense: denseMlpNames,
  },
});
