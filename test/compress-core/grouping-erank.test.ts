import { describe, expect, it } from 'vitest';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { groupExperts } from '../../src/compress/grouping.js';
import { effectiveRank, energyBetween, energyFraction } from '../../src/svd/effective-rank.js';
import { fuseImportance, shareNormalise } from '../../src/rank-allocation/fuse.js';

describe('groupExperts', () => {
  it('sorts by frequency descending, ties by index, last group smaller', () => {
    const f = [5, 9, 5, 1, 9, 0, 7];
    expect(groupExperts(f, 3, 'frequency')).toEqual([[1, 4, 6], [0, 2, 3], [5]]);
    expect(groupExperts(f, 3, 'index')).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    expect(groupExperts(f, 1, 'frequency').flat()).toEqual([1, 4, 6, 0, 2, 3, 5]);
  });

  it('equal frequencies fall back to index order', () => {
    expect(groupExperts([3, 3, 3, 3], 2)).toEqual([[0, 1], [2, 3]]);
  });

  it('refuses group sizes larger than the layer and bad frequencies', () => {
    expect(() => groupExperts([1, 2, 3], 4)).toThrow(/larger than the 3 experts.*≤ 3/);
    expect(() => groupExperts([1, Number.NaN], 1)).toThrow(/frequency of expert 1/);
    expect(() => groupExperts([1, 2], 0)).toThrow(/positive integer/);
  });
});

describe('effectiveRank', () => {
  it('is n for a flat spectrum (identity) and 1 for rank one', () => {
    expect(effectiveRank(new Float64Array(17).fill(1))).toBeCloseTo(17, 12);
    expect(effectiveRank([3, 0, 0, 0])).toBe(1);
  });

  it('is 0 for the zero matrix', () => {
    expect(effectiveRank([0, 0, 0])).toBe(0);
    expect(effectiveRank([])).toBe(0);
  });

  it('matches exp(entropy) written out for a two-value spectrum', () => {
    // σ = (2, 1): p = (0.8, 0.2)
    const h = -(0.8 * Math.log(0.8) + 0.2 * Math.log(0.2));
    expect(effectiveRank([2, 1])).toBeCloseTo(Math.exp(h), 14);
  });

  it('of an orthogonal matrix times a scale is its size (through an independent SVD)', () => {
    // Q from the SVD of a random matrix has all singular values 1 after scaling.
    const a = Matrix.rand(6, 6, { random: mulberry(3) });
    const q = new SingularValueDecomposition(a).leftSingularVectors.mul(4);
    const s = new SingularValueDecomposition(q).diagonal;
    expect(effectiveRank(s)).toBeCloseTo(6, 9);
  });

  it('refuses negative or non-finite singular values', () => {
    expect(() => effectiveRank([1, -1])).toThrow(/non-negative/);
  });

  it('energyFraction and energyBetween sort and sum σ²', () => {
    expect(energyFraction([1, 3, 2], 1)).toBeCloseTo(9 / 14, 15);
    expect(energyFraction([0, 0], 1)).toBe(1);
    expect(energyBetween([1, 3, 2], 1, 3)).toBe(5);
  });
});

describe('fusion', () => {
  it('share-normalises and fuses C = ξE + (1−ξ)F', () => {
    const F = shareNormalise([10, 30, 60]);
    const E = shareNormalise([1, 1, 2]);
    expect(F).toEqual([0.1, 0.3, 0.6]);
    const C = fuseImportance(F, E, 0.8);
    C.forEach((c, g) => expect(c).toBeCloseTo(0.8 * E[g] + 0.2 * F[g], 15));
    expect(C.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 15);
    expect(fuseImportance(F, E, 0)).toEqual(F);
    expect(fuseImportance(F, E, 1)).toEqual(E);
  });

  it('treats an all-zero signal as no preference', () => {
    expect(shareNormalise([0, 0, 0, 0])).toEqual([0.25, 0.25, 0.25, 0.25]);
  });
});

function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
