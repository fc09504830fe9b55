/**
 * Where one routed expert's matrix is stored, and how to read it in nn.Linear layout ([p, d]:
 * gate/up [I, H], down [H, I]): a whole tensor per expert; a block of rows of the transformers ≥ 5
 * fused tensors (gate_up [E, 2I, H] viewed as rows of H, gate rows first; down [E, H, I] viewed as
 * rows of I); or, in the transposed forms (FusedExpertNames), the transpose of some columns of the
 * expert's slab (gate_up [E, H, 2I]: gpt-oss's gate the even columns and up the odd, Llama 4's gate
 * the first I and up the last I; down [E, I, H]: all).
 * Shared by every reader and writer of expert matrices (f32 or as stored).
 */
import { decodeToF32 } from '../io/dtype.js';
import type { Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import type { ColumnSelection } from '../io/sharded.js';
import { transposeColumns, type ColumnCut } from '../io/transpose.js';
import type { ExpertMatrixType, FusedExpertNames, ModelConfig, MoeNames } from './types.js';

/** Whether a fused form stores each expert's matrices transposed ([in, out] slabs: y = x · W[e]). */
export function isTransposedForm(fused: Pick<FusedExpertNames, 'form'> | undefined): boolean {
  return fused?.form === 'transposed-interleaved' || fused?.form === 'transposed';
}

/** Where the gate's and the up's columns lie in a transposed gate_up slab of 2I columns: every other one (gpt-oss), or a half each (Llama 4). */
function gateUpColumns(fused: FusedExpertNames, I: number, type: 'gate' | 'up'): ColumnCut {
  const up = type === 'up' ? 1 : 0;
  return fused.form === 'transposed-interleaved' ? { width: 2 * I, first: up, step: 2, count: I } : { width: 2 * I, first: up * I, step: 1, count: I };
}

/**
 * `columns` set: the matrix is the transpose of columns first, first + step, … (count of them) of
 * the slab `rows` selects, whose rows are `width` values wide.
 */
export type ExpertLocation =
  | { tensor: string; rows: null; columns?: undefined }
  | { tensor: string; rows: readonly [start: number, end: number]; columns?: ColumnCut };

/** null when the layer names neither form. */
export function expertLocation(moe: MoeNames, config: ModelConfig, expert: number, type: ExpertMatrixType): ExpertLocation | null {
  if (moe.experts) return { tensor: moe.experts[expert][type], rows: null };
  if (!moe.fused) return null;
  const I = config.expertIntermediateSize;
  const H = config.hiddenSize;
  if (isTransposedForm(moe.fused)) {
    if (type === 'down') return { tensor: moe.fused.down, rows: [expert * I, (expert + 1) * I], columns: { width: H, first: 0, step: 1, count: H } };
    return { tensor: moe.fused.gateUp, rows: [expert * H, (expert + 1) * H], columns: gateUpColumns(moe.fused, I, type) };
  }
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

/** The shapes of a layer's fused expert tensors in their form. */
export function fusedExpertShapes(config: ModelConfig, fused: FusedExpertNames): { gateUp: number[]; down: number[] } {
  const { numExperts: E, hiddenSize: H, expertIntermediateSize: I } = config;
  return isTransposedForm(fused) ? { gateUp: [E, H, 2 * I], down: [E, I, H] } : { gateUp: [E, 2 * I, H], down: [E, H, I] };
}

/** What the expert readers need of a checkpoint or compressed model. */
export interface ExpertTensorReader {
  readF32(name: string): Promise<Float32Array>;
  readRowsF32(name: string, start: number, end: number): Promise<Float32Array>;
  readBf16(name: string): Promise<Uint16Array | null>;
  readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array | null>;
  /** a transposed cut of rows decoded directly, where the reader can (TensorSource.readColumnsBf16); null: it cannot */
  readColumnsBf16?(name: string, start: number, end: number, columns: ColumnSelection): Promise<Uint16Array | null>;
  /** the same cut kept as stored where it is MXFP4 (TensorSource.readColumnsMxfp4); null: it is not */
  readColumnsMxfp4?(name: string, start: number, end: number, columns: ColumnSelection): Promise<Mxfp4Matrix | null>;
}

/** The expert matrix at `location` in f32, nn.Linear layout. */
export async function readExpertF32(reader: ExpertTensorReader, location: ExpertLocation): Promise<Float32Array> {
  if (location.rows === null) return reader.readF32(location.tensor);
  const direct = location.columns ? await reader.readColumnsBf16?.(location.tensor, location.rows[0], location.rows[1], location.columns) : null;
  if (direct) return decodeToF32('BF16', new Uint8Array(direct.buffer, direct.byteOffset, direct.byteLength));
  const slab = await reader.readRowsF32(location.tensor, location.rows[0], location.rows[1]);
  return location.columns ? transposeColumns(slab, location.rows[1] - location.rows[0], location.columns, new Float32Array(location.columns.count * (location.rows[1] - location.rows[0]))) : slab;
}

/** The expert matrix at `location` as stored when it is BF16 (null for another dtype), nn.Linear layout. */
export async function readExpertBf16(reader: ExpertTensorReader, location: ExpertLocation): Promise<Uint16Array | null> {
  if (location.rows === null) return reader.readBf16(location.tensor);
  // an MXFP4 expert decodes its columns directly (no slab, no transpose)
  const direct = location.columns ? await reader.readColumnsBf16?.(location.tensor, location.rows[0], location.rows[1], location.columns) : null;
  if (direct) return direct;
  const slab = await reader.readRowsBf16(location.tensor, location.rows[0], location.rows[1]);
  if (!slab || !location.columns) return slab;
  return transposeColumns(slab, location.rows[1] - location.rows[0], location.columns, new Uint16Array(location.columns.count * (location.rows[1] - location.rows[0])));
}

/**
 * The expert matrix at `location` kept as stored when it is MXFP4 grouped along its inputs: a
 * transposed cut (gpt-oss's form), whose stored rows are the matrix's rows. null for anything else.
 */
export async function readExpertMxfp4(reader: ExpertTensorReader, location: ExpertLocation): Promise<Mxfp4Matrix | null> {
  if (location.rows === null || !location.columns) return null;
  return (await reader.readColumnsMxfp4?.(location.tensor, location.rows[0], location.rows[1], location.columns)) ?? null;
}

/**
 * A layer's fused tensors from its experts' matrices (nn.Linear layout, f32), in the form `fused`
 * names: gate_up from gate(e) and up(e), down from down(e); what the writers put on disk.
 */
export async function fuseGateUp(config: ModelConfig, fused: FusedExpertNames, gate: (e: number) => Promise<Float32Array>, up: (e: number) => Promise<Float32Array>): Promise<Float32Array> {
  const { numExperts: E, hiddenSize: H, expertIntermediateSize: I } = config;
  const out = new Float32Array(E * 2 * I * H);
  for (let e = 0; e < E; e++) {
    const g = await gate(e);
    const u = await up(e);
    if (!isTransposedForm(fused)) {
      out.set(g, e * 2 * I * H);
      out.set(u, (e * 2 + 1) * I * H);
      continue;
    }
    // [H, 2I]: column gateAt(i) of row h holds gate[i][h], upAt(i) up[i][h] (gateUpColumns)
    const base = e * H * 2 * I;
    const gateAt = gateUpColumns(fused, I, 'gate');
    const upAt = gateUpColumns(fused, I, 'up');
    for (let i = 0; i < I; i++) {
      for (let h = 0; h < H; h++) {
        out[base + h * 2 * I + gateAt.first + gateAt.step * i] = g[i * H + h];
        out[base + h * 2 * I + upAt.first + upAt.step * i] = u[i * H + h];
      }
    }
  }
  return out;
}

/** See fuseGateUp. */
export async function fuseDown(config: ModelConfig, fused: FusedExpertNames, down: (e: number) => Promise<Float32Array>): Promise<Float32Array> {
  const { numExperts: E, hiddenSize: H, expertIntermediateSize: I } = config;
  const out = new Float32Array(E * H * I);
  for (let e = 0; e < E; e++) {
    const d = await down(e);
    if (!isTransposedForm(fused)) {
      out.set(d, e * H * I);
      continue;
    }
    // [I, H] = the transpose of down's [H, I]
    const base = e * I * H;
    for (let h = 0; h < H; h++) for (let i = 0; i < I; i++) out[base + i * H + h] = d[h * I + i];
  }
  return out;
}
