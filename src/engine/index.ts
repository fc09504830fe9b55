/**
 * Engine selection for `--engine auto|native|ts|tfjs`.
 *
 * auto: native when the addon loads, else ts (tfjs is never picked implicitly: it only helps with
 * a GPU backend or without a compiler, and the user should know they asked for it). The notice is
 * the one line the CLI prints at start; when auto falls back it carries the reason and the fix.
 */
import { EngineError, checkMatmulActivations, type Engine, type EngineName, type MatmulActivations } from './types.js';
import { createTsEngine } from './ts/index.js';

export type EngineChoice = 'auto' | EngineName;

export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'native', 'ts', 'tfjs'];

export interface CreateEngineOptions {
  /** threads for large operations; default: each engine's own default */
  threads?: number;
  /**
   * how products against BF16 weights treat their activations (MatmulActivations); default
   * 'f32'. 'bf16' is offered by the native and ts engines, not by tfjs.
   */
  matmulActivations?: MatmulActivations;
}

export interface SelectedEngine {
  engine: Engine;
  /** e.g. "engine: native (OpenBLAS 0.3.21, SkylakeX kernels, own kernels avx512, 2 threads)" */
  notice: string;
}

type Unavailable = { ok: false; reason: string; fix: string };
type LoadResult = { ok: true; engine: Engine } | Unavailable;

/** Loads the native engine; a missing or broken module counts as unavailable, never as a crash. */
async function tryNative(opts: CreateEngineOptions): Promise<LoadResult> {
  try {
    const mod = await import('./native.js');
    return mod.loadNativeEngine({ threads: opts.threads, matmulActivations: opts.matmulActivations });
  } catch (err) {
    return {
      ok: false,
      reason: `the native engine module failed to load: ${err instanceof Error ? err.message : String(err)}`,
      fix: 'reinstall rfid-moe (npm rebuild rfid-moe) so the native module and addon are complete',
    };
  }
}

async function tryTfjs(opts: CreateEngineOptions): Promise<LoadResult> {
  try {
    const mod = await import('./tfjs.js');
    return await mod.loadTfjsEngine({ threads: opts.threads });
  } catch (err) {
    return {
      ok: false,
      reason: `the tfjs engine module failed to load: ${err instanceof Error ? err.message : String(err)}`,
      fix: 'npm i @tensorflow/tfjs-core @tensorflow/tfjs-backend-wasm',
    };
  }
}

function unavailableError(name: EngineName, failure: Unavailable): EngineError {
  return new EngineError(`\`engine\` ${name}: the ${name} engine is unavailable: ${failure.reason}; enable with: ${failure.fix}`);
}

export async function createEngine(choice: EngineChoice = 'auto', opts: CreateEngineOptions = {}): Promise<SelectedEngine> {
  const activations = checkMatmulActivations('createEngine', opts.matmulActivations);
  switch (choice) {
    case 'ts': {
      const engine = createTsEngine({ threads: opts.threads, matmulActivations: activations });
      return { engine, notice: `engine: ${engine.describe()}` };
    }
    case 'native': {
      const native = await tryNative(opts);
      if (!native.ok) throw unavailableError('native', native);
      return { engine: native.engine, notice: `engine: ${native.engine.describe()}` };
    }
    case 'tfjs': {
      if (activations !== 'f32') {
        throw new EngineError(`the tfjs engine keeps matmul activations in f32 only, not ${activations}; choose the native or ts engine for ${activations} activations`);
      }
      const tfjs = await tryTfjs(opts);
      if (!tfjs.ok) throw unavailableError('tfjs', tfjs);
      return { engine: tfjs.engine, notice: `engine: ${tfjs.engine.describe()}` };
    }
    case 'auto': {
      const native = await tryNative(opts);
      if (native.ok) return { engine: native.engine, notice: `engine: ${native.engine.describe()}` };
      const engine = createTsEngine({ threads: opts.threads, matmulActivations: activations });
      return {
        engine,
        notice: `engine: ${engine.describe()} — native unavailable: ${native.reason}; enable with: ${native.fix}`,
      };
    }
    default: {
      const bad: never = choice;
      throw new EngineError(`unknown engine "${String(bad)}"; choose one of: ${ENGINE_CHOICES.join(', ')}`);
    }
  }
}

/** Parses a user-supplied --engine value. */
export function parseEngineChoice(value: string): EngineChoice {
  if ((ENGINE_CHOICES as readonly string[]).includes(value)) return value as EngineChoice;
  throw new EngineError(`unknown engine "${value}"; choose one of: ${ENGINE_CHOICES.join(', ')}`);
}

/**
 * Every engine that loads here (ts always), for tests and benchmarks; with BF16 matmul
 * activations, those that offer them (not tfjs). The caller disposes them.
 */
export async function listAvailableEngines(opts: CreateEngineOptions = {}): Promise<Engine[]> {
  const activations = checkMatmulActivations('listAvailableEngines', opts.matmulActivations);
  const engines: Engine[] = [createTsEngine({ threads: opts.threads, matmulActivations: activations })];
  const native = await tryNative(opts);
  if (native.ok) engines.push(native.engine);
  if (activations === 'f32') {
    const tfjs = await tryTfjs(opts);
    if (tfjs.ok) engines.push(tfjs.engine);
  }
  return engines;
}
