/**
 * What the forward pass needs from a model, as interfaces, so that a model whose experts are
 * stored differently (e.g. compressed: a shared basis, per-expert coefficients and a residual)
 * runs through the same code. The forward pass only ever asks a `WeightProvider` for one
 * decoder layer at a time, and a MoE layer for one expert at a time, so peak memory stays at
 * about one layer's dense weights plus activations.
 *
 * To run a compressed model, implement `ExpertWeights.forward` for the factored form and wrap a
 * provider so that `MoeWeights.expert(e)` returns it (see `withExperts` in ./checkpoint-weights.ts).
 */
import type { Engine, ExpertOperand } from '../engine/types.js';
import type { ModelConfig, NormSite } from '../checkpoint/types.js';
import type { Weights } from './weight-matrix.js';

/** One SwiGLU MLP (a routed expert, a shared expert or a dense layer's MLP). */
export interface ExpertWeights {
  /**
   * out (rows × hidden) = down(silu(gate(x)) ⊙ up(x)) for x (rows × hidden). `out` is
   * overwritten. Implementations must not keep references to x or out.
   */
  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void;
  /**
   * The three matrices when the expert holds them densely (f32 or BF16 as stored: gate and up
   * [width, hidden], down [hidden, width]); null or absent otherwise (a factored expert).
   */
  swiGluMatrices?(): SwiGluMatrices | null;
  /**
   * The three projections as ForwardKernels.swiGluExperts takes them when `forward` would apply
   * them for `rows` rows exactly as that kernel does: dense matrices, or factored ones applied
   * factored with a 'tile' residual or none. The MoE block runs every routed expert of a decoding
   * step or a prompt in one kernel call when each has them; null or absent otherwise (a matrix
   * that would be materialised, a 'random' residual).
   */
  swiGluOperands?(rows: number): SwiGluOperands | null;
  /**
   * One projection alone: out (rows × its outputs) = x · Wᵀ for gate or up (x rows × hidden,
   * out rows × width) or down (x rows × width, out rows × hidden), overwriting out. What an MoE
   * block with another activation or biases (gpt-oss's) runs its experts through.
   */
  project?(engine: Engine, which: 'gate' | 'up' | 'down', x: Float32Array, rows: number, out: Float32Array): void;
}

/** A SwiGLU's projections for ForwardKernels.swiGluExperts (gate and up [width, hidden], down [hidden, width]). */
export interface SwiGluOperands {
  /** the expert's intermediate size */
  width: number;
  gate: ExpertOperand;
  up: ExpertOperand;
  down: ExpertOperand;
}

/** A SwiGLU's matrices in nn.Linear layout (y = x·Wᵀ). */
export interface SwiGluMatrices {
  gate: Weights;
  up: Weights;
  down: Weights;
}

/** A layer's attention: Llama-lineage multi-head attention, or DeepSeek-V2's multi-head latent attention. */
export type AttentionWeights = StandardAttentionWeights | MlaAttentionWeights | LinearAttentionWeights;

/**
 * Qwen3-Next's Gated DeltaNet (linear-attention.ts; sizes in ModelConfig.linearAttention): the
 * projections f32 or BF16 as held, the rest f32.
 */
export interface LinearAttentionWeights {
  kind: 'linear';
  /** the input projections, grouped by key head (Qwen3-Next) or split (Qwen3.5; LinearInputNames) */
  inProj: { qkvz: Weights; ba: Weights } | { qkv: Weights; z: Weights; b: Weights; a: Weights };
  /** the depthwise convolution's taps [convDim, kernel] */
  conv1d: Float32Array;
  dtBias: Float32Array;
  aLog: Float32Array;
  /** the gated norm's weight [dv] */
  norm: Float32Array;
  /** [hidden, Vh·dv] */
  outProj: Weights;
}

/** The four projections are f32 or BF16 as stored (Weights); biases and norms are f32. */
export interface StandardAttentionWeights {
  kind?: 'standard';
  /** [numHeads·headDim, hidden]; with ModelConfig.queryGate [numHeads·2·headDim, hidden], each head's query then its gate */
  q: Weights;
  /** [kvHeads·headDim, hidden], the layer's kv heads (checkpoint/attention-shape.ts) */
  k: Weights;
  /** [kvHeads·valueHeadDim, hidden] */
  v: Weights;
  /** [hidden, numHeads·valueHeadDim] */
  o: Weights;
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  /** [headDim] (per-head) or [numHeads·headDim] (whole projection) */
  qNorm?: Float32Array;
  kNorm?: Float32Array;
  /** gpt-oss: o_proj's bias [hidden] */
  oBias?: Float32Array;
  /** gpt-oss, MiMo-V2-Flash's windowed layers: one sink logit per query head [numHeads] (ModelConfig.attentionSinks, sinkLayers) */
  sinks?: Float32Array;
  /** AFMoE: the gate on the heads' output [numHeads·headDim, hidden] (ModelConfig.attentionOutputGate) */
  outputGate?: Weights;
}

/**
 * DeepSeek-V2's multi-head latent attention (sizes in ModelConfig.mla; nope, rope and v are the
 * per-head widths). The projections are f32 or BF16 as stored, except kv_b_proj, held f32: its
 * per-head blocks multiply from both sides (mla-attention.ts absorbs them into the query and the
 * output).
 */
export interface MlaAttentionWeights {
  kind: 'mla';
  /** q_proj [heads·(nope+rope), hidden], or q_b_proj [heads·(nope+rope), q_lora_rank] after qA and qANorm */
  q: Weights;
  /** q-LoRA: q_a_proj [q_lora_rank, hidden] */
  qA?: Weights;
  /** q-LoRA: q_a_layernorm [q_lora_rank] */
  qANorm?: Float32Array;
  /** kv_a_proj_with_mqa [kv_lora_rank + rope, hidden] */
  kvA: Weights;
  /** kv_a_layernorm [kv_lora_rank] */
  kvANorm: Float32Array;
  /** kv_b_proj [heads·(nope + v), kv_lora_rank] */
  kvB: Float32Array;
  /** o_proj [hidden, heads·v] */
  o: Weights;
  /** DeepSeek Sparse Attention's indexer, in the layers that run one (ModelConfig.sparseAttention) */
  indexer?: IndexerWeights;
}

/** The indexer's projections (sizes in ModelConfig.sparseAttention; mla-attention.ts runs it). */
export interface IndexerWeights {
  /** wq_b [heads·dim, q_lora_rank]: the index queries from the query's q-LoRA projection */
  wqB: Weights;
  /** wk [dim, hidden]: one index key per position */
  wk: Weights;
  /** k_norm, a LayerNorm over the key: weight and bias [dim] */
  kNorm: Float32Array;
  kNormBias: Float32Array;
  /** weights_proj [heads, hidden]: each index head's weight, per position */
  weightsProj: Weights;
}

export interface MoeWeights {
  /** router [numExperts, hidden] */
  router: Float32Array;
  /** DeepSeek-V3: the per-expert bias added to the router's scores for the choice only [numExperts] */
  routerBias?: Float32Array;
  /** gpt-oss: the router's bias, added to its logits [numExperts] (ModelConfig.routing 'topk-softmax') */
  routerLogitBias?: Float32Array;
  /**
   * gpt-oss: the routed experts' biases, gate_up [numExperts, 2·width] (gate and up interleaved,
   * as stored) and down [numExperts, hidden] (ModelConfig.expertActivation). The MoE block applies
   * them around the expert's projections (ExpertWeights.project).
   */
  expertBiases?: { gateUp: Float32Array; down: Float32Array };
  /** loads one routed expert; the caller drops it before asking for the next */
  expert(index: number): Promise<ExpertWeights>;
  /**
   * The routed expert when it is held in memory already, handed out at once (counted as a use,
   * as `expert` counts one); undefined when it would have to be read. Providers that keep their
   * experts resident have it, streaming ones do not.
   */
  residentExpert?(index: number): ExpertWeights | undefined;
  /** shared expert(s), when the family has them */
  shared?: ExpertWeights;
  /** Qwen2-MoE: [hidden] row of the sigmoid gate that scales the shared expert */
  sharedGate?: Float32Array;
}

/** One norm's parameters: its weight, and its bias where the config's norms have one (ModelConfig.normKind). */
export interface NormWeights {
  weight: Float32Array;
  bias?: Float32Array;
}

export interface LayerWeights {
  index: number;
  /** the norms by site, each where the config places one (ModelConfig.norms) */
  norms: Partial<Record<NormSite, NormWeights>>;
  attention: AttentionWeights;
  mlp: { kind: 'moe'; moe: MoeWeights } | { kind: 'dense'; dense: ExpertWeights };
}

export interface WeightProvider {
  readonly config: ModelConfig;
  /** rows of the embedding table for these token ids (ids.length × hidden) */
  embed(ids: Int32Array): Promise<Float32Array>;
  layer(index: number): Promise<LayerWeights>;
  finalNorm(): Promise<NormWeights>;
  /** rows [start, end) of the output projection (tied embeddings: of the embedding table), f32 or BF16 */
  lmHeadRows(start: number, end: number): Promise<Weights>;
  /** lm_head's bias [vocab], added to the logits (ModelConfig.lmHeadBias); null where it has none */
  lmHeadBias(): Promise<Float32Array | null>;
  /**
   * Rows [start, end) of the embedding table as held (f32 or BF16), for a wrapper that keeps the
   * table resident and looks ids up itself (ResidentWeights). Optional: `embed` is the contract.
   */
  embedRows?(start: number, end: number): Promise<Weights>;
}
