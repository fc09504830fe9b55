/**
 * Householder QR, used to orthonormalise sketches (randomized SVD) and bases.
 *
 * Works on the transposed layout: the p×l matrix whose columns are to be orthonormalised is given
 * as its l×p transpose, so that each column is a contiguous row. The explicit Q it returns is
 * orthonormal even when the input is rank deficient (Q = H₀…H_{l−1}·[I; 0]), which is what a range
 * finder needs.
 */

/**
 * Given Xt (l×p, l ≤ p, row-major) returns Qt (l×p) with orthonormal rows whose first j rows span
 * the first j rows of Xt whenever those are linearly independent.
 */
export function orthonormalizeRows(l: number, p: number, Xt: Float64Array): Float64Array {
  if (l > p) throw new RangeError(`orthonormalizeRows: cannot orthonormalise ${l} rows of length ${p}`);
  const R = Xt.slice(0, l * p);
  const tau = new Float64Array(l);

  for (let j = 0; j < l; j++) {
    const rj = j * p;
    let normSq = 0;
    for (let t = j; t < p; t++) normSq += R[rj + t] * R[rj + t];
    if (normSq === 0) continue; // H_j = I
    const x0 = R[rj + j];
    const alpha = Math.sqrt(normSq);
    const diag = x0 >= 0 ? -alpha : alpha; // sign chosen to avoid cancellation in v₀
    const v0 = x0 - diag;
    const vNormSq = normSq - x0 * x0 + v0 * v0;
    R[rj + j] = v0; // R's row j (from j on) now holds the Householder vector v
    tau[j] = 2 / vNormSq;
    for (let c = j + 1; c < l; c++) applyReflector(R, rj, j, p, tau[j], R, c * p);
  }

  const Qt = new Float64Array(l * p);
  for (let c = 0; c < l; c++) Qt[c * p + c] = 1;
  for (let j = l - 1; j >= 0; j--) {
    if (tau[j] === 0) continue;
    for (let c = j; c < l; c++) applyReflector(R, j * p, j, p, tau[j], Qt, c * p);
  }
  return Qt;
}

/** y[from:p] -= tau·(v·y)·v, v = vs[vOff + from : vOff + p], y = ys[yOff + from : yOff + p]. */
function applyReflector(vs: Float64Array, vOff: number, from: number, p: number, tau: number, ys: Float64Array, yOff: number): void {
  let dot = 0;
  for (let t = from; t < p; t++) dot += vs[vOff + t] * ys[yOff + t];
  const f = tau * dot;
  if (f === 0) return;
  for (let t = from; t < p; t++) ys[yOff + t] -= f * vs[vOff + t];
}
