/**
 * The policy comparison on the virtual clock (bench/serve/simulate.ts), on two kinds of seeded
 * traces so that no conclusion rests on one hand-made shape:
 * - "shapes": the three traffic shapes of trace.ts (steady then slowing; slow, lull, busy; bursts
 *   with a trickle between) at per-minute rates, 3 models of 1 GB, a budget for 2;
 * - "random": 6 models whose phases, rates (0.05–3 per minute), lulls and bursts are drawn from
 *   the seed (makeRandomTrace), a budget for 3.
 * Every policy replays the same traces; figures are means over the seeds. Tyche runs twice: as
 * served (the rules for where the seed is silent, README) and with the seed's rule alone (bare
 * k/Σ estimate, no load lead, no reload guard, every arrival counted).
 *
 * "GB·s vs keep-alive at the same hit rate": per seed, keep-alive is run at a sweep of TTLs and
 * its resident GB·s is interpolated linearly at the policy's hit rate; the ratio is averaged over
 * the seeds where keep-alive reaches that hit rate (n says how many).
 */
import { simulate, type ColdCause, type SimulationResult } from './simulate.js';
import { makeRandomTrace, makeTrace, type Arrival } from './trace.js';
import type { PolicyName, TycheOptions } from '../../src/serve/policies.js';

export interface ScenarioSetup {
  name: 'shapes' | 'random';
  models: number;
  budgetModels: number;
  durationS: number;
  seeds: number[];
  loadS: number;
  serviceS: number;
  keepAliveS: number;
}

export interface ScenarioRow {
  label: string;
  requests: number;
  meanWaitS: number;
  p99WaitS: number;
  waitReduction: number;
  waitShare: number;
  hitRate: number;
  residentGBs: number;
  gbsVsKeepAlive: number;
  gbsVsKeepAliveSeeds: number;
  coldCauses: Record<ColdCause, number>;
  coldStarts: number;
}

export interface ScenarioTable {
  setup: ScenarioSetup;
  rows: ScenarioRow[];
  /** keep-alive's sweep, means over the seeds */
  keepAliveSweep: Array<{ ttlS: number; hitRate: number; residentGBs: number; meanWaitS: number }>;
}

const SEED_RULE: TycheOptions = { priorFill: false, loadLead: false, reloadGuard: false, mergeBursts: false };
const TTLS = [15, 30, 60, 120, 180, 300, 450, 600, 900, 1800, 3600];

function traceOf(s: ScenarioSetup, seed: number, rateScale: number): { trace: Arrival[]; models: string[] } {
  const models = Array.from({ length: s.models }, (_, i) => `m${i}`);
  const trace = s.name === 'shapes' ? makeTrace(models, s.durationS, seed, rateScale) : makeRandomTrace(models, s.durationS, seed);
  return { trace, models };
}

export async function scenarioTable(s: ScenarioSetup, opts: { rateScale: number; progress?: (line: string) => void }): Promise<ScenarioTable> {
  const variants: Array<{ label: string; policy: PolicyName; tyche?: TycheOptions }> = [
    { label: 'tyche', policy: 'tyche' },
    { label: 'tyche, the seed’s rule alone', policy: 'tyche', tyche: SEED_RULE },
    { label: 'keep-alive', policy: 'keep-alive' },
    { label: 'on-demand', policy: 'on-demand' },
    { label: 'lru', policy: 'lru' },
  ];
  const per: SimulationResult[][] = variants.map(() => []);
  const ratios: number[][] = variants.map(() => []);
  const sweep: SimulationResult[][] = TTLS.map(() => []);
  for (const seed of s.seeds) {
    const { trace, models } = traceOf(s, seed, opts.rateScale);
    const base = { trace, models, modelBytes: 1e9, budgetBytes: (s.budgetModels + 0.05) * 1e9, loadS: s.loadS, serviceS: s.serviceS, tickS: s.name === 'random' ? 0.5 : 0.1 };
    const ka: SimulationResult[] = [];
    for (const [i, ttlS] of TTLS.entries()) {
      const r = await simulate({ ...base, policy: 'keep-alive', keepAliveS: ttlS });
      ka.push(r);
      sweep[i].push(r);
    }
    const kaAt = (hit: number): number => {
      const pts = ka.map((r) => ({ hit: 1 - r.coldStarts / r.requests, gbs: r.residentGBs }));
      for (let i = 0; i < pts.length; i++) {
        if (pts[i].hit < hit) continue;
        if (i === 0) return pts[0].gbs;
        const a = pts[i - 1];
        const b = pts[i];
        return b.hit === a.hit ? b.gbs : a.gbs + ((b.gbs - a.gbs) * (hit - a.hit)) / (b.hit - a.hit);
      }
      return NaN;
    };
    for (const [i, v] of variants.entries()) {
      const r = await simulate({ ...base, policy: v.policy, keepAliveS: s.keepAliveS, tyche: v.tyche });
      per[i].push(r);
      const ref = kaAt(1 - r.coldStarts / r.requests);
      if (Number.isFinite(ref)) ratios[i].push(r.residentGBs / ref);
    }
    opts.progress?.(`  simulation ${s.name}, seed ${seed}: done`);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const onDemand = per[variants.findIndex((v) => v.policy === 'on-demand')];
  const rows = variants.map((v, i) => {
    const rs = per[i];
    const causes = { first: 0, offloaded: 0, evicted: 0, loading: 0, unloading: 0 } as Record<ColdCause, number>;
    for (const r of rs) for (const k of Object.keys(causes) as ColdCause[]) causes[k] += r.coldCauses[k];
    return {
      label: v.label,
      requests: rs.reduce((a, r) => a + r.requests, 0),
      meanWaitS: mean(rs.map((r) => r.meanWaitS)),
      p99WaitS: mean(rs.map((r) => r.p99WaitS)),
      waitReduction: mean(rs.map((r, j) => 1 - r.meanWaitS / onDemand[j].meanWaitS)),
      waitShare: mean(rs.map((r) => r.waitShare)),
      hitRate: mean(rs.map((r) => 1 - r.coldStarts / r.requests)),
      residentGBs: mean(rs.map((r) => r.residentGBs)),
      gbsVsKeepAlive: ratios[i].length ? mean(ratios[i]) : NaN,
      gbsVsKeepAliveSeeds: ratios[i].length,
      coldCauses: causes,
      coldStarts: rs.reduce((a, r) => a + r.coldStarts, 0),
    };
  });
  const keepAliveSweep = TTLS.map((ttlS, i) => ({
    ttlS,
    hitRate: mean(sweep[i].map((r) => 1 - r.coldStarts / r.requests)),
    residentGBs: mean(sweep[i].map((r) => r.residentGBs)),
    meanWaitS: mean(sweep[i].map((r) => r.meanWaitS)),
  }));
  return { setup: s, rows, keepAliveSweep };
}

export function formatScenario(t: ScenarioTable): string[] {
  const s = t.setup;
  const what =
    s.name === 'shapes'
      ? `the three shapes of trace.ts (steady then slowing; slow, a lull, busy; two bursts of 8 with a trickle between) at per-minute rates, ${s.models} models`
      : `${s.models} models with seeded random phases (rates 0.05–3 per minute, lulls, bursts of 4–16 within 2 s)`;
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  return [
    `**Simulation, ${s.name} traces** (virtual clock; the real residency manager and policies): ${what}, ${s.durationS} s per trace, seeds ${s.seeds[0]}–${s.seeds.at(-1)}, 1 GB per model, budget for ${s.budgetModels}, every load ${s.loadS} s, every request ${s.serviceS} s, keep-alive TTL ${s.keepAliveS} s. Means over the seeds; cold starts summed, by cause (the model's state when the request arrived).`,
    '',
    '| policy | mean load wait | p99 | load wait vs on-demand | share of request time waiting | hit rate | resident GB·s | GB·s ÷ keep-alive’s at the same hit rate (n) | cold starts: first / offloaded / evicted / load under way |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...t.rows.map(
      (r) =>
        `| ${r.label} | ${r.meanWaitS.toFixed(2)} s | ${r.p99WaitS.toFixed(1)} s | −${pct(r.waitReduction)} | ${(r.waitShare * 100).toFixed(1)}% | ${pct(r.hitRate)} | ${r.residentGBs.toFixed(0)} | ${Number.isFinite(r.gbsVsKeepAlive) ? r.gbsVsKeepAlive.toFixed(2) : '–'} (${r.gbsVsKeepAliveSeeds}) | ${r.coldStarts}/${r.requests}: ${r.coldCauses.first} / ${r.coldCauses.offloaded} / ${r.coldCauses.evicted} / ${r.coldCauses.loading + r.coldCauses.unloading} |`,
    ),
    '',
    `Keep-alive at other TTLs (${s.name} traces, means over the seeds):`,
    '',
    '| TTL | hit rate | mean load wait | resident GB·s |',
    '|---:|---:|---:|---:|',
    ...t.keepAliveSweep.map((k) => `| ${k.ttlS} s | ${pct(k.hitRate)} | ${k.meanWaitS.toFixed(2)} s | ${k.residentGBs.toFixed(0)} |`),
  ];
}
