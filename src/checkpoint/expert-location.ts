/**
 * Where one routed expert's matrix is stored: a whole tensor per expert, or a block of rows of the
 * transformers ≥ 5 fused tensors (gate_up [E, 2I, H] viewed as rows of H, gate rows first;
 * down [E, H, I] viewed as rows of I). Shared by every reader of expert matrices (f32 or as stored).
 */
import type { ExpertMatrixType, ModelConfig, MoeNames } from './types.js';

export type ExpertLocation = { tensor: string; rows: null } | { tensor: string; rows: readonly [start: number, end: number] };

/** null when the layer names neither form. */
export function expertLocation(moe: MoeNames, config: ModelConfig, expert: number, type: ExpertMatrixType): ExpertLocation | null {
  if (moe.experts) return { tensor: moe.experts[expert][type], rows: null };
  if (!moe.fused) return null;
  const I = config.expertIntermediateSize;
  const H = config.hiddenSize;
  if (type === 'gate') return { tensor: moe.fused.gateUp, rows: [expert * 2 * I, expert * 2 * I + I] };
  if (type === 'up') return { tensor: moe.fused.gateUp, rows: [expert * 2 * I + I, (expert + 1) * 2 * I] };
  return { tensor: moe.fused.down, rows: [expert * H, (expert + 1) * H] };
}

/** Every routed-expert tensor a layer names (per-expert or fused), for the types given. */
export function expertTensorNames(moe: MoeNames, types: readonly ExpertMatrixType[] = ['gate', 'up', 'down']): string[] {
  const names = (moe.experts ?? []).flatMap((e) => types.map((t) => e[t]));
  if (moe.fused) {
    if (types.includes('gate') || types.includes('up')) names.push(moe.fused.gateUp);
    if (types.includes('down')) names.push(moe.fused.down);
  }
  return names;
}
