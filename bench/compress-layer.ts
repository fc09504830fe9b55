/**
 * npx tsx bench/compress-layer.ts [--quick] [--experts N] [--types gate,up] [--engine auto|native|ts] [--seed S]
 *
 * Compresses one generated MoE layer at Qwen3-30B-A3B shapes (128 experts of 768×2048, gate and
 * up; --quick: 16 experts) with our compressLayerType and with the numpy implementation of the
 * same algorithm (scripts/rfid_numpy.py), on the same data in the same run. The layer is written
 * to a temporary raw f32 file; each implementation runs in its own child process, so the peak RSS
 * each reports (maxRSS) is its own. Prints the time ratio (ours / numpy, algorithm only, file
 * loading excluded), peak RSS, and whether both allocated the same ranks.
 *
 * Recipe: γ 0.6, k 4, ξ 0.8, β 0.03 tile residual, exact SVD (the paper's setting).
 * Data: per expert a low-rank signal of its own rank (16–96) and decay, plus noise of its own
 * level (a realistic spectrum: a head over a noise floor); routing counts Zipf-like (s = 1.1) over
 * a seeded permutation of the experts.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { compressLayerType } from '../src/compress/compress-layer.js';
import { parseRecipe } from '../src/compress/recipe.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import type { Engine } from '../src/engine/types.js';
import { D, generateLayer, P } from './lib/qwen3-layer.js';

const RECIPE = { retain: 0.6, groupSize: 4, xi: 0.8, residual: { share: 0.03, buckets: 'tile' as const } };

const benchFile = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(benchFile), '..');

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// ---------------------------------------------------------------- worker: our implementation

interface WorkerReport {
  ranks: number[];
  kTotal: number;
  ratio: number;
  engine: string;
  timings: Record<string, number>;
  loadMs: number;
  peakRssMiB: number;
  weightRelBefore: number[];
  weightRelAfter: number[];
  residualEnergyRecovered: number[];
}

async function worker(): Promise<void> {
  const input = argValue('--input') as string;
  const n = Number(argValue('--n'));
  const frequencies = JSON.parse(readFileSync(argValue('--frequencies') as string, 'utf8')) as number[];
  const { engine } = await createEngine(parseEngineChoice(argValue('--engine') ?? 'auto'));
  const t0 = performance.now();
  const fd = openSync(input, 'r');
  const matrices = Array.from({ length: n }, (_, i) => {
    const m = new Float32Array(P * D);
    readSync(fd, m, 0, m.byteLength, i * m.byteLength);
    return m;
  });
  closeSync(fd);
  const loadMs = performance.now() - t0;
  const result = compressLayerType({ engine, recipe: parseRecipe(RECIPE), matrices, p: P, d: D, frequencies });
  const report: WorkerReport = {
    ranks: result.ranks,
    kTotal: result.budget.kTotal,
    ratio: result.params.ratio,
    engine: result.engine,
    timings: { ...result.timings },
    loadMs,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    weightRelBefore: result.groups.map((g) => g.errors.weightRelBefore),
    weightRelAfter: result.groups.map((g) => g.errors.weightRelAfter),
    residualEnergyRecovered: result.groups.map((g) => g.errors.residualEnergyRecovered),
  };
  engine.dispose();
  process.stdout.write(JSON.stringify(report) + '\n');
}

// ---------------------------------------------------------------- driver

interface NumpyReport {
  ranks: number[];
  kTotal: number;
  params: { ratio: number };
  timings: Record<string, number>;
  loadMs: number;
  peakRssMiB: number;
  numpy: string;
  groups: Array<{ weightRelBefore: number; weightRelAfter: number; residualEnergyRecovered: number }>;
}

function runChild<T>(cmd: string, args: string[], env: NodeJS.ProcessEnv): T {
  const proc = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 1 << 26, cwd: repoRoot });
  if (proc.error) throw new Error(`${cmd} could not be started: ${proc.error.message}`);
  if (proc.status !== 0) throw new Error(`${cmd} ${args[0]} failed (status ${proc.status}): ${(proc.stderr || '').trim().split('\n').slice(-5).join('\n')}`);
  const last = proc.stdout.trim().split('\n').pop() as string;
  return JSON.parse(last) as T;
}

async function driver(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const n = Number(argValue('--experts') ?? (quick ? 16 : 128));
  const types = (argValue('--types') ?? 'gate,up').split(',');
  const engineChoice = argValue('--engine') ?? 'auto';
  const seed = Number(argValue('--seed') ?? 1);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rfid-bench-'));
  const { engine, notice } = await createEngine('auto');
  console.log(`compress-layer bench: ${n} experts of ${P}×${D}, types ${types.join('+')}, recipe ${JSON.stringify(RECIPE)}`);
  console.log(`data generation ${notice}; compression engine: --engine ${engineChoice}`);
  const numpyEnv = { ...process.env };
  // numpy's own OpenBLAS detects the CPU itself; the override is for Debian's build.
  delete numpyEnv.OPENBLAS_CORETYPE;
  const rows: string[] = [];
  let allSame = true;
  try {
    for (const [t, type] of types.entries()) {
      const bin = path.join(dir, `${type}.bin`);
      const freqFile = path.join(dir, `${type}.json`);
      const tg = performance.now();
      writeFileSync(freqFile, JSON.stringify(generateLayer(engine, bin, n, seed * 100 + t)));
      console.log(`[${type}] generated in ${((performance.now() - tg) / 1000).toFixed(1)} s`);
      const common = ['--n', String(n)];
      const ours = runChild<WorkerReport>(process.execPath, ['--import', 'tsx', benchFile, '--worker', '--input', bin, '--frequencies', freqFile, '--engine', engineChoice, ...common], process.env);
      const peer = runChild<NumpyReport>('python3', [
        path.join(repoRoot, 'scripts', 'rfid_numpy.py'), '--input', bin, '--frequencies', freqFile, ...common,
        '--p', String(P), '--d', String(D), '--retain', String(RECIPE.retain), '--residual-share', String(RECIPE.residual.share),
        '--group-size', String(RECIPE.groupSize), '--xi', String(RECIPE.xi),
      ], numpyEnv);
      const same = ours.ranks.length === peer.ranks.length && ours.ranks.every((r, g) => r === peer.ranks[g]);
      allSame &&= same;
      const diffs = ours.ranks.map((r, g) => r - peer.ranks[g]).filter((x) => x !== 0);
      const maxErrDiff = Math.max(...ours.weightRelAfter.map((e, g) => Math.abs(e - peer.groups[g].weightRelAfter)));
      console.log(`[${type}] engine: ${ours.engine}; numpy ${peer.numpy}`);
      if (!ours.engine.startsWith('native')) console.log(`[${type}] WARNING: not the native engine: the ≤ 1.0× numpy target applies to native only`);
      console.log(`[${type}] ours  total ${(ours.timings.totalMs / 1000).toFixed(2)} s (spectrum ${(ours.timings.spectrumMs / 1000).toFixed(2)}, factor ${(ours.timings.factorMs / 1000).toFixed(2)}, residual ${(ours.timings.residualMs / 1000).toFixed(2)}), load ${(ours.loadMs / 1000).toFixed(2)} s, peak RSS ${ours.peakRssMiB.toFixed(0)} MiB`);
      console.log(`[${type}] numpy total ${(peer.timings.totalMs / 1000).toFixed(2)} s (spectrum ${(peer.timings.spectrumMs / 1000).toFixed(2)}, factor ${(peer.timings.factorMs / 1000).toFixed(2)}, residual ${(peer.timings.residualMs / 1000).toFixed(2)}), load ${(peer.loadMs / 1000).toFixed(2)} s, peak RSS ${peer.peakRssMiB.toFixed(0)} MiB`);
      console.log(`[${type}] time ratio ours/numpy ${(ours.timings.totalMs / peer.timings.totalMs).toFixed(2)}×; K_total ${ours.kTotal} (numpy ${peer.kTotal}); stored/original ${ours.ratio.toFixed(6)} (numpy ${peer.params.ratio.toFixed(6)})`);
      console.log(`[${type}] ranks ${same ? 'identical' : `DIFFER in ${diffs.length} groups (${diffs.join(', ')})`}: ${ours.ranks.join(' ')}`);
      console.log(`[${type}] weight error after residual: mean ${mean(ours.weightRelAfter).toFixed(5)} (numpy ${mean(peer.groups.map((g) => g.weightRelAfter)).toFixed(5)}), max |Δ| ${maxErrDiff.toExponential(2)}; residual energy recovered ${mean(ours.residualEnergyRecovered).toFixed(4)}`);
      rows.push(`${type}: ${(ours.timings.totalMs / peer.timings.totalMs).toFixed(2)}×`);
      rmSync(bin);
    }
  } finally {
    engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`summary: time ours/numpy ${rows.join(', ')}; ranks ${allSame ? 'identical' : 'differ'}`);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

if (process.argv.includes('--worker')) await worker();
else await driver();
