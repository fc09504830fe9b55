/** RMSNorm of rows (HF *RMSNorm): f64 sum of squares, the inverse root rounded to f32 like torch. */
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';
import { EngineError } from '../../types.js';

/** Rows of `x` (rows × width) normalised: out = x · w / sqrt(mean(x²) + eps); out may be x. */
export function rmsNormRows(x: Float32Array, rows: number, width: number, weight: Float32Array, eps: number, out: Float32Array = x): void {
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    let sumSq = 0;
    for (let j = 0; j < width; j++) sumSq += x[base + j] * x[base + j];
    const inv = Math.fround(1 / Math.sqrt(Math.fround(sumSq / width) + eps));
    for (let j = 0; j < width; j++) out[base + j] = weight[j] * Math.fround(x[base + j] * inv);
  }
}

/** ForwardKernels.rmsNorm. */
export function rmsNorm(rows: number, width: number, x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
  const op = 'rmsNorm';
  checkDims(op, { rows, width });
  checkFloat32(op, 'x', x);
  checkFloat32(op, 'weight', weight);
  checkFloat32(op, 'out', out);
  checkAtLeast(op, 'x', x, rows * width, 'rows and width: x is rows×width');
  checkAtLeast(op, 'out', out, rows * width, 'rows and width: out is rows×width');
  if (weight.length !== width) throw new EngineError(`${op}: weight has ${weight.length} values but width is ${width}`);
  if (!Number.isFinite(eps)) throw new EngineError(`${op}: eps must be finite`);
  rmsNormRows(x, rows, width, weight, eps, out);
}
