/**
 * The references of the policy simulation (bench/serve/oracle.ts) against independent truth:
 * Belady's MIN on the textbook reference string (Silberschatz et al., Operating System Concepts:
 * 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 with 3 frames gives 9 faults under the optimal policy
 * and 12 under LRU), run through the real residency manager on the virtual clock; the prefetching
 * oracle removing every cold start at the memory of a load plus a request each; the rate oracle
 * evicting the lowest generated rate; and the skewed trace family's Zipf rates.
 */
import { describe, expect, it } from 'vitest';
import { OraclePolicy, RateOraclePolicy } from '../../bench/serve/oracle.js';
import { simulate } from '../../bench/serve/simulate.js';
import { makeSkewedTrace, rateAt, type Arrival, type RateSchedule } from '../../bench/serve/trace.js';
import type { ModelView } from '../../src/serve/policies.js';

const TEXTBOOK = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1];
/** one request every 100 s (far longer than a load and a request), the first at 100 s */
const textbookTrace: Arrival[] = TEXTBOOK.map((page, i) => ({ at: 100 * (i + 1), model: `p${page}` }));
const pages = [...new Set(TEXTBOOK)].map((p) => `p${p}`);
const base = { trace: textbookTrace, models: pages, modelBytes: 1e9, budgetBytes: 3.05e9, loadS: 1, serviceS: 1, keepAliveS: 600, tickS: 0.1 };

describe('the oracles on the textbook reference string, 3 models’ room', () => {
  it('Belady’s MIN (loads on request only) has 9 cold starts; LRU 12', async () => {
    const min = await simulate({ ...base, policy: 'oracle', makePolicy: () => new OraclePolicy(textbookTrace, 1000, 100, false) });
    expect(min.coldStarts).toBe(9);
    const lru = await simulate({ ...base, policy: 'lru' });
    expect(lru.coldStarts).toBe(12);
  });

  it('with prefetching no request waits, and each model is held only from its pre-load to the end of its request', async () => {
    const r = await simulate({ ...base, policy: 'oracle', makePolicy: () => new OraclePolicy(textbookTrace, 1000, 100) });
    expect(r.coldStarts).toBe(0);
    expect(r.meanWaitS).toBe(0);
    // per request: the lead (load 1 s + two ticks, started within one tick) and the 1 s request,
    // then offloaded at the next tick; never less than load + request
    expect(r.residentGBs).toBeGreaterThanOrEqual(20 * (1 + 1));
    expect(r.residentGBs).toBeLessThanOrEqual(20 * (1.2 + 0.1 + 1 + 0.1) + 1e-9);
  });
});

describe('OraclePolicy', () => {
  const o = new OraclePolicy(
    [
      { at: 10, model: 'a' },
      { at: 30, model: 'a' },
      { at: 20, model: 'b' },
    ],
    5000,
    100,
  );
  const view = (id: string, resident: boolean): ModelView => ({ id, resident, inFlight: 0, idleSince: 0, lastArrival: null, rate: null, rateSamples: 0, rateWindowMs: 0, loadMs: null });

  it('knows each model’s next arrival', () => {
    expect(o.nextArrival('a', 0)).toBe(10_000);
    expect(o.nextArrival('a', 10_000)).toBe(10_000);
    expect(o.nextArrival('a', 10_001)).toBe(30_000);
    expect(o.nextArrival('a', 30_001)).toBe(Infinity);
    expect(o.nextArrival('nobody', 0)).toBe(Infinity);
  });

  it('pre-loads one lead (load + two ticks) before a request and offloads when the gap exceeds lead + tick', () => {
    expect(o.leadMs('a')).toBe(5200);
    expect(o.idleAction(view('a', false), 10_000 - 5201)).toBe('none');
    expect(o.idleAction(view('a', false), 10_000 - 5200)).toBe('preload');
    expect(o.idleAction(view('a', true), 30_000 - 5300)).toBe('none');
    expect(o.idleAction(view('a', true), 30_000 - 5301)).toBe('offload');
  });

  it('ranks by the next request: the one needed last is evicted first (Belady)', () => {
    expect(o.keepScore(view('a', true), 11_000)).toBeLessThan(o.keepScore(view('b', true), 11_000));
    expect(o.keepScore(view('a', true), 0)).toBeGreaterThan(o.keepScore(view('b', true), 0));
  });
});

describe('RateOraclePolicy', () => {
  it('a request evicts the idle model of lowest generated rate, and pre-loads use free room only', async () => {
    const schedule: RateSchedule = new Map([
      ['a', [{ from: 0, to: 1000, rate: 1 }]],
      ['b', [{ from: 0, to: 1000, rate: 0.5 }]],
      ['c', [{ from: 0, to: 1000, rate: 0.1 }]],
    ]);
    // room for two: a and b pre-loaded at once (positive rates); c's request must evict b, not a
    const trace: Arrival[] = [{ at: 10, model: 'c' }];
    const policy = new RateOraclePolicy(schedule);
    expect(policy.preloadEvictMargin).toBe(Infinity);
    const r = await simulate({ trace, models: ['a', 'b', 'c'], modelBytes: 1e9, budgetBytes: 2.05e9, loadS: 1, serviceS: 1, keepAliveS: 600, tickS: 0.1, policy: 'oracle', makePolicy: () => policy });
    expect(r.coldStarts).toBe(1);
    // after c's request b (rate 0.5 > c's 0.1) cannot push c out: no swap; loads: a, b, c
    expect(r.loads).toBe(3);
  });
});

describe('the skewed trace family', () => {
  it('Zipf rates (∝ 1/rank) summing to the total in each half, ranks re-drawn once; sizes 0.5–2 GB', () => {
    const models = Array.from({ length: 12 }, (_, i) => `m${i}`);
    const schedule: RateSchedule = new Map();
    const sizes = new Map<string, number>();
    const trace = makeSkewedTrace(models, 7200, 3, 6 / 60, schedule, sizes);
    const h = models.reduce((s, _, i) => s + 1 / (i + 1), 0);
    const shift = schedule.get('m0')![0].to;
    expect(shift).toBeGreaterThanOrEqual(1800);
    expect(shift).toBeLessThanOrEqual(5400);
    for (const t of [0, shift]) {
      const rates = models.map((m) => rateAt(schedule, m, t)).sort((a, b) => b - a);
      expect(rates.reduce((a, b) => a + b, 0)).toBeCloseTo(6 / 60, 12);
      rates.forEach((r, i) => expect(r).toBeCloseTo(6 / 60 / (i + 1) / h, 12));
    }
    for (const s of sizes.values()) {
      expect(s).toBeGreaterThanOrEqual(0.5e9);
      expect(s).toBeLessThanOrEqual(2e9);
    }
    // Poisson traffic at 6/min over 2 h is 720 requests give or take 4σ, plus the bursts (≤ 16 each)
    expect(trace.length).toBeGreaterThan(720 - 4 * Math.sqrt(720));
    expect(trace.every((a, i) => i === 0 || a.at >= trace[i - 1].at)).toBe(true);
  });
});
