/**
 * Sharded checkpoints, as Hugging Face lays them out: `model-0000i-of-0000n.safetensors` plus
 * `model.safetensors.index.json` mapping each tensor to its shard, or a lone `model.safetensors`.
 */
import type { Fp8Matrix } from './fp8-matrix.js';
import type { Mxfp4Matrix } from './mxfp4-matrix.js';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from './atomic.js';
import { SafetensorsError } from './errors.js';
import { JsonNumber, JsonSyntaxError, isJsonObject, parseStrictJson, type JsonValue } from './header-json.js';
import { SafetensorsFile, type TensorEntry } from './safetensors-reader.js';
import { SafetensorsWriter, planEntrySize, serializeSafetensorsHeader, type TensorData, type TensorPlan } from './safetensors-writer.js';
import type { TensorArena } from './tensor-buffers.js';
import type { MappedFiles } from './file-map.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
export const DEFAULT_MAX_SHARD_BYTES = 5e9;

export interface ShardIndex {
  /** Informational (total_size, and whatever else the writer added). */
  metadata: Record<string, unknown>;
  /** tensor name → shard path relative to the index's directory. */
  weightMap: Map<string, string>;
}

const weightMapSchema = z.map(z.string(), z.string().min(1, 'shard file name is empty'));

/** Plain JS value of a JSON value, for metadata (objects get a null prototype; numbers become numbers). */
function toPlain(value: JsonValue): unknown {
  if (value instanceof JsonNumber) return value.toNumber();
  if (Array.isArray(value)) return value.map(toPlain);
  if (isJsonObject(value)) {
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of value) out[k] = toPlain(v);
    return out;
  }
  return value;
}

/**
 * Why `shard` may not be used as a path under the index's directory, or undefined if it may.
 * Symlinks are deliberately not resolved: the Hugging Face cache links every shard to a blob
 * outside the snapshot directory.
 */
function shardPathProblem(shard: string): string | undefined {
  if (shard.includes('\0')) return 'contains a NUL byte';
  if (path.isAbsolute(shard) || path.win32.isAbsolute(shard) || /^[A-Za-z]:/.test(shard)) return 'is an absolute path';
  const normal = path.posix.normalize(shard.replace(/\\/g, '/'));
  if (normal === '..' || normal.startsWith('../') || normal === '.' || normal.endsWith('/')) return 'leaves the checkpoint directory';
  return undefined;
}

/** Read and validate `<dir>/model.safetensors.index.json` (or `indexFile`); every shard it names must exist inside `dir`. */
export async function readShardIndex(dir: string, indexFile: string = INDEX_FILE): Promise<ShardIndex> {
  const indexPath = path.join(dir, indexFile);
  let text: string;
  try {
    text = await readFile(indexPath, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new SafetensorsError(code === 'ENOENT' ? 'ShardNotFound' : 'IoError', code === 'ENOENT' ? 'index file not found' : `cannot read index (${code})`, { file: indexPath, cause });
  }
  const invalid = (detail: string, tensor?: string) => new SafetensorsError('InvalidShardIndex', detail, { file: indexPath, tensor });
  let root: JsonValue;
  try {
    // The strict parser rejects duplicate tensor names, which JSON.parse would silently merge.
    root = parseStrictJson(text.replace(/^\uFEFF/, ''));
  } catch (cause) {
    if (cause instanceof JsonSyntaxError) throw invalid(`not valid JSON: ${cause.message}`);
    throw cause;
  }
  if (!isJsonObject(root)) throw invalid('must be a JSON object with "weight_map"');
  const rawMap = root.get('weight_map');
  if (rawMap === undefined || !isJsonObject(rawMap)) throw invalid('"weight_map" must be an object mapping tensor names to shard files');
  const parsedMap = weightMapSchema.safeParse(rawMap);
  if (!parsedMap.success) {
    const issue = parsedMap.error.issues[0];
    const key = issue.path[0];
    throw invalid(`"weight_map" ${issue.message}`, typeof key === 'string' ? key : undefined);
  }
  const rawMetadata = root.get('metadata');
  if (rawMetadata !== undefined && rawMetadata !== null && !isJsonObject(rawMetadata)) throw invalid('"metadata" must be an object');
  const metadata = (rawMetadata === undefined || rawMetadata === null ? Object.create(null) : toPlain(rawMetadata)) as Record<string, unknown>;

  const weightMap: Map<string, string> = parsedMap.data;
  const checked = new Map<string, Promise<void>>();
  for (const [tensor, shard] of weightMap) {
    const problem = shardPathProblem(shard);
    if (problem !== undefined) throw invalid(`shard path ${JSON.stringify(shard)} ${problem}; shard paths must be relative to the index's directory`, tensor);
    if (!checked.has(shard)) {
      checked.set(
        shard,
        stat(path.join(dir, shard)).then(
          (s) => {
            if (!s.isFile()) throw new SafetensorsError('ShardNotFound', `shard ${JSON.stringify(shard)} named by ${indexFile} is not a regular file`, { file: path.join(dir, shard) });
          },
          (cause: unknown) => {
            throw new SafetensorsError('ShardNotFound', `shard ${JSON.stringify(shard)} named by ${indexFile} (e.g. for tensor ${JSON.stringify(tensor)}) does not exist`, { file: path.join(dir, shard), cause });
          },
        ),
      );
    }
  }
  await Promise.all(checked.values());
  return { metadata, weightMap };
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch (cause) {
    throw new SafetensorsError('ShardNotFound', 'no such file or directory', { file: p, cause });
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Columns first, first + step, … (count of them) of a 2-D view's rows. */
export interface ColumnSelection {
  first: number;
  step: number;
  count: number;
}

/**
 * `decoded`: a view presents the tensor decoded from another stored form (FP8 codes and their
 * scales, MXFP4 blocks): every read is a copy, never a view of the file's mapped pages.
 * `packed: 'mxfp4'`: it is MXFP4 on disk, and readColumnsMxfp4 can give cuts of it as stored;
 * `packed: 'fp8'`: it is E4M3 codes with scales on disk, and readRowsFp8 can give rows of it as
 * stored, with a scale every `fp8Group` values of a row (Fp8Matrix.group).
 */
export type StoreTensorEntry = TensorEntry & { file: string; decoded?: true; packed?: 'mxfp4' | 'fp8'; fp8Group?: number };

/**
 * What readers of a checkpoint's tensors need: TensorStore, or a view over one that presents
 * tensors other than as stored (a quantized checkpoint's weights dequantized on read).
 */
export interface TensorSource {
  /** Shard files, absolute or as given, in shard order. */
  readonly files: readonly string[];
  readonly shardCount: number;
  /** Names in shard order, then data-offset order within a shard. */
  tensorNames(): string[];
  tensor(name: string): StoreTensorEntry | undefined;
  /** The tensor's little-endian bytes in its (presented) dtype. */
  readBytes(name: string): Promise<Uint8Array>;
  readF32(name: string): Promise<Float32Array>;
  /** rows [start, end) of the tensor viewed as 2-D [prod(shape[:-1]), shape[-1]] */
  readRowsF32(name: string, start: number, end: number): Promise<Float32Array>;
  /** a BF16 tensor's bit patterns (throws for another dtype) */
  readBf16(name: string): Promise<Uint16Array>;
  readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array>;
  /**
   * The transpose of columns first, first + step, … (count of them) of rows [start, end) as BF16,
   * [count, end − start], where the view can give it without decoding the whole rows (an MXFP4
   * expert stored transposed to its presented form: gpt-oss's); null where it cannot, and the
   * caller reads the rows and transposes them itself.
   */
  readColumnsBf16?(name: string, start: number, end: number, columns: ColumnSelection): Promise<Uint16Array | null>;
  /** The same cut kept as stored where the tensor is MXFP4 (Mxfp4Matrix, its rows the selected columns); null otherwise. */
  readColumnsMxfp4?(name: string, start: number, end: number, columns: ColumnSelection): Promise<Mxfp4Matrix | null>;
  /** Rows [start, end) of the 2-D view kept as stored where the tensor is FP8 (Fp8Matrix); null otherwise. */
  readRowsFp8?(name: string, start: number, end: number): Promise<Fp8Matrix | null>;
  /** reads take their memory from `arena` from now on, or their own again with null */
  packInto(arena: TensorArena | null): void;
  /** reads of tensors kept as stored hand out views of the mapped files from now on (SafetensorsFile.mapReads); null where none could be mapped */
  mapReads(): MappedFiles | null;
  close(): Promise<void>;
}

/** Read-only view of a checkpoint (one file or many shards) by tensor name. */
export class TensorStore implements TensorSource {
  /** the checkpoint's names (tensorNames) and entries (tensor), made on first use; the headers do not change once open */
  private names: string[] | undefined;
  private readonly entries = new Map<string, StoreTensorEntry>();

  private constructor(
    /** Shard files, absolute or as given, in shard order. */
    readonly files: string[],
    private readonly shards: SafetensorsFile[],
    private readonly owner: Map<string, SafetensorsFile>,
  ) {}

  get shardCount(): number {
    return this.shards.length;
  }

  /**
   * Accepts a directory holding `model.safetensors.index.json`, or `model.safetensors`, or exactly
   * one `*.safetensors`; or the path of a `.safetensors` file or of an index file.
   */
  static async open(dirOrFile: string): Promise<TensorStore> {
    if (!(await isDirectory(dirOrFile))) {
      if (dirOrFile.endsWith('.index.json')) return TensorStore.openIndexed(path.dirname(dirOrFile), path.basename(dirOrFile));
      return TensorStore.openFiles([dirOrFile]);
    }
    if (await exists(path.join(dirOrFile, INDEX_FILE))) return TensorStore.openIndexed(dirOrFile, INDEX_FILE);
    if (await exists(path.join(dirOrFile, SINGLE_FILE))) return TensorStore.openFiles([path.join(dirOrFile, SINGLE_FILE)]);
    const candidates = (await readdir(dirOrFile)).filter((f) => f.endsWith('.safetensors')).sort();
    if (candidates.length === 1) return TensorStore.openFiles([path.join(dirOrFile, candidates[0])]);
    const indexes = (await readdir(dirOrFile)).filter((f) => f.endsWith('.safetensors.index.json'));
    if (candidates.length === 0 || indexes.length > 0) {
      throw new SafetensorsError(
        'ShardNotFound',
        candidates.length === 0
          ? `no ${INDEX_FILE}, ${SINGLE_FILE} or other .safetensors file in this directory`
          : `several .safetensors files but no ${INDEX_FILE}${indexes.length > 0 ? ` (found ${indexes.join(', ')}: pass its path)` : ''}; pass a file path`,
        { file: dirOrFile },
      );
    }
    throw new SafetensorsError('ShardNotFound', `${candidates.length} .safetensors files (${candidates.slice(0, 4).join(', ')}…) but no ${INDEX_FILE} saying which tensor lives where; pass one file's path`, { file: dirOrFile });
  }

  private static async openFiles(files: string[], index?: { weightMap: Map<string, string>; shardFor: (shard: string) => string; indexPath: string }): Promise<TensorStore> {
    const shards: SafetensorsFile[] = [];
    try {
      for (const f of files) shards.push(await SafetensorsFile.open(f));
      const owner = new Map<string, SafetensorsFile>();
      if (index === undefined) {
        for (const shard of shards) for (const name of shard.tensorNames()) owner.set(name, shard);
      } else {
        const byPath = new Map(shards.map((s) => [s.path, s]));
        for (const [tensor, shard] of index.weightMap) {
          const file = byPath.get(index.shardFor(shard))!;
          if (file.tensor(tensor) === undefined) {
            throw new SafetensorsError('TensorNotFound', `${path.basename(index.indexPath)} places tensor ${JSON.stringify(tensor)} in ${JSON.stringify(shard)} but that shard's header does not contain it`, {
              file: file.path,
              tensor,
            });
          }
          owner.set(tensor, file);
        }
        // Tensors present in a shard but absent from the weight_map are not part of the checkpoint
        // (transformers loads by the weight_map too) and stay invisible.
      }
      return new TensorStore(files, shards, owner);
    } catch (err) {
      await Promise.allSettled(shards.map((s) => s.close()));
      throw err;
    }
  }

  private static async openIndexed(dir: string, indexFile: string): Promise<TensorStore> {
    const index = await readShardIndex(dir, indexFile);
    const shardFor = (shard: string) => path.join(dir, shard);
    const files = [...new Set([...index.weightMap.values()])].sort().map(shardFor);
    return TensorStore.openFiles(files, { weightMap: index.weightMap, shardFor, indexPath: path.join(dir, indexFile) });
  }

  /** Names in shard order, then data-offset order within a shard. */
  tensorNames(): string[] {
    if (this.names === undefined) {
      this.names = [];
      for (const shard of this.shards) for (const n of shard.tensorNames()) if (this.owner.get(n) === shard) this.names.push(n);
    }
    return [...this.names];
  }

  tensor(name: string): StoreTensorEntry | undefined {
    // Opening, validating and counting a checkpoint look each tensor up several times: a model of
    // 59,000 tensors (GLM-5) spent most of a 1.1 s open building these entries anew at each lookup
    let entry = this.entries.get(name);
    if (entry === undefined) {
      const shard = this.owner.get(name);
      const stored = shard?.tensor(name);
      if (shard === undefined || stored === undefined) return undefined;
      entry = { ...stored, file: shard.path };
      this.entries.set(name, entry);
    }
    return entry;
  }

  private shardOf(name: string): SafetensorsFile {
    const shard = this.owner.get(name);
    if (shard === undefined) throw new SafetensorsError('TensorNotFound', `no tensor of this name in the checkpoint (${this.files.length} file(s), first ${this.files[0] ?? 'none'})`, { tensor: name });
    return shard;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    return this.shardOf(name).readBytes(name);
  }

  async readF32(name: string): Promise<Float32Array> {
    return this.shardOf(name).readF32(name);
  }

  /** Rows [start, end) of the 2-D view as stored (SafetensorsFile.readRowsBytes). */
  async readRowsBytes(name: string, start: number, end: number): Promise<Uint8Array> {
    return this.shardOf(name).readRowsBytes(name, start, end);
  }

  /** The same, to be kept: a view of the mapped file where mapped (SafetensorsFile.readRowsKept). */
  async readRowsKept(name: string, start: number, end: number): Promise<Uint8Array> {
    return this.shardOf(name).readRowsKept(name, start, end);
  }

  async readRowsF32(name: string, start: number, end: number): Promise<Float32Array> {
    return this.shardOf(name).readRowsF32(name, start, end);
  }

  async readBf16(name: string): Promise<Uint16Array> {
    return this.shardOf(name).readBf16(name);
  }

  async readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array> {
    return this.shardOf(name).readRowsBf16(name, start, end);
  }

  /** Every shard's reads take their memory from `arena` from now on, or their own again with null (SafetensorsFile.packInto). */
  packInto(arena: TensorArena | null): void {
    for (const shard of this.shards) shard.packInto(arena);
  }

  /** Maps every shard (SafetensorsFile.mapReads); null where none could be. */
  mapReads(): MappedFiles | null {
    const shards = this.shards;
    const bytes = shards.reduce((sum, shard) => sum + shard.mapReads(), 0);
    if (bytes === 0) return null;
    return {
      bytes,
      // one shard after another: the disk reads them in order
      async populate() {
        for (const shard of shards) await shard.populateMapped();
      },
      drop() {
        for (const shard of shards) shard.dropMapped();
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

export interface ShardedWriterOptions {
  /** Upper bound on tensor bytes per shard (default 5e9, as huggingface_hub); a larger tensor gets a shard of its own. */
  maxShardBytes?: number;
  /** File name prefix (default "model"). */
  prefix?: string;
  /** Per-shard `__metadata__` (default `{format: "pt"}`). */
  metadata?: Record<string, string>;
}

/** Split `plan` in order into groups of at most `maxShardBytes` tensor bytes. */
export function assignShards(plan: readonly TensorPlan[], maxShardBytes: number): TensorPlan[][] {
  const shards: TensorPlan[][] = [];
  let current: TensorPlan[] = [];
  let currentBytes = 0;
  for (const p of plan) {
    const bytes = planEntrySize(p).byteLength;
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(p);
    currentBytes += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return shards;
}

function shardFileName(prefix: string, index: number, count: number): string {
  return count === 1 ? `${prefix}.safetensors` : `${prefix}-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

export class ShardedWriter {
  private constructor(
    readonly dir: string,
    private readonly prefix: string,
    private readonly writers: SafetensorsWriter[],
    private readonly route: Map<string, SafetensorsWriter>,
    private readonly totalSize: number,
  ) {}

  static async create(dir: string, plan: TensorPlan[], opts: ShardedWriterOptions = {}): Promise<ShardedWriter> {
    const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
    if (!(maxShardBytes > 0)) throw new SafetensorsError('InvalidPlan', `maxShardBytes must be positive, got ${maxShardBytes}`);
    const prefix = opts.prefix ?? 'model';
    if (prefix.length === 0 || /[/\\\0]/.test(prefix)) throw new SafetensorsError('InvalidPlan', `prefix ${JSON.stringify(prefix)} must be a non-empty file name without separators`);
    // Validates the whole plan (duplicates across shards included) before touching the disk.
    const totalSize = serializeSafetensorsHeader(plan, null).dataSize;
    const groups = assignShards(plan, maxShardBytes);
    await mkdir(dir, { recursive: true });
    const writers: SafetensorsWriter[] = [];
    const route = new Map<string, SafetensorsWriter>();
    try {
      for (let i = 0; i < groups.length; i++) {
        const writer = await SafetensorsWriter.create(path.join(dir, shardFileName(prefix, i, groups.length)), groups[i], opts.metadata);
        writers.push(writer);
        for (const p of groups[i]) route.set(p.name, writer);
      }
    } catch (err) {
      await Promise.allSettled(writers.map((w) => w.abort()));
      throw err;
    }
    return new ShardedWriter(dir, prefix, writers, route, totalSize);
  }

  write(name: string, data: TensorData): Promise<void> {
    const writer = this.route.get(name);
    if (writer === undefined) return Promise.reject(new SafetensorsError('TensorNotFound', 'tensor is not in the write plan', { file: this.dir, tensor: name }));
    return writer.write(name, data);
  }

  /** Finish every shard, then write the index (several shards) — the index last, so it never names a missing shard. */
  async finish(): Promise<{ files: string[]; totalSize: number }> {
    try {
      for (const w of this.writers) await w.finish();
    } catch (err) {
      await this.abort();
      throw err;
    }
    const files = this.writers.map((w) => w.path);
    const indexPath = path.join(this.dir, `${this.prefix}.safetensors.index.json`);
    if (this.writers.length > 1) {
      const weightMap: Record<string, string> = Object.create(null) as Record<string, string>;
      const names = [...this.route.keys()].sort();
      for (const name of names) weightMap[name] = path.basename(this.route.get(name)!.path);
      const index = { metadata: { total_size: this.totalSize }, weight_map: weightMap };
      await writeFileAtomic(indexPath, JSON.stringify(index, null, 2) + '\n');
    } else {
      // A stale index from an earlier sharded write would otherwise shadow the new single file.
      await rm(indexPath, { force: true });
    }
    return { files, totalSize: this.totalSize };
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.writers.map((w) => w.abort()));
  }
}
