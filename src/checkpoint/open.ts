/**
 * openCheckpoint(dir): a Hugging Face MoE checkpoint directory (config.json + safetensors, single
 * file or sharded) as a validated `Checkpoint`. Opening reads config.json, resolves its family,
 * builds the layout and checks every expected tensor's presence, shape and dtype, so later code
 * can trust the names and shapes without re-checking.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { TensorStore } from '../io/sharded.js';
import { CheckpointError } from './errors.js';
import { expectedTensors } from './expected.js';
import type { Family } from './family.js';
import { buildLayout } from './layout.js';
import { familyForConfig } from './registry.js';
import type { Checkpoint, ExpertMatrixType, ModelConfig, ModelLayout, TensorMeta } from './types.js';
import { assertNoLayoutProblems, findLayoutProblems } from './validate.js';

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
    private readonly store: TensorStore,
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
    return { name: info.name, dtype: info.dtype, shape: [...info.shape], file: info.file, byteLength: info.byteLength };
  }

  async readF32(name: string): Promise<Float32Array> {
    return this.store.readF32(name);
  }

  async readRowsF32(name: string, start: number, end: number): Promise<Float32Array> {
    return this.store.readRowsF32(name, start, end);
  }

  async readExpert(layer: number, expert: number, type: ExpertMatrixType): Promise<Float32Array> {
    const { tensor, start, end } = this.expertRows(layer, expert, type);
    return start === null ? this.store.readF32(tensor) : this.store.readRowsF32(tensor, start, end);
  }

  async readExpertBf16(layer: number, expert: number, type: ExpertMatrixType): Promise<Uint16Array | null> {
    const { tensor, start, end } = this.expertRows(layer, expert, type);
    const info = this.store.tensor(tensor);
    if (info?.dtype !== 'BF16') return null;
    if (start !== null) return this.store.readRowsBf16(tensor, start, end);
    const cols = info.shape.at(-1) ?? 1;
    return this.store.readRowsBf16(tensor, 0, info.shape.length === 0 ? 1 : info.elementCount / cols);
  }

  bf16TensorNames(): Set<string> {
    const names = new Set<string>();
    for (const layer of this.layout.layers) {
      const moe = layer.moe;
      if (!moe) continue;
      const candidates = [...(moe.experts ?? []).flatMap((e) => [e.gate, e.up, e.down]), ...(moe.fused ? [moe.fused.gateUp, moe.fused.down] : [])];
      for (const name of candidates) if (this.store.tensor(name)?.dtype === 'BF16') names.add(name);
    }
    return names;
  }

  /** Where one expert's matrix is stored: a whole tensor (start null) or rows of a fused one. */
  private expertRows(layer: number, expert: number, type: ExpertMatrixType): { tensor: string; start: null; end: null } | { tensor: string; start: number; end: number } {
    const moe = this.layout.layers[layer]?.moe;
    if (!Number.isInteger(layer) || !moe)
      throw new CheckpointError('OutOfRange', `layer ${layer} is not an MoE layer (MoE layers: ${this.moeLayerList()})`);
    if (!Number.isInteger(expert) || expert < 0 || expert >= this.config.numExperts)
      throw new CheckpointError('OutOfRange', `expert ${expert} does not exist; layer ${layer} has experts 0..${this.config.numExperts - 1}`);
    if (moe.experts) return { tensor: moe.experts[expert][type], start: null, end: null };
    if (!moe.fused) throw new CheckpointError('OutOfRange', `layer ${layer} names no expert tensors`);
    const I = this.config.expertIntermediateSize;
    const H = this.config.hiddenSize;
    // fused gate_up [E, 2I, H] viewed as rows of H: expert e's gate rows come first, then its up rows
    if (type === 'gate') return { tensor: moe.fused.gateUp, start: expert * 2 * I, end: expert * 2 * I + I };
    if (type === 'up') return { tensor: moe.fused.gateUp, start: expert * 2 * I + I, end: (expert + 1) * 2 * I };
    // fused down [E, H, I] viewed as rows of I: expert e owns rows e·H..(e+1)·H, i.e. its [H, I] matrix
    return { tensor: moe.fused.down, start: expert * H, end: (expert + 1) * H };
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
 * Open and validate a checkpoint directory. Throws CheckpointError (kind names the problem) for a
 * missing/invalid config.json, an unsupported model_type, shards outside the directory, or tensors
 * that do not match the config; safetensors-level damage surfaces as the io layer's SafetensorsError.
 */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const absDir = path.resolve(dir);
  await requireDirectory(absDir);
  const raw = await readConfigJson(absDir);
  const family = familyForConfig(raw);
  const resolved = family.resolveConfig(raw);
  const store = await TensorStore.open(absDir);
  try {
    assertShardsInside(absDir, store.files);
    const layout = buildLayout(family, resolved, (name) => store.tensor(name) !== undefined);
    const problems = findLayoutProblems(expectedTensors(resolved.config, layout), (name) => store.tensor(name));
    assertNoLayoutProblems(problems, absDir, family.label);
    return new OpenedCheckpoint(absDir, resolved.config, layout, family, store);
  } catch (err) {
    await store.close();
    throw err;
  }
}
