/**
 * Which models are in memory. Every request `acquire`s its model (the arrival updates Tyche's
 * rate, and a model that is not resident is loaded while the request waits: a cold start) and
 * `release`s it when done. `tick()` applies the policy to idle models (pre-load, offload); the
 * server calls it on a timer, tests call it on a virtual clock.
 *
 * The memory budget counts the bytes of every model that is loading, resident or unloading (a
 * load reserves its bytes before it starts, so concurrent loads never overshoot), plus the KV
 * cache each admitted request reserves (`acquire(id, { kvBytes })`). When a load or a KV
 * reservation needs room, idle resident models are evicted lowest `keepScore` first. A model with
 * an admitted request is never evicted; requests still waiting (for the load or for KV room) do
 * not pin their model, so models cannot hold each other's room forever; a request that cannot
 * make room waits until a request ends. A pre-load only evicts models the policy ranks below the one
 * being pre-loaded by at least the policy's `preloadEvictMargin` (tyche: never, by default), and
 * gives up otherwise (it is a guess; it must not push out a likelier model).
 *
 * A model larger than the whole budget can never be loaded: `register` refuses it, and the
 * server reports it as unavailable (503) instead of letting its requests wait forever.
 */
import { fmtBytes } from '../util/bytes.js';
import type { Clock } from './clock.js';
import type { ModelView, ResidencyPolicy } from './policies.js';
import { ArrivalRateEstimator } from './tyche.js';
import { RfidMoeError } from '../errors.js';

export interface LoadedModel<H> {
  handle: H;
  /** bytes actually held once loaded (replaces the estimate) */
  bytes: number;
}

export interface ModelLoader<H> {
  load(id: string): Promise<LoadedModel<H>>;
  unload(id: string, handle: H): Promise<void>;
}

export type LoadReason = 'request' | 'preload';

export interface ResidencyEvents {
  onLoad?(e: { id: string; reason: LoadReason; ms: number; bytes: number }): void;
  onLoadFailed?(e: { id: string; reason: LoadReason; error: unknown }): void;
  onUnload?(e: { id: string; reason: 'policy' | 'evicted' | 'shutdown'; bytes: number }): void;
}

type Status = 'offloaded' | 'loading' | 'resident' | 'unloading';

interface ModelState<H> {
  id: string;
  status: Status;
  /** estimate until loaded, then the loader's figure */
  bytes: number;
  handle: H | null;
  loading: Promise<void> | null;
  unloading: Promise<void> | null;
  /** requests admitted (model resident, KV cache reserved): these pin the model */
  inFlight: number;
  /** requests arrived but not yet admitted (waiting for the load or for KV-cache room); they do not pin */
  pending: number;
  /** KV-cache bytes reserved by the admitted requests (and by a request whose load is under way) */
  kvBytes: number;
  idleSince: number | null;
  rate: ArrivalRateEstimator;
  /** how long the last load took (ms); null before the first */
  lastLoadMs: number | null;
  // statistics
  loads: number;
  coldStarts: number;
  requests: number;
  loadWaitMs: number;
  byteMs: number;
  accountedAt: number;
  /** when the model was registered (the server started serving it) */
  registeredAt: number;
}

export interface Acquired<H> {
  handle: H;
  /** time this request waited for the model to become resident */
  waitMs: number;
  /** true when the model was not resident when the request arrived */
  cold: boolean;
  /** call exactly once when the request is done */
  release(): void;
}

export interface ModelStats {
  id: string;
  status: Status;
  /** the model's weights once resident (the estimate before its first load) */
  bytes: number;
  /** KV cache reserved by its admitted requests */
  kvBytes: number;
  inFlight: number;
  requests: number;
  loads: number;
  coldStarts: number;
  loadWaitMs: number;
  /** resident (incl. loading and unloading) bytes × seconds, KV caches included */
  residentByteSeconds: number;
  /** requests per second (null while unknown) */
  rate: number | null;
}

export class KvCacheTooLargeError extends RfidMoeError {
  readonly kind = 'KvCacheTooLargeError';
  constructor(id: string, kvBytes: number, modelBytes: number, budget: number) {
    super(`this request needs ${fmtBytes(kvBytes)} of KV cache next to model ${id}'s ${fmtBytes(modelBytes)}, more than the whole memory budget of ${fmtBytes(budget)}; lower \`max_tokens\` or the prompt, or raise the memory budget`);
    this.name = 'KvCacheTooLargeError';
  }
}

export class ModelTooLargeError extends RfidMoeError {
  readonly kind = 'ModelTooLargeError';
  constructor(id: string, bytes: number, budget: number) {
    super(`model ${id} needs ${fmtBytes(bytes)} resident, more than the whole memory budget of ${fmtBytes(budget)}; raise \`memoryBudget\` or serve a compressed checkpoint`);
    this.name = 'ModelTooLargeError';
  }
}

export class ResidencyManager<H> {
  private readonly models = new Map<string, ModelState<H>>();
  /** resolved whenever something that frees or could free memory happens */
  private waiters: Array<() => void> = [];
  private closed = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: {
      clock: Clock;
      policy: ResidencyPolicy;
      loader: ModelLoader<H>;
      budgetBytes: number;
      events?: ResidencyEvents;
    },
  ) {
    if (!(opts.budgetBytes > 0)) throw new RangeError(`the memory budget must be positive, got ${opts.budgetBytes}`);
  }

  get policy(): ResidencyPolicy {
    return this.opts.policy;
  }

  get budgetBytes(): number {
    return this.opts.budgetBytes;
  }

  /** Add a model (not loaded). `estimatedBytes` is what it will hold once resident. */
  register(id: string, estimatedBytes: number): void {
    if (this.models.has(id)) throw new Error(`model ${id} is registered twice`);
    if (estimatedBytes > this.opts.budgetBytes) throw new ModelTooLargeError(id, estimatedBytes, this.opts.budgetBytes);
    const now = this.opts.clock.now();
    this.models.set(id, {
      id,
      status: 'offloaded',
      bytes: estimatedBytes,
      handle: null,
      loading: null,
      unloading: null,
      inFlight: 0,
      pending: 0,
      kvBytes: 0,
      idleSince: null,
      rate: new ArrivalRateEstimator(this.opts.policy.rateWindow),
      lastLoadMs: null,
      loads: 0,
      coldStarts: 0,
      requests: 0,
      loadWaitMs: 0,
      byteMs: 0,
      accountedAt: now,
      registeredAt: now,
    });
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  ids(): string[] {
    return [...this.models.keys()];
  }

  /** Bytes held or reserved (loading, resident, unloading), KV caches of admitted requests included. */
  usedBytes(): number {
    let used = 0;
    for (const m of this.models.values()) if (m.status !== 'offloaded') used += m.bytes + m.kvBytes;
    return used;
  }

  /** The loaded handle when the model is resident now (introspection; no arrival is recorded). */
  handleIfResident(id: string): H | null {
    const m = this.state(id);
    return m.status === 'resident' ? m.handle : null;
  }

  view(id: string): ModelView {
    return this.viewOf(this.state(id));
  }

  stats(id: string): ModelStats {
    const m = this.state(id);
    this.account(m);
    const rate = m.rate.rate();
    return {
      id,
      status: m.status,
      bytes: m.bytes,
      kvBytes: m.kvBytes,
      inFlight: m.inFlight,
      requests: m.requests,
      loads: m.loads,
      coldStarts: m.coldStarts,
      loadWaitMs: m.loadWaitMs,
      residentByteSeconds: m.byteMs / 1000,
      rate: rate === null ? null : rate * 1000,
    };
  }

  allStats(): ModelStats[] {
    return this.ids().map((id) => this.stats(id));
  }

  /**
   * A request for `id` arrives: record it, make the model resident (waiting if needed) and reserve
   * `kvBytes` of KV cache for it in the budget (the most its sequence can hold, kvSlotBoundBytes).
   * Admission waits while the reservation does not fit next to the busy models (evicting idle
   * ones first); a reservation that could not fit next to the model even in an empty budget is
   * refused at once (KvCacheTooLargeError) rather than left waiting forever.
   */
  async acquire(id: string, opts: { kvBytes?: number } = {}): Promise<Acquired<H>> {
    if (this.closed) throw new Error('the server is shutting down');
    const m = this.state(id);
    const kv = opts.kvBytes ?? 0;
    if (!(kv >= 0 && Number.isFinite(kv))) throw new RangeError(`kvBytes must be a non-negative number, got ${kv}`);
    if (m.bytes + kv > this.opts.budgetBytes) throw new KvCacheTooLargeError(id, kv, m.bytes, this.opts.budgetBytes);
    const arrived = this.opts.clock.now();
    // a policy may count a request that finds its model busy as part of the same busy period (tyche's burst rule)
    if (!this.busy(m) || !this.opts.policy.mergeBusyArrivals) m.rate.arrive(arrived);
    m.requests++;
    m.pending++;
    const cold = m.status !== 'resident';
    if (cold) m.coldStarts++;
    try {
      await this.admit(m, kv);
    } catch (err) {
      m.pending--;
      this.settle(m);
      throw err;
    }
    const waitMs = this.opts.clock.now() - arrived;
    m.loadWaitMs += waitMs;
    let released = false;
    return {
      handle: m.handle as H,
      waitMs,
      cold,
      release: () => {
        if (released) return;
        released = true;
        this.account(m);
        m.kvBytes -= kv;
        m.inFlight--;
        this.settle(m);
      },
    };
  }

  /** Apply the policy to idle models once (offload and pre-load). */
  async tick(): Promise<void> {
    const now = this.opts.clock.now();
    const work: Promise<unknown>[] = [];
    for (const m of this.models.values()) {
      if (this.busy(m)) continue;
      const action = this.opts.policy.idleAction(this.viewOf(m), now);
      if (action === 'offload' && m.status === 'resident') work.push(this.unload(m, 'policy'));
      else if (action === 'preload' && m.status === 'offloaded') work.push(this.preload(m).catch(() => undefined));
    }
    await Promise.all(work);
  }

  /** Run `tick` every `intervalMs` on the real timer (the server). */
  start(intervalMs: number): void {
    this.timer ??= setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  /** Stop ticking, wait for loads, unload everything. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const m of this.models.values()) await m.loading?.catch(() => undefined);
    await Promise.all([...this.models.values()].map((m) => (m.status === 'resident' ? this.unload(m, 'shutdown') : m.unloading)));
    this.wake();
  }

  // ---------------------------------------------------------------------------------------

  private state(id: string): ModelState<H> {
    const m = this.models.get(id);
    if (!m) throw new Error(`model ${id} is not registered`);
    return m;
  }

  private viewOf(m: ModelState<H>): ModelView {
    return {
      id: m.id,
      resident: m.status === 'resident' || m.status === 'loading',
      inFlight: m.inFlight + m.pending,
      idleSince: m.idleSince,
      registeredAt: m.registeredAt,
      lastArrival: m.rate.lastArrival,
      rate: m.rate.rate(),
      rateSamples: m.rate.samples,
      rateWindowMs: m.rate.windowMs,
      loadMs: m.lastLoadMs,
    };
  }

  /** Add bytes × time since the last change to the model's resident GB·s. */
  private account(m: ModelState<H>): void {
    const now = this.opts.clock.now();
    if (m.status !== 'offloaded') m.byteMs += (m.bytes + m.kvBytes) * (now - m.accountedAt);
    m.accountedAt = now;
  }

  private setStatus(m: ModelState<H>, status: Status): void {
    this.account(m);
    m.status = status;
  }

  /** admitted or waiting requests: the model is not idle */
  private busy(m: ModelState<H>): boolean {
    return m.inFlight + m.pending > 0;
  }

  /** After a request leaves: the model may have become idle; waiters may now fit. */
  private settle(m: ModelState<H>): void {
    if (!this.busy(m)) {
      m.idleSince = this.opts.clock.now();
      if (this.opts.policy.offloadWhenIdle && m.status === 'resident') void this.unload(m, 'policy');
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Admit one request of `m`: loop until the model is resident and `kv` bytes are reserved. A
   * request that starts the load reserves its KV cache together with the weights and is admitted
   * the moment the load ends (nothing can evict the model in between).
   */
  private async admit(m: ModelState<H>, kv: number): Promise<void> {
    for (;;) {
      if (this.closed) throw new Error('the server is shutting down');
      if (m.status === 'resident') {
        if (this.makeRoom(m, kv, 'request')) {
          this.account(m);
          m.kvBytes += kv;
          m.pending--;
          m.inFlight++;
          return;
        }
        await this.changed();
      } else if (m.status === 'loading') {
        await m.loading!.catch(() => undefined);
      } else if (m.status === 'unloading') {
        await m.unloading;
      } else if (this.makeRoom(m, m.bytes + kv, 'request')) {
        this.account(m);
        m.kvBytes += kv;
        try {
          await this.load(m, 'request', () => {
            m.pending--;
            m.inFlight++;
          });
        } catch (err) {
          this.account(m);
          m.kvBytes -= kv;
          throw err;
        }
        return;
      } else {
        // unloads started by makeRoom, or requests finishing elsewhere, will wake us
        await this.changed();
      }
    }
  }

  /** A pre-load: load `m` when it fits (evicting only models ranked below it); otherwise give up. */
  private async preload(m: ModelState<H>): Promise<void> {
    if (m.status !== 'offloaded' || this.closed) return;
    if (!this.makeRoom(m, m.bytes, 'preload')) return;
    await this.load(m, 'preload');
  }

  /** Load `m` (its bytes are free); `admitted` runs as it becomes resident, before anyone else sees it. */
  private async load(m: ModelState<H>, reason: LoadReason, admitted?: () => void): Promise<void> {
    this.setStatus(m, 'loading');
    const started = this.opts.clock.now();
    m.loading = (async () => {
      try {
        const loaded = await this.opts.loader.load(m.id);
        this.account(m);
        m.handle = loaded.handle;
        m.bytes = loaded.bytes;
        m.loads++;
        m.lastLoadMs = this.opts.clock.now() - started;
        this.setStatus(m, 'resident');
        admitted?.();
        this.opts.events?.onLoad?.({ id: m.id, reason, ms: this.opts.clock.now() - started, bytes: loaded.bytes });
      } catch (err) {
        this.setStatus(m, 'offloaded');
        this.opts.events?.onLoadFailed?.({ id: m.id, reason, error: err });
        throw err;
      } finally {
        m.loading = null;
        this.wake();
      }
    })();
    await m.loading;
  }

  /**
   * Whether `need` more bytes (for `m`) fit now. Otherwise starts evicting idle models: resident,
   * no admitted request; models nobody is waiting for first, then lowest keepScore (for a
   * pre-load only models that nobody waits for, ranked below `m` by the policy's margin), and returns false: the caller
   * waits for the unloads.
   */
  private makeRoom(m: ModelState<H>, need: number, reason: LoadReason): boolean {
    const free = this.opts.budgetBytes - this.usedBytes();
    if (need <= free) return true;
    const now = this.opts.clock.now();
    const policy = this.opts.policy;
    const myScore = policy.keepScore(this.viewOf(m), now);
    const candidates = [...this.models.values()]
      .filter((o) => o !== m && o.status === 'resident' && o.inFlight === 0)
      .map((o) => ({ o, score: policy.keepScore(this.viewOf(o), now) }))
      .filter((c) => reason === 'request' || (c.o.pending === 0 && this.preloadMayEvict(c.score, myScore)))
      .sort((a, b) => Number(a.o.pending > 0) - Number(b.o.pending > 0) || a.score - b.score || (a.o.idleSince ?? 0) - (b.o.idleSince ?? 0));
    const pendingFree = [...this.models.values()].filter((o) => o.status === 'unloading').reduce((s, o) => s + o.bytes + o.kvBytes, 0);
    let freed = 0;
    const victims: ModelState<H>[] = [];
    for (const c of candidates) {
      if (free + pendingFree + freed >= need) break;
      victims.push(c.o);
      freed += c.o.bytes;
    }
    if (reason === 'preload' && free + pendingFree + freed < need) return false;
    for (const v of victims) void this.unload(v, 'evicted');
    return false;
  }

  /** A pre-load of a model scored `mine` may push out an idle one scored `victim` (policy's margin). */
  private preloadMayEvict(victim: number, mine: number): boolean {
    const margin = this.opts.policy.preloadEvictMargin ?? 1;
    if (margin === Infinity) return false;
    return margin === 1 ? victim < mine : victim * margin <= mine && victim < mine;
  }

  private unload(m: ModelState<H>, reason: 'policy' | 'evicted' | 'shutdown'): Promise<void> {
    if (m.status !== 'resident') return m.unloading ?? Promise.resolve();
    this.setStatus(m, 'unloading');
    const handle = m.handle as H;
    m.unloading = (async () => {
      try {
        await this.opts.loader.unload(m.id, handle);
      } finally {
        m.handle = null;
        this.setStatus(m, 'offloaded');
        m.unloading = null;
        this.opts.events?.onUnload?.({ id: m.id, reason, bytes: m.bytes });
        this.wake();
      }
    })();
    return m.unloading;
  }
}
