/**
 * Xiaomi MiMo-V2-Flash (`mimo_v2_flash`, MiMoV2FlashForCausalLM). Attention is a hybrid of
 * sliding-window and full layers (`layer_types`; by default layer 0 and every sixth full, the rest
 * sliding over `sliding_window` positions) whose layers differ:
 * - a sliding layer has twice num_key_value_heads kv heads and a learned sink logit per query head
 *   (`self_attn.sinks`; the releases' `attention_sink_bias`, which transformers renames);
 * - query/key heads are head_dim (192) wide and value heads v_head_dim (128), o_proj reading
 *   heads × v_head_dim; every value is multiplied by attention_value_scale (0.707; null: 1);
 * - each layer type has its own RoPE (`rope_parameters` keyed by layer type: base, and
 *   partial_rotary_factor 0.334 over the first int(head_dim × factor) values of each head).
 * Optional q/k/v biases (attention_bias), no q/k norm. The MLP is dense or MoE by
 * `mlp_layer_types` (default: layer 0 dense); MoE routing is DeepSeek-V3's `noaux_tc` (sigmoid
 * scores, `mlp.gate.e_score_correction_bias` for the choice only, groups, renormalised, ×
 * routed_scaling_factor, whose null means 1) without shared experts. The multi-token-prediction
 * tensors (`model.mtp.…`) are not part of the model (transformers ignores them too).
 * Defaults: transformers' MiMoV2FlashConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { perLayerWindow, windowSize } from '../sliding-window.js';
import { aliasedCount, llamaConfigPart, llamaKeys, llamaNames, mlpLayerTypes, mlpLayerTypesKey, positiveInt, qkvBiasNames } from './common.js';
import { correctionBiasName, deepseekMoeNames, noauxTcPart } from './deepseek.js';

const LABEL = 'MiMo-V2-Flash';

/** transformers' defaults where config.json has no rope_parameters: the release's bases */
const DEFAULT_ROPE: Record<LayerType, { rope_theta: number; partial_rotary_factor: number }> = {
  full_attention: { rope_theta: 5_000_000, partial_rotary_factor: 0.334 },
  sliding_attention: { rope_theta: 10_000, partial_rotary_factor: 0.334 },
};
/** what transformers' rotary embedding takes where a layer type's block has no partial_rotary_factor */
const DEFAULT_PARTIAL_ROTARY_FACTOR = 0.334;

type LayerType = 'full_attention' | 'sliding_attention';

const ropeBlock = z.looseObject({
  rope_type: z.string().default('default'),
  rope_theta: z.number().positive(),
  partial_rotary_factor: z.number().gt(0).lte(1).optional(),
});

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 152576,
    hidden_size: 4096,
    num_hidden_layers: 48,
    num_attention_heads: 64,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 1,
    eos_token_id: null,
  }),
  head_dim: positiveInt.default(192),
  v_head_dim: positiveInt.default(128),
  // per layer type; null or absent: transformers' defaults (a top-level rope_theta is not read)
  rope_parameters: z.record(z.string(), ropeBlock).nullable().default(null),
  intermediate_size: positiveInt.default(16384),
  moe_intermediate_size: positiveInt.default(2048),
  num_experts_per_tok: positiveInt.default(8),
  n_routed_experts: positiveInt.optional(),
  num_local_experts: positiveInt.optional(),
  routed_scaling_factor: z.number().positive().nullable().default(1),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  norm_topk_prob: z.boolean().default(true),
  mlp_layer_types: mlpLayerTypesKey,
  attention_bias: z.boolean().default(false),
  attention_value_scale: z.number().nullable().default(0.707),
});

type Parsed = z.infer<typeof configSchema>;

/** transformers' default layer_types: layer 0 and every sixth full, the others sliding */
const slidingByDefault = (l: number) => !(l === 0 || (l + 1) % 6 === 0);

/**
 * Each layer's RoPE base and the rotated width, from rope_parameters' block of its layer type.
 * Types other than the default RoPE, or rotated widths that differ between the types, are refused:
 * the runtime rotates one width with unscaled bases.
 */
function layerRope(p: Parsed, sliding: readonly boolean[]): { ropeTheta: number; rotaryDim: number; layerRopeThetas?: number[] } {
  const blocks = p.rope_parameters ?? DEFAULT_ROPE;
  const types: LayerType[] = sliding.map((s) => (s ? 'sliding_attention' : 'full_attention'));
  const used = [...new Set(types)];
  const widths = new Set<number>();
  const theta: Partial<Record<LayerType, number>> = {};
  for (const type of used) {
    const block = blocks[type] as z.infer<typeof ropeBlock> | undefined;
    if (block === undefined)
      throw new CheckpointError('InvalidConfig', `config.json key 'rope_parameters' has no block for the layer type "${type}" (${LABEL} config); give each layer type its rope_theta`);
    if ((block.rope_type ?? 'default') !== 'default')
      throw new CheckpointError('InvalidConfig', `config.json key 'rope_parameters.${type}': rope_type "${block.rope_type}" is not implemented for ${LABEL} (the default RoPE is); fix config.json`);
    const factor = block.partial_rotary_factor ?? DEFAULT_PARTIAL_ROTARY_FACTOR;
    // transformers: int(head_dim * partial_rotary_factor)
    const width = Math.trunc(p.head_dim * factor);
    if (width % 2 !== 0 || width === 0)
      throw new CheckpointError('InvalidConfig', `config.json key 'rope_parameters.${type}': head_dim ${p.head_dim} × partial_rotary_factor ${factor} rotates ${width} values, which must be a positive even number (${LABEL} config); fix config.json`);
    widths.add(width);
    theta[type] = block.rope_theta;
  }
  if (widths.size > 1)
    throw new CheckpointError('InvalidConfig', `config.json key 'rope_parameters': the layer types rotate ${[...widths].join(' and ')} values of each head; rfid-moe reads one rotated width for every layer (${LABEL} config)`);
  const thetas = types.map((t) => theta[t]!);
  const ropeTheta = theta.full_attention ?? thetas[0];
  return { ropeTheta, rotaryDim: [...widths][0], ...(new Set(thetas).size > 1 ? { layerRopeThetas: thetas } : {}) };
}

export const mimoV2Flash = defineFamily({
  family: 'mimo_v2_flash',
  label: LABEL,
  modelTypes: ['mimo_v2_flash'],
  configSchema,
  normalize: (p, raw) => {
    mlpLayerTypes({ ...p, first_k_dense_replace: 1 }, LABEL);
    const window = perLayerWindow(raw, p.num_hidden_layers, LABEL, windowSize(raw, LABEL, 128), slidingByDefault);
    const sliding = Array.from({ length: p.num_hidden_layers }, (_, l) => window.slidingWindow !== undefined && (window.slidingWindow.layers?.[l] ?? true));
    const kvHeads = p.num_key_value_heads ?? p.num_attention_heads;
    // each layer's query heads share its kv heads in equal groups
    for (const heads of new Set(sliding.map((s) => (s ? 2 * kvHeads : kvHeads)))) {
      if (p.num_attention_heads % heads !== 0)
        throw new CheckpointError('InvalidConfig', `config.json: num_attention_heads ${p.num_attention_heads} is not a multiple of a layer's ${heads} kv heads (num_key_value_heads, twice it in the sliding layers) (${LABEL} config); fix config.json`);
    }
    return {
      ...llamaConfigPart('mimo_v2_flash', { ...p, rope_parameters: null }, raw, 10000),
      ...window,
      ...layerRope(p, sliding),
      numKvHeads: kvHeads,
      ...(sliding.includes(true) ? { layerKvHeads: sliding.map((s) => (s ? 2 * kvHeads : kvHeads)) } : {}),
      ...(p.v_head_dim !== p.head_dim ? { valueHeadDim: p.v_head_dim } : {}),
      ...(p.attention_value_scale !== null && p.attention_value_scale !== 1 ? { attentionValueScale: p.attention_value_scale } : {}),
      ...(sliding.includes(true) ? { attentionSinks: true, sinkLayers: sliding } : {}),
      numExperts: aliasedCount('n_routed_experts', 'num_local_experts', { canonical: p.n_routed_experts, alias: p.num_local_experts }, 256, LABEL),
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.moe_intermediate_size,
      denseIntermediateSize: p.intermediate_size,
      sharedExpertIntermediateSize: 0,
      sharedExpertGated: false,
      ...noauxTcPart({ ...p, routed_scaling_factor: p.routed_scaling_factor ?? 1 }),
      qkvBias: p.attention_bias,
      qkNorm: 'none',
      attention: 'standard',
    };
  },
  isMoeLayer: (p, layer) => mlpLayerTypes({ ...p, first_k_dense_replace: 1 }, LABEL)[layer] === 'sparse',
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkvBiasNames, sinks: 'model.layers.{l}.self_attn.sinks' },
    ...deepseekMoeNames,
    routerBias: correctionBiasName,
    // the releases name the sinks attention_sink_bias (transformers' conversion mapping renames it)
    renamings: [['self_attn.sinks', 'self_attn.attention_sink_bias']],
  },
});
