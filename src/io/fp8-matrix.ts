/**
 * A weight matrix kept in FP8 as block-FP8 checkpoints store their linear weights (DeepSeek-V3,
 * the Qwen3 "-FP8" releases, MiniMax-M2, llm-compressor's FP8 formats): each of `rows` rows (an
 * output of y = x·Wᵀ) holds `cols` E4M3 codes (F8_E4M3, the "fn" variant: no infinities, 0x7f
 * and 0xff are NaN), and its values fall in groups of `group` along the row, each with an f32
 * scale: a value is code × scale, rounded to BF16, exactly what the checkpoint presents decoded
 * (src/checkpoint/fp8-blocks.ts). ForwardKernels.gemmFp8 multiplies by it.
 *
 * Why a scale per row and group, when the checkpoints store one per block of rows (128 × 128):
 * any run of rows (one expert's, a cut of a fused tensor that need not start at a block's edge)
 * is then a matrix of its own, and the kernels need no block geometry. It costs 4 bytes a group
 * a row: 3% more than the codes at groups of 128.
 */
export interface Fp8Matrix {
  rows: number;
  cols: number;
  /** rows × cols E4M3 codes, row-major */
  codes: Uint8Array;
  /** rows × fp8Groups(cols, group) scales, row-major */
  scales: Float32Array;
  /** values of a row sharing one scale (the last group of a row may be shorter) */
  group: number;
}

/** Groups (scales) a row of `cols` values has. */
export function fp8Groups(cols: number, group: number): number {
  return Math.ceil(cols / group);
}

/** Bytes held for a rows × cols FP8 matrix with groups of `group`. */
export function fp8Bytes(rows: number, cols: number, group: number): number {
  return rows * (cols + 4 * fp8Groups(cols, group));
}
