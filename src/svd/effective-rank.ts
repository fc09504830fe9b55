/**
 * Spectrum summaries used by rank allocation and reporting.
 *
 * Both functions take singular values σ (any order, non-negative) and work on the energy
 * distribution σ_j² / Σσ², accumulated in f64 so a long f32 spectrum does not lose mass.
 */

function checkedEnergies(singularValues: ArrayLike<number>): { energies: Float64Array; total: number } {
  const energies = new Float64Array(singularValues.length);
  let total = 0;
  for (let j = 0; j < singularValues.length; j++) {
    const s = singularValues[j];
    if (!Number.isFinite(s) || s < 0) {
      throw new RangeError(`singular value ${j} is ${s}: singular values must be finite and non-negative`);
    }
    energies[j] = s * s;
    total += energies[j];
  }
  return { energies, total };
}

/**
 * Effective rank (Roy & Vetterli 2007): exp of the Shannon entropy of p_j = σ_j² / Σσ².
 *
 * Ranges from 1 (rank-one matrix) to the number of singular values (flat spectrum). Terms with
 * p_j = 0 contribute 0 (the limit of p ln p). Convention: the zero matrix (or an empty spectrum)
 * has effective rank 0 — it carries no information, and 0 keeps it from claiming rank share in
 * allocation, where a 1 would pretend it holds one direction.
 */
export function effectiveRank(singularValues: ArrayLike<number>): number {
  const { energies, total } = checkedEnergies(singularValues);
  if (total === 0) return 0;
  let entropy = 0;
  for (let j = 0; j < energies.length; j++) {
    const pj = energies[j] / total;
    if (pj > 0) entropy -= pj * Math.log(pj);
  }
  return Math.exp(entropy);
}

/**
 * Fraction of the spectrum's energy held by the `rank` largest singular values:
 * Σ_{j<rank} σ_j² / Σσ² over the values sorted descending. The zero matrix returns 1: truncating
 * it loses nothing.
 */
export function energyFraction(singularValues: ArrayLike<number>, rank: number): number {
  if (!Number.isInteger(rank) || rank < 0) throw new RangeError(`rank must be a non-negative integer, got ${rank}`);
  const { energies, total } = checkedEnergies(singularValues);
  if (total === 0) return 1;
  const sorted = Array.from(energies).sort((a, b) => b - a);
  let kept = 0;
  for (let j = 0; j < Math.min(rank, sorted.length); j++) kept += sorted[j];
  return kept / total;
}

/**
 * Energy Σ σ_j² of the singular values with sorted index in [from, to) (descending order).
 * Used to price what extra rank units would buy.
 */
export function energyBetween(singularValues: ArrayLike<number>, from: number, to: number): number {
  const { energies } = checkedEnergies(singularValues);
  const sorted = Array.from(energies).sort((a, b) => b - a);
  let sum = 0;
  for (let j = Math.max(0, from); j < Math.min(to, sorted.length); j++) sum += sorted[j];
  return sum;
}
