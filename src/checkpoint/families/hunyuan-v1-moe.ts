/**
 * Hunyuan MoE (`hunyuan_v1_moe`, HunYuanMoEV1ForCausalLM: Hunyuan-A13B, base and instruct).
 * Grouped-query attention whose queries and keys are RMS-normalised per head after RoPE, not
 * before (`query_layernorm`, `key_layernorm`); RoPE may be "dynamic" with an NTK `alpha`, which
 * raises the base to θ·alpha^(d/(d−2)) (d = head_dim) for every position up to
 * max_position_embeddings (beyond it transformers would rescale again; the runtime's context ends
 * there). Every layer is MoE: softmax top-k, renormalised, and an always-on shared MLP; the
 * experts and the shared MLP are intermediate_size wide, as transformers builds them. Per-layer
 * lists of num_experts / moe_topk are read when every layer has the same. Defaults: transformers'
 * HunYuanMoEV1Config.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, noAttentionBias, positiveInt, projExpertNames } from './common.js';
import { ropeScalingOf } from '../rope-scaling.js';

/** an int, or a per-layer list of one value */
const perLayer = z.union([positiveInt, z.array(positiveInt).min(1)]);

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 290943,
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: null,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  intermediate_size: positiveInt.default(11008),
  num_experts: perLayer.default(1),
  moe_topk: perLayer.default(1),
  attention_bias: noAttentionBias.default(false),
});

/** the one value of an int or per-layer list; throws naming the key where layers differ */
function sameForEveryLayer(value: number | number[], key: string): number {
  if (typeof value === 'number') return value;
  if (value.some((v) => v !== value[0]))
    throw new CheckpointError('InvalidConfig', `config.json key '${key}': per-layer values that differ (${JSON.stringify(value)}) are not implemented (Hunyuan MoE config); every layer must have the same`);
  return value[0];
}

export const hunyuanV1Moe = defineFamily({
  family: 'hunyuan_v1_moe',
  label: 'Hunyuan MoE',
  modelTypes: ['hunyuan_v1_moe'],
  configSchema,
  normalize: (p, raw) => {
    const { type, params } = ropeScalingOf(raw);
    const alpha = type === 'dynamic' && params && typeof params.alpha === 'number' ? params.alpha : undefined;
    if (alpha !== undefined && !(alpha > 0 && Number.isFinite(alpha)))
      throw new CheckpointError('InvalidConfig', `config.json key 'rope_scaling.alpha': must be a positive number, got ${JSON.stringify(alpha)} (Hunyuan MoE config); fix config.json`);
    return {
      ...llamaConfigPart('hunyuan_v1_moe', p, raw, 10000),
      ...(alpha !== undefined ? { ropeAlpha: alpha } : {}),
      numExperts: sameForEveryLayer(p.num_experts, 'num_experts'),
      topK: sameForEveryLayer(p.moe_topk, 'moe_topk'),
      expertIntermediateSize: p.intermediate_size,
      denseIntermediateSize: 0,
      sharedExpertIntermediateSize: p.intermediate_size,
      sharedExpertGated: false,
      normTopkProb: true,
      routedScalingFactor: 1,
      qkvBias: false,
      qkNorm: 'per-head',
      qkNormAfterRope: true,
      attention: 'standard',
    };
  },
  isMoeLayer: () => true,
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, qNorm: 'model.layers.{l}.self_attn.query_layernorm.weight', kNorm: 'model.layers.{l}.self_attn.key_layernorm.weight' },
    router: 'model.layers.{l}.mlp.gate.wg.weight',
    expert: projExpertNames,
    fused: fusedExpertNames,
    shared: {
      gate: 'model.layers.{l}.mlp.shared_mlp.gate_proj.weight',
      up: 'model.layers.{l}.mlp.shared_mlp.up_proj.weight',
      down: 'model.layers.{l}.mlp.shared_mlp.down_proj.weight',
    },
  },
});
