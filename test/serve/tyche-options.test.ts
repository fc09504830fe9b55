/**
 * Tyche's parameters are settable (library and `rfid-moe serve` flags): a window W, P_load and
 * P_off other than the seed's reach the policy and change when a model is offloaded, by the
 * closed form t_off = −ln(1 − P_off)/λ with λ over the last W intervals; bad values are refused
 * (RangeError in the library, exit 2 with one message from the CLI).
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/serve/clock.js';
import { TychePolicy, createPolicy } from '../../src/serve/policies.js';
import { ResidencyManager, type ModelLoader } from '../../src/serve/residency.js';
import { TINY_DIR, spawnServeCli } from './helpers.js';

const MIN = 60_000;

class InstantLoader implements ModelLoader<string> {
  async load(id: string) {
    return { handle: id, bytes: 100 };
  }
  async unload() {}
}

/** Arrivals of model 'a' at these gaps (minutes), then the idle time at which it is offloaded. */
async function offloadAfter(opts: { window?: number; pLoad?: number; pOff?: number }, gapsMin: number[]): Promise<{ rate: number; offloadAt: number }> {
  const clock = new VirtualClock();
  const mgr = new ResidencyManager({ clock, loader: new InstantLoader(), policy: createPolicy('tyche', opts), budgetBytes: 1000 });
  mgr.register('a', 100);
  const request = async () => (await mgr.acquire('a')).release();
  await request();
  for (const g of gapsMin) {
    clock.advance(g * MIN);
    await request();
  }
  const rate = mgr.stats('a').rate!; // per second
  // step the idle clock in 1 s ticks until the policy offloads
  let idle = 0;
  while (mgr.stats('a').status === 'resident' && idle < 60 * MIN) {
    clock.advance(1000);
    idle += 1000;
    await mgr.tick();
  }
  return { rate, offloadAt: idle };
}

describe('tyche parameters reach the policy', () => {
  const gaps = [1, 1, 2, 2, 2];

  it('W = 3, P_off = 0.9: λ is taken over the last 3 intervals and t_off = −ln(0.1)/λ', async () => {
    const { rate, offloadAt } = await offloadAfter({ window: 3, pLoad: 0.1, pOff: 0.9 }, gaps);
    expect(rate * 60).toBeCloseTo(3 / 6, 12); // 3 intervals over 6 min, not 5 over 8
    const tOff = -Math.log(0.1) / (0.5 / MIN); // 4.61 min
    expect(offloadAt).toBeGreaterThanOrEqual(tOff);
    expect(offloadAt).toBeLessThan(tOff + 1000);
  });

  it('the seed’s defaults on the same arrivals: W = 5, P_off = 0.94', async () => {
    const { rate, offloadAt } = await offloadAfter({}, gaps);
    expect(rate * 60).toBeCloseTo(5 / 8, 12);
    const tOff = -Math.log(1 - 0.94) / (5 / 8 / MIN);
    expect(offloadAt).toBeGreaterThanOrEqual(tOff);
    expect(offloadAt).toBeLessThan(tOff + 1000);
  });

  it('bad values are refused with the reason', () => {
    expect(() => new TychePolicy({ window: 0 })).toThrow(/window W must be a positive integer/);
    expect(() => new TychePolicy({ pLoad: 0 })).toThrow(/P_load must be a probability strictly between 0 and 1/);
    expect(() => new TychePolicy({ pOff: 1 })).toThrow(/P_off must be a probability/);
    expect(() => new TychePolicy({ pLoad: 0.5, pOff: 0.4 })).toThrow(/P_load \(0.5\) must be below P_off \(0.4\)/);
    expect(() => createPolicy('keep-alive', { keepAliveMs: -1 })).toThrow(/keep-alive TTL must be a positive/);
  });
});

describe('rfid-moe serve: Tyche flags', () => {
  it('a bad value is a parse error: exit 2 with one message', async () => {
    await expect(spawnServeCli([TINY_DIR, '--tyche-window', '0'])).rejects.toThrow(/exited with 2.*--tyche-window must be an integer ≥ 1, got "0"/s);
    await expect(spawnServeCli([TINY_DIR, '--tyche-p-load', '1.5'])).rejects.toThrow(/exited with 2.*--tyche-p-load must be a probability strictly between 0 and 1/s);
    await expect(spawnServeCli([TINY_DIR, '--tyche-p-off', 'often'])).rejects.toThrow(/exited with 2.*--tyche-p-off must be a number/s);
    await expect(spawnServeCli([TINY_DIR, '--tyche-p-load', '0.5', '--tyche-p-off', '0.4'])).rejects.toThrow(/exited with 2.*--tyche-p-load \(0.5\) must be below --tyche-p-off \(0.4\)/s);
    await expect(spawnServeCli([TINY_DIR, '--policy', 'lru', '--tyche-window', '3'])).rejects.toThrow(/exited with 2.*--tyche-window applies to --policy tyche only/s);
    await expect(spawnServeCli([TINY_DIR, '--tyche-swap-margin', '0.5'])).rejects.toThrow(/exited with 2.*--tyche-swap-margin must be a number ≥ 1/s);
    await expect(spawnServeCli([TINY_DIR, '--tyche-max-idle', '0'])).rejects.toThrow(/exited with 2.*--tyche-max-idle must be an integer ≥ 1, got "0"/s);
  });

  it('good values reach the serving policy (its own description, printed at startup)', async () => {
    const cli = await spawnServeCli([
      `tiny=${TINY_DIR}`,
      '--port',
      '0',
      '--quiet',
      '--keep-alive',
      '30',
      '--tyche-window',
      '3',
      '--tyche-p-load',
      '0.1',
      '--tyche-p-off',
      '0.9',
      '--no-tyche-reload-guard',
      '--tyche-swap-margin',
      '2',
      '--tyche-max-idle',
      '600',
      '--tyche-warm-start',
      '--tyche-rank-filled-window',
    ]);
    try {
      expect(cli.stderr()).toMatch(/policy tyche \(W 3, P_load 0\.1, P_off 0\.9, prior TTL 30 s, swap margin 2, t_off ≤ 600 s, warm start, ranked by the filled window; off: reload guard\)/);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
    const keepAlive = await spawnServeCli([`tiny=${TINY_DIR}`, '--port', '0', '--quiet', '--policy', 'keep-alive', '--keep-alive', '45']);
    try {
      expect(keepAlive.stderr()).toMatch(/policy keep-alive \(TTL 45 s\)/);
    } finally {
      keepAlive.child.kill('SIGTERM');
      await keepAlive.exited;
    }
  });
});
