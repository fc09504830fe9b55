/** ForwardKernels.rope in TypeScript: rotary position embedding, rotate-half form over the first rotaryDim values of each head (f64 arithmetic, one rounding per value). */
import { EngineError } from '../../types.js';
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';

export function rope(rows: number, heads: number, headDim: number, positions: Int32Array, cos: Float32Array, sin: Float32Array, x: Float32Array, rotaryDim = headDim): void {
  const op = 'rope';
  checkDims(op, { rows, heads, headDim, rotaryDim });
  if (!(positions instanceof Int32Array)) throw new EngineError(`${op}: positions must be an Int32Array`);
  checkFloat32(op, 'cos', cos);
  checkFloat32(op, 'sin', sin);
  checkFloat32(op, 'x', x);
  if (rotaryDim % 2 !== 0) throw new EngineError(`${op}: rotaryDim ${rotaryDim} must be even (rotate-half pairs)`);
  if (rotaryDim > headDim) throw new EngineError(`${op}: rotaryDim ${rotaryDim} exceeds headDim ${headDim}`);
  const half = rotaryDim / 2;
  const width = heads * headDim;
  checkAtLeast(op, 'positions', positions, rows, 'rows');
  checkAtLeast(op, 'x', x, rows * width, 'rows, heads and headDim: x is rows×(heads·headDim)');
  if (sin.length !== cos.length) throw new EngineError(`${op}: cos has ${cos.length} values but sin ${sin.length}; give tables of one size`);
  if (half === 0 || rows === 0 || heads === 0) return;
  const tablePositions = Math.floor(cos.length / half);
  for (let r = 0; r < rows; r++) {
    const p = positions[r];
    if (p < 0 || p >= tablePositions) throw new EngineError(`${op}: position ${p} of row ${r} is outside the tables (${tablePositions} positions); build tables for the longest sequence`);
  }
  for (let r = 0; r < rows; r++) {
    const t = positions[r] * half;
    for (let h = 0; h < heads; h++) {
      const base = r * width + h * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[base + i];
        const b = x[base + i + half];
        const c = cos[t + i];
        const s = sin[t + i];
        x[base + i] = a * c - b * s;
        x[base + i + half] = b * c + a * s;
      }
    }
  }
}
