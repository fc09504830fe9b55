/**
 * The native kernels are compiled for several instruction sets and the CPU's widest is used in
 * the test process; each narrower one the CPU also runs is checked in a child process capped by
 * RFID_MOE_NATIVE_SIMD. Shared by the kernel tests that do this.
 */
import { spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine, MatmulActivations } from '../../src/engine/types.js';
import { NATIVE_SIMD_LEVELS } from '../../src/engine/native.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The levels from the native engine's widest down (empty without a native engine). AMX runs only
 * products against BF16 weights, so for the other kernels an engine at 'amx' counts as at
 * 'avx512' (capping it there would run the same kernels again), unless `amx` is set.
 */
export function simdLevelsOf(native: Engine | undefined, { amx = false }: { amx?: boolean } = {}): string[] {
  const named = native ? /own kernels (\w+)/.exec(native.describe())?.[1] : undefined;
  const widest = named === 'amx' && !amx ? 'avx512' : named;
  return NATIVE_SIMD_LEVELS.filter((level) => widest !== undefined && NATIVE_SIMD_LEVELS.indexOf(level) >= NATIVE_SIMD_LEVELS.indexOf(widest as (typeof NATIVE_SIMD_LEVELS)[number]));
}

export interface CappedRun {
  status: number | null;
  stderr: string;
  /** the capped engine's describe() and the check's failures (the first 5) and their count */
  result: { describe: string; failures: string[]; count: number };
}

/**
 * Runs `check(engine, ...shape)` over every shape (an array of numbers) of `shapes` (both exported by `helper`, a path
 * from the repository root) on a native engine capped at `level` with the given matmul
 * activations, in a child process, with `env` added to its environment.
 */
export function runCappedCheck(level: string, helper: string, shapes: string, check: string, env: NodeJS.ProcessEnv = {}, activations: MatmulActivations = 'f32'): CappedRun {
  const body = `
    import { createEngine } from './src/engine/index.ts';
    import { ${shapes}, ${check} } from './${helper}';
    const { engine } = await createEngine('native', { threads: 1, matmulActivations: '${activations}' });
    const failures = ${shapes}.flatMap((shape) => ${check}(engine, ...shape));
    console.log(JSON.stringify({ describe: engine.describe(), failures: failures.slice(0, 5), count: failures.length }));`;
  const proc = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', body], {
    cwd: repo, encoding: 'utf8', env: { ...process.env, ...env, RFID_MOE_NATIVE_SIMD: level },
  });
  const last = proc.stdout.trim().split('\n').pop() ?? '';
  return { status: proc.status, stderr: proc.stderr, result: (proc.status === 0 ? JSON.parse(last) : { describe: '', failures: [], count: 0 }) as CappedRun['result'] };
}

/** A child process's check (runCappedCheck) ran, on the kernels named, and found nothing out of place. */
export function expectClean({ status, stderr, result }: CappedRun, kernels: string | RegExp) {
  expect(status, stderr).toBe(0);
  if (typeof kernels === 'string') expect(result.describe).toContain(kernels);
  else expect(result.describe).toMatch(kernels);
  expect(result.failures).toEqual([]);
}
