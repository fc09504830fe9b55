/**
 * The normalised view of a Hugging Face MoE checkpoint that the runtime, calibration and
 * compression code use. Family-specific key names live only in `src/checkpoint/families/*`.
 */
import type { Fp8Matrix } from '../io/fp8-matrix.js';
import type { Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import type { DType } from '../io/dtype.js';
import type { TensorArena } from '../io/tensor-buffers.js';
import type { MappedFiles } from '../io/file-map.js';

export type FamilyName =
  | 'mixtral'
  | 'qwen2_moe'
  | 'qwen3_moe'
  | 'qwen3_next'
  | 'qwen3_5_moe_text'
  | 'olmoe'
  | 'deepseek'
  | 'deepseek_v2'
  | 'deepseek_v3'
  | 'deepseek_v32'
  | 'glm4_moe'
  | 'granitemoe'
  | 'granitemoeshared'
  | 'granitemoe_swa'
  | 'mimo_v2_flash'
  | 'minimax_m2'
  | 'dots1'
  | 'glm4_moe_lite'
  | 'glm_moe_dsa'
  | 'ernie4_5_moe'
  | 'exaone_moe'
  | 'flex_olmo'
  | 'hunyuan_v1_moe'
  | 'mistral4'
  | 'gpt_oss'
  | 'phimoe'
  | 'solar_open'
  | 'axk1'
  | 'cohere2_moe'
  | 'hy_v3'
  | 'afmoe'
  | 'llama4_text'
  | 'qwen3_vl_moe_text'
  | 'glm4v_moe_text';

export type ExpertMatrixType = 'gate' | 'up' | 'down';

/** generation_config.json's temperature, top_p, top_k, min_p and repetition_penalty, each where it sets one. */
export interface SamplingDefaults {
  temperature?: number;
  topP?: number;
  /** 0 = off */
  topK?: number;
  /** 0 = off (transformers' min_p) */
  minP?: number;
  /** 1 = off (transformers' repetition_penalty) */
  repetitionPenalty?: number;
}

/** Normalised hyper-parameters, read from config.json per family (never hard-coded). */
export interface ModelConfig {
  family: FamilyName;
  /** config.json's model_type as written */
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /**
   * Standard attention: the rotated width at the start of each query/key head, where the family
   * rotates only part of it (GLM-4.5: head_dim × partial_rotary_factor); absent: the whole head.
   * MLA (Mistral 4, whose config derives it from partial_rotary_factor): qk_rope_head_dim, the
   * rotated end of each query/key head.
   */
  rotaryDim?: number;
  /**
   * Standard attention: RoPE rotates interleaved pairs (x[2i], x[2i+1]) as ERNIE-4.5 does, not
   * halves (x[i], x[i + d/2]); absent: halves. (MLA says it in `mla.ropeInterleave`.)
   */
  ropeInterleave?: boolean;
  /**
   * Hunyuan's RoPE "dynamic" with an NTK alpha: the base is θ·alpha^(head_dim/(head_dim−2)) for
   * every position up to max_position_embeddings (absent: no alpha)
   */
  ropeAlpha?: number;
  /**
   * PhiMoE's LongRoPE as transformers' PhimoeRotaryEmbedding runs it: every inverse frequency
   * divided by its short_factor entry (the long factors are never applied there) and cos/sin ×
   * mscale (short_mscale). Where longMscale (long_mscale) differs, transformers switches to it with
   * a batch's longest position, which the runtime does not do: such a model is not run
   * (rope-scaling.ts). Absent: no such scaling.
   */
  longRope?: { shortFactor: readonly number[]; mscale: number; longMscale: number };
  /** Hunyuan: the per-head q/k norms come after RoPE, not before */
  qkNormAfterRope?: boolean;
  /**
   * Llama 4's q/k norm (use_qk_norm, transformers' Llama4TextL2Norm, an RMS norm without a weight
   * despite its name, eps rms_norm_eps): each head of the queries and keys is RMS-normalised after
   * RoPE in the layers marked true (its RoPE layers). Absent: none (qkNorm says the weighted norms).
   */
  weightlessQkNormLayers?: readonly boolean[];
  /** sliding-window attention (checkpoint/sliding-window.ts); absent: every layer attends to every earlier position */
  slidingWindow?: SlidingWindow;
  /**
   * Chunked local attention (Llama 4's attention_chunk_size): in the layers it marks, the positions
   * fall into consecutive chunks of `size` from the sequence's start, and each query attends only to
   * the earlier positions of its own chunk. Not a sliding window: the first query of a chunk sees
   * itself alone, the last the whole chunk. Absent: no layer is chunked.
   */
  attentionChunk?: AttentionChunk;
  /**
   * Layers whose attention rotates nothing (NoPE): EXAONE's global layers beside its sliding ones.
   * nopeLayers[l] true: layer l applies no RoPE to its queries and keys. Absent: every layer ropes.
   */
  nopeLayers?: readonly boolean[];
  /**
   * The RoPE base of each layer, where the rotating layers' bases differ (GraniteMoE-SWA's
   * layer_rope_theta, MiMo-V2-Flash's per layer type; 0: a layer without RoPE); absent: every
   * rotating layer uses ropeTheta. Each layer rotates with its own base (runtime/rope.ts, ropeSpecOf).
   */
  layerRopeThetas?: readonly number[];
  tieWordEmbeddings: boolean;
  /** lm_head carries a bias [vocab] added to the logits (PhiMoE's lm_head_bias); absent: none */
  lmHeadBias?: boolean;
  /** routed experts per MoE layer */
  numExperts: number;
  topK: number;
  /** width p of one routed expert */
  expertIntermediateSize: number;
  /** width of dense MLP layers (0 when the family has none) */
  denseIntermediateSize: number;
  normTopkProb: boolean;
  routedScalingFactor: number;
  /** total width of the shared expert(s), 0 when none */
  sharedExpertIntermediateSize: number;
  /** Qwen2-MoE: sigmoid(shared_expert_gate(x)) multiplies the shared expert; DeepSeek: ungated */
  sharedExpertGated: boolean;
  /** q/k/v projections carry biases (Qwen2-MoE) */
  qkvBias: boolean;
  /** 'per-head' = Qwen3 (RMSNorm over head_dim after reshape); 'whole' = OLMoE (over the whole projection) */
  qkNorm: 'none' | 'per-head' | 'whole';
  /** 'mla': DeepSeek-V2's multi-head latent attention (src/runtime/mla-attention.ts) */
  attention: 'standard' | 'mla';
  /** DeepSeek-V2 multi-head latent attention sizes (present iff attention === 'mla') */
  mla?: MlaConfig;
  /**
   * DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5): an indexer picks the index_topk positions
   * each query attends to (src/runtime/sparse-attention.ts). Absent: no indexer.
   */
  sparseAttention?: SparseAttentionConfig;
  /**
   * Scalar multipliers on the Llama lineage's sums and scales, each where the family has it
   * (absent: none, plain sums and 1/√head_dim): the embeddings × embedding (Granite's
   * embedding_multiplier, AFMoE's muP √hidden_size), each attention and MLP output × residual
   * before it is added, the softmax scaled by attention instead of 1/√head_dim, the logits
   * divided by logits (Granite's other three).
   */
  multipliers?: Multipliers;
  /** o_proj carries a bias too (gpt-oss: attention_bias covers all four projections) */
  oBias?: boolean;
  /**
   * gpt-oss's attention sinks: a learned logit per query head that joins each softmax's
   * denominator and is then dropped (`self_attn.sinks`, [numHeads]); absent: none.
   */
  attentionSinks?: boolean;
  /** with attentionSinks, the layers that have them (MiMo-V2-Flash: its sliding layers); absent: every layer */
  sinkLayers?: readonly boolean[];
  /**
   * Standard attention whose layers differ in kv heads (MiMo-V2-Flash: its sliding layers have
   * twice num_key_value_heads): each layer's; absent: numKvHeads in every layer.
   */
  layerKvHeads?: readonly number[];
  /** standard attention: the width of a value head where it differs from a query/key head's (MiMo-V2-Flash's v_head_dim); absent: headDim */
  valueHeadDim?: number;
  /** every value multiplied by this before attention (MiMo-V2-Flash's attention_value_scale); absent: 1 */
  attentionValueScale?: number;
  /**
   * 'topk-softmax', gpt-oss's routing: the router's logits (with its own bias, `router.bias`) →
   * top-k → softmax over those k. 'topk-sigmoid', Llama 4's: the router's logits → top-k → the
   * sigmoid of each chosen logit. Absent: the softmax over all experts first (ModelConfig.topkMethod's rules).
   */
  routing?: 'topk-softmax' | 'topk-sigmoid' | 'sparsemixer';
  /**
   * PhiMoE's 'sparsemixer' routing at inference (transformers' sparsemixer, not training): two
   * experts, the best logit's, then the best of the rest; each weighed by a softmax over the logits
   * that lie within a relative margin of 2·routerJitterEps of it (router_jitter_noise), the others
   * masked, the first expert masked too for the second. Absent with other routings.
   */
  routerJitterEps?: number;
  /**
   * Llama 4: a token's routing weight for an expert multiplies the expert's input row (the
   * normalised hidden state), and the experts' outputs are summed unweighted. The experts are not
   * linear, so this is not the usual weighted sum of outputs. Absent: the weights multiply outputs.
   */
  routingWeightsScaleInputs?: boolean;
  /**
   * gpt-oss's experts: gate and up projections with biases, then (up + 1) · g · sigmoid(alpha · g)
   * with g = min(gate, limit) and up clamped to ±limit, then down with its bias. Absent: SwiGLU,
   * down(silu(gate) · up) without biases.
   */
  expertActivation?: ClampedSwiGlu;
  /**
   * Where each decoder layer's RMS norms sit around its attention and MLP (NormPlacement); absent:
   * Llama's, one on each sublayer's input (input_layernorm, post_attention_layernorm).
   */
  norms?: NormPlacement;
  /**
   * What the decoder layers' norms and the final norm compute (NormKind); absent: RMSNorm with a
   * weight. Their eps is rmsNormEps whatever the kind.
   */
  normKind?: NormKind;
  /**
   * Cohere's parallel block: the attention and the MLP both read the layer's one normalised input
   * (its attentionInput norm; the placement has no mlpInput norm) and both outputs join the
   * residual, x + attention(n) + mlp(n), summed in that order. Absent: the MLP reads the stream
   * after the attention's output has joined it.
   */
  parallelBlock?: boolean;
  /**
   * How the shared expert's output joins the routed experts' sum: 'average', Cohere2-MoE's
   * (routed + shared) / 2; absent: added.
   */
  sharedExpertCombination?: 'average';
  /**
   * Llama 4's attention temperature tuning, and Mistral 4's use of it (transformers'
   * get_llama_4_attn_scale): every query is multiplied by
   * 1 + beta·ln(1 + ⌊(position + positionOffset) / originalMaxPositions⌋) after RoPE (and any q/k
   * norm), so positions past each multiple of that length attend a little more sharply; in every
   * layer (Mistral 4, MLA) or in those `layers` marks (Llama 4: its NoPE layers, standard
   * attention). Absent: queries unscaled.
   */
  llama4QueryScale?: Llama4QueryScale;
  /** set when the language model sits inside a multimodal checkpoint (checkpoint/wrapped.ts): the wrapper's model_type, name and config.json (`raw` is its text_config) */
  multimodalWrapper?: { modelType: string; label: string; raw: Record<string, unknown> };
  /**
   * AFMoE's gated attention: the heads' output is multiplied element-wise by sigmoid(x·gateᵀ),
   * x the attention's input and gate `self_attn.gate_proj` [numHeads·headDim, hidden], before
   * o_proj. Absent: ungated.
   */
  attentionOutputGate?: boolean;
  /**
   * Qwen3-Next's gated attention: q_proj emits, per head, its query (headDim values) and then a
   * gate of as many (q [numHeads·2·headDim, hidden]); the heads' output is multiplied by
   * sigmoid(gate) before o_proj. Absent: q_proj emits the queries alone.
   */
  queryGate?: boolean;
  /**
   * Qwen3-Next's RMSNorms (Gemma's form): x̂·(1 + w), the stored weight centred on zero, in the
   * layers' norms, the q/k norms and the final norm. Absent: x̂·w.
   */
  zeroCentredNorms?: boolean;
  /** Gated DeltaNet linear attention in the layers it marks (Qwen3-Next); absent: every layer attends */
  linearAttention?: LinearAttentionConfig;
  /** OLMoE `clip_qkv`: q/k/v are clamped to ±clipQkv after projection (null/absent: no clamp) */
  clipQkv?: number | null;
  /**
   * DeepSeek `topk_method`: 'greedy' (plain top-k) or 'group_limited_greedy' (V2: keep the best
   * `topkGroup` of `nGroup` expert groups by group max first), or 'noaux_tc' (V3: sigmoid scores,
   * a correction bias for the choice, groups scored by their two best). Absent: plain top-k.
   * 'group_limited_top2' is no config's value but Mistral 4's router: V2's softmax probabilities,
   * groups scored as V3 scores them (the sum of their two best), no correction bias.
   */
  topkMethod?: 'greedy' | 'group_limited_greedy' | 'noaux_tc' | 'group_limited_top2';
  nGroup?: number;
  topkGroup?: number;
  /** token id used for padding, if any */
  padTokenId: number | null;
  bosTokenId: number | null;
  /** config.json's end-of-sequence id (the first, where it lists several) */
  eosTokenId: number | null;
  /**
   * Every id generation stops at, as transformers' generate() finds them: generation_config.json's
   * eos_token_id when that file names one (src/checkpoint/generation-config.ts), else all of
   * config.json's. Empty when neither names one.
   */
  eosTokenIds: readonly number[];
  /**
   * The model's own sampling settings, from generation_config.json (empty without one): what a
   * request or command that does not set them samples with, as vLLM applies them.
   */
  samplingDefaults: SamplingDefaults;
  /** the parsed config.json, untouched, for writing back */
  raw: Record<string, unknown>;
}

/**
 * Keys more than size − 1 positions before a query are masked (the query sees `size` positions,
 * itself included), in every layer, or in those `layers` marks true.
 */
export interface SlidingWindow {
  size: number;
  layers?: readonly boolean[];
}

/**
 * The RMS norms of a decoder layer by site: on a sublayer's input (the sublayer reads the
 * normalised stream, the residual stays as it was) or on its output (normalised before it is added
 * to the residual stream). Llama: both inputs. FlexOlmo (OLMo 2's layout): both outputs only.
 * A.X K1: both inputs, and the MLP's output in MoE layers. AFMoE: all four (sandwich norms).
 */
export interface NormPlacement {
  attentionInput: boolean;
  attentionOutput: boolean;
  mlpInput: boolean;
  /** 'moe': in MoE layers only */
  mlpOutput: boolean | 'moe';
}

export type NormSite = keyof NormPlacement;

/**
 * The computation of ModelConfig.normKind: 'rms', RMSNorm (x / √(mean(x²) + eps) × weight);
 * 'layer', torch's LayerNorm (x − mean) / √(biased variance + eps) × weight, + bias where `bias`
 * (Cohere's LayerNorm has no bias, PhiMoE's nn.LayerNorm has one; a bias is one tensor [hidden]
 * beside each weight, the final norm's too).
 */
export type NormKind = { kind: 'rms' } | { kind: 'layer'; bias: boolean };

/** gpt-oss's expert activation (ModelConfig.expertActivation); its projections carry biases. */
export interface ClampedSwiGlu {
  kind: 'clamped-swiglu';
  /** the sigmoid's slope (1.702) */
  alpha: number;
  /** gate clamped above, up on both sides, at this value (swiglu_limit, 7) */
  limit: number;
}

/**
 * The query scaling of ModelConfig.llama4QueryScale: Mistral 4's rope_parameters'
 * llama_4_scaling_beta and original_max_position_embeddings; Llama 4's attn_scale and floor_scale,
 * positions counted from 1.
 */
export interface Llama4QueryScale {
  beta: number;
  originalMaxPositions: number;
  /** added to each position before the division (Llama 4: 1); absent: 0 */
  positionOffset?: number;
  /** the layers scaled (Llama 4: its NoPE layers); absent: every layer */
  layers?: readonly boolean[];
}

/**
 * Qwen3-Next's Gated DeltaNet (ModelConfig.linearAttention): in the layers `layers` marks, the
 * attention is replaced by a recurrence over a state of numValueHeads × keyHeadDim × valueHeadDim
 * per sequence, fed through a depthwise causal convolution of convKernel positions over the
 * queries, keys and values (runtime/linear-attention.ts).
 */
export interface LinearAttentionConfig {
  layers: readonly boolean[];
  numKeyHeads: number;
  numValueHeads: number;
  keyHeadDim: number;
  valueHeadDim: number;
  convKernel: number;
}

/**
 * The tensors of a Gated DeltaNet layer: its input projections (LinearInputNames), conv1d
 * [convDim, 1, kernel] over q, k, v (convDim = 2·Kh·dk + Vh·dv), dt_bias and A_log [Vh], the gated
 * norm [dv], out_proj [H, Vh·dv].
 */
export interface LinearAttentionNames {
  inProj: LinearInputNames;
  conv1d: string;
  dtBias: string;
  aLog: string;
  norm: string;
  outProj: string;
}

/**
 * A Gated DeltaNet's input projections: Qwen3-Next's two grouped by key head (in_proj_qkvz
 * [2·Kh·dk + 2·Vh·dv, H]: each group's q, k, its value heads' v and z; in_proj_ba [2·Vh, H]: each
 * group's b's then a's), or Qwen3.5's four in the convolution's order (in_proj_qkv [2·Kh·dk + Vh·dv,
 * H]: all queries, all keys, all values; in_proj_z [Vh·dv, H]; in_proj_b and in_proj_a [Vh, H]).
 */
export type LinearInputNames = { qkvz: string; ba: string } | { qkv: string; z: string; b: string; a: string };

/** Chunked local attention (ModelConfig.attentionChunk): the chunk's length, in every layer or in those `layers` marks true. */
export interface AttentionChunk {
  size: number;
  layers?: readonly boolean[];
}

/** The scalar multipliers of ModelConfig.multipliers, each where the family has it. */
export interface Multipliers {
  embedding?: number;
  residual?: number;
  /** the softmax's scale itself (in place of 1/√head_dim) */
  attention?: number;
  /** the logits are divided by this */
  logits?: number;
}

export interface MlaConfig {
  /** null: queries come from one q_proj; a number: q_a_proj → q_a_layernorm → q_b_proj */
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  /** rope pairs interleaved (x[2i], x[2i+1]) as DeepSeek writes them; false: rotate-half halves (V3's rope_interleave) */
  ropeInterleave: boolean;
}

export interface SparseAttentionConfig {
  /** the positions the indexer keeps per query (index_topk) */
  indexTopK: number;
  /** the indexer's query heads and their width (index_n_heads, index_head_dim) */
  indexHeads: number;
  indexHeadDim: number;
  /** layers[l]: layer l runs an indexer of its own (GLM-5's "shared" layers reuse an earlier one's choice and hold none) */
  layers: readonly boolean[];
  /** the indexer ropes interleaved pairs (GLM-5) rather than halves (DeepSeek-V3.2) */
  ropeInterleave: boolean;
}

export interface MlpNames {
  gate: string;
  up: string;
  down: string;
}

/**
 * A SwiGLU MLP whose gate and up projections are one tensor, gateUp [2·width, H] with the gate
 * rows first, and down [H, width] (GraniteMoE-shared's shared_mlp.input_linear / output_linear).
 */
export interface FusedMlpNames {
  gateUp: string;
  down: string;
}

export interface AttentionNames {
  q: string;
  k: string;
  v: string;
  o: string;
  qBias?: string;
  kBias?: string;
  vBias?: string;
  qNorm?: string;
  kNorm?: string;
  /** gpt-oss: o_proj's bias [hidden] */
  oBias?: string;
  /** gpt-oss: the attention sinks [numHeads] */
  sinks?: string;
  /** AFMoE: the gate on the heads' output [numHeads·headDim, hidden] (ModelConfig.attentionOutputGate) */
  outputGate?: string;
  /**
   * DeepSeek-V2 MLA tensors (present iff config.attention === 'mla'). Then `q` is the query
   * projection (q_proj, or q_b_proj with q-LoRA), `k` is kv_a_proj_with_mqa, `v` is kv_b_proj:
   * MLA has no separate k/v projections, so code must branch on `mla` before using k/v.
   */
  mla?: MlaAttentionNames;
  /** DeepSeek Sparse Attention's indexer (present where the config's sparseAttention gives this layer one) */
  indexer?: IndexerNames;
  /**
   * Qwen3-Next's linear-attention layers (ModelConfig.linearAttention). Then `q` is in_proj_qkvz,
   * `k` in_proj_ba, `v` conv1d and `o` out_proj, whose shapes are not attention's: code must
   * branch on `linear` before using them.
   */
  linear?: LinearAttentionNames;
}

/**
 * The indexer's tensors: wq_b [heads·dim, q_lora_rank], wk [dim, H], k_norm (a LayerNorm, weight
 * and bias [dim]), weights_proj [heads, H].
 */
export interface IndexerNames {
  wqB: string;
  wk: string;
  kNorm: string;
  kNormBias: string;
  weightsProj: string;
}

export interface MlaAttentionNames {
  /** [heads·(nope+rope), H] when q_lora_rank is null */
  qProj?: string;
  /** q-LoRA: q_a_proj [q_lora_rank, H], q_a_layernorm [q_lora_rank], q_b_proj [heads·(nope+rope), q_lora_rank] */
  qA?: string;
  qANorm?: string;
  qB?: string;
  /** [kv_lora_rank + rope, H] */
  kvA: string;
  /** [kv_lora_rank] */
  kvANorm: string;
  /** [heads·(nope + v_head_dim), kv_lora_rank] */
  kvB: string;
}

export interface MoeNames {
  router: string;
  /** DeepSeek-V3's per-expert e_score_correction_bias [E], added to the scores for the choice only */
  routerBias?: string;
  /** the bias is stored as one row, [1, E] (ERNIE-4.5's moe_statics) */
  routerBiasRow?: boolean;
  /** per-expert 2-D tensors (the on-disk form of every supported family) */
  experts?: MlpNames[];
  /** gpt-oss: the router's bias [E], added to its logits (routing 'topk-softmax') */
  routerLogitBias?: string;
  /** the routed experts in one tensor per projection (FusedExpertNames) */
  fused?: FusedExpertNames;
  /** the shared expert(s): three tensors, or GraniteMoE-shared's fused gate/up and down */
  shared?: MlpNames | FusedMlpNames;
  /** [1, H] sigmoid gate of the shared expert (Qwen2-MoE) */
  sharedGate?: string;
}

/**
 * Routed experts stored fused, one tensor per projection, in one of three forms:
 * - 'rows' (transformers ≥ 5's in-memory form, which some writers put on disk; GraniteMoE's own):
 *   gate_up [E, 2I, H] with each expert's gate rows first, down [E, H, I]: each expert's matrix
 *   is a block of rows in nn.Linear layout.
 * - 'transposed-interleaved' (gpt-oss): gate_up [E, H, 2I] whose columns alternate gate, up, …,
 *   down [E, I, H]: y = x · W[e], so each matrix is the transpose of a slab (gate_up's every
 *   other column), with biases gate_up_bias [E, 2I] (interleaved alike) and down_bias [E, H].
 * - 'transposed' (Llama 4): gate_up [E, H, 2I] whose first I columns are the gate's and last I
 *   the up's (transformers' chunk(2, dim=-1)), down [E, I, H]: y = x · W[e] as gpt-oss's.
 */
export type FusedExpertForm = 'rows' | 'transposed-interleaved' | 'transposed';

export interface FusedExpertNames {
  gateUp: string;
  down: string;
  /** absent: 'rows' */
  form?: FusedExpertForm;
  gateUpBias?: string;
  downBias?: string;
}

export interface LayerLayout {
  index: number;
  kind: 'moe' | 'dense';
  /** the layer's norm weights by site, each where the config places one (ModelConfig.norms) */
  norms: Partial<Record<NormSite, string>>;
  /** their biases by site, where the config's norms have biases (ModelConfig.normKind) */
  normBiases?: Partial<Record<NormSite, string>>;
  attention: AttentionNames;
  moe?: MoeNames;
  dense?: MlpNames;
}

export interface ModelLayout {
  embed: string;
  finalNorm: string;
  /** the final norm's bias, where the config's norms have biases (ModelConfig.normKind) */
  finalNormBias?: string;
  /** equals `embed` when the embeddings are tied */
  lmHead: string;
  /** lm_head's bias [vocab], where the config gives it one (ModelConfig.lmHeadBias, PhiMoE's lm_head_bias) */
  lmHeadBias?: string;
  layers: LayerLayout[];
  /** where the decoder layers' tensors start when not at `model.layers.` (a language model inside a multimodal wrapper; see layerTensorPrefix) */
  layerPrefix?: string;
}

export interface TensorMeta {
  name: string;
  dtype: DType;
  shape: number[];
  /** shard file (absolute path) holding it */
  file: string;
  byteLength: number;
  /** presented decoded from another stored form (FP8 with its scales, MXFP4): reads are copies, never views of the mapped file */
  decoded?: true;
  /** FP8 codes with scales on disk that readExpertFp8 can keep as stored: values of a row sharing one scale */
  fp8Group?: number;
}

export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly layout: ModelLayout;
  /** number of safetensors files */
  readonly shardCount: number;
  /** every tensor in the checkpoint */
  tensorNames(): string[];
  tensor(name: string): TensorMeta | undefined;
  /** whole tensor decoded to f32 (BF16/F16/F8 decoded on the fly) */
  readF32(name: string): Promise<Float32Array>;
  /** rows [start, end) of a tensor viewed as 2-D [prod(shape[:-1]), shape[-1]] */
  readRowsF32(name: string, start: number, end: number): Promise<Float32Array>;
  /**
   * The whole tensor as stored, when it is stored as BF16: its 16-bit patterns (half the memory of
   * readF32's f32; widening them is exact). null when the tensor has another dtype.
   */
  readBf16?(name: string): Promise<Uint16Array | null>;
  /** Rows [start, end) as stored when the tensor is BF16 (see readBf16); null for another dtype. */
  readRowsBf16?(name: string, start: number, end: number): Promise<Uint16Array | null>;
  /** one routed expert's matrix ([p, d] for gate/up, [d, p] for down), per-expert or fused on disk */
  readExpert(layer: number, expert: number, type: ExpertMatrixType): Promise<Float32Array>;
  /**
   * The same matrix as stored, when it is stored as BF16: its 16-bit patterns (half the memory of
   * readExpert's f32; see ForwardKernels.gemmBf16). null when the tensor has another dtype.
   */
  readExpertBf16?(layer: number, expert: number, type: ExpertMatrixType): Promise<Uint16Array | null>;
  /**
   * The same matrix kept as stored when it is MXFP4 with its groups along the matrix's inputs
   * (gpt-oss's experts: a quarter of the BF16 form's memory; ForwardKernels.gemmMxfp4). null
   * otherwise: another dtype, or MXFP4 grouped along the outputs.
   */
  readExpertMxfp4?(layer: number, expert: number, type: ExpertMatrixType): Promise<Mxfp4Matrix | null>;
  /** The routed experts' tensors readExpertMxfp4 gives as stored (4.25 bits a value). */
  mxfp4TensorNames?(): Set<string>;
  /**
   * The same matrix kept as stored when it is FP8 (E4M3 codes with block scales: DeepSeek-V3's and
   * the Qwen3 "-FP8" releases' experts, half the BF16 form's memory; ForwardKernels.gemmFp8). null
   * otherwise: another dtype, or a transposed cut (gpt-oss's form).
   */
  readExpertFp8?(layer: number, expert: number, type: ExpertMatrixType): Promise<Fp8Matrix | null>;
  /** The routed experts' tensors readExpertFp8 gives as stored (a byte a value, and a scale a group of a row). */
  fp8TensorNames?(): Set<string>;
  /**
   * The routed experts' tensors (for a compressed model: also their factors) that a runtime keeping
   * BF16 weights holds as stored, 2 bytes a value (with readExpertBf16). The runtime adds the
   * non-expert matrices it keeps itself (bf16HeldTensorNames in src/runtime).
   */
  bf16TensorNames?(): Set<string>;
  /**
   * Reads from now on take their memory from `arena` (null: each read its own buffer again); see
   * TensorArena. For a load whose tensors are all kept and dropped together.
   */
  packReads?(arena: TensorArena | null): void;
  /**
   * Maps the checkpoint's files into memory (io/file-map.ts): reads of tensors kept as stored
   * hand out read-only views of the file's pages from now on. Returns the mapped files (to bring
   * their pages in and hand them back), null where nothing could be mapped (reads stay copies).
   * For a load whose tensors are held while the files stay as they are, as a served model's.
   */
  mapReads?(): MappedFiles | null;
  close(): Promise<void>;
}
