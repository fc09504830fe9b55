/**
 * Checkpoints whose routed experts are MXFP4, as OpenAI's gpt-oss releases ship them
 * (config.json `quantization_config: { quant_method: "mxfp4", modules_to_not_convert: [...] }`).
 * In place of a BF16 weight `X` the files hold two U8 tensors:
 * - `X_blocks` [E, R, G, 16]: 32 FP4 (E2M1) codes per 16 bytes, two a byte, the low nibble first;
 * - `X_scales` [E, R, G]: one E8M0 exponent per group of 32 codes, the scale being 2^(s − 127).
 * Dequantised, each row of R is [G × 32] values, and the tensor is transposed on its last two
 * dimensions: `X` is [E, G × 32, R]. For gpt-oss, `gate_up_proj_blocks` [E, 2I, H/32, 16] gives
 * `gate_up_proj` [E, H, 2I] and `down_proj_blocks` [E, H, I/32, 16] gives `down_proj` [E, I, H]:
 * exactly the tensors of the BF16 release. This is transformers' `convert_moe_packed_tensors`
 * (integrations/mxfp4.py), which every CPU load of these checkpoints goes through.
 *
 * Values: code × 2^(s − 127) is exact in BF16 (a code has at most two significant bits, and BF16
 * has f32's exponent range, subnormals included) except where it overflows: from 2^128 up it is
 * ±infinity, as torch's ldexp on the BF16 tensor gives (a zero code stays zero, whatever the scale).
 *
 * Mxfp4Store is a TensorSource over the stored tensors that presents each pair as the one BF16
 * tensor `X`, hides the blocks and scales, and passes every other tensor through (gpt-oss keeps
 * its attention, router, embeddings and the experts' biases in BF16). It looks at nothing but the
 * `_blocks` / `_scales` names, so it serves any family.
 *
 * Reads: a row read of `X`'s 2-D view [E × G·32, R] (rows e·G·32 … (e+1)·G·32 are expert e's
 * slab) reads and decodes only the experts it touches, a chunk of their blocks (at most 4 MiB) at
 * a time; nothing of the whole tensor is decoded for it. Each byte is one lookup in a table of
 * its two BF16 values per scale (256 scales × 256 bytes, built once), written transposed a tile
 * of stored rows at a time so each presented row's writes are adjacent (~2.3 ns a value, a
 * gpt-oss gate_up slab of 2880 × 5760 in ~40 ms on the development machine).
 */
import { f32BitsToBf16, type DType } from '../io/dtype.js';
import { mxfp4ValueTable, type Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import type { ColumnSelection, StoreTensorEntry, TensorStore } from '../io/sharded.js';
import { DecodingView } from './decoding-view.js';

/** `quantization_config` of an MXFP4 checkpoint, as read. */
export interface Mxfp4Quantization {
  method: 'mxfp4';
  /** modules config.json says are kept unquantized (informational: the view goes by the tensors' names) */
  modulesToNotConvert: string[];
}

export { FP4_E2M1_VALUES } from '../io/mxfp4-matrix.js';

const BLOCKS_SUFFIX = '_blocks';
const SCALES_SUFFIX = '_scales';
/** bytes of a group: 32 FP4 codes */
const GROUP_BYTES = 16;
const SCALE_DTYPES = new Set<DType>(['U8', 'F8_E8M0']);
/** stored bytes of blocks decoded at a time (bounds a read's scratch) */
const CHUNK_BYTES = 1 << 22;
/** stored rows decoded together: their transposed writes to each presented row are adjacent, filling cache lines */
const TILE_ROWS = 64;

/**
 * The MXFP4 quantization config.json declares (`quant_method: "mxfp4"`), or null for none or
 * another method.
 */
export function mxfp4Quantization(raw: Record<string, unknown>): Mxfp4Quantization | null {
  const q = raw.quantization_config;
  if (typeof q !== 'object' || q === null || Array.isArray(q)) return null;
  const config = q as Record<string, unknown>;
  if (config.quant_method !== 'mxfp4') return null;
  const modules = Array.isArray(config.modules_to_not_convert) ? config.modules_to_not_convert.filter((m): m is string => typeof m === 'string') : [];
  return { method: 'mxfp4', modulesToNotConvert: modules };
}

let pairTable: Uint32Array | undefined;

/**
 * For every scale s and byte b, at s·256 + b: the BF16 patterns of its two values, the low
 * nibble's in the low half: lut[b & 15] × 2^(s − 127) | lut[b >> 4] × 2^(s − 127) << 16.
 * The values are mxfp4ValueTable's (exact in f32, or ±infinity), whose BF16 patterns are their
 * upper halves (rounding to BF16 leaves them as they are).
 */
export function mxfp4PairTable(): Uint32Array {
  if (pairTable) return pairTable;
  const table = new Uint32Array(256 * 256);
  const bits = new Uint32Array(mxfp4ValueTable().buffer);
  const values = new Uint16Array(16);
  for (let s = 0; s < 256; s++) {
    for (let n = 0; n < 16; n++) values[n] = f32BitsToBf16(bits[s * 16 + n]);
    for (let b = 0; b < 256; b++) table[s * 256 + b] = (values[b & 15] | (values[b >>> 4] << 16)) >>> 0;
  }
  pairTable = table;
  return table;
}

interface PackedTensor {
  /** as presented: BF16 [E, G·32, R] */
  entry: StoreTensorEntry;
  blocksName: string;
  scalesName: string;
  experts: number;
  /** stored rows per expert (R): the presented tensor's columns */
  rows: number;
  /** groups of 32 per stored row (G): G·32 presented rows per expert */
  groups: number;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * Stored rows [r0, r1) of one expert, their `blocks` (G·16 bytes a row) and `scales` (G a row),
 * decoded into `out`, which holds presented rows from `outRow0` (an expert's row, c), each
 * `rows` (R) wide: only c in [cLo, cHi) are written. `table`: mxfp4PairTable.
 */
export function decodeMxfp4Transposed(
  out: Uint16Array,
  blocks: Uint8Array,
  scales: Uint8Array,
  table: Uint32Array,
  groups: number,
  rows: number,
  r0: number,
  r1: number,
  cLo: number,
  cHi: number,
  outRow0: number,
): void {
  const rowBytes = groups * GROUP_BYTES;
  const gLo = cLo >> 5;
  const gHi = (cHi + 31) >> 5;
  for (let t0 = r0; t0 < r1; t0 += TILE_ROWS) {
    const t1 = Math.min(r1, t0 + TILE_ROWS);
    for (let g = gLo; g < gHi; g++) {
      // element 2j of the group goes to presented row g·32 + 2j, element 2j + 1 to the next
      const o0 = (g * 32 - outRow0) * rows;
      const full = g * 32 >= cLo && g * 32 + 32 <= cHi;
      for (let r = t0; r < t1; r++) {
        const base = scales[(r - r0) * groups + g] << 8;
        let at = (r - r0) * rowBytes + g * GROUP_BYTES;
        let o = o0 + r;
        if (full) {
          for (let j = 0; j < GROUP_BYTES; j++, at++, o += 2 * rows) {
            const v = table[base + blocks[at]];
            out[o] = v;
            out[o + rows] = v >>> 16;
          }
        } else {
          for (let j = 0, c = g * 32; j < GROUP_BYTES; j++, at++, o += 2 * rows, c += 2) {
            const v = table[base + blocks[at]];
            if (c >= cLo && c < cHi) out[o] = v;
            if (c + 1 >= cLo && c + 1 < cHi) out[o + rows] = v >>> 16;
          }
        }
      }
    }
  }
}

/** A TensorSource presenting an MXFP4 checkpoint's packed experts as BF16 (see the file comment). */
export class Mxfp4Store extends DecodingView<PackedTensor> {
  /** the stored names of the packed tensors (blocks and scales) → the tensor they make */
  private readonly owner = new Map<string, string>();

  /**
   * Pairs every `X_blocks` with its `X_scales` and checks them. Throws CheckpointError naming the
   * tensor for blocks without scales (or scales without blocks), blocks that are not U8 or not
   * [E, R, G, 16], scales that are not U8 or not [E, R, G], a plain `X` beside the pair, or a
   * config declaring MXFP4 over files that hold none.
   */
  constructor(
    inner: TensorStore,
    readonly quantization: Mxfp4Quantization,
    dir: string,
  ) {
    super(inner, dir);
    const hide = (stored: string, name: string) => {
      this.owner.set(stored, name);
      this.hidden.set(stored, `${stored} is part of the MXFP4 weight ${name} of ${dir}, consumed by dequantising it; read ${name} instead`);
    };
    for (const blocksName of inner.tensorNames()) {
      if (!blocksName.endsWith(BLOCKS_SUFFIX)) continue;
      const name = blocksName.slice(0, -BLOCKS_SUFFIX.length);
      const scalesName = name + SCALES_SUFFIX;
      const blocks = inner.tensor(blocksName)!;
      const scales = inner.tensor(scalesName);
      if (!scales) throw this.error(`holds the MXFP4 blocks ${blocksName} without their scales ${scalesName}; the codes cannot be read as weights`);
      if (inner.tensor(name)) throw this.error(`holds both ${name} and the MXFP4 blocks ${blocksName} for it; which one is the weight is ambiguous`);
      this.decoded.set(name, this.describe(name, blocks, scales));
      hide(blocksName, name);
      hide(scalesName, name);
    }
    for (const scalesName of inner.tensorNames()) {
      if (!scalesName.endsWith(SCALES_SUFFIX) || this.hidden.has(scalesName)) continue;
      const scales = inner.tensor(scalesName)!;
      if (SCALE_DTYPES.has(scales.dtype))
        throw this.error(`holds the MXFP4 scales ${scalesName} but no blocks ${scalesName.slice(0, -SCALES_SUFFIX.length)}${BLOCKS_SUFFIX} for them`);
    }
    if (this.decoded.size === 0) throw this.error(`declares MXFP4 quantization (quantization_config) but holds no MXFP4 tensor (…${BLOCKS_SUFFIX} with …${SCALES_SUFFIX})`);
  }

  private describe(name: string, blocks: StoreTensorEntry, scales: StoreTensorEntry): PackedTensor {
    if (blocks.dtype !== 'U8') throw this.error(`stores the MXFP4 blocks ${blocks.name} as ${blocks.dtype}; MXFP4 blocks are U8, two FP4 codes a byte`);
    if (blocks.shape.length !== 4 || blocks.shape[3] !== GROUP_BYTES)
      throw this.error(`has MXFP4 blocks ${blocks.name} of shape ${shapeText(blocks.shape)}; they are [experts, rows, groups, 16]: 16 bytes (32 FP4 codes) a group`);
    if (!SCALE_DTYPES.has(scales.dtype)) throw this.error(`stores the MXFP4 scales ${scales.name} as ${scales.dtype}; MXFP4 scales are U8 exponents (E8M0, 2^(s − 127))`);
    const want = blocks.shape.slice(0, 3);
    if (scales.shape.length !== 3 || scales.shape.some((d, i) => d !== want[i]))
      throw this.error(`has MXFP4 scales ${scales.name} of shape ${shapeText(scales.shape)} for blocks ${blocks.name} of shape ${shapeText(blocks.shape)}; one exponent a group needs ${shapeText(want)}`);
    const [experts, rows, groups] = want;
    const shape = [experts, groups * 32, rows];
    const count = experts * groups * 32 * rows;
    return {
      entry: { name, dtype: 'BF16', shape, dataOffsets: [...blocks.dataOffsets], byteLength: count * 2, elementCount: count, file: blocks.file, packed: 'mxfp4' },
      blocksName: blocks.name,
      scalesName: scales.name,
      experts,
      rows,
      groups,
    };
  }

  /** The stored names, each pair's blocks in its place as `X`, its scales left out. */
  tensorNames(): string[] {
    const names: string[] = [];
    for (const n of this.inner.tensorNames()) {
      const packed = this.owner.get(n);
      if (packed === undefined) names.push(n);
      else if (n.endsWith(BLOCKS_SUFFIX)) names.push(packed);
    }
    return names;
  }

  /**
   * One expert's slab of `X` (rows e·G·32 … (e+1)·G·32), transposed and cut to some of its
   * columns: the stored rows first, first + step, … of expert e, decoded as they are stored, no
   * transpose either way (gpt-oss's gate is its even stored rows of gate_up, its up the odd
   * ones). Null for any other row range, or for a tensor this view does not decode.
   */
  async readColumnsBf16(name: string, start: number, end: number, columns: ColumnSelection): Promise<Uint16Array | null> {
    const table = mxfp4PairTable();
    let out: Uint16Array | undefined;
    const cut = await this.selectedRows(name, start, end, columns, (p, count) => {
      const bytes = this.source(count * p.groups * 32 * 2);
      out = new Uint16Array(bytes.buffer, bytes.byteOffset, count * p.groups * 32);
    }, (p, blocks, scales, r, j) => {
      const rowBytes = p.groups * GROUP_BYTES;
      let o = j * p.groups * 32;
      for (let g = 0; g < p.groups; g++) {
        const base = scales[r * p.groups + g] << 8;
        for (let at = r * rowBytes + g * GROUP_BYTES, stop = at + GROUP_BYTES; at < stop; at++) {
          const v = table[base + blocks[at]];
          out![o++] = v;
          out![o++] = v >>> 16;
        }
      }
    });
    return cut ? out! : null;
  }

  /**
   * The same cut kept as stored: the selected stored rows' blocks and scales copied, not decoded
   * (a row is an output of the presented matrix's transpose, its groups run along the inputs).
   * Null where readColumnsBf16 would be.
   */
  async readColumnsMxfp4(name: string, start: number, end: number, columns: ColumnSelection): Promise<Mxfp4Matrix | null> {
    let m: Mxfp4Matrix | undefined;
    const cut = await this.selectedRows(name, start, end, columns, (p, count) => {
      const rowBytes = p.groups * GROUP_BYTES;
      const memory = this.source(count * (rowBytes + p.groups));
      m = {
        rows: count,
        cols: p.groups * 32,
        blocks: new Uint8Array(memory.buffer, memory.byteOffset, count * rowBytes),
        scales: new Uint8Array(memory.buffer, memory.byteOffset + count * rowBytes, count * p.groups),
      };
    }, (p, blocks, scales, r, j) => {
      const rowBytes = p.groups * GROUP_BYTES;
      m!.blocks.set(blocks.subarray(r * rowBytes, (r + 1) * rowBytes), j * rowBytes);
      m!.scales.set(scales.subarray(r * p.groups, (r + 1) * p.groups), j * p.groups);
    });
    return cut ? m! : null;
  }

  /**
   * The stored rows a column cut of an expert's slab selects (readColumnsBf16), a chunk at a time:
   * `begin` once with the count, then `row` for each (its index r in the chunk's blocks and
   * scales, and j among the selected). Every row of the span is read; those between the selected
   * ones are skipped. False (nothing called) where the cut is not one expert's slab.
   */
  private async selectedRows(
    name: string, start: number, end: number, columns: ColumnSelection,
    begin: (p: PackedTensor, count: number) => void,
    row: (p: PackedTensor, blocks: Uint8Array, scales: Uint8Array, r: number, j: number) => void,
  ): Promise<boolean> {
    const p = this.decoded.get(name);
    if (!p) return false;
    this.checkRows(p, start, end);
    const slab = p.groups * 32;
    const { first, step, count } = columns;
    if (start % slab !== 0 || end - start !== slab || !(Number.isInteger(first) && Number.isInteger(step) && Number.isInteger(count)) || first < 0 || step < 1 || count < 1 || first + (count - 1) * step >= p.rows) return false;
    const e = start / slab;
    begin(p, count);
    const chunkRows = Math.max(step, Math.floor(CHUNK_BYTES / (p.groups * GROUP_BYTES)));
    for (let j0 = 0; j0 < count; ) {
      const r0 = first + j0 * step;
      const j1 = Math.min(count, j0 + Math.max(1, Math.floor(chunkRows / step)));
      const r1 = first + (j1 - 1) * step + 1;
      const { blocks, scales } = await this.storedRows(p, e, r0, r1);
      for (let j = j0; j < j1; j++) row(p, blocks, scales, (j - j0) * step, j);
      j0 = j1;
    }
    return true;
  }

  /**
   * Rows [start, end) of the presented 2-D view [E · G·32, R] into `out`: for each expert they
   * touch, its stored rows a chunk at a time (blocks and scales), decoded into the columns of
   * the presented rows asked for.
   */
  protected async decodeRows(p: PackedTensor, start: number, end: number, out: Uint16Array): Promise<void> {
    if (end === start) return;
    const table = mxfp4PairTable();
    const slab = p.groups * 32;
    const rowBytes = p.groups * GROUP_BYTES;
    const chunkRows = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
    for (let e = Math.floor(start / slab); e * slab < end; e++) {
      const cLo = Math.max(start, e * slab) - e * slab;
      const cHi = Math.min(end, (e + 1) * slab) - e * slab;
      for (let r0 = 0; r0 < p.rows; r0 += chunkRows) {
        const r1 = Math.min(p.rows, r0 + chunkRows);
        const { blocks, scales } = await this.storedRows(p, e, r0, r1);
        decodeMxfp4Transposed(out, blocks, scales, table, p.groups, p.rows, r0, r1, cLo, cHi, start - e * slab);
      }
    }
  }

  /** Stored rows [r0, r1) of expert e: their blocks (G·16 bytes a row) and scales (G a row). */
  private async storedRows(p: PackedTensor, e: number, r0: number, r1: number): Promise<{ blocks: Uint8Array; scales: Uint8Array }> {
    const stored = e * p.rows;
    const [b, s] = await Promise.all([
      this.inner.readRowsBytes(p.blocksName, (stored + r0) * p.groups, (stored + r1) * p.groups),
      this.inner.readRowsBytes(p.scalesName, stored + r0, stored + r1),
    ]);
    // plain Uint8Arrays over the Buffers: the loops index a Buffer's elements more slowly
    return { blocks: new Uint8Array(b.buffer, b.byteOffset, b.length), scales: new Uint8Array(s.buffer, s.byteOffset, s.length) };
  }
}
