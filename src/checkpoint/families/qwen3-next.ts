/**
 * Qwen3-Next (`qwen3_next`, Qwen3NextForCausalLM: Qwen3-Next-80B-A3B). A hybrid decoder:
 * - most layers mix tokens with Gated DeltaNet linear attention (`linear_attn`: in_proj_qkvz and
 *   in_proj_ba grouped by key head, a depthwise causal conv1d with SiLU, l2-normalised q/k, the
 *   gated delta rule's recurrent state, a gated RMSNorm and out_proj; ModelConfig.linearAttention);
 * - the layers `layer_types` marks full_attention (by default every full_attention_interval-th,
 *   counting from 1) run gated attention: q_proj emits each head's query and then its gate, the
 *   heads' output × sigmoid(gate) before o_proj (ModelConfig.queryGate), per-head q/k norms, RoPE
 *   over the first head_dim × partial_rotary_factor (0.25) values of each head;
 * - its RMSNorms are zero-centred, x̂·(1 + w) (the layer norms, q/k norms and final norm; not the
 *   linear attention's gated norm; ModelConfig.zeroCentredNorms);
 * - Qwen2-MoE's MoE blocks (a shared expert scaled by sigmoid(shared_expert_gate(x)), the same
 *   layer rule and names; transformers ≥ 5 fuses the experts as it does Qwen2-MoE's).
 * The releases' multi-token-prediction tensors (`mtp.*`) are not read (transformers ignores them
 * too) and are carried into outputs unchanged. Defaults: transformers' Qwen3NextConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import type { FamilyName, LinearAttentionConfig, LinearInputNames } from '../types.js';
import {
  checkedPartialRotaryFactor,
  denseMlpNames,
  fusedExpertNames,
  llamaConfigPart,
  llamaKeys,
  llamaNames,
  mlpRouterName,
  noAttentionBias,
  nonNegativeInt,
  positiveInt,
  projExpertNames,
  qkNormNames,
  qwen2SharedExpertNames,
  type ParsedLlamaKeys,
} from './common.js';

const LABEL = 'Qwen3-Next';

/** The keys Qwen3-Next and Qwen3.5-MoE's language model share, with the family's defaults of the first few. */
export function qwen3NextKeys(d: { vocab_size: number; num_hidden_layers: number; num_experts: number; num_experts_per_tok: number }) {
  return {
    ...llamaKeys({
      vocab_size: d.vocab_size,
      hidden_size: 2048,
      num_hidden_layers: d.num_hidden_layers,
      num_attention_heads: 16,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
      pad_token_id: null,
      bos_token_id: null,
      eos_token_id: null,
    }),
    // transformers sizes the attention by head_dim itself: it does not fall back to hidden_size / heads
    head_dim: positiveInt.default(256),
    moe_intermediate_size: positiveInt.default(512),
    shared_expert_intermediate_size: positiveInt.default(512),
    num_experts: nonNegativeInt.default(d.num_experts),
    num_experts_per_tok: positiveInt.default(d.num_experts_per_tok),
    attention_bias: noAttentionBias.default(false),
    linear_conv_kernel_dim: positiveInt.default(4),
    linear_key_head_dim: positiveInt.default(128),
    linear_value_head_dim: positiveInt.default(128),
    linear_num_key_heads: positiveInt.default(16),
    linear_num_value_heads: positiveInt.default(32),
    layer_types: z.array(z.enum(['linear_attention', 'full_attention'])).nullable().default(null),
    full_attention_interval: positiveInt.default(4),
    // read through checkedPartialRotaryFactor (the RoPE block's wins); checked here where written at the top level
    partial_rotary_factor: z.number().gt(0).lte(1).optional(),
  };
}

const configSchema = z.looseObject({
  ...qwen3NextKeys({ vocab_size: 151936, num_hidden_layers: 48, num_experts: 512, num_experts_per_tok: 10 }),
  intermediate_size: positiveInt.default(5632),
  norm_topk_prob: z.boolean().default(true),
  decoder_sparse_step: positiveInt.default(1),
  mlp_only_layers: z.array(nonNegativeInt).nullable().default(null),
});

/** The parsed keys qwen3NextKeys gives. */
export interface ParsedQwen3NextKeys extends ParsedLlamaKeys {
  head_dim: number;
  moe_intermediate_size: number;
  shared_expert_intermediate_size: number;
  num_experts: number;
  num_experts_per_tok: number;
  linear_conv_kernel_dim: number;
  linear_key_head_dim: number;
  linear_value_head_dim: number;
  linear_num_key_heads: number;
  linear_num_value_heads: number;
  layer_types: Array<'linear_attention' | 'full_attention'> | null;
  full_attention_interval: number;
}

/** transformers' Qwen3NextConfig fills partial_rotary_factor in with 0.25 when a config has none */
const DEFAULT_PARTIAL_ROTARY_FACTOR = 0.25;

/** Which layers run linear attention: layer_types as listed, else all but every full_attention_interval-th (counting from 1). */
function linearLayers(p: ParsedQwen3NextKeys, label: string): boolean[] {
  const listed = p.layer_types;
  if (listed === null) return Array.from({ length: p.num_hidden_layers }, (_, l) => (l + 1) % p.full_attention_interval !== 0);
  if (listed.length !== p.num_hidden_layers)
    throw new CheckpointError('InvalidConfig', `config.json key 'layer_types': ${listed.length} entries for num_hidden_layers ${p.num_hidden_layers} (${label} config); list one a layer`);
  return listed.map((t) => t === 'linear_attention');
}

/** The Gated DeltaNet's sizes; each key head serves num_value_heads / num_key_heads value heads (transformers' repeat_interleave). */
function linearAttentionOf(p: ParsedQwen3NextKeys, label: string): LinearAttentionConfig {
  if (p.linear_num_value_heads % p.linear_num_key_heads !== 0)
    throw new CheckpointError(
      'InvalidConfig',
      `config.json: linear_num_value_heads (${p.linear_num_value_heads}) is not a multiple of linear_num_key_heads (${p.linear_num_key_heads}) (${label} config); fix config.json`,
    );
  return {
    layers: linearLayers(p, label),
    numKeyHeads: p.linear_num_key_heads,
    numValueHeads: p.linear_num_value_heads,
    keyHeadDim: p.linear_key_head_dim,
    valueHeadDim: p.linear_value_head_dim,
    convKernel: p.linear_conv_kernel_dim,
  };
}

/** The config both families resolve alike: attention, linear attention, norms, the MoE blocks but their dense width and renormalisation. */
export function qwen3NextConfigPart(family: FamilyName, p: ParsedQwen3NextKeys, raw: Record<string, unknown>, label: string) {
  const base = llamaConfigPart(family, p, raw, 10000);
  const factor = checkedPartialRotaryFactor(raw, DEFAULT_PARTIAL_ROTARY_FACTOR, label);
  return {
    ...base,
    headDim: p.head_dim,
    // transformers: int(head_dim * partial_rotary_factor)
    rotaryDim: Math.trunc(p.head_dim * factor),
    linearAttention: linearAttentionOf(p, label),
    queryGate: true,
    zeroCentredNorms: true,
    numExperts: p.num_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.moe_intermediate_size,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: p.shared_expert_intermediate_size,
    sharedExpertGated: true,
    qkvBias: false,
    qkNorm: 'per-head' as const,
    attention: 'standard' as const,
  };
}

const linearAttn = 'model.layers.{l}.linear_attn';

/** The tensor names both families share: Qwen2-MoE's MoE blocks, gated attention with q/k norms, a Gated DeltaNet's tensors but its input projections. */
export function qwen3NextNames(inProj: LinearInputNames) {
  return {
    ...llamaNames,
    attention: { ...llamaNames.attention, ...qkNormNames },
    linear: {
      inProj,
      conv1d: `${linearAttn}.conv1d.weight`,
      dtBias: `${linearAttn}.dt_bias`,
      aLog: `${linearAttn}.A_log`,
      norm: `${linearAttn}.norm.weight`,
      outProj: `${linearAttn}.out_proj.weight`,
    },
    router: mlpRouterName,
    expert: projExpertNames,
    fused: fusedExpertNames,
    ...qwen2SharedExpertNames,
    dense: denseMlpNames,
  };
}

export const qwen3Next = defineFamily({
  family: 'qwen3_next',
  label: LABEL,
  modelTypes: ['qwen3_next'],
  configSchema,
  normalize: (p, raw) => ({
    ...qwen3NextConfigPart('qwen3_next', p, raw, LABEL),
    denseIntermediateSize: p.intermediate_size,
    normTopkProb: p.norm_topk_prob,
  }),
  isMoeLayer: (p, l) => !(p.mlp_only_layers ?? []).includes(l) && p.num_experts > 0 && (l + 1) % p.decoder_sparse_step === 0,
  names: qwen3NextNames({ qkvz: `${linearAttn}.in_proj_qkvz.weight`, ba: `${linearAttn}.in_proj_ba.weight` }),
});
