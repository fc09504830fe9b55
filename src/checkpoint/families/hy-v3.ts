/**
 * HY V3 (`hy_v3`, HYV3ForCausalLM: Tencent Hunyuan's third MoE generation). Grouped-query
 * attention with per-head q/k RMSNorm before RoPE (Apertus'). MoE layers from mlp_layer_types
 * (transformers' default: the first dense, the rest sparse). Routing is sigmoid scores with a
 * correction bias for the choice only (DeepSeek-V3's noaux_tc with one group), the chosen scores
 * renormalised and multiplied by router_scaling_factor; ungated shared experts of
 * moe_intermediate_size × num_shared_experts (with none, transformers builds one of
 * intermediate_size, and so does this reader).
 *
 * Tensor names: the releases' (`mlp.router.gate`, `mlp.expert_bias`, `mlp.shared_mlp`, experts
 * per expert), or transformers' modules' as it saves them (`mlp.gate`, `mlp.e_score_correction_bias`,
 * `mlp.shared_experts`, experts fused). The multi-token-prediction layer past num_hidden_layers is
 * not part of the model. Defaults: transformers' HYV3Config.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import {
  denseMlpNames,
  fusedExpertNames,
  llamaConfigPart,
  llamaKeys,
  llamaNames,
  mlpLayerTypes,
  mlpLayerTypesKey,
  noAttentionBias,
  nonNegativeInt,
  positiveInt,
  projExpertNames,
  qkNormNames,
} from './common.js';

const LABEL = 'HY V3';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 120832,
    hidden_size: 4096,
    num_hidden_layers: 80,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 11_158_840,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  head_dim: positiveInt.nullable().default(128),
  intermediate_size: positiveInt.default(13312),
  moe_intermediate_size: positiveInt.default(1536),
  num_experts: positiveInt.default(192),
  num_experts_per_tok: positiveInt.default(8),
  num_shared_experts: nonNegativeInt.default(1),
  router_scaling_factor: z.number().positive().default(2.826),
  attention_bias: noAttentionBias.default(false),
  mlp_bias: z.literal(false, { error: 'mlp_bias: true is not supported for HY V3 (no released checkpoint uses it)' }).default(false),
  mlp_layer_types: mlpLayerTypesKey,
});

/** transformers: the first layer dense, the rest sparse, unless mlp_layer_types says */
const layerTypes = (p: z.infer<typeof configSchema>) => mlpLayerTypes({ ...p, first_k_dense_replace: 1 }, LABEL);

export const hyV3 = defineFamily({
  family: 'hy_v3',
  label: LABEL,
  modelTypes: ['hy_v3'],
  configSchema,
  normalize: (p, raw) => {
    layerTypes(p);
    return {
      ...llamaConfigPart('hy_v3', p, raw, 11_158_840),
      numExperts: p.num_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.moe_intermediate_size,
      denseIntermediateSize: p.intermediate_size,
      // HYV3MLP(intermediate_size=0) falls back to intermediate_size
      sharedExpertIntermediateSize: p.moe_intermediate_size * p.num_shared_experts || p.intermediate_size,
      sharedExpertGated: false,
      topkMethod: 'noaux_tc',
      nGroup: 1,
      topkGroup: 1,
      normTopkProb: true,
      routedScalingFactor: p.router_scaling_factor,
      qkvBias: false,
      qkNorm: 'per-head',
      attention: 'standard',
    };
  },
  isMoeLayer: (p, layer) => layerTypes(p)[layer] === 'sparse',
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkNormNames },
    router: 'model.layers.{l}.mlp.router.gate.weight',
    routerBias: 'model.layers.{l}.mlp.expert_bias',
    expert: projExpertNames,
    fused: fusedExpertNames,
    shared: {
      gate: 'model.layers.{l}.mlp.shared_mlp.gate_proj.weight',
      up: 'model.layers.{l}.mlp.shared_mlp.up_proj.weight',
      down: 'model.layers.{l}.mlp.shared_mlp.down_proj.weight',
    },
    dense: denseMlpNames,
    // transformers' conversion mapping for hy_v3, release name → module name
    renamings: [
      ['mlp.router.gate.weight', 'mlp.gate.weight'],
      ['mlp.expert_bias', 'mlp.e_score_correction_bias'],
      ['mlp.shared_mlp.', 'mlp.shared_experts.'],
    ],
  },
});
