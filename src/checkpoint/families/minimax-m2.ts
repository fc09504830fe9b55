/**
 * MiniMax-M2 (`minimax_m2`, MiniMaxM2ForCausalLM: MiniMax-M2 and M2.1, 230B total, 10B active).
 * Grouped-query attention whose q and k projections are each RMS-normalised over the whole
 * projection before the split into heads (`qk_norm_type: "per_layer"`, as OLMoE), and RoPE over
 * the first `rotary_dim` values of each head only (rotate-half pairs; transformers reads it as
 * partial_rotary_factor = rotary_dim / head_dim). Every layer is MoE. Routing is sigmoid scores,
 * a correction bias `e_score_correction_bias` added for the choice only, top-k among all experts
 * (DeepSeek-V3's noaux_tc with one group), the chosen scores always renormalised; no shared
 * expert. On disk the names are Mixtral's (`block_sparse_moe.gate`, experts `w1`/`w3`/`w2`) with
 * the bias at `block_sparse_moe.e_score_correction_bias`; transformers ≥ 5 writes them as
 * `mlp.gate`, `mlp.experts.gate_up_proj` / `down_proj` and `mlp.e_score_correction_bias`. The
 * multi-token-prediction modules a release carries (use_mtp) are not part of the model
 * (transformers ignores them too). The published weights are block FP8, read dequantised
 * (fp8-blocks.ts). Defaults: transformers' MiniMaxM2Config.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, mlpRouterName, positiveInt, qkNormNames, checkedPartialRotaryFactor } from './common.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 200064,
    hidden_size: 3072,
    num_hidden_layers: 62,
    num_attention_heads: 48,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-6,
    rope_theta: 5e6,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 200034,
    eos_token_id: 200020,
  }),
  intermediate_size: positiveInt.default(1536),
  num_local_experts: positiveInt.default(256),
  num_experts_per_tok: positiveInt.default(8),
  /** the rotated width of each head; absent: partial_rotary_factor × head_dim (1 when neither is given) */
  rotary_dim: positiveInt.nullable().optional(),
  use_qk_norm: z.boolean().default(true),
  qk_norm_type: z.literal('per_layer').default('per_layer'),
  scoring_func: z.literal('sigmoid').default('sigmoid'),
  use_routing_bias: z.literal(true).default(true),
});

export const minimaxM2 = defineFamily({
  family: 'minimax_m2',
  label: 'MiniMax-M2',
  modelTypes: ['minimax_m2'],
  configSchema,
  normalize: (p, raw) => {
    const base = llamaConfigPart('minimax_m2', p, raw, 5e6);
    const factor = checkedPartialRotaryFactor(raw, 1, 'MiniMax-M2');
    const rotaryDim = p.rotary_dim ?? Math.trunc(base.headDim * factor);
    if (rotaryDim > base.headDim || rotaryDim % 2 !== 0)
      throw new CheckpointError('InvalidConfig', `config.json key 'rotary_dim': ${rotaryDim} must be even and at most head_dim ${base.headDim} (MiniMax-M2 config); fix config.json`);
    return {
      ...base,
      rotaryDim,
      numExperts: p.num_local_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.intermediate_size,
      denseIntermediateSize: 0,
      sharedExpertIntermediateSize: 0,
      sharedExpertGated: false,
      normTopkProb: true,
      routedScalingFactor: 1,
      topkMethod: 'noaux_tc',
      nGroup: 1,
      topkGroup: 1,
      qkvBias: false,
      qkNorm: p.use_qk_norm ? 'whole' : 'none',
      attention: 'standard',
    };
  },
  isMoeLayer: () => true,
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkNormNames },
    router: 'model.layers.{l}.block_sparse_moe.gate.weight',
    routerBias: 'model.layers.{l}.block_sparse_moe.e_score_correction_bias',
    expert: {
      gate: 'model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight',
      up: 'model.layers.{l}.block_sparse_moe.experts.{e}.w3.weight',
      down: 'model.layers.{l}.block_sparse_moe.experts.{e}.w2.weight',
    },
    fused: { ...fusedExpertNames, router: mlpRouterName, routerBias: 'model.layers.{l}.mlp.e_score_correction_bias' },
  },
});
