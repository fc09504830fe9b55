/**
 * Tyche's eviction ranking with fewer than W intervals (where the seed is silent): the prior
 * lends one interval of τ₀, (k + 1)/(Σ + τ₀ + idle), not the W − k missing ones. The scenario is
 * the one that made tyche lose cold starts to LRU in the loopback replay of bench:serve: a
 * keep-alive TTL of 10 s (τ₀ = 3.6 s), a model requested once 18 s ago and one requested four
 * times in the last 30 s, a third model's request needing room. Ranked by the filled window the
 * once-requested model scored above the busy one, and the busy one was evicted.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/serve/clock.js';
import { TychePolicy, type ModelView } from '../../src/serve/policies.js';
import { ResidencyManager } from '../../src/serve/residency.js';
import { FakeLoader } from './fake-loader.js';
import { P_OFF, TYCHE_WINDOW } from '../../src/serve/tyche.js';

const TTL = 10_000;
const tau0 = TTL / -Math.log(1 - P_OFF);

function view(over: Partial<ModelView>): ModelView {
  return { id: 'x', resident: true, inFlight: 0, idleSince: 0, lastArrival: 0, rate: null, rateSamples: 0, rateWindowMs: 0, loadMs: null, ...over };
}

/** a: requests at 0, 19, 25, 29 s; b: one request at `bAt` s; c arrives at 30 s, room for two. */
async function replayScenario(policy: TychePolicy, bAt = 12) {
  const clock = new VirtualClock();
  const loader = new FakeLoader();
  const mgr = new ResidencyManager({ clock, loader, policy, budgetBytes: 204 });
  for (const id of ['a', 'b', 'c']) mgr.register(id, 100);
  const at = async (s: number, id: string) => {
    clock.set(s * 1000);
    (await mgr.acquire(id)).release();
  };
  const arrivals: Array<[number, string]> = [[0, 'a'], [bAt, 'b'], [19, 'a'], [25, 'a'], [29, 'a']];
  for (const [s, id] of arrivals.sort((x, y) => x[0] - y[0])) await at(s, id);
  clock.set(30_000);
  const scores = { a: policy.keepScore(mgr.view('a'), clock.now()), b: policy.keepScore(mgr.view('b'), clock.now()) };
  (await mgr.acquire('c')).release();
  return { mgr, loader, scores };
}

describe('tyche: eviction ranking of a model with fewer than W intervals', () => {
  it('the prior counts as one interval: (k + 1)/(Σ + τ₀ + idle); with W intervals the seed’s k/(Σ + idle)', () => {
    const p = new TychePolicy({ priorTtlMs: TTL });
    expect(p.priorIntervalMs).toBeCloseTo(tau0, 9);
    // one arrival (no interval), idle 18 s
    expect(p.keepScore(view({ idleSince: 0 }), 18_000)).toBeCloseTo(1 / (tau0 + 18_000), 15);
    // three intervals summing to 29 s, idle 1 s
    expect(p.keepScore(view({ rateSamples: 3, rateWindowMs: 29_000, idleSince: 0 }), 1000)).toBeCloseTo(4 / (29_000 + tau0 + 1000), 15);
    // a full window is untouched by the prior
    expect(p.keepScore(view({ rateSamples: 5, rateWindowMs: 50_000, idleSince: 0 }), 2000)).toBeCloseTo(5 / 52_000, 15);
    // the previous ranking, kept as an option, fills the window
    const filled = new TychePolicy({ priorTtlMs: TTL, rankWithFilledWindow: true });
    expect(filled.keepScore(view({ idleSince: 0 }), 18_000)).toBeCloseTo(TYCHE_WINDOW / (TYCHE_WINDOW * tau0 + 18_000), 15);
    expect(filled.describe()).toMatch(/ranked by the filled window/);
    // the thresholds still use the filled window
    expect(p.rate(view({}))).toBeCloseTo(1 / tau0, 15);
    expect(p.thresholds(view({})).tOff).toBeCloseTo(TTL, 6);
  });

  it('a request that needs room evicts the once-requested model, not the one requested four times in 30 s', async () => {
    const { mgr, loader, scores } = await replayScenario(new TychePolicy({ priorTtlMs: TTL }));
    // a: 3 intervals (19, 6, 4 s) and idle 1 s; b: none, idle 18 s
    expect(scores.a).toBeCloseTo(4 / (29_000 + tau0 + 1000), 15);
    expect(scores.b).toBeCloseTo(1 / (tau0 + 18_000), 15);
    expect(loader.log.at(-2)).toBe('unload b');
    expect(mgr.stats('a').status).toBe('resident');
    expect(mgr.stats('b').status).toBe('offloaded');
    expect(mgr.stats('c').status).toBe('resident');
  });

  it('ranked by the filled window (the rule before) the busy model was evicted', async () => {
    const { mgr, scores } = await replayScenario(new TychePolicy({ priorTtlMs: TTL, rankWithFilledWindow: true }));
    expect(scores.b).toBeGreaterThan(scores.a);
    expect(mgr.stats('a').status).toBe('offloaded');
    expect(mgr.stats('b').status).toBe('resident');
  });

  it('a model requested once just now still ranks above one whose window is old', async () => {
    // b requested at 29.5 s (idle 0.5 s): 1/(τ₀ + 0.5 s) = 0.25/s against a's 0.12/s; the prior
    // still speaks for a model the evidence says nothing against yet
    const { mgr } = await replayScenario(new TychePolicy({ priorTtlMs: TTL }), 29.5);
    expect(mgr.stats('b').status).toBe('resident');
    expect(mgr.stats('a').status).toBe('offloaded');
  });
});
