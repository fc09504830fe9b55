/**
 * npx tsx bench/compress-default-vs-paper.ts [--quick] [--experts N] [--types gate,up] [--weights bf16|f32] [--engine auto|native|ts] [--seed S] [--json]
 *
 * Compresses one generated MoE layer at Qwen3-30B-A3B shapes (128 experts of 768×2048; --quick:
 * 16) with the default recipe (preset "default") and with the paper preset, in the same run, on
 * the same data, each in its own child process so that each peak RSS is its own. γ 0.6.
 *
 * Target: the default takes at most 1.5× the paper preset's time; peak memory within one group's
 * Gram matrices plus one layer's weights. Times are the algorithm's (compressLayerType's own
 * clock): weight loading is excluded for both, and for the default so is the time its gram()
 * callback spends making the synthetic Gram matrices (a real run reads them from disk).
 *
 * The weights are bf16 numbers by default (`--weights bf16`), as a checkpoint stored in bf16 gives
 * them, and the workers hold them as the compress pipeline does: packed to bf16 when that is exact
 * (packLossless), else f32 (`--weights f32`: arbitrary f32 values, held in f32).
 *
 * The memory bound is computed as: the worker's RSS before it read the layer (runtime, engine,
 * code) + the layer's weights of the type in f32 (the compressor's working precision) + one group's
 * Gram matrices (4 × d² f64). A second, tighter figure counts the weights as held (bf16: half).
 * The compressed result the call returns (stored parameters in f32) is reported beside it: it is
 * γ × the f32 weights, held by any method.
 *
 * Output: progress with ETA on stderr; a table on stdout, or with --json one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressLayerType } from '../src/compress/compress-layer.js';
import { DEFAULT_PRESET } from '../src/compress/presets.js';
import { parseRecipe } from '../src/compress/recipe.js';
import { packLossless } from '../src/compress/expert-weights.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { D, generateLayer, P, syntheticGram } from './lib/qwen3-layer.js';

const RETAIN = 0.6;
const benchFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(benchFile), '..');

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface WorkerReport {
  preset: string;
  totalMs: number;
  gramMs: number;
  algorithmMs: number;
  timings: Record<string, number>;
  peakRssMiB: number;
  /** RSS of the process before it read the layer (runtime, engine, code) */
  startRssMiB: number;
  weightsMiB: number;
  /** the weights as held (packed bf16 or f32) */
  weightsHeldMiB: number;
  /** the compressed factors the call returned, f32 */
  resultMiB: number;
  /** CPU time of the whole process (all BLAS threads) during the call, less the synthetic Gram's */
  cpuSeconds: number;
  ranks: number[];
  ratio: number;
  outputRel?: number;
  weightRel: number;
  choices?: unknown;
  engine: string;
}

async function worker(): Promise<void> {
  const preset = argValue('--preset') as string;
  const n = Number(argValue('--n'));
  const seed = Number(argValue('--seed'));
  const frequencies = JSON.parse(readFileSync(argValue('--frequencies') as string, 'utf8')) as number[];
  const { engine } = await createEngine(parseEngineChoice(argValue('--engine') ?? 'auto'));
  const startRssMiB = process.memoryUsage().rss / 2 ** 20;
  const fd = openSync(argValue('--input') as string, 'r');
  // as the pipeline holds a layer: packed to bf16 where that loses nothing
  const matrices = Array.from({ length: n }, (_, i) => {
    const m = new Float32Array(P * D);
    readSync(fd, m, 0, m.byteLength, i * m.byteLength);
    return packLossless(m);
  });
  const heldBytes = matrices.reduce((a, m) => a + (m instanceof Float32Array ? m.byteLength : m.bits.byteLength), 0);
  closeSync(fd);
  let gramMs = 0;
  let gramCpuUs = 0;
  // the paper preset ignores Gram matrices for its factors, but both get them so that both report
  // the output-space error the same way
  const gram = (e: number): Float64Array => {
    const t = performance.now();
    const c = process.cpuUsage();
    const g = syntheticGram(engine, e, frequencies[e], seed);
    const dc = process.cpuUsage(c);
    gramCpuUs += dc.user + dc.system;
    gramMs += performance.now() - t;
    return g;
  };
  const recipe = parseRecipe({ retain: RETAIN, preset });
  const needsGram = recipe.whiten !== false || recipe.refit;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let lastReport = t0;
  // factor pass: one line every 10 s with the ETA of this pass (the spectra come before it)
  const onGroupDone = (done: number, total: number): void => {
    const now = performance.now();
    if (now - lastReport < 10_000 && done < total) return;
    lastReport = now;
    const elapsed = (now - t0) / 1000;
    process.stderr.write(`  [${preset}] factors: group ${done}/${total}, ${elapsed.toFixed(0)} s since start\n`);
  };
  process.stderr.write(`  [${preset}] ${n} experts: spectra of every group first (no progress until the factor pass)\n`);
  // handed over, as the compress pipeline does: each group's weights go once its factors are made
  const result = compressLayerType({ engine, recipe, matrices, p: P, d: D, frequencies, onGroupDone, handOverMatrices: true, ...(needsGram ? { gram } : {}) });
  const cpu = process.cpuUsage(cpu0);
  const report: WorkerReport = {
    preset,
    totalMs: result.timings.totalMs,
    gramMs,
    algorithmMs: result.timings.totalMs - gramMs,
    timings: { ...result.timings },
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    startRssMiB,
    weightsMiB: (n * P * D * 4) / 2 ** 20,
    weightsHeldMiB: heldBytes / 2 ** 20,
    resultMiB: (result.params.stored * 4) / 2 ** 20,
    cpuSeconds: (cpu.user + cpu.system - gramCpuUs) / 1e6,
    ranks: result.ranks,
    ratio: result.params.ratio,
    ...(result.errors.outputRel !== undefined ? { outputRel: result.errors.outputRel } : {}),
    weightRel: result.errors.weightRelAfter,
    ...(result.choices ? { choices: result.choices } : {}),
    engine: result.engine,
  };
  engine.dispose();
  process.stdout.write(JSON.stringify(report) + '\n');
}

function runChild(args: string[]): WorkerReport {
  // stderr is the worker's progress and any error: shown as it comes
  const proc = spawnSync(process.execPath, ['--import', 'tsx', benchFile, '--worker', ...args], { encoding: 'utf8', maxBuffer: 1 << 26, cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  if (proc.error) throw new Error(`worker could not be started: ${proc.error.message}`);
  if (proc.status !== 0) throw new Error(`worker failed (status ${proc.status}); its error is above`);
  return JSON.parse(proc.stdout.trim().split('\n').pop() as string) as WorkerReport;
}

interface TypeResult {
  type: string;
  paper: WorkerReport;
  default: WorkerReport;
  /** default's algorithm time over paper's (target ≤ 1.5) */
  timeRatio: number;
  cpuRatio: number;
  bound: { startRssMiB: number; weightsMiB: number; groupGramsMiB: number; totalMiB: number; withResultMiB: number; weightsHeldMiB: number; heldTotalMiB: number };
  withinBound: boolean;
  withinHeldBound: boolean;
}

async function driver(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const json = process.argv.includes('--json');
  const n = Number(argValue('--experts') ?? (quick ? 16 : 128));
  const types = (argValue('--types') ?? 'gate').split(',');
  const engineChoice = argValue('--engine') ?? 'auto';
  const seed = Number(argValue('--seed') ?? 1);
  const weightsDtype = argValue('--weights') ?? 'bf16';
  if (weightsDtype !== 'bf16' && weightsDtype !== 'f32') throw new Error(`--weights ${weightsDtype}: give bf16 or f32`);
  if (!Number.isInteger(n) || n < 4) throw new Error(`--experts ${argValue('--experts')}: give a whole number ≥ 4 (one group of 4)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rfid-bench-dvp-'));
  const { engine, notice } = await createEngine('auto');
  const log = (line: string) => (json ? process.stderr : process.stdout).write(line + '\n');
  log(`default-vs-paper bench: ${n} experts of ${P}×${D} (${weightsDtype} values), γ ${RETAIN}, default = preset "${DEFAULT_PRESET}"; data generation ${notice}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const groupGramsMiB = (4 * D * D * 8) / 2 ** 20;
  const results: TypeResult[] = [];
  try {
    for (const [t, type] of types.entries()) {
      const bin = path.join(dir, `${type}.bin`);
      const freqFile = path.join(dir, `${type}.json`);
      writeFileSync(freqFile, JSON.stringify(generateLayer(engine, bin, n, seed * 100 + t, { bf16: weightsDtype === 'bf16' })));
      const common = ['--input', bin, '--frequencies', freqFile, '--n', String(n), '--seed', String(seed), '--engine', engineChoice];
      const paper = runChild(['--preset', 'paper', ...common]);
      const best = runChild(['--preset', 'default', ...common]);
      const total = best.startRssMiB + best.weightsMiB + groupGramsMiB;
      const heldTotal = best.startRssMiB + best.weightsHeldMiB + groupGramsMiB;
      results.push({
        type,
        paper,
        default: best,
        timeRatio: best.algorithmMs / paper.algorithmMs,
        cpuRatio: best.cpuSeconds / paper.cpuSeconds,
        bound: { startRssMiB: best.startRssMiB, weightsMiB: best.weightsMiB, groupGramsMiB, totalMiB: total, withResultMiB: total + best.resultMiB, weightsHeldMiB: best.weightsHeldMiB, heldTotalMiB: heldTotal },
        withinBound: best.peakRssMiB <= total,
        withinHeldBound: best.peakRssMiB <= heldTotal,
      });
      rmSync(bin);
    }
  } finally {
    engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  if (json) {
    process.stdout.write(JSON.stringify({ experts: n, p: P, d: D, retain: RETAIN, defaultPreset: DEFAULT_PRESET, loadAverage: os.loadavg(), results }) + '\n');
    return;
  }
  const f = (x: number, digits = 0) => x.toFixed(digits);
  console.log('');
  console.log('| type | preset | algorithm s | CPU s | spectrum / factor / residual / errors s | peak RSS MiB | kept | output error | weight error |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    for (const w of [r.paper, r.default]) {
      const tm = w.timings;
      console.log(
        `| ${r.type} | ${w.preset} | ${f(w.algorithmMs / 1000, 1)} | ${f(w.cpuSeconds, 1)} | ${f(tm.spectrumMs / 1000, 1)} / ${f(tm.factorMs / 1000, 1)} / ${f(tm.residualMs / 1000, 1)} / ${f(tm.errorsMs / 1000, 1)} | ${f(w.peakRssMiB)} | ${f(w.ratio, 4)} | ${w.outputRel?.toFixed(4) ?? '—'} | ${f(w.weightRel, 4)} |`,
      );
    }
  }
  console.log('');
  for (const r of results) {
    if (r.default.choices) console.log(`[${r.type}] default chose: ${JSON.stringify(r.default.choices)}`);
    const b = r.bound;
    console.log(
      `[${r.type}] time default/paper ${f(r.timeRatio, 2)}× (CPU ${f(r.cpuRatio, 2)}×; target ≤ 1.5×). Peak RSS default ${f(r.default.peakRssMiB)} MiB, paper ${f(r.paper.peakRssMiB)} MiB; ` +
        `bound = start ${f(b.startRssMiB)} + weights (f32) ${f(b.weightsMiB)} + one group's Grams ${f(b.groupGramsMiB)} = ${f(b.totalMiB)} MiB (${r.withinBound ? 'within' : 'OVER'}); ` +
        `with the compressed result it returns (${f(r.default.resultMiB)} MiB) ${f(b.withResultMiB)} MiB. ` +
        `With the weights as held (${f(b.weightsHeldMiB)} MiB): ${f(b.heldTotalMiB)} MiB (${r.withinHeldBound ? 'within' : 'over'})`,
    );
  }
  console.log(`summary: ${results.map((r) => `${r.type}: time ${f(r.timeRatio, 2)}×, peak ${f(r.default.peakRssMiB)}/${f(r.bound.totalMiB)} MiB (paper ${f(r.paper.peakRssMiB)}; weights held ${f(r.bound.weightsHeldMiB)} MiB)`).join('; ')}`);
}

if (process.argv.includes('--worker')) await worker();
else await driver();
