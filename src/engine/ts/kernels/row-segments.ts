/**
 * ForwardKernels.addRowSegments in TypeScript: out (rows × p) += x · Rᵀ for a p×d matrix R given
 * as runs of equal values along its rows (segment s: R[row[s]][from[s] .. to[s]) = value[s]), the
 * form of a factored expert's 'tile' residual. Per input row, one f64 prefix sum of x, then one
 * multiply-add per segment (prefix[to] − prefix[from] is the run's sum of x), the products of a
 * run of segments on one row summed in f64 and added to out once.
 */
import type { RowSegments } from '../../types.js';
import { EngineError } from '../../types.js';
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';

/** The checks the native addon makes too: sizes, and every segment inside R. */
function checkRowSegments(op: string, d: number, p: number, seg: RowSegments, x: unknown, rows: number, out: unknown): void {
  checkDims(op, { d, p, rows });
  checkFloat32(op, 'x', x);
  checkFloat32(op, 'out', out);
  checkAtLeast(op, 'x', x, rows * d, 'rows and d: x is rows×d');
  checkAtLeast(op, 'out', out, rows * p, 'rows and p: out is rows×p');
  const { row, from, to, value } = seg;
  if (!(row instanceof Int32Array) || !(from instanceof Int32Array) || !(to instanceof Int32Array) || !(value instanceof Float64Array)) {
    throw new EngineError(`${op}: segments must be Int32Array row, from, to and Float64Array value`);
  }
  const n = row.length;
  if (from.length !== n || to.length !== n || value.length !== n) {
    throw new EngineError(`${op}: segments disagree in length (row ${n}, from ${from.length}, to ${to.length}, value ${value.length})`);
  }
  for (let s = 0; s < n; s++) {
    if (row[s] < 0 || row[s] >= p || from[s] < 0 || from[s] > to[s] || to[s] > d) {
      throw new EngineError(`${op}: segment ${s} (row ${row[s]}, columns ${from[s]}..${to[s]}) is outside the ${p}×${d} matrix`);
    }
  }
}

export function addRowSegments(d: number, p: number, seg: RowSegments, x: Float32Array, rows: number, out: Float32Array): void {
  checkRowSegments('addRowSegments', d, p, seg, x, rows, out);
  const { row, from, to, value } = seg;
  const n = row.length;
  if (n === 0) return;
  const prefix = new Float64Array(d + 1);
  for (let r = 0; r < rows; r++) {
    const xr = r * d;
    let acc = 0;
    for (let j = 0; j < d; j++) {
      acc += x[xr + j];
      prefix[j + 1] = acc;
    }
    const yr = r * p;
    let current = row[0];
    let sum = 0;
    for (let s = 0; s < n; s++) {
      const i = row[s];
      if (i !== current) {
        out[yr + current] += sum;
        sum = 0;
        current = i;
      }
      sum += value[s] * (prefix[to[s]] - prefix[from[s]]);
    }
    out[yr + current] += sum;
  }
}
