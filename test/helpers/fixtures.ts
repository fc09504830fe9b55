/**
 * Tiny random Hugging Face MoE checkpoints, generated at test time (no committed binaries).
 *
 * `makeTinyCheckpoint(dir, family, opts)` writes `config.json` with the family's REAL key names and
 * every tensor with its exact HF name and `[out, in]` shape, as `save_pretrained` would:
 *
 * | family      | MoE layers (defaults)                  | extras                                          |
 * |-------------|----------------------------------------|-------------------------------------------------|
 * | mixtral     | all 2                                  | block_sparse_moe.experts.{e}.w1/w3/w2            |
 * | qwen2_moe   | 0 and 2 of 3 (mlp_only_layers [1])     | q/k/v biases, shared_expert + shared_expert_gate |
 * | qwen3_moe   | all 2                                  | head_dim 12 ≠ 32/4, per-head q_norm/k_norm [12]  |
 * | qwen3_next  | 0 and 2 of 3 (mlp_only_layers [1])     | Gated DeltaNet layers 0 and 2 (linear_attn: 2 key heads of 8, 4 value heads of 6, conv kernel 4), gated full attention on layer 1 (full_attention_interval 2: q_proj emits query and gate, head_dim 16, RoPE over 4), zero-centred norms, shared_expert + shared_expert_gate |
 * | qwen3_5_moe_text | all 3                             | qwen3_next's but the linear layers' input projections apart (in_proj_qkv in the convolution's order, in_proj_z, in_proj_b, in_proj_a), every layer MoE, always renormalised |
 * | olmoe       | all 2                                  | whole-projection q_norm [H·…]/k_norm             |
 * | deepseek    | 1 and 2 of 3 (first_k_dense_replace 1) | shared_experts (2 × expert width), dense layer 0 |
 * | deepseek_v2 | 1 and 2 of 3 (first_k_dense_replace 1) | as deepseek + MLA attention, routed_scaling_factor |
 * | deepseek_v3 | 1 and 2 of 3 (first_k_dense_replace 1) | as deepseek_v2 + sigmoid routing with e_score_correction_bias (noaux_tc, 4 groups of 2, 2 kept) |
 * | granitemoe  | all 2                                  | experts fused only (block_sparse_moe.input_linear [E, 2I, H], output_linear [E, H, I], router.layer), embedding/residual/attention multipliers and logits scaling |
 * | granitemoeshared | all 2                             | as granitemoe, and a shared MLP fused as the experts are (shared_mlp.input_linear [2S, H], output_linear [H, S]; S 24, none at 0) |
 * | granitemoe_swa | all 3                               | as granitemoeshared with the router and experts under transformers' module names (block_sparse_moe.router, experts.gate_up_proj [E, 2I, H], experts.down_proj [E, H, I]), a sink logit per head (self_attn.sinks), a window of 5 on layers 1 and 2 (transformers' default layer_types), no shared MLP unless given |
 * | glm4_moe    | 1 and 2 of 3 (first_k_dense_replace 1) | GQA with q/k/v biases, per-head q_norm/k_norm, head_dim 16 ≠ 32/4 with RoPE over its first half (partial_rotary_factor 0.5), deepseek_v3's routing (1 group) and one shared expert |
 * | hunyuan_v1_moe | all 2 | per-head q/k norms after RoPE (query_layernorm, key_layernorm), RoPE "dynamic" with alpha 1000.5, an always-on shared MLP |
 * | ernie4_5_moe | 1 and 2 of 3 (moe_layer_start_index 1) | interleaved RoPE pairs, softmax routing choosing on probability + moe_statics bias [1, E], two shared experts |
 * | glm4_moe_lite | 1 and 2 of 3 (mlp_layer_types, or its default) | deepseek_v3's tensors and routing under GLM's name |
 * | deepseek_v32 | 1 and 2 of 3 (first_k_dense_replace 1) | deepseek_v3's tensors with q-LoRA (rank 6), and a sparse-attention indexer per layer (self_attn.indexer.wq_b/wk/k_norm/weights_proj; index_topk 32, 2 heads of 8 unless given) |
 * | exaone_moe  | 1 and 2 of 3 (first_k_dense_replace 1) | per-head q_norm/k_norm (head_dim 12), a window of 5 on layers 0 and 2 and no RoPE on global layer 1 (sliding_window_pattern 2), deepseek_v3's routing (1 group) with mlp.e_score_correction_bias (fused: mlp.gate.…), one shared expert |
 * | flex_olmo   | all 2                                  | OLMoE's whole-projection q_norm/k_norm, no input_layernorm, post_attention_layernorm and post_feedforward_layernorm on the sublayers' outputs |
 * | mistral4    | 1 and 2 of 3 (first_k_dense_replace 1) | deepseek_v3's tensors without the correction bias (softmax routing, 1 group unless given), one shared expert, rope_parameters: YaRN over original_max_position_embeddings 4 with llama_4_scaling_beta 0.1 (the query scaling steps every 4 positions) |
 * | glm_moe_dsa | 1 and 2 of 3 (first_k_dense_replace 1) | as deepseek_v32 under GLM's name (1 group), indexers only on the layers indexer_types marks "full" |
 * | dots1       | 1 and 2 of 3 (first_k_dense_replace 1) | Qwen3's per-head q_norm/k_norm (head_dim 12), deepseek_v3's routing with its correction bias (4 groups of 2, 2 kept), one shared expert |
 * | gpt_oss     | all 2                                  | q/k/v/o biases, sinks, window 5 on layer 0, YaRN, router bias, experts fused transposed (gate_up [E, H, 2I] gate/up interleaved, down [E, I, H]) with biases |
 * | solar_open  | all 2                                  | glm4_moe's routing (1 group), shared expert and tensor names; no q/k norm, no attention biases unless attentionBias, RoPE over whole heads |
 * | axk1        | 1 and 2 of 3 (first_k_dense_replace 1) | deepseek_v3's with q-LoRA (rank 6) and post_mlp_layernorm on the MoE layers' outputs |
 * | hy_v3       | 1 and 2 of 3 (mlp_layer_types' default) | per-head q_norm/k_norm (head_dim 12), sigmoid routing with a choice bias (1 group), one shared expert; the releases' names per expert (mlp.router.gate, mlp.expert_bias, mlp.shared_mlp), transformers' fused |
 * | cohere2_moe | 1 to 3 of 4 (first_k_dense_replace 1)  | one LayerNorm a layer (input_layernorm, a weight and no bias) read by the attention and the MLP in parallel, and the final one; GQA (head_dim 12), a window of 5 on layers 1 and 3 (sliding_window_pattern 2) with interleaved RoPE there and in dense layer 0 (force_rope), none in layer 2; top-k softmax routing (mlp.gate), one shared expert averaged with the routed sum (mlp.shared_experts), logit_scale 0.25; q/k/v/o biases with attentionBias |
 * | phimoe      | all 2                                  | Mixtral's names, nn.LayerNorms with a weight and a bias (input_layernorm, post_attention_layernorm, model.norm), q/k/v/o biases and lm_head.bias unless attentionBias false, sparsemixer routing (router_jitter_noise 0.01), longrope with short_factor, short_mscale = long_mscale 1.2; fused: mlp.router.weight |
 * | afmoe       | 1 and 2 of 3 (num_dense_layers 1)      | input_layernorm, post_attention_layernorm (attention output), pre_mlp_layernorm, post_mlp_layernorm (MLP output); per-head q_norm/k_norm (head_dim 12), self_attn.gate_proj on the heads' output, window 5 on layers 0 and 2 and no RoPE on global layer 1 (global_attn_every_n_layers 2), sigmoid routing with mlp.router.gate and mlp.expert_bias, route_scale, one shared expert (mlp.shared_experts), mup_enabled |
 * | qwen3_vl_moe_text | all 2                             | qwen3_moe's tensors; fused in the releases' transposed form (gate_up [E, H, 2I] gate columns first, down [E, I, H]) |
 * | glm4v_moe_text | 1 and 2 of 3 (first_k_dense_replace 1) | glm4_moe's without q/k norms |
 * | mimo_v2_flash | 1 and 2 of 3 (mlp_layer_types' default) | sliding layers 1 and 2 (window 5, transformers' default layer_types) with twice the kv heads and a sink per head (self_attn.attention_sink_bias; fused: self_attn.sinks), head_dim 12 with its first 4 rotated, a RoPE base per layer type, v_head_dim 8 scaled by attention_value_scale 0.6, deepseek_v3's routing (1 group) without shared experts |
 * | minimax_m2  | all 2                                  | GQA with q_norm/k_norm over the whole projections, head_dim 16 ≠ 32/4 with RoPE over its first 8 (rotary_dim), sigmoid routing with block_sparse_moe.e_score_correction_bias (noaux_tc, 1 group), Mixtral's names |
 * | llama4_text | 1 and 3 of 4 (interleave_moe_layer_step 2) | RoPE (interleaved pairs) with a weightless q/k norm and chunks of 4 positions in layers 0-2, NoPE layer 3 with its queries scaled every 3 positions (floor_scale 3, attn_scale 0.5), top-k sigmoid routing (feed_forward.router) on the experts' inputs, a shared expert, experts fused transposed (gate_up [E, H, 2I] gate columns first, down [E, I, H]), dense feed_forward MLPs of intermediate_size_mlp |
 *
 * Defaults: hidden 32, 8 experts, top-2, expert width 16, vocab 64, 4 heads, 2 kv heads (MLA: 4),
 * dense width 24, Qwen2 shared width 20.
 *
 * Values are seeded normals scaled by 1/sqrt(fan_in) (norm weights 1 + 0.1·N, biases 0.05·N), so a
 * forward pass stays finite. Each tensor's values depend only on (seed, the tensor's per-expert HF
 * name): the fused form (`fusedExperts: true`: `mlp.experts.gate_up_proj [E, 2I, H]` with gate rows
 * first and `mlp.experts.down_proj [E, H, I]`, and Mixtral's router renamed to `mlp.gate`) holds
 * exactly the same expert matrices as the per-expert form of the same seed.
 *
 * The names and shapes here are written out independently of src/checkpoint on purpose: they are
 * the truth the checkpoint code is tested against.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { writeFileAtomic } from '../../src/io/atomic.js';
import { ShardedWriter } from '../../src/io/sharded.js';
import { Rng } from './rng.js';

export type FixtureDType = 'F32' | 'BF16' | 'F16';

export interface TinyCheckpointOptions {
  /** seed of every tensor's values (default 0) */
  seed?: number;
  /** storage dtype of every tensor (default F32) */
  dtype?: FixtureDType;
  /** split into `model-0000i-of-0000n.safetensors` shards + index when set (default: one file) */
  maxShardBytes?: number;
  /** store routed experts in the transformers ≥ 5 fused form (default false) */
  fusedExperts?: boolean;
  /** decoder layers (default 2; 3 for qwen2_moe, deepseek, deepseek_v2) */
  numLayers?: number;
  /** routed experts per MoE layer (default 8) */
  numExperts?: number;
  /** experts per token (default 2) */
  topK?: number;
  /** hidden size H (default 32) */
  hiddenSize?: number;
  /** routed expert width I (default 16) */
  expertIntermediateSize?: number;
  /** vocabulary size V (default 64) */
  vocabSize?: number;
  /** tie lm_head to the embeddings: no lm_head.weight is written (default false) */
  tieWordEmbeddings?: boolean;
  /** attention heads (default 4) */
  numHeads?: number;
  /** key/value heads (default 2; deepseek_v2: numHeads) */
  numKvHeads?: number;
  /** width of dense MLP layers (qwen2_moe, qwen3_moe, deepseek*; default 24) */
  denseIntermediateSize?: number;
  /** qwen2_moe: shared_expert_intermediate_size (default 20); granitemoeshared / granitemoe_swa: shared_intermediate_size (default 24 / 0) */
  sharedExpertIntermediateSize?: number;
  /** deepseek*: n_shared_experts (default 2); glm4_moe, mistral4: (default 1); hy_v3, afmoe, cohere2_moe: num_shared_experts (default 1) */
  numSharedExperts?: number;
  /** qwen2_moe / qwen3_moe: mlp_only_layers (default [1] for qwen2_moe, [] for qwen3_moe) */
  mlpOnlyLayers?: number[];
  /** qwen2_moe / qwen3_moe: decoder_sparse_step (default 1) */
  decoderSparseStep?: number;
  /** deepseek*, cohere2_moe: first_k_dense_replace (default 1); afmoe: num_dense_layers (default 1) */
  firstKDenseReplace?: number;
  /** deepseek*: moe_layer_freq (default 1) */
  moeLayerFreq?: number;
  /** qwen2_moe / qwen3_moe / olmoe: norm_topk_prob (defaults as the real models: false, true, false) */
  normTopkProb?: boolean;
  /** qwen3_moe / glm4_moe / minimax_m2: head_dim (default 12 / 16 / 16, deliberately ≠ hidden / heads) */
  headDim?: number;
  /** deepseek_v2: routed_scaling_factor (default 1.0, as V2-Lite) */
  routedScalingFactor?: number;
  /** deepseek_v2: q_lora_rank (default null: one q_proj, as V2-Lite) */
  qLoraRank?: number | null;
  /** deepseek_v2: MLA widths (default kv_lora_rank 8, qk_nope 8, qk_rope 4, v 8) */
  mla?: { kvLoraRank: number; nope: number; rope: number; v: number };
  /** deepseek_v3: rope_interleave (default true, as the released configs) */
  ropeInterleave?: boolean;
  /** deepseek_v2: topk_method with n_group and topk_group (default greedy, 1 and 1, as V2-Lite); deepseek_v3 / glm4_moe / mistral4: n_group and topk_group */
  topkMethod?: { method: 'greedy' | 'group_limited_greedy'; nGroup: number; topkGroup: number };
  /** config.json's rope_scaling, any family (default: none) */
  ropeScaling?: Record<string, unknown>;
  /** mistral4: keys written over its rope_parameters (default: YaRN factor 4.5 over original_max_position_embeddings 4, llama_4_scaling_beta 0.1) */
  ropeParameters?: Record<string, unknown>;
  /** further config.json keys, any family, written over the family's (sliding windows, say) */
  configKeys?: Record<string, unknown>;
  /** glm4_moe: partial_rotary_factor (default 0.5, as GLM-4.5) */
  partialRotaryFactor?: number;
  /** minimax_m2: rotary_dim (default head_dim / 2, as MiniMax-M2's 64 of 128) */
  rotaryDim?: number;
  /** solar_open: attention_bias, q/k/v biases (default false, as Solar-Open-100B); cohere2_moe: q/k/v/o biases (default false); phimoe: q/k/v/o biases and lm_head's (default true, as Phi-3.5-MoE) */
  attentionBias?: boolean;
  /** glm4_moe, llama4_text: use_qk_norm (default true, as GLM-4.5 and Llama 4 Scout; GLM-4.5-Air and Maverick have false) */
  useQkNorm?: boolean;
  /** deepseek_v32 / glm_moe_dsa: index_topk (default 32), index_n_heads (2), index_head_dim (8) */
  indexer?: { topK?: number; heads?: number; headDim?: number };
  /** glm_moe_dsa: indexer_types, "full" or "shared" per layer (default: every layer full, as transformers' schedule gives) */
  indexerTypes?: ('full' | 'shared')[];
  /** llama4_text: interleave_moe_layer_step (default 2) */
  interleaveMoeLayerStep?: number;
  /** granitemoe (and granitemoeshared, granitemoe_swa): embedding_multiplier, residual_multiplier, attention_multiplier, logits_scaling (default granite-3.0-1b-a400m's 12, 0.22, 0.015625, 6) */
  multipliers?: { embedding: number; residual: number; attention: number; logits: number };
}

export interface FixtureTensor {
  name: string;
  dtype: FixtureDType;
  shape: number[];
}

export interface TinyCheckpoint {
  dir: string;
  /** the config.json written */
  config: Record<string, unknown>;
  /** every tensor written, in write order */
  tensors: FixtureTensor[];
}

/** How a tensor's values are drawn. */
type Init = 'linear' | 'norm' | 'bias' | 'embedding';

interface TensorSpec {
  name: string;
  shape: number[];
  /** produce the values (already scaled); called once, at write time */
  values: () => Float32Array;
}

const TORCH_DTYPE: Record<FixtureDType, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** Resolved sizes, shared by every family builder. */
interface Dims {
  seed: number;
  L: number;
  E: number;
  K: number;
  H: number;
  I: number;
  V: number;
  heads: number;
  kvHeads: number;
  dense: number;
  tied: boolean;
  fused: boolean;
}

function drawValues(seed: number, label: string, shape: number[], init: Init): Float32Array {
  const rng = Rng.forLabel(seed, label);
  const n = shape.reduce((a, b) => a * b, 1);
  const fanIn = shape[shape.length - 1];
  switch (init) {
    case 'norm':
      return rng.normalArray(n, 0.1, 1);
    case 'bias':
      return rng.normalArray(n, 0.05);
    case 'linear':
    case 'embedding':
      return rng.normalArray(n, 1 / Math.sqrt(fanIn));
  }
}

/** A tensor whose values are seeded by its own name (or by `label`, to match another form). */
function tensor(d: Dims, name: string, shape: number[], init: Init, label = name): TensorSpec {
  return { name, shape, values: () => drawValues(d.seed, label, shape, init) };
}

const P = (l: number) => `model.layers.${l}`;

function norms(d: Dims, l: number): TensorSpec[] {
  return [
    tensor(d, `${P(l)}.input_layernorm.weight`, [d.H], 'norm'),
    tensor(d, `${P(l)}.post_attention_layernorm.weight`, [d.H], 'norm'),
  ];
}

/** q/k/v/o of grouped-query attention with head width `headDim`. */
function gqaAttention(d: Dims, l: number, headDim: number): TensorSpec[] {
  const a = `${P(l)}.self_attn`;
  return [
    tensor(d, `${a}.q_proj.weight`, [d.heads * headDim, d.H], 'linear'),
    tensor(d, `${a}.k_proj.weight`, [d.kvHeads * headDim, d.H], 'linear'),
    tensor(d, `${a}.v_proj.weight`, [d.kvHeads * headDim, d.H], 'linear'),
    tensor(d, `${a}.o_proj.weight`, [d.H, d.heads * headDim], 'linear'),
  ];
}

function mlp(d: Dims, prefix: string, gate: string, up: string, down: string, width: number): TensorSpec[] {
  return [
    tensor(d, `${prefix}.${gate}.weight`, [width, d.H], 'linear'),
    tensor(d, `${prefix}.${up}.weight`, [width, d.H], 'linear'),
    tensor(d, `${prefix}.${down}.weight`, [d.H, width], 'linear'),
  ];
}

/**
 * Routed experts of one layer, per expert (`{prefix}.experts.{e}.{gate}.weight`) or fused
 * (`model.layers.{l}.mlp.experts.gate_up_proj` / `down_proj`, assembled from the same matrices).
 */
function routedExperts(d: Dims, l: number, prefix: string, gate: string, up: string, down: string): TensorSpec[] {
  const expertName = (e: number, m: string) => `${prefix}.experts.${e}.${m}.weight`;
  if (!d.fused) {
    const out: TensorSpec[] = [];
    for (let e = 0; e < d.E; e++) out.push(...mlp(d, `${prefix}.experts.${e}`, gate, up, down, d.I));
    return out;
  }
  return fusedExperts(d, `${P(l)}.mlp.experts.gate_up_proj`, `${P(l)}.mlp.experts.down_proj`, (e, m) => expertName(e, { gate, up, down }[m]));
}

/**
 * The experts of one layer fused: gate_up [E, 2I, H] (each expert's gate rows, then its up rows)
 * and down [E, H, I], each expert's matrices drawn by the label `label` gives them (the per-expert
 * name, so the fused form holds the per-expert form's values).
 */
function fusedExperts(d: Dims, gateUpName: string, downName: string, label: (e: number, m: 'gate' | 'up' | 'down') => string): TensorSpec[] {
  const block = d.I * d.H;
  const draw = (e: number, m: 'gate' | 'up' | 'down', shape: number[]) => drawValues(d.seed, label(e, m), shape, 'linear');
  const gateUp = (): Float32Array => {
    const out = new Float32Array(d.E * 2 * block);
    for (let e = 0; e < d.E; e++) {
      out.set(draw(e, 'gate', [d.I, d.H]), 2 * e * block);
      out.set(draw(e, 'up', [d.I, d.H]), (2 * e + 1) * block);
    }
    return out;
  };
  const down = (): Float32Array => {
    const out = new Float32Array(d.E * block);
    for (let e = 0; e < d.E; e++) out.set(draw(e, 'down', [d.H, d.I]), e * block);
    return out;
  };
  return [
    { name: gateUpName, shape: [d.E, 2 * d.I, d.H], values: gateUp },
    { name: downName, shape: [d.E, d.H, d.I], values: down },
  ];
}

/** `t` with its values multiplied by `by` */
function scaled(t: TensorSpec, by: number): TensorSpec {
  return { ...t, values: () => t.values().map((v) => v * by) };
}

function embeddingsAndHead(d: Dims, layers: TensorSpec[]): TensorSpec[] {
  const out = [tensor(d, 'model.embed_tokens.weight', [d.V, d.H], 'embedding'), ...layers, tensor(d, 'model.norm.weight', [d.H], 'norm')];
  if (!d.tied) out.push(tensor(d, 'lm_head.weight', [d.V, d.H], 'linear'));
  return out;
}

interface FamilyFixture {
  config: Record<string, unknown>;
  tensors: TensorSpec[];
}

function mixtralFixture(d: Dims): FamilyFixture {
  const config = {
    architectures: ['MixtralForCausalLM'],
    model_type: 'mixtral',
    hidden_size: d.H,
    intermediate_size: d.I,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    num_local_experts: d.E,
    num_experts_per_tok: d.K,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 1e6,
    sliding_window: null,
    router_aux_loss_coef: 0.02,
    router_jitter_noise: 0,
    attention_dropout: 0,
    tie_word_embeddings: d.tied,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const layers: TensorSpec[] = [];
  const headDim = d.H / d.heads;
  for (let l = 0; l < d.L; l++) {
    const moe = `${P(l)}.block_sparse_moe`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    // transformers ≥ 5 renames the router when it fuses the experts; same values either way
    const router = d.fused ? `${P(l)}.mlp.gate.weight` : `${moe}.gate.weight`;
    layers.push(tensor(d, router, [d.E, d.H], 'linear', `${moe}.gate.weight`));
    layers.push(...routedExperts(d, l, moe, 'w1', 'w3', 'w2'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

function qwen2MoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const mlpOnly = o.mlpOnlyLayers ?? [1];
  const step = o.decoderSparseStep ?? 1;
  const shared = o.sharedExpertIntermediateSize ?? 20;
  const config = {
    architectures: ['Qwen2MoeForCausalLM'],
    model_type: 'qwen2_moe',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    shared_expert_intermediate_size: shared,
    num_experts: d.E,
    num_experts_per_tok: d.K,
    norm_topk_prob: o.normTopkProb ?? false,
    decoder_sparse_step: step,
    mlp_only_layers: mlpOnly,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    max_window_layers: d.L,
    use_sliding_window: false,
    sliding_window: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    router_aux_loss_coef: 0.001,
    tie_word_embeddings: d.tied,
    bos_token_id: d.V - 1,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  const headDim = d.H / d.heads;
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(
      tensor(d, `${a}.q_proj.bias`, [d.heads * headDim], 'bias'),
      tensor(d, `${a}.k_proj.bias`, [d.kvHeads * headDim], 'bias'),
      tensor(d, `${a}.v_proj.bias`, [d.kvHeads * headDim], 'bias'),
    );
    const isMoe = !mlpOnly.includes(l) && (l + 1) % step === 0;
    if (!isMoe) {
      layers.push(...mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
    layers.push(...mlp(d, `${P(l)}.mlp.shared_expert`, 'gate_proj', 'up_proj', 'down_proj', shared));
    layers.push(tensor(d, `${P(l)}.mlp.shared_expert_gate.weight`, [1, d.H], 'linear'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * Qwen3-Next (qwen3_next): Gated DeltaNet layers (linear_attn) beside gated full attention every
 * full_attention_interval-th layer (2: layer 1 of 3); 2 key heads of 8 and 4 value heads of 6 (two
 * value heads a key head, as the releases' 16 and 32), a conv kernel of 4; the attention's q_proj
 * emits each head's query and gate (head_dim 16, a quarter rotated); zero-centred norms (drawn
 * near 0) but the gated one; Qwen2-MoE's MoE blocks with a shared expert, layer 1 dense
 * (mlp_only_layers [1]).
 */
function qwen3NextFixture(d: Dims, o: TinyCheckpointOptions, family: 'qwen3_next' | 'qwen3_5_moe_text' = 'qwen3_next'): FamilyFixture {
  // Qwen3.5-MoE's language model: every layer MoE, the router always renormalising, no keys for either
  const qwen35 = family === 'qwen3_5_moe_text';
  const mlpOnly = qwen35 ? [] : (o.mlpOnlyLayers ?? [1]);
  const step = qwen35 ? 1 : (o.decoderSparseStep ?? 1);
  const shared = o.sharedExpertIntermediateSize ?? 20;
  const headDim = o.headDim ?? 16;
  const lin = { keyHeads: 2, valueHeads: 4, keyDim: 8, valueDim: 6, kernel: 4 };
  const interval = 2;
  const config = {
    architectures: [qwen35 ? 'Qwen3_5MoeForCausalLM' : 'Qwen3NextForCausalLM'],
    model_type: family,
    hidden_size: d.H,
    ...(qwen35 ? {} : { intermediate_size: d.dense, norm_topk_prob: o.normTopkProb ?? true, decoder_sparse_step: step, mlp_only_layers: mlpOnly }),
    moe_intermediate_size: d.I,
    shared_expert_intermediate_size: shared,
    num_experts: d.E,
    num_experts_per_tok: d.K,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    partial_rotary_factor: o.partialRotaryFactor ?? 0.25,
    full_attention_interval: interval,
    linear_conv_kernel_dim: lin.kernel,
    linear_key_head_dim: lin.keyDim,
    linear_value_head_dim: lin.valueDim,
    linear_num_key_heads: lin.keyHeads,
    linear_num_value_heads: lin.valueHeads,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    attention_bias: false,
    router_aux_loss_coef: 0.001,
    tie_word_embeddings: d.tied,
    bos_token_id: d.V - 1,
    eos_token_id: d.V - 1,
  };
  const listed = o.configKeys?.layer_types as string[] | undefined;
  // zero-centred: the model multiplies by 1 + w
  const zeroNorm = (name: string, width: number) => tensor(d, name, [width], 'bias');
  const keyWidth = lin.keyHeads * lin.keyDim;
  const valueWidth = lin.valueHeads * lin.valueDim;
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    layers.push(zeroNorm(`${P(l)}.input_layernorm.weight`, d.H), zeroNorm(`${P(l)}.post_attention_layernorm.weight`, d.H));
    const full = listed ? listed[l] === 'full_attention' : (l + 1) % interval === 0;
    if (full) {
      const a = `${P(l)}.self_attn`;
      layers.push(
        tensor(d, `${a}.q_proj.weight`, [2 * d.heads * headDim, d.H], 'linear'),
        tensor(d, `${a}.k_proj.weight`, [d.kvHeads * headDim, d.H], 'linear'),
        tensor(d, `${a}.v_proj.weight`, [d.kvHeads * headDim, d.H], 'linear'),
        tensor(d, `${a}.o_proj.weight`, [d.H, d.heads * headDim], 'linear'),
        zeroNorm(`${a}.q_norm.weight`, headDim),
        zeroNorm(`${a}.k_norm.weight`, headDim),
      );
    } else {
      const a = `${P(l)}.linear_attn`;
      if (qwen35) {
        // in the convolution's order: all queries, all keys, all values; then z, b, a apart
        layers.push(
          tensor(d, `${a}.in_proj_qkv.weight`, [2 * keyWidth + valueWidth, d.H], 'linear'),
          tensor(d, `${a}.in_proj_z.weight`, [valueWidth, d.H], 'linear'),
          tensor(d, `${a}.in_proj_b.weight`, [lin.valueHeads, d.H], 'linear'),
          tensor(d, `${a}.in_proj_a.weight`, [lin.valueHeads, d.H], 'linear'),
        );
      } else {
        layers.push(tensor(d, `${a}.in_proj_qkvz.weight`, [2 * keyWidth + 2 * valueWidth, d.H], 'linear'), tensor(d, `${a}.in_proj_ba.weight`, [2 * lin.valueHeads, d.H], 'linear'));
      }
      layers.push(
        tensor(d, `${a}.conv1d.weight`, [2 * keyWidth + valueWidth, 1, lin.kernel], 'linear'),
        tensor(d, `${a}.dt_bias`, [lin.valueHeads], 'norm'),
        tensor(d, `${a}.A_log`, [lin.valueHeads], 'bias'),
        tensor(d, `${a}.norm.weight`, [lin.valueDim], 'norm'),
        tensor(d, `${a}.out_proj.weight`, [d.H, valueWidth], 'linear'),
      );
    }
    const isMoe = !mlpOnly.includes(l) && (l + 1) % step === 0;
    if (!isMoe) {
      layers.push(...mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
    layers.push(...mlp(d, `${P(l)}.mlp.shared_expert`, 'gate_proj', 'up_proj', 'down_proj', shared));
    layers.push(tensor(d, `${P(l)}.mlp.shared_expert_gate.weight`, [1, d.H], 'linear'));
  }
  const out = embeddingsAndHead(d, layers);
  // the final norm is zero-centred too
  return { config, tensors: out.map((t) => (t.name === 'model.norm.weight' ? zeroNorm(t.name, d.H) : t)) };
}

function qwen3MoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const mlpOnly = o.mlpOnlyLayers ?? [];
  const step = o.decoderSparseStep ?? 1;
  const headDim = o.headDim ?? 12;
  const config = {
    architectures: ['Qwen3MoeForCausalLM'],
    model_type: 'qwen3_moe',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    num_experts: d.E,
    num_experts_per_tok: d.K,
    norm_topk_prob: o.normTopkProb ?? true,
    decoder_sparse_step: step,
    mlp_only_layers: mlpOnly,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    max_position_embeddings: 256,
    max_window_layers: d.L,
    use_sliding_window: false,
    sliding_window: null,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    rope_scaling: null,
    router_aux_loss_coef: 0.001,
    tie_word_embeddings: d.tied,
    bos_token_id: d.V - 1,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(tensor(d, `${a}.q_norm.weight`, [headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [headDim], 'norm'));
    const isMoe = !mlpOnly.includes(l) && (l + 1) % step === 0;
    if (!isMoe) {
      layers.push(...mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * Qwen3-VL-MoE's language model (qwen3_vl_moe_text) on its own: Qwen3-MoE's tensors, fused in the
 * releases' transposed form (gate_up [E, H, 2I] gate columns first, down [E, I, H]) when fused.
 */
function qwen3VlMoeTextFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = qwen3MoeFixture({ ...d, fused: false }, o);
  const { norm_topk_prob: _n, use_sliding_window: _u, sliding_window: _s, max_window_layers: _m, rope_scaling: _r, ...config } = built.config;
  const tensors = d.fused ? built.tensors.filter((t) => !/\.mlp\.experts\.\d+\./.test(t.name)) : built.tensors;
  if (d.fused) {
    const step = o.decoderSparseStep ?? 1;
    for (let l = 0; l < d.L; l++) if (!(o.mlpOnlyLayers ?? []).includes(l) && (l + 1) % step === 0) tensors.push(...transposedExperts(d, `${P(l)}.mlp`, 'halves'));
  }
  return { config: { ...config, architectures: ['Qwen3VLMoeTextModel'], model_type: 'qwen3_vl_moe_text' }, tensors };
}

function olmoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const config = {
    architectures: ['OlmoeForCausalLM'],
    model_type: 'olmoe',
    hidden_size: d.H,
    intermediate_size: d.I,
    num_experts: d.E,
    num_experts_per_tok: d.K,
    norm_topk_prob: o.normTopkProb ?? false,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    clip_qkv: null,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    router_aux_loss_coef: 0.01,
    output_router_logits: false,
    tie_word_embeddings: d.tied,
    pad_token_id: 1,
    bos_token_id: null,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  const headDim = d.H / d.heads;
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    // OLMoE normalises the whole q and k projections, before splitting into heads
    layers.push(tensor(d, `${a}.q_norm.weight`, [d.heads * headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [d.kvHeads * headDim], 'norm'));
    layers.push(tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * FlexOlmo (flex_olmo): OLMoE's attention and routing in OLMo 2's layout, no input norm, and the
 * attention's and the MLP's outputs normalised (post_attention_layernorm, post_feedforward_layernorm).
 */
function flexOlmoFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = olmoeFixture(d, o);
  const { clip_qkv: _c, rope_scaling: _r, router_aux_loss_coef: _a, output_router_logits: _o, ...config } = built.config;
  const tensors = built.tensors.filter((t) => !t.name.endsWith('.input_layernorm.weight'));
  for (let l = 0; l < d.L; l++) tensors.push(tensor(d, `${P(l)}.post_feedforward_layernorm.weight`, [d.H], 'norm'));
  return { config: { ...config, architectures: ['FlexOlmoForCausalLM'], model_type: 'flex_olmo', rms_norm_eps: 1e-6, rope_theta: 500000 }, tensors };
}

/**
 * GLM-4.5V's language model (glm4v_moe_text) on its own: GLM-4.5's fixture without q/k norms.
 */
function glm4vMoeTextFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = glm4MoeFixture(d, { ...o, useQkNorm: false });
  const { use_qk_norm: _q, num_nextn_predict_layers: _n, ...config } = built.config;
  return { config: { ...config, architectures: ['Glm4vMoeTextModel'], model_type: 'glm4v_moe_text' }, tensors: built.tensors };
}

/**
 * Solar Open (solar_open): GLM-4.5's MoE block in every layer under Llama's attention: no q/k
 * norm, q/k/v biases only where `attentionBias`, RoPE over whole heads.
 */
function solarOpenFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = glm4MoeFixture(d, { ...o, firstKDenseReplace: 0, useQkNorm: false });
  const {
    intermediate_size: _i,
    first_k_dense_replace: _f,
    use_qk_norm: _q,
    partial_rotary_factor: _p,
    num_nextn_predict_layers: _n,
    ...config
  } = built.config;
  const attentionBias = o.attentionBias ?? false;
  const tensors = attentionBias ? built.tensors : built.tensors.filter((t) => !/\.self_attn\.[qkv]_proj\.bias$/.test(t.name));
  return {
    config: {
      ...config,
      architectures: ['SolarOpenForCausalLM'],
      model_type: 'solar_open',
      attention_bias: attentionBias,
    },
    tensors,
  };
}

/**
 * DeepSeekMoE (v1), DeepSeek-V2 and V3 share the MoE part; V2 swaps attention for MLA; V3 keeps
 * MLA and routes by sigmoid scores with a correction bias (noaux_tc).
 */
function deepseekFixture(d: Dims, o: TinyCheckpointOptions, version: 1 | 2 | 3): FamilyFixture {
  const v2 = version >= 2;
  const firstDense = o.firstKDenseReplace ?? 1;
  const freq = o.moeLayerFreq ?? 1;
  const nShared = o.numSharedExperts ?? 2;
  const mla = { qLoraRank: o.qLoraRank ?? null, ...(o.mla ?? { kvLoraRank: 8, nope: 8, rope: 4, v: 8 }) };
  const config: Record<string, unknown> = {
    architectures: [['DeepseekForCausalLM', 'DeepseekV2ForCausalLM', 'DeepseekV3ForCausalLM'][version - 1]],
    model_type: ['deepseek', 'deepseek_v2', 'deepseek_v3'][version - 1],
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    n_routed_experts: d.E,
    n_shared_experts: nShared,
    num_experts_per_tok: d.K,
    first_k_dense_replace: firstDense,
    moe_layer_freq: freq,
    norm_topk_prob: false,
    scoring_func: 'softmax',
    aux_loss_alpha: 0.001,
    seq_aux: true,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: d.tied,
    bos_token_id: 0,
    eos_token_id: d.V - 1,
  };
  if (version === 3) {
    Object.assign(config, {
      routed_scaling_factor: o.routedScalingFactor ?? 2.5,
      scoring_func: 'sigmoid',
      topk_method: 'noaux_tc',
      norm_topk_prob: true,
      n_group: o.topkMethod?.nGroup ?? 4,
      topk_group: o.topkMethod?.topkGroup ?? 2,
      rope_interleave: o.ropeInterleave ?? true,
      q_lora_rank: mla.qLoraRank,
      kv_lora_rank: mla.kvLoraRank,
      qk_nope_head_dim: mla.nope,
      qk_rope_head_dim: mla.rope,
      v_head_dim: mla.v,
    });
  } else if (v2) {
    Object.assign(config, {
      routed_scaling_factor: o.routedScalingFactor ?? 1.0,
      topk_method: o.topkMethod?.method ?? 'greedy',
      n_group: o.topkMethod?.nGroup ?? 1,
      topk_group: o.topkMethod?.topkGroup ?? 1,
      q_lora_rank: mla.qLoraRank,
      kv_lora_rank: mla.kvLoraRank,
      qk_nope_head_dim: mla.nope,
      qk_rope_head_dim: mla.rope,
      v_head_dim: mla.v,
    });
  }
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l));
    if (!v2) {
      layers.push(...gqaAttention(d, l, d.H / d.heads));
    } else {
      const qHead = mla.nope + mla.rope;
      if (mla.qLoraRank === null) {
        layers.push(tensor(d, `${a}.q_proj.weight`, [d.heads * qHead, d.H], 'linear'));
      } else {
        layers.push(
          tensor(d, `${a}.q_a_proj.weight`, [mla.qLoraRank, d.H], 'linear'),
          tensor(d, `${a}.q_a_layernorm.weight`, [mla.qLoraRank], 'norm'),
          tensor(d, `${a}.q_b_proj.weight`, [d.heads * qHead, mla.qLoraRank], 'linear'),
        );
      }
      layers.push(
        tensor(d, `${a}.kv_a_proj_with_mqa.weight`, [mla.kvLoraRank + mla.rope, d.H], 'linear'),
        tensor(d, `${a}.kv_a_layernorm.weight`, [mla.kvLoraRank], 'norm'),
        tensor(d, `${a}.kv_b_proj.weight`, [d.heads * (mla.nope + mla.v), mla.kvLoraRank], 'linear'),
        tensor(d, `${a}.o_proj.weight`, [d.H, d.heads * mla.v], 'linear'),
      );
    }
    const isMoe = l >= firstDense && l % freq === 0;
    if (!isMoe) {
      layers.push(...mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'));
    if (version === 3) layers.push(tensor(d, `${P(l)}.mlp.gate.e_score_correction_bias`, [d.E], 'linear'));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
    if (nShared > 0) layers.push(...mlp(d, `${P(l)}.mlp.shared_experts`, 'gate_proj', 'up_proj', 'down_proj', d.I * nShared));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * A.X K1 (axk1): DeepSeek-V3's fixture with q-LoRA (rank 6 unless given) and a norm on each MoE
 * layer's output, stored at the layer level (post_mlp_layernorm) as the releases have it.
 */
function axk1Fixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = deepseekFixture(d, { ...o, qLoraRank: o.qLoraRank ?? 6 }, 3);
  const firstDense = o.firstKDenseReplace ?? 1;
  const { scoring_func: _s, topk_method: _t, aux_loss_alpha: _a, seq_aux: _q, moe_layer_freq: _f, ...config } = built.config;
  const tensors = [...built.tensors];
  for (let l = firstDense; l < d.L; l++) tensors.push(tensor(d, `${P(l)}.post_mlp_layernorm.weight`, [d.H], 'norm'));
  return { config: { ...config, architectures: ['AXK1ForCausalLM'], model_type: 'axk1', bos_token_id: d.V - 2 }, tensors };
}

/**
 * Mistral Small 4 (mistral4): DeepSeek-V3's tensors without the correction bias, V3's keys that
 * Mistral4Config has (no topk_method, scoring_func or moe_layer_freq), one shared expert and one
 * expert group unless given, and its RoPE in rope_parameters as transformers ≥ 5 writes it, with
 * a short original context so that the query scaling changes within a test prompt.
 */
function mistral4Fixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = deepseekFixture(d, { ...o, numSharedExperts: o.numSharedExperts ?? 1 }, 3);
  const { topk_method: _t, scoring_func: _f, moe_layer_freq: _m, aux_loss_alpha: _a, seq_aux: _s, rope_scaling: _r, rope_theta: _th, ...config } = built.config;
  return {
    config: {
      ...config,
      architectures: ['Mistral4ForCausalLM'],
      model_type: 'mistral4',
      routed_scaling_factor: o.routedScalingFactor ?? 1.0,
      n_group: o.topkMethod?.nGroup ?? 1,
      topk_group: o.topkMethod?.topkGroup ?? 1,
      pad_token_id: 11,
      bos_token_id: 1,
      rope_parameters: {
        rope_type: 'yarn',
        rope_theta: 10000,
        factor: 4.5,
        original_max_position_embeddings: 4,
        beta_fast: 32,
        beta_slow: 1,
        mscale: 1,
        mscale_all_dim: 1,
        llama_4_scaling_beta: 0.1,
        ...o.ropeParameters,
      },
    },
    tensors: built.tensors.filter((t) => !t.name.endsWith('.e_score_correction_bias')),
  };
}

/**
 * GLM-4.7-Flash (glm4_moe_lite): DeepSeek-V3's tensors and routing under GLM's name, the MoE
 * layers given by mlp_layer_types (written out when firstKDenseReplace is given; without it, the
 * default: the first layer dense).
 */
function glm4MoeLiteFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const built = deepseekFixture(d, o, 3);
  const { topk_method: _t, first_k_dense_replace: _f, moe_layer_freq: _m, aux_loss_alpha: _a, seq_aux: _s, ...config } = built.config;
  const firstDense = o.firstKDenseReplace ?? 1;
  return {
    config: {
      ...config,
      architectures: ['Glm4MoeLiteForCausalLM'],
      model_type: 'glm4_moe_lite',
      // MLA's keys and values are per head (transformers' glm4_moe_lite groups them by this, as GLM-4.7-Flash's config has it)
      num_key_value_heads: d.heads,
      routed_scaling_factor: o.routedScalingFactor ?? 1.8,
      ...(o.firstKDenseReplace !== undefined ? { mlp_layer_types: Array.from({ length: d.L }, (_, l) => (l < firstDense ? 'dense' : 'sparse')) } : {}),
    },
    tensors: built.tensors,
  };
}

/**
 * DeepSeek-V3.2 (deepseek_v32) and GLM-5 (glm_moe_dsa): DeepSeek-V3's tensors with q-LoRA (rank 6
 * unless given), and a sparse-attention indexer in each layer that runs one (every layer of V3.2;
 * GLM-5's "full" layers). The MoE layers come from first_k_dense_replace (default 1), as
 * transformers derives mlp_layer_types.
 */
function dsaFixture(d: Dims, o: TinyCheckpointOptions, modelType: 'deepseek_v32' | 'glm_moe_dsa'): FamilyFixture {
  const qLoraRank = o.qLoraRank ?? 6;
  const built = deepseekFixture(d, { ...o, qLoraRank }, 3);
  const { topk_method: _t, moe_layer_freq: _m, aux_loss_alpha: _a, seq_aux: _s, rope_interleave: _r, ...config } = built.config;
  const ix = { topK: o.indexer?.topK ?? 32, heads: o.indexer?.heads ?? 2, headDim: o.indexer?.headDim ?? 8 };
  const types = o.indexerTypes ?? Array<'full' | 'shared'>(d.L).fill('full');
  const indexers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    if (types[l] !== 'full') continue;
    const a = `${P(l)}.self_attn.indexer`;
    indexers.push(
      tensor(d, `${a}.wq_b.weight`, [ix.heads * ix.headDim, qLoraRank], 'linear'),
      tensor(d, `${a}.wk.weight`, [ix.headDim, d.H], 'linear'),
      tensor(d, `${a}.k_norm.weight`, [ix.headDim], 'norm'),
      tensor(d, `${a}.k_norm.bias`, [ix.headDim], 'bias'),
      tensor(d, `${a}.weights_proj.weight`, [ix.heads, d.H], 'linear'),
    );
  }
  return {
    config: {
      ...config,
      architectures: [modelType === 'deepseek_v32' ? 'DeepseekV32ForCausalLM' : 'GlmMoeDsaForCausalLM'],
      model_type: modelType,
      index_topk: ix.topK,
      index_n_heads: ix.heads,
      index_head_dim: ix.headDim,
      ...(modelType === 'glm_moe_dsa' ? { indexer_types: types, n_group: o.topkMethod?.nGroup ?? 1, topk_group: o.topkMethod?.topkGroup ?? 1 } : {}),
    },
    tensors: [...built.tensors, ...indexers],
  };
}

/**
 * EXAONE MoE (exaone_moe): GQA with per-head q/k norms (head_dim 12), a window of 5 on every
 * layer but each second (sliding_window_pattern 2: the global layers apply no RoPE), DeepSeek-V3's
 * routing (1 group) with its correction bias at mlp.e_score_correction_bias as the releases store it
 * (fused experts: under mlp.gate, as transformers' modules hold it), one shared expert, dense
 * layers before first_k_dense_replace (default 1).
 */
function exaoneMoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const firstDense = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 1;
  const headDim = o.headDim ?? 12;
  const config = {
    architectures: ['ExaoneMoeForCausalLM'],
    model_type: 'exaone_moe',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    num_experts: d.E,
    num_shared_experts: nShared,
    num_experts_per_tok: d.K,
    first_k_dense_replace: firstDense,
    norm_topk_prob: true,
    routed_scaling_factor: o.routedScalingFactor ?? 2.5,
    n_group: o.topkMethod?.nGroup ?? 1,
    topk_group: o.topkMethod?.topkGroup ?? 1,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_dropout: 0,
    max_position_embeddings: 256,
    sliding_window: 5,
    sliding_window_pattern: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: d.tied,
    bos_token_id: 1,
    eos_token_id: d.V - 1,
    pad_token_id: 0,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(tensor(d, `${a}.q_norm.weight`, [headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [headDim], 'norm'));
    if (l < firstDense) {
      layers.push(...mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(
      tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'),
      tensor(d, d.fused ? `${P(l)}.mlp.gate.e_score_correction_bias` : `${P(l)}.mlp.e_score_correction_bias`, [d.E], 'linear'),
      ...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'),
      ...(nShared > 0 ? mlp(d, `${P(l)}.mlp.shared_experts`, 'gate_proj', 'up_proj', 'down_proj', d.I * nShared) : []),
    );
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * A layer's MLP as DeepSeek-V3's names lay it out under noaux_tc routing (GLM-4.5, dots.llm1): a
 * dense MLP before `firstDense`, else the router with its correction bias, the routed experts and
 * `nShared` shared experts of their width.
 */
function noauxTcMlp(d: Dims, l: number, firstDense: number, nShared: number): TensorSpec[] {
  if (l < firstDense) return mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense);
  return [
    tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'),
    tensor(d, `${P(l)}.mlp.gate.e_score_correction_bias`, [d.E], 'linear'),
    ...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'),
    ...(nShared > 0 ? mlp(d, `${P(l)}.mlp.shared_experts`, 'gate_proj', 'up_proj', 'down_proj', d.I * nShared) : []),
  ];
}

/**
 * MiMo-V2-Flash (mimo_v2_flash): transformers' default layer_types (layer 0 full, the others
 * sliding with a window of 5), the sliding layers with twice the kv heads and a sink logit per
 * head, query/key heads 12 wide (the first int(12 × 0.334) = 4 values rotated, a base per layer
 * type: transformers' defaults unless rope_parameters is given), value heads 8 wide scaled by
 * attention_value_scale 0.6, layer 0's MLP dense, DeepSeek-V3's routing (1 group unless given)
 * without shared experts. Per expert with the sinks under the releases' name
 * (self_attn.attention_sink_bias), fused under transformers' (self_attn.sinks).
 */
function mimoV2FlashFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const headDim = o.headDim ?? 12;
  const vHeadDim = 8;
  const slidingLayer = (l: number) => !(l === 0 || (l + 1) % 6 === 0);
  const types = o.configKeys?.layer_types as string[] | undefined;
  const sliding = (l: number) => (types ? types[l] === 'sliding_attention' : slidingLayer(l));
  const mlpTypes = o.configKeys?.mlp_layer_types as string[] | undefined;
  const dense = (l: number) => (mlpTypes ? mlpTypes[l] === 'dense' : l === 0);
  const config = {
    architectures: ['MiMoV2FlashForCausalLM'],
    model_type: 'mimo_v2_flash',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    n_routed_experts: d.E,
    num_experts_per_tok: d.K,
    norm_topk_prob: true,
    routed_scaling_factor: o.routedScalingFactor ?? 1.5,
    n_group: o.topkMethod?.nGroup ?? 1,
    topk_group: o.topkMethod?.topkGroup ?? 1,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    v_head_dim: vHeadDim,
    attention_value_scale: 0.6,
    attention_bias: o.attentionBias ?? false,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_dropout: 0,
    max_position_embeddings: 256,
    sliding_window: 5,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: d.tied,
    bos_token_id: 1,
    eos_token_id: d.V - 1,
    pad_token_id: 0,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    const kvHeads = sliding(l) ? 2 * d.kvHeads : d.kvHeads;
    layers.push(
      ...norms(d, l),
      tensor(d, `${a}.q_proj.weight`, [d.heads * headDim, d.H], 'linear'),
      tensor(d, `${a}.k_proj.weight`, [kvHeads * headDim, d.H], 'linear'),
      tensor(d, `${a}.v_proj.weight`, [kvHeads * vHeadDim, d.H], 'linear'),
      tensor(d, `${a}.o_proj.weight`, [d.H, d.heads * vHeadDim], 'linear'),
    );
    if (o.attentionBias) {
      layers.push(tensor(d, `${a}.q_proj.bias`, [d.heads * headDim], 'bias'), tensor(d, `${a}.k_proj.bias`, [kvHeads * headDim], 'bias'), tensor(d, `${a}.v_proj.bias`, [kvHeads * vHeadDim], 'bias'));
    }
    // sinks of either sign around the scores' own size
    if (sliding(l)) layers.push(scaled(tensor(d, d.fused ? `${a}.sinks` : `${a}.attention_sink_bias`, [d.heads], 'bias', `${a}.sinks`), 30));
    layers.push(...noauxTcMlp(d, l, dense(l) ? l + 1 : 0, 0));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * HY V3 (hy_v3): GQA with per-head q/k norms (head_dim 12), the first layer dense unless
 * firstKDenseReplace (then written out as mlp_layer_types), sigmoid routing with a choice bias and
 * shared experts. Per expert under the releases' names (mlp.router.gate, mlp.expert_bias,
 * mlp.shared_mlp); fused under transformers' module names (mlp.gate, mlp.e_score_correction_bias,
 * mlp.shared_experts).
 */
function hyV3Fixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const firstDense = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 1;
  const headDim = o.headDim ?? 12;
  const config = {
    architectures: ['HYV3ForCausalLM'],
    model_type: 'hy_v3',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    num_experts: d.E,
    num_shared_experts: nShared,
    num_experts_per_tok: d.K,
    router_scaling_factor: o.routedScalingFactor ?? 2.826,
    ...(o.firstKDenseReplace !== undefined ? { mlp_layer_types: Array.from({ length: d.L }, (_, l) => (l < firstDense ? 'dense' : 'sparse')) } : {}),
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    attention_dropout: 0,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 11158840,
    tie_word_embeddings: d.tied,
    eos_token_id: d.V - 1,
  };
  const m = (l: number) => `${P(l)}.mlp`;
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(tensor(d, `${a}.q_norm.weight`, [headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [headDim], 'norm'));
    if (l < firstDense) {
      layers.push(...mlp(d, m(l), 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(
      tensor(d, d.fused ? `${m(l)}.gate.weight` : `${m(l)}.router.gate.weight`, [d.E, d.H], 'linear'),
      tensor(d, d.fused ? `${m(l)}.e_score_correction_bias` : `${m(l)}.expert_bias`, [d.E], 'linear'),
      ...routedExperts(d, l, m(l), 'gate_proj', 'up_proj', 'down_proj'),
      ...mlp(d, d.fused ? `${m(l)}.shared_experts` : `${m(l)}.shared_mlp`, 'gate_proj', 'up_proj', 'down_proj', nShared > 0 ? d.I * nShared : d.dense),
    );
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * AFMoE (afmoe): four norms a layer (input_layernorm, post_attention_layernorm on the attention's
 * output, pre_mlp_layernorm, post_mlp_layernorm on the MLP's), GQA with per-head q/k norms
 * (head_dim 12) and the sigmoid gate on the heads' output (self_attn.gate_proj), a window of 5 on
 * the sliding layers and no RoPE on the global ones (global_attn_every_n_layers 2: layer 1 of 3),
 * the first firstKDenseReplace layers dense (num_dense_layers, default 1), sigmoid routing with
 * mlp.router.gate and mlp.expert_bias scaled by route_scale, one shared MLP numSharedExperts ×
 * the expert width (default 1), muP on (mup_enabled) as the releases have it. Fused experts under
 * transformers' names, the rest unchanged.
 */
function afmoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const dense = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 1;
  const headDim = o.headDim ?? 12;
  const config = {
    architectures: ['AfmoeForCausalLM'],
    model_type: 'afmoe',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    num_dense_layers: dense,
    num_experts: d.E,
    num_shared_experts: nShared,
    num_experts_per_tok: d.K,
    route_scale: o.routedScalingFactor ?? 2.826,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    global_attn_every_n_layers: 2,
    sliding_window: 5,
    mup_enabled: true,
    tie_word_embeddings: d.tied,
    eos_token_id: d.V - 1,
  };
  const m = (l: number) => `${P(l)}.mlp`;
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(tensor(d, `${P(l)}.input_layernorm.weight`, [d.H], 'norm'), ...gqaAttention(d, l, headDim));
    layers.push(
      tensor(d, `${a}.q_norm.weight`, [headDim], 'norm'),
      tensor(d, `${a}.k_norm.weight`, [headDim], 'norm'),
      tensor(d, `${a}.gate_proj.weight`, [d.heads * headDim, d.H], 'linear'),
      tensor(d, `${P(l)}.post_attention_layernorm.weight`, [d.H], 'norm'),
      tensor(d, `${P(l)}.pre_mlp_layernorm.weight`, [d.H], 'norm'),
    );
    if (l < dense) layers.push(...mlp(d, m(l), 'gate_proj', 'up_proj', 'down_proj', d.dense));
    else
      layers.push(
        tensor(d, `${m(l)}.router.gate.weight`, [d.E, d.H], 'linear'),
        tensor(d, `${m(l)}.expert_bias`, [d.E], 'linear'),
        ...routedExperts(d, l, m(l), 'gate_proj', 'up_proj', 'down_proj'),
        ...mlp(d, `${m(l)}.shared_experts`, 'gate_proj', 'up_proj', 'down_proj', d.I * nShared),
      );
    layers.push(tensor(d, `${P(l)}.post_mlp_layernorm.weight`, [d.H], 'norm'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * Cohere2-MoE (cohere2_moe): one LayerNorm a layer (input_layernorm, a weight and no bias) read
 * by the attention and the MLP alike, GQA (head_dim 12; q/k/v/o biases with attentionBias), a
 * window of 5 on the sliding layers (the dense prefix of firstKDenseReplace layers full, the rest
 * sliding but every second one), top-k softmax routing over mlp.gate, numSharedExperts shared
 * experts (default 1) in one MLP averaged with the routed sum, the dense prefix
 * prefix_dense_intermediate_size wide, logit_scale 0.25.
 */
function cohere2MoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const dense = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 1;
  const headDim = o.headDim ?? 12;
  const bias = o.attentionBias ?? false;
  const config = {
    architectures: ['Cohere2MoeForCausalLM'],
    model_type: 'cohere2_moe',
    hidden_size: d.H,
    intermediate_size: d.I,
    prefix_dense_intermediate_size: d.dense,
    first_k_dense_replace: dense,
    num_experts: d.E,
    num_shared_experts: nShared,
    num_experts_per_tok: d.K,
    shared_expert_combination_strategy: 'average',
    expert_selection_fn: 'softmax',
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: bias,
    attention_dropout: 0,
    max_position_embeddings: 256,
    layer_norm_eps: 1e-5,
    rope_theta: 10000,
    sliding_window: 5,
    sliding_window_pattern: 2,
    logit_scale: 0.25,
    tie_word_embeddings: d.tied,
    eos_token_id: d.V - 1,
  };
  const m = (l: number) => `${P(l)}.mlp`;
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(tensor(d, `${P(l)}.input_layernorm.weight`, [d.H], 'norm'), ...gqaAttention(d, l, headDim));
    if (bias)
      layers.push(
        tensor(d, `${a}.q_proj.bias`, [d.heads * headDim], 'bias'),
        tensor(d, `${a}.k_proj.bias`, [d.kvHeads * headDim], 'bias'),
        tensor(d, `${a}.v_proj.bias`, [d.kvHeads * headDim], 'bias'),
        tensor(d, `${a}.o_proj.bias`, [d.H], 'bias'),
      );
    if (l < dense) layers.push(...mlp(d, m(l), 'gate_proj', 'up_proj', 'down_proj', d.dense));
    else {
      layers.push(tensor(d, `${m(l)}.gate.weight`, [d.E, d.H], 'linear'), ...routedExperts(d, l, m(l), 'gate_proj', 'up_proj', 'down_proj'));
      if (nShared > 0) layers.push(...mlp(d, `${m(l)}.shared_experts`, 'gate_proj', 'up_proj', 'down_proj', d.I * nShared));
    }
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * PhiMoE (phimoe): Mixtral's names (block_sparse_moe; fused: mlp.experts and mlp.router), its
 * nn.LayerNorms with a weight and a bias, biases on q/k/v/o and lm_head (attentionBias, default
 * true as Phi-3.5-MoE), sparsemixer routing (router_jitter_noise 0.01), "longrope" RoPE with
 * short and long factors (the long ones unused by transformers) and short_mscale = long_mscale.
 */
function phimoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const bias = o.attentionBias ?? true;
  const headDim = d.H / d.heads;
  const factors = (base: number) => Array.from({ length: headDim / 2 }, (_, i) => base + 0.25 * i);
  const config = {
    architectures: ['PhimoeForCausalLM'],
    model_type: 'phimoe',
    hidden_size: d.H,
    intermediate_size: d.I,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    num_local_experts: d.E,
    num_experts_per_tok: d.K,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: { type: 'longrope', short_factor: factors(1), long_factor: factors(2), short_mscale: 1.2, long_mscale: 1.2, original_max_position_embeddings: 64 },
    router_jitter_noise: 0.01,
    input_jitter_noise: 0.01,
    attention_bias: bias,
    lm_head_bias: bias,
    attention_dropout: 0,
    tie_word_embeddings: d.tied,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    const m = `${P(l)}.block_sparse_moe`;
    layers.push(...norms(d, l), tensor(d, `${P(l)}.input_layernorm.bias`, [d.H], 'bias'), tensor(d, `${P(l)}.post_attention_layernorm.bias`, [d.H], 'bias'), ...gqaAttention(d, l, headDim));
    if (bias)
      layers.push(
        tensor(d, `${a}.q_proj.bias`, [d.heads * headDim], 'bias'),
        tensor(d, `${a}.k_proj.bias`, [d.kvHeads * headDim], 'bias'),
        tensor(d, `${a}.v_proj.bias`, [d.kvHeads * headDim], 'bias'),
        tensor(d, `${a}.o_proj.bias`, [d.H], 'bias'),
      );
    layers.push(tensor(d, d.fused ? `${P(l)}.mlp.router.weight` : `${m}.gate.weight`, [d.E, d.H], 'linear', `${m}.gate.weight`), ...routedExperts(d, l, m, 'w1', 'w3', 'w2'));
  }
  const tensors = [...embeddingsAndHead(d, layers), tensor(d, 'model.norm.bias', [d.H], 'bias')];
  if (bias) tensors.push(tensor(d, 'lm_head.bias', [d.V], 'bias'));
  return { config, tensors };
}

/**
 * GLM-4.5 (glm4_moe): GQA whose q/k/v carry biases, per-head q/k RMSNorm, RoPE over the first
 * head_dim × partial_rotary_factor values of each head, and DeepSeek-V3's routing and MLP names.
 */
function glm4MoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const firstDense = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 1;
  const headDim = o.headDim ?? 16;
  const qkNorm = o.useQkNorm ?? true;
  const config = {
    architectures: ['Glm4MoeForCausalLM'],
    model_type: 'glm4_moe',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    n_routed_experts: d.E,
    n_shared_experts: nShared,
    num_experts_per_tok: d.K,
    first_k_dense_replace: firstDense,
    norm_topk_prob: true,
    routed_scaling_factor: o.routedScalingFactor ?? 2.5,
    n_group: o.topkMethod?.nGroup ?? 1,
    topk_group: o.topkMethod?.topkGroup ?? 1,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    partial_rotary_factor: o.partialRotaryFactor ?? 0.5,
    use_qk_norm: qkNorm,
    attention_bias: true,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_dropout: 0,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 1e6,
    rope_scaling: null,
    num_nextn_predict_layers: 0,
    tie_word_embeddings: d.tied,
    pad_token_id: d.V - 2,
    eos_token_id: [d.V - 1, d.V - 2],
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(
      tensor(d, `${a}.q_proj.bias`, [d.heads * headDim], 'bias'),
      tensor(d, `${a}.k_proj.bias`, [d.kvHeads * headDim], 'bias'),
      tensor(d, `${a}.v_proj.bias`, [d.kvHeads * headDim], 'bias'),
    );
    if (qkNorm) layers.push(tensor(d, `${a}.q_norm.weight`, [headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [headDim], 'norm'));
    layers.push(...noauxTcMlp(d, l, firstDense, nShared));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * IBM Granite MoE (granitemoe): Llama attention, every layer MoE with its experts fused on disk
 * under their own names, and four scalar multipliers.
 */
function graniteMoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) layers.push(...graniteMoeLayer(d, l));
  return { config: graniteMoeConfig(d, o, 'granitemoe', 'GraniteMoeForCausalLM'), tensors: embeddingsAndHead(d, layers) };
}

/** GraniteMoE's config.json under `modelType`: the multipliers (granite-3.0-1b-a400m's unless given). */
function graniteMoeConfig(d: Dims, o: TinyCheckpointOptions, modelType: string, architecture: string): Record<string, unknown> {
  const m = o.multipliers ?? { embedding: 12, residual: 0.22, attention: 0.015625, logits: 6 };
  return {
    architectures: [architecture],
    model_type: modelType,
    hidden_size: d.H,
    intermediate_size: d.I,
    num_local_experts: d.E,
    num_experts_per_tok: d.K,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    embedding_multiplier: m.embedding,
    residual_multiplier: m.residual,
    attention_multiplier: m.attention,
    logits_scaling: m.logits,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: null,
    router_aux_loss_coef: 0.001,
    tie_word_embeddings: d.tied,
    bos_token_id: 0,
    eos_token_id: d.V - 1,
    pad_token_id: d.V - 1,
  };
}

/**
 * A GraniteMoE decoder layer: norms, attention, block_sparse_moe's router and fused experts, under
 * GraniteMoE's own names (router.layer, input_linear, output_linear), or with `moduleNames` under
 * transformers' module names (router, experts.gate_up_proj, experts.down_proj), as GraniteMoE-SWA
 * stores them; the same values either way.
 */
function graniteMoeLayer(d: Dims, l: number, moduleNames = false): TensorSpec[] {
  const b = `${P(l)}.block_sparse_moe`;
  const router = moduleNames ? `${b}.router.weight` : `${b}.router.layer.weight`;
  const [gateUp, down] = moduleNames ? [`${b}.experts.gate_up_proj`, `${b}.experts.down_proj`] : [`${b}.input_linear.weight`, `${b}.output_linear.weight`];
  return [
    ...norms(d, l),
    ...gqaAttention(d, l, d.H / d.heads),
    tensor(d, router, [d.E, d.H], 'linear', `${b}.router.layer.weight`),
    // each expert's gate rows then its up rows, as transformers' chunk(2) reads them
    ...fusedExperts(d, gateUp, down, (e, m) => `${b}.experts.${e}.${m}`),
  ];
}

/** GraniteMoE-shared's shared MLP of width `width` (none at 0): gate and up in one tensor [2S, H], gate rows first. */
function graniteSharedMlp(d: Dims, l: number, width: number): TensorSpec[] {
  if (width === 0) return [];
  const s = `${P(l)}.shared_mlp`;
  return [tensor(d, `${s}.input_linear.weight`, [2 * width, d.H], 'linear'), tensor(d, `${s}.output_linear.weight`, [d.H, width], 'linear')];
}

/** GraniteMoE-shared (granitemoeshared): GraniteMoE with a shared MLP beside the experts (width 24 unless given; 0: none). */
function graniteMoeSharedFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const shared = o.sharedExpertIntermediateSize ?? 24;
  const config = { ...graniteMoeConfig(d, o, 'granitemoeshared', 'GraniteMoeSharedForCausalLM'), shared_intermediate_size: shared };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) layers.push(...graniteMoeLayer(d, l), ...graniteSharedMlp(d, l, shared));
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * GraniteMoE-SWA (granitemoe_swa): GraniteMoE-shared (no shared MLP unless given) with a sink
 * logit per head and a window of 5 on the layers transformers' default layer_types marks sliding
 * (all but every fourth, from layer 0); its router and experts under transformers' module names.
 */
function graniteMoeSwaFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const shared = o.sharedExpertIntermediateSize ?? 0;
  const config = { ...graniteMoeConfig(d, o, 'granitemoe_swa', 'GraniteMoeSWAForCausalLM'), shared_intermediate_size: shared, sliding_window: 5 };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    // sinks of either sign around the scores' own size
    layers.push(...graniteMoeLayer(d, l, true), scaled(tensor(d, `${P(l)}.self_attn.sinks`, [d.heads], 'bias'), 30), ...graniteSharedMlp(d, l, shared));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * Hunyuan MoE (hunyuan_v1_moe): GQA whose per-head q/k norms (query_layernorm, key_layernorm) come
 * after RoPE, RoPE "dynamic" with an NTK alpha (unless ropeScaling says otherwise), every layer MoE
 * with an always-on shared MLP of the experts' width.
 */
function hunyuanV1MoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const headDim = o.headDim ?? d.H / d.heads;
  const config = {
    architectures: ['HunYuanMoEV1ForCausalLM'],
    model_type: 'hunyuan_v1_moe',
    hidden_size: d.H,
    intermediate_size: d.I,
    num_experts: d.E,
    moe_topk: d.K,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    attention_bias: false,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    // (not whole numbers, so that JSON keeps them floats, as transformers requires; factor matters only past max_position_embeddings)
    rope_scaling: { type: 'dynamic', alpha: 1000.5, factor: 1.25 },
    tie_word_embeddings: d.tied,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(tensor(d, `${a}.query_layernorm.weight`, [headDim], 'norm'), tensor(d, `${a}.key_layernorm.weight`, [headDim], 'norm'));
    layers.push(tensor(d, `${P(l)}.mlp.gate.wg.weight`, [d.E, d.H], 'linear'));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
    layers.push(...mlp(d, `${P(l)}.mlp.shared_mlp`, 'gate_proj', 'up_proj', 'down_proj', d.I));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * ERNIE-4.5 MoE (ernie4_5_moe): GQA with interleaved RoPE pairs, softmax routing whose choice adds
 * moe_statics.e_score_correction_bias ([1, E]), two shared experts, a dense first layer.
 */
function ernie45MoeFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const firstMoe = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 2;
  const config = {
    architectures: ['Ernie4_5_MoeForCausalLM'],
    model_type: 'ernie4_5_moe',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    moe_num_experts: d.E,
    moe_num_shared_experts: nShared,
    moe_k: d.K,
    moe_layer_start_index: firstMoe,
    moe_layer_end_index: -1,
    moe_layer_interval: 1,
    moe_norm_min: 1e-12,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    use_bias: false,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: d.tied,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    layers.push(...norms(d, l), ...gqaAttention(d, l, d.H / d.heads));
    if (l < firstMoe) {
      layers.push(...mlp(d, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(tensor(d, `${P(l)}.mlp.gate.weight`, [d.E, d.H], 'linear'));
    // transformers ≥ 5 moves the bias under the gate when it fuses the experts; same values either way
    const bias = `${P(l)}.mlp.moe_statics.e_score_correction_bias`;
    layers.push(tensor(d, d.fused ? `${P(l)}.mlp.gate.moe_statics.e_score_correction_bias` : bias, [1, d.E], 'linear', bias));
    layers.push(...routedExperts(d, l, `${P(l)}.mlp`, 'gate_proj', 'up_proj', 'down_proj'));
    if (nShared > 0) layers.push(...mlp(d, `${P(l)}.mlp.shared_experts`, 'gate_proj', 'up_proj', 'down_proj', d.I * nShared));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * dots.llm1 (dots1): Qwen3's attention (per-head q_norm/k_norm, head_dim 12 ≠ 32/4, whole-head
 * RoPE), DeepSeek-V3's routing with its correction bias (4 groups of 2, 2 kept by default), one
 * shared expert, a dense first layer.
 */
function dots1Fixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const firstDense = o.firstKDenseReplace ?? 1;
  const nShared = o.numSharedExperts ?? 1;
  const headDim = o.headDim ?? 12;
  const config = {
    architectures: ['Dots1ForCausalLM'],
    model_type: 'dots1',
    hidden_size: d.H,
    intermediate_size: d.dense,
    moe_intermediate_size: d.I,
    n_routed_experts: d.E,
    n_shared_experts: nShared,
    num_experts_per_tok: d.K,
    first_k_dense_replace: firstDense,
    norm_topk_prob: o.normTopkProb ?? true,
    routed_scaling_factor: o.routedScalingFactor ?? 2.5,
    n_group: o.topkMethod?.nGroup ?? 4,
    topk_group: o.topkMethod?.topkGroup ?? 2,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    attention_bias: false,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_dropout: 0,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: null,
    sliding_window: null,
    max_window_layers: d.L,
    tie_word_embeddings: d.tied,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(tensor(d, `${a}.q_norm.weight`, [headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [headDim], 'norm'));
    layers.push(...noauxTcMlp(d, l, firstDense, nShared));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * MiniMax-M2 (minimax_m2): GQA with q and k each RMS-normalised over the whole projection,
 * head_dim 16 ≠ 32/4 with RoPE over its first `rotary_dim` (8 by default, as the real 64 of 128),
 * every layer MoE with sigmoid routing and a correction bias; Mixtral's names on disk.
 */
function minimaxM2Fixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const headDim = o.headDim ?? 16;
  const config = {
    architectures: ['MiniMaxM2ForCausalLM'],
    model_type: 'minimax_m2',
    hidden_size: d.H,
    intermediate_size: d.I,
    num_local_experts: d.E,
    num_experts_per_tok: d.K,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    rotary_dim: o.rotaryDim ?? headDim / 2,
    use_qk_norm: true,
    qk_norm_type: 'per_layer',
    scoring_func: 'sigmoid',
    use_routing_bias: true,
    vocab_size: d.V,
    hidden_act: 'silu',
    attention_dropout: 0,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 5e6,
    router_jitter_noise: 0,
    router_aux_loss_coef: 0.001,
    tie_word_embeddings: d.tied,
    bos_token_id: 0,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    const moe = `${P(l)}.block_sparse_moe`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(tensor(d, `${a}.q_norm.weight`, [d.heads * headDim], 'norm'), tensor(d, `${a}.k_norm.weight`, [d.kvHeads * headDim], 'norm'));
    // transformers ≥ 5 renames the router and its bias when it fuses the experts; same values either way
    layers.push(tensor(d, d.fused ? `${P(l)}.mlp.gate.weight` : `${moe}.gate.weight`, [d.E, d.H], 'linear', `${moe}.gate.weight`));
    layers.push(tensor(d, d.fused ? `${P(l)}.mlp.e_score_correction_bias` : `${moe}.e_score_correction_bias`, [d.E], 'linear', `${moe}.e_score_correction_bias`));
    layers.push(...routedExperts(d, l, moe, 'w1', 'w3', 'w2'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * OpenAI gpt-oss (gpt_oss): GQA with biases on q/k/v/o and a sink logit per head, a sliding window
 * (5 here, so prompts cross it) on the even layers, YaRN, a router with a bias, top-k then softmax,
 * and experts fused transposed: gate_up [E, H, 2I] with gate and up columns interleaved, down
 * [E, I, H], with biases (drawn large, sd 4, so that the ±7 clamps of its activation bite).
 */
function gptOssFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const headDim = o.headDim ?? d.H / d.heads;
  const config = {
    architectures: ['GptOssForCausalLM'],
    model_type: 'gpt_oss',
    hidden_size: d.H,
    intermediate_size: d.I,
    num_local_experts: d.E,
    num_experts_per_tok: d.K,
    experts_per_token: d.K,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    attention_bias: true,
    attention_dropout: 0,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 150000,
    // (not whole numbers, so that JSON keeps them floats, as transformers requires)
    rope_scaling: { rope_type: 'yarn', factor: 32.5, beta_fast: 32.5, beta_slow: 1.5, original_max_position_embeddings: 64, truncate: false },
    sliding_window: 5,
    layer_types: Array.from({ length: d.L }, (_, l) => (l % 2 === 0 ? 'sliding_attention' : 'full_attention')),
    swiglu_limit: 7.0,
    router_aux_loss_coef: 0.9,
    tie_word_embeddings: d.tied,
    pad_token_id: d.V - 2,
    eos_token_id: d.V - 1,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const a = `${P(l)}.self_attn`;
    const m = `${P(l)}.mlp`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    layers.push(
      tensor(d, `${a}.q_proj.bias`, [d.heads * headDim], 'bias'),
      tensor(d, `${a}.k_proj.bias`, [d.kvHeads * headDim], 'bias'),
      tensor(d, `${a}.v_proj.bias`, [d.kvHeads * headDim], 'bias'),
      tensor(d, `${a}.o_proj.bias`, [d.H], 'bias'),
      // sinks of either sign around the scores' own size
      scaled(tensor(d, `${a}.sinks`, [d.heads], 'bias'), 30),
    );
    layers.push(tensor(d, `${m}.router.weight`, [d.E, d.H], 'linear'), tensor(d, `${m}.router.bias`, [d.E], 'bias'));
    layers.push(...transposedExperts(d, m, 'interleaved'));
    layers.push(scaled(tensor(d, `${m}.experts.gate_up_proj_bias`, [d.E, 2 * d.I], 'bias'), 80), tensor(d, `${m}.experts.down_proj_bias`, [d.E, d.H], 'bias'));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

/**
 * Fused transposed experts: gate_up [E, H, 2I] where row i of expert e's gate matrix is column 2i
 * of its slab and row i of its up matrix column 2i + 1 (gpt-oss, 'interleaved'), or columns i and
 * I + i (Llama 4, 'halves'), and down [E, I, H] the transpose of each down matrix [H, I]; each
 * matrix drawn under its per-expert name, as the other forms are.
 */
function transposedExperts(d: Dims, m: string, columns: 'interleaved' | 'halves'): TensorSpec[] {
  const draw = (e: number, w: string, shape: number[]) => drawValues(d.seed, `${m}.experts.${e}.${w}.weight`, shape, 'linear');
  const [gateColumn, upColumn] = columns === 'interleaved' ? [(i: number) => 2 * i, (i: number) => 2 * i + 1] : [(i: number) => i, (i: number) => d.I + i];
  const gateUp = (): Float32Array => {
    const out = new Float32Array(d.E * d.H * 2 * d.I);
    for (let e = 0; e < d.E; e++) {
      const gate = draw(e, 'gate_proj', [d.I, d.H]);
      const up = draw(e, 'up_proj', [d.I, d.H]);
      for (let h = 0; h < d.H; h++) {
        for (let i = 0; i < d.I; i++) {
          out[(e * d.H + h) * 2 * d.I + gateColumn(i)] = gate[i * d.H + h];
          out[(e * d.H + h) * 2 * d.I + upColumn(i)] = up[i * d.H + h];
        }
      }
    }
    return out;
  };
  const down = (): Float32Array => {
    const out = new Float32Array(d.E * d.I * d.H);
    for (let e = 0; e < d.E; e++) {
      const w = draw(e, 'down_proj', [d.H, d.I]);
      for (let h = 0; h < d.H; h++) for (let i = 0; i < d.I; i++) out[(e * d.I + i) * d.H + h] = w[h * d.I + i];
    }
    return out;
  };
  return [
    { name: `${m}.experts.gate_up_proj`, shape: [d.E, d.H, 2 * d.I], values: gateUp },
    { name: `${m}.experts.down_proj`, shape: [d.E, d.I, d.H], values: down },
  ];
}

/**
 * Llama 4's text model (llama4_text): MoE layers every interleave_moe_layer_step-th (2: layers 1
 * and 3 of 4) beside dense MLPs of intermediate_size_mlp; transformers' default no_rope_layers
 * (every fourth layer NoPE) with its weightless q/k norm, chunks of 4 positions on the RoPE layers
 * and queries scaled every 3 positions on the NoPE ones (floor_scale 3, a steep attn_scale 0.5, so
 * that a test prompt crosses several chunks and steps); top-k sigmoid routing, a shared expert of
 * intermediate_size, the experts fused transposed with the gate's columns first.
 */
function llama4TextFixture(d: Dims, o: TinyCheckpointOptions): FamilyFixture {
  const headDim = o.headDim ?? d.H / d.heads;
  const step = o.interleaveMoeLayerStep ?? 2;
  const config = {
    architectures: ['Llama4ForCausalLM'],
    model_type: 'llama4_text',
    hidden_size: d.H,
    intermediate_size: d.I,
    intermediate_size_mlp: d.dense,
    num_hidden_layers: d.L,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: headDim,
    num_local_experts: d.E,
    num_experts_per_tok: d.K,
    interleave_moe_layer_step: step,
    vocab_size: d.V,
    hidden_act: 'silu',
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    attention_chunk_size: 4,
    floor_scale: 3,
    attn_scale: 0.5,
    use_qk_norm: o.useQkNorm ?? true,
    attn_temperature_tuning: true,
    attention_bias: false,
    router_aux_loss_coef: 0.001,
    router_jitter_noise: 0,
    tie_word_embeddings: d.tied,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const layers: TensorSpec[] = [];
  for (let l = 0; l < d.L; l++) {
    const f = `${P(l)}.feed_forward`;
    layers.push(...norms(d, l), ...gqaAttention(d, l, headDim));
    if ((l + 1) % step !== 0) {
      layers.push(...mlp(d, f, 'gate_proj', 'up_proj', 'down_proj', d.dense));
      continue;
    }
    layers.push(tensor(d, `${f}.router.weight`, [d.E, d.H], 'linear'));
    layers.push(...transposedExperts(d, f, 'halves'));
    layers.push(...mlp(d, `${f}.shared_expert`, 'gate_proj', 'up_proj', 'down_proj', d.I));
  }
  return { config, tensors: embeddingsAndHead(d, layers) };
}

const DEFAULT_LAYERS: Record<FamilyName, number> = { mixtral: 2, qwen2_moe: 3, qwen3_moe: 2, qwen3_next: 3, qwen3_5_moe_text: 3, olmoe: 2, deepseek: 3, deepseek_v2: 3, deepseek_v3: 3, deepseek_v32: 3, glm4_moe: 3, granitemoe: 2, granitemoeshared: 2, granitemoe_swa: 3, mimo_v2_flash: 3, minimax_m2: 2, dots1: 3, glm4_moe_lite: 3, glm_moe_dsa: 3, ernie4_5_moe: 3, exaone_moe: 3, flex_olmo: 2, hunyuan_v1_moe: 2, gpt_oss: 2, mistral4: 3, phimoe: 2, solar_open: 2, axk1: 3, cohere2_moe: 4, hy_v3: 3, afmoe: 3, llama4_text: 4, qwen3_vl_moe_text: 2, glm4v_moe_text: 3 };

/**
 * Write a tiny random checkpoint of `family` into `dir` (created if needed) and return its config.
 * Deterministic: the same (family, options) always gives the same bytes.
 */
export async function makeTinyCheckpoint(dir: string, family: FamilyName, opts: TinyCheckpointOptions = {}): Promise<TinyCheckpoint> {
  const heads = opts.numHeads ?? 4;
  const d: Dims = {
    seed: opts.seed ?? 0,
    L: opts.numLayers ?? DEFAULT_LAYERS[family],
    E: opts.numExperts ?? 8,
    K: opts.topK ?? 2,
    H: opts.hiddenSize ?? 32,
    I: opts.expertIntermediateSize ?? 16,
    V: opts.vocabSize ?? 64,
    heads,
    kvHeads: opts.numKvHeads ?? (family === 'axk1' || family === 'deepseek_v2' || family === 'deepseek_v3' || family === 'deepseek_v32' || family === 'glm_moe_dsa' || family === 'mistral4' ? heads : 2),
    dense: opts.denseIntermediateSize ?? 24,
    tied: opts.tieWordEmbeddings ?? false,
    fused: opts.fusedExperts ?? false,
  };
  const dtype = opts.dtype ?? 'F32';
  const built = (() => {
    switch (family) {
      case 'mixtral':
        return mixtralFixture(d);
      case 'qwen2_moe':
        return qwen2MoeFixture(d, opts);
      case 'qwen3_moe':
        return qwen3MoeFixture(d, opts);
      case 'qwen3_next':
        return qwen3NextFixture(d, opts);
      case 'qwen3_5_moe_text':
        return qwen3NextFixture(d, opts, 'qwen3_5_moe_text');
      case 'olmoe':
        return olmoeFixture(d, opts);
      case 'deepseek':
        return deepseekFixture(d, opts, 1);
      case 'deepseek_v2':
        return deepseekFixture(d, opts, 2);
      case 'deepseek_v3':
        return deepseekFixture(d, opts, 3);
      case 'deepseek_v32':
        return dsaFixture(d, opts, 'deepseek_v32');
      case 'glm4_moe':
        return glm4MoeFixture(d, opts);
      case 'granitemoe':
        return graniteMoeFixture(d, opts);
      case 'granitemoeshared':
        return graniteMoeSharedFixture(d, opts);
      case 'granitemoe_swa':
        return graniteMoeSwaFixture(d, opts);
      case 'mimo_v2_flash':
        return mimoV2FlashFixture(d, opts);
      case 'minimax_m2':
        return minimaxM2Fixture(d, opts);
      case 'dots1':
        return dots1Fixture(d, opts);
      case 'glm4_moe_lite':
        return glm4MoeLiteFixture(d, opts);
      case 'glm_moe_dsa':
        return dsaFixture(d, opts, 'glm_moe_dsa');
      case 'ernie4_5_moe':
        return ernie45MoeFixture(d, opts);
      case 'exaone_moe':
        return exaoneMoeFixture(d, opts);
      case 'flex_olmo':
        return flexOlmoFixture(d, opts);
      case 'hunyuan_v1_moe':
        return hunyuanV1MoeFixture(d, opts);
      case 'mistral4':
        return mistral4Fixture(d, opts);
      case 'gpt_oss':
        return gptOssFixture(d, opts);
      case 'phimoe':
        return phimoeFixture(d, opts);
      case 'solar_open':
        return solarOpenFixture(d, opts);
      case 'axk1':
        return axk1Fixture(d, opts);
      case 'cohere2_moe':
        return cohere2MoeFixture(d, opts);
      case 'hy_v3':
        return hyV3Fixture(d, opts);
      case 'afmoe':
        return afmoeFixture(d, opts);
      case 'llama4_text':
        return llama4TextFixture(d, opts);
      case 'qwen3_vl_moe_text':
        return qwen3VlMoeTextFixture(d, opts);
      case 'glm4v_moe_text':
        return glm4vMoeTextFixture(d, opts);
    }
  })();
  const config = { ...built.config, ...(opts.ropeScaling ? { rope_scaling: opts.ropeScaling } : {}), ...opts.configKeys, torch_dtype: TORCH_DTYPE[dtype], transformers_version: '4.46.0' };

  const absDir = path.resolve(dir);
  await mkdir(absDir, { recursive: true });
  await writeFileAtomic(path.join(absDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const plan = built.tensors.map((t) => ({ name: t.name, dtype, shape: t.shape }));
  const writer = await ShardedWriter.create(absDir, plan, {
    ...(opts.maxShardBytes !== undefined ? { maxShardBytes: opts.maxShardBytes } : {}),
    metadata: { format: 'pt' },
  });
  for (const t of built.tensors) await writer.write(t.name, t.values());
  await writer.finish();
  return { dir: absDir, config, tensors: plan };
}

/** Every family the fixtures can generate. */
export const FIXTURE_FAMILIES: readonly FamilyName[] = [
  'mixtral',
  'qwen2_moe',
  'qwen3_moe',
  'qwen3_next',
  'qwen3_5_moe_text',
  'olmoe',
  'deepseek',
  'deepseek_v2',
  'deepseek_v3',
  'deepseek_v32',
  'glm4_moe',
  'granitemoe',
  'granitemoeshared',
  'granitemoe_swa',
  'mimo_v2_flash',
  'minimax_m2',
  'dots1',
  'glm4_moe_lite',
  'glm_moe_dsa',
  'ernie4_5_moe',
  'exaone_moe',
  'flex_olmo',
  'hunyuan_v1_moe',
  'mistral4',
  'gpt_oss',
  'phimoe',
  'solar_open',
  'axk1',
  'cohere2_moe',
  'hy_v3',
  'afmoe',
  'llama4_text',
  'qwen3_vl_moe_text',
  'glm4v_moe_text',
];

/** float keys makeTinyCheckpoint writes as integers when they are whole (JSON.stringify) */
const FLOAT_KEYS = /"(attention_dropout|attn_scale|rms_norm_eps|rope_theta|routed_scaling_factor|router_jitter_noise|route_scale|layer_norm_eps|logit_scale|input_jitter_noise|short_mscale|long_mscale)": (-?\d+(?:\.\d+)?(?:e-?\d+)?)(?=[,\n])/g;

/**
 * makeTinyCheckpoint with its config.json's float keys written as floats, as transformers writes
 * them: transformers ≥ 5 validates config types (`router_jitter_noise expected float, got int`).
 */
export async function makeTransformersCheckpoint(dir: string, family: FamilyName, opts: TinyCheckpointOptions = {}): Promise<TinyCheckpoint> {
  const made = await makeTinyCheckpoint(dir, family, opts);
  const file = path.join(dir, 'config.json');
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace(FLOAT_KEYS, (_, k: string, v: string) => `"${k}": ${Number.isInteger(Number(v)) ? Number(v).toFixed(1) : Number(v).toExponential()}`));
  return made;
}
