/**
 * Schema pieces and normalisation helpers shared by the Llama-style families. Each family passes
 * its own transformers defaults; the key names here are the ones every family below uses.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import type { FamilyName, ModelConfig } from '../types.js';
import { partialRotaryFactor } from '../rope-scaling.js';

export const positiveInt = z.number().int().positive();
export const nonNegativeInt = z.number().int().nonnegative();
/** token ids may be a number, a list (several EOS ids) or null */
export const tokenId = z.union([z.number().int(), z.array(z.number().int()), z.null()]);

/** Experts are SwiGLU (`down(silu(gate(x)) * up(x))`); any other activation is rejected by name. */
export const siluActivation = z.literal('silu', { error: "hidden_act must be 'silu' (experts are SwiGLU); other activations are not supported" });

/** This project runs attention without projection biases except where a family hard-codes them. */
export const noAttentionBias = z.literal(false, { error: 'attention_bias: true is not supported for this family (no released checkpoint uses it)' });

export interface LlamaDefaults {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** null: same as num_attention_heads */
  num_key_value_heads: number | null;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  pad_token_id: number | null;
  bos_token_id: number | null;
  eos_token_id: number | null;
}

/** Keys of the Llama-style decoder every family shares, with the family's defaults. */
export function llamaKeys(d: LlamaDefaults) {
  return {
    model_type: z.string(),
    vocab_size: positiveInt.default(d.vocab_size),
    hidden_size: positiveInt.default(d.hidden_size),
    num_hidden_layers: positiveInt.default(d.num_hidden_layers),
    num_attention_heads: positiveInt.default(d.num_attention_heads),
    num_key_value_heads: positiveInt.nullable().default(d.num_key_value_heads),
    /** absent or null: hidden_size / num_attention_heads */
    head_dim: positiveInt.nullable().optional(),
    hidden_act: siluActivation.default('silu'),
    rms_norm_eps: z.number().positive().default(d.rms_norm_eps),
    /** transformers ≥ 5 moves rope_theta into rope_parameters; see ropeTheta() */
    rope_theta: z.number().positive().optional(),
    rope_parameters: z.looseObject({ rope_theta: z.number().positive().optional() }).nullable().optional(),
    tie_word_embeddings: z.boolean().default(d.tie_word_embeddings),
    pad_token_id: tokenId.default(d.pad_token_id),
    bos_token_id: tokenId.default(d.bos_token_id),
    eos_token_id: tokenId.default(d.eos_token_id),
  };
}

export interface ParsedLlamaKeys {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number | null;
  head_dim?: number | null;
  rms_norm_eps: number;
  rope_theta?: number;
  rope_parameters?: { rope_theta?: number } | null;
  tie_word_embeddings: boolean;
  pad_token_id: number | number[] | null;
  bos_token_id: number | number[] | null;
  eos_token_id: number | number[] | null;
}

/** The first id of a token-id key (lists name several EOS ids; the first is the canonical one). */
function firstTokenId(id: number | number[] | null): number | null {
  if (Array.isArray(id)) return id.length > 0 ? id[0] : null;
  return id;
}

/** Every id of a token-id key, without repeats. */
export function allTokenIds(id: number | readonly number[] | null | undefined): number[] {
  if (id === null || id === undefined) return [];
  return [...new Set(Array.isArray(id) ? id : [id as number])];
}

/** The attention/embedding part of ModelConfig; the family fills in the MoE part. */
export function llamaConfigPart(
  family: FamilyName,
  p: ParsedLlamaKeys,
  raw: Record<string, unknown>,
  defaultRopeTheta: number,
): Pick<
  ModelConfig,
  | 'family'
  | 'modelType'
  | 'hiddenSize'
  | 'numLayers'
  | 'numHeads'
  | 'numKvHeads'
  | 'headDim'
  | 'vocabSize'
  | 'rmsNormEps'
  | 'ropeTheta'
  | 'tieWordEmbeddings'
  | 'padTokenId'
  | 'bosTokenId'
  | 'eosTokenId'
  | 'eosTokenIds'
  | 'samplingDefaults'
  | 'raw'
> {
  return {
    family,
    modelType: p.model_type,
    hiddenSize: p.hidden_size,
    numLayers: p.num_hidden_layers,
    numHeads: p.num_attention_heads,
    numKvHeads: p.num_key_value_heads ?? p.num_attention_heads,
    headDim: p.head_dim ?? Math.floor(p.hidden_size / p.num_attention_heads),
    vocabSize: p.vocab_size,
    rmsNormEps: p.rms_norm_eps,
    // transformers ≥ 5 moves a top-level rope_theta into rope_parameters only where that has none
    ropeTheta: p.rope_parameters?.rope_theta ?? p.rope_theta ?? defaultRopeTheta,
    tieWordEmbeddings: p.tie_word_embeddings,
    padTokenId: firstTokenId(p.pad_token_id),
    bosTokenId: firstTokenId(p.bos_token_id),
    eosTokenId: firstTokenId(p.eos_token_id),
    eosTokenIds: allTokenIds(p.eos_token_id),
    samplingDefaults: {},
    raw,
  };
}

/** Tensor names every Llama-style family shares. */
export const llamaNames = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  // Llama's placement: a norm on each sublayer's input
  norms: {
    attentionInput: 'model.layers.{l}.input_layernorm.weight',
    mlpInput: 'model.layers.{l}.post_attention_layernorm.weight',
  },
  attention: {
    q: 'model.layers.{l}.self_attn.q_proj.weight',
    k: 'model.layers.{l}.self_attn.k_proj.weight',
    v: 'model.layers.{l}.self_attn.v_proj.weight',
    o: 'model.layers.{l}.self_attn.o_proj.weight',
  },
} as const;

/** q/k/v projection biases (Qwen2-MoE, GLM-4.5), used where the config asks for them */
export const qkvBiasNames = {
  qBias: 'model.layers.{l}.self_attn.q_proj.bias',
  kBias: 'model.layers.{l}.self_attn.k_proj.bias',
  vBias: 'model.layers.{l}.self_attn.v_proj.bias',
} as const;

/** q/k RMSNorm weights (Qwen3-MoE and GLM-4.5 per head, OLMoE over the whole projection), used where the config asks for them */
export const qkNormNames = {
  qNorm: 'model.layers.{l}.self_attn.q_norm.weight',
  kNorm: 'model.layers.{l}.self_attn.k_norm.weight',
} as const;

/** `mlp.experts.{e}.{gate,up,down}_proj` (Qwen, OLMoE, DeepSeek) */
export const projExpertNames = {
  gate: 'model.layers.{l}.mlp.experts.{e}.gate_proj.weight',
  up: 'model.layers.{l}.mlp.experts.{e}.up_proj.weight',
  down: 'model.layers.{l}.mlp.experts.{e}.down_proj.weight',
} as const;

/** transformers ≥ 5 fused experts (no `.weight` suffix: they are bare nn.Parameters) */
export const fusedExpertNames = {
  gateUp: 'model.layers.{l}.mlp.experts.gate_up_proj',
  down: 'model.layers.{l}.mlp.experts.down_proj',
} as const;

export const mlpRouterName = 'model.layers.{l}.mlp.gate.weight';

/** dense MLP of non-MoE layers: `mlp.{gate,up,down}_proj` */
export const denseMlpNames = {
  gate: 'model.layers.{l}.mlp.gate_proj.weight',
  up: 'model.layers.{l}.mlp.up_proj.weight',
  down: 'model.layers.{l}.mlp.down_proj.weight',
} as const;

/** `mlp_layer_types` ("dense"/"sparse" per layer), or the first first_k_dense_replace layers dense and the rest MoE. */
export const mlpLayerTypesKey = z.array(z.enum(['dense', 'sparse'])).nullable().default(null);

export function mlpLayerTypes(p: { mlp_layer_types: readonly ('dense' | 'sparse')[] | null; first_k_dense_replace: number; num_hidden_layers: number }, label: string): readonly ('dense' | 'sparse')[] {
  if (p.mlp_layer_types === null) return Array.from({ length: p.num_hidden_layers }, (_, l) => (l < p.first_k_dense_replace ? 'dense' : 'sparse'));
  if (p.mlp_layer_types.length !== p.num_hidden_layers)
    throw new CheckpointError('InvalidConfig', `config.json key 'mlp_layer_types': ${p.mlp_layer_types.length} entries for num_hidden_layers ${p.num_hidden_layers} (${label} config); fix config.json`);
  return p.mlp_layer_types;
}

/**
 * The partial_rotary_factor a config gives (its RoPE block's, else the top level's), else the
 * family's default as transformers fills it in; refused unless a number in (0, 1].
 */
export function checkedPartialRotaryFactor(raw: Record<string, unknown>, defaultFactor: number, label: string): number {
  const factor = partialRotaryFactor(raw) ?? defaultFactor;
  if (typeof factor !== 'number' || !(factor > 0 && factor <= 1))
    throw new CheckpointError('InvalidConfig', `config.json key 'partial_rotary_factor': must be a number in (0, 1], got ${JSON.stringify(factor)} (${label} config); fix config.json`);
  return factor;
}

/**
 * A count transformers 5 keeps under one name and reads under another too (its config's
 * attribute_map): Qwen3-MoE's releases write num_experts, transformers 5 saves num_local_experts.
 * Either is read; both, disagreeing, are refused.
 */
export function aliasedCount(canonical: string, alias: string, parsed: { canonical?: number; alias?: number }, fallback: number, label: string): number {
  if (parsed.canonical !== undefined && parsed.alias !== undefined && parsed.canonical !== parsed.alias)
    throw new CheckpointError('InvalidConfig', `config.json sets both '${canonical}' (${parsed.canonical}) and '${alias}' (${parsed.alias}), which transformers reads as one value; keep one (${label} config)`);
  return parsed.canonical ?? parsed.alias ?? fallback;
}

/** Qwen2-MoE's shared expert and its sigmoid gate, which Qwen3-Next and Qwen3.5-MoE keep under the same names. */
export const qwen2SharedExpertNames = {
  shared: {
    gate: 'model.layers.{l}.mlp.shared_expert.gate_proj.weight',
    up: 'model.layers.{l}.mlp.shared_expert.up_proj.weight',
    down: 'model.layers.{l}.mlp.shared_expert.down_proj.weight',
  },
  sharedGate: 'model.layers.{l}.mlp.shared_expert_gate.weight',
} as const;

/** DeepSeek's always-on shared experts (mlp.shared_experts), under the same names in ERNIE-4.5, AFMoE and Cohere2-MoE. */
export const sharedExpertsNames = {
  gate: 'model.layers.{l}.mlp.shared_experts.gate_proj.weight',
  up: 'model.layers.{l}.mlp.shared_experts.up_proj.weight',
  down: 'model.layers.{l}.mlp.shared_experts.down_proj.weight',
} as const;
