/**
 * `npm run bench:serve`: trace replay over loopback, per residency policy, and the cold start of
 * an original checkpoint against its factored compressed form at retain 0.6.
 *
 * Models: generated Qwen3-MoE-shaped checkpoints (BF16, random weights, the shipped model's
 * tokenizer so prompts tokenize), large enough that a real load takes seconds when the weights
 * are read into the server's memory (`--serve-args --no-mmap`). By default the server maps the
 * files instead, and a load from the page cache is page-table work (BENCHMARKS.md, "Checkpoint
 * files mapped into memory"); `--cold-from-disk` times the cold starts from the disk. They live in
 * a temp directory removed at the end, or in --models-dir.
 *
 * Trace: seeded (bench/serve/trace.ts), several models, Poisson rates that change, bursts and
 * lulls. TIME IS COMPRESSED: the rates are per second where production traces are per minute,
 * while loads keep their real duration, so a load is long relative to the gaps between requests
 * (harder for every policy than an uncompressed trace). The memory budget holds fewer models
 * than are served. Each policy replays the same trace against a fresh `rfid-moe serve` process.
 *
 * Per policy: mean / p50 / p99 time to first token (client-side, streamed), mean load wait, the
 * share of request time spent waiting for loads, cold starts, hit rate and resident GB·s (the
 * server's own accounting). Results on stdout (markdown, or JSON with --json), progress on stderr.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { compress } from '../src/compress/index.js';
import { openModel } from '../src/compressed/open-model.js';
import { residentWeightBytes } from '../src/runtime/resident-weights.js';
import { makeTinyCheckpoint } from '../test/helpers/fixtures.js';
import type { PolicyName } from '../src/serve/policies.js';
import { dropCachedPages } from './lib/page-cache.js';
import { budgetSweep, formatBudgetSweep, formatScenario, scenarioTable, type BudgetPoint, type ScenarioTable } from './serve/simulation-table.js';
import { simulate, type SimulationResult } from './serve/simulate.js';
import { makeTrace, type Arrival } from './serve/trace.js';

const repoRoot = path.resolve(import.meta.dirname, '..');
const TOKENIZER_DIR = path.join(repoRoot, 'examples/models/mixtral-tiny-shakespeare');

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: '3' },
    hidden: { type: 'string', default: '512' },
    layers: { type: 'string', default: '4' },
    experts: { type: 'string', default: '16' },
    width: { type: 'string', default: '512' },
    duration: { type: 'string', default: '120' },
    'rate-scale': { type: 'string', default: '0.5' },
    'budget-models': { type: 'string', default: '2' },
    'keep-alive': { type: 'string', default: '10' },
    policies: { type: 'string', default: 'tyche,keep-alive,on-demand,lru' },
    seed: { type: 'string', default: '7' },
    'max-tokens': { type: 'string', default: '2' },
    'cold-start': { type: 'boolean', default: true },
    'no-cold-start': { type: 'boolean', default: false },
    'cold-repeats': { type: 'string', default: '3' },
    /** the cold starts again from the disk: each model file's cached pages dropped before each request (dd iflag=nocache) */
    'cold-from-disk': { type: 'boolean', default: false },
    /**
     * the replay as on a machine whose RAM is the budget: no model's files are cached when the
     * replay starts, and a model's cached pages are dropped whenever the server is seen to have
     * offloaded it (polling /health every 100 ms), so its next load reads the disk
     */
    'drop-cache-on-unload': { type: 'boolean', default: false },
    /** more arguments for every replayed \`rfid-moe serve\` (e.g. --no-mmap), split at spaces */
    'serve-args': { type: 'string', default: '' },
    json: { type: 'boolean', default: false },
    /** the virtual-clock simulation of the policies (per-minute rates, fixed load time) */
    'no-simulate': { type: 'boolean', default: false },
    'no-budget-sweep': { type: 'boolean', default: false },
    'sim-duration': { type: 'string', default: '3600' },
    'sim-rate-scale': { type: 'string', default: '0.0667' },
    'sim-load': { type: 'string', default: '5' },
    'sim-service': { type: 'string', default: '1' },
    'sim-keep-alive': { type: 'string', default: '600' },
    'sim-seeds': { type: 'string', default: '10' },
    /**
     * keep the generated checkpoints here (reused when their shape matches) instead of a temp dir
     * removed at the end; e.g. .bench-tmp/serve-models (gitignored). Never inside a tracked folder.
     */
    'models-dir': { type: 'string' },
    /** the servers' load messages on stderr */
    verbose: { type: 'boolean', default: false },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ServerProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

function startServe(args: string[]): Promise<ServerProcess> {
  const verbose = values.verbose ?? false;
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'serve', ...args, '--port', '0', ...(verbose ? [] : ['--quiet'])], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' },
  });
  let err = '';
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      if (verbose) process.stderr.write(`  [server ${(performance.now() / 1000).toFixed(1)} s] ${d.toString()}`);
      err += d.toString();
      const m = / at (http:\/\/[^ ]+) /.exec(err);
      if (m)
        resolve({
          url: m[1],
          pid: child.pid!,
          async stop() {
            child.kill('SIGTERM');
            await exited;
          },
        });
    });
    void exited.then(() => reject(new Error(`rfid-moe serve exited: ${err}`)));
  });
}

interface RequestResult {
  model: string;
  ttftMs: number;
  totalMs: number;
  loadWaitMs: number;
  cold: boolean;
  ok: boolean;
  /** the response body when not ok (the server's error object) */
  error?: string;
}

/** One streamed completion; TTFT = until the first chunk carrying text. */
async function request(url: string, model: string, maxTokens: number, i: number): Promise<RequestResult> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: `ROMEO ${i}:\n`, max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true }),
  });
  const loadWaitMs = Number(res.headers.get('x-rfid-moe-load-wait-ms') ?? NaN);
  const cold = res.headers.get('x-rfid-moe-cold-start') === '1';
  let ttftMs = NaN;
  const reader = res.body!.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (Number.isNaN(ttftMs)) ttftMs = performance.now() - t0;
    text += new TextDecoder().decode(value);
  }
  const ok = res.status === 200 && text.includes('[DONE]');
  return { model, ttftMs, totalMs: performance.now() - t0, loadWaitMs, cold, ok, ...(ok ? {} : { error: `${res.status} ${text.slice(0, 500)}` }) };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

interface PolicyRow {
  policy: string;
  requests: number;
  failed: number;
  ttftMeanMs: number;
  ttftP50Ms: number;
  ttftP99Ms: number;
  loadWaitMeanMs: number;
  loadWaitShare: number;
  coldStarts: number;
  hitRate: number;
  loads: number;
  residentGBs: number;
  meanLoadS: number;
  /** mean time a request spent after its load wait (queueing for the decoder, prefill, decode) */
  meanServiceS: number;
}

/**
 * Reads every file of the served checkpoints once, so that each policy's replay starts with them
 * in the page cache: otherwise the policy replayed first reads from disk and its loads take up to
 * 2.5× longer (measured: m2's first load 4.79 s for the first policy, 2.14 s for the second).
 */
async function warmPageCache(dirs: string[]): Promise<void> {
  for (const entry of dirs) {
    const dir = entry.slice(entry.indexOf('=') + 1);
    for (const name of await readdir(dir)) {
      const file = path.join(dir, name);
      if ((await stat(file)).isFile()) for await (const _ of createReadStream(file, { highWaterMark: 8 << 20 }));
    }
  }
}

/**
 * Drops an offloaded model's cached pages (see --drop-cache-on-unload) until stopped: on each
 * change of a model's status to offloaded, seen by polling /health. A model offloaded and loaded
 * again between two polls keeps its pages; the replay's stderr says how many drops there were.
 */
function dropCacheOnUnload(url: string, dirs: string[]): { stop(): Promise<number> } {
  const dirOf = new Map(dirs.map((d) => [d.slice(0, d.indexOf('=')), d.slice(d.indexOf('=') + 1)]));
  const last = new Map<string, string>();
  let running = true;
  let drops = 0;
  const loop = (async () => {
    while (running) {
      const health = (await (await fetch(`${url}/health`)).json()) as { models: Array<{ id: string; status: string }> };
      for (const m of health.models) {
        const before = last.get(m.id);
        if (m.status === 'offloaded' && before !== undefined && before !== 'offloaded' && dirOf.has(m.id)) {
          dropCachedPages(dirOf.get(m.id)!);
          drops++;
        }
        last.set(m.id, m.status);
      }
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return drops;
    },
  };
}

async function replay(policy: string, dirs: string[], trace: Arrival[], budget: number): Promise<PolicyRow> {
  const fromDisk = values['drop-cache-on-unload'] ?? false;
  if (fromDisk) for (const d of dirs) dropCachedPages(d.slice(d.indexOf('=') + 1));
  else await warmPageCache(dirs);
  const extra = values['serve-args']!.split(' ').filter((a) => a !== '');
  const server = await startServe([...dirs, '--policy', policy, '--memory-budget', String(budget), '--keep-alive', values['keep-alive']!, ...extra]);
  const dropper = fromDisk ? dropCacheOnUnload(server.url, dirs) : null;
  try {
    const start = performance.now();
    const results = await Promise.all(
      trace.map(async (a, i) => {
        const delay = a.at * 1000 - (performance.now() - start);
        if (delay > 0) await sleep(delay);
        return request(server.url, a.model, num('max-tokens'), i);
      }),
    );
    if (dropper) log(`  ${policy}: dropped an offloaded model's cached pages ${await dropper.stop()} times`);
    const health = (await (await fetch(`${server.url}/health`)).json()) as { models: Array<{ resident_byte_seconds: number; loads: number }> };
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const loadSum = [...metrics.matchAll(/rfid_moe_model_load_seconds_sum\{model="[^"]+"\} ([\d.e+-]+)/g)].reduce((s, m) => s + Number(m[1]), 0);
    const loadCount = [...metrics.matchAll(/rfid_moe_model_load_seconds_count\{model="[^"]+"\} (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
    const ok = results.filter((r) => r.ok);
    const cold = ok.filter((r) => r.cold).length;
    return {
      policy,
      requests: results.length,
      failed: results.length - ok.length,
      ttftMeanMs: mean(ok.map((r) => r.ttftMs)),
      ttftP50Ms: pct(ok.map((r) => r.ttftMs), 50),
      ttftP99Ms: pct(ok.map((r) => r.ttftMs), 99),
      loadWaitMeanMs: mean(ok.map((r) => r.loadWaitMs)),
      loadWaitShare: ok.reduce((s, r) => s + r.loadWaitMs, 0) / ok.reduce((s, r) => s + r.totalMs, 0),
      coldStarts: cold,
      hitRate: 1 - cold / ok.length,
      loads: health.models.reduce((s, m) => s + m.loads, 0),
      residentGBs: health.models.reduce((s, m) => s + m.resident_byte_seconds, 0) / 1e9,
      meanLoadS: loadCount ? loadSum / loadCount : NaN,
      meanServiceS: mean(ok.map((r) => (r.totalMs - r.loadWaitMs) / 1000)),
    };
  } finally {
    await dropper?.stop();
    await server.stop();
  }
}

interface ColdRow {
  model: string;
  diskMB: number;
  residentMB: number;
  /** the server's peak RSS over the cold requests, less its RSS before the first (measured, not planned) */
  peakRssGrowthMB: number;
  loadS: number;
  ttftMs: number;
}

/** Cold start of one model: on-demand policy, so every request loads it again (with fromDisk, from the disk). */
async function coldStart(label: string, dir: string, repeats: number, budget: number, extra: string[] = [], fromDisk = false): Promise<ColdRow> {
  const server = await startServe([`m=${dir}`, '--policy', 'on-demand', '--memory-budget', String(budget), ...extra]);
  try {
    const ttft: number[] = [];
    const waits: number[] = [];
    const rssBefore = procStatusBytes(server.pid, 'VmRSS');
    for (let i = 0; i < repeats; i++) {
      if (fromDisk) dropCachedPages(dir);
      const r = await request(server.url, 'm', 1, i);
      if (!r.ok || !r.cold) throw new Error(`cold-start request ${i} on ${label} was ${r.ok ? 'not cold' : `refused: ${r.error}`}`);
      ttft.push(r.ttftMs);
      waits.push(r.loadWaitMs);
      await sleep(300); // the unload completes
    }
    const health = (await (await fetch(`${server.url}/health`)).json()) as { models: Array<{ bytes: number }> };
    const { stat } = await import('node:fs/promises');
    const { readdir } = await import('node:fs/promises');
    let disk = 0;
    for (const f of await readdir(dir)) if (f.endsWith('.safetensors')) disk += (await stat(path.join(dir, f))).size;
    const peakRssGrowthMB = (procStatusBytes(server.pid, 'VmHWM') - rssBefore) / 1e6;
    return { model: label, diskMB: disk / 1e6, residentMB: health.models[0].bytes / 1e6, peakRssGrowthMB, loadS: mean(waits) / 1000, ttftMs: mean(ttft) };
  } finally {
    await server.stop();
  }
}

/** A field of /proc/PID/status in bytes (Linux; NaN elsewhere, and the column reads "–"). */
function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

async function makeModel(dir: string, seed: number): Promise<void> {
  const hidden = num('hidden');
  await makeTinyCheckpoint(dir, 'qwen3_moe', {
    seed,
    dtype: 'BF16',
    hiddenSize: hidden,
    numHeads: hidden / 64,
    numKvHeads: Math.max(1, hidden / 256),
    headDim: 64,
    numLayers: num('layers'),
    numExperts: num('experts'),
    topK: 2,
    expertIntermediateSize: num('width'),
    vocabSize: 4096,
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TOKENIZER_DIR, f), path.join(dir, f));
}

interface SimulationTables {
  shapes: ScenarioTable;
  random: ScenarioTable;
  skewed: ScenarioTable;
  budgets: { random: BudgetPoint[]; skewed: BudgetPoint[] };
}

async function simulationTables(): Promise<SimulationTables> {
  const seeds = Array.from({ length: num('sim-seeds') }, (_, i) => i + 1);
  const common = { loadS: num('sim-load'), serviceS: num('sim-service'), keepAliveS: num('sim-keep-alive'), seeds };
  const progress = log;
  const shapes = await scenarioTable({ name: 'shapes', models: 3, budgetModels: 2, durationS: num('sim-duration'), ...common }, { rateScale: num('sim-rate-scale'), progress });
  const random = await scenarioTable({ name: 'random', models: 6, budgetModels: 3, durationS: 2 * num('sim-duration'), ...common }, { rateScale: 1, progress });
  // budgetModels is nominal here: the budget is half the models' bytes, which differ
  const skewed = await scenarioTable({ name: 'skewed', models: 12, budgetModels: 6, durationS: 2 * num('sim-duration'), ...common }, { rateScale: 1, progress });
  // the same families at other budgets: where the cut depends on room rather than on prediction
  const budgets = values['no-budget-sweep']
    ? { random: [], skewed: [] }
    : {
        random: await budgetSweep(random.setup, [2, 3, 4, 5], { rateScale: 1, progress }),
        skewed: await budgetSweep(skewed.setup, [0.25, 0.5, 0.75, 0.9], { rateScale: 1, progress }),
      };
  return { shapes, random, skewed, budgets };
}

const formatSimulation = (sim: SimulationTables): string[] => [
  ...formatScenario(sim.shapes),
  '',
  ...formatScenario(sim.random),
  '',
  ...formatScenario(sim.skewed),
  ...(sim.budgets.random.length ? ['', ...formatBudgetSweep('random', sim.budgets.random), '', ...formatBudgetSweep('skewed', sim.budgets.skewed)] : []),
];

const work = await mkdtemp(path.join(tmpdir(), 'rfid-bench-serve-'));
try {
  const n = num('models');
  const dirs: string[] = [];
  const policies = values.policies!.split(',').filter((p) => p !== '' && p !== 'none');
  const wantCold = values['cold-start'] && !values['no-cold-start'];
  if (policies.length === 0 && !wantCold) {
    // the simulation alone needs no checkpoints
    const sim = await simulationTables();
    process.stdout.write((values.json ? JSON.stringify(sim, null, 2) : formatSimulation(sim).join('\n')) + '\n');
    await rm(work, { recursive: true, force: true });
    process.exit(0);
  }
  const shapeTag = `h${num('hidden')}-l${num('layers')}-e${num('experts')}-w${num('width')}`;
  const modelsDir = values['models-dir'] ? path.resolve(values['models-dir']) : work;
  for (let i = 0; i < n; i++) {
    const dir = path.join(modelsDir, `qwen3-shaped-${shapeTag}-${i}`);
    const t0 = performance.now();
    if (existsSync(path.join(dir, 'config.json')) && existsSync(path.join(dir, 'tokenizer.json'))) {
      log(`reusing model m${i} at ${dir}`);
    } else {
      await makeModel(dir, 100 + i);
      log(`generated model m${i} in ${((performance.now() - t0) / 1000).toFixed(1)} s at ${dir}`);
    }
    dirs.push(`m${i}=${dir}`);
  }
  const firstModel = dirs[0].slice(dirs[0].indexOf('=') + 1);
  const config = JSON.parse(await readFile(path.join(firstModel, 'config.json'), 'utf8')) as Record<string, unknown>;
  const probe = await openCheckpoint(firstModel);
  // what the server holds: matrices as stored (BF16, its default), norms and router in f32
  const residentBytes = residentWeightBytes(probe, { bf16Weights: true });
  const f32Bytes = residentWeightBytes(probe);
  const bf16Bytes = probe.tensorNames().reduce((s, t) => s + probe.tensor(t)!.byteLength, 0);
  await probe.close();
  const budget = Math.floor(residentBytes * num('budget-models') * 1.02);
  const trace = makeTrace(
    dirs.map((d) => d.split('=')[0]),
    num('duration'),
    num('seed'),
    num('rate-scale'),
  );
  log(`trace: ${trace.length} requests over ${num('duration')} s (seed ${num('seed')}); each model ${(bf16Bytes / 1e9).toFixed(2)} GB BF16 on disk, ${(residentBytes / 1e9).toFixed(2)} GB resident; budget ${(budget / 1e9).toFixed(2)} GB (${num('budget-models')} of ${n} models)`);

  // Tables go to stdout as each part finishes (a failure in a later part keeps the earlier ones);
  // --json writes one object at the end.
  const printPart = (lines: string[]): void => {
    if (!values.json) process.stdout.write(lines.join('\n') + '\n\n');
  };
  const sim = values['no-simulate'] ? null : await simulationTables();
  if (sim) printPart(formatSimulation(sim));
  const rows: PolicyRow[] = [];
  for (const policy of policies) {
    log(`replaying with ${policy} …`);
    const row = await replay(policy, dirs, trace, budget);
    rows.push(row);
    log(`  ${policy}: mean TTFT ${row.ttftMeanMs.toFixed(0)} ms, mean load wait ${row.loadWaitMeanMs.toFixed(0)} ms, cold ${row.coldStarts}, ${row.residentGBs.toFixed(1)} GB·s`);
  }
  if (rows.length > 0) printPart(replayTable(rows, n, trace.length, budget, bf16Bytes, residentBytes));
  // The same trace on the virtual clock with the replay's mean load and service times: what the
  // policies do without CPU contention or timing noise, so a gap between the two tables is the
  // server's (or the timings'), not the policy's.
  const onClock = rows.length > 0 ? await virtualReplay(rows, dirs.map((d) => d.split('=')[0]), trace, residentBytes, budget) : null;
  if (onClock) printPart(virtualReplayTable(onClock));

  let cold: ColdRow[] = [];
  if (wantCold) {
    log('compressing m0 at retain 0.6 (factored) for the cold-start comparison …');
    const out = path.join(work, 'qwen3-shaped-0-r0.6');
    const t0 = performance.now();
    await compress(firstModel, { retain: 0.6 }, { out, selfSampled: { samples: 8, seqLen: 32, seed: 1 }, evaluation: false });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TOKENIZER_DIR, f), path.join(out, f)).catch(() => undefined);
    log(`  compressed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // the factored model's weights alone, as the server holds them (its BF16 factors kept as
    // stored): a budget of exactly this leaves no share for dense experts
    const factoredModel = await openModel(out);
    const factoredBytes = residentWeightBytes(factoredModel, { bf16Weights: true });
    await factoredModel.close();
    // each budget leaves 1 MiB beside the weights for the request's KV cache (a few positions here;
    // the server reserves it in the budget), less than one expert's dense form
    const kvRoom = 2 ** 20;
    const reps = num('cold-repeats');
    const disk = values['cold-from-disk'] ?? false;
    const where = disk ? ', from the disk' : '';
    cold = [
      await coldStart(`original (BF16 on disk, kept BF16, files mapped)${where}`, firstModel, reps, residentBytes + kvRoom, [], disk),
      await coldStart(`original, files read into memory (--no-mmap)${where}`, firstModel, reps, residentBytes + kvRoom, ['--no-mmap'], disk),
      await coldStart(`original, widened to f32 (--no-bf16-weights)${where}`, firstModel, reps, f32Bytes + kvRoom, ['--no-bf16-weights'], disk),
      await coldStart(`factored, retain 0.6, no expert materialised, files mapped${where}`, out, reps, factoredBytes + kvRoom, [], disk),
      await coldStart(`factored, retain 0.6, no expert materialised, files read (--no-mmap)${where}`, out, reps, factoredBytes + kvRoom, ['--no-mmap'], disk),
      await coldStart(`factored, retain 0.6, hottest experts materialised up to the original’s resident size${where}`, out, reps, residentBytes + kvRoom, [], disk),
    ];
    printPart(coldStartTable(cold));
  }

  const setup = {
    models: n,
    shape: { family: 'qwen3_moe', hidden: num('hidden'), layers: num('layers'), experts: num('experts'), expertWidth: num('width'), topK: 2, vocab: 4096, heads: config.num_attention_heads, kvHeads: config.num_key_value_heads },
    diskGBPerModel: bf16Bytes / 1e9,
    residentGBPerModel: residentBytes / 1e9,
    budgetGB: budget / 1e9,
    durationS: num('duration'),
    rateScale: num('rate-scale'),
    requests: trace.length,
    seed: num('seed'),
    keepAliveS: num('keep-alive'),
    maxTokens: num('max-tokens'),
  };
  if (values.json) process.stdout.write(JSON.stringify({ setup, policies: rows, replayOnVirtualClock: onClock, coldStart: cold, simulation: sim }, null, 2) + '\n');
} finally {
  await rm(work, { recursive: true, force: true });
}

function replayTable(rows: PolicyRow[], n: number, requests: number, budget: number, bf16Bytes: number, residentBytes: number): string[] {
  const onDemand = rows.find((r) => r.policy === 'on-demand');
  return [
    `Trace replay: ${n} Qwen3-shaped models (${(bf16Bytes / 1e9).toFixed(2)} GB BF16 each, ${(residentBytes / 1e9).toFixed(2)} GB resident), budget ${(budget / 1e9).toFixed(2)} GB, ${requests} requests over ${num('duration')} s (time-compressed trace, seed ${num('seed')}), keep-alive TTL ${num('keep-alive')} s, ${num('max-tokens')} tokens per request${values['serve-args'] ? `, servers run with \`${values['serve-args']}\`` : ''}${values['drop-cache-on-unload'] ? '; every load from the disk (no model cached at the start, an offloaded model\'s cached pages dropped)' : ''}.`,
    '',
    '| policy | mean TTFT | p50 TTFT | p99 TTFT | mean load wait | load wait vs on-demand (− = less) | share of request time waiting for loads | cold starts | hit rate | loads | mean load time | resident GB·s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.policy} | ${r.ttftMeanMs.toFixed(0)} ms | ${r.ttftP50Ms.toFixed(0)} ms | ${r.ttftP99Ms.toFixed(0)} ms | ${r.loadWaitMeanMs.toFixed(0)} ms | ${onDemand ? `${(((onDemand.loadWaitMeanMs - r.loadWaitMeanMs) / onDemand.loadWaitMeanMs) * -100).toFixed(0)}%` : '–'} | ${(r.loadWaitShare * 100).toFixed(1)}% | ${r.coldStarts}/${r.requests - r.failed}${r.failed ? ` (${r.failed} failed)` : ''} | ${(r.hitRate * 100).toFixed(0)}% | ${r.loads} | ${r.meanLoadS.toFixed(2)} s | ${r.residentGBs.toFixed(1)} |`,
    ),
  ];
}

interface VirtualReplay {
  loadS: number;
  serviceS: number;
  results: SimulationResult[];
}

async function virtualReplay(rows: PolicyRow[], models: string[], trace: Arrival[], modelBytes: number, budget: number): Promise<VirtualReplay> {
  const finite = (xs: number[]) => xs.filter((x) => Number.isFinite(x));
  const loadS = mean(finite(rows.map((r) => r.meanLoadS)));
  const serviceS = mean(finite(rows.map((r) => r.meanServiceS)));
  const results: SimulationResult[] = [];
  for (const r of rows) {
    results.push(await simulate({ policy: r.policy as PolicyName, trace, models, modelBytes, budgetBytes: budget, loadS, serviceS, keepAliveS: num('keep-alive'), tickS: 0.1 }));
  }
  return { loadS, serviceS, results };
}

function virtualReplayTable(v: VirtualReplay): string[] {
  const onDemand = v.results.find((r) => r.policy === 'on-demand');
  return [
    `The same trace on the virtual clock (bench/serve/simulate.ts: the real residency manager and policies, every load ${v.loadS.toFixed(2)} s and every request ${v.serviceS.toFixed(2)} s after its load, the replay's means; no CPU contention, no timing noise):`,
    '',
    '| policy | mean load wait | load wait vs on-demand (− = less) | cold starts | cold starts: first / offloaded / evicted / load under way | loads | resident GB·s (to the last request + 60 s) |',
    '|---|---:|---:|---:|---|---:|---:|',
    ...v.results.map(
      (r) =>
        `| ${r.policy} | ${(r.meanWaitS * 1000).toFixed(0)} ms | ${onDemand ? `${((r.meanWaitS / onDemand.meanWaitS - 1) * 100).toFixed(0)}%` : '–'} | ${r.coldStarts}/${r.requests} | ${r.coldCauses.first} / ${r.coldCauses.offloaded} / ${r.coldCauses.evicted} / ${r.coldCauses.loading + r.coldCauses.unloading} | ${r.loads} | ${r.residentGBs.toFixed(1)} |`,
    ),
  ];
}

function coldStartTable(cold: ColdRow[]): string[] {
  const lines = [
    'Cold start (on-demand policy, every request loads the model; mean of the repeats). "resident" is the server\'s plan; the peak RSS growth is measured (the server\'s VmHWM less its RSS before the first request; dense experts are built between the request and the unload, so that row shows only those built by then):',
    '',
    '| checkpoint | on disk | resident (plan) | peak RSS growth | load (reads; dense experts are built after it, in the background) | time to first token |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const c of cold) lines.push(`| ${c.model} | ${c.diskMB.toFixed(0)} MB | ${c.residentMB.toFixed(0)} MB | ${Number.isFinite(c.peakRssGrowthMB) ? `${c.peakRssGrowthMB.toFixed(0)} MB` : '–'} | ${c.loadS.toFixed(2)} s | ${c.ttftMs.toFixed(0)} ms |`);
  // "x% less" or "x% more" (a compressed checkpoint can load slower: it decodes and builds more)
  const change = (now: number, was: number, what: string) => {
    const pct = (1 - now / was) * 100;
    return `${Math.abs(pct).toFixed(0)}% ${pct >= 0 ? 'less' : 'more'} ${what}`;
  };
  for (const c of cold.slice(1)) lines.push('', `${c.model}: ${change(c.loadS, cold[0].loadS, 'load time')} and ${change(c.ttftMs, cold[0].ttftMs, 'cold time to first token')} than the original.`);
  return lines;
}
