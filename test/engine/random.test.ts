import { describe, expect, it } from 'vitest';
import { gaussianMatrix, Xoshiro128 } from '../../src/engine/random.js';

describe('Xoshiro128 (xoshiro128**)', () => {
  it('reproduces the reference implementation from state {1, 2, 3, 4}', () => {
    // first outputs of Blackman & Vigna's xoshiro128starstar.c with s = {1, 2, 3, 4}
    const rng = Xoshiro128.fromState(1, 2, 3, 4);
    const got = Array.from({ length: 10 }, () => rng.nextUint32());
    expect(got).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
  });

  it('keeps uniforms strictly inside (0, 1)', () => {
    const rng = new Xoshiro128(3);
    for (let i = 0; i < 10_000; i++) {
      const u = rng.nextOpenUnit();
      expect(u > 0 && u < 1).toBe(true);
    }
  });
});

describe('gaussianMatrix', () => {
  it('is deterministic in the seed and differs between seeds', () => {
    expect(gaussianMatrix(7, 5, 42)).toEqual(gaussianMatrix(7, 5, 42));
    expect(gaussianMatrix(7, 5, 42)).not.toEqual(gaussianMatrix(7, 5, 43));
    expect(gaussianMatrix(3, 3, 2 ** 40)).not.toEqual(gaussianMatrix(3, 3, 0)); // high seed bits count
  });

  it('has odd lengths filled and standard normal moments', () => {
    const x = gaussianMatrix(301, 333, 1); // 100 233 samples, odd count
    expect(x.length).toBe(301 * 333);
    expect(x.every(Number.isFinite)).toBe(true);
    const n = x.length;
    const mean = x.reduce((s, v) => s + v, 0) / n;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    const within1 = x.filter((v) => Math.abs(v) < 1).length / n;
    // 5 standard errors: mean ±0.016, variance ±0.022, P(|z|<1) = 0.6827 ±0.0074
    expect(Math.abs(mean)).toBeLessThan(0.016);
    expect(Math.abs(variance - 1)).toBeLessThan(0.022);
    expect(Math.abs(within1 - 0.6827)).toBeLessThan(0.0074);
  });

  it('rejects bad shapes', () => {
    expect(() => gaussianMatrix(-1, 2, 0)).toThrow(RangeError);
    expect(() => gaussianMatrix(1.5, 2, 0)).toThrow(/non-negative integers/);
  });
});
