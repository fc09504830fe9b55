/**
 * A weight matrix kept in MXFP4, as gpt-oss's checkpoints store their experts: each of `rows`
 * rows (an output of y = x·Wᵀ) holds `cols` FP4 (E2M1) codes, two a byte with the low nibble
 * first, in groups of 32 that share one E8M0 exponent s: a value is code × 2^(s − 127). Held so,
 * a matrix takes 4.25 bits a value: a quarter of its BF16 form. ForwardKernels.gemmMxfp4
 * multiplies by it.
 */
export interface Mxfp4Matrix {
  rows: number;
  /** a multiple of 32 */
  cols: number;
  /** rows × cols/2 bytes, row-major */
  blocks: Uint8Array;
  /** rows × cols/32 exponents, row-major */
  scales: Uint8Array;
}

/** FP4 E2M1 values of the 16 codes (transformers' FP4_VALUES). */
export const FP4_E2M1_VALUES: readonly number[] = [+0, +0.5, +1, +1.5, +2, +3, +4, +6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** Values in a group sharing one exponent. */
export const MXFP4_GROUP = 32;

/** Bytes held for a rows × cols MXFP4 matrix. */
export function mxfp4Bytes(rows: number, cols: number): number {
  return rows * (cols / 2 + cols / MXFP4_GROUP);
}

let valueTable: Float32Array | undefined;

/**
 * At s·16 + code: code's value × 2^(s − 127), exact in f32 (a code has at most two significant
 * bits and f32's subnormals reach 2^−149), or ±infinity from 2^128 up; a zero code is zero
 * whatever the scale. The same values the BF16 decoding gives (mxfp4PairTable), widened.
 */
export function mxfp4ValueTable(): Float32Array {
  if (valueTable) return valueTable;
  const table = new Float32Array(256 * 16);
  for (let s = 0; s < 256; s++) for (let c = 0; c < 16; c++) table[s * 16 + c] = FP4_E2M1_VALUES[c] * 2 ** (s - 127);
  valueTable = table;
  return table;
}
