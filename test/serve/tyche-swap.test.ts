/**
 * Pre-loads under the budget (where the seed is silent): whether a pre-load may evict an idle
 * resident model (a proactive swap) is the policy's `preloadEvictMargin`: the pre-loaded model's
 * keep score must be at least that factor times the victim's. Tyche's default is Infinity (a
 * pre-load uses free room only; bench:serve measured swaps costing more cold starts than they
 * save); `swapMargin` sets it. And tyche's optional idle cap: t_off = min(−ln(1 − P_off)/λ, cap).
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/serve/clock.js';
import { TychePolicy, type IdleAction, type ModelView, type ResidencyPolicy } from '../../src/serve/policies.js';
import { ResidencyManager } from '../../src/serve/residency.js';
import { FakeLoader } from './fake-loader.js';
import { P_OFF, TYCHE_WINDOW, tycheThresholds } from '../../src/serve/tyche.js';

const MIN = 60_000;
const flush = () => new Promise((r) => setImmediate(r));

/** A scripted policy: fixed keep scores, and 'preload' for the models in `wanted`. */
class ScriptedPolicy implements ResidencyPolicy {
  readonly name = 'scripted';
  readonly offloadWhenIdle = false;
  wanted = new Set<string>();
  constructor(
    readonly scores: Map<string, number>,
    readonly preloadEvictMargin?: number,
  ) {}
  describe() {
    return 'scripted';
  }
  idleAction(m: ModelView): IdleAction {
    return !m.resident && this.wanted.has(m.id) ? 'preload' : 'none';
  }
  keepScore(m: ModelView): number {
    return this.scores.get(m.id) ?? 0;
  }
}

/** Budget for one model; `a` resident and idle; returns a manager whose tick may pre-load `b`. */
async function oneSlot(scoreA: number, scoreB: number, margin?: number) {
  const clock = new VirtualClock();
  const loader = new FakeLoader();
  const policy = new ScriptedPolicy(new Map([['a', scoreA], ['b', scoreB]]), margin);
  const mgr = new ResidencyManager({ clock, loader, policy, budgetBytes: 150 });
  mgr.register('a', 100);
  mgr.register('b', 100);
  (await mgr.acquire('a')).release();
  policy.wanted.add('b');
  /** tick until the pre-load has run its course (eviction, then the load on the next tick) */
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      clock.advance(100);
      await mgr.tick();
      await flush();
    }
  };
  return { mgr, loader, settle, policy };
}

describe('the manager: may a pre-load evict an idle model?', () => {
  it('margin 1 (a policy that sets none): whenever the pre-loaded model ranks above the victim', async () => {
    const { mgr, loader, settle } = await oneSlot(1, 1.01);
    await settle();
    expect(mgr.stats('a').status).toBe('offloaded');
    expect(mgr.stats('b').status).toBe('resident');
    expect(loader.log).toEqual(['load a', 'unload a', 'load b']);
  });

  it('never when the pre-loaded model ranks at or below the victim', async () => {
    const { mgr, settle } = await oneSlot(1, 1);
    await settle();
    expect(mgr.stats('a').status).toBe('resident');
    expect(mgr.stats('b').status).toBe('offloaded');
  });

  it('margin 2: only when its score is at least twice the victim’s', async () => {
    const below = await oneSlot(1, 1.99, 2);
    await below.settle();
    expect(below.mgr.stats('b').status).toBe('offloaded');
    const at = await oneSlot(1, 2, 2);
    await at.settle();
    expect(at.mgr.stats('a').status).toBe('offloaded');
    expect(at.mgr.stats('b').status).toBe('resident');
  });

  it('margin Infinity: never, however far apart; the pre-load waits for free room', async () => {
    const { mgr, loader, settle } = await oneSlot(1, 1e12, Infinity);
    await settle();
    expect(mgr.stats('a').status).toBe('resident');
    expect(mgr.stats('b').status).toBe('offloaded');
    // room appears when a request for b evicts a (requests always may); after it, a pre-load of a
    // into the now full budget still evicts nothing
    (await mgr.acquire('b')).release();
    expect(loader.log).toEqual(['load a', 'unload a', 'load b']);
  });

  it('never evicts a model serving a request, whatever the margin', async () => {
    const { mgr, settle } = await oneSlot(1, 1e12, 1);
    const held = await mgr.acquire('a');
    await settle();
    expect(mgr.stats('a').status).toBe('resident');
    expect(mgr.stats('b').status).toBe('offloaded');
    held.release();
  });
});

describe('tyche: pre-loads use free room only unless swapMargin says otherwise', () => {
  // a: 6 requests 2 min apart (λ = 0.5/min, t_load 7.4 s); b: one request and a prior TTL of
  // 1 h, so b's keep score is the prior's one interval, 1/(τ₀ + idle) with τ₀ = 1 h/−ln(1 − P_off) (≈ 0.047/min),
  // about a tenth of a's. Budget for one model: b's request evicts a; when a's idle time reaches
  // t_load it is pre-loaded only if it may evict b.
  async function scenario(opts: { swapMargin?: number }) {
    const clock = new VirtualClock();
    const loader = new FakeLoader();
    const policy = new TychePolicy({ priorTtlMs: 60 * MIN, ...opts });
    const mgr = new ResidencyManager({ clock, loader, policy, budgetBytes: 150 });
    mgr.register('a', 100);
    mgr.register('b', 100);
    for (let i = 0; i < 6; i++) {
      if (i > 0) clock.advance(2 * MIN);
      (await mgr.acquire('a')).release();
    }
    (await mgr.acquire('b')).release();
    expect(mgr.stats('a').status).toBe('offloaded');
    const tLoad = tycheThresholds(0.5 / MIN).tLoad;
    clock.advance(tLoad);
    // the scores the manager compares, in closed form
    const tau0 = (60 * MIN) / -Math.log(1 - P_OFF);
    const scoreA = TYCHE_WINDOW / (10 * MIN + tLoad);
    const scoreB = 1 / (tau0 + tLoad);
    expect(policy.keepScore(mgr.view('a'), clock.now())).toBeCloseTo(scoreA, 15);
    expect(policy.keepScore(mgr.view('b'), clock.now())).toBeCloseTo(scoreB, 15);
    for (let i = 0; i < 3; i++) {
      await mgr.tick();
      await flush();
    }
    return { mgr, ratio: scoreA / scoreB };
  }

  it('by default a stays offloaded: the pre-load does not push out b', async () => {
    const { mgr, ratio } = await scenario({});
    expect(ratio).toBeGreaterThan(10);
    expect(mgr.stats('a').status).toBe('offloaded');
    expect(mgr.stats('b').status).toBe('resident');
  });

  it('swapMargin 1 (and any margin below the score ratio) swaps a in for b; a larger margin does not', async () => {
    const { ratio } = await scenario({});
    for (const margin of [1, ratio * 0.99]) {
      const { mgr } = await scenario({ swapMargin: margin });
      expect(mgr.stats('a').status).toBe('resident');
      expect(mgr.stats('b').status).toBe('offloaded');
    }
    const { mgr } = await scenario({ swapMargin: ratio * 1.01 });
    expect(mgr.stats('a').status).toBe('offloaded');
  });

  it('refuses a margin below 1', () => {
    expect(() => new TychePolicy({ swapMargin: 0.5 })).toThrow(/swap margin must be a number ≥ 1/);
    expect(new TychePolicy().preloadEvictMargin).toBe(Infinity);
    expect(new TychePolicy().describe()).toMatch(/pre-loads never evict/);
    expect(new TychePolicy({ swapMargin: 2 }).describe()).toMatch(/swap margin 2/);
  });
});

describe('tyche: the optional idle cap on t_off', () => {
  const view = (everyMs: number): ModelView => ({ id: 'a', resident: true, inFlight: 0, idleSince: 0, lastArrival: 0, rate: 1 / everyMs, rateSamples: 5, rateWindowMs: 5 * everyMs, loadMs: null });

  it('t_off = min(−ln(1 − P_off)/λ, cap): a rare model goes at the cap, a busy one at its own t_off', () => {
    const cap = 10 * MIN;
    const p = new TychePolicy({ maxIdleMs: cap });
    const rare = view(20 * MIN); // λ = 0.05/min: the seed's t_off is 56 min
    expect(tycheThresholds(1 / (20 * MIN)).tOff / MIN).toBeCloseTo(56.3, 1);
    expect(p.idleAction(rare, cap - 1)).toBe('none');
    expect(p.idleAction(rare, cap)).toBe('offload');
    const busy = view(2 * MIN); // λ = 0.5/min: t_off 5.6 min, below the cap
    const tOff = tycheThresholds(1 / (2 * MIN)).tOff;
    expect(p.idleAction(busy, tOff - 1)).toBe('none');
    expect(p.idleAction(busy, tOff)).toBe('offload');
  });

  it('without it the seed’s t_off alone; a bad cap is refused', () => {
    const rare = view(20 * MIN);
    const tOff = tycheThresholds(1 / (20 * MIN)).tOff;
    expect(new TychePolicy().idleAction(rare, tOff - 1)).toBe('none');
    expect(new TychePolicy().idleAction(rare, tOff)).toBe('offload');
    expect(() => new TychePolicy({ maxIdleMs: 0 })).toThrow(/idle cap must be a positive/);
  });
});

describe('tyche: warm start (a model not yet requested is idle since it was registered)', () => {
  async function fresh(opts: { warmStart?: boolean }) {
    const clock = new VirtualClock();
    const loader = new FakeLoader();
    const ttl = 60_000;
    const mgr = new ResidencyManager({ clock, loader, policy: new TychePolicy({ priorTtlMs: ttl, ...opts }), budgetBytes: 150 });
    clock.advance(5000); // registered at 5 s
    mgr.register('a', 100);
    mgr.register('b', 100);
    // the prior λ₀ = −ln(1 − P_off)/TTL: t_load(λ₀) = TTL·ln(1 − P_load)/ln(1 − P_off), t_off(λ₀) = TTL
    const tLoad = (ttl * Math.log(1 - 0.06)) / Math.log(1 - P_OFF);
    const step = async (toIdleMs: number) => {
      clock.set(5000 + toIdleMs);
      await mgr.tick();
      await flush();
    };
    return { mgr, loader, tLoad, ttl, step };
  }

  it('pre-loaded into free room at t_load(λ₀) after registration, offloaded at the TTL; the second finds no room', async () => {
    const { mgr, loader, tLoad, ttl, step } = await fresh({ warmStart: true });
    expect(tLoad / 1000).toBeCloseTo(1.32, 2);
    await step(tLoad - 1);
    expect(mgr.stats('a').status).toBe('offloaded');
    await step(tLoad);
    // room for one: a is pre-loaded; b's pre-load finds no free room and evicts nothing
    expect(loader.log).toEqual(['load a']);
    await step(ttl - 1);
    expect(mgr.stats('a').status).toBe('resident');
    await step(ttl + 1); // t_off(λ₀) is the TTL up to rounding
    expect(loader.log.slice(0, 2)).toEqual(['load a', 'unload a']);
  });

  it('off (the default): nothing is loaded before its first request', async () => {
    const { loader, ttl, step } = await fresh({});
    await step(ttl / 2);
    expect(loader.log).toEqual([]);
  });
});
