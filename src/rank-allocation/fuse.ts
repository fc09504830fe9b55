/**
 * Fusion of the two group signals of RFID-MoE: routing frequency F (how much the group is used)
 * and information density E (effective rank of its stacked matrices).
 */

/**
 * v_g / Σv. Both signals are share-normalised over the groups of one layer so that ξ weighs
 * comparable quantities. All zeros (e.g. a layer no calibration token reached) carries no
 * preference, so it becomes the uniform share 1/G rather than NaN.
 */
export function shareNormalise(values: readonly number[]): number[] {
  if (values.length === 0) return [];
  let total = 0;
  for (let g = 0; g < values.length; g++) {
    const v = values[g];
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`value ${g} is ${v}: shares need finite non-negative values`);
    total += v;
  }
  if (total === 0) return values.map(() => 1 / values.length);
  return values.map((v) => v / total);
}

/**
 * Fused importance C_g = ξ·E_g + (1 − ξ)·F_g over share-normalised F and E (so Σ C = 1).
 * ξ = 0 is frequency-only, ξ = 1 effective-rank-only; the paper's default is 0.8.
 */
export function fuseImportance(frequencyShares: readonly number[], erankShares: readonly number[], xi: number): number[] {
  if (frequencyShares.length !== erankShares.length) {
    throw new RangeError(`F has ${frequencyShares.length} groups but E has ${erankShares.length}`);
  }
  if (!(xi >= 0 && xi <= 1)) throw new RangeError(`xi must be in [0, 1], got ${xi}`);
  return frequencyShares.map((f, g) => xi * erankShares[g] + (1 - xi) * f);
}
