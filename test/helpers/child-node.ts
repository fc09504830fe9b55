/**
 * Runs an ES module body (top-level await allowed, imports relative to the repository root) in a
 * fresh node with tsx, for tests of what changes the whole process (allocators, the C heap's
 * settings). Returns its last stdout line parsed as JSON; a child that fails throws with its stderr.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const repo = path.resolve(import.meta.dirname, '../..');

export function childJson<T = Record<string, number | boolean>>(body: string, env: NodeJS.ProcessEnv = {}): T {
  const proc = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', body], { cwd: repo, encoding: 'utf8', env: { ...process.env, ...env } });
  if (proc.status !== 0) throw new Error(`child failed: ${proc.stderr}`);
  return JSON.parse(proc.stdout.trim().split('\n').pop() as string) as T;
}
