/**
 * What tyche does where the seed is silent (README, "Where the seed is silent"): the prior that
 * fills a window of fewer than W intervals, the pre-load started one load time before t_load, the
 * reload guard at t_off, and the burst rule (requests that find the model busy join its busy
 * period). Each rule is checked against its closed form, and against the seed's rule when off.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/serve/clock.js';
import { TychePolicy, createPolicy, type ModelView } from '../../src/serve/policies.js';
import { ResidencyManager, type ModelLoader } from '../../src/serve/residency.js';
import { P_LOAD, P_OFF, TYCHE_WINDOW, tycheThresholds } from '../../src/serve/tyche.js';

const MIN = 60_000;
const lnLoad = -Math.log(1 - P_LOAD);
const lnOff = -Math.log(1 - P_OFF);

function view(over: Partial<ModelView>): ModelView {
  return { id: 'a', resident: false, inFlight: 0, idleSince: 0, lastArrival: 0, rate: null, rateSamples: 0, rateWindowMs: 0, loadMs: null, ...over };
}

/** Five intervals of `everyMs`: the seed's λ = 1/everyMs. */
const steady = (everyMs: number, over: Partial<ModelView> = {}) => view({ rate: 1 / everyMs, rateSamples: 5, rateWindowMs: 5 * everyMs, ...over });

describe('tyche: the prior for fewer than W intervals', () => {
  const ttl = 60_000;
  const p = new TychePolicy({ priorTtlMs: ttl });
  const tau0 = ttl / lnOff;

  it('with no interval λ is the prior λ₀, whose t_off is the keep-alive TTL', () => {
    expect(p.priorIntervalMs).toBeCloseTo(tau0, 9);
    expect(p.rate(view({}))).toBeCloseTo(1 / tau0, 12);
    expect(p.thresholds(view({})).tOff).toBeCloseTo(ttl, 6);
  });

  it('k < W intervals: the missing ones are τ₀, λ = W/(Σ + (W − k)·τ₀)', () => {
    // two arrivals 3 s apart: the bare estimate 1/3 s would offload after 8.4 s
    const v = view({ rate: 1 / 3000, rateSamples: 1, rateWindowMs: 3000 });
    const lambda = TYCHE_WINDOW / (3000 + 4 * tau0);
    expect(p.rate(v)).toBeCloseTo(lambda, 15);
    expect(p.thresholds(v).tOff).toBeCloseTo(lnOff / lambda, 6);
    expect(p.thresholds(v).tOff).toBeGreaterThan(40_000);
    const bare = new TychePolicy({ priorTtlMs: ttl, priorFill: false });
    expect(bare.thresholds(v).tOff).toBeCloseTo(lnOff * 3000, 6);
    expect(bare.thresholds(view({})).tLoad).toBeNull();
  });

  it('with W intervals it is exactly the seed’s k/Σ (λ = 0.5/min: t_load 7.4 s, t_off 5.6 min)', () => {
    const v = steady(2 * MIN);
    const { tLoad, tOff } = p.thresholds(v);
    const seed = tycheThresholds(0.5 / MIN);
    expect(tLoad).toBeCloseTo(seed.tLoad!, 9);
    expect(tOff).toBeCloseTo(seed.tOff, 9);
    expect(tLoad! / 1000).toBeCloseTo(7.4, 1);
  });
});

describe('tyche: the pre-load starts one load time before t_load', () => {
  const tLoad = tycheThresholds(0.5 / MIN).tLoad;
  it('an evicted model whose last load took 3 s is pre-loaded from idle t_load − 3 s', () => {
    const v = steady(2 * MIN, { loadMs: 3000 });
    const p = new TychePolicy();
    expect(p.idleAction(v, tLoad - 3000 - 1)).toBe('none');
    expect(p.idleAction(v, tLoad - 3000)).toBe('preload');
    // the seed's timing without the lead
    const seed = new TychePolicy({ loadLead: false });
    expect(seed.idleAction(v, tLoad - 1)).toBe('none');
    expect(seed.idleAction(v, tLoad)).toBe('preload');
  });

  it('a load longer than t_load starts at once; before any load there is no lead', () => {
    const p = new TychePolicy();
    expect(p.idleAction(steady(2 * MIN, { loadMs: 20_000 }), 0)).toBe('preload');
    expect(p.idleAction(steady(2 * MIN), tLoad - 1)).toBe('none');
  });

  it('the manager records how long each load took on its clock', async () => {
    const clock = new VirtualClock();
    const loader: ModelLoader<string> = {
      load: async (id) => {
        clock.advance(2500);
        return { handle: id, bytes: 10 };
      },
      unload: async () => undefined,
    };
    const mgr = new ResidencyManager({ clock, loader, policy: createPolicy('tyche'), budgetBytes: 100 });
    mgr.register('a', 10);
    expect(mgr.view('a').loadMs).toBeNull();
    const got = await mgr.acquire('a');
    expect(got.waitMs).toBe(2500);
    expect(mgr.view('a').loadMs).toBe(2500);
    got.release();
  });
});

describe('tyche: the reload guard at t_off', () => {
  // every 10 s: λ = 0.1/s, t_load = 0.62 s, t_off = 28.1 s; a reload of 2 s is longer than t_load
  const v = steady(10_000, { resident: true, loadMs: 2000 });
  const { tOff } = tycheThresholds(1 / 10_000);
  // kept while 2 s ≥ t_load at the idle-discounted rate 5/(50 s + idle): idle < 5·2 s/lnLoad − 50 s
  const release = (5 * 2000) / lnLoad - 50_000;

  it('keeps the model past t_off while its reload would outlast t_load, then offloads it', () => {
    const p = new TychePolicy();
    expect(release).toBeGreaterThan(tOff);
    expect(p.idleAction(v, tOff + 1)).toBe('none');
    expect(p.idleAction(v, release - 1)).toBe('none');
    expect(p.idleAction(v, release + 1)).toBe('offload');
  });

  it('without the guard (or with a quick reload) it offloads at t_off, as the seed says', () => {
    expect(new TychePolicy({ reloadGuard: false }).idleAction(v, tOff)).toBe('offload');
    expect(new TychePolicy().idleAction({ ...v, loadMs: 100 }, tOff - 1)).toBe('none');
    expect(new TychePolicy().idleAction({ ...v, loadMs: 100 }, tOff)).toBe('offload');
  });
});

describe('tyche: a burst joins the busy period it arrives in', () => {
  async function burst(mergeBursts: boolean) {
    const clock = new VirtualClock();
    const loader: ModelLoader<string> = { load: async (id) => ({ handle: id, bytes: 10 }), unload: async () => undefined };
    const mgr = new ResidencyManager({ clock, loader, policy: createPolicy('tyche', { mergeBursts }), budgetBytes: 100 });
    mgr.register('a', 10);
    // steady: one request every 2 min (λ = 0.5/min), each done before the next
    for (let i = 0; i < 6; i++) {
      if (i > 0) clock.advance(2 * MIN);
      (await mgr.acquire('a')).release();
    }
    clock.advance(2 * MIN);
    // a burst of 8 within 0.7 s, all in flight together
    const held = [];
    for (let i = 0; i < 8; i++) {
      if (i > 0) clock.advance(100);
      held.push(await mgr.acquire('a'));
    }
    held.forEach((h) => h.release());
    return mgr.view('a');
  }

  it('only the burst’s first request enters the rate window', async () => {
    const v = await burst(true);
    expect(v.rateSamples).toBe(5);
    expect(v.rateWindowMs).toBe(5 * 2 * MIN);
    expect(v.rate! * MIN).toBeCloseTo(0.5, 12);
  });

  it('counted one by one (the option off), the burst fills the window with 0.1 s intervals', async () => {
    const v = await burst(false);
    expect(v.rateWindowMs).toBe(5 * 100);
    expect(tycheThresholds(v.rate!).tOff).toBeLessThan(2000);
  });
});
