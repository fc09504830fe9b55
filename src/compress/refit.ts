/**
 * Closed-form coefficients for a fixed basis: given B (K×d) and an expert's calibration Gram
 * G = XᵀX, the A (p×K) minimising ‖(W − A·B)·Xᵀ‖_F solves the normal equations
 * A·(B·G·Bᵀ) = W·G·Bᵀ (least squares through the Gram: X itself is never needed).
 *
 * With G the group's summed Gram this reproduces the whitened-SVD coefficients (B·G·Bᵀ = I there);
 * with each expert's own Gram it refits every expert to the inputs it actually sees, which a shared
 * basis cannot do by itself.
 */
import type { Engine } from '../engine/types.js';

/** A = W·G·Bᵀ·(B·G·Bᵀ)⁻¹, p×K f32. G is d×d f64; W p×d and B K×d f32 row-major. */
export function refitCoefficients(engine: Engine, p: number, d: number, K: number, W: Float32Array, B: Float32Array, G: Float64Array, dampingSchedule?: number[]): Float32Array {
  if (W.length !== p * d) throw new RangeError(`matrix has ${W.length} entries, expected ${p}×${d}`);
  if (B.length < K * d) throw new RangeError(`basis has ${B.length} entries, expected ${K}×${d}`);
  if (G.length !== d * d) throw new RangeError(`Gram matrix has ${G.length} entries, expected ${d}×${d}`);
  const Bd = Float64Array.from(B.subarray(0, K * d));
  const T = new Float64Array(d * K); // G·Bᵀ
  engine.gemm(d, K, d, G, Bd, T, { transB: true });
  const S = new Float64Array(K * K); // B·G·Bᵀ
  engine.gemm(K, K, d, Bd, T, S);
  const R = new Float64Array(p * K); // W·G·Bᵀ
  engine.gemm(p, K, d, Float64Array.from(W), T, R);
  // A·L·Lᵀ = R: solve Z·Lᵀ = R, then A·L = Z (both in place on R)
  const { L } = engine.cholesky(K, S, dampingSchedule ? { dampingSchedule } : {});
  engine.solveTriangular(K, p, L, R, { lower: true, side: 'right', transL: true });
  engine.solveTriangular(K, p, L, R, { lower: true, side: 'right' });
  return Float32Array.from(R);
}

/** tr(G) */
export function gramTrace(d: number, G: Float64Array): number {
  let t = 0;
  for (let i = 0; i < d; i++) t += G[i * d + i];
  return t;
}
