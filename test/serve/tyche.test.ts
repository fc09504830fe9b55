/**
 * Tyche's thresholds against the seed's own numbers (λ = 0.5/min: t_load = 7.4 s, t_off = 5.6 min;
 * λ = 0.55/min: t_load ≈ 6.7 s) and the rate estimator's sliding window.
 */
import { describe, expect, it } from 'vitest';
import { ArrivalRateEstimator, P_LOAD, P_OFF, TYCHE_WINDOW, idleTimeForProbability, requestProbability, tycheThresholds } from '../../src/serve/tyche.js';

describe('Tyche thresholds (the seed)', () => {
  it('λ = 0.5 requests/min: t_load = 7.4 s and t_off = 5.6 min', () => {
    const { tLoad, tOff } = tycheThresholds(0.5); // minutes
    expect(tLoad * 60).toBeCloseTo(7.4, 1);
    expect(tOff).toBeCloseTo(5.6, 1);
  });

  it('λ = 0.55 requests/min: t_load ≈ 6.7 s', () => {
    // exactly 6.7503 s; the seed truncates it to 6.7
    const seconds = tycheThresholds(0.55).tLoad * 60;
    expect(Math.abs(seconds - 6.7)).toBeLessThan(0.06);
    expect(Math.trunc(seconds * 10) / 10).toBe(6.7);
  });

  it('uses P_load = 0.06, P_off = 0.94, W = 5', () => {
    expect([P_LOAD, P_OFF, TYCHE_WINDOW]).toEqual([0.06, 0.94, 5]);
  });

  it('the thresholds are where 1 − e^(−λt) reaches P_load and P_off (in any time unit)', () => {
    const lambdaPerMs = 0.5 / 60_000;
    const { tLoad, tOff } = tycheThresholds(lambdaPerMs);
    expect(requestProbability(lambdaPerMs, tLoad)).toBeCloseTo(0.06, 12);
    expect(requestProbability(lambdaPerMs, tOff)).toBeCloseTo(0.94, 12);
    expect(tLoad / 1000).toBeCloseTo(7.4, 1);
  });

  it('refuses rates and probabilities that have no threshold', () => {
    expect(() => idleTimeForProbability(0, 0.5)).toThrow(/positive/);
    expect(() => idleTimeForProbability(1, 1)).toThrow(/between 0 and 1/);
    expect(() => tycheThresholds(1, 0.9, 0.1)).toThrow(/below/);
  });
});

describe('ArrivalRateEstimator', () => {
  it('is unknown before the second arrival, then k / Σ intervals over the first W', () => {
    const e = new ArrivalRateEstimator();
    expect(e.arrive(0)).toBeNull();
    expect(e.arrive(1000)).toBeCloseTo(1 / 1000, 12);
    expect(e.arrive(4000)).toBeCloseTo(2 / 4000, 12);
  });

  it('keeps only the last 5 inter-arrival times and recomputes on every arrival', () => {
    const e = new ArrivalRateEstimator();
    // ten slow arrivals (10 s apart), then five fast (1 s apart)
    let t = 0;
    for (let i = 0; i < 10; i++) e.arrive((t += 10_000));
    expect(e.rate()).toBeCloseTo(1 / 10_000, 12);
    const rates: number[] = [];
    for (let i = 0; i < 5; i++) rates.push(e.arrive((t += 1000))!);
    // after k fast arrivals the window holds k one-second and 5 − k ten-second intervals
    rates.forEach((r, i) => expect(r).toBeCloseTo(5 / ((i + 1) * 1000 + (4 - i) * 10_000), 12));
    expect(e.samples).toBe(5);
    expect(e.rate()).toBeCloseTo(1 / 1000, 12);
  });

  it('floors simultaneous arrivals (a burst) at 1 ms so λ stays finite', () => {
    const e = new ArrivalRateEstimator();
    for (let i = 0; i < 6; i++) e.arrive(500);
    expect(e.rate()).toBe(1);
  });
});
