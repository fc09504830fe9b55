/** ForwardKernels.argmaxRows in TypeScript (see src/engine/types.ts), and the one-row pick it is made of. */
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';

/**
 * The first index in x[offset, offset + length) holding the largest value, NaN ignored, relative
 * to offset; 0 when every value is NaN. Ties go to the lowest index, as torch.argmax's do.
 */
export function argmaxOf(x: Float32Array, offset = 0, length = x.length - offset): number {
  let best = -1;
  let max = -Infinity;
  for (let j = 0; j < length; j++) {
    const v = x[offset + j];
    if (v > max) {
      max = v;
      best = j;
    }
  }
  if (best >= 0) return best;
  // nothing above −Infinity: its first occurrence, or 0 for a row of NaN alone
  for (let j = 0; j < length; j++) if (x[offset + j] === -Infinity) return j;
  return 0;
}

export function argmaxRows(rows: number, cols: number, logits: Float32Array, out: Int32Array): void {
  const op = 'argmaxRows';
  checkDims(op, { rows, cols });
  checkFloat32(op, 'logits', logits);
  checkAtLeast(op, 'logits', logits, rows * cols, 'rows and cols: logits is rows×cols');
  checkAtLeast(op, 'out', out, rows, 'rows');
  for (let r = 0; r < rows; r++) out[r] = argmaxOf(logits, r * cols, cols);
}
