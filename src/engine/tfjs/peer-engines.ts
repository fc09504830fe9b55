/**
 * Loads the other engines (native addon, pure TS) for the tfjs engine to delegate to and for
 * `doctor` to report on. Both are imported dynamically through a variable specifier so that this
 * module loads, and says why, even while one of them is missing or broken.
 */
import type { Engine } from '../types.js';
import type { ModuleImporter } from './backends.js';

export type EngineLoad = { ok: true; engine: Engine } | { ok: false; reason: string; fix: string };

const ENGINE_METHODS = ['describe', 'gemm', 'syrk', 'cholesky', 'eigSym', 'svd', 'singularValues', 'svdTop', 'svdRandomized', 'solveTriangular', 'dispose'] as const;

/** Runtime check that a value from another module really implements {@link Engine}. */
export function isEngine(value: unknown): value is Engine {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.name === 'string' && typeof record.threads === 'number' && ENGINE_METHODS.every((method) => typeof record[method] === 'function');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

/** Relative to this file (src/engine/tfjs/ or dist/engine/tfjs/); the `.js` suffix is what NodeNext, tsx and vitest all resolve. */
const NATIVE_MODULE = '../native.js';
const TS_MODULE = '../ts/index.js';

const localImporter: ModuleImporter = (specifier) => import(specifier);

function threadOptions(threads: number | undefined): { threads: number } | undefined {
  return threads === undefined ? undefined : { threads };
}

/** `loadNativeEngine()` from ../native.js: OpenBLAS/LAPACKE through the N-API addon. */
export async function loadNativePeer(threads?: number, importer: ModuleImporter = localImporter): Promise<EngineLoad> {
  let loader: unknown;
  try {
    loader = ((await importer(NATIVE_MODULE)) as { loadNativeEngine?: unknown }).loadNativeEngine;
  } catch (err) {
    return { ok: false, reason: `the native engine module failed to load: ${errorText(err)}`, fix: 'reinstall rfid-moe (the module ships with it)' };
  }
  if (typeof loader !== 'function') return { ok: false, reason: 'the native engine module does not export loadNativeEngine()', fix: 'reinstall rfid-moe' };
  try {
    const result = (await (loader as (opts?: { threads: number }) => unknown)(threadOptions(threads))) as Partial<EngineLoad> & Record<string, unknown>;
    if (result.ok === true && isEngine(result.engine)) return { ok: true, engine: result.engine };
    if (result.ok === false) return { ok: false, reason: String(result.reason), fix: String(result.fix) };
    return { ok: false, reason: 'loadNativeEngine() returned something that is not an engine', fix: 'reinstall rfid-moe' };
  } catch (err) {
    return { ok: false, reason: `loadNativeEngine() threw: ${errorText(err)}`, fix: 'reinstall rfid-moe' };
  }
}

/** `createTsEngine()` from ../ts/index.js: pure TypeScript, works everywhere. */
export async function loadTsPeer(threads?: number, importer: ModuleImporter = localImporter): Promise<EngineLoad> {
  try {
    const create = ((await importer(TS_MODULE)) as { createTsEngine?: unknown }).createTsEngine;
    if (typeof create !== 'function') return { ok: false, reason: 'the ts engine module does not export createTsEngine()', fix: 'reinstall rfid-moe' };
    const engine: unknown = await (create as (opts?: { threads: number }) => unknown)(threadOptions(threads));
    if (!isEngine(engine)) return { ok: false, reason: 'createTsEngine() returned something that is not an engine', fix: 'reinstall rfid-moe' };
    return { ok: true, engine };
  } catch (err) {
    return { ok: false, reason: `the ts engine failed to load: ${errorText(err)}`, fix: 'reinstall rfid-moe (the module ships with it)' };
  }
}

/** The best engine for everything but GEMM: native when it loads, else ts; both reasons when neither does. */
export async function loadBestNonTfjsEngine(threads?: number): Promise<EngineLoad> {
  const native = await loadNativePeer(threads);
  if (native.ok) return native;
  const ts = await loadTsPeer(threads);
  if (ts.ok) return ts;
  const fix = native.fix === ts.fix ? native.fix : `${native.fix}; ${ts.fix}`;
  return { ok: false, reason: `native: ${native.reason}; ts: ${ts.reason}`, fix };
}
