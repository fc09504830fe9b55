/** ForwardKernels.logitStats in TypeScript (see src/engine/types.ts): f64 exp and sums. */
import type { LogitStatsOut } from '../../types.js';
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';

export function logitStats(rows: number, cols: number, logits: Float32Array, out: LogitStatsOut, other?: { logits: Float32Array; weightedDiff: Float64Array }): void {
  const op = 'logitStats';
  checkDims(op, { rows, cols });
  checkFloat32(op, 'logits', logits);
  checkAtLeast(op, 'logits', logits, rows * cols, 'rows and cols: logits is rows×cols');
  checkAtLeast(op, 'max', out.max, rows, 'rows');
  checkAtLeast(op, 'sumExp', out.sumExp, rows, 'rows');
  checkAtLeast(op, 'argmax', out.argmax, rows, 'rows');
  if (other) {
    checkFloat32(op, 'other', other.logits);
    checkAtLeast(op, 'other', other.logits, rows * cols, 'rows and cols: other is rows×cols like logits');
    checkAtLeast(op, 'weightedDiff', other.weightedDiff, rows, 'rows');
  }
  const b = other?.logits;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let max = -Infinity;
    let arg = -1;
    for (let j = 0; j < cols; j++) {
      if (logits[base + j] > max) {
        max = logits[base + j];
        arg = j;
      }
    }
    let sum = 0;
    let wd = 0;
    if (b) {
      for (let j = 0; j < cols; j++) {
        const a = logits[base + j];
        const e = Math.exp(a - max);
        sum += e;
        wd += e * (a - b[base + j]);
      }
      other!.weightedDiff[r] = wd;
    } else {
      for (let j = 0; j < cols; j++) sum += Math.exp(logits[base + j] - max);
    }
    out.max[r] = max;
    out.sumExp[r] = sum;
    out.argmax[r] = arg;
  }
}
