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
export function makeTrace(models: string[], durationS: number, seed: number, rateScale = 1): Arrival[] {
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
export function makeRandomTrace(models: string[], durationS: number, seed: number, minRate = 0.05 / 60, maxRate = 3 / 60): Arrival[] {
  const rand = mulberry32(seed);
  const exp = (mean: number) => -Math.log(1 - rand()) * mean;
  const out: Arrival[] = [];
  for (const model of models) {
    for (let from = 0; from < durationS; ) {
      const to = Math.min(durationS, from + exp(durationS / 4));
      if (rand() >= 0.25) {
        const rate = minRate * Math.pow(maxRate / minRate, rand());
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
