/**
 * Every tensor a layout names, with the shape config.json implies and the role it plays. This one
 * list drives validation (exists? right shape?) and the parameter counts by role.
 */
import type { FusedMlpNames, LayerLayout, MlpNames, ModelConfig, ModelLayout } from './types.js';
import { attentionShapeOf } from './attention-shape.js';
import { fusedExpertShapes } from './expert-location.js';

export type TensorRole =
  | 'embedding'
  | 'lm-head'
  | 'norm'
  | 'attention'
  | 'router'
  | 'routed-gate'
  | 'routed-up'
  /** fused [E, 2I, H]: gate and up of every expert in one tensor */
  | 'routed-gate-up'
  | 'routed-down'
  | 'shared-expert'
  | 'shared-expert-gate'
  | 'dense-mlp';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  role: TensorRole;
  /** decoder layer, absent for embeddings, final norm and lm_head */
  layer?: number;
}

function attentionTensors(config: ModelConfig, layer: LayerLayout): ExpectedTensor[] {
  const H = config.hiddenSize;
  const a = layer.attention;
  const out: ExpectedTensor[] = [];
  const add = (name: string, shape: number[]) => out.push({ name, shape, role: 'attention', layer: layer.index });
  const lin = config.linearAttention;
  if (a.linear && lin) {
    const keyWidth = lin.numKeyHeads * lin.keyHeadDim;
    const valueWidth = lin.numValueHeads * lin.valueHeadDim;
    const p = a.linear.inProj;
    if ('qkvz' in p) {
      add(p.qkvz, [2 * keyWidth + 2 * valueWidth, H]);
      add(p.ba, [2 * lin.numValueHeads, H]);
    } else {
      add(p.qkv, [2 * keyWidth + valueWidth, H]);
      add(p.z, [valueWidth, H]);
      add(p.b, [lin.numValueHeads, H]);
      add(p.a, [lin.numValueHeads, H]);
    }
    add(a.linear.conv1d, [2 * keyWidth + valueWidth, 1, lin.convKernel]);
    add(a.linear.dtBias, [lin.numValueHeads]);
    add(a.linear.aLog, [lin.numValueHeads]);
    add(a.linear.norm, [lin.valueHeadDim]);
    add(a.linear.outProj, [H, valueWidth]);
    return out;
  }
  if (config.attention === 'mla' && config.mla && a.mla) {
    const m = config.mla;
    const qHead = m.qkNopeHeadDim + m.qkRopeHeadDim;
    if (a.mla.qProj) add(a.mla.qProj, [config.numHeads * qHead, H]);
    if (a.mla.qA && a.mla.qANorm && a.mla.qB && m.qLoraRank !== null) {
      add(a.mla.qA, [m.qLoraRank, H]);
      add(a.mla.qANorm, [m.qLoraRank]);
      add(a.mla.qB, [config.numHeads * qHead, m.qLoraRank]);
    }
    add(a.mla.kvA, [m.kvLoraRank + m.qkRopeHeadDim, H]);
    add(a.mla.kvANorm, [m.kvLoraRank]);
    add(a.mla.kvB, [config.numHeads * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank]);
    add(a.o, [H, config.numHeads * m.vHeadDim]);
    const dsa = config.sparseAttention;
    if (dsa && a.indexer && m.qLoraRank !== null) {
      add(a.indexer.wqB, [dsa.indexHeads * dsa.indexHeadDim, m.qLoraRank]);
      add(a.indexer.wk, [dsa.indexHeadDim, H]);
      add(a.indexer.kNorm, [dsa.indexHeadDim]);
      add(a.indexer.kNormBias, [dsa.indexHeadDim]);
      add(a.indexer.weightsProj, [dsa.indexHeads, H]);
    }
    return out;
  }
  const shape = attentionShapeOf(config, layer.index);
  const qWidth = shape.heads * shape.headDim;
  const kvWidth = shape.kvHeads * shape.headDim;
  const vWidth = shape.kvHeads * shape.valueHeadDim;
  // Qwen3-Next's q_proj emits each head's gate after its query
  add(a.q, [config.queryGate ? 2 * qWidth : qWidth, H]);
  add(a.k, [kvWidth, H]);
  add(a.v, [vWidth, H]);
  add(a.o, [H, shape.heads * shape.valueHeadDim]);
  if (a.oBias) add(a.oBias, [H]);
  if (a.sinks) add(a.sinks, [config.numHeads]);
  if (a.outputGate) add(a.outputGate, [qWidth, H]);
  if (a.qBias) add(a.qBias, [qWidth]);
  if (a.kBias) add(a.kBias, [kvWidth]);
  if (a.vBias) add(a.vBias, [vWidth]);
  if (a.qNorm && a.kNorm) {
    // per-head (Qwen3) norms act on head_dim; whole-projection (OLMoE) norms on the full width
    add(a.qNorm, config.qkNorm === 'per-head' ? [config.headDim] : [qWidth]);
    add(a.kNorm, config.qkNorm === 'per-head' ? [config.headDim] : [kvWidth]);
  }
  return out;
}

function mlpTensors(names: MlpNames | FusedMlpNames, width: number, H: number, role: TensorRole, layer: number): ExpectedTensor[] {
  if ('gateUp' in names) {
    return [
      { name: names.gateUp, shape: [2 * width, H], role, layer },
      { name: names.down, shape: [H, width], role, layer },
    ];
  }
  return [
    { name: names.gate, shape: [width, H], role, layer },
    { name: names.up, shape: [width, H], role, layer },
    { name: names.down, shape: [H, width], role, layer },
  ];
}

function ffnTensors(config: ModelConfig, layer: LayerLayout): ExpectedTensor[] {
  const H = config.hiddenSize;
  const I = config.expertIntermediateSize;
  const E = config.numExperts;
  const l = layer.index;
  const out: ExpectedTensor[] = [];
  if (layer.dense) out.push(...mlpTensors(layer.dense, config.denseIntermediateSize, H, 'dense-mlp', l));
  const moe = layer.moe;
  if (!moe) return out;
  out.push({ name: moe.router, shape: [E, H], role: 'router', layer: l });
  if (moe.routerBias) out.push({ name: moe.routerBias, shape: moe.routerBiasRow ? [1, E] : [E], role: 'router', layer: l });
  if (moe.routerLogitBias) out.push({ name: moe.routerLogitBias, shape: [E], role: 'router', layer: l });
  if (moe.fused) {
    const shapes = fusedExpertShapes(config, moe.fused);
    out.push({ name: moe.fused.gateUp, shape: shapes.gateUp, role: 'routed-gate-up', layer: l });
    out.push({ name: moe.fused.down, shape: shapes.down, role: 'routed-down', layer: l });
    // expert biases go with their experts' parameters (counts by role)
    if (moe.fused.gateUpBias) out.push({ name: moe.fused.gateUpBias, shape: [E, 2 * I], role: 'routed-gate-up', layer: l });
    if (moe.fused.downBias) out.push({ name: moe.fused.downBias, shape: [E, H], role: 'routed-down', layer: l });
  }
  for (const expert of moe.experts ?? []) {
    out.push({ name: expert.gate, shape: [I, H], role: 'routed-gate', layer: l });
    out.push({ name: expert.up, shape: [I, H], role: 'routed-up', layer: l });
    out.push({ name: expert.down, shape: [H, I], role: 'routed-down', layer: l });
  }
  if (moe.shared) out.push(...mlpTensors(moe.shared, config.sharedExpertIntermediateSize, H, 'shared-expert', l));
  if (moe.sharedGate) out.push({ name: moe.sharedGate, shape: [1, H], role: 'shared-expert-gate', layer: l });
  return out;
}

/** Every tensor the layout names, in checkpoint order (embeddings, layers, final norm, head). */
export function expectedTensors(config: ModelConfig, layout: ModelLayout): ExpectedTensor[] {
  const H = config.hiddenSize;
  const out: ExpectedTensor[] = [{ name: layout.embed, shape: [config.vocabSize, H], role: 'embedding' }];
  for (const layer of layout.layers) {
    const norm = (name: string | undefined) => (name ? [{ name, shape: [H], role: 'norm' as const, layer: layer.index }] : []);
    const n = layer.norms;
    const b = layer.normBiases ?? {};
    out.push(...norm(n.attentionInput), ...norm(b.attentionInput), ...attentionTensors(config, layer), ...norm(n.attentionOutput), ...norm(b.attentionOutput));
    out.push(...norm(n.mlpInput), ...norm(b.mlpInput), ...ffnTensors(config, layer), ...norm(n.mlpOutput), ...norm(b.mlpOutput));
  }
  out.push({ name: layout.finalNorm, shape: [H], role: 'norm' });
  if (layout.finalNormBias) out.push({ name: layout.finalNormBias, shape: [H], role: 'norm' });
  if (layout.lmHead !== layout.embed) out.push({ name: layout.lmHead, shape: [config.vocabSize, H], role: 'lm-head' });
  if (layout.lmHeadBias) out.push({ name: layout.lmHeadBias, shape: [config.vocabSize], role: 'lm-head' });
  return out;
}
