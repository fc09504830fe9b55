/**
 * Residency policies: when an idle model is pre-loaded or offloaded, and which resident model is
 * evicted first when the memory budget is short. All times are milliseconds on the residency
 * manager's clock (real or virtual), so every policy is testable deterministically.
 *
 * - tyche: the seed's rule (tyche.ts): resident from idle time t_load, offloaded at t_off.
 * - keep-alive: offloaded after a fixed TTL of idleness (the usual serverless keep-alive).
 * - on-demand: loaded when a request needs it, offloaded as soon as no request is in flight.
 * - lru: never offloaded on its own; the least recently used model is evicted under pressure.
 */
import { P_LOAD, P_OFF, idleTimeForProbability } from './tyche.js';

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
}

export type IdleAction = 'preload' | 'offload' | 'none';

export interface ResidencyPolicy {
  readonly name: PolicyName;
  /** Decision for an idle model (inFlight 0) at time `now`, evaluated on every tick. */
  idleAction(m: ModelView, now: number): IdleAction;
  /** Higher = more worth keeping. Eviction takes the lowest first; ties go to the older idleSince. */
  keepScore(m: ModelView, now: number): number;
  /** Unload as soon as the last in-flight request ends (on-demand). */
  readonly offloadWhenIdle: boolean;
}

export const DEFAULT_KEEP_ALIVE_MS = 60_000;

const idleFor = (m: ModelView, now: number) => (m.idleSince === null ? 0 : Math.max(0, now - m.idleSince));
const lastUse = (m: ModelView) => m.idleSince ?? m.lastArrival ?? -Infinity;

export class KeepAlivePolicy implements ResidencyPolicy {
  readonly name = 'keep-alive' as const;
  readonly offloadWhenIdle = false;
  constructor(readonly ttlMs = DEFAULT_KEEP_ALIVE_MS) {}
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
  idleAction(): IdleAction {
    return 'none';
  }
  keepScore(m: ModelView): number {
    return lastUse(m);
  }
}

export interface TycheOptions {
  pLoad?: number;
  pOff?: number;
  /**
   * Before a model's second request λ is unknown; it then behaves like keep-alive with this TTL
   * (no pre-load; offload after the TTL), and ranks for eviction with the prior rate that puts
   * t_off at this TTL: λ₀ = −ln(1 − P_off)/TTL.
   */
  priorTtlMs?: number;
}

export class TychePolicy implements ResidencyPolicy {
  readonly name = 'tyche' as const;
  readonly offloadWhenIdle = false;
  readonly pLoad: number;
  readonly pOff: number;
  readonly priorTtlMs: number;

  constructor(opts: TycheOptions = {}) {
    this.pLoad = opts.pLoad ?? P_LOAD;
    this.pOff = opts.pOff ?? P_OFF;
    this.priorTtlMs = opts.priorTtlMs ?? DEFAULT_KEEP_ALIVE_MS;
  }

  /** t_load and t_off in ms for the model's current λ (the prior's when unknown). */
  thresholds(m: ModelView): { tLoad: number; tOff: number } | { tLoad: null; tOff: number } {
    if (m.rate === null) return { tLoad: null, tOff: this.priorTtlMs };
    return { tLoad: idleTimeForProbability(m.rate, this.pLoad), tOff: idleTimeForProbability(m.rate, this.pOff) };
  }

  idleAction(m: ModelView, now: number): IdleAction {
    if (m.idleSince === null) return 'none';
    const idle = idleFor(m, now);
    const { tLoad, tOff } = this.thresholds(m);
    if (idle >= tOff) return m.resident ? 'offload' : 'none';
    if (tLoad !== null && idle >= tLoad && !m.resident) return 'preload';
    return 'none';
  }

  /**
   * How likely a request is soon: the rate estimate with the current idle time counted as an
   * open interval of the window (k / (Σ intervals + idle)), so that a model whose last burst
   * was long ago ranks below one that is steadily busy (Poisson is memoryless, but a stale λ is
   * not evidence of a high rate now). Unknown λ: the prior rate.
   */
  keepScore(m: ModelView, now: number): number {
    const idle = idleFor(m, now);
    if (m.rate === null) return idleTimeForProbability(1, this.pOff) / (this.priorTtlMs + idle);
    return m.rateSamples / (m.rateWindowMs + idle);
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
