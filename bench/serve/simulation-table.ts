/**
 * The policy comparison on the virtual clock (bench/serve/simulate.ts), on three kinds of seeded
 * traces so that no conclusion rests on one hand-made shape:
 * - "shapes": the three traffic shapes of trace.ts (steady then slowing; slow, lull, busy; bursts
 *   with a trickle between) at per-minute rates, 3 models of 1 GB, a budget for 2;
 * - "random": 6 models whose phases, rates (0.05–3 per minute), lulls and bursts are drawn from
 *   the seed (makeRandomTrace), a budget for 3;
 * - "skewed": 12 models of 0.5–2 GB with Zipf popularity that shifts once (makeSkewedTrace), a
 *   budget for half their bytes, loads of 5 s per GB.
 * Every policy replays the same traces; figures are means over the seeds. Tyche runs as served
 * (the rules for where the seed is silent, README), with each of its measured variants, and with
 * the seed's rule alone (bare k/Σ estimate, no load lead, no reload guard, every arrival counted,
 * pre-loads swap whenever they rank higher). Four references follow that no served policy can be
 * (oracle.ts): foresight of every arrival (Belady with prefetching; Belady's MIN with loads on
 * request only), knowledge of the generated rates, and an unlimited budget.
 *
 * "GB·s vs keep-alive at the same hit rate": per seed, keep-alive is run at a sweep of TTLs (0 being
 * on-demand) and its resident GB·s is interpolated linearly at the policy's hit rate; the ratio is averaged over
 * the seeds where keep-alive reaches that hit rate (n says how many).
 */
import { OraclePolicy, RateOraclePolicy } from './oracle.js';
import { simulate, type ColdCause, type SimulationOptions, type SimulationResult } from './simulate.js';
import { makeRandomTrace, makeSkewedTrace, makeTrace, type Arrival, type RateSchedule } from './trace.js';
import type { PolicyName, TycheOptions } from '../../src/serve/policies.js';

export interface ScenarioSetup {
  name: 'shapes' | 'random' | 'skewed';
  models: number;
  budgetModels: number;
  durationS: number;
  seeds: number[];
  loadS: number;
  serviceS: number;
  keepAliveS: number;
  /** the skewed family's budget as a share of its models' bytes (default 0.5) */
  budgetShare?: number;
}

export interface ScenarioRow {
  label: string;
  /** an offline or unlimited reference, not a policy that could be served */
  reference: boolean;
  requests: number;
  meanWaitS: number;
  p99WaitS: number;
  waitReduction: number;
  waitShare: number;
  hitRate: number;
  residentGBs: number;
  gbsVsKeepAlive: number;
  gbsVsKeepAliveSeeds: number;
  /** seeds where the policy's hit rate is above keep-alive's at every TTL of the sweep (no ratio) */
  aboveKeepAliveSeeds: number;
  coldCauses: Record<ColdCause, number>;
  coldStarts: number;
}

export interface ScenarioTable {
  setup: ScenarioSetup;
  rows: ScenarioRow[];
  /** keep-alive's sweep, means over the seeds */
  keepAliveSweep: Array<{ ttlS: number; hitRate: number; residentGBs: number; meanWaitS: number }>;
  /** tyche (as served otherwise) at other P_off: its own memory/hit-rate curve against keep-alive's */
  tycheSweep: Array<{ pOff: number; hitRate: number; residentGBs: number; meanWaitS: number; gbsVsKeepAlive: number; seeds: number }>;
}

const SEED_RULE: TycheOptions = { priorFill: false, loadLead: false, reloadGuard: false, mergeBursts: false, swapMargin: 1 };
/** tyche's P_off sweep (0.94 is the seed's, in the main table) */
const P_OFFS = [0.5, 0.8, 0.9, 0.98, 0.99, 0.999];
/** keep-alive's TTL sweep; 0 is on-demand (offloaded the moment it falls idle), keep-alive's limit */
const TTLS = [0, 15, 30, 60, 120, 180, 300, 450, 600, 900, 1800, 3600];

interface SeededTrace {
  trace: Arrival[];
  models: string[];
  schedule: RateSchedule;
  /** bytes per model (1 GB each unless the family varies them) */
  bytes: Map<string, number>;
}

function traceOf(s: ScenarioSetup, seed: number, rateScale: number): SeededTrace {
  const models = Array.from({ length: s.models }, (_, i) => `m${i}`);
  const schedule: RateSchedule = new Map();
  const bytes = new Map(models.map((m) => [m, 1e9]));
  const trace =
    s.name === 'shapes'
      ? makeTrace(models, s.durationS, seed, rateScale, schedule)
      : s.name === 'random'
        ? makeRandomTrace(models, s.durationS, seed, undefined, undefined, schedule)
        : makeSkewedTrace(models, s.durationS, seed, undefined, schedule, bytes);
  return { trace, models, schedule, bytes };
}

interface Variant {
  label: string;
  policy: PolicyName | 'oracle';
  tyche?: TycheOptions;
  reference?: boolean;
  /** changes to the simulation for this row (the oracles' policies, the unlimited budget) */
  with?: (t: SeededTrace, base: Omit<SimulationOptions, 'policy' | 'keepAliveS'>) => Partial<SimulationOptions>;
}

export interface ScenarioOptions {
  rateScale: number;
  progress?: (line: string) => void;
  /** run only the rows with these labels (default all) */
  only?: readonly string[];
  /** run tyche's P_off sweep (default true) */
  pOffSweep?: boolean;
}

export async function scenarioTable(s: ScenarioSetup, opts: ScenarioOptions): Promise<ScenarioTable> {
  const allVariants: Variant[] = [
    { label: 'tyche', policy: 'tyche' },
    { label: 'tyche, proactive swaps (swap margin 1)', policy: 'tyche', tyche: { swapMargin: 1 } },
    { label: 'tyche, swaps with hysteresis (margin 2)', policy: 'tyche', tyche: { swapMargin: 2 } },
    { label: 'tyche, t_off ≤ keep-alive TTL', policy: 'tyche', tyche: { maxIdleMs: s.keepAliveS * 1000 } },
    { label: 'tyche, warm start', policy: 'tyche', tyche: { warmStart: true } },
    { label: 'tyche, eviction ranked by the prior-filled window (before 2026-12-02)', policy: 'tyche', tyche: { rankWithFilledWindow: true } },
    { label: 'tyche, the seed’s rule alone', policy: 'tyche', tyche: SEED_RULE },
    { label: 'keep-alive', policy: 'keep-alive' },
    { label: 'on-demand', policy: 'on-demand' },
    { label: 'lru', policy: 'lru' },
    {
      label: '*oracle: all arrivals known (Belady + prefetch)*',
      policy: 'oracle',
      reference: true,
      with: (t, b) => ({ makePolicy: () => new OraclePolicy(t.trace, (id) => (b.loadSOf?.(id) ?? b.loadS) * 1000, b.tickS! * 1000) }),
    },
    {
      label: '*oracle: all arrivals known, loads on request only (Belady MIN)*',
      policy: 'oracle',
      reference: true,
      with: (t, b) => ({ makePolicy: () => new OraclePolicy(t.trace, (id) => (b.loadSOf?.(id) ?? b.loadS) * 1000, b.tickS! * 1000, false) }),
    },
    { label: '*rate oracle: generated rates known*', policy: 'oracle', reference: true, with: (t) => ({ makePolicy: () => new RateOraclePolicy(t.schedule) }) },
    { label: '*unlimited budget, never offload*', policy: 'lru', reference: true, with: (t) => ({ budgetBytes: [...t.bytes.values()].reduce((a, b) => a + b, 0) * 2 }) },
  ];
  const variants = opts.only ? allVariants.filter((v) => opts.only!.includes(v.label)) : allVariants;
  if (!variants.some((v) => v.policy === 'on-demand')) throw new Error('the scenario needs its on-demand row: every cut is measured against it');
  const pOffs = opts.pOffSweep === false ? [] : P_OFFS;
  const per: SimulationResult[][] = variants.map(() => []);
  const ratios: number[][] = variants.map(() => []);
  const above: number[] = variants.map(() => 0);
  const sweep: SimulationResult[][] = TTLS.map(() => []);
  const tycheSweep: Array<{ runs: SimulationResult[]; ratios: number[] }> = pOffs.map(() => ({ runs: [], ratios: [] }));
  for (const seed of s.seeds) {
    const t = traceOf(s, seed, opts.rateScale);
    const { trace, models } = t;
    const totalBytes = [...t.bytes.values()].reduce((a, b) => a + b, 0);
    const sized = s.name === 'skewed';
    const base = {
      trace,
      models,
      modelBytes: 1e9,
      bytesOf: (m: string) => t.bytes.get(m)!,
      // the skewed family's models differ in size: loads take loadS per GB
      loadSOf: sized ? (m: string) => (s.loadS * t.bytes.get(m)!) / 1e9 : undefined,
      budgetBytes: sized ? totalBytes * (s.budgetShare ?? 0.5) : (s.budgetModels + 0.05) * 1e9,
      loadS: s.loadS,
      serviceS: s.serviceS,
      tickS: s.name === 'shapes' ? 0.1 : 0.5,
    };
    const ka: SimulationResult[] = [];
    for (const [i, ttlS] of TTLS.entries()) {
      const r = ttlS === 0 ? await simulate({ ...base, policy: 'on-demand', keepAliveS: s.keepAliveS }) : await simulate({ ...base, policy: 'keep-alive', keepAliveS: ttlS });
      ka.push(r);
      sweep[i].push(r);
    }
    const kaAt = (hit: number): number => {
      const pts = ka.map((r) => ({ hit: 1 - r.coldStarts / r.requests, gbs: r.residentGBs }));
      for (let i = 0; i < pts.length; i++) {
        if (pts[i].hit < hit) continue;
        // below on-demand's hit rate (the sweep's lowest) there is nothing to compare with
        if (i === 0) return pts[0].hit === hit ? pts[0].gbs : NaN;
        const a = pts[i - 1];
        const b = pts[i];
        return b.hit === a.hit ? b.gbs : a.gbs + ((b.gbs - a.gbs) * (hit - a.hit)) / (b.hit - a.hit);
      }
      return NaN;
    };
    for (const [i, v] of variants.entries()) {
      const r = await simulate({ ...base, policy: v.policy, keepAliveS: s.keepAliveS, tyche: v.tyche, ...(v.with?.(t, base) ?? {}) });
      per[i].push(r);
      const ref = kaAt(1 - r.coldStarts / r.requests);
      if (Number.isFinite(ref)) ratios[i].push(r.residentGBs / ref);
      else if (ka.every((k) => 1 - k.coldStarts / k.requests < 1 - r.coldStarts / r.requests)) above[i]++;
    }
    for (const [i, pOff] of pOffs.entries()) {
      const r = await simulate({ ...base, policy: 'tyche', keepAliveS: s.keepAliveS, tyche: { pOff } });
      tycheSweep[i].runs.push(r);
      const ref = kaAt(1 - r.coldStarts / r.requests);
      if (Number.isFinite(ref)) tycheSweep[i].ratios.push(r.residentGBs / ref);
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
      reference: v.reference ?? false,
      requests: rs.reduce((a, r) => a + r.requests, 0),
      meanWaitS: mean(rs.map((r) => r.meanWaitS)),
      p99WaitS: mean(rs.map((r) => r.p99WaitS)),
      waitReduction: mean(rs.map((r, j) => 1 - r.meanWaitS / onDemand[j].meanWaitS)),
      waitShare: mean(rs.map((r) => r.waitShare)),
      hitRate: mean(rs.map((r) => 1 - r.coldStarts / r.requests)),
      residentGBs: mean(rs.map((r) => r.residentGBs)),
      gbsVsKeepAlive: ratios[i].length ? mean(ratios[i]) : NaN,
      gbsVsKeepAliveSeeds: ratios[i].length,
      aboveKeepAliveSeeds: above[i],
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
  return {
    setup: s,
    rows,
    keepAliveSweep,
    tycheSweep: pOffs.map((pOff, i) => {
      const { runs, ratios: rs } = tycheSweep[i];
      return {
        pOff,
        hitRate: mean(runs.map((r) => 1 - r.coldStarts / r.requests)),
        residentGBs: mean(runs.map((r) => r.residentGBs)),
        meanWaitS: mean(runs.map((r) => r.meanWaitS)),
        gbsVsKeepAlive: rs.length ? mean(rs) : NaN,
        seeds: rs.length,
      };
    }),
  };
}

export function formatScenario(t: ScenarioTable): string[] {
  const s = t.setup;
  const what =
    s.name === 'shapes'
      ? `the three shapes of trace.ts (steady then slowing; slow, a lull, busy; two bursts of 8 with a trickle between) at per-minute rates, ${s.models} models of 1 GB, budget for ${s.budgetModels}, every load ${s.loadS} s`
      : s.name === 'random'
        ? `${s.models} models of 1 GB with seeded random phases (rates 0.05–3 per minute, lulls, bursts of 4–16 within 2 s), budget for ${s.budgetModels}, every load ${s.loadS} s`
        : `${s.models} models of 0.5–2 GB (seeded, log-uniform) with Zipf popularity (6 requests per minute in all) that is re-drawn once mid-trace, Poisson(0.5) bursts of 4–16 per model, budget for half their bytes, loads of ${s.loadS} s per GB`;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const vsKa = (r: ScenarioRow) =>
    `${Number.isFinite(r.gbsVsKeepAlive) ? r.gbsVsKeepAlive.toFixed(2) : '–'} (${r.gbsVsKeepAliveSeeds}${r.aboveKeepAliveSeeds ? `; above keep-alive’s best in ${r.aboveKeepAliveSeeds}` : ''})`;
  return [
    `**Simulation, ${s.name} traces** (virtual clock; the real residency manager and policies): ${what}, ${s.durationS} s per trace, seeds ${s.seeds[0]}–${s.seeds.at(-1)}, every request ${s.serviceS} s, keep-alive TTL ${s.keepAliveS} s. Means over the seeds; cold starts summed, by cause (the model's state when the request arrived). Rows in italics are references no served policy can be (oracle.ts).`,
    '',
    '| policy | mean load wait | p99 | load wait vs on-demand | share of request time waiting | hit rate | resident GB·s | GB·s ÷ keep-alive’s at the same hit rate (n seeds) | cold starts: first / offloaded / evicted / load under way |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...t.rows.map(
      (r) =>
        `| ${r.label} | ${r.meanWaitS.toFixed(2)} s | ${r.p99WaitS.toFixed(1)} s | −${pct(r.waitReduction)} | ${(r.waitShare * 100).toFixed(1)}% | ${pct(r.hitRate)} | ${r.residentGBs.toFixed(0)} | ${vsKa(r)} | ${r.coldStarts}/${r.requests}: ${r.coldCauses.first} / ${r.coldCauses.offloaded} / ${r.coldCauses.evicted} / ${r.coldCauses.loading + r.coldCauses.unloading} |`,
    ),
    '',
    `Keep-alive at other TTLs (${s.name} traces, means over the seeds):`,
    '',
    '| TTL | hit rate | mean load wait | resident GB·s |',
    '|---:|---:|---:|---:|',
    ...t.keepAliveSweep.map((k) => `| ${k.ttlS === 0 ? '0 (on-demand)' : `${k.ttlS} s`} | ${pct(k.hitRate)} | ${k.meanWaitS.toFixed(2)} s | ${k.residentGBs.toFixed(0)} |`),
    '',
    `Tyche at other P_off (${s.name} traces, otherwise as served; means over the seeds; the GB·s ratio over the seeds where keep-alive reaches the hit rate, n):`,
    '',
    '| P_off | hit rate | mean load wait | resident GB·s | GB·s ÷ keep-alive’s at the same hit rate (n) |',
    '|---:|---:|---:|---:|---:|',
    ...t.tycheSweep.map((k) => `| ${k.pOff} | ${pct(k.hitRate)} | ${k.meanWaitS.toFixed(2)} s | ${k.residentGBs.toFixed(0)} | ${Number.isFinite(k.gbsVsKeepAlive) ? k.gbsVsKeepAlive.toFixed(2) : '–'} (${k.seeds}) |`),
  ];
}

/** The rows of the budget sweep: the served policies and the two references that bound them. */
const BUDGET_ROWS = ['tyche', 'keep-alive', 'lru', 'on-demand', '*rate oracle: generated rates known*', '*unlimited budget, never offload*'];

export interface BudgetPoint {
  /** models that fit (random family) or share of the models' bytes (skewed family) */
  budget: number;
  table: ScenarioTable;
}

/**
 * The same family and seeds at several memory budgets: how the cut against on-demand and the
 * GB·s against keep-alive's curve move as the budget grows from tight to nearly all models.
 * `budgets` are numbers of models for the 1 GB families and shares of the bytes for skewed.
 */
export async function budgetSweep(s: ScenarioSetup, budgets: readonly number[], opts: ScenarioOptions): Promise<BudgetPoint[]> {
  const points: BudgetPoint[] = [];
  for (const budget of budgets) {
    const setup = s.name === 'skewed' ? { ...s, budgetShare: budget } : { ...s, budgetModels: budget };
    const table = await scenarioTable(setup, { ...opts, only: BUDGET_ROWS, pOffSweep: false, progress: opts.progress && ((line) => opts.progress!(`${line} (budget ${budget})`)) });
    points.push({ budget, table });
  }
  return points;
}

export function formatBudgetSweep(name: string, points: readonly BudgetPoint[]): string[] {
  if (points.length === 0) return [];
  const s = points[0].table.setup;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const row = (t: ScenarioTable, label: string) => t.rows.find((r) => r.label === label)!;
  const budgetOf = (p: BudgetPoint) => (s.name === 'skewed' ? `${Math.round(p.budget * 100)}% of the bytes` : `${p.budget} of ${s.models} models`);
  return [
    `**Budget sweep, ${name} traces** (as the ${name} table above, ${s.seeds.length} seeds, the budget varied; load wait cut against on-demand at the same budget, means over the seeds; tyche's GB·s against keep-alive's TTL curve at tyche's hit rate, n seeds where that curve reaches it):`,
    '',
    '| budget | tyche | keep-alive | lru | *rate oracle* | *unlimited budget* | tyche hit rate | tyche GB·s ÷ keep-alive’s at the same hit rate (n) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...points.map((p) => {
      const t = p.table;
      const ty = row(t, 'tyche');
      const vsKa = `${Number.isFinite(ty.gbsVsKeepAlive) ? ty.gbsVsKeepAlive.toFixed(2) : '–'} (${ty.gbsVsKeepAliveSeeds}${ty.aboveKeepAliveSeeds ? `; above keep-alive’s best in ${ty.aboveKeepAliveSeeds}` : ''})`;
      return `| ${budgetOf(p)} | −${pct(ty.waitReduction)} | −${pct(row(t, 'keep-alive').waitReduction)} | −${pct(row(t, 'lru').waitReduction)} | −${pct(row(t, '*rate oracle: generated rates known*').waitReduction)} | −${pct(row(t, '*unlimited budget, never offload*').waitReduction)} | ${pct(ty.hitRate)} | ${vsKa} |`;
    }),
  ];
}
