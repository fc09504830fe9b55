/** Out-of-place transpose of a row-major f64 matrix. */

/** rows×cols → cols×rows, tiled for cache. */
export function transpose(rows: number, cols: number, x: Float64Array): Float64Array {
  const out = new Float64Array(rows * cols);
  const TILE = 32;
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(rows, i0 + TILE);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(cols, j0 + TILE);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * rows + i] = x[i * cols + j];
    }
  }
  return out;
}
