/**
 * npx tsx bench/compress-default-vs-paper.ts [--quick] [--experts N] [--types gate,up] [--engine auto|native|ts] [--seed S]
 *
 * Compresses one generated MoE layer at Qwen3-30B-A3B shapes (128 experts of 768×2048; --quick:
 * 16) with the default recipe (preset "default") and with the paper preset, in the same run, on
 * the same data, each in its own child process so that each peak RSS is its own. γ 0.6.
 *
 * Target: the default takes at most 1.5× the paper preset's time; peak memory within one group's
 * Gram matrices plus one layer's weights. Times are the algorithm's (compressLayerType's own
 * clock): weight loading is excluded for both, and for the default so is the time its gram()
 * callback spends making the synthetic Gram matrices (a real run reads them from disk).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressLayerType } from '../src/compress/compress-layer.js';
import { DEFAULT_PRESET } from '../src/compress/presets.js';
import { parseRecipe } from '../src/compress/recipe.js';
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
  const matrices = Array.from({ length: n }, (_, i) => {
    const m = new Float32Array(P * D);
    readSync(fd, m, 0, m.byteLength, i * m.byteLength);
    return m;
  });
  closeSync(fd);
  let gramMs = 0;
  // the paper preset ignores Gram matrices for its factors, but both get them so that both report
  // the output-space error the same way
  const gram = (e: number): Float64Array => {
    const t = performance.now();
    const g = syntheticGram(engine, e, frequencies[e], seed);
    gramMs += performance.now() - t;
    return g;
  };
  const recipe = parseRecipe({ retain: RETAIN, preset });
  const needsGram = recipe.whiten !== false || recipe.refit;
  const result = compressLayerType({ engine, recipe, matrices, p: P, d: D, frequencies, ...(needsGram ? { gram } : {}) });
  const report: WorkerReport = {
    preset,
    totalMs: result.timings.totalMs,
    gramMs,
    algorithmMs: result.timings.totalMs - gramMs,
    timings: { ...result.timings },
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    startRssMiB,
    weightsMiB: (n * P * D * 4) / 2 ** 20,
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
  const proc = spawnSync(process.execPath, ['--import', 'tsx', benchFile, '--worker', ...args], { encoding: 'utf8', maxBuffer: 1 << 26, cwd: repoRoot });
  if (proc.error) throw new Error(`worker could not be started: ${proc.error.message}`);
  if (proc.status !== 0) throw new Error(`worker failed (status ${proc.status}): ${(proc.stderr || '').trim().split('\n').slice(-5).join('\n')}`);
  return JSON.parse(proc.stdout.trim().split('\n').pop() as string) as WorkerReport;
}

async function driver(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const n = Number(argValue('--experts') ?? (quick ? 16 : 128));
  const types = (argValue('--types') ?? 'gate').split(',');
  const engineChoice = argValue('--engine') ?? 'auto';
  const seed = Number(argValue('--seed') ?? 1);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rfid-bench-dvp-'));
  const { engine, notice } = await createEngine('auto');
  console.log(`default-vs-paper bench: ${n} experts of ${P}×${D}, γ ${RETAIN}, default = preset "${DEFAULT_PRESET}"; data generation ${notice}`);
  const groupGramsMiB = (4 * D * D * 8) / 2 ** 20;
  const summary: string[] = [];
  try {
    for (const [t, type] of types.entries()) {
      const bin = path.join(dir, `${type}.bin`);
      const freqFile = path.join(dir, `${type}.json`);
      writeFileSync(freqFile, JSON.stringify(generateLayer(engine, bin, n, seed * 100 + t)));
      const common = ['--input', bin, '--frequencies', freqFile, '--n', String(n), '--seed', String(seed), '--engine', engineChoice];
      const paper = runChild(['--preset', 'paper', ...common]);
      const best = runChild(['--preset', 'default', ...common]);
      for (const r of [paper, best]) {
        console.log(
          `[${type}] ${r.preset.padEnd(7)} algorithm ${(r.algorithmMs / 1000).toFixed(2)} s (total ${(r.totalMs / 1000).toFixed(2)} s, synthetic Gram ${(r.gramMs / 1000).toFixed(2)} s; ` +
            `spectrum ${(r.timings.spectrumMs / 1000).toFixed(2)}, factor ${(r.timings.factorMs / 1000).toFixed(2)}, residual ${(r.timings.residualMs / 1000).toFixed(2)}, errors ${(r.timings.errorsMs / 1000).toFixed(2)}), ` +
            `peak RSS ${r.peakRssMiB.toFixed(0)} MiB; kept ${r.ratio.toFixed(4)}; output error ${r.outputRel?.toFixed(4) ?? '—'}, weight error ${r.weightRel.toFixed(4)}`,
        );
      }
      if (best.choices) console.log(`[${type}] default chose: ${JSON.stringify(best.choices)}`);
      const ratio = best.algorithmMs / paper.algorithmMs;
      const bound = best.startRssMiB + best.weightsMiB + groupGramsMiB;
      console.log(
        `[${type}] time default/paper ${ratio.toFixed(2)}× (target ≤ 1.5×); peak RSS default ${best.peakRssMiB.toFixed(0)} MiB vs the process at start ${best.startRssMiB.toFixed(0)} MiB + one layer's ${type} weights (f32) ${best.weightsMiB.toFixed(0)} MiB + one group's Gram matrices ${groupGramsMiB.toFixed(0)} MiB = ${bound.toFixed(0)} MiB` +
          ` (paper ${paper.peakRssMiB.toFixed(0)} MiB); output error default ${best.outputRel?.toFixed(4)} vs paper ${paper.outputRel?.toFixed(4)}`,
      );
      summary.push(`${type}: ${ratio.toFixed(2)}×, RSS ${best.peakRssMiB.toFixed(0)}/${bound.toFixed(0)} MiB`);
      rmSync(bin);
    }
  } finally {
    engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`summary: default/paper time ${summary.join('; ')}`);
}

if (process.argv.includes('--worker')) await worker();
else await driver();
