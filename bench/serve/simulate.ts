/**
 * The residency policies on a virtual clock: the real `ResidencyManager` and policies, with loads
 * that take a fixed time and requests that hold their model for a fixed service time. No CPU
 * contention and no time compression: the trace can use per-minute rates, as the seed does, and
 * the result is deterministic (the same seed gives the same table on any machine).
 */
import { VirtualClock } from '../../src/serve/clock.js';
import { createPolicy, type PolicyName, type ResidencyPolicy, type TycheOptions } from '../../src/serve/policies.js';
import { ResidencyManager, type ModelLoader } from '../../src/serve/residency.js';
import type { Arrival } from './trace.js';

export interface SimulationOptions {
  policy: PolicyName | 'oracle';
  /** seconds; arrivals in seconds */
  trace: Arrival[];
  models: string[];
  modelBytes: number;
  budgetBytes: number;
  loadS: number;
  serviceS: number;
  keepAliveS: number;
  /** policy tick (s) */
  tickS?: number;
  /** tyche's options (the load-time lead and the rest; defaults as served) */
  tyche?: TycheOptions;
  /** a policy that is not one of the served ones (the oracle); `policy` then only labels the result */
  makePolicy?: () => ResidencyPolicy;
  /** bytes per model when they differ (default `modelBytes` for every model) */
  bytesOf?: (model: string) => number;
  /** load time per model when they differ (default `loadS` for every model) */
  loadSOf?: (model: string) => number;
}

export interface SimulationResult {
  policy: string;
  requests: number;
  coldStarts: number;
  meanWaitS: number;
  p50WaitS: number;
  p99WaitS: number;
  waitShare: number;
  loads: number;
  residentGBs: number;
  /**
   * Why each cold start happened, from the model's state when the request arrived: never loaded
   * before, offloaded by the policy, evicted for another model under the budget, or a load
   * (a pre-load or another request's) already under way, or an unload still running.
   */
  coldCauses: Record<ColdCause, number>;
}

export type ColdCause = 'first' | 'offloaded' | 'evicted' | 'loading' | 'unloading';

/** Virtual timers: promises resolved when the clock passes their due time. */
class Timers {
  private pending: Array<{ at: number; resolve: () => void }> = [];
  constructor(private readonly clock: VirtualClock) {}
  after(ms: number): Promise<void> {
    return new Promise((resolve) => this.pending.push({ at: this.clock.now() + ms, resolve }));
  }
  next(): number {
    return this.pending.reduce((m, t) => Math.min(m, t.at), Infinity);
  }
  fire(): void {
    const now = this.clock.now();
    const due = this.pending.filter((t) => t.at <= now);
    this.pending = this.pending.filter((t) => t.at > now);
    for (const t of due) t.resolve();
  }
}

const settle = () => new Promise((r) => setImmediate(r));

export async function simulate(o: SimulationOptions): Promise<SimulationResult> {
  const clock = new VirtualClock();
  const timers = new Timers(clock);
  const loader: ModelLoader<string> = {
    load: async (id) => {
      await timers.after((o.loadSOf?.(id) ?? o.loadS) * 1000);
      return { handle: id, bytes: o.bytesOf?.(id) ?? o.modelBytes };
    },
    unload: async () => undefined,
  };
  const lastUnload = new Map<string, 'offloaded' | 'evicted'>();
  const coldCauses: Record<ColdCause, number> = { first: 0, offloaded: 0, evicted: 0, loading: 0, unloading: 0 };
  const mgr = new ResidencyManager({
    clock,
    loader,
    budgetBytes: o.budgetBytes,
    policy: o.makePolicy?.() ?? createPolicy(o.policy as PolicyName, { keepAliveMs: o.keepAliveS * 1000, ...(o.tyche ?? {}) }),
    events: { onUnload: (e) => lastUnload.set(e.id, e.reason === 'evicted' ? 'evicted' : 'offloaded') },
  });
  for (const m of o.models) mgr.register(m, o.bytesOf?.(m) ?? o.modelBytes);
  const waits: number[] = [];
  const totals: number[] = [];
  let cold = 0;
  const inflight: Promise<void>[] = [];
  const tickMs = (o.tickS ?? 0.1) * 1000;
  const end = (o.trace.at(-1)?.at ?? 0) * 1000 + 60_000;
  let nextTick = 0;
  let i = 0;
  while (clock.now() < end || inflight.length > 0) {
    const nextArrival = i < o.trace.length ? o.trace[i].at * 1000 : Infinity;
    const t = Math.min(nextArrival, timers.next(), nextTick);
    if (!Number.isFinite(t)) break;
    clock.set(Math.max(clock.now(), t));
    timers.fire();
    await settle();
    while (i < o.trace.length && o.trace[i].at * 1000 <= clock.now()) {
      const a = o.trace[i++];
      const arrived = clock.now();
      const status = mgr.stats(a.model).status;
      if (status === 'loading' || status === 'unloading') coldCauses[status]++;
      else if (status === 'offloaded') coldCauses[lastUnload.get(a.model) ?? 'first']++;
      const p = (async () => {
        const got = await mgr.acquire(a.model);
        if (got.cold) cold++;
        waits.push(got.waitMs / 1000);
        await timers.after(o.serviceS * 1000);
        got.release();
        totals.push((clock.now() - arrived) / 1000);
      })();
      inflight.push(p);
      void p.then(() => inflight.splice(inflight.indexOf(p), 1));
    }
    await settle();
    if (clock.now() >= nextTick) {
      // not awaited: a pre-load started by the tick completes only as virtual time advances
      void mgr.tick();
      nextTick = clock.now() + tickMs;
    }
    await settle();
    if (clock.now() >= end && inflight.length === 0) break;
  }
  // resident GB·s up to the last request's end + 60 s (the same window for every policy)
  const stats = mgr.allStats();
  const sorted = [...waits].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
  return {
    policy: o.policy,
    requests: waits.length,
    coldStarts: cold,
    meanWaitS: waits.reduce((a, b) => a + b, 0) / waits.length,
    p50WaitS: q(0.5),
    p99WaitS: q(0.99),
    waitShare: waits.reduce((a, b) => a + b, 0) / totals.reduce((a, b) => a + b, 0),
    loads: stats.reduce((s, m) => s + m.loads, 0),
    residentGBs: stats.reduce((s, m) => s + m.residentByteSeconds, 0) / 1e9,
    coldCauses,
  };
}
