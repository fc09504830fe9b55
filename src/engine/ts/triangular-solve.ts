/**
 * Triangular solves, in place on B: op(L)·X = B (side 'left', B n×m) or X·op(L) = B (side
 * 'right', B m×n), with op(L) = L or Lᵀ and L lower or upper. Each step is a row axpy over a
 * contiguous row of B, so row-major B is walked in order.
 */
import { EngineError, type TriangularSolveOptions } from '../types.js';
import { transpose } from './transpose.js';
import { checkDims, checkFloat64, checkLength, checkNoOverlap } from './validate.js';

export function solveTriangular(n: number, m: number, L: Float64Array, b: Float64Array, opts: TriangularSolveOptions = {}): void {
  const op = 'solveTriangular';
  checkDims(op, { n, m });
  checkFloat64(op, 'L', L);
  checkFloat64(op, 'b', b);
  const lower = opts.lower ?? true;
  const transL = opts.transL ?? false;
  const side = opts.side ?? 'left';
  if (side !== 'left' && side !== 'right') {
    throw new EngineError(`${op}: side must be 'left' or 'right', got ${String(side)}`);
  }
  checkLength(op, 'L (n×n)', L, n, n);
  checkLength(op, side === 'left' ? 'b (left: n×m)' : 'b (right: m×n)', b, side === 'left' ? n : m, side === 'left' ? m : n);
  checkNoOverlap(op, 'b', b, 'L', L);
  for (let i = 0; i < n; i++) {
    const d = L[i * n + i];
    if (d === 0 || !Number.isFinite(d)) {
      throw new EngineError(`${op}: L[${i}][${i}] is ${d}; a triangular matrix with a zero or non-finite diagonal is singular`);
    }
  }

  if (side === 'left') {
    solveLeft(n, m, L, b, lower, transL);
  } else {
    // X·op(L) = B  ⇔  op(L)ᵀ·Xᵀ = Bᵀ
    const bt = transpose(m, n, b);
    solveLeft(n, m, L, bt, lower, !transL);
    b.set(transpose(n, m, bt));
  }
}

/** op(L)·X = B with B n×m, overwritten by X. */
function solveLeft(n: number, m: number, L: Float64Array, b: Float64Array, lower: boolean, transL: boolean): void {
  // op(L)(i, j) = L[i][j], or L[j][i] when transposed.
  const at = transL ? (i: number, j: number) => L[j * n + i] : (i: number, j: number) => L[i * n + j];
  const forward = lower !== transL; // op(L) is lower triangular
  for (let step = 0; step < n; step++) {
    const i = forward ? step : n - 1 - step;
    const xi = i * m;
    const jFrom = forward ? 0 : i + 1;
    const jTo = forward ? i : n;
    for (let j = jFrom; j < jTo; j++) {
      const f = at(i, j);
      if (f === 0) continue;
      const xj = j * m;
      for (let t = 0; t < m; t++) b[xi + t] -= f * b[xj + t];
    }
    const inv = 1 / at(i, i);
    for (let t = 0; t < m; t++) b[xi + t] *= inv;
  }
}
