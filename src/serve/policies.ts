/**
 * Residency policies: when an idle model is pre-loaded or offloaded, and which resident model is
 * evicted first when the memory budget is short. All times are milliseconds on the residency
 * manager's clock (real or virtual), so every policy is testable deterministically.
 *
 * - tyche: the seed's rule (tyche.ts): resident from idle time t_load, offloaded at t_off; plus
 *   what it does where the seed is silent (TycheOptions: prior filling, burst merging, load lead,
 *   reload guard, pre-loads into free room only; each can be switched off, and bench:serve
 *   compares with them all off), and optional rules off by default (swaps with a margin, a cap on
 *   t_off, warm start), each a row of bench:serve's simulation.
 * - keep-alive: offloaded after a fixed TTL of idleness (the usual serverless keep-alive).
 * - on-demand: loaded when a request needs it, offloaded as soon as no request is in flight.
 * - lru: never offloaded on its own; the least recently used model is evicted under pressure.
 */
import { P_LOAD, P_OFF, TYCHE_WINDOW, idleTimeForProbability } from './tyche.js';

export type PolicyName = 'tyche' | 'keep-alive' | 'on-demand' | 'lru';
export const POLICY_NAMES: readonly PolicyName[] = ['tyche', 'keep-alive', 'on-demand', 'lru'];

/** What a policy sees of one model. */
export interface ModelView {
  id: string;
  resident: boolean;
  /** requests being served (or waiting for this model's load) */
  inFlight: number;
  /** when the model last became idle (inFlight dropped to 0); null before its first request */
  idleSince: number | null;
  /** when the last request arrived; null before the first */
  lastArrival: number | null;
  /** λ in requests per ms from the sliding window, null before the second arrival */
  rate: number | null;
  /** inter-arrival times in the window */
  rateSamples: number;
  /** sum of the windowed inter-arrival times (ms) */
  rateWindowMs: number;
  /** how long the model's last load took (ms); null before its first load */
  loadMs: number | null;
  /** when the model was registered (served from); absent in views built by hand */
  registeredAt?: number;
}

export type IdleAction = 'preload' | 'offload' | 'none';

export interface ResidencyPolicy {
  /** one of POLICY_NAMES for the served policies; benchmarks add their own (the oracle) */
  readonly name: string;
  /** Decision for an idle model (inFlight 0) at time `now`, evaluated on every tick. */
  idleAction(m: ModelView, now: number): IdleAction;
  /** Higher = more worth keeping. Eviction takes the lowest first; ties go to the older idleSince. */
  keepScore(m: ModelView, now: number): number;
  /** Unload as soon as the last in-flight request ends (on-demand). */
  readonly offloadWhenIdle: boolean;
  /**
   * Record an arrival in the rate window only when the model has no request in flight: the
   * requests of a burst join the busy period that the first one opened (tyche's burst rule).
   */
  readonly mergeBusyArrivals?: boolean;
  /** inter-arrival times in the rate window (default W = TYCHE_WINDOW) */
  readonly rateWindow?: number;
  /**
   * A pre-load may evict an idle model only when the pre-loaded model's keepScore is at least this
   * factor times the victim's (default 1: whenever it ranks above; Infinity: free room only).
   */
  readonly preloadEvictMargin?: number;
  /** the policy and its parameters in one line (the CLI prints it at startup) */
  describe(): string;
}

export const DEFAULT_KEEP_ALIVE_MS = 60_000;

const fmtSeconds = (ms: number) => `${+(ms / 1000).toPrecision(6)} s`;
const idleFor = (m: ModelView, now: number) => (m.idleSince === null ? 0 : Math.max(0, now - m.idleSince));
const lastUse = (m: ModelView) => m.idleSince ?? m.lastArrival ?? -Infinity;

export class KeepAlivePolicy implements ResidencyPolicy {
  readonly name = 'keep-alive' as const;
  readonly offloadWhenIdle = false;
  constructor(readonly ttlMs = DEFAULT_KEEP_ALIVE_MS) {
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw new RangeError(`the keep-alive TTL must be a positive number of ms, got ${ttlMs}`);
  }
  describe(): string {
    return `keep-alive (TTL ${fmtSeconds(this.ttlMs)})`;
  }
  idleAction(m: ModelView, now: number): IdleAction {
    return m.resident && m.idleSince !== null && idleFor(m, now) >= this.ttlMs ? 'offload' : 'none';
  }
  keepScore(m: ModelView): number {
    return lastUse(m);
  }
}

export class OnDemandPolicy implements ResidencyPolicy {
  readonly name = 'on-demand' as const;
  readonly offloadWhenIdle = true;
  describe(): string {
    return 'on-demand';
  }
  idleAction(m: ModelView): IdleAction {
    return m.resident ? 'offload' : 'none';
  }
  keepScore(m: ModelView): number {
    return lastUse(m);
  }
}

export class LruPolicy implements ResidencyPolicy {
  readonly name = 'lru' as const;
  readonly offloadWhenIdle = false;
  describe(): string {
    return 'lru';
  }
  idleAction(): IdleAction {
    return 'none';
  }
  keepScore(m: ModelView): number {
    return lastUse(m);
  }
}

export interface TycheOptions {
  /** inter-arrival times in the sliding window, W (default 5) */
  window?: number;
  /** pre-load when P(a request within the idle time) reaches this (default 0.06) */
  pLoad?: number;
  /** offload when it reaches this (default 0.94); must exceed pLoad */
  pOff?: number;
  /**
   * The prior for a model with fewer than W inter-arrival times: the rate λ₀ = −ln(1 − P_off)/TTL
   * whose t_off equals this TTL (keep-alive's), i.e. a prior mean interval τ₀ = 1/λ₀.
   */
  priorTtlMs?: number;
  /**
   * Fewer than W intervals: fill the window's missing intervals with τ₀, so λ = W/(Σ + (W − k)·τ₀)
   * (true, the default), instead of the bare k/Σ over the intervals seen (false; unknown with none).
   */
  priorFill?: boolean;
  /** Start a pre-load the model's last measured load time before t_load, so it is resident at t_load (default true). */
  loadLead?: boolean;
  /**
   * At t_off, keep a model whose reload would take at least its current t_load (its own rule would
   * have to start pre-loading it again at once), judged with the idle-discounted rate so that a
   * model that stopped being requested is still offloaded (default true).
   */
  reloadGuard?: boolean;
  /** Count only arrivals that find the model without a request in flight (default true). */
  mergeBursts?: boolean;
  /**
   * A pre-load evicts an idle resident model only when the pre-loaded model's keep score is at
   * least `swapMargin` times the victim's (a proactive swap). Default Infinity: a pre-load uses
   * free room only and never evicts (bench:serve measured swaps costing more cold starts than they
   * save: a swap spends a load time of the budget on a guess and pushes out a model that may be
   * requested next). 1 swaps whenever the pre-loaded model ranks above the victim.
   */
  swapMargin?: number;
  /**
   * Where the seed is silent on memory cost: t_off never exceeds this idle time (ms), however low
   * λ is (the seed's t_off = 2.8/λ keeps a model requested every 10 min for half an hour).
   * Default: no cap, the seed's t_off alone.
   */
  maxIdleMs?: number;
  /**
   * A model never requested yet is idle since it was registered, at the prior's rate λ₀: it is
   * pre-loaded into free room at t_load(λ₀) and offloaded at t_off(λ₀) = the keep-alive TTL, as
   * the seed's rule does for any model (default false: a model is first loaded by its first request).
   */
  warmStart?: boolean;
  /**
   * Rank models for eviction by the prior-filled window W/(Σ + (W − k)·τ₀ + idle), as the
   * thresholds use it, instead of lending the prior one interval, (k + 1)/(Σ + τ₀ + idle) (see
   * keepScore). Default false; true is the ranking before the loopback replay showed it evicting
   * busy models for once-requested ones, kept as a row of bench:serve's simulation.
   */
  rankWithFilledWindow?: boolean;
}

export class TychePolicy implements ResidencyPolicy {
  readonly name = 'tyche' as const;
  readonly offloadWhenIdle = false;
  readonly rateWindow: number;
  readonly pLoad: number;
  readonly pOff: number;
  readonly priorTtlMs: number;
  readonly priorFill: boolean;
  readonly loadLead: boolean;
  readonly reloadGuard: boolean;
  readonly mergeBusyArrivals: boolean;
  readonly preloadEvictMargin: number;
  readonly maxIdleMs: number;
  readonly warmStart: boolean;
  readonly rankWithFilledWindow: boolean;

  constructor(opts: TycheOptions = {}) {
    this.rateWindow = opts.window ?? TYCHE_WINDOW;
    this.pLoad = opts.pLoad ?? P_LOAD;
    this.pOff = opts.pOff ?? P_OFF;
    this.priorTtlMs = opts.priorTtlMs ?? DEFAULT_KEEP_ALIVE_MS;
    if (!Number.isInteger(this.rateWindow) || this.rateWindow < 1) throw new RangeError(`the Tyche window W must be a positive integer, got ${this.rateWindow}`);
    for (const [name, p] of [['P_load', this.pLoad], ['P_off', this.pOff]] as const) {
      if (!(p > 0 && p < 1)) throw new RangeError(`${name} must be a probability strictly between 0 and 1, got ${p}`);
    }
    if (!(this.pLoad < this.pOff)) throw new RangeError(`P_load (${this.pLoad}) must be below P_off (${this.pOff}): a model would be offloaded before it is pre-loaded`);
    if (!(this.priorTtlMs > 0) || !Number.isFinite(this.priorTtlMs)) throw new RangeError(`the prior TTL must be a positive number of ms, got ${this.priorTtlMs}`);
    this.priorFill = opts.priorFill ?? true;
    this.loadLead = opts.loadLead ?? true;
    this.reloadGuard = opts.reloadGuard ?? true;
    this.mergeBusyArrivals = opts.mergeBursts ?? true;
    this.preloadEvictMargin = opts.swapMargin ?? Infinity;
    if (!(this.preloadEvictMargin >= 1)) throw new RangeError(`the swap margin must be a number ≥ 1 (Infinity: pre-loads never evict), got ${opts.swapMargin}`);
    this.maxIdleMs = opts.maxIdleMs ?? Infinity;
    this.warmStart = opts.warmStart ?? false;
    this.rankWithFilledWindow = opts.rankWithFilledWindow ?? false;
    if (!(this.maxIdleMs > 0)) throw new RangeError(`the idle cap must be a positive number of ms, got ${opts.maxIdleMs}`);
  }

  describe(): string {
    const off = [
      ['prior fill', this.priorFill],
      ['load lead', this.loadLead],
      ['reload guard', this.reloadGuard],
      ['burst merging', this.mergeBusyArrivals],
    ]
      .filter(([, on]) => !on)
      .map(([name]) => name);
    const swap = this.preloadEvictMargin === Infinity ? 'pre-loads never evict' : `swap margin ${this.preloadEvictMargin}`;
    const cap = (Number.isFinite(this.maxIdleMs) ? `, t_off ≤ ${fmtSeconds(this.maxIdleMs)}` : '') + (this.warmStart ? ', warm start' : '') + (this.rankWithFilledWindow ? ', ranked by the filled window' : '');
    return `tyche (W ${this.rateWindow}, P_load ${this.pLoad}, P_off ${this.pOff}, prior TTL ${fmtSeconds(this.priorTtlMs)}, ${swap}${cap}${off.length ? `; off: ${off.join(', ')}` : ''})`;
  }

  /** The prior mean inter-arrival time τ₀ (ms): 1/λ₀ with λ₀ = −ln(1 − P_off)/TTL. */
  get priorIntervalMs(): number {
    return this.priorTtlMs / idleTimeForProbability(1, this.pOff);
  }

  /**
   * λ (per ms) from the window; with fewer than W intervals, the missing ones are the prior's τ₀
   * (priorFill), so a model with one short interval is not taken to be busy on that alone. Once
   * W intervals exist this is exactly the seed's k/Σ. `extraMs` adds an open interval (idle time).
   */
  rate(m: ModelView, extraMs = 0): number | null {
    const W = this.rateWindow;
    const k = Math.min(m.rateSamples, W);
    if (this.priorFill && k < W) return W / (m.rateWindowMs + (W - k) * this.priorIntervalMs + extraMs);
    if (k === 0) return null;
    return k / (m.rateWindowMs + extraMs);
  }

  /** t_load and t_off in ms for the model's current λ (the prior's TTL when unknown). */
  thresholds(m: ModelView): { tLoad: number; tOff: number } | { tLoad: null; tOff: number } {
    const rate = this.rate(m);
    if (rate === null) return { tLoad: null, tOff: this.priorTtlMs };
    return { tLoad: idleTimeForProbability(rate, this.pLoad), tOff: idleTimeForProbability(rate, this.pOff) };
  }

  idleAction(m: ModelView, now: number): IdleAction {
    const since = m.idleSince ?? (this.warmStart && m.lastArrival === null ? m.registeredAt : undefined);
    if (since === undefined || since === null) return 'none';
    const idle = Math.max(0, now - since);
    const { tLoad, tOff: seedOff } = this.thresholds(m);
    const tOff = Math.min(seedOff, this.maxIdleMs);
    if (idle >= tOff) return m.resident && !this.keepForReload(m, idle) ? 'offload' : 'none';
    if (tLoad === null || m.resident) return 'none';
    const lead = this.loadLead ? (m.loadMs ?? 0) : 0;
    return idle >= Math.max(0, tLoad - lead) ? 'preload' : 'none';
  }

  /** The reload guard: the load time reaches t_load at the idle-discounted rate. */
  private keepForReload(m: ModelView, idle: number): boolean {
    if (!this.reloadGuard || m.loadMs === null) return false;
    const rate = this.rate(m, idle);
    return rate !== null && m.loadMs >= idleTimeForProbability(rate, this.pLoad);
  }

  /**
   * How likely a request is soon (eviction ranks by it, lowest first): the rate estimate with the
   * current idle time counted as an open interval of the window, so that a model whose last
   * burst was long ago ranks below one that is steadily busy (Poisson is memoryless, but a stale
   * λ is not evidence of a high rate now). With W intervals: k / (Σ intervals + idle), the seed's
   * λ discounted by the idle time.
   *
   * With k < W intervals the prior counts as ONE interval of τ₀, not as the W − k missing ones:
   * (k + 1) / (Σ + τ₀ + idle), the posterior mean of λ under an exponential prior of mean λ₀ =
   * 1/τ₀ (Gamma–Poisson). The thresholds keep the filled window (rate()): there it only decides
   * when this model moves. In a ranking it is weighed against other models' evidence, and
   * filled with W − k intervals of τ₀ it outweighed them: a model requested once, 18 s ago, scored
   * W/(W·τ₀ + 18 s) = 0.14/s at a 10 s keep-alive TTL (τ₀ = 3.6 s), above a model requested
   * 4 times in the last 30 s (0.13/s), and the busy model was evicted (the loopback replay of
   * bench:serve lost cold starts to LRU this way; test/serve/tyche-ranking.test.ts). With one
   * interval of τ₀ the once-requested model scores 1/(τ₀ + 18 s) = 0.05/s. Without a prior
   * (priorFill false) this is the bare k / (Σ + idle), and 1/(τ₀ + idle) while λ is unknown.
   * `rankWithFilledWindow` restores the ranking by the filled window (bench:serve's comparison).
   */
  keepScore(m: ModelView, now: number): number {
    const idle = idleFor(m, now);
    const k = Math.min(m.rateSamples, this.rateWindow);
    if (this.priorFill && k < this.rateWindow && !this.rankWithFilledWindow) return (k + 1) / (m.rateWindowMs + this.priorIntervalMs + idle);
    return this.rate(m, idle) ?? 1 / (this.priorIntervalMs + idle);
  }
}

export function createPolicy(name: PolicyName, opts: { keepAliveMs?: number } & TycheOptions = {}): ResidencyPolicy {
  switch (name) {
    case 'tyche':
      return new TychePolicy({ ...opts, priorTtlMs: opts.priorTtlMs ?? opts.keepAliveMs });
    case 'keep-alive':
      return new KeepAlivePolicy(opts.keepAliveMs);
    case 'on-demand':
      return new OnDemandPolicy();
    case 'lru':
      return new LruPolicy();
  }
}
