/**
 * Checkpoints whose linear weights are FP8 with a scale per block, as DeepSeek-V3 / R1,
 * MiniMax-M2 and the Qwen3 "-FP8" releases ship them (config.json `quantization_config`:
 * `quant_method: "fp8"`, usually `weight_block_size: [128, 128]`). Beside each quantized
 * `….weight` (F8_E4M3) lies `….weight_scale_inv` (F32, BF16 or E8M0 exponents) with one value per
 * block: the weight is `code × scale` of the block the element falls in, the grid being
 * ⌈rows / block rows⌉ × ⌈cols / block cols⌉ (edge blocks are partial). Leading dimensions (fused
 * experts, [E, rows, cols]) each have their own grid.
 *
 * llm-compressor's FP8 checkpoints (`quant_method: "compressed-tensors"`, format
 * `float-quantized`: RedHat's "-FP8-dynamic" releases and others) store the same codes with their
 * scales under `….weight_scale`, one per tensor ([1]), output channel ([rows, 1]), group
 * ([rows, cols / group]) or block; the weight is again `code × scale` of its cell of the grid.
 *
 * Fp8BlockStore is a TensorSource over the stored tensors that presents every quantized weight
 * as BF16: each value is `code × scale` in f32, rounded to BF16 (to nearest, ties to even). That
 * is what DeepSeek's own conversion script and transformers' dequantising load on a CPU give, so
 * everything downstream (the runtime, calibration, compression, the writer) reads an ordinary
 * BF16 checkpoint, and a compressed output is a plain BF16 one. The scales (and a static
 * scheme's activation scales) are hidden. Activations stay in full precision, as in
 * transformers' dequantised model.
 *
 * Memory: the dequantised weight is twice the FP8 bytes. Row reads dequantise chunk by chunk,
 * so a whole read holds the result plus at most one chunk (4 Mi codes) of the stored bytes. A
 * runtime that keeps weights as stored reads E4M3 experts undecoded instead (readRowsFp8: the codes
 * and each row's scales), and multiplies by them with the same values (ForwardKernels.gemmFp8).
 */
import { byteFloatValues, decodeToF32, f32BitsToBf16, type ByteTableDType, type DType } from '../io/dtype.js';
import { byteTableRows } from '../io/byte-tables.js';
import { fp8Groups, type Fp8Matrix } from '../io/fp8-matrix.js';
import type { StoreTensorEntry, TensorStore } from '../io/sharded.js';
import { CheckpointError } from './errors.js';
import { DecodingView } from './decoding-view.js';

/** `quantization_config` of an FP8 checkpoint this view reads, as read. */
export interface Fp8BlockQuantization {
  /** 'fp8': DeepSeek's form (`…_scale_inv`); 'compressed-tensors': llm-compressor's float-quantized form (`…_scale`) */
  method: 'fp8' | 'compressed-tensors';
  /** what follows a weight's name in its scales' name */
  scaleSuffix: '_scale_inv' | '_scale';
  /** [rows, cols] of a block (`weight_block_size`, `block_structure`); null: each tensor's from its scale grid, which must divide it */
  block: readonly [number, number] | null;
}

/** FP8 codes this view reads (the scales may also be E8M0). */
const FP8_DTYPES = new Set<DType>(['F8_E4M3', 'F8_E5M2', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ'] satisfies ByteTableDType[]);
const SCALE_DTYPES = new Set<DType>(['F32', 'BF16', 'F16', 'F8_E8M0', 'U8']);
/** codes dequantised at a time (bounds a row read's scratch to 4 MiB) */
const CHUNK_ELEMENTS = 1 << 22;

const refuse = (what: string) => new CheckpointError('Quantized', `${what}; restore the model's original config.json, or use its BF16 release`);

/** [rows, cols] given as two positive integers, or null when absent; throws naming `key` otherwise. */
function blockOf(size: unknown, key: string): [number, number] | null {
  if (size === undefined || size === null) return null;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isSafeInteger(v) && (v as number) > 0))
    throw refuse(`quantization_config.${key} must be two positive integers [rows, cols], found ${JSON.stringify(size)}`);
  return [size[0] as number, size[1] as number];
}

/**
 * The FP8 quantization that config.json declares, when this view reads it, or null when it
 * declares none or another method (the caller refuses those). Read: `quant_method: "fp8"`
 * (DeepSeek-V3, Qwen3-FP8, MiniMax-M2: block scales `weight_scale_inv`), and `compressed-tensors`
 * in its `float-quantized` format with 8-bit float weights, symmetric, per tensor, channel, group
 * or block (llm-compressor's FP8 checkpoints: scales `weight_scale`, multiplied as well). Throws
 * CheckpointError for a compressed-tensors scheme of another kind (integers, 4-bit floats,
 * asymmetric), naming it.
 */
export function fp8BlockQuantization(raw: Record<string, unknown>): Fp8BlockQuantization | null {
  const q = raw.quantization_config;
  if (typeof q !== 'object' || q === null || Array.isArray(q)) return null;
  const config = q as Record<string, unknown>;
  if (config.quant_method === 'fp8') return { method: 'fp8', scaleSuffix: '_scale_inv', block: blockOf(config.weight_block_size, 'weight_block_size') };
  if (config.quant_method !== 'compressed-tensors') return null;
  const groups = config.config_groups;
  if (typeof groups !== 'object' || groups === null || Array.isArray(groups) || Object.keys(groups).length === 0)
    throw refuse('quantization_config (compressed-tensors) has no config_groups saying how its weights are stored');
  let block: [number, number] | null = null;
  for (const [name, value] of Object.entries(groups as Record<string, unknown>)) {
    const group = (value ?? {}) as Record<string, unknown>;
    const weights = (group.weights ?? {}) as Record<string, unknown>;
    const format = group.format ?? config.format;
    const scheme = `config_groups.${name}: ${JSON.stringify({ format, type: weights.type, num_bits: weights.num_bits, strategy: weights.strategy, symmetric: weights.symmetric })}`;
    if (format !== 'float-quantized' || weights.type !== 'float' || weights.num_bits !== 8 || weights.symmetric === false || !['tensor', 'channel', 'group', 'block'].includes(String(weights.strategy)))
      throw refuse(`quantization_config (compressed-tensors) stores weights in a scheme rfid-moe does not read (${scheme}); it reads the float-quantized format's symmetric 8-bit float weights per tensor, channel, group or block`);
    if (weights.strategy === 'block') {
      const b = blockOf(weights.block_structure, `config_groups.${name}.weights.block_structure`);
      if (b && block && (b[0] !== block[0] || b[1] !== block[1])) throw refuse('quantization_config (compressed-tensors) has config groups with different block_structure');
      block = b ?? block;
    }
  }
  return { method: 'compressed-tensors', scaleSuffix: '_scale', block };
}

interface QuantizedTensor {
  /** as presented: BF16 */
  entry: StoreTensorEntry;
  scaleName: string;
  scaleDtype: DType;
  /** matrices (the product of the leading dimensions), each rows × cols with its own grid */
  rows: number;
  cols: number;
  blockRows: number;
  blockCols: number;
  gridRows: number;
  gridCols: number;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** A TensorSource presenting an FP8 checkpoint's quantized weights as BF16 (see the file comment). */
export class Fp8BlockStore extends DecodingView<QuantizedTensor> {
  /** scale grids read so far, by the scales' name (readScales) */
  private readonly scaleGrids = new Map<string, Promise<Float32Array>>();

  /**
   * Pairs every scale with its weight and checks the grids. Throws CheckpointError naming the
   * tensor for a scale without its weight, a weight that is not FP8, a grid that does not fit the
   * weight, or an FP8 tensor without a scale (its codes would be read unscaled).
   */
  constructor(inner: TensorStore, quantization: Fp8BlockQuantization, dir: string) {
    super(inner, dir);
    const hide = (name: string) => this.hidden.set(name, `${name} is a block scale of ${dir}, consumed by dequantising its weight; read the weight instead`);
    const suffix = quantization.scaleSuffix;
    for (const scaleName of inner.tensorNames()) {
      if (!scaleName.endsWith(suffix)) continue;
      const name = scaleName.slice(0, -suffix.length);
      const weight = inner.tensor(name);
      const scale = inner.tensor(scaleName)!;
      // (compressed-tensors' per-tensor input_scale ends in _scale too: activations, not a weight's)
      if (!weight && suffix === '_scale' && !name.endsWith('weight')) continue;
      if (!weight) throw this.error(`holds the block scales ${scaleName} but no weight ${name} for them`);
      if (!FP8_DTYPES.has(weight.dtype)) throw this.error(`has block scales for ${name}, which is ${weight.dtype}, not FP8 (F8_E4M3 or F8_E5M2)`);
      if (!SCALE_DTYPES.has(scale.dtype)) throw this.error(`stores the scales ${scaleName} as ${scale.dtype}; block scales are F32, BF16, F16 or E8M0 exponents`);
      this.decoded.set(name, this.describe(weight, scale, quantization.block));
      hide(scaleName);
      // a static scheme's per-tensor activation scales belong to the quantized matmul, not to the dequantised weight
      if (name.endsWith('weight')) for (const extra of ['input_scale', 'activation_scale']) if (inner.tensor(name.slice(0, -'weight'.length) + extra)) hide(name.slice(0, -'weight'.length) + extra);
    }
    for (const name of inner.tensorNames()) {
      const t = inner.tensor(name)!;
      if (FP8_DTYPES.has(t.dtype) && !this.decoded.has(name))
        throw this.error(`stores ${name} as ${t.dtype} without the block scales ${name}${suffix} beside it; its codes cannot be read as weights`);
      // an asymmetric scheme's zero points would be dropped
      if (name.endsWith('_zero_point')) throw this.error(`holds the zero points ${name}; rfid-moe reads symmetric FP8 weights only`);
    }
    if (this.decoded.size === 0) throw this.error(`declares FP8 quantization (quantization_config) but holds no tensor with block scales (…${suffix})`);
  }

  private describe(weight: StoreTensorEntry, scale: StoreTensorEntry, block: readonly [number, number] | null): QuantizedTensor {
    const name = weight.name;
    if (weight.shape.length < 2) throw this.error(`has block scales for ${name} of shape ${shapeText(weight.shape)}; a block-quantized weight has at least 2 dimensions`);
    const lead = weight.shape.slice(0, -2);
    const [rows, cols] = weight.shape.slice(-2);
    const scalar = scale.shape.length === 0 || scale.shape.every((d) => d === 1);
    // a scalar scale is one block over the whole matrix (per-tensor FP8)
    const grid = scalar && lead.length === 0 ? [1, 1] : scale.shape.slice(-2);
    const leadMatches = scalar && lead.length === 0 ? true : scale.shape.length === weight.shape.length && scale.shape.slice(0, -2).every((d, i) => d === lead[i]);
    let blockRows: number;
    let blockCols: number;
    if (block && !(scalar && lead.length === 0)) [blockRows, blockCols] = block;
    else if (grid[0] > 0 && grid[1] > 0 && rows % grid[0] === 0 && cols % grid[1] === 0) [blockRows, blockCols] = [rows / grid[0], cols / grid[1]];
    else throw this.error(`has scales ${scale.name} of shape ${shapeText(scale.shape)} for ${name} of shape ${shapeText(weight.shape)}, and config.json gives no weight_block_size to place them by`);
    const want = [...lead, Math.ceil(rows / blockRows), Math.ceil(cols / blockCols)];
    if (!leadMatches || grid[0] !== want[want.length - 2] || grid[1] !== want[want.length - 1])
      throw this.error(
        `has scales ${scale.name} of shape ${shapeText(scale.shape)} for ${name} of shape ${shapeText(weight.shape)}; blocks of ${blockRows}×${blockCols} need ${shapeText(want)}`,
      );
    const count = weight.elementCount;
    return {
      entry: { ...weight, dtype: 'BF16', byteLength: count * 2, ...(weight.dtype === 'F8_E4M3' ? { packed: 'fp8' as const, fp8Group: Math.min(blockCols, cols) } : {}) },
      scaleName: scale.name,
      scaleDtype: scale.dtype,
      rows,
      cols,
      blockRows,
      blockCols,
      gridRows: grid[0],
      gridCols: grid[1],
    };
  }

  tensorNames(): string[] {
    return this.inner.tensorNames().filter((n) => !this.hidden.has(n));
  }

  /**
   * Rows [start, end) of the weight's 2-D view [batch × rows, cols] dequantised into `out`: each
   * value is `code × scale` in f32, rounded to BF16 (its bit pattern).
   *
   * Why tables: within a block every code maps to one result, so for blocks of at least 1,024
   * values the 256 results of each block are worked out once and every value is one lookup
   * (a 128×128 block: 256 products for 16,384 values), done for a run of rows sharing their
   * scales at a time (byteTableRows: native when the addon is loaded). Smaller blocks compute
   * each value.
   */
  protected async decodeRows(q: QuantizedTensor, start: number, end: number, out: Uint16Array): Promise<void> {
    const scales = await this.readScales(q);
    const codes = byteFloatValues(this.inner.tensor(q.entry.name)!.dtype as ByteTableDType);
    const product = new Float32Array(1);
    const productBits = new Uint32Array(product.buffer);
    /** code × scale in f32 (an f32 multiply: the exact double product rounded once), rounded to BF16 */
    const result = (code: number, scale: number): number => {
      product[0] = codes[code] * scale;
      return f32BitsToBf16(productBits[0]);
    };
    const tabled = q.blockRows * q.blockCols >= 1024;
    const table = new Uint16Array(q.gridCols * 256);
    const chunkRows = Math.max(1, Math.floor(CHUNK_ELEMENTS / q.cols));
    for (let r0 = start; r0 < end; r0 += chunkRows) {
      const r1 = Math.min(end, r0 + chunkRows);
      const read = await this.inner.readRowsBytes(q.entry.name, r0, r1);
      // a plain Uint8Array over the Buffer: the JavaScript loops index a Buffer's elements more slowly
      const bytes = new Uint8Array(read.buffer, read.byteOffset, read.length);
      // runs of rows within one block row (one matrix, one row of the grid: the same scales)
      for (let r = r0; r < r1; ) {
        const inMatrix = r % q.rows;
        const gridRow = Math.floor(inMatrix / q.blockRows);
        const runEnd = Math.min(r1, r - inMatrix + Math.min(q.rows, (gridRow + 1) * q.blockRows));
        const scaleRow = (Math.floor(r / q.rows) * q.gridRows + gridRow) * q.gridCols;
        const from = (r - r0) * q.cols;
        const to = (r - start) * q.cols;
        const count = (runEnd - r) * q.cols;
        if (tabled) {
          for (let g = 0; g < q.gridCols; g++) for (let c = 0; c < 256; c++) table[g * 256 + c] = result(c, scales[scaleRow + g]);
          byteTableRows(out.subarray(to, to + count), bytes.subarray(from, from + count), table, runEnd - r, q.cols, q.blockCols);
        } else {
          for (let i = 0; i < count; i++) {
            const scale = scales[scaleRow + Math.floor((i % q.cols) / q.blockCols)];
            out[to + i] = result(bytes[from + i], scale);
          }
        }
        r = runEnd;
      }
    }
  }

  /**
   * Rows [start, end) of an E4M3 weight's 2-D view kept as stored (Fp8Matrix): its codes (a view of
   * the mapped file where mapped) and each row's scales along it, from the block grid; null for a
   * tensor this view does not decode or another FP8 dtype. Multiplying by it (gemmFp8) gives what
   * multiplying by these rows decoded gives.
   */
  async readRowsFp8(name: string, start: number, end: number): Promise<Fp8Matrix | null> {
    const q = this.decoded.get(name);
    if (!q || this.inner.tensor(name)?.dtype !== 'F8_E4M3') return null;
    this.checkRows(q, start, end);
    const grid = await this.readScales(q);
    const group = q.entry.fp8Group!;
    const groups = fp8Groups(q.cols, group);
    const memory = this.source((end - start) * groups * 4);
    const scales = new Float32Array(memory.buffer, memory.byteOffset, (end - start) * groups);
    for (let r = start; r < end; r++) {
      const inMatrix = r % q.rows;
      const at = (Math.floor(r / q.rows) * q.gridRows + Math.floor(inMatrix / q.blockRows)) * q.gridCols;
      scales.set(grid.subarray(at, at + groups), (r - start) * groups);
    }
    const codes = await this.inner.readRowsKept(name, start, end);
    return { rows: end - start, cols: q.cols, codes, scales, group };
  }

  /**
   * A weight's whole scale grid, read once and kept: a fused tensor's rows are read an expert at a
   * time, and each read needs the grid (128 experts' grids re-read 384 times a layer otherwise).
   * The grids are a 16,384th of the weights at 128 × 128 blocks.
   */
  private readScales(q: QuantizedTensor): Promise<Float32Array> {
    let grid = this.scaleGrids.get(q.scaleName);
    if (!grid) {
      // U8 scales are E8M0 exponents (2^(e − 127)), as transformers reads them
      grid = q.scaleDtype === 'U8' ? this.inner.readBytes(q.scaleName).then((b) => decodeToF32('F8_E8M0', b)) : this.inner.readF32(q.scaleName);
      this.scaleGrids.set(q.scaleName, grid);
      // a failed read is not kept: the next one tries again
      grid.catch(() => this.scaleGrids.delete(q.scaleName));
    }
    return grid;
  }
}

