/**
 * Columns of a matrix, transposed: out[c·rows + r] = slab[r·width + first + c·step] for c < count,
 * r < rows (out: count × rows). The BF16 release of gpt-oss stores its experts transposed, so each
 * expert matrix read from it is such a cut of its slab (src/checkpoint/expert-location.ts).
 *
 * The native addon installs a faster kernel when it loads (native/transpose.cc; as with the BF16
 * widener in dtype.ts: io and checkpoint cannot import the engine). Without it, the tiled loop
 * below.
 */
import type { ColumnSelection } from './sharded.js';

/** Columns of a slab whose rows are `width` values wide. */
export interface ColumnCut extends ColumnSelection {
  /** values in a row of the slab */
  width: number;
}

export type TransposeColumns = <T extends Float32Array | Uint16Array>(slab: T, rows: number, cols: ColumnCut, out: T) => void;

let fastTransposeColumns: TransposeColumns | undefined;

/** Installs a faster transposeColumns (the same values), or removes it (undefined); returns the one it replaces. */
export function setFastTransposeColumns(fn: TransposeColumns | undefined): TransposeColumns | undefined {
  const before = fastTransposeColumns;
  fastTransposeColumns = fn;
  return before;
}

/** See the module comment; `out` is returned. Both arrays Float32Array or both Uint16Array. */
export function transposeColumns<T extends Float32Array | Uint16Array>(slab: T, rows: number, cols: ColumnCut, out: T): T {
  const { width, first, step, count } = cols;
  if (slab.length !== rows * width) throw new RangeError(`an expert slab of ${rows} rows of ${width} values has ${slab.length} values`);
  if (out.length !== count * rows) throw new RangeError(`the transpose of ${count} columns of ${rows} rows needs ${count * rows} values, out has ${out.length}`);
  if (count > 0 && (step < 1 || first + (count - 1) * step >= width)) throw new RangeError(`columns ${first} + ${step}·(0…${count - 1}) are not within a slab ${width} wide`);
  if (fastTransposeColumns) fastTransposeColumns(slab, rows, cols, out);
  else transposeColumnsJs(slab, rows, cols, out);
  return out;
}

/**
 * The loop without the hook (exported for the tests that hold the native kernel to it), in tiles of
 * 32 × 32 that keep both the strided reads and the writes within L1.
 */
export function transposeColumnsJs<T extends Float32Array | Uint16Array>(slab: T, rows: number, cols: ColumnCut, out: T): T {
  const { width, first, step, count } = cols;
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < count; c0 += B) {
      const c1 = Math.min(count, c0 + B);
      for (let c = c0; c < c1; c++) {
        const src = first + c * step;
        const dst = c * rows;
        for (let r = r0; r < r1; r++) out[dst + r] = slab[r * width + src];
      }
    }
  }
  return out;
}
