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
