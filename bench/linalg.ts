/**
 * npm run bench:linalg [-- --quick] [-- --json] [-- --threads 1,2]
 *
 * Times the operations of docs/engines.md and BENCHMARKS.md — GEMM 2048³ f32, GEMM 512×2048×768 f32, full
 * SVD 768×2048 f32, randomized top-128 / top-384 SVD (q = 2) of 768×2048 f32, Cholesky 2048 f64,
 * symmetric eigendecomposition 768 f64 — for numpy (bench/linalg_numpy.py, in a subprocess of this
 * same run, on the same input files) and for every engine that loads here: native, ts, tfjs.
 * Prints medians in ms, ×numpy ratios (lower is better), GFLOP/s for GEMM, and accuracy: the
 * relative reconstruction error of the full SVD and, for randomized SVD, the reconstruction error
 * relative to the optimal rank-r error (exact singular values). Also: ts GEMM on 1 and 2 threads.
 *
 * The machine is shared and noisy, and a load that comes and goes would favour whichever side ran
 * in the quiet minute. So the measurement is done in rounds: numpy, then the engines, then numpy
 * again…; a ratio is formed within each round (engine time / numpy time of the same round) and the
 * median over rounds is reported, next to the median times.
 *
 * Options (`--name=value` or `--name value`):
 * --quick (every dimension / 4, one round), --json (machine-readable on stdout),
 * --engines=native,ts,tfjs (which to load; default all),
 * --ops=gemm_square,gemm_rect,svd_full,rsvd_small,rsvd_large,chol,eig (default all),
 * --threads=N or a list, e.g. --threads 1,2 (threads for numpy — via OPENBLAS_NUM_THREADS — and
 * every engine; each count is measured in turn and reported in its own table plus a summary;
 * default all cores: on a busy machine 1 thread gives steadier ratios, as 2-thread OpenBLAS
 * stalls when a core is taken),
 * --rounds=N (numpy/engine alternations per thread count; default 3, 1 with --quick),
 * --native-coretype=auto|<name> (for this run only: `auto` ignores an OPENBLAS_CORETYPE set in the
 * environment and lets src/engine/openblas-coretype.ts choose from the CPU flags; a name forces it).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadNativeEngine, type NativeEngine } from '../src/engine/native.js';
import { coretypeForCpuFlags, parseCpuFlags } from '../src/engine/openblas-coretype.js';
import type { Engine, SvdResult } from '../src/engine/types.js';

const argv = process.argv.slice(2);
const flags = new Set(argv);
const quick = flags.has('--quick');
const asJson = flags.has('--json');
/** `--name=value` or `--name value`. */
const option = (name: string): string | undefined => {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
    if (argv[i] === `--${name}` && i + 1 < argv.length && !argv[i + 1].startsWith('--')) return argv[i + 1];
  }
  return undefined;
};
const wantedEngines = new Set((option('engines') ?? 'native,ts,tfjs').split(','));
const wantedOps = option('ops')?.split(',');
const nativeCoretype = option('native-coretype');
const threadsOption = option('threads');
const roundsOption = option('rounds');
const RUNS = 5;
const BUDGET_S = quick ? 3 : 8;
const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');
const tmpDir = path.join(repoRoot, '.bench-tmp', `linalg-${process.pid}`);
const log = (line: string) => (asJson ? process.stderr : process.stdout).write(line + '\n');

// ---------------------------------------------------------------- operations and inputs

type OpKind = 'gemm' | 'svd' | 'rsvd' | 'chol' | 'eig';
interface Op {
  id: string;
  label: string;
  kind: OpKind;
  m: number;
  n: number;
  k: number;
  r: number;
  /** input files (raw little-endian) shared with the numpy peer */
  files: { a: string; b?: string };
  inputs: { a: Float32Array | Float64Array; b?: Float32Array };
}

/** Seeded standard normals (mulberry32 + Box–Muller): identical inputs on every run. */
function gaussian(length: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float64Array(length);
  for (let i = 0; i < length; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < length) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

/** m×n with a power-law spectrum like trained weights: Gaussian columns scaled by (1 + j)^-0.6. */
function weightLike(m: number, n: number, seed: number): Float32Array {
  const g = gaussian(m * n, seed);
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[i * n + j] = g[i * n + j] * (1 + j) ** -0.6;
  return out;
}

/** Symmetric n×n; diagonally dominant (so positive definite) when `dominant`. Cholesky time does not depend on the values. */
function symmetric(n: number, seed: number, dominant: boolean): Float64Array {
  const g = gaussian(n * n, seed);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) out[i * n + j] = out[j * n + i] = g[i * n + j];
    if (dominant) out[i * n + i] = 4 * n;
  }
  return out;
}

function defineOps(): Op[] {
  const s = quick ? 4 : 1; // --quick divides every dimension by 4
  const gemmN = 2048 / s;
  const [gm, gk, gn] = [512 / s, 2048 / s, 768 / s];
  const [sm, sn] = [768 / s, 2048 / s];
  const [r1, r2] = [128 / s, 384 / s];
  const cholN = 2048 / s;
  const eigN = 768 / s;
  const svdInput = weightLike(sm, sn, 3);
  const f32 = (length: number, seed: number) => Float32Array.from(gaussian(length, seed));
  const ops: Omit<Op, 'files'>[] = [
    { id: 'gemm_square', label: `GEMM ${gemmN}³ f32`, kind: 'gemm', m: gemmN, n: gemmN, k: gemmN, r: 0,
      inputs: { a: f32(gemmN * gemmN, 1), b: f32(gemmN * gemmN, 2) } },
    { id: 'gemm_rect', label: `GEMM ${gm}×${gk}×${gn} f32`, kind: 'gemm', m: gm, n: gn, k: gk, r: 0,
      inputs: { a: f32(gm * gk, 4), b: f32(gk * gn, 5) } },
    { id: 'svd_full', label: `full SVD ${sm}×${sn} f32`, kind: 'svd', m: sm, n: sn, k: 0, r: 0, inputs: { a: svdInput } },
    { id: 'rsvd_small', label: `rand. top-${r1} SVD ${sm}×${sn} f32, q=2`, kind: 'rsvd', m: sm, n: sn, k: 0, r: r1,
      inputs: { a: svdInput } },
    { id: 'rsvd_large', label: `rand. top-${r2} SVD ${sm}×${sn} f32, q=2`, kind: 'rsvd', m: sm, n: sn, k: 0, r: r2,
      inputs: { a: svdInput } },
    { id: 'chol', label: `Cholesky ${cholN} f64`, kind: 'chol', m: cholN, n: cholN, k: 0, r: 0,
      inputs: { a: symmetric(cholN, 6, true) } },
    { id: 'eig', label: `sym. eig ${eigN} f64`, kind: 'eig', m: eigN, n: eigN, k: 0, r: 0, inputs: { a: symmetric(eigN, 7, false) } },
  ];
  const file = (id: string, name: string) => path.join(tmpDir, `${id}_${name}.bin`);
  const unknown = wantedOps?.filter((id) => !ops.some((op) => op.id === id)) ?? [];
  if (unknown.length) throw new Error(`--ops: unknown ${unknown.join(', ')}; choose from ${ops.map((op) => op.id).join(', ')}`);
  return ops
    .filter((op) => !wantedOps || wantedOps.includes(op.id))
    .map((op) => ({ ...op, files: { a: file(op.id, 'a'), b: op.inputs.b ? file(op.id, 'b') : undefined } }));
}

function writeRaw(file: string, data: Float32Array | Float64Array): void {
  writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function writeInputs(ops: Op[]): void {
  mkdirSync(tmpDir, { recursive: true });
  for (const op of ops) {
    writeRaw(op.files.a, op.inputs.a);
    if (op.files.b && op.inputs.b) writeRaw(op.files.b, op.inputs.b);
  }
}

// ---------------------------------------------------------------- numpy peer

interface PeerResult {
  ms: number;
  minMs: number;
  samples: number;
  cpuMs?: number;
  relError?: number;
  optimalError?: number;
  errorVsOptimal?: number;
}
interface NumpyReport {
  numpy: string;
  openblas: { source: string; version: string | null; corename: string | null; threads: number | null };
  results: Record<string, PeerResult>;
}

const OVERSAMPLE = 16;
const POWER_ITERATIONS = 2;

/**
 * With the native engine loaded, numpy's randomized SVD gets the native sketch Ω (same seed, same
 * numbers), so the two run the same algorithm on the same random matrix and their accuracies
 * compare exactly rather than up to the luck of the draw (±0.05% at rank 128 here).
 */
function writeNativeSketches(ops: Op[], native: NativeEngine | undefined): Map<string, string> {
  const files = new Map<string, string>();
  if (!native) return files;
  for (const op of ops.filter((o) => o.kind === 'rsvd')) {
    const width = Math.min(op.r + OVERSAMPLE, op.m, op.n);
    const stream = native.gaussianSketch(op.n * width, 0);
    const file = path.join(tmpDir, `${op.id}_omega.bin`);
    writeRaw(file, stream);
    files.set(op.id, file);
  }
  return files;
}

/** `accuracy`: also compute the accuracy figures (the optimal error needs a full f64 SVD: once is enough). */
function runNumpy(ops: Op[], sketches: Map<string, string>, threads: number, accuracy: boolean): NumpyReport | { skipped: string } {
  const spec = {
    runs: RUNS,
    accuracy,
    budget_s: BUDGET_S,
    ops: ops.map((op) => ({
      ...{ id: op.id, kind: op.kind, m: op.m, n: op.n, k: op.k, r: op.r },
      ...{ oversample: OVERSAMPLE, power_iterations: POWER_ITERATIONS },
      ...{ a: op.files.a, b: op.files.b, omega: sketches.get(op.id) },
    })),
  };
  const specFile = path.join(tmpDir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(spec));
  // numpy's own OpenBLAS must detect the CPU itself: drop the overrides meant for Debian's build.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  env.OPENBLAS_NUM_THREADS = String(threads);
  const proc = spawnSync('python3', [path.join(benchDir, 'linalg_numpy.py'), specFile], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (proc.error) return { skipped: `python3 could not be started (${proc.error.message})` };
  if (proc.status !== 0) return { skipped: `linalg_numpy.py failed: ${(proc.stderr || '').trim().split('\n').pop() ?? ''}` };
  return JSON.parse(proc.stdout) as NumpyReport;
}

// ---------------------------------------------------------------- engines

interface LoadedEngine {
  engine: Engine;
  /** for ts: a second instance to measure other thread counts */
  create?: (threads: number) => Promise<Engine>;
}

type EngineSlot = { name: string; loaded?: LoadedEngine; skipped?: string };
let loadedNative: NativeEngine | undefined;

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

/** Accepts either an Engine or a `{ ok, engine | reason }` load result. */
function asEngine(value: unknown): Engine {
  const v = value as { ok?: boolean; engine?: Engine; reason?: string; gemm?: unknown };
  if (typeof v?.gemm === 'function') return value as Engine;
  if (v?.ok === true && v.engine) return v.engine;
  throw new Error(v?.reason ?? 'the loader returned neither an engine nor a reason');
}

function loadNative(threads: number): EngineSlot {
  // OpenBLAS reads OPENBLAS_CORETYPE when the addon loads, which happens right here.
  if (nativeCoretype === 'auto') delete process.env.OPENBLAS_CORETYPE;
  else if (nativeCoretype) process.env.OPENBLAS_CORETYPE = nativeCoretype;
  const native = loadNativeEngine({ threads });
  if (!native.ok) return { name: 'native', skipped: `${native.reason} (${native.fix})` };
  loadedNative = native.engine;
  return { name: 'native', loaded: { engine: native.engine } };
}

/** Another engineer's module: loaded by URL so this script runs (and says so) while it is missing. */
async function loadTs(threads: number): Promise<EngineSlot> {
  try {
    const url = new URL('../src/engine/ts/index.js', import.meta.url).href;
    const mod = (await import(url)) as { createTsEngine?: (o: { threads: number }) => unknown };
    const factory = mod.createTsEngine;
    if (typeof factory !== 'function') throw new Error('src/engine/ts/index.ts does not export createTsEngine');
    const create = async (t: number) => asEngine(await factory({ threads: t }));
    return { name: 'ts', loaded: { engine: await create(threads), create } };
  } catch (err) {
    return { name: 'ts', skipped: `module missing or failed to load: ${errorText(err)}` };
  }
}

async function loadTfjs(): Promise<EngineSlot> {
  try {
    const url = new URL('../src/engine/tfjs.js', import.meta.url).href;
    const mod = (await import(url)) as { loadTfjsEngine?: () => unknown };
    if (typeof mod.loadTfjsEngine !== 'function') throw new Error('src/engine/tfjs.ts does not export loadTfjsEngine');
    return { name: 'tfjs', loaded: { engine: asEngine(await mod.loadTfjsEngine()) } };
  } catch (err) {
    return { name: 'tfjs', skipped: `module missing or failed to load: ${errorText(err)}` };
  }
}

async function loadEngines(threads: number): Promise<EngineSlot[]> {
  const slots: EngineSlot[] = [];
  if (wantedEngines.has('native')) slots.push(loadNative(threads));
  if (wantedEngines.has('ts')) slots.push(await loadTs(threads));
  if (wantedEngines.has('tfjs')) slots.push(await loadTfjs());
  return slots;
}

// ---------------------------------------------------------------- timing and accuracy

interface Timing {
  ms: number;
  minMs: number;
  samples: number;
  /**
   * median process CPU time per call. On one thread it is the wall time the call would take on an
   * idle machine (time spent waiting for a core does not count), so it stays comparable when
   * other processes load the machine; with more threads it adds the threads up (spinning included).
   */
  cpuMs: number;
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median (and minimum) of up to RUNS timed calls after one warm-up; stops early past BUDGET_S. */
async function timed<T>(fn: () => T): Promise<Timing & { result: T }> {
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  let start = performance.now();
  let cpuStart = cpuNow();
  let result = fn();
  const first = (performance.now() - start) / 1000;
  const samples: number[] = [];
  const cpu: number[] = [];
  if (first > BUDGET_S / 2) {
    samples.push(first); // too slow to repeat much: the warm-up counts
    cpu.push(cpuNow() - cpuStart);
  }
  let spent = first;
  while (samples.length < RUNS && (samples.length === 0 || spent < BUDGET_S)) {
    start = performance.now();
    cpuStart = cpuNow();
    result = fn();
    const dt = (performance.now() - start) / 1000;
    cpu.push(cpuNow() - cpuStart);
    samples.push(dt);
    spent += dt;
    await new Promise((resolve) => setImmediate(resolve)); // let worker-thread engines settle
  }
  return { ms: medianOf(samples) * 1000, minMs: Math.min(...samples) * 1000, samples: samples.length, cpuMs: medianOf(cpu), result };
}

/** The timing fields of a cell. */
function timingOf(t: Timing): Timing {
  return { ms: t.ms, minMs: t.minMs, samples: t.samples, cpuMs: t.cpuMs };
}

/** ‖A − U·diag(S)·Vt‖_F in f64, with a trusted f64 GEMM when one is loaded, else a plain loop. */
function residualNorm(op: Op, svd: SvdResult, reference: Engine | undefined): number {
  const { m, n } = op;
  const r = svd.S.length;
  const us = new Float64Array(m * r);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) us[i * r + j] = svd.U[i * r + j] * svd.S[j];
  const vt = Float64Array.from(svd.Vt);
  const resid = Float64Array.from(op.inputs.a);
  if (reference) {
    reference.gemm(m, n, r, us, vt, resid, { alpha: -1, beta: 1 });
  } else {
    for (let i = 0; i < m; i++) {
      for (let p = 0; p < r; p++) {
        const u = us[i * r + p];
        for (let j = 0; j < n; j++) resid[i * n + j] -= u * vt[p * n + j];
      }
    }
  }
  let sum = 0;
  for (const v of resid) sum += v * v;
  return Math.sqrt(sum);
}

function frobenius(a: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * a[i];
  return Math.sqrt(sum);
}

interface Cell {
  /** median */
  ms?: number;
  /** fastest run (JSON only: a hint of what a quiet machine gives) */
  minMs?: number;
  samples?: number;
  /** median CPU time per call (see Timing.cpuMs) */
  cpuMs?: number;
  /** cpuMs / numpy's cpuMs: on one thread, the comparison least disturbed by other load */
  cpuRatio?: number;
  ratio?: number;
  /** the within-round ratios the median `ratio` was taken from (more than one round) */
  ratios?: number[];
  /** fastest run / numpy's fastest run: what a machine without the other load would show, roughly */
  bestRatio?: number;
  gflops?: number;
  relError?: number;
  errorVsOptimal?: number;
  skipped?: string;
}

/** `accuracy`: also compute the reconstruction error of SVDs (rounds after the first skip it). */
async function measure(
  op: Op,
  engine: Engine,
  reference: Engine | undefined,
  optimalError: number | undefined,
  accuracy: boolean,
): Promise<Cell> {
  const { m, n, k, r } = op;
  try {
    switch (op.kind) {
      case 'gemm': {
        const a = op.inputs.a as Float32Array;
        const b = op.inputs.b as Float32Array;
        const c = new Float32Array(m * n);
        const t = await timed(() => engine.gemm(m, n, k, a, b, c));
        return { ...timingOf(t), gflops: (2 * m * n * k) / (t.ms * 1e6) };
      }
      case 'svd': {
        const a = op.inputs.a as Float32Array;
        const t = await timed(() => engine.svd(m, n, a));
        if (!accuracy) return timingOf(t);
        return { ...timingOf(t), relError: residualNorm(op, t.result, reference) / frobenius(a) };
      }
      case 'rsvd': {
        const a = op.inputs.a as Float32Array;
        const t = await timed(() => engine.svdRandomized(m, n, a, r, { oversample: OVERSAMPLE, powerIterations: POWER_ITERATIONS, seed: 0 }));
        if (!accuracy) return timingOf(t);
        const err = residualNorm(op, t.result, reference);
        return { ...timingOf(t), errorVsOptimal: optimalError ? err / optimalError : undefined };
      }
      case 'chol': {
        const a = op.inputs.a as Float64Array;
        const t = await timed(() => engine.cholesky(n, a));
        return timingOf(t);
      }
      case 'eig': {
        const a = op.inputs.a as Float64Array;
        const t = await timed(() => engine.eigSym(n, a));
        return timingOf(t);
      }
    }
  } catch (err) {
    return { skipped: errorText(err) };
  }
}

// ---------------------------------------------------------------- report

function formatCell(cell: Cell | undefined, isPeer: boolean): string {
  if (!cell) return '—';
  if (cell.skipped !== undefined) return `— (${cell.skipped.slice(0, 60)})`;
  const parts = [cell.ms! >= 1000 ? `${(cell.ms! / 1000).toFixed(2)} s` : `${cell.ms!.toFixed(cell.ms! < 10 ? 1 : 0)} ms`];
  if (!isPeer && cell.ratio !== undefined) parts.push(`×${cell.ratio.toFixed(2)}`);
  if (cell.gflops !== undefined) parts.push(`${cell.gflops.toFixed(cell.gflops < 10 ? 1 : 0)} GFLOP/s`);
  if (cell.relError !== undefined) parts.push(`err ${cell.relError.toExponential(1)}`);
  if (cell.errorVsOptimal !== undefined) parts.push(`err ${cell.errorVsOptimal.toFixed(5)}× opt`);
  return parts.join(', ');
}

function parseThreadCounts(): number[] {
  if (threadsOption === undefined) return [os.availableParallelism()];
  const counts = threadsOption.split(',').map((t) => Number(t.trim()));
  if (counts.length === 0 || counts.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new Error(`--threads must be a positive integer or a comma-separated list of them (e.g. 1,2), got ${threadsOption}`);
  }
  return [...new Set(counts)];
}

function parseRounds(): number {
  const rounds = roundsOption === undefined ? (quick ? 1 : 3) : Number(roundsOption);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${roundsOption}`);
  return rounds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * One cell from the rounds' cells: median time and median within-round ratio; accuracy figures
 * come from the first round (they do not depend on the round).
 */
function combineRounds(cells: Cell[]): Cell {
  const timedCells = cells.filter((c) => c.ms !== undefined);
  if (timedCells.length === 0) return cells[0];
  const ratios = timedCells.filter((c) => c.ratio !== undefined).map((c) => c.ratio!);
  const ms = median(timedCells.map((c) => c.ms!));
  const first = timedCells[0];
  return {
    ...first,
    ms,
    minMs: Math.min(...timedCells.map((c) => c.minMs ?? c.ms!)),
    cpuMs: timedCells.every((c) => c.cpuMs !== undefined) ? median(timedCells.map((c) => c.cpuMs!)) : undefined,
    samples: timedCells.reduce((sum, c) => sum + (c.samples ?? 0), 0),
    ratio: ratios.length ? median(ratios) : undefined,
    ratios: ratios.length > 1 ? ratios : undefined,
    gflops: first.gflops !== undefined ? (first.gflops * first.ms!) / ms : undefined,
  };
}

interface ThreadRun {
  threads: number;
  rounds: number;
  numpy: NumpyReport | { skipped: string };
  engines: Record<string, string>;
  table: Record<string, Record<string, Cell>>;
}

/** Every selected op for numpy and each engine, `rounds` times alternating, at one thread count. */
async function runAtThreads(ops: Op[], threads: number, rounds: number): Promise<ThreadRun> {
  const slots = await loadEngines(threads);
  const reference = slots.find((s) => s.name === 'native')?.loaded?.engine ?? slots.find((s) => s.name === 'ts')?.loaded?.engine;
  const sketches = writeNativeSketches(ops, loadedNative);
  const perRound: Record<string, Record<string, Cell[]>> = Object.fromEntries(ops.map((op) => [op.id, {}]));
  let numpy: NumpyReport | { skipped: string } = { skipped: 'not run' };
  for (let round = 0; round < rounds; round++) {
    const tag = `[${threads} thread${threads === 1 ? '' : 's'}, round ${round + 1}/${rounds}]`;
    log(`${tag} numpy (bench/linalg_numpy.py)…`);
    const report = runNumpy(ops, sketches, threads, round === 0);
    if (round === 0 || 'results' in report) numpy = report;
    const peer = 'results' in report ? report.results : {};
    for (const op of ops) {
      const cells = perRound[op.id];
      const p = peer[op.id];
      if (p) {
        const gflops = op.kind === 'gemm' ? (2 * op.m * op.n * op.k) / (p.ms * 1e6) : undefined;
        (cells.numpy ??= []).push({ ms: p.ms, minMs: p.minMs, samples: p.samples, cpuMs: p.cpuMs, relError: p.relError, errorVsOptimal: p.errorVsOptimal, gflops });
      }
      for (const slot of slots) {
        if (!slot.loaded) continue;
        log(`${tag} ${op.label}: ${slot.name}…`);
        // accuracy needs numpy's optimal error, which only the first round computes
        const optimal = (numpy as NumpyReport).results?.[op.id]?.optimalError;
        const cell = await measure(op, slot.loaded.engine, round === 0 ? reference : undefined, optimal, round === 0);
        if (cell.ms !== undefined && p) cell.ratio = cell.ms / p.ms;
        (cells[slot.name] ??= []).push(cell);
      }
    }
  }
  const table: Record<string, Record<string, Cell>> = {};
  for (const op of ops) {
    const row = Object.fromEntries(Object.entries(perRound[op.id]).map(([name, cells]) => [name, combineRounds(cells)]));
    const peerBest = row.numpy?.minMs;
    for (const [name, cell] of Object.entries(row)) {
      if (name !== 'numpy' && peerBest && cell.minMs !== undefined) cell.bestRatio = cell.minMs / peerBest;
      const peerCpu = row.numpy?.cpuMs;
      if (name !== 'numpy' && peerCpu && cell.cpuMs !== undefined) cell.cpuRatio = cell.cpuMs / peerCpu;
    }
    table[op.id] = row;
  }
  const engines = Object.fromEntries(slots.map((s) => [s.name, s.loaded ? s.loaded.engine.describe() : `skipped: ${s.skipped}`]));
  for (const slot of slots) slot.loaded?.engine.dispose();
  return { threads, rounds, numpy, engines, table };
}

async function main(): Promise<void> {
  const threadCounts = parseThreadCounts();
  const rounds = parseRounds();
  log(`generating inputs${quick ? ' (--quick: every dimension / 4)' : ''}…`);
  const ops = defineOps();
  writeInputs(ops);
  try {
    const runs: ThreadRun[] = [];
    for (const threads of threadCounts) runs.push(await runAtThreads(ops, threads, rounds));

    // ts GEMM scaling: 1 thread vs 2, once.
    const tsThreads: Record<string, Cell> = {};
    const square = ops.find((o) => o.id === 'gemm_square');
    if (wantedEngines.has('ts') && square) {
      const ts = await loadTs(1);
      if (ts.loaded?.create) {
        ts.loaded.engine.dispose();
        for (const t of [1, 2]) {
          log(`  ts GEMM on ${t} thread(s)…`);
          const engine = await ts.loaded.create(t);
          tsThreads[String(t)] = await measure(square, engine, undefined, undefined, false);
          engine.dispose();
        }
      }
    }

    const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), node: process.version, loadavg: os.loadavg() };
    if (asJson) {
      const byThreads = runs.map((run) => ({
        threads: run.threads,
        rounds: run.rounds,
        numpy: run.numpy,
        engines: run.engines,
        ops: ops.map((op) => ({ id: op.id, label: op.label, results: run.table[op.id] })),
      }));
      process.stdout.write(JSON.stringify({ quick, machine, runs: byThreads, tsGemmThreads: tsThreads }, null, 2) + '\n');
    } else {
      for (const run of runs) printReport(ops, run, machine);
      if (runs.length > 1) printSummary(ops, runs);
      printTsThreads(ops, tsThreads);
    }
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** When the user's OPENBLAS_CORETYPE differs from what the CPU flags would choose, say so. */
function nativeKernelHint(): string | undefined {
  if (!loadedNative || loadedNative.openblas.coretype.source !== 'user') return undefined;
  const best = coretypeForCpuFlags(parseCpuFlags(readCpuinfo()));
  if (!best || best.toLowerCase() === loadedNative.openblas.corename.toLowerCase()) return undefined;
  return (
    `note: OPENBLAS_CORETYPE=${loadedNative.openblas.coretype.coretype} comes from the environment and is respected; ` +
    `this CPU supports ${best} kernels (--native-coretype=auto measures them)`
  );
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

function printReport(ops: Op[], run: ThreadRun, machine: { cpu: string; cores: number; node: string }): void {
  const { numpy, engines, table } = run;
  const columns = ['numpy', ...Object.keys(engines).filter((e) => !engines[e].startsWith('skipped'))];
  log('');
  log(`## ${run.threads} thread${run.threads === 1 ? '' : 's'} for numpy and engines (${run.rounds} round${run.rounds === 1 ? '' : 's'})`);
  log(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);
  if ('results' in numpy) {
    const ob = numpy.openblas;
    log(`numpy ${numpy.numpy}: OpenBLAS ${ob.version ?? '?'}, ${ob.corename ?? '?'} kernels, ${ob.threads ?? '?'} threads (via ${ob.source})`);
  } else {
    log(`numpy: skipped — ${numpy.skipped}`);
  }
  for (const [name, text] of Object.entries(engines)) log(`${name}: ${text}`);
  const kernelHint = nativeKernelHint();
  if (kernelHint) log(kernelHint);
  log('');
  log('median time; ×numpy = median over rounds of (time / numpy time in the same round), lower is better');
  log('err = ‖A−UΣVᵀ‖/‖A‖, or for randomized SVD the error relative to the optimal rank-r error');
  if (loadedNative) log("randomized SVD: numpy is given the native engine's Gaussian sketch (seed 0), so their errors compare exactly");
  log('');
  log(`| operation | ${columns.join(' | ')} |`);
  log(`|---|${columns.map(() => '---').join('|')}|`);
  for (const op of ops) log(`| ${op.label} | ${columns.map((c) => formatCell(table[op.id]?.[c], c === 'numpy')).join(' | ')} |`);
  if (run.rounds > 1 && columns.includes('native')) {
    log('');
    log('native ×numpy in each round:');
    for (const op of ops) {
      const ratios = table[op.id]?.native?.ratios;
      const best = table[op.id]?.native?.bestRatio;
      const cpu = run.threads === 1 ? table[op.id]?.native?.cpuRatio : undefined;
      const tail = [best !== undefined ? `fastest / fastest ×${best.toFixed(2)}` : '', cpu !== undefined ? `CPU time ×${cpu.toFixed(2)}` : '']
        .filter(Boolean)
        .join(', ');
      if (ratios) log(`  ${op.label}: ${ratios.map((r) => `×${r.toFixed(2)}`).join(' ')}${tail ? `; ${tail}` : ''}`);
    }
  }

  const nat = (id: string) => table[id]?.native;
  if (!ops.some((op) => nat(op.id)?.ratio !== undefined)) return;
  log('');
  const check = (label: string, ok: boolean) => log(`  ${ok ? 'met   ' : 'MISSED'} ${label}`);
  log('native targets:');
  const gs = nat('gemm_square');
  if (gs?.ratio !== undefined) check(`GEMM square ≤ 1.1× numpy (×${gs.ratio.toFixed(2)})`, gs.ratio <= 1.1);
  const rsOp = ops.find((o) => o.id === 'rsvd_small');
  const rs = nat('rsvd_small');
  if (rsOp && rs?.ratio !== undefined) {
    const peerErr = table.rsvd_small?.numpy?.errorVsOptimal;
    const label = `randomized top-${rsOp.r} ≤ 1.0× numpy (×${rs.ratio.toFixed(2)}) at error ${rs.errorVsOptimal?.toFixed(5)}× optimal`;
    // "equal or better": same sketch, so only rounding may separate the two
    const accurate = (rs.errorVsOptimal ?? Infinity) <= (peerErr ?? 0) * (1 + 1e-5);
    check(`${label} vs numpy ${peerErr?.toFixed(5)}×`, rs.ratio <= 1 && accurate);
  }
  const ch = nat('chol');
  if (ch?.ratio !== undefined) check(`Cholesky ≤ 1.0× numpy (×${ch.ratio.toFixed(2)})`, ch.ratio <= 1);
  const eig = nat('eig');
  if (eig?.ratio !== undefined) check(`sym. eig ≤ 1.0× numpy (×${eig.ratio.toFixed(2)})`, eig.ratio <= 1);
}

/** One line per op: each engine's ×numpy at every thread count measured. */
function printSummary(ops: Op[], runs: ThreadRun[]): void {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.engines).filter((e) => !r.engines[e].startsWith('skipped'))))];
  const heads = names.flatMap((name) => runs.map((r) => `${name} ${r.threads}t`));
  log('');
  log('## summary: ×numpy = median of within-round ratios; best = fastest run / numpy\'s fastest run;');
  log('## CPU (1 thread only) = median CPU time per call / numpy\'s, which waiting for a core does not inflate;');
  log('## numpy columns: its median time');
  log('');
  log(`| operation | ${runs.map((r) => `numpy ${r.threads}t`).join(' | ')} | ${heads.join(' | ')} |`);
  log(`|---|${[...runs, ...heads].map(() => '---').join('|')}|`);
  for (const op of ops) {
    const peer = runs.map((r) => formatCell(r.table[op.id]?.numpy, true));
    const cells = names.flatMap((name) =>
      runs.map((r) => {
        const c = r.table[op.id]?.[name];
        if (c?.ratio === undefined) return '—';
        const extra = [c.bestRatio !== undefined ? `best ×${c.bestRatio.toFixed(2)}` : undefined];
        if (r.threads === 1 && c.cpuRatio !== undefined) extra.push(`CPU ×${c.cpuRatio.toFixed(2)}`);
        const shown = extra.filter((e) => e !== undefined);
        return `×${c.ratio.toFixed(2)}${shown.length ? ` (${shown.join(', ')})` : ''}`;
      }),
    );
    log(`| ${op.label} | ${peer.join(' | ')} | ${cells.join(' | ')} |`);
  }
}

function printTsThreads(ops: Op[], tsThreads: Record<string, Cell>): void {
  if (!Object.keys(tsThreads).length) return;
  const g = (t: string) => tsThreads[t]?.gflops?.toFixed(2) ?? '—';
  const square = ops.find((o) => o.id === 'gemm_square');
  log('');
  log(`ts ${square?.label ?? 'GEMM'}: 1 thread ${g('1')} GFLOP/s, 2 threads ${g('2')} GFLOP/s (targets ≥ 3 and ≥ 5.5)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:linalg failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
