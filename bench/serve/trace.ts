/**
 * The seeded request trace of the serving benchmark: several models whose Poisson rates change
 * over time, with bursts (many requests within a second) and lulls (no requests). Times are in
 * seconds from the start of the replay.
 */
import { mulberry32 } from '../../src/util/prng.js';

export interface Arrival {
  at: number;
  model: string;
}

/**
 * The Poisson rate (per second) each model was generated with, as stretches [from, to) in seconds;
 * outside them the rate is 0. Bursts are not in it. The rate oracle of the simulation reads it (no
 * online policy can).
 */
export type RateSchedule = Map<string, Array<{ from: number; to: number; rate: number }>>;

/** the generated rate of `model` at time `t` (s), per second */
export function rateAt(schedule: RateSchedule, model: string, t: number): number {
  for (const p of schedule.get(model) ?? []) if (t >= p.from && t < p.to) return p.rate;
  return 0;
}

/** One stretch of a model's traffic: Poisson at `rate` per second over [from, to) × duration. */
interface Phase {
  from: number;
  to: number;
  rate: number;
}
interface Burst {
  at: number;
  count: number;
  /** seconds the burst is spread over */
  within: number;
}

/**
 * Three traffic shapes, assigned to the models in turn (rates below × `rateScale`):
 * - steady then slowing (0.4/s for the first half, 0.1/s after);
 * - slow, a lull, then busy (0.1/s, nothing, 0.3/s);
 * - silent except two bursts of 8 requests within 1 s and a trickle (0.05/s) between.
 */
export function makeTrace(models: string[], durationS: number, seed: number, rateScale = 1, schedule?: RateSchedule): Arrival[] {
  const shapes: Array<{ phases: Phase[]; bursts: Burst[] }> = [
    { phases: [{ from: 0, to: 0.5, rate: 0.4 }, { from: 0.5, to: 1, rate: 0.1 }], bursts: [] },
    { phases: [{ from: 0, to: 0.3, rate: 0.1 }, { from: 0.6, to: 1, rate: 0.3 }], bursts: [] },
    { phases: [{ from: 0.3, to: 0.7, rate: 0.05 }], bursts: [{ at: 0.25, count: 8, within: 1 }, { at: 0.75, count: 8, within: 1 }] },
  ];
  const rand = mulberry32(seed);
  const out: Arrival[] = [];
  models.forEach((model, i) => {
    const shape = shapes[i % shapes.length];
    for (const p of shape.phases) {
      schedule?.set(model, [...(schedule.get(model) ?? []), { from: p.from * durationS, to: p.to * durationS, rate: p.rate * rateScale }]);
      let t = p.from * durationS;
      for (;;) {
        t += -Math.log(1 - rand()) / (p.rate * rateScale);
        if (t >= p.to * durationS) break;
        out.push({ at: t, model });
      }
    }
    for (const b of shape.bursts) {
      for (let k = 0; k < b.count; k++) out.push({ at: b.at * durationS + rand() * b.within, model });
    }
  });
  return out.sort((a, b) => a.at - b.at);
}

/**
 * A second, randomly shaped trace, so that no conclusion rests on the three hand-made shapes
 * above. Per model, from the seed: the duration is cut into phases of exponentially distributed
 * length (mean a quarter of the duration); each phase is a lull (probability 1/4) or Poisson at a
 * rate drawn log-uniformly between `minRate` and `maxRate` per second; and a Poisson number of
 * bursts (mean 1.5) of 4–16 requests within 2 s at uniform times.
 */
export function makeRandomTrace(models: string[], durationS: number, seed: number, minRate = 0.05 / 60, maxRate = 3 / 60, schedule?: RateSchedule): Arrival[] {
  const rand = mulberry32(seed);
  const exp = (mean: number) => -Math.log(1 - rand()) * mean;
  const out: Arrival[] = [];
  for (const model of models) {
    for (let from = 0; from < durationS; ) {
      const to = Math.min(durationS, from + exp(durationS / 4));
      if (rand() >= 0.25) {
        const rate = minRate * Math.pow(maxRate / minRate, rand());
        schedule?.set(model, [...(schedule.get(model) ?? []), { from, to, rate }]);
        for (let t = from + exp(1 / rate); t < to; t += exp(1 / rate)) out.push({ at: t, model });
      }
      from = to;
    }
    // Poisson(1.5) bursts by inversion
    let bursts = 0;
    for (let p = Math.exp(-1.5), cum = p, u = rand(); u > cum; bursts++) cum += p *= 1.5 / (bursts + 1);
    for (let b = 0; b < bursts; b++) {
      const at = rand() * durationS;
      const count = 4 + Math.floor(rand() * 13);
      for (let k = 0; k < count; k++) out.push({ at: at + rand() * 2, model });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/**
 * A third family, closer to Tyche's premise: many models with skewed, mostly stable popularity.
 * Model popularity follows Zipf's law (rate ∝ 1/rank, s = 1) with `totalRate` requests per second
 * over all models; the ranks are a seeded permutation, drawn again once at a uniform time in the
 * middle half of the trace (a popularity shift). Each model also gets a Poisson(0.5) number of
 * bursts of 4–16 requests within 2 s at uniform times. Sizes come from `sizesOut` (filled here):
 * log-uniform between 0.5 and 2 GB per model, from the same seed.
 */
export function makeSkewedTrace(models: string[], durationS: number, seed: number, totalRate = 6 / 60, schedule?: RateSchedule, sizesOut?: Map<string, number>): Arrival[] {
  const rand = mulberry32(seed);
  const exp = (mean: number) => -Math.log(1 - rand()) * mean;
  const n = models.length;
  const harmonic = Array.from({ length: n }, (_, i) => 1 / (i + 1)).reduce((a, b) => a + b, 0);
  const permutation = () => {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    return p;
  };
  const shiftAt = durationS * (0.25 + 0.5 * rand());
  const ranks = [permutation(), permutation()];
  const out: Arrival[] = [];
  models.forEach((model, i) => {
    sizesOut?.set(model, 0.5e9 * Math.pow(4, rand()));
    for (const [k, [from, to]] of [[0, shiftAt], [shiftAt, durationS]].entries()) {
      const rate = totalRate / (ranks[k][i] + 1) / harmonic;
      schedule?.set(model, [...(schedule.get(model) ?? []), { from, to, rate }]);
      for (let t = from + exp(1 / rate); t < to; t += exp(1 / rate)) out.push({ at: t, model });
    }
    let bursts = 0;
    for (let p = Math.exp(-0.5), cum = p, u = rand(); u > cum; bursts++) cum += p *= 0.5 / (bursts + 1);
    for (let b = 0; b < bursts; b++) {
      const at = rand() * durationS;
      const count = 4 + Math.floor(rand() * 13);
      for (let k = 0; k < count; k++) out.push({ at: at + rand() * 2, model });
    }
  });
  return out.sort((a, b) => a.at - b.at);
}
