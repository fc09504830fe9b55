/**
 * Parameter counts by role, from the tensors actually present (element counts of the stored
 * tensors, classified by the layout). `total` counts every tensor in the checkpoint, so tensors the
 * layout does not name show up in `other`.
 */
import { expectedTensors, type TensorRole } from './expected.js';
import type { Checkpoint } from './types.js';

export interface ParameterCounts {
  /** every tensor in the checkpoint */
  total: number;
  /** routed experts: gate + up + down of every expert of every MoE layer */
  experts: number;
  /** routed experts' gate + up (what RFID-MoE compresses) */
  routedGateUp: number;
  /** routed experts' down */
  routedDown: number;
  /** shared expert MLPs plus their sigmoid gates */
  sharedExperts: number;
  /** router (gate) matrices */
  routers: number;
  /** attention projections, biases and q/k norms */
  attention: number;
  /** MLPs of dense (non-MoE) layers */
  denseMlp: number;
  /** token embeddings */
  embeddings: number;
  /** lm_head (0 when tied to the embeddings) */
  lmHead: number;
  /** input, post-attention and final norms */
  norms: number;
  /** stored tensors the layout does not name (e.g. rotary buffers some writers keep) */
  other: number;
}

const ROLE_BUCKET: Record<TensorRole, Exclude<keyof ParameterCounts, 'total' | 'experts' | 'other'>> = {
  embedding: 'embeddings',
  'lm-head': 'lmHead',
  norm: 'norms',
  attention: 'attention',
  router: 'routers',
  'routed-gate': 'routedGateUp',
  'routed-up': 'routedGateUp',
  'routed-gate-up': 'routedGateUp',
  'routed-down': 'routedDown',
  'shared-expert': 'sharedExperts',
  'shared-expert-gate': 'sharedExperts',
  'dense-mlp': 'denseMlp',
};

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function parameterCounts(ckpt: Checkpoint): ParameterCounts {
  const counts: ParameterCounts = {
    total: 0,
    experts: 0,
    routedGateUp: 0,
    routedDown: 0,
    sharedExperts: 0,
    routers: 0,
    attention: 0,
    denseMlp: 0,
    embeddings: 0,
    lmHead: 0,
    norms: 0,
    other: 0,
  };
  for (const name of ckpt.tensorNames()) counts.total += elementCount(ckpt.tensor(name)!.shape);
  let named = 0;
  for (const want of expectedTensors(ckpt.config, ckpt.layout)) {
    const meta = ckpt.tensor(want.name);
    if (!meta) continue;
    const n = elementCount(meta.shape);
    counts[ROLE_BUCKET[want.role]] += n;
    named += n;
  }
  counts.experts = counts.routedGateUp + counts.routedDown;
  counts.other = counts.total - named;
  return counts;
}
