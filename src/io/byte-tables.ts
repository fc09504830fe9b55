/**
 * Rows of 8-bit codes mapped through lookup tables, one table of 256 entries per block of columns:
 * out[r·cols + j] = table[256·⌊j / blockCols⌋ + codes[r·cols + j]]. An FP8 checkpoint is read
 * this way (src/checkpoint/fp8-blocks.ts): within a block each code has one dequantised value, so
 * the values are looked up, not computed.
 *
 * The native addon installs a faster loop when it loads (as with the BF16 widener in dtype.ts; io
 * cannot import the engine): this one takes ~2.5 ns a value on the development machine.
 */

export type ByteTableRows = (out: Uint16Array | Float32Array, codes: Uint8Array, table: Uint16Array | Float32Array, rows: number, cols: number, blockCols: number) => void;

let fastByteTableRows: ByteTableRows | undefined;

/** Installs a faster byteTableRows (the same values), or removes it (undefined). */
export function setFastByteTableRows(rowsFn: ByteTableRows | undefined): void {
  fastByteTableRows = rowsFn;
}

/**
 * `rows` × `cols` codes (`codes`, exactly that many) through `table` into `out` (at least that
 * many); `out` and `table` are both Uint16Array (BF16 patterns) or both Float32Array.
 */
export function byteTableRows(out: Uint16Array | Float32Array, codes: Uint8Array, table: Uint16Array | Float32Array, rows: number, cols: number, blockCols: number): void {
  if (fastByteTableRows) {
    fastByteTableRows(out, codes, table, rows, cols, blockCols);
    return;
  }
  for (let r = 0; r < rows; r++) {
    if (out instanceof Uint16Array) lookUpRow16(out, table as Uint16Array, codes, r * cols, cols, blockCols);
    else lookUpRow32(out, table as Float32Array, codes, r * cols, cols, blockCols);
  }
}

/** One row. A function per element type, so V8 compiles each for its one array type. */
function lookUpRow16(out: Uint16Array, table: Uint16Array, codes: Uint8Array, at: number, cols: number, blockCols: number): void {
  for (let j0 = 0, t = 0; j0 < cols; j0 += blockCols, t += 256) {
    const j1 = Math.min(cols, j0 + blockCols);
    for (let j = j0; j < j1; j++) out[at + j] = table[t + codes[at + j]];
  }
}

function lookUpRow32(out: Float32Array, table: Float32Array, codes: Uint8Array, at: number, cols: number, blockCols: number): void {
  for (let j0 = 0, t = 0; j0 < cols; j0 += blockCols, t += 256) {
    const j1 = Math.min(cols, j0 + blockCols);
    for (let j = j0; j < j1; j++) out[at + j] = table[t + codes[at + j]];
  }
}
