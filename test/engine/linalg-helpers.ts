/**
 * Shared helpers for the engine tests: golden-file loading and error measures that do not depend
 * on any engine (plain loops, so the truth they measure against is independent).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Matrix, QrDecomposition } from 'ml-matrix';

const goldenDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'golden', 'linalg');

export interface GoldenArray {
  offset: number;
  length: number;
  shape: number[];
}

export interface GoldenCase {
  op: string;
  dtype: 'f32' | 'f64';
  params: Record<string, number | boolean | string>;
  arrays: Record<string, GoldenArray>;
}

export interface Golden {
  cases: GoldenCase[];
  /** the f64 values of one array of a case */
  get(c: GoldenCase, name: string): Float64Array;
  /** the same, in the case's dtype */
  input(c: GoldenCase, name: string): Float32Array | Float64Array;
}

/** Reads test/golden/linalg (written by scripts/gen-linalg-golden.py). */
export function loadGolden(): Golden {
  const manifest = JSON.parse(readFileSync(path.join(goldenDir, 'cases.json'), 'utf8')) as { float64Count: number; cases: GoldenCase[] };
  const raw = readFileSync(path.join(goldenDir, 'data.bin'));
  if (raw.byteLength !== manifest.float64Count * 8) {
    throw new Error(`golden data.bin has ${raw.byteLength} bytes, expected ${manifest.float64Count * 8}: rerun scripts/gen-linalg-golden.py`);
  }
  const data = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const get = (c: GoldenCase, name: string): Float64Array => {
    const entry = c.arrays[name];
    if (!entry) throw new Error(`golden case ${c.op} has no array "${name}"`);
    return data.slice(entry.offset, entry.offset + entry.length);
  };
  return {
    cases: manifest.cases,
    get,
    input: (c, name) => (c.dtype === 'f32' ? Float32Array.from(get(c, name)) : get(c, name)),
  };
}

/** max |x − y| / max |y|: normwise relative error, robust to entries near zero. */
export function relErr(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`length mismatch ${x.length} vs ${y.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return diff / (scale || 1);
}

/**
 * Column j of x (rows×cols) compared with column j of y after flipping x's sign to match:
 * eigen/singular vectors are defined up to sign. Returns the max abs difference and the signs.
 */
export function columnsUpToSign(rows: number, cols: number, x: ArrayLike<number>, y: ArrayLike<number>): { err: number; signs: number[] } {
  let err = 0;
  const signs: number[] = [];
  for (let j = 0; j < cols; j++) {
    let dot = 0;
    for (let i = 0; i < rows; i++) dot += x[i * cols + j] * y[i * cols + j];
    const s = dot < 0 ? -1 : 1;
    signs.push(s);
    for (let i = 0; i < rows; i++) err = Math.max(err, Math.abs(s * x[i * cols + j] - y[i * cols + j]));
  }
  return { err, signs };
}

/** Rows of x (rows×cols) against rows of y, with the given per-row signs applied to x. */
export function rowsWithSigns(rows: number, cols: number, x: ArrayLike<number>, y: ArrayLike<number>, signs: number[]): number {
  let err = 0;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) err = Math.max(err, Math.abs(signs[i] * x[i * cols + j] - y[i * cols + j]));
  return err;
}

/** Plain triple loop in f64: C = op(A)·op(B). */
export function naiveMatmul(m: number, n: number, k: number, a: ArrayLike<number>, transA: boolean, b: ArrayLike<number>, transB: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const aip = transA ? a[p * m + i] : a[i * k + p];
      if (aip === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j] += aip * (transB ? b[j * k + p] : b[p * n + j]);
    }
  }
  return c;
}

/** ‖A − U·diag(S)·Vt‖_F / ‖A‖_F, in f64 loops. */
export function reconstructionError(m: number, n: number, a: ArrayLike<number>, U: ArrayLike<number>, S: ArrayLike<number>, Vt: ArrayLike<number>): number {
  const r = S.length;
  const us = new Float64Array(m * r);
  for (let i = 0; i < m * r; i++) us[i] = U[i] * S[i % r];
  const approx = naiveMatmul(m, n, r, us, false, Vt, false);
  let num = 0;
  let den = 0;
  for (let i = 0; i < m * n; i++) {
    num += (a[i] - approx[i]) ** 2;
    den += a[i] ** 2;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

/** ‖XᵀX − I‖_max for X rows×cols (orthonormal columns), or ‖XXᵀ − I‖_max when byRows. */
export function orthonormalityError(rows: number, cols: number, x: ArrayLike<number>, byRows = false): number {
  const gram = byRows ? naiveMatmul(rows, rows, cols, x, false, x, true) : naiveMatmul(cols, cols, rows, x, true, x, false);
  const count = byRows ? rows : cols;
  let err = 0;
  for (let p = 0; p < count; p++) for (let q = 0; q < count; q++) err = Math.max(err, Math.abs(gram[p * count + q] - (p === q ? 1 : 0)));
  return err;
}

/** Seeded uniform(−0.5, 0.5) test data (mulberry32), independent of the engine's own PRNG. */
export function testMatrix(length: number, seed: number): Float64Array {
  let state = seed >>> 0;
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

/**
 * A (m×n) = Q₁·diag(sigma)·Q₂ᵀ with orthonormal Q₁, Q₂ from ml-matrix's QR of seeded random
 * matrices: a test matrix whose singular values are known exactly, built without any engine.
 */
export function matrixWithSpectrum(m: number, n: number, sigma: ArrayLike<number>, seed: number): Float64Array {
  const r = sigma.length;
  const q1 = orthonormalColumns(m, r, seed);
  const q2 = orthonormalColumns(n, r, seed + 1);
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < r; t++) {
      const f = q1[i * r + t] * sigma[t];
      for (let j = 0; j < n; j++) a[i * n + j] += f * q2[j * r + t];
    }
  }
  return a;
}

function orthonormalColumns(rows: number, cols: number, seed: number): Float64Array {
  const x = testMatrix(rows * cols, seed);
  const matrix = new Matrix(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) matrix.set(i, j, x[i * cols + j]);
  const q = new QrDecomposition(matrix).orthogonalMatrix;
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = q.get(i, j);
  return out;
}
