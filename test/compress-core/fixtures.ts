/** Seeded test matrices for the compression tests: low-rank signal plus noise, distinct σ. */
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { mulberry32 } from '../../src/residual/prng.js';

export function gaussian(seed: number): () => number {
  const rand = mulberry32(seed);
  return () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

/** p×d row-major: Σ_j s_j u_j v_jᵀ with decaying s_j (rank `signalRank`) + noise·N(0,1). */
export function lowRankPlusNoise(p: number, d: number, seed: number, signalRank = 4, noise = 0.05): Float32Array {
  const g = gaussian(seed);
  const W = new Float32Array(p * d);
  for (let r = 0; r < signalRank; r++) {
    const s = 3 / (1 + r);
    const u = Array.from({ length: p }, g);
    const v = Array.from({ length: d }, g);
    for (let i = 0; i < p; i++) for (let j = 0; j < d; j++) W[i * d + j] += (s * u[i] * v[j]) / Math.sqrt(d);
  }
  for (let j = 0; j < W.length; j++) W[j] += noise * g();
  return W;
}

export function toMatrix(rows: number, cols: number, a: ArrayLike<number>): Matrix {
  const m = new Matrix(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m.set(i, j, a[i * cols + j]);
  return m;
}

/** Independent truth: rank-K truncated SVD reconstruction by ml-matrix (f64). */
export function truncatedReconstruction(rows: number, cols: number, a: ArrayLike<number>, rank: number): Matrix {
  const svd = new SingularValueDecomposition(toMatrix(rows, cols, a), { autoTranspose: true });
  const U = svd.leftSingularVectors.subMatrix(0, rows - 1, 0, rank - 1);
  const V = svd.rightSingularVectors.subMatrix(0, cols - 1, 0, rank - 1);
  const S = Matrix.diag(svd.diagonal.slice(0, rank));
  return U.mmul(S).mmul(V.transpose());
}

export function maxAbsDiff(a: ArrayLike<number>, b: Matrix): number {
  let worst = 0;
  const cols = b.columns;
  for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b.get(Math.floor(j / cols), j % cols)));
  return worst;
}

/** Calibration inputs X (t×d) with anisotropic columns (a few strong directions), and G = XᵀX. */
export function anisotropicGram(d: number, tokens: number, seed: number): { X: Matrix; gram: Float64Array } {
  const g = gaussian(seed);
  const X = new Matrix(tokens, d);
  const scale = Array.from({ length: d }, (_, j) => (j % 5 === 0 ? 5 : 0.3) * (1 + g() * 0.1));
  const mix = Array.from({ length: d }, g);
  for (let t = 0; t < tokens; t++) {
    const common = g();
    for (let j = 0; j < d; j++) X.set(t, j, scale[j] * g() + 0.5 * common * mix[j]);
  }
  const G = X.transpose().mmul(X);
  return { X, gram: Float64Array.from(G.to1DArray()) };
}
