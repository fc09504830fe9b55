/**
 * The offline reference of the policy simulation: a policy that knows every future arrival of the
 * trace (no online policy can), run through the same `ResidencyManager`, budget, load time and tick
 * as the others, so the table shows how close each online policy comes to what foresight allows.
 *
 * Its rules (Belady's eviction, with prefetching):
 * - pre-load a model when its next request is due within one load time plus two ticks (the tick
 *   that notices it may come one tick late; the load takes exactly the load time);
 * - offload an idle model whose next request is further away than that lead plus a tick (reloading
 *   it just in time holds its bytes for the lead; keeping it holds them for the whole gap, longer);
 * - under the budget, keep the models whose next request comes soonest: the keep score is minus the
 *   time of the next request, so eviction takes the model needed last, and a pre-load only pushes
 *   out models needed after the one it loads (the manager's pre-load rule).
 *
 * It is a strong reference, not a proven optimum: optimal caching with load times (prefetching and
 * caching, Cao et al. 1995) can beat Belady-with-prefetch by loading some models earlier to leave
 * room later. Its wait is therefore an upper bound on the best achievable wait (the best is at most
 * this); its GB·s is nearly minimal for its hit rate because it holds a model only from one lead
 * before a request to the end of the request or of a short gap.
 */
import type { IdleAction, ModelView, ResidencyPolicy } from '../../src/serve/policies.js';
import { rateAt, type Arrival, type RateSchedule } from './trace.js';

export class OraclePolicy implements ResidencyPolicy {
  readonly name = 'oracle';
  readonly offloadWhenIdle = false;
  /** per model, its arrival times (ms), ascending */
  private readonly arrivals = new Map<string, number[]>();
  private readonly loadMsOf: (id: string) => number;

  constructor(
    trace: Arrival[],
    /** each model's load time (ms): one figure for all, or per model */
    loadMs: number | ((id: string) => number),
    readonly tickMs: number,
    /** false: load only on a request and never offload (Belady's MIN eviction alone, demand paging) */
    readonly prefetch = true,
  ) {
    if (!(tickMs > 0)) throw new RangeError(`the oracle needs a tick > 0 (ms), got ${tickMs}`);
    if (typeof loadMs === 'number' && !(loadMs >= 0)) throw new RangeError(`the oracle needs a load time ≥ 0 (ms), got ${loadMs}`);
    this.loadMsOf = typeof loadMs === 'number' ? () => loadMs : loadMs;
    for (const a of trace) {
      let list = this.arrivals.get(a.model);
      if (!list) this.arrivals.set(a.model, (list = []));
      list.push(a.at * 1000);
    }
    for (const list of this.arrivals.values()) list.sort((a, b) => a - b);
  }

  describe(): string {
    return this.prefetch ? 'oracle (future arrivals known: Belady with prefetching)' : 'oracle (future arrivals known: Belady MIN, loads on request only)';
  }

  /** how long before a request of `id` its pre-load starts (ms): its load time plus two ticks */
  leadMs(id: string): number {
    return this.loadMsOf(id) + 2 * this.tickMs;
  }

  /** time of the model's first arrival at or after `now` (ms), Infinity when none is left */
  nextArrival(id: string, now: number): number {
    const list = this.arrivals.get(id);
    if (!list) return Infinity;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] < now) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length ? list[lo] : Infinity;
  }

  idleAction(m: ModelView, now: number): IdleAction {
    if (!this.prefetch) return 'none';
    const gap = this.nextArrival(m.id, now) - now;
    const lead = this.leadMs(m.id);
    if (!m.resident) return gap <= lead ? 'preload' : 'none';
    return gap > lead + this.tickMs ? 'offload' : 'none';
  }

  keepScore(m: ModelView, now: number): number {
    return -this.nextArrival(m.id, now);
  }
}

/**
 * The second reference: a policy that knows each model's generated Poisson rate at every moment
 * (the trace's rate schedule), but not the arrival times and not the bursts. It keeps resident the
 * models with the highest rate now (the optimal choice for independent Poisson requests with known
 * rates, A0 of the paging literature): a request evicts the idle model of lowest rate; a model with
 * a positive rate is pre-loaded into free room (never by evicting another: swapping on the true
 * rates measured worse, as it does for tyche); it never offloads on its own. It shows what a policy that
 * predicts rates perfectly, as Tyche tries to, could reach on a trace; what it misses is what rates
 * cannot foresee (bursts, the first request after a lull, more busy models than the budget holds).
 */
export class RateOraclePolicy implements ResidencyPolicy {
  readonly name = 'rate oracle';
  readonly offloadWhenIdle = false;
  /** pre-loads use free room only: measured better than swapping, even with the true rates */
  readonly preloadEvictMargin = Infinity;

  constructor(
    private readonly schedule: RateSchedule,
    /** pre-load a model with a positive rate when room can be made (false: load on requests only) */
    readonly prefetch = true,
  ) {}

  describe(): string {
    return 'rate oracle (generated rates known)';
  }

  idleAction(m: ModelView, now: number): IdleAction {
    return this.prefetch && !m.resident && rateAt(this.schedule, m.id, now / 1000) > 0 ? 'preload' : 'none';
  }

  keepScore(m: ModelView, now: number): number {
    return rateAt(this.schedule, m.id, now / 1000);
  }
}
