/**
 * npm run bench:linalg [-- --quick] [-- --json]
 *
 * Times the operations of docs/engines.md and BENCHMARKS.md — GEMM 2048³ f32, GEMM 512×2048×768 f32, full
 * SVD 768×2048 f32, randomized top-128 / top-384 SVD (q = 2) of 768×2048 f32, Cholesky 2048 f64,
 * symmetric eigendecomposition 768 f64 — for numpy (bench/linalg_numpy.py, in a subprocess of this
 * same run, on the same input files) and for every engine that loads here: native, ts, tfjs.
 * Prints medians in ms, ×numpy ratios (lower is better), GFLOP/s for GEMM, and accuracy: the
 * relative reconstruction error of the full SVD and, for randomized SVD, the reconstruction error
 * relative to the optimal rank-r error (exact singular values). Also: ts GEMM on 1 and 2 threads.
 * The machine is shared and noisy: compare within one run, as ratios.
 *
 * Options: --quick (every dimension / 4), --json (machine-readable on stdout),
 * --engines=native,ts,tfjs (which to load; default all),
 * --threads=N (threads for numpy — via OPENBLAS_NUM_THREADS — and every engine; default all cores:
 * on a busy machine 1 thread gives steadier ratios, as 2-thread OpenBLAS stalls when a core is taken),
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

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const asJson = args.has('--json');
const option = (name: string): string | undefined =>
  [...args].find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const wantedEngines = new Set((option('engines') ?? 'native,ts,tfjs').split(','));
const nativeCoretype = option('native-coretype');
const threadsOption = option('threads');
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
  return ops.map((op) => ({ ...op, files: { a: file(op.id, 'a'), b: op.inputs.b ? file(op.id, 'b') : undefined } }));
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

function runNumpy(ops: Op[], sketches: Map<string, string>, threads: number): NumpyReport | { skipped: string } {
  const spec = {
    runs: RUNS,
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

/** Median (and minimum) of up to RUNS timed calls after one warm-up; stops early past BUDGET_S. */
async function timed<T>(fn: () => T): Promise<{ ms: number; minMs: number; samples: number; result: T }> {
  let start = performance.now();
  let result = fn();
  const first = (performance.now() - start) / 1000;
  const samples: number[] = [];
  if (first > BUDGET_S / 2) samples.push(first); // too slow to repeat much: the warm-up counts
  let spent = first;
  while (samples.length < RUNS && (samples.length === 0 || spent < BUDGET_S)) {
    start = performance.now();
    result = fn();
    const dt = (performance.now() - start) / 1000;
    samples.push(dt);
    spent += dt;
    await new Promise((resolve) => setImmediate(resolve)); // let worker-thread engines settle
  }
  samples.sort((x, y) => x - y);
  const mid = samples.length >> 1;
  const median = samples.length % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
  return { ms: median * 1000, minMs: samples[0] * 1000, samples: samples.length, result };
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
  ratio?: number;
  gflops?: number;
  relError?: number;
  errorVsOptimal?: number;
  skipped?: string;
}

async function measure(op: Op, engine: Engine, reference: Engine | undefined, optimalError: number | undefined): Promise<Cell> {
  const { m, n, k, r } = op;
  try {
    switch (op.kind) {
      case 'gemm': {
        const a = op.inputs.a as Float32Array;
        const b = op.inputs.b as Float32Array;
        const c = new Float32Array(m * n);
        const t = await timed(() => engine.gemm(m, n, k, a, b, c));
        return { ms: t.ms, minMs: t.minMs, samples: t.samples, gflops: (2 * m * n * k) / (t.ms * 1e6) };
      }
      case 'svd': {
        const a = op.inputs.a as Float32Array;
        const t = await timed(() => engine.svd(m, n, a));
        return { ms: t.ms, minMs: t.minMs, samples: t.samples, relError: residualNorm(op, t.result, reference) / frobenius(a) };
      }
      case 'rsvd': {
        const a = op.inputs.a as Float32Array;
        const t = await timed(() => engine.svdRandomized(m, n, a, r, { oversample: OVERSAMPLE, powerIterations: POWER_ITERATIONS, seed: 0 }));
        const err = residualNorm(op, t.result, reference);
        return { ms: t.ms, minMs: t.minMs, samples: t.samples, errorVsOptimal: optimalError ? err / optimalError : undefined };
      }
      case 'chol': {
        const a = op.inputs.a as Float64Array;
        const t = await timed(() => engine.cholesky(n, a));
        return { ms: t.ms, minMs: t.minMs, samples: t.samples };
      }
      case 'eig': {
        const a = op.inputs.a as Float64Array;
        const t = await timed(() => engine.eigSym(n, a));
        return { ms: t.ms, minMs: t.minMs, samples: t.samples };
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

async function main(): Promise<void> {
  const cores = threadsOption ? Number(threadsOption) : os.availableParallelism();
  if (!Number.isInteger(cores) || cores < 1) throw new Error(`--threads must be a positive integer, got ${threadsOption}`);
  log(`generating inputs${quick ? ' (--quick: every dimension / 4)' : ''}…`);
  const ops = defineOps();
  writeInputs(ops);
  try {
    const slots = await loadEngines(cores);
    log('running numpy (bench/linalg_numpy.py)…');
    const numpy = runNumpy(ops, writeNativeSketches(ops, loadedNative), cores);
    const peer = 'results' in numpy ? numpy.results : {};
    const reference = slots.find((s) => s.name === 'native')?.loaded?.engine ?? slots.find((s) => s.name === 'ts')?.loaded?.engine;

    const table: Record<string, Record<string, Cell>> = {};
    for (const op of ops) {
      const row: Record<string, Cell> = {};
      const p = peer[op.id];
      if (p) {
        const gflops = op.kind === 'gemm' ? (2 * op.m * op.n * op.k) / (p.ms * 1e6) : undefined;
        row.numpy = { ms: p.ms, minMs: p.minMs, samples: p.samples, relError: p.relError, errorVsOptimal: p.errorVsOptimal, gflops };
      }
      for (const slot of slots) {
        if (!slot.loaded) continue;
        log(`  ${op.label}: ${slot.name}…`);
        const cell = await measure(op, slot.loaded.engine, reference, p?.optimalError);
        if (cell.ms !== undefined && p) cell.ratio = cell.ms / p.ms;
        row[slot.name] = cell;
      }
      table[op.id] = row;
    }

    // ts GEMM scaling: 1 thread vs the default (2 on this machine).
    const tsThreads: Record<string, Cell> = {};
    const ts = slots.find((s) => s.name === 'ts')?.loaded;
    if (ts?.create) {
      const square = ops[0];
      for (const t of [1, 2]) {
        log(`  ts GEMM on ${t} thread(s)…`);
        const engine = await ts.create(t);
        tsThreads[String(t)] = await measure(square, engine, undefined, undefined);
        engine.dispose();
      }
    }

    const engines = Object.fromEntries(slots.map((s) => [s.name, s.loaded ? s.loaded.engine.describe() : `skipped: ${s.skipped}`]));
    const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), threads: cores, node: process.version };
    if (asJson) {
      const results = ops.map((op) => ({ id: op.id, label: op.label, results: table[op.id] }));
      process.stdout.write(JSON.stringify({ quick, machine, numpy, engines, ops: results, tsGemmThreads: tsThreads }, null, 2) + '\n');
    } else {
      printReport(ops, table, numpy, engines, machine, tsThreads);
    }
    for (const slot of slots) slot.loaded?.engine.dispose();
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

function printReport(
  ops: Op[],
  table: Record<string, Record<string, Cell>>,
  numpy: NumpyReport | { skipped: string },
  engines: Record<string, string>,
  machine: { cpu: string; cores: number; threads: number; node: string },
  tsThreads: Record<string, Cell>,
): void {
  const columns = ['numpy', ...Object.keys(engines).filter((e) => !engines[e].startsWith('skipped'))];
  log('');
  log(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; ${machine.threads} thread(s) for numpy and engines`);
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
  log('median time; ×numpy = time / numpy time (lower is better)');
  log('err = ‖A−UΣVᵀ‖/‖A‖, or for randomized SVD the error relative to the optimal rank-r error');
  if (loadedNative) log("randomized SVD: numpy is given the native engine's Gaussian sketch (seed 0), so their errors compare exactly");
  log('');
  log(`| operation | ${columns.join(' | ')} |`);
  log(`|---|${columns.map(() => '---').join('|')}|`);
  for (const op of ops) log(`| ${op.label} | ${columns.map((c) => formatCell(table[op.id]?.[c], c === 'numpy')).join(' | ')} |`);
  if (Object.keys(tsThreads).length) {
    const g = (t: string) => tsThreads[t]?.gflops?.toFixed(2) ?? '—';
    log('');
    log(`ts ${ops[0].label}: 1 thread ${g('1')} GFLOP/s, 2 threads ${g('2')} GFLOP/s (targets ≥ 3 and ≥ 5.5)`);
  }
  const nat = (id: string) => table[id]?.native;
  if (nat('gemm_square')?.ratio !== undefined) {
    log('');
    const check = (label: string, ok: boolean) => log(`  ${ok ? 'met   ' : 'MISSED'} ${label}`);
    log('native targets:');
    check(`GEMM square ≤ 1.1× numpy (×${nat('gemm_square')!.ratio!.toFixed(2)})`, nat('gemm_square')!.ratio! <= 1.1);
    const rs = nat('rsvd_small');
    const peerErr = table.rsvd_small?.numpy?.errorVsOptimal;
    if (rs?.ratio !== undefined) {
      const label = `randomized top-${ops[3].r} ≤ 1.0× numpy (×${rs.ratio.toFixed(2)}) at error ${rs.errorVsOptimal?.toFixed(5)}× optimal`;
      // "equal or better": same sketch, so only rounding may separate the two
      const accurate = (rs.errorVsOptimal ?? Infinity) <= (peerErr ?? 0) * (1 + 1e-5);
      check(`${label} vs numpy ${peerErr?.toFixed(5)}×`, rs.ratio <= 1 && accurate);
    }
    const ch = nat('chol');
    if (ch?.ratio !== undefined) check(`Cholesky ≤ 1.0× numpy (×${ch.ratio.toFixed(2)})`, ch.ratio <= 1);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:linalg failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
