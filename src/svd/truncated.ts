/**
 * Rank-K factors M ≈ A·B of one (stacked) matrix by truncated SVD: A = U_K·Σ_K (m×K),
 * B = V_Kᵀ (K×d, orthonormal rows: the shared basis of a group).
 */
import type { Engine, RandomizedSvdOptions } from '../engine/types.js';

export type SvdMethod = 'exact' | 'randomized';

export interface LowRankFactors {
  /** m×K row-major, U_K·Σ_K */
  A: Float32Array;
  /** K×d row-major, V_Kᵀ */
  B: Float32Array;
  /** the K leading singular values (exact, or the randomized estimates) */
  singularValues: Float64Array;
}

export function truncatedFactors(
  engine: Engine,
  m: number,
  d: number,
  M: Float32Array,
  rank: number,
  method: SvdMethod = 'exact',
  randomized: RandomizedSvdOptions = {},
): LowRankFactors {
  if (M.length !== m * d) throw new RangeError(`matrix has ${M.length} entries, expected ${m}×${d}`);
  if (!Number.isInteger(rank) || rank < 1 || rank > Math.min(m, d)) throw new RangeError(`rank ${rank} outside [1, ${Math.min(m, d)}]`);
  const svd = method === 'exact' ? engine.svdTop(m, d, M, rank) : engine.svdRandomized(m, d, M, rank, randomized);
  const K = svd.rank;
  if (K !== rank) throw new RangeError(`engine returned rank ${K} for a requested rank ${rank}`);
  const A = svd.U; // scaled in place: the SVD result is ours
  for (let i = 0; i < m; i++) {
    const row = i * K;
    for (let j = 0; j < K; j++) A[row + j] *= svd.S[j];
  }
  return { A, B: svd.Vt, singularValues: Float64Array.from(svd.S) };
}
