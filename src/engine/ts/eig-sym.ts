/**
 * Symmetric eigendecomposition in f64: Householder tridiagonalisation (tred2) followed by the
 * implicit QL algorithm with Wilkinson-type shifts (tql2), after EISPACK as published in JAMA.
 *
 * The algorithm is written on W = Vᵀ (W's row j is V's column j): every inner loop of both
 * phases then walks a contiguous row of the row-major array instead of a strided column, which
 * is what makes n in the hundreds to thousands practical in JS.
 */
import { EngineError, type EigResult, type EigTopResult } from '../types.js';
import { checkDim, checkFloat64, checkLength } from './validate.js';

export function eigSym(n: number, a: Float64Array): EigResult {
  const op = 'eigSym';
  checkDim(op, 'n', n);
  checkFloat64(op, 'a', a);
  checkLength(op, 'a (n×n)', a, n, n);
  return eigSymUnchecked(n, a, true);
}

/**
 * Every eigenvalue and the k leading eigenvectors as rows. The native engine reduces A in place to
 * save memory; this one has no such saving to make (tql2 accumulates all n vectors), so it
 * decomposes fully and keeps k, leaving A as it was.
 */
export function eigSymTop(n: number, a: Float64Array, k: number): EigTopResult {
  const op = 'eigSymTop';
  checkDim(op, 'n', n);
  checkFloat64(op, 'a', a);
  checkLength(op, 'a (n×n)', a, n, n);
  checkDim(op, 'k', k);
  if (k > n || (k === 0 && n > 0)) throw new EngineError(`${op}: k = ${k} eigenvectors must be in [1, n = ${n}]`);
  const { values, vectors } = eigSymUnchecked(n, a, true);
  const rows = new Float64Array(k * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) rows[j * n + i] = vectors[i * n + j];
  return { values, rows };
}

/** Eigenvalues only (descending): skips accumulating the transformations, ~3× cheaper. */
export function eigSymValues(n: number, a: Float64Array): Float64Array {
  return eigSymUnchecked(n, a, false).values;
}

export function eigSymUnchecked(n: number, a: Float64Array, wantVectors: boolean): EigResult {
  if (n === 0) return { values: new Float64Array(0), vectors: new Float64Array(0) };
  // Only the lower triangle is read: W starts as the symmetric matrix it defines.
  const W = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j];
      if (!Number.isFinite(v)) throw new EngineError(`eigSym: a[${i}][${j}] is ${v}; the matrix must be finite`);
      W[i * n + j] = v;
      W[j * n + i] = v;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalize(n, W, d, e, wantVectors);
  diagonalizeTridiagonal(n, W, d, e, wantVectors);

  // Sort descending; column j of the output is W's row order[j].
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y] - d[x]);
  const values = new Float64Array(n);
  for (let j = 0; j < n; j++) values[j] = d[order[j]];
  const vectors = new Float64Array(wantVectors ? n * n : 0);
  if (wantVectors) {
    for (let j = 0; j < n; j++) {
      const src = order[j] * n;
      for (let k = 0; k < n; k++) vectors[k * n + j] = W[src + k];
    }
  }
  return { values, vectors };
}

/**
 * tred2 on W = Vᵀ: reduces the symmetric matrix to tridiagonal form (diagonal d, subdiagonal
 * e[1..n-1]) and, when wanted, accumulates the orthogonal transformation into W.
 */
function tridiagonalize(n: number, W: Float64Array, d: Float64Array, e: Float64Array, wantVectors: boolean): void {
  // V[x][y] is W[y·n + x] throughout.
  for (let j = 0; j < n; j++) d[j] = W[j * n + n - 1];

  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = W[j * n + i - 1];
        W[j * n + i] = 0;
        W[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;

      for (let j = 0; j < i; j++) {
        const rj = j * n;
        f = d[j];
        W[i * n + j] = f; // V[j][i]
        g = e[j] + W[rj + j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          const v = W[rj + k]; // V[k][j]
          g += v * d[k];
          e[k] += v * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        const rj = j * n;
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) W[rj + k] -= f * e[k] + g * d[k]; // V[k][j]
        d[j] = W[rj + i - 1]; // V[i-1][j]
        W[rj + i] = 0; // V[i][j]
      }
    }
    d[i] = h;
  }

  if (wantVectors) {
    // Accumulate the transformations.
    for (let i = 0; i < n - 1; i++) {
      const ri = i * n;
      const ri1 = (i + 1) * n;
      W[ri + n - 1] = W[ri + i]; // V[n-1][i] = V[i][i]
      W[ri + i] = 1;
      const h = d[i + 1];
      if (h !== 0) {
        for (let k = 0; k <= i; k++) d[k] = W[ri1 + k] / h; // V[k][i+1]
        for (let j = 0; j <= i; j++) {
          const rj = j * n;
          let g = 0;
          for (let k = 0; k <= i; k++) g += W[ri1 + k] * W[rj + k];
          for (let k = 0; k <= i; k++) W[rj + k] -= g * d[k];
        }
      }
      for (let k = 0; k <= i; k++) W[ri1 + k] = 0;
    }
    for (let j = 0; j < n; j++) {
      d[j] = W[j * n + n - 1];
      W[j * n + n - 1] = 0;
    }
    W[(n - 1) * n + n - 1] = 1;
  } else {
    // Without accumulation the tridiagonal's diagonal is still sitting on W's diagonal.
    for (let j = 0; j < n; j++) d[j] = W[j * n + j];
  }
  e[0] = 0;
}

/** tql2 on W = Vᵀ: each plane rotation mixes two contiguous rows of W. */
function diagonalizeTridiagonal(n: number, W: Float64Array, d: Float64Array, e: Float64Array, wantVectors: boolean): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;

  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  const maxIterations = 30 * n + 30;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]) <= eps * tst1) break;
      m++;
    }
    // e[n-1] is 0, so m < n here.
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > maxIterations) {
          throw new EngineError(`eigSym: the QL iteration did not converge for eigenvalue ${l} of ${n}`);
        }
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;

        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (wantVectors) {
            const ri = i * n;
            const ri1 = ri + n;
            for (let k = 0; k < n; k++) {
              const hk = W[ri1 + k];
              const vk = W[ri + k];
              W[ri1 + k] = s * vk + c * hk;
              W[ri + k] = c * vk - s * hk;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}
