/**
 * The residency manager on a virtual clock: Tyche's pre-load and offload at the seed's
 * thresholds, the comparison policies, eviction under the memory budget (never of a model that
 * is serving), and the resident byte·seconds accounting.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/serve/clock.js';
import { createPolicy, type PolicyName } from '../../src/serve/policies.js';
import { KvCacheTooLargeError, ModelTooLargeError, ResidencyManager, type ModelLoader } from '../../src/serve/residency.js';
import { tycheThresholds } from '../../src/serve/tyche.js';

const MIN = 60_000;

/** Instant loads, recorded; `gate` makes a model's load wait until released by the test. */
class FakeLoader implements ModelLoader<string> {
  log: string[] = [];
  gates = new Map<string, Promise<void>>();
  async load(id: string) {
    await this.gates.get(id);
    this.log.push(`load ${id}`);
    return { handle: `handle:${id}`, bytes: 100 };
  }
  async unload(id: string) {
    this.log.push(`unload ${id}`);
  }
}

function setup(policy: PolicyName, budget = 1000, models = ['a', 'b', 'c'], keepAliveMs = 60_000) {
  const clock = new VirtualClock();
  const loader = new FakeLoader();
  const mgr = new ResidencyManager({ clock, loader, policy: createPolicy(policy, { keepAliveMs }), budgetBytes: budget });
  for (const m of models) mgr.register(m, 100);
  const request = async (id: string) => (await mgr.acquire(id)).release();
  return { clock, loader, mgr, request };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('tyche', () => {
  it('keeps a model resident until idle time reaches t_off = 5.6 min at λ = 0.5/min, then offloads it', async () => {
    const { clock, mgr, request } = setup('tyche');
    for (let i = 0; i < 6; i++) {
      if (i > 0) clock.advance(2 * MIN); // λ = 0.5 per minute
      await request('a');
    }
    expect(mgr.stats('a').rate! * 60).toBeCloseTo(0.5, 12);
    const tOff = tycheThresholds(0.5 / MIN).tOff;
    expect(tOff / MIN).toBeCloseTo(5.63, 2);
    clock.advance(tOff - 1);
    await mgr.tick();
    expect(mgr.stats('a').status).toBe('resident');
    clock.advance(1);
    await mgr.tick();
    expect(mgr.stats('a').status).toBe('offloaded');
  });

  it('pre-loads an evicted model when its idle time reaches t_load = 7.4 s, not before', async () => {
    // budget for one model: b's request evicts a; then a's idle time reaches t_load
    const { clock, mgr, loader, request } = setup('tyche', 100);
    for (let i = 0; i < 6; i++) {
      if (i > 0) clock.advance(2 * MIN);
      await request('a');
    }
    // b: one request long ago is less likely than a; use it now, evicting idle a
    await request('b');
    expect(mgr.stats('a').status).toBe('offloaded');
    expect(loader.log.slice(-2)).toEqual(['unload a', 'load b']);
    const tLoad = tycheThresholds(0.5 / MIN).tLoad;
    expect(tLoad / 1000).toBeCloseTo(7.43, 2);
    clock.advance(tLoad - 1);
    await mgr.tick();
    expect(mgr.stats('a').status).toBe('offloaded');
    clock.advance(1);
    await mgr.tick();
    await flush();
    await mgr.tick();
    // b's rate is unknown (one request) so it ranks at the prior; a (0.5/min) outranks it only if
    // the prior rate is lower: the default prior TTL of 60 s gives λ₀ = 2.8/min > 0.5/min, so
    // the pre-load must NOT evict b
    expect(mgr.stats('a').status).toBe('offloaded');
    expect(mgr.stats('b').status).toBe('resident');
  });

  it('a pre-load evicts an idle model the policy ranks below it, and a request then finds it warm', async () => {
    const { clock, mgr, request } = setup('tyche', 100, ['a', 'b'], 10_000);
    for (let i = 0; i < 6; i++) {
      if (i > 0) clock.advance(2 * MIN);
      await request('a');
    }
    await request('b'); // evicts a; b has one request, prior TTL 10 s
    clock.advance(tycheThresholds(0.5 / MIN).tLoad);
    await mgr.tick(); // b idle 7.4 s: its prior rate decayed below a's? b: 2.81/(10 s + 7.4 s) per s ≫ a's → no
    // after b's prior TTL of 10 s it is offloaded by the policy; then a is pre-loaded
    clock.advance(10_000);
    await mgr.tick();
    expect(mgr.stats('b').status).toBe('offloaded');
    await mgr.tick();
    expect(mgr.stats('a').status).toBe('resident');
    const got = await mgr.acquire('a');
    expect(got.cold).toBe(false);
    got.release();
    expect(mgr.stats('a').loads).toBe(2);
  });

  it('evicts the model least likely to be requested soon (lowest windowed rate)', async () => {
    const { clock, mgr, request } = setup('tyche', 200);
    // a: every 10 s, b: every 60 s
    for (let i = 0; i < 6; i++) {
      await request('a');
      if (i % 6 === 0) await request('b');
      clock.advance(10_000);
    }
    for (let i = 0; i < 3; i++) {
      clock.advance(60_000);
      await request('b');
      await request('a');
    }
    await request('c'); // needs room: b (slower) goes, a stays
    expect(mgr.stats('b').status).toBe('offloaded');
    expect(mgr.stats('a').status).toBe('resident');
    expect(mgr.stats('c').status).toBe('resident');
  });
});

describe('comparison policies', () => {
  it('keep-alive offloads after its fixed TTL of idleness', async () => {
    const { clock, mgr, request } = setup('keep-alive', 1000, ['a'], 30_000);
    await request('a');
    clock.advance(29_999);
    await mgr.tick();
    expect(mgr.stats('a').status).toBe('resident');
    clock.advance(1);
    await mgr.tick();
    expect(mgr.stats('a').status).toBe('offloaded');
  });

  it('on-demand loads for each request and offloads when the last one ends', async () => {
    const { mgr, loader } = setup('on-demand');
    const r1 = await mgr.acquire('a');
    const r2 = await mgr.acquire('a'); // concurrent: shares the load
    expect(r1.cold && !r2.cold).toBe(true);
    r1.release();
    await flush();
    expect(mgr.stats('a').status).toBe('resident');
    r2.release();
    await flush();
    expect(mgr.stats('a').status).toBe('offloaded');
    const r3 = await mgr.acquire('a');
    expect(r3.cold).toBe(true);
    r3.release();
    expect(loader.log.filter((l) => l === 'load a')).toHaveLength(2);
  });

  it('lru never offloads on its own and evicts the least recently used under pressure', async () => {
    const { clock, mgr, request } = setup('lru', 200);
    await request('a');
    clock.advance(1000);
    await request('b');
    clock.advance(1000);
    await request('a');
    clock.advance(60 * MIN);
    await mgr.tick();
    expect(mgr.stats('b').status).toBe('resident');
    await request('c');
    expect(mgr.stats('b').status).toBe('offloaded');
    expect(mgr.stats('a').status).toBe('resident');
  });
});

describe('memory budget', () => {
  it('never evicts a model that is serving; the new request waits until it is idle', async () => {
    for (const policy of ['tyche', 'keep-alive', 'on-demand', 'lru'] as const) {
      const { clock, mgr } = setup(policy, 100);
      const a = await mgr.acquire('a');
      let bReady = false;
      const b = mgr.acquire('b').then((r) => {
        bReady = true;
        return r;
      });
      for (let i = 0; i < 5; i++) {
        clock.advance(1000);
        await mgr.tick();
        await flush();
      }
      expect(bReady).toBe(false);
      expect(mgr.stats('a').status).toBe('resident');
      expect(mgr.usedBytes()).toBeLessThanOrEqual(100);
      clock.advance(500);
      a.release();
      const got = await b;
      expect(got.cold).toBe(true);
      expect(got.waitMs).toBe(5500);
      expect(mgr.stats('a').status).toBe('offloaded');
      got.release();
    }
  });

  it('concurrent cold requests never reserve more than the budget', async () => {
    const { mgr, loader } = setup('lru', 200, ['a', 'b', 'c', 'd']);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    for (const id of ['a', 'b', 'c', 'd']) loader.gates.set(id, gate);
    const reqs = ['a', 'b', 'c', 'd'].map((id) => mgr.acquire(id));
    await flush();
    expect(mgr.usedBytes()).toBe(200);
    open();
    const done = await Promise.all(reqs.slice(0, 2));
    done.forEach((r) => r.release());
    (await Promise.all(reqs.slice(2))).forEach((r) => r.release());
    expect(mgr.allStats().every((s) => s.loads === 1)).toBe(true);
  });

  it('refuses a model larger than the whole budget', () => {
    const { mgr } = setup('tyche', 100, []);
    expect(() => mgr.register('huge', 101)).toThrow(ModelTooLargeError);
    expect(() => mgr.register('huge', 101)).toThrow(/raise `memoryBudget`/);
  });

  it('accounts resident bytes × seconds from load to unload', async () => {
    const { clock, mgr, request } = setup('keep-alive', 1000, ['a'], 10_000);
    await request('a');
    clock.advance(4000);
    await mgr.tick();
    clock.advance(6000);
    await mgr.tick(); // offloaded at 10 s
    clock.advance(50_000);
    expect(mgr.stats('a').residentByteSeconds).toBeCloseTo(100 * 10, 9);
  });
});

describe('KV cache in the memory budget', () => {
  it('an admitted request’s KV reservation counts as its model’s resident bytes until it ends', async () => {
    const { clock, mgr } = setup('keep-alive', 1000, ['a'], 60_000);
    const r = await mgr.acquire('a', { kvBytes: 30 });
    expect(mgr.usedBytes()).toBe(130);
    expect(mgr.stats('a').kvBytes).toBe(30);
    clock.advance(10_000);
    r.release();
    expect(mgr.usedBytes()).toBe(100);
    clock.advance(10_000);
    // 130 B for 10 s, then 100 B for 10 s
    expect(mgr.stats('a').residentByteSeconds).toBeCloseTo(130 * 10 + 100 * 10, 9);
  });

  it('a request whose KV cache does not fit next to the busy ones queues until one ends', async () => {
    for (const policy of ['tyche', 'keep-alive', 'on-demand', 'lru'] as const) {
      const { clock, mgr } = setup(policy, 200, ['a']);
      const first = await mgr.acquire('a', { kvBytes: 60 });
      let admitted = false;
      const second = mgr.acquire('a', { kvBytes: 60 }).then((r) => ((admitted = true), r));
      for (let i = 0; i < 3; i++) {
        clock.advance(1000);
        await mgr.tick();
        await flush();
      }
      expect(admitted).toBe(false);
      expect(mgr.usedBytes()).toBe(160);
      first.release();
      const got = await second;
      expect(got.waitMs).toBe(3000);
      expect(got.cold).toBe(false);
      expect(mgr.usedBytes()).toBe(160);
      got.release();
    }
  });

  it('makes KV room by evicting an idle model, never one that is serving', async () => {
    const { mgr, request } = setup('lru', 250, ['a', 'b', 'c']);
    await request('a');
    await request('b');
    const busy = await mgr.acquire('a', { kvBytes: 20 }); // 100 + 100 + 20
    const r = await mgr.acquire('a', { kvBytes: 40 }); // 260 > 250: b (idle) goes
    expect(mgr.stats('b').status).toBe('offloaded');
    expect(mgr.stats('a').status).toBe('resident');
    expect(mgr.usedBytes()).toBe(160);
    busy.release();
    r.release();
  });

  it('two models each filling the budget with weights still both get served (no deadlock)', async () => {
    const { mgr, request } = setup('lru', 220, ['a', 'b']);
    await request('a');
    await request('b');
    const [ra, rb] = [mgr.acquire('a', { kvBytes: 50 }), mgr.acquire('b', { kvBytes: 50 })];
    const first = await Promise.race([ra, rb]);
    expect(mgr.usedBytes()).toBeLessThanOrEqual(220);
    first.release();
    const both = await Promise.all([ra, rb]);
    expect(mgr.usedBytes()).toBeLessThanOrEqual(220);
    both.forEach((r) => r.release());
  });

  it('refuses at once a KV cache that could not fit next to its model in an empty budget', async () => {
    const { mgr } = setup('tyche', 200, ['a']);
    await expect(mgr.acquire('a', { kvBytes: 101 })).rejects.toThrow(KvCacheTooLargeError);
    await expect(mgr.acquire('a', { kvBytes: 101 })).rejects.toThrow(/lower `max_tokens`/);
    expect(mgr.stats('a').requests).toBe(0);
    const ok = await mgr.acquire('a', { kvBytes: 100 });
    ok.release();
  });
});
