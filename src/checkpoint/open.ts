/**
 * openCheckpoint(dir): a Hugging Face MoE checkpoint directory (config.json + safetensors, single
 * file or sharded) as a validated `Checkpoint`. Opening reads config.json, resolves its family,
 * builds the layout and checks every expected tensor's presence, shape and dtype, so later code
 * can trust the names and shapes without re-checking.
 */
import { expertLocation, expertTensorNames, isTransposedForm, readExpertBf16, readExpertF32, readExpertMxfp4, type ExpertLocation } from './expert-location.js';
import type { Fp8Matrix } from '../io/fp8-matrix.js';
import type { Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { rowView } from '../io/safetensors-reader.js';
import { TensorStore, type ColumnSelection, type TensorSource } from '../io/sharded.js';
import { Fp8BlockStore, fp8BlockQuantization } from './fp8-blocks.js';
import { Mxfp4Store, mxfp4Quantization } from './mxfp4.js';
import { CheckpointError } from './errors.js';
import { expectedTensors } from './expected.js';
import type { Family } from './family.js';
import { buildLayout } from './layout.js';
import { resolveLanguageModel } from './registry.js';
import { languageModelPrefix } from './wrapped.js';
import { withGenerationConfig } from './generation-config.js';
import type { Checkpoint, ExpertMatrixType, ModelConfig, ModelLayout, TensorMeta } from './types.js';
import { assertNoLayoutProblems, findLayoutProblems } from './validate.js';
import type { TensorArena } from '../io/tensor-buffers.js';
import type { MappedFiles } from '../io/file-map.js';

async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new CheckpointError('MissingConfig', `${dir} has no config.json; a Hugging Face checkpoint directory needs the model's config.json beside its weights`);
    throw new CheckpointError('MissingConfig', `cannot read ${file}: ${(err as Error).message}`, [], { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError('InvalidConfigJson', `${file} is not valid JSON (${(err as Error).message}); restore the model's original config.json`, [], { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new CheckpointError('InvalidConfigJson', `${file} must hold a JSON object, found ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
  return parsed as Record<string, unknown>;
}

async function requireDirectory(dir: string): Promise<void> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new CheckpointError('NotFound', `${dir} does not exist; pass a checkpoint directory (config.json + *.safetensors)`);
  }
  if (!info.isDirectory())
    throw new CheckpointError('NotFound', `${dir} is not a directory; openCheckpoint needs a checkpoint directory (config.json + *.safetensors)`);
}

/**
 * Shards must be named inside the checkpoint directory (an index could name ../../anything). The
 * check is lexical on purpose: the Hugging Face cache stores every file of a snapshot as a symlink
 * into ../../blobs, and those checkpoints must open.
 */
function assertShardsInside(dir: string, files: readonly string[]): void {
  for (const file of files) {
    const rel = path.relative(dir, path.resolve(dir, file));
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel))
      throw new CheckpointError('ShardOutsideDir', `shard ${file} lies outside the checkpoint directory ${dir}; fix model.safetensors.index.json`);
  }
}

class OpenedCheckpoint implements Checkpoint {
  constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    readonly layout: ModelLayout,
    readonly family: Family,
    private readonly store: TensorSource,
  ) {}

  get shardCount(): number {
    return this.store.shardCount;
  }

  tensorNames(): string[] {
    return this.store.tensorNames();
  }

  tensor(name: string): TensorMeta | undefined {
    const info = this.store.tensor(name);
    if (!info) return undefined;
    return { name: info.name, dtype: info.dtype, shape: [...info.shape], file: info.file, byteLength: info.byteLength, ...(info.decoded ? { decoded: true as const } : {}), ...(info.fp8Group ? { fp8Group: info.fp8Group } : {}) };
  }

  async readF32(name: string): Promise<Float32Array> {
    return this.store.readF32(name);
  }

  async readRowsF32(name: string, start: number, end: number): Promise<Float32Array> {
    return this.store.readRowsF32(name, start, end);
  }

  async readBf16(name: string): Promise<Uint16Array | null> {
    return this.store.tensor(name)?.dtype === 'BF16' ? this.store.readBf16(name) : null;
  }

  async readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array | null> {
    return this.store.tensor(name)?.dtype === 'BF16' ? this.store.readRowsBf16(name, start, end) : null;
  }

  async readColumnsBf16(name: string, start: number, end: number, columns: ColumnSelection): Promise<Uint16Array | null> {
    return this.store.readColumnsBf16 ? this.store.readColumnsBf16(name, start, end, columns) : null;
  }

  async readColumnsMxfp4(name: string, start: number, end: number, columns: ColumnSelection): Promise<Mxfp4Matrix | null> {
    return this.store.readColumnsMxfp4 ? this.store.readColumnsMxfp4(name, start, end, columns) : null;
  }

  async readExpert(layer: number, expert: number, type: ExpertMatrixType): Promise<Float32Array> {
    return readExpertF32(this, this.expertLocation(layer, expert, type));
  }

  async readExpertBf16(layer: number, expert: number, type: ExpertMatrixType): Promise<Uint16Array | null> {
    return readExpertBf16(this, this.expertLocation(layer, expert, type));
  }

  async readExpertMxfp4(layer: number, expert: number, type: ExpertMatrixType): Promise<Mxfp4Matrix | null> {
    return readExpertMxfp4(this, this.expertLocation(layer, expert, type));
  }

  async readExpertFp8(layer: number, expert: number, type: ExpertMatrixType): Promise<Fp8Matrix | null> {
    const at = this.expertLocation(layer, expert, type);
    // a transposed cut's stored rows are the matrix's inputs, not its rows
    if (at.columns || !this.store.readRowsFp8) return null;
    const meta = this.store.tensor(at.tensor);
    if (meta?.packed !== 'fp8') return null;
    const [start, end] = at.rows ?? [0, rowView(meta).rows];
    return this.store.readRowsFp8(at.tensor, start, end);
  }

  fp8TensorNames(): Set<string> {
    const names = this.layout.layers.flatMap((l) => (l.moe && !isTransposedForm(l.moe.fused) ? expertTensorNames(l.moe) : []));
    return new Set(names.filter((name) => this.store.tensor(name)?.packed === 'fp8'));
  }

  mxfp4TensorNames(): Set<string> {
    // readExpertMxfp4 gives the transposed forms' cuts (gpt-oss's), whose stored rows are outputs
    const names = this.layout.layers.flatMap((l) => (l.moe && isTransposedForm(l.moe.fused) ? expertTensorNames(l.moe) : []));
    return new Set(names.filter((name) => this.store.tensor(name)?.packed === 'mxfp4'));
  }

  bf16TensorNames(): Set<string> {
    const names = this.layout.layers.flatMap((l) => (l.moe ? expertTensorNames(l.moe) : []));
    return new Set(names.filter((name) => this.store.tensor(name)?.dtype === 'BF16'));
  }

  private expertLocation(layer: number, expert: number, type: ExpertMatrixType): ExpertLocation {
    const moe = this.layout.layers[layer]?.moe;
    if (!Number.isInteger(layer) || !moe)
      throw new CheckpointError('OutOfRange', `layer ${layer} is not an MoE layer (MoE layers: ${this.moeLayerList()})`);
    if (!Number.isInteger(expert) || expert < 0 || expert >= this.config.numExperts)
      throw new CheckpointError('OutOfRange', `expert ${expert} does not exist; layer ${layer} has experts 0..${this.config.numExperts - 1}`);
    const location = expertLocation(moe, this.config, expert, type);
    if (!location) throw new CheckpointError('OutOfRange', `layer ${layer} names no expert tensors`);
    return location;
  }

  packReads(arena: TensorArena | null): void {
    this.store.packInto(arena);
  }

  mapReads(): MappedFiles | null {
    return this.store.mapReads();
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  private moeLayerList(): string {
    return this.layout.layers.filter((l) => l.kind === 'moe').map((l) => l.index).join(', ');
  }
}

/** The family that produced an opened checkpoint (for labels in reports). */
export function checkpointFamily(ckpt: Checkpoint): Family | undefined {
  return ckpt instanceof OpenedCheckpoint ? ckpt.family : undefined;
}

/**
 * A quantized checkpoint stores codes with scales beside them (FP8 blocks with weight_scale_inv,
 * GPTQ/AWQ integers with zeros and scales): read as plain weights, the codes would decode to
 * silently wrong values. FP8 (block scales, or compressed-tensors' float-quantized) is read
 * dequantised (fp8-blocks.ts), and so are MXFP4 experts (gpt-oss: mxfp4.ts); any other method is
 * refused by its config's quantization_config.
 */
function assertReadableQuantization(dir: string, raw: Record<string, unknown>): void {
  const q = raw.quantization_config;
  if (q === undefined || q === null || fp8BlockQuantization(raw) !== null || mxfp4Quantization(raw) !== null) return;
  const details = typeof q === 'object' && !Array.isArray(q) ? Object.entries(q as Record<string, unknown>).filter(([k]) => k === 'quant_method' || k === 'fmt' || k === 'bits' || k === 'weight_block_size').map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ') : JSON.stringify(q);
  throw new CheckpointError(
    'Quantized',
    `${dir} is a quantized checkpoint (quantization_config${details ? `: ${details}` : ''}); rfid-moe reads floating-point weights (F32, F16, BF16), FP8 ones (quant_method "fp8", as DeepSeek-V3 ships, and compressed-tensors' float-quantized format) and MXFP4 ones (quant_method "mxfp4", as gpt-oss ships its experts), and would compute with these codes unscaled. Use the model's BF16 or F32 release, or dequantize the checkpoint first (loading it in transformers and saving it with save_pretrained after dequantizing).`,
  );
}

/**
 * Open and validate a checkpoint directory. Throws CheckpointError (kind names the problem) for a
 * missing/invalid config.json, an unsupported model_type, shards outside the directory, or tensors
 * that do not match the config; safetensors-level damage surfaces as the io layer's SafetensorsError.
 */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const absDir = path.resolve(dir);
  await requireDirectory(absDir);
  const raw = await readConfigJson(absDir);
  assertReadableQuantization(absDir, raw);
  const { family, resolved, wrapper } = resolveLanguageModel(raw);
  const store = await openTensorSource(absDir, raw);
  try {
    assertShardsInside(absDir, store.files);
    const has = (name: string) => store.tensor(name) !== undefined;
    const layout = buildLayout(family, resolved, has, wrapper ? languageModelPrefix(has) : undefined, (name) => store.tensor(name)?.shape);
    const problems = findLayoutProblems(expectedTensors(resolved.config, layout), (name) => store.tensor(name));
    assertNoLayoutProblems(problems, absDir, family.label);
    return new OpenedCheckpoint(absDir, await withGenerationConfig(absDir, resolved.config), layout, family, store);
  } catch (err) {
    await store.close();
    throw err;
  }
}

/**
 * The tensors of the checkpoint in `dir` as its readers see them: as stored, or with FP8
 * weights (Fp8BlockStore) or MXFP4 experts (Mxfp4Store) dequantised to BF16 when config.json
 * declares them. `raw` is its parsed
 * config.json when the caller has it; without one (a checkpoint built in memory) the tensors are
 * read as stored. Throws CheckpointError for a quantization it cannot read.
 */
export async function openTensorSource(dir: string, raw?: Record<string, unknown>): Promise<TensorSource> {
  const config = raw ?? (await readConfigJson(dir).catch(() => ({}) as Record<string, unknown>));
  assertReadableQuantization(dir, config);
  const store = await TensorStore.open(dir);
  const fp8 = fp8BlockQuantization(config);
  const mxfp4 = mxfp4Quantization(config);
  if (fp8 === null && mxfp4 === null) return store;
  try {
    return fp8 !== null ? new Fp8BlockStore(store, fp8, dir) : new Mxfp4Store(store, mxfp4!, dir);
  } catch (err) {
    await store.close();
    throw err;
  }
}
