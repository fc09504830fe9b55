/**
 * Tyche's arrival model (the project's seed): per model, the request rate λ is estimated from a
 * sliding window of the last W = 5 inter-arrival times and recomputed on every arrival. Under
 * Poisson arrivals P(a request within t) = 1 − e^(−λt), so the idle time at which that
 * probability reaches P is t(P) = −ln(1 − P)/λ. The model is made resident (pre-loaded) when its
 * idle time reaches t_load = t(P_load = 0.06) and offloaded when it reaches t_off = t(P_off = 0.94).
 *
 * This module is the seed's rule alone: the estimator returns the bare k/Σ over the intervals it
 * has (null before the second arrival). What tyche does where the seed is silent (a prior for the
 * first W requests, bursts, the load time, the reload guard, pre-loads under the budget) is in
 * policies.ts (TychePolicy) and the README's "Where the seed is silent".
 */
export const TYCHE_WINDOW = 5;
export const P_LOAD = 0.06;
export const P_OFF = 0.94;

/** Idle time (in the unit of 1/λ) at which P(a request within t) reaches `p`: −ln(1 − p)/λ. */
export function idleTimeForProbability(lambda: number, p: number): number {
  if (!(lambda > 0) || !Number.isFinite(lambda)) throw new RangeError(`the arrival rate must be a positive finite number, got ${lambda}`);
  if (!(p > 0 && p < 1)) throw new RangeError(`a probability strictly between 0 and 1 is needed, got ${p}`);
  return -Math.log1p(-p) / lambda;
}

/** P(at least one request within `t`) for Poisson arrivals at rate `lambda` (same time unit). */
export function requestProbability(lambda: number, t: number): number {
  return -Math.expm1(-lambda * t);
}

export interface TycheThresholds {
  /** idle time at which the model must be resident */
  tLoad: number;
  /** idle time at which the model is offloaded */
  tOff: number;
}

/** t_load and t_off for a rate λ, in the reciprocal unit of λ (λ per minute → minutes). */
export function tycheThresholds(lambda: number, pLoad = P_LOAD, pOff = P_OFF): TycheThresholds {
  if (!(pLoad < pOff)) throw new RangeError(`P_load (${pLoad}) must be below P_off (${pOff})`);
  return { tLoad: idleTimeForProbability(lambda, pLoad), tOff: idleTimeForProbability(lambda, pOff) };
}

/** λ from the last W inter-arrival times, recomputed on every arrival (times in ms). */
export class ArrivalRateEstimator {
  private readonly intervals: number[] = [];
  private last: number | null = null;

  constructor(
    readonly window = TYCHE_WINDOW,
    readonly minIntervalMs = 1,
  ) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`the window must be a positive integer, got ${window}`);
  }

  /** Record an arrival at `nowMs`; returns the new λ in requests per ms (null while unknown). */
  arrive(nowMs: number): number | null {
    if (this.last !== null) {
      this.intervals.push(Math.max(this.minIntervalMs, nowMs - this.last));
      if (this.intervals.length > this.window) this.intervals.shift();
    }
    this.last = nowMs;
    return this.rate();
  }

  /** requests per ms, or null before the second arrival */
  rate(): number | null {
    if (this.intervals.length === 0) return null;
    const sum = this.intervals.reduce((a, b) => a + b, 0);
    return this.intervals.length / sum;
  }

  get lastArrival(): number | null {
    return this.last;
  }

  get samples(): number {
    return this.intervals.length;
  }

  /** sum of the windowed inter-arrival times (ms) */
  get windowMs(): number {
    return this.intervals.reduce((a, b) => a + b, 0);
  }
}
