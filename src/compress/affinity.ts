/**
 * Groups formed by subspace affinity instead of adjacent frequency: experts whose leading input
 * directions overlap share a basis, so the shared basis serves each of them well.
 *
 * Signature of expert i: the orthonormal top-r right singular vectors Q_i (r×d) of W_i (randomized
 * SVD, seeded). Affinity a(i, j) = ‖Q_i·Q_jᵀ‖²_F ∈ [0, r] (r when the subspaces coincide), all
 * pairs from one product of the stacked signatures. Groups: the most frequent unassigned expert
 * seeds a group and takes the k − 1 unassigned experts of highest summed affinity to the members
 * so far (ties by frequency, then index).
 */
import type { Engine } from '../engine/types.js';

/** `weightOf(i)`: expert i's p×d matrix (asked for one at a time, so a caller may decode on demand). */
export function affinityGroups(engine: Engine, weightOf: (i: number) => Float32Array, n: number, p: number, d: number, frequencies: readonly number[], k: number, signatureRank = 16, seed = 0): number[][] {
  const r = Math.max(1, Math.min(signatureRank, p, d));
  const Q = new Float32Array(n * r * d);
  for (let i = 0; i < n; i++) {
    const svd = engine.svdRandomized(p, d, weightOf(i), r, { seed: (seed + i) >>> 0 });
    Q.set(svd.Vt.subarray(0, r * d), i * r * d);
  }
  const N = n * r;
  const P = new Float32Array(N * N);
  engine.gemm(N, N, d, Q, Q, P, { transB: true });
  const affinity = (i: number, j: number): number => {
    let s = 0;
    for (let a = 0; a < r; a++) for (let b = 0; b < r; b++) s += P[(i * r + a) * N + (j * r + b)] ** 2;
    return s;
  };
  const byFrequency = Array.from({ length: n }, (_, i) => i).sort((a, b) => frequencies[b] - frequencies[a] || a - b);
  const rankOf = new Int32Array(n);
  byFrequency.forEach((e, pos) => (rankOf[e] = pos));
  const assigned = new Uint8Array(n);
  const groups: number[][] = [];
  for (const seedExpert of byFrequency) {
    if (assigned[seedExpert]) continue;
    const group = [seedExpert];
    assigned[seedExpert] = 1;
    const score = new Float64Array(n);
    while (group.length < k) {
      const last = group[group.length - 1];
      let best = -1;
      for (let j = 0; j < n; j++) {
        if (assigned[j]) continue;
        score[j] += affinity(last, j);
        if (best < 0 || score[j] > score[best] || (score[j] === score[best] && rankOf[j] < rankOf[best])) best = j;
      }
      if (best < 0) break;
      group.push(best);
      assigned[best] = 1;
    }
    groups.push(group);
  }
  return groups;
}
