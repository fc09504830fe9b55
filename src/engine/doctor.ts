/**
 * `rfid-moe doctor`: what this machine offers for the linear algebra, in one report. Loads every
 * engine the way the library would (so "available" means "loads here", not "file exists"), notes
 * the CPU features that decide OpenBLAS's kernel, and lists the optional tfjs packages and the
 * system BLAS/LAPACK libraries the native addon builds against.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { TOOL_VERSION } from '../version.js';
import type { Engine } from './types.js';
import { loadTfjsEngine, TfjsEngine } from './tfjs.js';
import { TFJS_CORE, TFJS_NODE, TFJS_NODE_GPU, TFJS_WASM } from './tfjs/backends.js';
import { loadNativePeer, loadTsPeer, type EngineLoad } from './tfjs/peer-engines.js';

const EngineReportSchema = z.discriminatedUnion('available', [
  z.object({
    name: z.enum(['native', 'ts', 'tfjs']),
    available: z.literal(true),
    describe: z.string(),
    threads: z.number().int().positive(),
    /** library behind the engine, e.g. "OpenBLAS 0.3.21" (native) or "tfjs-core 4.22.0" (tfjs); null for ts */
    version: z.string().nullable(),
    /** kernel in use: OpenBLAS core name (e.g. "Haswell") for native, backend ("wasm", "tfjs-node-gpu") for tfjs; null for ts */
    kernel: z.string().nullable(),
  }),
  z.object({
    name: z.enum(['native', 'ts', 'tfjs']),
    available: z.literal(false),
    reason: z.string(),
    fix: z.string(),
  }),
]);

const PackageReportSchema = z.discriminatedUnion('installed', [
  z.object({ name: z.string(), installed: z.literal(true), version: z.string(), path: z.string() }),
  z.object({ name: z.string(), installed: z.literal(false) }),
]);

export const DoctorReportSchema = z.object({
  tool: z.object({ name: z.literal('rfid-moe'), version: z.string() }),
  node: z.object({ version: z.string(), platform: z.string(), arch: z.string() }),
  cpu: z.object({
    model: z.string(),
    /** threads Node may run in parallel (os.availableParallelism) */
    cores: z.number().int().positive(),
    /** null where the flags cannot be read (non-Linux) */
    avx2: z.boolean().nullable(),
    avx512f: z.boolean().nullable(),
    /** BF16 dot products: whether BF16 matmul activations can run faster here (MatmulActivations) */
    avx512bf16: z.boolean().nullable(),
    /** AMX tiles with BF16: whether BF16 matmul activations run on them here (the OS must grant them too) */
    amxBf16: z.boolean().nullable(),
  }),
  openblasCoretype: z.object({
    value: z.string().nullable(),
    /** user: set before rfid-moe started; rfid-moe: chosen by the native engine for this CPU; unset: OpenBLAS detects the CPU itself */
    source: z.enum(['user', 'rfid-moe', 'unset']),
  }),
  engines: z.array(EngineReportSchema),
  optionalPackages: z.array(PackageReportSchema),
  systemLibraries: z.object({
    openblas: z.array(z.string()),
    lapacke: z.array(z.string()),
    /** headers the native addon compiles against */
    headers: z.object({ cblas: z.string().nullable(), lapacke: z.string().nullable() }),
    /** OPENBLAS_VERSION from the installed openblas_config.h, null when the header is absent */
    openblasVersion: z.string().nullable(),
  }),
  gpu: z.object({
    /** first line of /proc/driver/nvidia/version, null when no NVIDIA driver is loaded */
    nvidiaDriver: z.string().nullable(),
  }),
});

export type DoctorReport = z.infer<typeof DoctorReportSchema>;
export type EngineReport = z.infer<typeof EngineReportSchema>;
export type PackageReport = z.infer<typeof PackageReportSchema>;

export const OPTIONAL_PACKAGES = [TFJS_CORE, TFJS_WASM, TFJS_NODE, TFJS_NODE_GPU] as const;

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function cpuReport(): DoctorReport['cpu'] {
  const cpus = os.cpus();
  const flagsLine = readText('/proc/cpuinfo')?.split('\n').find((line) => /^flags\s*:/.test(line));
  const flags = flagsLine ? new Set(flagsLine.split(':')[1].trim().split(/\s+/)) : null;
  return {
    model: cpus[0]?.model.trim() || 'unknown',
    cores: os.availableParallelism(),
    avx2: flags ? flags.has('avx2') : null,
    avx512f: flags ? flags.has('avx512f') : null,
    avx512bf16: flags ? flags.has('avx512_bf16') : null,
    amxBf16: flags ? flags.has('amx_bf16') && flags.has('amx_tile') : null,
  };
}

/** OpenBLAS facts the native engine exposes as `engine.openblas` (see ./native.ts). */
function openblasFacts(engine: Engine): { version: string; corename: string } | null {
  const facts = (engine as { openblas?: unknown }).openblas as { version?: unknown; corename?: unknown } | undefined;
  if (typeof facts !== 'object' || facts === null) return null;
  return typeof facts.version === 'string' && typeof facts.corename === 'string' ? { version: facts.version, corename: facts.corename } : null;
}

function engineReport(name: EngineReport['name'], load: EngineLoad): EngineReport {
  if (!load.ok) return { name, available: false, reason: load.reason, fix: load.fix };
  const engine = load.engine;
  let version: string | null = null;
  let kernel: string | null = null;
  const openblas = openblasFacts(engine);
  if (openblas) {
    version = `OpenBLAS ${openblas.version}`;
    kernel = openblas.corename;
  } else if (engine instanceof TfjsEngine) {
    version = `tfjs-core ${engine.coreVersion}`;
    kernel = engine.backend;
  }
  return { name, available: true, describe: engine.describe(), threads: engine.threads, version, kernel };
}

/** package.json of an installed package, found the way `import()` from this module finds the package. */
export function findPackage(name: string): PackageReport {
  const require = createRequire(import.meta.url);
  let manifest: string;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch {
    return { name, installed: false };
  }
  const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { version?: unknown };
  return { name, installed: true, version: typeof parsed.version === 'string' ? parsed.version : 'unknown', path: path.dirname(manifest) };
}

/** Folders a dynamic linker searches by default on common Linux and macOS layouts. */
function librarySearchDirs(): string[] {
  const triplet = `${process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch}-linux-gnu`;
  return [
    `/usr/lib/${triplet}`,
    `/lib/${triplet}`,
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/lib',
    '/opt/homebrew/opt/openblas/lib',
    '/usr/local/opt/openblas/lib',
    '/opt/homebrew/opt/lapack/lib',
  ];
}

function findLibraries(stem: string): string[] {
  const found: string[] = [];
  const sharedObject = new RegExp(`^${stem}(\\.so(\\.\\d+)*|(\\.\\d+)*\\.dylib)$`);
  const seen = new Set<string>();
  for (const dir of librarySearchDirs()) {
    // merged-/usr systems make /lib a link to /usr/lib: list each real folder once
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    // shared objects only: libfoo.so, libfoo.so.0, libfoo.dylib (static .a archives cannot be dlopen'd)
    for (const file of names) if (sharedObject.test(file)) found.push(path.join(dir, file));
  }
  return found;
}

function findHeader(name: string): string | null {
  const triplet = `${process.arch === 'x64' ? 'x86_64' : 'aarch64'}-linux-gnu`;
  const dirs = ['/usr/include', `/usr/include/${triplet}`, '/usr/include/openblas', '/usr/local/include', '/opt/homebrew/opt/openblas/include'];
  for (const dir of dirs) if (existsSync(path.join(dir, name))) return path.join(dir, name);
  return null;
}

function openblasHeaderVersion(): string | null {
  const header = findHeader('openblas_config.h');
  const match = header ? readText(header)?.match(/#define OPENBLAS_VERSION\s+"\s*OpenBLAS\s+([^"\s]+)\s*"/) : null;
  return match ? match[1] : null;
}

function coretypeReport(before: string | undefined): DoctorReport['openblasCoretype'] {
  if (before !== undefined && before !== '') return { value: before, source: 'user' };
  const after = process.env.OPENBLAS_CORETYPE;
  return after !== undefined && after !== '' ? { value: after, source: 'rfid-moe' } : { value: null, source: 'unset' };
}

/**
 * Probes everything and returns the report; never throws for a missing engine or package. Engines
 * are loaded one after another and disposed before returning.
 */
export async function runDoctor(): Promise<DoctorReport> {
  // Read before the native engine loads: it may choose a kernel type by setting this variable.
  const coretypeBefore = process.env.OPENBLAS_CORETYPE;
  const loaded: Engine[] = [];
  try {
    const native = await loadNativePeer();
    if (native.ok) loaded.push(native.engine);
    const ts = await loadTsPeer();
    if (ts.ok) loaded.push(ts.engine);
    // Reuse the engine already loaded as tfjs's delegate rather than loading native a second time.
    const delegate = native.ok ? native.engine : ts.ok ? ts.engine : undefined;
    const tfjs = await loadTfjsEngine({ delegate });
    if (tfjs.ok) loaded.push(tfjs.engine);
    return DoctorReportSchema.parse({
      tool: { name: 'rfid-moe', version: TOOL_VERSION },
      node: { version: process.version, platform: process.platform, arch: process.arch },
      cpu: cpuReport(),
      openblasCoretype: coretypeReport(coretypeBefore),
      engines: [engineReport('native', native), engineReport('ts', ts), engineReport('tfjs', tfjs)],
      optionalPackages: OPTIONAL_PACKAGES.map(findPackage),
      systemLibraries: {
        openblas: findLibraries('libopenblas'),
        lapacke: findLibraries('liblapacke'),
        headers: { cblas: findHeader('cblas.h'), lapacke: findHeader('lapacke.h') },
        openblasVersion: openblasHeaderVersion(),
      },
      gpu: { nvidiaDriver: readText('/proc/driver/nvidia/version')?.split('\n')[0].trim() || null },
    });
  } finally {
    // tfjs first: it does not own the delegate, which is disposed as native/ts below.
    for (const engine of loaded.reverse()) engine.dispose();
  }
}
