/**
 * safetensors reader that never loads a whole file: the header is parsed and validated with every
 * rule of the upstream Rust reader, then tensors (or row ranges of them) are fetched with
 * positioned reads.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DTYPE_BITS, DTYPES, decodeToF32, isDType, widenHalvesInPlace, type DType } from './dtype.js';
import { SafetensorsError } from './errors.js';
import { tensorBytes, type TensorArena, type TensorBufferSource } from './tensor-buffers.js';
import { fileMapper, type FileMapper } from './file-map.js';
import { JsonNumber, JsonSyntaxError, isJsonObject, jsonTypeName, parseStrictJson, type JsonValue } from './header-json.js';

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** [begin, end) relative to the start of the data buffer (byte 8 + N of the file). */
  dataOffsets: [number, number];
  byteLength: number;
  elementCount: number;
}

export interface SafetensorsHeader {
  /** Tensors in data-offset order. */
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string> | null;
}

/** Upstream `MAX_HEADER_SIZE`. */
export const MAX_HEADER_SIZE = 100_000_000;
/** Size of the little-endian u64 that holds N. */
export const LENGTH_PREFIX_BYTES = 8;
const U64_MAX = (1n << 64n) - 1n;
const METADATA_KEY = '__metadata__';

/**
 * Validate the 8-byte length prefix against the file size and return N (the header length).
 * `prefix` may be shorter than 8 bytes only when the file is.
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < LENGTH_PREFIX_BYTES || prefix.length < LENGTH_PREFIX_BYTES) {
    throw new SafetensorsError('HeaderTooSmall', `file is ${fileSize} bytes, smaller than the 8-byte header length field`, { file });
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_PREFIX_BYTES).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError('HeaderTooLarge', `header length field says ${n} bytes, above the ${MAX_HEADER_SIZE}-byte limit`, { file });
  }
  const length = Number(n);
  if (LENGTH_PREFIX_BYTES + length > fileSize) {
    throw new SafetensorsError(
      'InvalidHeaderLength',
      `header length field says ${length} bytes but the file has only ${fileSize - LENGTH_PREFIX_BYTES} after the length field (truncated file?)`,
      { file },
    );
  }
  return length;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

interface RawTensorInfo {
  name: string;
  dtype: DType;
  shape: bigint[];
  begin: bigint;
  end: bigint;
}

function deserializationError(file: string, detail: string, tensor?: string): SafetensorsError {
  return new SafetensorsError('InvalidHeaderDeserialization', detail, { file, tensor });
}

/** A JSON integer that fits serde's `usize` (u64): non-negative, no fraction or exponent, ≤ 2^64−1. */
function unsignedField(value: JsonValue | undefined, what: string, file: string, tensor: string): bigint {
  const parsed = value instanceof JsonNumber ? value.asUnsignedBigInt() : undefined;
  if (parsed === undefined || parsed > U64_MAX) {
    const shown = value instanceof JsonNumber ? value.text : value === undefined ? 'nothing' : jsonTypeName(value);
    throw deserializationError(file, `${what} must be an unsigned 64-bit integer, got ${shown}`, tensor);
  }
  return parsed;
}

function readTensorInfo(name: string, value: JsonValue, file: string): RawTensorInfo {
  if (!isJsonObject(value)) throw deserializationError(file, `tensor info must be an object, got ${jsonTypeName(value)}`, name);
  const dtype = value.get('dtype');
  if (typeof dtype !== 'string' || !isDType(dtype)) {
    const shown = typeof dtype === 'string' ? JSON.stringify(dtype) : dtype === undefined ? 'nothing' : jsonTypeName(dtype);
    throw deserializationError(file, `"dtype" must be one of ${DTYPES.join(', ')}; got ${shown}`, name);
  }
  const shape = value.get('shape');
  if (!Array.isArray(shape)) throw deserializationError(file, `"shape" must be an array of integers`, name);
  const offsets = value.get('data_offsets');
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw deserializationError(file, `"data_offsets" must be an array [begin, end]`, name);
  }
  // Fields other than these three are ignored, as serde does for TensorInfo.
  return {
    name,
    dtype,
    shape: shape.map((d, i) => unsignedField(d, `shape[${i}]`, file, name)),
    begin: unsignedField(offsets[0], 'data_offsets[0]', file, name),
    end: unsignedField(offsets[1], 'data_offsets[1]', file, name),
  };
}

function readMetadata(value: JsonValue, file: string): Record<string, string> | null {
  if (value === null) return null; // serde reads `Option<HashMap>`: null is "no metadata"
  if (!isJsonObject(value)) throw deserializationError(file, `"__metadata__" must be an object of strings, got ${jsonTypeName(value)}`);
  // A null prototype: a key like "__proto__" or "constructor" is then just data.
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, v] of value) {
    if (typeof v !== 'string') {
      throw deserializationError(file, `"__metadata__" value for ${JSON.stringify(key)} must be a string, got ${jsonTypeName(v)}`);
    }
    metadata[key] = v;
  }
  return metadata;
}

function toSafeNumber(value: bigint, what: string, file: string, tensor: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SafetensorsError('ValidationOverflow', `${what} ${value} is above 2^53−1, which JavaScript cannot represent exactly`, { file, tensor });
  }
  return Number(value);
}

/**
 * Parse and validate a header (the N bytes after the length field). `fileSize` is the size of the
 * whole file: the data buffer must end exactly at it. Pure: no I/O.
 *
 * Checks, in upstream order: UTF-8 (InvalidHeader); JSON syntax, duplicate keys, field types,
 * closed dtype list, string-only metadata (InvalidHeaderDeserialization); offsets contiguous from 0
 * with no hole or overlap (InvalidOffset); shape × bits without u64 overflow (ValidationOverflow);
 * whole bytes (MisalignedSlice); span = size (TensorInvalidInfo); no missing or trailing bytes
 * (MetadataIncompleteBuffer).
 */
export function parseSafetensorsHeader(header: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(header);
  } catch (cause) {
    throw new SafetensorsError('InvalidHeader', 'header is not valid UTF-8', { file, cause });
  }
  let root: JsonValue;
  try {
    root = parseStrictJson(text);
  } catch (cause) {
    if (cause instanceof JsonSyntaxError) throw deserializationError(file, `header is not valid JSON: ${cause.message}`);
    throw cause;
  }
  if (!isJsonObject(root)) throw deserializationError(file, `header must be a JSON object, got ${jsonTypeName(root)}`);

  let metadata: Record<string, string> | null = null;
  const infos: RawTensorInfo[] = [];
  for (const [name, value] of root) {
    if (name === METADATA_KEY) metadata = readMetadata(value, file);
    else infos.push(readTensorInfo(name, value, file));
  }

  // Upstream sorts by (begin, end) and then requires each tensor to start where the last ended.
  infos.sort((a, b) => (a.begin !== b.begin ? (a.begin < b.begin ? -1 : 1) : a.end < b.end ? -1 : a.end > b.end ? 1 : 0));
  let expectedBegin = 0n;
  const sizes: bigint[] = [];
  for (const info of infos) {
    const tensor = info.name;
    if (info.begin !== expectedBegin || info.end < info.begin) {
      throw new SafetensorsError(
        'InvalidOffset',
        `data_offsets [${info.begin}, ${info.end}] should start at ${expectedBegin}: tensors must tile the data buffer with no hole or overlap`,
        { file, tensor },
      );
    }
    expectedBegin = info.end;
    let elements = 1n;
    for (const dim of info.shape) {
      elements *= dim;
      if (elements > U64_MAX) throw new SafetensorsError('ValidationOverflow', `shape [${info.shape.join(', ')}] has more than 2^64 elements`, { file, tensor });
    }
    const bits = elements * BigInt(DTYPE_BITS[info.dtype]);
    if (bits > U64_MAX) throw new SafetensorsError('ValidationOverflow', `shape [${info.shape.join(', ')}] × ${info.dtype} overflows 2^64 bits`, { file, tensor });
    if (bits % 8n !== 0n) {
      throw new SafetensorsError('MisalignedSlice', `${elements} × ${info.dtype} is ${bits} bits, not a whole number of bytes`, { file, tensor });
    }
    const size = bits / 8n;
    if (info.end - info.begin !== size) {
      throw new SafetensorsError(
        'TensorInvalidInfo',
        `data_offsets span ${info.end - info.begin} bytes but ${info.dtype}[${info.shape.join(', ')}] needs ${size}`,
        { file, tensor },
      );
    }
    sizes.push(size);
  }

  const expectedSize = BigInt(LENGTH_PREFIX_BYTES + header.length) + expectedBegin;
  if (expectedSize !== BigInt(fileSize)) {
    const problem = expectedSize > BigInt(fileSize) ? `${expectedSize - BigInt(fileSize)} bytes are missing` : `${BigInt(fileSize) - expectedSize} trailing bytes follow the data`;
    throw new SafetensorsError('MetadataIncompleteBuffer', `header describes a ${expectedSize}-byte file but the file has ${fileSize} bytes: ${problem}`, { file });
  }

  // Everything below is bounded by the file size, hence safe — except a dimension beside a zero one.
  const tensors = new Map<string, TensorEntry>();
  infos.forEach((info, i) => {
    const byteLength = Number(sizes[i]);
    const shape = info.shape.map((d, k) => toSafeNumber(d, `shape[${k}]`, file, info.name));
    const elementCount = shape.reduce((a, b) => a * b, 1);
    tensors.set(info.name, { name: info.name, dtype: info.dtype, shape, dataOffsets: [Number(info.begin), Number(info.end)], byteLength, elementCount });
  });
  return { tensors, metadata };
}

export interface ParsedSafetensors extends SafetensorsHeader {
  headerLength: number;
  dataStart: number;
}

/** Validate a whole in-memory file (length field, header, layout). Tensor bytes are `buffer.subarray(dataStart + begin, dataStart + end)`. */
export function parseSafetensorsBuffer(buffer: Uint8Array, file = '<buffer>'): ParsedSafetensors {
  const headerLength = parseHeaderLength(buffer.subarray(0, LENGTH_PREFIX_BYTES), buffer.length, file);
  const dataStart = LENGTH_PREFIX_BYTES + headerLength;
  const parsed = parseSafetensorsHeader(buffer.subarray(LENGTH_PREFIX_BYTES, dataStart), buffer.length, file);
  return { ...parsed, headerLength, dataStart };
}

/** The 2-D view [prod(shape[:-1]), shape[-1]] used by row reads; a scalar is 1×1. */
export function rowView(entry: TensorEntry): { rows: number; cols: number } {
  if (entry.shape.length === 0) return { rows: 1, cols: 1 };
  const cols = entry.shape[entry.shape.length - 1];
  const rows = entry.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  return { rows, cols };
}

/** Node's fs.read moves at most ~2 GiB per call. */
const MAX_READ_CHUNK = 1 << 30;

export class SafetensorsFile {
  private closed = false;
  /** the memory tensors are read into (see packInto) */
  private source: TensorBufferSource = tensorBytes;
  /** the whole file mapped into memory, and who mapped it (see mapReads) */
  private mapping: { buffer: ArrayBuffer; mapper: FileMapper } | null = null;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly fileSize: number,
    readonly dataStart: number,
    private readonly entries: Map<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>> | null,
  ) {}

  /** Open a file and validate its header; only the first 8 + N bytes are read. */
  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      const detail = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a .safetensors file' : `cannot open (${code ?? String(cause)})`;
      throw new SafetensorsError(code === 'ENOENT' ? 'ShardNotFound' : 'IoError', detail, { file: path, cause });
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new SafetensorsError('IoError', 'is not a regular file (a directory?); expected a .safetensors file', { file: path });
      const size = stats.size;
      const prefix = await readExactly(handle, Math.min(LENGTH_PREFIX_BYTES, size), 0, path);
      const headerLength = parseHeaderLength(prefix, size, path);
      const header = await readExactly(handle, headerLength, LENGTH_PREFIX_BYTES, path);
      const parsed = parseSafetensorsHeader(header, size, path);
      return new SafetensorsFile(path, handle, size, LENGTH_PREFIX_BYTES + headerLength, parsed.tensors, parsed.metadata === null ? null : Object.freeze(parsed.metadata));
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Reads from now on take their memory from `arena` (tensors of a few hundred KiB share huge
   * pages; see TensorArena), or, with null, each its own buffer again. For reads whose results
   * are kept together, as a served model's load. Only memory handed to the caller is packed;
   * bytes decoded into a new array (dtypes other than F32, BF16 and F16) are not.
   */
  packInto(arena: TensorArena | null): void {
    this.source = arena === null ? tensorBytes : arena.bytes;
  }

  /**
   * Maps the whole file into memory (io/file-map.ts); from now on the reads of tensors kept as
   * stored (readBf16, readRowsBf16, and readF32 of an F32 tensor) hand out views of its pages
   * instead of copies, where the tensor starts on a multiple of its element size. The views are
   * read-only. Returns the bytes mapped: 0 where the file cannot be mapped (no mapper installed,
   * RFID_MOE_MMAP=0, a big-endian host, an empty file), and its reads stay copies. Idempotent.
   */
  mapReads(): number {
    if (this.closed) throw new SafetensorsError('IoError', 'file is closed', { file: this.path });
    if (this.mapping) return this.mapping.buffer.byteLength;
    const mapper = fileMapper();
    if (mapper === null || !littleEndianHost || this.fileSize === 0) return 0;
    let buffer: ArrayBuffer | null;
    try {
      buffer = mapper.map(this.handle.fd, this.fileSize);
    } catch {
      buffer = null; // a mapper's failure is not the read's: copies serve
    }
    if (buffer === null || buffer.byteLength !== this.fileSize) return 0;
    this.mapping = { buffer, mapper };
    return this.fileSize;
  }

  /** Brings every page of the mapped tensors into memory, off the main thread (nothing when not mapped). */
  async populateMapped(): Promise<void> {
    const m = this.mapping;
    if (!m) return;
    try {
      await m.mapper.populate(new Uint8Array(m.buffer, this.dataStart, this.fileSize - this.dataStart));
    } catch (cause) {
      throw new SafetensorsError('IoError', (cause as Error).message, { file: this.path, cause });
    }
  }

  /**
   * Hands the mapped pages back to the system (nothing when not mapped): the process's memory
   * falls now, not when the collector frees the views. Views still held read the file again.
   */
  dropMapped(): void {
    const m = this.mapping;
    if (m) m.mapper.drop(new Uint8Array(m.buffer));
  }

  /** `byteLength` bytes at `position` as a view of the mapping, where mapped and `position` is a multiple of `align`. */
  private mappedView(position: number, byteLength: number, align: number): Uint8Array | null {
    if (this.mapping === null || position % align !== 0) return null;
    return new Uint8Array(this.mapping.buffer, position, byteLength);
  }

  /** Names in data-offset order. */
  tensorNames(): string[] {
    return [...this.entries.keys()];
  }

  tensor(name: string): TensorEntry | undefined {
    return this.entries.get(name);
  }

  private entry(name: string): TensorEntry {
    if (this.closed) throw new SafetensorsError('IoError', 'file is closed', { file: this.path, tensor: name });
    const entry = this.entries.get(name);
    if (entry === undefined) throw new SafetensorsError('TensorNotFound', 'no tensor of this name in the file', { file: this.path, tensor: name });
    return entry;
  }

  /** The tensor's raw little-endian bytes (a fresh, 8-aligned buffer; a range of a shared one after packInto). */
  async readBytes(name: string): Promise<Uint8Array> {
    const entry = this.entry(name);
    return readExactly(this.handle, entry.byteLength, this.dataStart + entry.dataOffsets[0], this.path, name, this.source);
  }

  /**
   * Rows [start, end) of the tensor's 2-D view as stored (raw little-endian bytes in a fresh
   * buffer, never packed): for readers that decode a dtype themselves (block-FP8 codes).
   */
  async readRowsBytes(name: string, start: number, end: number): Promise<Uint8Array> {
    const { position, rowBytes } = this.rowSlice(name, start, end);
    return readExactly(this.handle, (end - start) * rowBytes, position, this.path, name);
  }

  /**
   * Rows [start, end) of the tensor's 2-D view as stored, to be kept (FP8 codes held as the
   * checkpoint stores them): a read-only view of the mapped file where it is mapped (mapReads),
   * else a buffer from this file's read source (the shared arena after packInto).
   */
  async readRowsKept(name: string, start: number, end: number): Promise<Uint8Array> {
    const { position, rowBytes } = this.rowSlice(name, start, end);
    return this.mappedView(position, (end - start) * rowBytes, 1) ?? readExactly(this.handle, (end - start) * rowBytes, position, this.path, name, this.source);
  }

  /**
   * Where rows [start, end) of the tensor's 2-D view begin in the file, and the bytes of a row;
   * throws SafetensorsError for rows outside the view or a packed sub-byte dtype (whose rows may
   * start mid-byte).
   */
  private rowSlice(name: string, start: number, end: number): { entry: TensorEntry; cols: number; rowBytes: number; position: number } {
    const entry = this.entry(name);
    const { rows, cols } = rowView(entry);
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > rows) {
      throw new SafetensorsError('SliceOutOfRange', `rows [${start}, ${end}) are outside [0, ${rows}] of the ${rows}×${cols} view`, { file: this.path, tensor: name });
    }
    const bits = DTYPE_BITS[entry.dtype];
    if (bits % 8 !== 0) {
      throw new SafetensorsError('UnsupportedDType', `row reads of packed sub-byte dtype ${entry.dtype} are not supported; use readBytes()`, { file: this.path, tensor: name });
    }
    const rowBytes = cols * (bits / 8);
    return { entry, cols, rowBytes, position: this.dataStart + entry.dataOffsets[0] + start * rowBytes };
  }

  /** The whole tensor as f32 (flattened, row-major). */
  async readF32(name: string): Promise<Float32Array> {
    const entry = this.entry(name);
    if (entry.dtype === 'F32' && littleEndianHost) {
      const view = this.mappedView(this.dataStart + entry.dataOffsets[0], entry.byteLength, 4);
      if (view) return new Float32Array(view.buffer, view.byteOffset, entry.elementCount);
      // Read straight into the result: no second copy of the tensor.
      const bytes = this.source(entry.byteLength);
      await readInto(this.handle, bytes, this.dataStart + entry.dataOffsets[0], this.path, name);
      touchPages(bytes);
      return new Float32Array(bytes.buffer, bytes.byteOffset, entry.elementCount);
    }
    if (isHalf(entry.dtype) && littleEndianHost) {
      return this.readHalvesWidened(entry.dtype, this.dataStart + entry.dataOffsets[0], entry.elementCount, name);
    }
    // the bytes are decoded into a new array and dropped: never packed (see packInto)
    return decodeWithContext(entry, await readExactly(this.handle, entry.byteLength, this.dataStart + entry.dataOffsets[0], this.path, name), this.path);
  }

  /**
   * `count` BF16/F16 values from `position`, read into the upper half of the f32 result and
   * widened there: one buffer of the result's size instead of the bytes plus the result (the
   * checkpoints served and compressed are mostly BF16, and this is their load).
   */
  private async readHalvesWidened(dtype: 'BF16' | 'F16', position: number, count: number, name: string): Promise<Float32Array> {
    const bytes = this.source(count * 4);
    await readInto(this.handle, bytes.subarray(count * 2), position, this.path, name);
    const out = new Float32Array(bytes.buffer, bytes.byteOffset, count);
    widenHalvesInPlace(dtype, out);
    return out;
  }

  /** Rows [start, end) of the 2-D view [prod(shape[:-1]), shape[-1]], as f32. */
  async readRowsF32(name: string, start: number, end: number): Promise<Float32Array> {
    const { entry, cols, rowBytes, position } = this.rowSlice(name, start, end);
    if (isHalf(entry.dtype) && littleEndianHost) return this.readHalvesWidened(entry.dtype, position, (end - start) * cols, name);
    const bytes = await readExactly(this.handle, (end - start) * rowBytes, position, this.path, name);
    return decodeWithContext(entry, bytes, this.path);
  }

  /**
   * Rows [start, end) of a BF16 tensor's 2-D view, as stored: the 16-bit patterns in a Uint16Array
   * (each the upper half of an f32, so widening later is exact). For weights kept in BF16 in
   * memory (half the bytes of f32). Refuses any other dtype.
   */
  async readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array> {
    const entry = this.entry(name);
    if (entry.dtype !== 'BF16') {
      throw new SafetensorsError('UnsupportedDType', `readRowsBf16 needs a BF16 tensor, this one is ${entry.dtype}; use readRowsF32()`, { file: this.path, tensor: name });
    }
    const { cols, position } = this.rowSlice(name, start, end);
    const view = this.mappedView(position, (end - start) * cols * 2, 2);
    if (view) return new Uint16Array(view.buffer, view.byteOffset, (end - start) * cols);
    const bytes = await readExactly(this.handle, (end - start) * cols * 2, position, this.path, name, this.source);
    const out = new Uint16Array(bytes.buffer, bytes.byteOffset, (end - start) * cols);
    if (!littleEndianHost) for (let i = 0; i < out.length; i++) out[i] = (out[i] >>> 8) | ((out[i] & 0xff) << 8);
    return out;
  }

  /** A whole BF16 tensor as stored (see readRowsBf16). */
  async readBf16(name: string): Promise<Uint16Array> {
    const { rows } = rowView(this.entry(name));
    return this.readRowsBf16(name, 0, rows);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // a mapping outlives the file's handle (dropMapped still works); it is unmapped when the
    // last view of it and this object are collected
    await this.handle.close();
  }
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const isHalf = (dtype: DType): dtype is 'BF16' | 'F16' => dtype === 'BF16' || dtype === 'F16';

function decodeWithContext(entry: TensorEntry, bytes: Uint8Array, file: string): Float32Array {
  try {
    return decodeToF32(entry.dtype, bytes);
  } catch (err) {
    if (err instanceof SafetensorsError) throw err.withContext({ file, tensor: entry.name });
    throw err;
  }
}

async function readInto(handle: FileHandle, target: Uint8Array, position: number, file: string, tensor?: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, MAX_READ_CHUNK);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, length, position + done));
    } catch (cause) {
      throw new SafetensorsError('IoError', `read of ${length} bytes at ${position + done} failed: ${(cause as Error).message}`, { file, tensor, cause });
    }
    if (bytesRead === 0) {
      throw new SafetensorsError('IoError', `file ended after ${position + done} bytes while reading ${target.length} at ${position} (changed since it was opened?)`, { file, tensor });
    }
    done += bytesRead;
  }
}

/** Bytes between two touches: the smallest page size a host uses. */
const PAGE_BYTES = 4096;
let touched = 0;

/**
 * Reads one byte of every page of `bytes`, once, after the file's bytes were read into it, where
 * they are handed out as read (a widening pass touches every page anyway). Under a
 * hypervisor with shadow page tables (seen in a Firecracker microVM on PVM) the first access from
 * user space to each page that read() filled still takes a fault of ~6 µs (2 MB: ~3 ms), so a
 * tensor kept as read (BF16 weights held as stored) made the first request after a load pay for
 * every page it used: 216–308 ms against 110–154 ms for weights widened to f32, whose widening
 * touches them during the load. Touching here moves that cost into the load, ahead of the
 * requests a pre-loaded model serves; where read() maps the pages (bare metal, hardware-assisted
 * paging) it is 256 loads a MiB.
 */
function touchPages(bytes: Uint8Array): void {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += PAGE_BYTES) sum += bytes[i];
  touched = (touched + sum) | 0;
}

async function readExactly(handle: FileHandle, length: number, position: number, file: string, tensor?: string, source: TensorBufferSource = tensorBytes): Promise<Uint8Array> {
  const out = source(length);
  await readInto(handle, out, position, file, tensor);
  touchPages(out);
  return out;
}
