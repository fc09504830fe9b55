/**
 * PhiMoE (`phimoe`, PhimoeForCausalLM: Phi-3.5-MoE). Mixtral's layout (every layer MoE, experts
 * w1 / w3 / w2 under block_sparse_moe, one window for every layer where sliding_window is set)
 * with nn.LayerNorms, a weight and a bias each, on both sublayers' inputs and at the end
 * (ModelConfig.normKind; eps rms_norm_eps); biases on all four attention projections with
 * attention_bias and on lm_head with lm_head_bias; routing by sparsemixer as transformers runs it
 * at inference (ModelConfig.routing 'sparsemixer': two experts, router_jitter_noise the masking
 * margin; the input jitter is training's only). RoPE is the default or "longrope" as
 * PhimoeRotaryEmbedding computes it: the short factors (transformers never applies the long ones
 * there) and cos/sin × short_mscale, which must equal long_mscale (as in the releases) for the
 * runtime to run it (ModelConfig.longRope). transformers' conversion renames block_sparse_moe to mlp and the router to
 * mlp.router when it fuses the experts; both forms are read. Defaults: transformers' PhimoeConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { ropeScalingOf } from '../rope-scaling.js';
import { everyLayerWindow, windowSize } from '../sliding-window.js';
import type { ModelConfig } from '../types.js';
import { fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, positiveInt, qkvBiasNames } from './common.js';

const LABEL = 'PhiMoE';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 32064,
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 1e6,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  intermediate_size: positiveInt.default(6400),
  num_local_experts: positiveInt.default(16),
  // transformers' sparsemixer picks two experts whatever this says
  num_experts_per_tok: z.literal(2, { error: "num_experts_per_tok must be 2: transformers' PhiMoE router (sparsemixer) always picks two experts" }).default(2),
  router_jitter_noise: z.number().nonnegative().default(0.01),
  attention_bias: z.boolean().default(false),
  lm_head_bias: z.boolean().default(false),
});

/** A number list of the RoPE block (short_factor), or a refusal naming it. */
function numberList(params: Record<string, unknown>, key: string, what: string): number[] {
  const v = params[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw new CheckpointError('InvalidConfig', `config.json key '${what}.${key}': must be a list of numbers (${LABEL} config); fix config.json`);
  return v as number[];
}

/**
 * The LongRoPE transformers runs: short_factor and short_mscale (both mscales are required there;
 * a long_mscale that differs leaves the model unrunnable, ropeProblem).
 */
function longRope(raw: Record<string, unknown>): Pick<ModelConfig, 'longRope'> {
  const { key, type, params } = ropeScalingOf(raw);
  if (type === 'default') return {};
  const what = key ?? 'rope_scaling';
  if (type !== 'longrope' || !params)
    throw new CheckpointError('InvalidConfig', `config.json key '${what}': PhimoeForCausalLM runs the default RoPE or "longrope", got "${type}" (${LABEL} config); fix config.json`);
  const short = params.short_mscale;
  const long = params.long_mscale;
  if (typeof short !== 'number' || typeof long !== 'number')
    throw new CheckpointError('InvalidConfig', `config.json key '${what}': "longrope" needs short_mscale and long_mscale numbers, as transformers requires (${LABEL} config); fix config.json`);
  const shortFactor = numberList(params, 'short_factor', what);
  numberList(params, 'long_factor', what);
  return { longRope: { shortFactor, mscale: short, longMscale: long } };
}

export const phimoe = defineFamily({
  family: 'phimoe',
  label: LABEL,
  modelTypes: ['phimoe'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('phimoe', p, raw, 1e6),
    ...everyLayerWindow(windowSize(raw, LABEL, null)),
    ...longRope(raw),
    normKind: { kind: 'layer', bias: true },
    numExperts: p.num_local_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.intermediate_size,
    denseIntermediateSize: 0,
    routing: 'sparsemixer',
    routerJitterEps: p.router_jitter_noise,
    normTopkProb: false,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: 0,
    sharedExpertGated: false,
    qkvBias: p.attention_bias,
    ...(p.attention_bias ? { oBias: true } : {}),
    ...(p.lm_head_bias ? { lmHeadBias: true } : {}),
    qkNorm: 'none',
    attention: 'standard',
  }),
  isMoeLayer: () => true,
  names: {
    ...llamaNames,
    normBiases: {
      attentionInput: 'model.layers.{l}.input_layernorm.bias',
      mlpInput: 'model.layers.{l}.post_attention_layernorm.bias',
    },
    finalNormBias: 'model.norm.bias',
    lmHeadBias: 'lm_head.bias',
    attention: { ...llamaNames.attention, ...qkvBiasNames, oBias: 'model.layers.{l}.self_attn.o_proj.bias' },
    router: 'model.layers.{l}.block_sparse_moe.gate.weight',
    expert: {
      gate: 'model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight',
      up: 'model.layers.{l}.block_sparse_moe.experts.{e}.w3.weight',
      down: 'model.layers.{l}.block_sparse_moe.experts.{e}.w2.weight',
    },
    // transformers' conversion: block_sparse_moe → mlp, and the router's gate → router
    fused: { ...fusedExpertNames, router: 'model.layers.{l}.mlp.router.weight' },
  },
});
