/**
 * `loadCompressed(dir)`: a compressed output directory (factored or dense) as something both the
 * checkpoint code and the runtime accept. The returned `CompressedModel` is a `Checkpoint`
 * (readExpert reconstructs Ŵ for compressed types, so calibration or re-compression work on it)
 * and a `WeightProvider` whose routed experts run factored (see factored-expert.ts), so
 * `evaluateWindows(model, …)` and `rfid-moe eval` use the compressed form directly.
 *
 * `preload(engine, { maxBytes })` materialises experts in descending order of calibration
 * routing frequency (stored in the rfid_moe block) until the byte budget is spent: the hottest
 * experts are then served as dense matrices from memory, the rest factored from disk.
 */
import { expertLocation, expertTensorNames, readExpertBf16, readExpertF32, type ExpertLocation } from '../checkpoint/expert-location.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expectedTensors } from '../checkpoint/expected.js';
import { fillName } from '../checkpoint/family.js';
import { buildLayout } from '../checkpoint/layout.js';
import { resolveLanguageModel } from '../checkpoint/registry.js';
import { languageModelPrefix, storedName } from '../checkpoint/wrapped.js';
import { withGenerationConfig } from '../checkpoint/generation-config.js';
import type { Checkpoint, ExpertMatrixType, ModelConfig, ModelLayout, TensorMeta } from '../checkpoint/types.js';
import { findLayoutProblems } from '../checkpoint/validate.js';
import type { Engine } from '../engine/types.js';
import { TensorStore } from '../io/sharded.js';
import { createProjection } from '../residual/projection.js';
import { CheckpointWeights, withExperts, type CheckpointWeightsOptions } from '../runtime/checkpoint-weights.js';
import type { ExpertWeights, LayerWeights, NormWeights, WeightProvider } from '../runtime/weights.js';
import { CompressedFormatError, parseRfidBlock, type LayerBlock, type RfidBlock } from '../compress/output/block.js';
import { modelConfigOf } from '../compress/output/config-json.js';
import { droppedTensors } from '../compress/output/layer-shard.js';
import { basisName, CONFIG_BLOCK_KEY, coefficientName, expertBasisName, groupBaseName, moePrefix, residualName } from '../compress/output/names.js';
import { verifyOutputFiles, type HashProgress } from './verify.js';
import { DenseLinear, FactoredLinear, SwiGluExpert, materialise, type ApplyMode, type FactoredMatrix, type LinearOperator } from './factored-expert.js';
import { asF32, type Weights } from '../runtime/weight-matrix.js';
import type { TensorArena } from '../io/tensor-buffers.js';
import type { MappedFiles } from '../io/file-map.js';

export interface LoadCompressedOptions {
  /** how factored matrices are applied: by FLOP count per call (default), always factored, or materialised */
  expertMode?: ApplyMode;
  /**
   * check every file against the sha256 recorded in config.json before opening (default true):
   * one sequential read of the directory. Pass false only for a directory you just verified.
   */
  verifyHashes?: boolean;
  /** progress of that check (bytes hashed), e.g. `stderrHashProgress()` from verify.ts */
  onVerifyProgress?(p: HashProgress): void;
}

export interface PreloadResult {
  experts: number;
  bytes: number;
}

export interface ExpertReadOptions {
  /** factors and unfactored matrices stored as BF16 stay BF16 */
  bf16?: boolean;
  /** a group's shared factors, read once and held by every expert of it (see factors()) */
  shared?: Map<string, Promise<Weights>>;
}

type MatrixType = ExpertMatrixType;

/** Ŵ = A·B (+ P·η) without an engine (plain loops), for the Checkpoint view. */
function reconstructPlain(m: FactoredMatrix): Float32Array {
  const { p, d, rank } = m;
  const W = m.base ? Float32Array.from(asF32(m.base)) : new Float32Array(p * d);
  const coefficients = asF32(m.coefficients);
  const basis = asF32(m.basis);
  for (let i = 0; i < p; i++) {
    const row = i * d;
    for (let k = 0; k < rank; k++) {
      const a = coefficients[i * rank + k];
      const b = k * d;
      for (let j = 0; j < d; j++) W[row + j] += a * basis[b + j];
    }
  }
  if (m.residual) createProjection(m.residual.descriptor).addReconstruction(W, m.residual.vector);
  return W;
}

export class CompressedModel implements Checkpoint, WeightProvider {
  private runtime: WeightProvider | null = null;
  private bf16Runtime: WeightProvider | null = null;
  /** the group factors bf16Runtime's experts share (see factors()) */
  private readonly bf16SharedFactors = new Map<string, Promise<Weights>>();
  private readonly preloaded = new Map<string, ExpertWeights>();
  private readonly blocks: Map<number, LayerBlock>;
  /** expert → (group, basis) per layer and type */
  private readonly groupOf = new Map<string, number>();

  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly layout: ModelLayout,
    readonly block: RfidBlock,
    private readonly store: TensorStore,
    private readonly opts: LoadCompressedOptions,
  ) {
    this.blocks = new Map(block.layers.map((l) => [l.layer, l]));
    for (const l of block.layers) {
      for (const [type, t] of Object.entries(l.types)) {
        t.groups.forEach((g, gi) => g.experts.forEach((e) => this.groupOf.set(`${l.layer}/${type}/${e}`, gi)));
      }
    }
  }

  get shardCount(): number {
    return this.store.shardCount;
  }

  get storage(): 'factored' | 'dense' {
    return this.block.storage;
  }

  tensorNames(): string[] {
    return this.store.tensorNames();
  }

  tensor(name: string): TensorMeta | undefined {
    const info = this.store.tensor(name);
    return info && { name: info.name, dtype: info.dtype, shape: [...info.shape], file: info.file, byteLength: info.byteLength };
  }

  readF32(name: string): Promise<Float32Array> {
    return this.store.readF32(name);
  }

  readRowsF32(name: string, start: number, end: number): Promise<Float32Array> {
    return this.store.readRowsF32(name, start, end);
  }

  async readBf16(name: string): Promise<Uint16Array | null> {
    return this.store.tensor(name)?.dtype === 'BF16' ? this.store.readBf16(name) : null;
  }

  async readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array | null> {
    return this.store.tensor(name)?.dtype === 'BF16' ? this.store.readRowsBf16(name, start, end) : null;
  }

  /** Whether (layer, type) is stored factored. */
  isFactored(layer: number, type: MatrixType): boolean {
    return this.block.storage === 'factored' && this.blocks.get(layer)?.types[type] !== undefined;
  }

  /**
   * The stored factors of one expert matrix. The tensors a group shares (its basis, or its base
   * for base-delta groups) are read through `shared` when given, keyed by tensor name: every
   * expert of the group then holds the same array, read once (a server keeps all of them; without
   * the map each expert reads and keeps its own copy).
   */
  async factors(layer: number, expert: number, type: MatrixType, shared?: Map<string, Promise<Weights>>, opts: { bf16?: boolean } = {}): Promise<FactoredMatrix> {
    const t = this.blocks.get(layer)?.types[type];
    const g = this.groupOf.get(`${layer}/${type}/${expert}`);
    if (!t || g === undefined || this.block.storage !== 'factored') {
      throw new CompressedFormatError(`layer ${layer} ${type} of expert ${expert} is not stored factored in ${this.dir}`);
    }
    const group = t.groups[g];
    const prefix = moePrefix(this.layout.layers[layer].moe!.router);
    const delta = group.structure === 'base-delta';
    // with opts.bf16, factors stored as BF16 stay BF16 (the residual η, small, is always f32)
    const readFactor = (name: string): Promise<Weights> => (opts.bf16 ? this.readKeepingBf16(name) : this.store.readF32(name));
    const readShared = (name: string): Promise<Weights> => {
      if (!shared) return readFactor(name);
      // a map is filled in one form only: the key says which
      const key = opts.bf16 ? `bf16:${name}` : name;
      let read = shared.get(key);
      if (!read) {
        read = readFactor(name);
        shared.set(key, read);
        read.catch(() => shared.delete(key)); // a failed read is retried by the next caller, not cached
      }
      return read;
    };
    const [groupBasis, own, base, residual] = await Promise.all([
      delta ? readFactor(expertBasisName(prefix, type, expert)) : readShared(basisName(prefix, type, g)),
      readFactor(coefficientName(prefix, type, expert)),
      delta ? readShared(groupBaseName(prefix, type, g)) : Promise.resolve(undefined),
      group.residual ? this.store.readF32(residualName(prefix, type, expert)) : Promise.resolve(undefined),
    ]);
    // Ŵ = coefficients·basis (+ base): an output-side basis U is the left factor, C_e the right one
    const outputSide = group.structure === 'output-basis';
    return {
      p: t.p,
      d: t.d,
      rank: delta ? (group.expertRanks as number[])[group.experts.indexOf(expert)] : group.rank,
      basis: outputSide ? own : groupBasis,
      coefficients: outputSide ? groupBasis : own,
      ...(base ? { base } : {}),
      ...(group.residual && residual ? { residual: { descriptor: group.residual, vector: residual } } : {}),
    };
  }

  /** A tensor as stored when it is BF16 (its bit patterns), else decoded to f32. */
  private async readKeepingBf16(name: string): Promise<Weights> {
    return (await this.readBf16(name)) ?? this.store.readF32(name);
  }

  /**
   * An expert matrix that is stored as it is (not factored) and as BF16: its bit patterns, for a
   * runtime that keeps BF16 weights (Checkpoint.readExpertBf16). null when it is factored or has
   * another dtype.
   */
  async readExpertBf16(layer: number, expert: number, type: MatrixType): Promise<Uint16Array | null> {
    if (this.isFactored(layer, type)) return null;
    return readExpertBf16(this, this.expertLocation(layer, expert, type));
  }

  /**
   * The tensors a server keeps as stored BF16 when it keeps BF16 weights: routed experts stored
   * as they are and the factors of factored ones (bases, coefficients, a base-delta group's base),
   * where stored as BF16. Residual vectors and every other tensor are held as f32.
   */
  bf16TensorNames(): Set<string> {
    const names = new Set<string>();
    const bf16 = (name: string) => this.store.tensor(name)?.dtype === 'BF16';
    for (const layer of this.layout.layers) {
      const moe = layer.moe;
      if (!moe) continue;
      for (const type of ['gate', 'up', 'down'] as const) {
        if (!this.isFactored(layer.index, type)) {
          for (const n of expertTensorNames(moe, [type])) if (bf16(n)) names.add(n);
          continue;
        }
        for (const n of this.factorTensorNames(layer.index, type)) if (bf16(n)) names.add(n);
      }
    }
    return names;
  }

  /**
   * Whether the experts a server materialises from this model's factors are held as BF16 when
   * it keeps BF16 weights: when every factor of every factored matrix is stored as BF16, Ŵ is
   * rounded to BF16, the precision of the checkpoint it came from (Ŵ itself is no BF16 matrix).
   * A model with any factor stored otherwise (F32, F16) materialises f32.
   */
  materialisesBf16(): boolean {
    let factors = 0;
    for (const layer of this.layout.layers) {
      if (!layer.moe) continue;
      for (const type of ['gate', 'up', 'down'] as const) {
        if (!this.isFactored(layer.index, type)) continue;
        for (const n of this.factorTensorNames(layer.index, type)) {
          if (this.store.tensor(n)?.dtype !== 'BF16') return false;
          factors++;
        }
      }
    }
    return factors > 0;
  }

  /** The factor tensors of a factored matrix type in one layer: bases, coefficients, a base-delta group's base. */
  private factorTensorNames(layer: number, type: MatrixType): string[] {
    const prefix = moePrefix(this.layout.layers[layer].moe!.router);
    const names: string[] = [];
    this.blocks.get(layer)!.types[type]!.groups.forEach((g, gi) => {
      if (g.structure === 'base-delta') names.push(groupBaseName(prefix, type, gi), ...g.experts.map((e) => expertBasisName(prefix, type, e)));
      else names.push(basisName(prefix, type, gi));
      for (const e of g.experts) names.push(coefficientName(prefix, type, e));
    });
    return names;
  }

  async readExpert(layer: number, expert: number, type: MatrixType): Promise<Float32Array> {
    if (this.isFactored(layer, type)) return reconstructPlain(await this.factors(layer, expert, type));
    return readExpertF32(this, this.expertLocation(layer, expert, type));
  }

  /** Where an unfactored expert matrix is stored. */
  private expertLocation(layer: number, expert: number, type: MatrixType): ExpertLocation {
    const moe = this.layout.layers[layer]?.moe;
    if (!moe) throw new CompressedFormatError(`layer ${layer} is not an MoE layer`);
    if (!Number.isInteger(expert) || expert < 0 || expert >= this.config.numExperts) {
      throw new CompressedFormatError(`expert ${expert} does not exist; layer ${layer} has experts 0..${this.config.numExperts - 1}`);
    }
    const location = expertLocation(moe, this.config, expert, type);
    if (!location) throw new CompressedFormatError(`layer ${layer} names no expert tensors`);
    return location;
  }

  /** With `bf16`, factors and unfactored matrices stored as BF16 stay BF16; `shared` as for factors(). */
  private async linear(layer: number, expert: number, type: MatrixType, opts: ExpertReadOptions = {}): Promise<LinearOperator> {
    const { hiddenSize: H, expertIntermediateSize: I } = this.config;
    if (this.isFactored(layer, type)) return new FactoredLinear(await this.factors(layer, expert, type, opts.shared, opts), this.opts.expertMode ?? 'auto');
    const [p, d] = type === 'down' ? [H, I] : [I, H];
    const W = (opts.bf16 ? await this.readExpertBf16(layer, expert, type) : null) ?? (await this.readExpert(layer, expert, type));
    return new DenseLinear(W, p, d);
  }

  /** The routed expert as the runtime runs it (preloaded dense, or factored from disk). */
  async expert(layer: number, expert: number, opts: ExpertReadOptions = {}): Promise<ExpertWeights> {
    const hot = this.preloaded.get(`${layer}/${expert}`);
    if (hot) return hot;
    const [gate, up, down] = await Promise.all((['gate', 'up', 'down'] as const).map((t) => this.linear(layer, expert, t, opts)));
    return new SwiGluExpert(gate, up, down);
  }

  /**
   * Materialise experts hottest first (calibration routing counts, as shares of each layer's
   * tokens, across all layers) until `maxBytes` of f32 weights are held. Returns what was loaded.
   */
  async preload(engine: Engine, opts: { maxBytes: number }): Promise<PreloadResult> {
    const { hiddenSize: H, expertIntermediateSize: I } = this.config;
    const bytesPerExpert = 3 * H * I * 4;
    const candidates: Array<{ layer: number; expert: number; share: number }> = [];
    for (const l of this.block.layers) {
      const total = l.routingCounts.reduce((a, b) => a + b, 0) || 1;
      l.routingCounts.forEach((c, e) => candidates.push({ layer: l.layer, expert: e, share: c / total }));
    }
    candidates.sort((a, b) => b.share - a.share || a.layer - b.layer || a.expert - b.expert);
    let bytes = 0;
    let experts = 0;
    for (const c of candidates) {
      if (bytes + bytesPerExpert > opts.maxBytes) break;
      const ops = await Promise.all(
        (['gate', 'up', 'down'] as const).map(async (t) => {
          if (!this.isFactored(c.layer, t)) return this.linear(c.layer, c.expert, t);
          const m = await this.factors(c.layer, c.expert, t);
          return new DenseLinear(materialise(engine, m), m.p, m.d);
        }),
      );
      this.preloaded.set(`${c.layer}/${c.expert}`, new SwiGluExpert(ops[0], ops[1], ops[2]));
      bytes += bytesPerExpert;
      experts++;
    }
    return { experts, bytes };
  }

  // ---- WeightProvider ----

  private provider(): WeightProvider {
    this.runtime ??= withExperts(new CheckpointWeights(this), async (layer, e) => (this.blocks.has(layer) ? this.expert(layer, e) : undefined));
    return this.runtime;
  }

  /**
   * The model as a provider for these options: with `bf16Weights`, every matrix stored as BF16
   * stays BF16 (attention, head, embedding, unfactored experts and the factors of factored ones;
   * experts materialised by preload() stay f32). Without, the model itself (all f32).
   */
  providerWith(opts: CheckpointWeightsOptions): WeightProvider {
    if (!opts.bf16Weights) return this;
    // a group's shared factors read once for all its experts: this provider serves generation,
    // which holds every expert it reads (the plain model streams, and shares nothing it would keep)
    this.bf16Runtime ??= withExperts(new CheckpointWeights(this, opts), async (layer, e) =>
      this.blocks.has(layer) ? this.expert(layer, e, { bf16: true, shared: this.bf16SharedFactors }) : undefined,
    );
    return this.bf16Runtime;
  }

  embed(ids: Int32Array): Promise<Float32Array> {
    return this.provider().embed(ids);
  }

  layer(index: number): Promise<LayerWeights> {
    return this.provider().layer(index);
  }

  finalNorm(): Promise<NormWeights> {
    return this.provider().finalNorm();
  }

  lmHeadRows(start: number, end: number): Promise<Weights> {
    return this.provider().lmHeadRows(start, end);
  }

  lmHeadBias(): Promise<Float32Array | null> {
    return this.provider().lmHeadBias();
  }

  embedRows(start: number, end: number): Promise<Weights> {
    return this.provider().embedRows!(start, end);
  }

  packReads(arena: TensorArena | null): void {
    this.store.packInto(arena);
  }

  mapReads(): MappedFiles | null {
    return this.store.mapReads();
  }

  async close(): Promise<void> {
    this.preloaded.clear();
    this.bf16SharedFactors.clear();
    await this.store.close();
  }
}

/** Whether `dir`'s config.json carries an rfid_moe block. */
export async function isCompressedDir(dir: string): Promise<boolean> {
  try {
    const raw = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    return typeof raw === 'object' && raw !== null && CONFIG_BLOCK_KEY in raw;
  } catch {
    return false;
  }
}

function checkFactorShapes(model: { tensor(name: string): TensorMeta | undefined }, layout: ModelLayout, block: RfidBlock, numExperts: number): string[] {
  const problems: string[] = [];
  const expectShape = (name: string, shape: number[]) => {
    const t = model.tensor(name);
    if (!t) problems.push(`missing tensor ${name}`);
    else if (t.shape.join(',') !== shape.join(',')) problems.push(`tensor ${name} has shape [${t.shape.join(', ')}], the rfid_moe block implies [${shape.join(', ')}]`);
  };
  for (const l of block.layers) {
    const moe = layout.layers[l.layer]?.moe;
    if (!moe) {
      problems.push(`the rfid_moe block lists layer ${l.layer}, which is not an MoE layer`);
      continue;
    }
    if (l.routingCounts.length !== numExperts) problems.push(`layer ${l.layer}: ${l.routingCounts.length} routing counts for ${numExperts} experts`);
    const prefix = moePrefix(moe.router);
    for (const [type, t] of Object.entries(l.types)) {
      const seen = t.groups.flatMap((g) => g.experts).sort((a, b) => a - b);
      if (seen.length !== numExperts || seen.some((e, i) => e !== i)) problems.push(`layer ${l.layer} ${type}: the groups do not cover experts 0..${numExperts - 1} exactly once`);
      if (block.storage !== 'factored') continue;
      t.groups.forEach((g, gi) => {
        if (g.structure === 'base-delta') expectShape(groupBaseName(prefix, type, gi), [t.p, t.d]);
        else expectShape(basisName(prefix, type, gi), g.structure === 'output-basis' ? [t.p, g.rank] : [g.rank, t.d]);
        for (const [j, e] of g.experts.entries()) {
          if (g.structure === 'base-delta') {
            const K = (g.expertRanks as number[])[j];
            expectShape(coefficientName(prefix, type, e), [t.p, K]);
            expectShape(expertBasisName(prefix, type, e), [K, t.d]);
          } else expectShape(coefficientName(prefix, type, e), g.structure === 'output-basis' ? [g.rank, t.d] : [t.p, g.rank]);
          if (g.residual) expectShape(residualName(prefix, type, e), [g.residual.q]);
        }
      });
    }
  }
  return problems;
}

/** Open a compressed output directory; throws CompressedFormatError naming what is wrong. */
export async function loadCompressed(dir: string, opts: LoadCompressedOptions = {}): Promise<CompressedModel> {
  const absDir = path.resolve(dir);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(path.join(absDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CompressedFormatError(`${dir} has no readable config.json (${(err as Error).message}); it is not a complete compressed output (an interrupted run is finished by compressing again with \`resume\`)`);
  }
  return openCompressed(absDir, raw, opts);
}

/**
 * The same from a config object instead of the directory's config.json: the pipeline checks the
 * output before it writes config.json (which must come last).
 */
export async function openCompressed(dir: string, raw: Record<string, unknown>, opts: LoadCompressedOptions = {}): Promise<CompressedModel> {
  const absDir = path.resolve(dir);
  if (!(CONFIG_BLOCK_KEY in raw)) {
    throw new CompressedFormatError(`${dir}/config.json has no rfid_moe block: it is not an rfid-moe output; open it as an ordinary checkpoint`);
  }
  const block = parseRfidBlock(raw[CONFIG_BLOCK_KEY], `${dir}/config.json`);
  // before any tensor is read: a flipped byte or a missing shard is refused, not evaluated
  if (opts.verifyHashes !== false) await verifyOutputFiles(absDir, block.files, { onProgress: opts.onVerifyProgress });
  let modelRaw: Record<string, unknown>;
  try {
    modelRaw = modelConfigOf(raw, block, `${dir}/config.json`);
  } catch (err) {
    throw new CompressedFormatError((err as Error).message);
  }
  const { family, resolved, wrapper } = resolveLanguageModel(modelRaw);
  const store = await TensorStore.open(absDir);
  try {
    const prefix = wrapper ? languageModelPrefix((name) => store.tensor(name) !== undefined) : undefined;
    // fused gate_up tensors dropped by factored output still decide the layout's form
    const droppedFused = new Set<string>();
    if (block.storage === 'factored' && block.expertLayout === 'fused') {
      resolved.moeLayers.forEach((isMoe, l) => isMoe && droppedFused.add(storedName(prefix, fillName(family.names.fused.gateUp, l))));
    }
    const layout = buildLayout(family, resolved, (name) => store.tensor(name) !== undefined || droppedFused.has(name), prefix, (name) => store.tensor(name)?.shape);
    const dropped = new Set<string>();
    if (block.storage === 'factored') {
      for (const l of block.layers) {
        const layerLayout = layout.layers[l.layer];
        if (layerLayout) for (const name of droppedTensors(layerLayout, Object.keys(l.types) as MatrixType[])) dropped.add(name);
      }
    }
    const expected = expectedTensors(resolved.config, layout).filter((t) => !dropped.has(t.name));
    const problems = [...findLayoutProblems(expected, (name) => store.tensor(name)), ...checkFactorShapes(store, layout, block, resolved.config.numExperts)];
    if (problems.length > 0) {
      throw new CompressedFormatError(`${dir} is not a valid compressed output: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}. Recompress the model`);
    }
    return new CompressedModel(absDir, await withGenerationConfig(absDir, resolved.config), layout, block, store, opts);
  } catch (err) {
    await store.close();
    throw err;
  }
}
