/**
 * Writes one shard of the output: a decoder layer's tensors (or the tensors outside the layers),
 * atomically (temp file + rename, by SafetensorsWriter). Uncompressed tensors are copied as raw
 * bytes, so their dtype and values are exactly the source's. Compressed matrix types are written
 * either factored (bases, coefficients, residual vectors; the original tensors dropped) or dense
 * (Ŵ = A·B + P·η under the original names and dtype).
 *
 * Both forms are built from the same factors rounded to the factor dtype (see `roundFactors`), so
 * dense and factored outputs of one run describe the same weights up to the dense dtype's rounding
 * of Ŵ (none for F32 checkpoints).
 */
import type { Checkpoint, LayerLayout } from '../../checkpoint/types.js';
import type { Engine } from '../../engine/types.js';
import { decodeToF32, encodeFromF32, type DType, type EncodableDType } from '../../io/dtype.js';
import { SafetensorsWriter, type TensorPlan } from '../../io/safetensors-writer.js';
import type { TensorSource } from '../../io/sharded.js';
import { reconstructExpert, type CompressedGroup } from '../compress-layer.js';
import { fuseDown, fuseGateUp } from '../../checkpoint/expert-location.js';
import type { MatrixType } from '../recipe.js';
import { basisName, coefficientName, expertBasisName, groupBaseName, moePrefix, residualName } from './names.js';

export interface CompressedTypeData {
  type: MatrixType;
  p: number;
  d: number;
  groups: CompressedGroup[];
}

export interface ShardInput {
  /** absolute path of the shard to write */
  file: string;
  /** source tensors that belong to this shard */
  tensors: readonly string[];
  ckpt: Checkpoint;
  /** the same checkpoint opened for raw bytes */
  store: TensorSource;
  engine: Engine;
  storage: 'factored' | 'dense';
  factorDtype: EncodableDType;
  /** the decoder layer, absent for the non-layer shard */
  layer?: LayerLayout;
  compressed: readonly CompressedTypeData[];
}

/** The checkpoint's dtype if it can be encoded from f32, else BF16 (e.g. for F8 checkpoints). */
export function factorDtypeFor(dtype: DType): EncodableDType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' ? dtype : 'BF16';
}

function roundTo(dtype: EncodableDType, values: Float32Array): Float32Array {
  return dtype === 'F32' ? values : decodeToF32(dtype, encodeFromF32(dtype, values));
}

/** Replace every factor by its value in the stored dtype (in place), so later math uses what is stored. */
export function roundFactors(groups: CompressedGroup[], dtype: EncodableDType): void {
  for (const g of groups) {
    g.basis = roundTo(dtype, g.basis);
    g.coefficients = g.coefficients.map((c) => roundTo(dtype, c));
    if (g.base) g.base = roundTo(dtype, g.base);
    if (g.expertBases) g.expertBases = g.expertBases.map((b) => roundTo(dtype, b));
    if (g.residual) g.residual = { descriptor: g.residual.descriptor, vectors: g.residual.vectors.map((v) => roundTo(dtype, v)) };
  }
}

/** Source tensors a compressed layer no longer stores in factored form. */
export function droppedTensors(layer: LayerLayout, types: readonly MatrixType[]): Set<string> {
  const dropped = new Set<string>();
  const moe = layer.moe;
  if (!moe || types.length === 0) return dropped;
  if (moe.experts) for (const names of moe.experts) for (const t of types) dropped.add(names[t]);
  if (moe.fused) {
    const gate = types.includes('gate');
    const up = types.includes('up');
    if (gate !== up) {
      throw new Error(
        `layer ${layer.index} stores gate and up fused in one tensor (${moe.fused.gateUp}); factored output must compress both or neither: set matrixTypes to include both gate and up`,
      );
    }
    if (gate) dropped.add(moe.fused.gateUp);
    if (types.includes('down')) dropped.add(moe.fused.down);
  }
  return dropped;
}

function factorPlan(prefix: string, data: CompressedTypeData, dtype: EncodableDType): Array<TensorPlan & { data: Float32Array }> {
  const out: Array<TensorPlan & { data: Float32Array }> = [];
  data.groups.forEach((g, gi) => {
    if (g.structure === 'base-delta') out.push({ name: groupBaseName(prefix, data.type, gi), dtype, shape: [g.p, g.d], data: g.base as Float32Array });
    else out.push({ name: basisName(prefix, data.type, gi), dtype, shape: g.structure === 'output-basis' ? [g.p, g.rank] : [g.rank, g.d], data: g.basis });
    g.experts.forEach((e, j) => {
      if (g.structure === 'base-delta') {
        const K = (g.expertRanks as number[])[j];
        out.push({ name: coefficientName(prefix, data.type, e), dtype, shape: [g.p, K], data: g.coefficients[j] });
        out.push({ name: expertBasisName(prefix, data.type, e), dtype, shape: [K, g.d], data: (g.expertBases as Float32Array[])[j] });
      } else out.push({ name: coefficientName(prefix, data.type, e), dtype, shape: g.structure === 'output-basis' ? [g.rank, g.d] : [g.p, g.rank], data: g.coefficients[j] });
      if (g.residual) out.push({ name: residualName(prefix, data.type, e), dtype, shape: [g.residual.descriptor.q], data: g.residual.vectors[j] });
    });
  });
  return out;
}

/** Ŵ of every expert of one compressed type, indexed by expert. */
function reconstructAll(data: CompressedTypeData, engine: Engine): Map<number, Float32Array> {
  const out = new Map<number, Float32Array>();
  for (const g of data.groups) g.experts.forEach((e, j) => out.set(e, reconstructExpert(g, j, engine)));
  return out;
}

/** Dense tensors (name → f32 values) replacing the compressed types under their original names. */
async function denseReplacements(input: ShardInput): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const layer = input.layer;
  const moe = layer?.moe;
  if (!layer || !moe || input.compressed.length === 0) return out;
  const byType = new Map(input.compressed.map((c) => [c.type, reconstructAll(c, input.engine)]));
  if (moe.experts) {
    for (const [type, experts] of byType) for (const [e, w] of experts) out.set(moe.experts[e][type], w);
    return out;
  }
  if (!moe.fused) return out;
  const expertMatrix = async (e: number, type: MatrixType) => byType.get(type)?.get(e) ?? (await input.ckpt.readExpert(layer.index, e, type));
  const config = input.ckpt.config;
  if (byType.has('gate') || byType.has('up')) out.set(moe.fused.gateUp, await fuseGateUp(config, moe.fused, (e) => expertMatrix(e, 'gate'), (e) => expertMatrix(e, 'up')));
  if (byType.has('down')) out.set(moe.fused.down, await fuseDown(config, moe.fused, (e) => expertMatrix(e, 'down')));
  return out;
}

/** Writes the shard; returns the names of the tensors it holds. */
export async function writeShard(input: ShardInput): Promise<string[]> {
  const { ckpt, store } = input;
  const types = input.compressed.map((c) => c.type);
  const meta = (name: string) => {
    const t = ckpt.tensor(name);
    if (!t) throw new Error(`tensor ${name} disappeared from the checkpoint while compressing`);
    return t;
  };
  const plan: TensorPlan[] = [];
  const values = new Map<string, Float32Array>();
  const copied: string[] = [];

  if (input.storage === 'factored' && input.layer && types.length > 0) {
    const dropped = droppedTensors(input.layer, types);
    for (const name of input.tensors) {
      if (dropped.has(name)) continue;
      const t = meta(name);
      plan.push({ name, dtype: t.dtype, shape: t.shape });
      copied.push(name);
    }
    const prefix = moePrefix(input.layer.moe!.router);
    for (const c of input.compressed) {
      for (const f of factorPlan(prefix, c, input.factorDtype)) {
        plan.push({ name: f.name, dtype: f.dtype, shape: f.shape });
        values.set(f.name, f.data);
      }
    }
  } else {
    const replaced = input.storage === 'dense' ? await denseReplacements(input) : new Map<string, Float32Array>();
    for (const name of input.tensors) {
      const t = meta(name);
      plan.push({ name, dtype: t.dtype, shape: t.shape });
      const v = replaced.get(name);
      if (v) values.set(name, v);
      else copied.push(name);
    }
  }

  const writer = await SafetensorsWriter.create(input.file, plan);
  try {
    for (const [name, v] of values) await writer.write(name, v);
    for (const name of copied) await writer.write(name, await store.readBytes(name));
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return plan.map((p) => p.name);
}
