/**
 * A JSON-ready summary of an opened checkpoint: what `rfid-moe inspect` prints and what reports
 * embed. Everything here is derived from the checkpoint, nothing is re-read from disk.
 */
import path from 'node:path';
import { parameterCounts, type ParameterCounts } from './counts.js';
import { expectedTensors } from './expected.js';
import { fp8BlockQuantization } from './fp8-blocks.js';
import { mxfp4Quantization } from './mxfp4.js';
import { checkpointFamily } from './open.js';
import { familyByName } from './registry.js';
import { ropeScalingOf } from './rope-scaling.js';
import { unrunnableReason } from './runnable.js';
import { attentionChunkOf, slidingWindowOf } from './sliding-window.js';
import type { Checkpoint, ClampedSwiGlu, Llama4QueryScale, ModelConfig, Multipliers, NormKind, NormPlacement } from './types.js';

export interface LayerDescription {
  index: number;
  kind: 'moe' | 'dense';
  /** routed experts in this layer (0 for dense layers) */
  experts: number;
  /** how the routed experts are stored; absent for dense layers */
  expertStorage?: 'per-expert' | 'fused';
  sharedExpert: boolean;
}

export interface CheckpointDescription {
  dir: string;
  family: ModelConfig['family'];
  familyLabel: string;
  modelType: string;
  /** the multimodal checkpoint around the language model, where there is one: its model_type and name (its other tensors are carried into outputs unchanged) */
  multimodalWrapper?: { modelType: string; label: string };
  attention: ModelConfig['attention'];
  /** false when the runtime cannot run this model (checkpoint/runnable.ts says why) */
  runnable: boolean;
  /** the RoPE scaling's type ('default' when none) */
  ropeScaling: string;
  hiddenSize: number;
  vocabSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** MiMo-V2-Flash: each layer's kv heads, where layers differ (ModelConfig.layerKvHeads) */
  layerKvHeads?: number[];
  /** MiMo-V2-Flash: the width of a value head, where it differs from headDim (ModelConfig.valueHeadDim) */
  valueHeadDim?: number;
  /** MiMo-V2-Flash: what every value is multiplied by (ModelConfig.attentionValueScale) */
  attentionValueScale?: number;
  /** the rotated width of each head where only part of it rotates (GLM-4.5 its first values, Mistral 4's MLA its last); absent: the whole head */
  rotaryDim?: number;
  /**
   * Mistral 4 and Llama 4: queries scaled by 1 + beta·ln(1 + ⌊(position + positionOffset) /
   * originalMaxPositions⌋) (ModelConfig.llama4QueryScale), in `layers` (absent: every layer)
   */
  llama4QueryScale?: { beta: number; originalMaxPositions: number; positionOffset?: number; layers?: number[] };
  /** sliding-window attention: the window, and the layers that use it; absent where every layer attends to all earlier positions */
  slidingWindow?: { size: number; layers: number[] };
  /** where each layer's norms sit (ModelConfig.norms); absent: Llama's, one before each sublayer */
  norms?: NormPlacement;
  /** what the decoder's norms compute where that is not RMSNorm (ModelConfig.normKind): LayerNorm, with or without a bias */
  normKind?: NormKind;
  /** Cohere: the attention and the MLP read the same normed input and join the residual together (ModelConfig.parallelBlock) */
  parallelBlock?: true;
  /** Llama 4's chunked attention: the chunk's length, and the layers that attend within it (ModelConfig.attentionChunk) */
  attentionChunk?: { size: number; layers: number[] };
  /** Llama 4: the layers whose q/k heads are RMS-normalised without a weight after RoPE (ModelConfig.weightlessQkNormLayers) */
  weightlessQkNormLayers?: number[];
  /** layers whose attention applies no RoPE (EXAONE's global layers); absent where every layer ropes */
  nopeLayers?: number[];
  /** GraniteMoE-SWA, MiMo-V2-Flash: each layer's RoPE base (0: none), where the rotating layers' bases differ (ModelConfig.layerRopeThetas) */
  layerRopeThetas?: number[];
  /** DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5): the positions its indexer keeps, and the layers that run one */
  sparseAttention?: { indexTopK: number; indexerLayers: number[] };
  /** GraniteMoE's scalar multipliers, AFMoE's muP embedding scale; absent where the family has none */
  multipliers?: Multipliers;
  /** FP8 weights read dequantised to BF16 (`dtypes` counts them as BF16): how they are stored; absent for float checkpoints */
  fp8Blocks?: { method: 'fp8' | 'compressed-tensors'; block: [number, number] | null };
  /** MXFP4 tensors (`…_blocks` + `…_scales`, gpt-oss's experts) read dequantised to BF16: config.json's modules_to_not_convert; absent for other checkpoints */
  mxfp4?: { modulesToNotConvert: string[] };
  moeLayers: number[];
  denseLayers: number[];
  numExperts: number;
  topK: number;
  normTopkProb: boolean;
  routedScalingFactor: number;
  /**
   * how the top-k is chosen: 'softmax' (plain), DeepSeek-V2's 'group_limited_greedy', V3's
   * 'noaux_tc', Mistral 4's 'group_limited_top2' (softmax, groups scored by their two best), or
   * gpt-oss's 'topk-softmax' (the top-k of the biased logits, a softmax over those k), or Llama 4's
   * 'topk-sigmoid' (the top-k of the logits, each chosen one's sigmoid)
   */
  routing: 'softmax' | 'group_limited_greedy' | 'noaux_tc' | 'group_limited_top2' | 'topk-softmax' | 'topk-sigmoid' | 'sparsemixer';
  /** PhiMoE's sparsemixer: its router_jitter_noise, half the relative margin of the logits each softmax keeps (ModelConfig.routerJitterEps) */
  routerJitterEps?: number;
  /** PhiMoE: lm_head carries a bias (ModelConfig.lmHeadBias) */
  lmHeadBias?: true;
  /** AFMoE: the heads' output multiplied by sigmoid(gate_proj(x)) before o_proj (ModelConfig.attentionOutputGate) */
  attentionOutputGate?: true;
  /** Qwen3-Next: q_proj emits each head's gate after its query, the heads' output × sigmoid(gate) (ModelConfig.queryGate) */
  queryGate?: true;
  /** Qwen3-Next: RMSNorms multiply by 1 + w (ModelConfig.zeroCentredNorms) */
  zeroCentredNorms?: true;
  /** Qwen3-Next's Gated DeltaNet: its sizes and the layers that run it in place of attention (ModelConfig.linearAttention) */
  linearAttention?: { layers: number[]; numKeyHeads: number; numValueHeads: number; keyHeadDim: number; valueHeadDim: number; convKernel: number };
  /** Llama 4: the routing weights multiply the experts' inputs, not their outputs (ModelConfig.routingWeightsScaleInputs) */
  routingWeightsScaleInputs?: true;
  /** gpt-oss: the router's logits carry a bias (MoeNames.routerLogitBias) */
  routerLogitBias?: true;
  /** Cohere2-MoE: the shared expert's output averaged with the routed sum, not added (ModelConfig.sharedExpertCombination) */
  sharedExpertCombination?: 'average';
  /** gpt-oss: a sink logit per head in every attention softmax; absent where the family has none */
  attentionSinks?: true;
  /** MiMo-V2-Flash: the layers that have sinks, where not every layer has them (ModelConfig.sinkLayers) */
  sinkLayers?: number[];
  /** gpt-oss's expert activation (with biases on the experts' projections); absent: SwiGLU without biases */
  expertActivation?: ClampedSwiGlu;
  expertIntermediateSize: number;
  sharedExpertIntermediateSize: number;
  denseIntermediateSize: number;
  tieWordEmbeddings: boolean;
  /** [p, d] for gate/up and [d, p] for down: the matrices readExpert returns */
  expertShapes: { gate: [number, number]; up: [number, number]; down: [number, number] };
  expertStorage: 'per-expert' | 'fused' | 'mixed';
  layers: LayerDescription[];
  /** dtype → number of tensors stored in it */
  dtypes: Record<string, number>;
  shardCount: number;
  /** shard file names, relative to dir */
  files: string[];
  parameters: ParameterCounts;
  validation: {
    ok: true;
    /** tensors the layout expects, all present with the implied shape and a decodable dtype */
    tensorsChecked: number;
    /** stored tensors the layout does not use */
    unusedTensors: string[];
  };
}

export function describeCheckpoint(ckpt: Checkpoint): CheckpointDescription {
  const c = ckpt.config;
  const layers: LayerDescription[] = ckpt.layout.layers.map((l) => ({
    index: l.index,
    kind: l.kind,
    experts: l.moe ? c.numExperts : 0,
    ...(l.moe ? { expertStorage: l.moe.fused ? ('fused' as const) : ('per-expert' as const) } : {}),
    sharedExpert: Boolean(l.moe?.shared),
  }));
  const storages = new Set(layers.flatMap((l) => (l.expertStorage ? [l.expertStorage] : [])));
  const expected = expectedTensors(c, ckpt.layout);
  const expectedNames = new Set(expected.map((t) => t.name));
  const dtypes: Record<string, number> = {};
  const files = new Set<string>();
  for (const name of ckpt.tensorNames()) {
    const meta = ckpt.tensor(name)!;
    dtypes[meta.dtype] = (dtypes[meta.dtype] ?? 0) + 1;
    files.add(path.relative(ckpt.dir, meta.file));
  }
  const family = checkpointFamily(ckpt) ?? familyByName(c.family);
  return {
    dir: ckpt.dir,
    family: c.family,
    familyLabel: family.label,
    modelType: c.modelType,
    ...(c.multimodalWrapper ? { multimodalWrapper: { modelType: c.multimodalWrapper.modelType, label: c.multimodalWrapper.label } } : {}),
    attention: c.attention,
    runnable: unrunnableReason(c) === null,
    ropeScaling: ropeScalingOf(c.raw).type,
    hiddenSize: c.hiddenSize,
    vocabSize: c.vocabSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    ...(c.layerKvHeads !== undefined ? { layerKvHeads: [...c.layerKvHeads] } : {}),
    ...(c.valueHeadDim !== undefined ? { valueHeadDim: c.valueHeadDim } : {}),
    ...(c.attentionValueScale !== undefined ? { attentionValueScale: c.attentionValueScale } : {}),
    ...(c.rotaryDim !== undefined ? { rotaryDim: c.rotaryDim } : {}),
    ...(c.llama4QueryScale !== undefined
      ? {
          llama4QueryScale: {
            beta: c.llama4QueryScale.beta,
            originalMaxPositions: c.llama4QueryScale.originalMaxPositions,
            ...(c.llama4QueryScale.positionOffset !== undefined ? { positionOffset: c.llama4QueryScale.positionOffset } : {}),
            ...(c.llama4QueryScale.layers !== undefined ? { layers: marked(c.llama4QueryScale.layers) } : {}),
          },
        }
      : {}),
    ...(c.slidingWindow !== undefined
      ? { slidingWindow: { size: c.slidingWindow.size, layers: Array.from({ length: c.numLayers }, (_, l) => l).filter((l) => slidingWindowOf(c, l) !== null) } }
      : {}),
    ...(c.norms !== undefined ? { norms: c.norms } : {}),
    ...(c.normKind !== undefined && c.normKind.kind !== 'rms' ? { normKind: c.normKind } : {}),
    ...(c.parallelBlock ? { parallelBlock: true as const } : {}),
    ...(c.attentionChunk !== undefined
      ? { attentionChunk: { size: c.attentionChunk.size, layers: Array.from({ length: c.numLayers }, (_, l) => l).filter((l) => attentionChunkOf(c, l) !== null) } }
      : {}),
    ...(c.weightlessQkNormLayers !== undefined ? { weightlessQkNormLayers: marked(c.weightlessQkNormLayers) } : {}),
    ...(c.nopeLayers !== undefined ? { nopeLayers: marked(c.nopeLayers) } : {}),
    ...(c.layerRopeThetas !== undefined ? { layerRopeThetas: [...c.layerRopeThetas] } : {}),
    ...(c.sparseAttention !== undefined
      ? {
          sparseAttention: {
            indexTopK: c.sparseAttention.indexTopK,
            indexerLayers: c.sparseAttention.layers.flatMap((has, l) => (has ? [l] : [])),
          },
        }
      : {}),
    ...(c.multipliers !== undefined ? { multipliers: c.multipliers } : {}),
    ...(c.attentionSinks ? { attentionSinks: true as const } : {}),
    ...(c.attentionSinks && c.sinkLayers !== undefined ? { sinkLayers: marked(c.sinkLayers) } : {}),
    ...(c.attentionOutputGate ? { attentionOutputGate: true as const } : {}),
    ...(c.queryGate ? { queryGate: true as const } : {}),
    ...(c.zeroCentredNorms ? { zeroCentredNorms: true as const } : {}),
    ...(c.linearAttention !== undefined ? { linearAttention: { ...c.linearAttention, layers: marked(c.linearAttention.layers) } } : {}),
    ...(c.expertActivation !== undefined ? { expertActivation: c.expertActivation } : {}),
    ...fp8Description(c.raw),
    ...mxfp4Description(c.raw),
    moeLayers: layers.filter((l) => l.kind === 'moe').map((l) => l.index),
    denseLayers: layers.filter((l) => l.kind === 'dense').map((l) => l.index),
    numExperts: c.numExperts,
    topK: c.topK,
    normTopkProb: c.normTopkProb,
    routedScalingFactor: c.routedScalingFactor,
    routing: c.routing ?? (c.topkMethod === undefined || c.topkMethod === 'greedy' ? 'softmax' : c.topkMethod),
    ...(c.routingWeightsScaleInputs ? { routingWeightsScaleInputs: true as const } : {}),
    ...(ckpt.layout.layers.some((l) => l.moe?.routerLogitBias !== undefined) ? { routerLogitBias: true as const } : {}),
    ...(c.sharedExpertCombination ? { sharedExpertCombination: c.sharedExpertCombination } : {}),
    ...(c.routerJitterEps !== undefined ? { routerJitterEps: c.routerJitterEps } : {}),
    ...(c.lmHeadBias ? { lmHeadBias: true as const } : {}),
    expertIntermediateSize: c.expertIntermediateSize,
    sharedExpertIntermediateSize: c.sharedExpertIntermediateSize,
    denseIntermediateSize: c.denseIntermediateSize,
    tieWordEmbeddings: c.tieWordEmbeddings,
    expertShapes: {
      gate: [c.expertIntermediateSize, c.hiddenSize],
      up: [c.expertIntermediateSize, c.hiddenSize],
      down: [c.hiddenSize, c.expertIntermediateSize],
    },
    expertStorage: storages.size > 1 ? 'mixed' : storages.has('fused') ? 'fused' : 'per-expert',
    layers,
    dtypes,
    shardCount: ckpt.shardCount,
    files: [...files].sort(),
    parameters: parameterCounts(ckpt),
    validation: {
      ok: true,
      tensorsChecked: expected.length,
      unusedTensors: ckpt.tensorNames().filter((n) => !expectedNames.has(n)).sort(),
    },
  };
}

/** The indices of the layers a per-layer flag marks. */
function marked(flags: readonly boolean[]): number[] {
  return flags.flatMap((on, l) => (on ? [l] : []));
}

function fp8Description(raw: Record<string, unknown>): Pick<CheckpointDescription, 'fp8Blocks'> {
  const fp8 = fp8BlockQuantization(raw);
  return fp8 ? { fp8Blocks: { method: fp8.method, block: fp8.block ? [fp8.block[0], fp8.block[1]] : null } } : {};
}

function mxfp4Description(raw: Record<string, unknown>): Pick<CheckpointDescription, 'mxfp4'> {
  const q = mxfp4Quantization(raw);
  return q ? { mxfp4: { modulesToNotConvert: [...q.modulesToNotConvert] } } : {};
}
