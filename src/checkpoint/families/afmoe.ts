/**
 * AFMoE (`afmoe`, AfmoeForCausalLM: Arcee's Trinity models). Per layer:
 * - four RMS norms, sandwiching both sublayers: input_layernorm before the attention,
 *   post_attention_layernorm on its output, pre_mlp_layernorm before the MLP, post_mlp_layernorm
 *   on its output (ModelConfig.norms);
 * - grouped-query attention with per-head q/k RMSNorm, its output gated by
 *   sigmoid(self_attn.gate_proj(x)) before o_proj (ModelConfig.attentionOutputGate);
 * - sliding-window layers (`layer_types`, by default all but every global_attn_every_n_layers-th,
 *   counting from 1) with window `sliding_window`; RoPE in those layers only: the full-attention
 *   layers apply none (ModelConfig.nopeLayers), whatever the window;
 * - the first num_dense_layers layers dense (intermediate_size), the rest MoE: sigmoid scores with
 *   `mlp.expert_bias` added for the choice only, the chosen scores renormalised (+ 1e-20) and
 *   multiplied by route_scale (DeepSeek-V3's noaux_tc in one group), and an ungated shared MLP of
 *   moe_intermediate_size × num_shared_experts.
 * With mup_enabled the embeddings are multiplied by √hidden_size (ModelConfig.multipliers).
 *
 * transformers' AfmoeTokenChoiceRouter does not read the releases' score_func, route_norm, n_group
 * or topk_group: it always routes as above. A config asking for other routing is refused rather
 * than run as transformers runs it. Tensor names are the modules' own (the releases use them); the
 * conversion mapping only fuses the per-expert experts (`mlp.experts.gate_up_proj` / `down_proj`).
 * Defaults: transformers' AfmoeConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { perLayerWindow, windowSize } from '../sliding-window.js';
import type { ModelConfig } from '../types.js';
import { denseMlpNames, fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, noAttentionBias, nonNegativeInt, positiveInt, projExpertNames, qkNormNames, sharedExpertsNames } from './common.js';

const LABEL = 'AFMoE';

/** why a routing key's value is refused: transformers' router does not read it, so it would not honour it */
const ignoredByTransformers = (what: string) => `transformers' AfmoeForCausalLM always routes ${what}; a checkpoint asking otherwise would not run as trained`;

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 200192,
    hidden_size: 2048,
    num_hidden_layers: 32,
    num_attention_heads: 16,
    num_key_value_heads: null,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  // transformers sizes the attention by head_dim itself: null does not fall back to hidden_size / heads there
  head_dim: positiveInt.default(128),
  intermediate_size: positiveInt.default(6144),
  moe_intermediate_size: positiveInt.default(1408),
  num_dense_layers: nonNegativeInt.default(1),
  num_experts: positiveInt.default(64),
  num_experts_per_tok: positiveInt.default(6),
  num_shared_experts: nonNegativeInt.default(2),
  route_scale: z.number().positive().default(1),
  global_attn_every_n_layers: positiveInt.nullable().default(4),
  mup_enabled: z.boolean().nullable().default(false),
  attention_bias: noAttentionBias.default(false),
  score_func: z.literal('sigmoid', { error: ignoredByTransformers('by sigmoid scores') }).optional(),
  route_norm: z.literal(true, { error: ignoredByTransformers('with the chosen scores renormalised') }).optional(),
  n_group: positiveInt.nullable().optional(),
  topk_group: positiveInt.nullable().optional(),
});

type Parsed = z.infer<typeof configSchema>;

/** transformers' default layer_types: layer i is global where i + 1 is a multiple of global_attn_every_n_layers, else sliding. */
function slidingByPeriod(p: Parsed, size: number | null): (layer: number) => boolean {
  const every = p.global_attn_every_n_layers;
  if (every === null)
    throw new CheckpointError('InvalidConfig', `config.json sets neither layer_types nor global_attn_every_n_layers (${LABEL} config); list layer_types, or set global_attn_every_n_layers`);
  const sliding = (l: number) => (l + 1) % every !== 0;
  // transformers fails on such a config (its cache takes the window as an integer)
  if (size === null && Array.from({ length: p.num_hidden_layers }, (_, l) => sliding(l)).includes(true))
    throw new CheckpointError('InvalidConfig', `config.json sets sliding_window to null while layers are sliding (global_attn_every_n_layers ${every}) (${LABEL} config); set sliding_window, or list layer_types all "full_attention"`);
  return sliding;
}

/** The window of the sliding layers, and the global layers, which apply no RoPE. */
function attentionLayers(p: Parsed, raw: Record<string, unknown>): Pick<ModelConfig, 'slidingWindow' | 'nopeLayers'> {
  const size = windowSize(raw, LABEL, 1024);
  const listed = Array.isArray(raw.layer_types) ? (raw.layer_types as unknown[]) : null;
  const byDefault = listed === null ? slidingByPeriod(p, size) : () => false;
  // checks a listed layer_types, and refuses sliding layers without a window
  const window = perLayerWindow(raw, p.num_hidden_layers, LABEL, size, byDefault);
  const nope = Array.from({ length: p.num_hidden_layers }, (_, l) => (listed === null ? !byDefault(l) : listed[l] === 'full_attention'));
  return { ...window, ...(nope.includes(true) ? { nopeLayers: nope } : {}) };
}

/** The routing keys transformers ignores, where they ask for group-limited routing. */
function checkGroups(p: Parsed): void {
  if (typeof p.n_group === 'number' && typeof p.topk_group === 'number' && p.topk_group < p.n_group)
    throw new CheckpointError('InvalidConfig', `config.json key 'topk_group': ${ignoredByTransformers('over all experts, in no groups')} (${LABEL} config); remove n_group and topk_group, or set topk_group to n_group`);
}

export const afmoe = defineFamily({
  family: 'afmoe',
  label: LABEL,
  modelTypes: ['afmoe'],
  configSchema,
  normalize: (p, raw) => {
    checkGroups(p);
    return {
      ...llamaConfigPart('afmoe', p, raw, 10000),
      ...attentionLayers(p, raw),
      norms: { attentionInput: true, attentionOutput: true, mlpInput: true, mlpOutput: true },
      attentionOutputGate: true,
      ...(p.mup_enabled ? { multipliers: { embedding: Math.sqrt(p.hidden_size) } } : {}),
      numExperts: p.num_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.moe_intermediate_size,
      denseIntermediateSize: p.intermediate_size,
      sharedExpertIntermediateSize: p.moe_intermediate_size * p.num_shared_experts,
      sharedExpertGated: false,
      topkMethod: 'noaux_tc',
      nGroup: 1,
      topkGroup: 1,
      normTopkProb: true,
      routedScalingFactor: p.route_scale,
      qkvBias: false,
      qkNorm: 'per-head',
      attention: 'standard',
    };
  },
  isMoeLayer: (p, layer) => layer >= p.num_dense_layers,
  names: {
    ...llamaNames,
    norms: {
      attentionInput: 'model.layers.{l}.input_layernorm.weight',
      attentionOutput: 'model.layers.{l}.post_attention_layernorm.weight',
      mlpInput: 'model.layers.{l}.pre_mlp_layernorm.weight',
      mlpOutput: 'model.layers.{l}.post_mlp_layernorm.weight',
    },
    attention: { ...llamaNames.attention, ...qkNormNames, outputGate: 'model.layers.{l}.self_attn.gate_proj.weight' },
    router: 'model.layers.{l}.mlp.router.gate.weight',
    routerBias: 'model.layers.{l}.mlp.expert_bias',
    expert: projExpertNames,
    fused: fusedExpertNames,
    shared: sharedExpertsNames,
    dense: denseMlpNames,
  },
});
