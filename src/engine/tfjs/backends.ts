/**
 * Finds a usable TensorFlow.js backend, best first: `@tensorflow/tfjs-node-gpu` (CUDA),
 * `@tensorflow/tfjs-node` (libtensorflow on the CPU), then `@tensorflow/tfjs-core` with
 * `@tensorflow/tfjs-backend-wasm` (XNNPACK). All four are optional peer dependencies, so every one
 * is imported dynamically and a missing or broken package is a reason, never a crash.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type * as TfCore from '@tensorflow/tfjs-core';

/** The tfjs-core API; tfjs-node and tfjs-node-gpu re-export all of it. */
export type TfModule = typeof TfCore;

/** Imports a module by specifier (injectable so tests can simulate missing or broken packages). */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

export type TfjsBackendKind = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm';

export interface TfjsBackend {
  kind: TfjsBackendKind;
  tf: TfModule;
  /** tfjs-core version the backend runs on */
  coreVersion: string;
  /** threads the backend uses for a large matMul */
  threads: number;
}

export interface BackendAttempt {
  kind: TfjsBackendKind;
  /** why this backend was not used */
  reason: string;
}

export type BackendLoad = { ok: true; backend: TfjsBackend; skipped: BackendAttempt[] } | { ok: false; attempts: BackendAttempt[] };

export const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
export const TFJS_NODE = '@tensorflow/tfjs-node';
export const TFJS_CORE = '@tensorflow/tfjs-core';
export const TFJS_WASM = '@tensorflow/tfjs-backend-wasm';

/**
 * A plain `import(specifier)`. The specifier is a variable on purpose: TypeScript then does not
 * require the optional packages (or their types) to be installed at build time.
 */
export const defaultImporter: ModuleImporter = (specifier) => import(specifier);

/** True when `err` says that `specifier` itself is not installed (as opposed to failing while loading). */
export function isModuleNotFound(err: unknown, specifier: string): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  const notFound = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' || /Cannot find (module|package)/.test(err.message);
  return notFound && err.message.includes(specifier);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

function why(specifier: string, err: unknown): string {
  return isModuleNotFound(err, specifier) ? `${specifier} is not installed` : `${specifier} is installed but failed to load: ${errorText(err)}`;
}

/** ESM namespace of a CommonJS package: the API sits on the namespace itself (named exports) and on `default`. */
function tfApi(namespace: unknown): TfModule | undefined {
  const candidates = [namespace, (namespace as { default?: unknown } | null)?.default];
  for (const candidate of candidates) {
    const api = candidate as Partial<TfModule> | null | undefined;
    if (api && typeof api.matMul === 'function' && typeof api.setBackend === 'function' && typeof api.tidy === 'function') {
      return api as TfModule;
    }
  }
  return undefined;
}

/** tfjs-node(-gpu) register a backend named 'tensorflow' when imported. */
async function loadNodeBackend(kind: 'tfjs-node-gpu' | 'tfjs-node', specifier: string, importer: ModuleImporter): Promise<TfjsBackend> {
  const tf = tfApi(await importer(specifier));
  if (!tf) throw new Error(`${specifier} does not export the tfjs-core API`);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${specifier} did not register the 'tensorflow' backend`);
  await tf.ready();
  // libtensorflow sizes its own intra-op thread pool (all cores unless TF_NUM_INTRAOP_THREADS is set).
  const fromEnv = Number.parseInt(process.env.TF_NUM_INTRAOP_THREADS ?? '', 10);
  const threads = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : os.availableParallelism();
  return { kind, tf, coreVersion: tf.version_core, threads };
}

interface WasmBackendModule {
  setWasmPaths(prefixOrFileMap: string): void;
  setThreadsCount(threads: number): void;
  getThreadsCount(): number;
}

function wasmApi(namespace: unknown): WasmBackendModule | undefined {
  for (const candidate of [namespace, (namespace as { default?: unknown } | null)?.default]) {
    const api = candidate as Partial<WasmBackendModule> | null | undefined;
    if (api && typeof api.setWasmPaths === 'function' && typeof api.getThreadsCount === 'function') return api as WasmBackendModule;
  }
  return undefined;
}

/**
 * Folder holding the backend's .wasm binaries, resolved the way Node resolves the package itself.
 * In Node the backend reads them from disk; without this it would look beside its bundled script
 * under a name that does not exist once the package is nested or hoisted differently.
 */
export function wasmBinaryFolder(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve(`${TFJS_WASM}/dist/tfjs-backend-wasm.wasm`)) + path.sep;
}

async function loadWasmBackend(importer: ModuleImporter, threads: number | undefined): Promise<TfjsBackend> {
  let coreNamespace: unknown;
  try {
    coreNamespace = await importer(TFJS_CORE);
  } catch (err) {
    throw new Error(why(TFJS_CORE, err));
  }
  const tf = tfApi(coreNamespace);
  if (!tf) throw new Error(`${TFJS_CORE} does not export the tfjs-core API`);
  let wasmNamespace: unknown;
  try {
    wasmNamespace = await importer(TFJS_WASM);
  } catch (err) {
    throw new Error(why(TFJS_WASM, err));
  }
  const wasm = wasmApi(wasmNamespace);
  if (!wasm) throw new Error(`${TFJS_WASM} does not export setWasmPaths/getThreadsCount`);
  // Both only matter before the first setBackend('wasm') and are harmless afterwards (later calls
  // find the backend initialised). Not tf.findBackend to check: that would initialise it first.
  const binaries = wasmBinaryFolder();
  wasm.setWasmPaths(binaries);
  // Only the threaded build honours this, and Node lacks what it needs, so in practice 1 thread.
  if (threads !== undefined) wasm.setThreadsCount(threads);
  if (!(await tf.setBackend('wasm'))) throw new Error(`the wasm backend failed to initialise (binaries looked up in ${binaries})`);
  await tf.ready();
  return { kind: 'wasm', tf, coreVersion: tf.version_core, threads: wasm.getThreadsCount() };
}

/** Tries every backend in order of speed and returns the first that works, with why the others did not. */
export async function loadTfjsBackend(opts: { threads?: number; importer?: ModuleImporter } = {}): Promise<BackendLoad> {
  const importer = opts.importer ?? defaultImporter;
  const attempts: BackendAttempt[] = [];
  const nodeBackends = [
    ['tfjs-node-gpu', TFJS_NODE_GPU],
    ['tfjs-node', TFJS_NODE],
  ] as const;
  for (const [kind, specifier] of nodeBackends) {
    try {
      return { ok: true, backend: await loadNodeBackend(kind, specifier, importer), skipped: attempts };
    } catch (err) {
      attempts.push({ kind, reason: why(specifier, err) });
    }
  }
  try {
    return { ok: true, backend: await loadWasmBackend(importer, opts.threads), skipped: attempts };
  } catch (err) {
    attempts.push({ kind: 'wasm', reason: errorText(err) });
  }
  return { ok: false, attempts };
}
