/**
 * EXAONE MoE (`exaone_moe`, ExaoneMoeForCausalLM: LG AI Research's K-EXAONE). Attention is
 * EXAONE 4.0's: grouped-query, q/k RMSNorm per head before RoPE, no biases; a hybrid of sliding
 * and global layers (`layer_types`, else every `sliding_window_pattern`-th layer global), where the
 * global layers apply no RoPE (NoPE) whenever a window is set. Routing is DeepSeek-V3's `noaux_tc`
 * (sigmoid scores, a correction bias for the choice, groups, renormalised, ×
 * routed_scaling_factor) with num_shared_experts ungated shared experts; the MoE layers are those
 * `mlp_layer_types` marks "sparse", else all from first_k_dense_replace on. The releases store
 * the correction bias at `mlp.e_score_correction_bias`, and transformers' modules at
 * `mlp.gate.e_score_correction_bias`; either is read. Defaults: transformers' ExaoneMoeConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { perLayerWindow, windowSize } from '../sliding-window.js';
import { llamaConfigPart, llamaKeys, llamaNames, mlpLayerTypes, mlpLayerTypesKey, noAttentionBias, nonNegativeInt, positiveInt, qkNormNames } from './common.js';
import { deepseekMoeNames, noauxTcPart } from './deepseek.js';

const LABEL = 'EXAONE MoE';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 102400,
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 32,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 53,
  }),
  intermediate_size: positiveInt.default(16384),
  moe_intermediate_size: positiveInt.default(1024),
  num_experts: positiveInt.default(64),
  num_experts_per_tok: positiveInt.default(8),
  num_shared_experts: nonNegativeInt.default(1),
  first_k_dense_replace: nonNegativeInt.default(1),
  mlp_layer_types: mlpLayerTypesKey,
  norm_topk_prob: z.boolean().default(true),
  routed_scaling_factor: z.number().positive().default(2.5),
  n_group: positiveInt.default(1),
  topk_group: positiveInt.default(1),
  sliding_window_pattern: z.union([positiveInt, z.string(), z.literal(0), z.null()]).default(4),
  attention_bias: noAttentionBias.default(false),
});

type Parsed = z.infer<typeof configSchema>;

/**
 * The sliding layers as transformers' Exaone4Config derives them without `layer_types`: every
 * layer but each sliding_window_pattern-th. A pattern written as a string ("LLLG") is not read
 * there (the modulo needs an integer), so a config that has one must list `layer_types`.
 */
function slidingByPattern(p: Parsed): (layer: number) => boolean {
  const pattern = p.sliding_window_pattern;
  if (typeof pattern === 'string' || pattern === null || pattern === 0)
    throw new CheckpointError('InvalidConfig', `config.json sets sliding_window but no layer_types, and sliding_window_pattern ${JSON.stringify(pattern)} is not a layer count transformers derives them from (${LABEL} config); list layer_types`);
  return (l) => (l + 1) % pattern !== 0;
}

export const exaoneMoe = defineFamily({
  family: 'exaone_moe',
  label: LABEL,
  modelTypes: ['exaone_moe'],
  configSchema,
  normalize: (p, raw) => {
    mlpLayerTypes(p, LABEL);
    const window = windowSize(raw, LABEL, 4096);
    const hasLayerTypes = raw.layer_types !== undefined && raw.layer_types !== null;
    const sliding = perLayerWindow(raw, p.num_hidden_layers, LABEL, window, hasLayerTypes || window === null ? () => false : slidingByPattern(p));
    const windowed = sliding.slidingWindow;
    // transformers: RoPE where no window is set, else only in the sliding layers
    const nope = window === null ? [] : Array.from({ length: p.num_hidden_layers }, (_, l) => !(windowed !== undefined && (windowed.layers?.[l] ?? true)));
    return {
      ...llamaConfigPart('exaone_moe', p, raw, 10000),
      ...sliding,
      ...(nope.includes(true) ? { nopeLayers: nope } : {}),
      numExperts: p.num_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.moe_intermediate_size,
      denseIntermediateSize: p.intermediate_size,
      sharedExpertIntermediateSize: p.moe_intermediate_size * p.num_shared_experts,
      sharedExpertGated: false,
      ...noauxTcPart(p),
      qkvBias: false,
      qkNorm: 'per-head',
      attention: 'standard',
    };
  },
  isMoeLayer: (p, layer) => mlpLayerTypes(p, LABEL)[layer] === 'sparse',
  names: {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkNormNames },
    ...deepseekMoeNames,
    routerBias: 'model.layers.{l}.mlp.e_score_correction_bias',
    // transformers' module holds it under mlp.gate (and saves it there)
    renamings: [['mlp.e_score_correction_bias', 'mlp.gate.e_score_correction_bias']],
  },
});
