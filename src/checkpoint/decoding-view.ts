/**
 * What every quantized checkpoint's view has in common (Fp8BlockStore, Mxfp4Store): a TensorSource
 * over the stored tensors that presents some of them decoded to BF16 under their own name, hides
 * the tensors consumed by decoding them (scales, blocks), and passes every other tensor through.
 * A subclass says which tensors it decodes (`decoded`, filled by its constructor), what it hides
 * and why (`hidden`), how its names are listed, and how rows of one decoded tensor are decoded
 * (`decodeRows`); reads, the F32 form, the row checks and the memory source are here.
 */
import { widenHalvesInPlace } from '../io/dtype.js';
import type { MappedFiles } from '../io/file-map.js';
import { rowView } from '../io/safetensors-reader.js';
import type { StoreTensorEntry, TensorSource, TensorStore } from '../io/sharded.js';
import { tensorBytes, type TensorArena, type TensorBufferSource } from '../io/tensor-buffers.js';
import { CheckpointError } from './errors.js';

/** A tensor a view decodes: as presented (BF16), plus what the subclass needs to decode it. */
export interface DecodedTensor {
  entry: StoreTensorEntry;
}

export abstract class DecodingView<T extends DecodedTensor> implements TensorSource {
  /** presented name → how to decode it */
  protected readonly decoded = new Map<string, T>();
  /** stored names consumed by decoding (scales, blocks) → what reading one directly says */
  protected readonly hidden = new Map<string, string>();
  /** where decoded reads take their memory (a huge-page arena when the server packs its reads) */
  protected source: TensorBufferSource = tensorBytes;

  constructor(
    protected readonly inner: TensorStore,
    protected readonly dir: string,
  ) {}

  /** Rows [start, end) of `t`'s 2-D view, decoded into `out` as BF16 bit patterns. */
  protected abstract decodeRows(t: T, start: number, end: number, out: Uint16Array): Promise<void>;

  abstract tensorNames(): string[];

  protected error(what: string): CheckpointError {
    return new CheckpointError('Quantized', `${this.dir} ${what}; restore the checkpoint's original files`);
  }

  get files(): readonly string[] {
    return this.inner.files;
  }

  get shardCount(): number {
    return this.inner.shardCount;
  }

  tensor(name: string): StoreTensorEntry | undefined {
    if (this.hidden.has(name)) return undefined;
    const t = this.decoded.get(name);
    return t ? { ...t.entry, shape: [...t.entry.shape], dataOffsets: [...t.entry.dataOffsets], decoded: true } : this.inner.tensor(name);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    if (!this.decoded.has(name)) return this.visible(name).readBytes(name);
    const bits = await this.readBf16(name);
    return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
  }

  async readF32(name: string): Promise<Float32Array> {
    const t = this.decoded.get(name);
    return t ? this.rowsF32(t, 0, rowView(t.entry).rows) : this.visible(name).readF32(name);
  }

  async readRowsF32(name: string, start: number, end: number): Promise<Float32Array> {
    const t = this.decoded.get(name);
    return t ? this.rowsF32(t, start, end) : this.visible(name).readRowsF32(name, start, end);
  }

  async readBf16(name: string): Promise<Uint16Array> {
    const t = this.decoded.get(name);
    return t ? this.rowsBf16(t, 0, rowView(t.entry).rows) : this.visible(name).readBf16(name);
  }

  async readRowsBf16(name: string, start: number, end: number): Promise<Uint16Array> {
    const t = this.decoded.get(name);
    return t ? this.rowsBf16(t, start, end) : this.visible(name).readRowsBf16(name, start, end);
  }

  packInto(arena: TensorArena | null): void {
    this.source = arena === null ? tensorBytes : arena.bytes;
    this.inner.packInto(arena);
  }

  /** The tensors this view passes through as stored are views of the mapped files; the decoded ones are memory of their own. */
  mapReads(): MappedFiles | null {
    return this.inner.mapReads();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** the inner store, for a tensor this view does not hide (a hidden one reads as absent) */
  protected visible(name: string): TensorStore {
    const why = this.hidden.get(name);
    if (why !== undefined) throw new CheckpointError('Quantized', why);
    return this.inner;
  }

  /** rows [start, end) of the tensor's 2-D view exist (checked before any memory is taken) */
  protected checkRows(t: T, start: number, end: number): void {
    const { rows, cols } = rowView(t.entry);
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > rows)
      throw new CheckpointError('OutOfRange', `rows [${start}, ${end}) are outside [0, ${rows}] of the ${rows}×${cols} view of ${t.entry.name}`);
  }

  /**
   * Rows [start, end) as f32: the BF16 patterns decoded into the upper half of the result's
   * bytes, then widened there (as a BF16 tensor's read is), so one buffer of the result's size.
   */
  protected async rowsF32(t: T, start: number, end: number): Promise<Float32Array> {
    this.checkRows(t, start, end);
    const count = (end - start) * rowView(t.entry).cols;
    const bytes = this.source(count * 4);
    const out = new Float32Array(bytes.buffer, bytes.byteOffset, count);
    await this.decodeRows(t, start, end, new Uint16Array(bytes.buffer, bytes.byteOffset + count * 2, count));
    widenHalvesInPlace('BF16', out);
    return out;
  }

  /** Rows [start, end) as BF16 bit patterns. */
  protected async rowsBf16(t: T, start: number, end: number): Promise<Uint16Array> {
    this.checkRows(t, start, end);
    const count = (end - start) * rowView(t.entry).cols;
    const bytes = this.source(count * 2);
    const out = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    await this.decodeRows(t, start, end, out);
    return out;
  }
}
