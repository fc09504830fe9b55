/**
 * ForwardKernels.addTileResidual in TypeScript: out (rows × p) += x · Rᵀ for the p×d matrix
 * R = unvec(P·η) of a factored expert's 'tile' residual. P's q buckets split R's p·d row-major
 * entries into contiguous runs [⌊b·L/q⌋, ⌊(b+1)·L/q⌋) (L = p·d), and every entry of bucket b is
 * η_b/√|b| (src/residual/projection.ts). The bucket bounds are stepped exactly in integers, so
 * nothing per matrix is precomputed or kept: a served model holds only η.
 *
 * Per row of x: one f64 prefix sum, then per bucket (cut at the ends of R's rows) one
 * multiply-add with prefix[to] − prefix[from], the run of products on one row of R summed in f64
 * and added to out once.
 */
import { EngineError } from '../../types.js';
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';

/** The checks the native addon makes too. */
function checkTileResidual(op: string, d: number, p: number, q: number, eta: unknown, x: unknown, rows: number, out: unknown): void {
  checkDims(op, { d, p, q, rows });
  checkFloat32(op, 'eta', eta);
  checkFloat32(op, 'x', x);
  checkFloat32(op, 'out', out);
  if (q < 1 || q > p * d) throw new EngineError(`${op}: q = ${q} buckets cannot cover a ${p}×${d} matrix (every bucket holds at least one entry: 1 ≤ q ≤ p·d)`);
  checkAtLeast(op, 'eta', eta, q, 'q: eta holds one value per bucket');
  checkAtLeast(op, 'x', x, rows * d, 'rows and d: x is rows×d');
  checkAtLeast(op, 'out', out, rows * p, 'rows and p: out is rows×p');
}

export function addTileResidual(d: number, p: number, q: number, eta: Float32Array, x: Float32Array, rows: number, out: Float32Array): void {
  checkTileResidual('addTileResidual', d, p, q, eta, x, rows, out);
  const length = p * d;
  // bucket sizes are ⌊L/q⌋ or ⌊L/q⌋ + 1; their scales 1/√size are taken once
  const small = Math.floor(length / q);
  const carry = length - small * q;
  const smallScale = 1 / Math.sqrt(small);
  const largeScale = 1 / Math.sqrt(small + 1);
  const prefix = new Float64Array(d + 1);
  for (let r = 0; r < rows; r++) {
    const xr = r * d;
    let acc = 0;
    for (let j = 0; j < d; j++) {
      acc += x[xr + j];
      prefix[j + 1] = acc;
    }
    const yr = r * p;
    // bucket b starts at ⌊b·L/q⌋; with b·L = start·q + remainder and L = small·q + carry, each
    // step adds small, plus one when the remainders carry over q
    let remainder = 0;
    let row = 0;
    let col = 0;
    let sum = 0;
    for (let b = 0; b < q; b++) {
      remainder += carry;
      let size = small;
      if (remainder >= q) {
        remainder -= q;
        size++;
      }
      const v = eta[b] * (size === small ? smallScale : largeScale);
      let left = size;
      while (left > 0) {
        const take = Math.min(left, d - col);
        sum += v * (prefix[col + take] - prefix[col]);
        col += take;
        left -= take;
        if (col === d) {
          out[yr + row] += sum;
          sum = 0;
          row++;
          col = 0;
        }
      }
    }
  }
}
