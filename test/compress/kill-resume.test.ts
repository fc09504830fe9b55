/**
 * A run killed with SIGKILL mid-way resumes (--resume) to a byte-identical output: every file
 * except the two reports, which hold wall times, equals an uninterrupted run's, and the resumed
 * run keeps the layers the killed one had finished; with original-activation calibration layer by
 * layer (the default recipe, which needs Gram matrices), in one pass (a model-wide allocation, which
 * keeps every layer's statistics and Gram matrices in the output until the end), and sequential.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { tempDir } from './helpers.js';
import { cliArgs } from '../helpers/cli.js';

const CLI = [...cliArgs, 'compress'];
const COMMON_FLAGS = ['--retain', '0.5', '--samples', '4', '--seq-len', '8', '--no-eval', '--engine', 'ts', '--threads', '1', '--quiet'];
/** outputs that legitimately differ between runs (wall times) */
const TIMED = new Set(['rfid-moe-report.json', 'rfid-moe-report.md']);

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], killWhen?: () => boolean): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let poll: NodeJS.Timeout | undefined;
    if (killWhen) {
      poll = setInterval(() => {
        if (killWhen()) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 2);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (poll) clearInterval(poll);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function filesOf(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => !TIMED.has(f)).sort();
}

// three resume code paths: layer by layer, a kept layer is run again to rebuild the hidden states
// entering the first unfinished one (from the source, or from its shard when sequential); one pass
// reuses the statistics and Gram matrices saved in the output
const MODEL_WIDE = 'model-wide.json';
describe.each([
  ['original, layer by layer', ['--calibration', 'original']],
  ['original, one pass', ['--calibration', 'original', '--recipe', MODEL_WIDE]],
  ['sequential', ['--calibration', 'sequential']],
])('SIGKILL mid-run, then --resume (%s calibration)', (name, extra) => {
  let FLAGS: string[];
  let root: Awaited<ReturnType<typeof tempDir>>;
  let model: string;

  beforeAll(async () => {
    root = await tempDir(`kill-${name.replace(/\W+/g, '-')}`);
    model = path.join(root.dir, 'model');
    await makeTinyCheckpoint(model, 'mixtral', { numLayers: 12, hiddenSize: 128, expertIntermediateSize: 96, seed: 2 });
    // the default recipe (whitened, so with Gram matrices) allocating over the whole model
    await writeFile(path.join(root.dir, MODEL_WIDE), JSON.stringify({ preset: 'default', allocationScope: 'model', retain: 0.5 }));
    FLAGS = [...COMMON_FLAGS, ...extra.map((f) => (f === MODEL_WIDE ? path.join(root.dir, MODEL_WIDE) : f))];
  });

  afterAll(async () => {
    await root.cleanup();
  });

  // four CLI runs of the default recipe (whitening, structure choice, refit) on the pure-TS engine
  it('resumes to the bytes of an uninterrupted run without redoing finished layers', { timeout: 300_000 }, async () => {
    const reference = path.join(root.dir, 'reference');
    const done = await runCli([model, '--out', reference, ...FLAGS]);
    expect(done.code, done.stderr).toBe(0);

    const out = path.join(root.dir, 'killed');
    const firstLayer = path.join(out, 'model-00001-of-00013.safetensors');
    const killed = await runCli([model, '--out', out, ...FLAGS], () => existsSync(firstLayer));
    expect(killed.signal).toBe('SIGKILL');
    // the kill landed before completion: no config.json, at least one layer shard, a progress file
    expect(existsSync(path.join(out, 'config.json'))).toBe(false);
    expect(existsSync(path.join(out, '.rfid-moe-progress.json'))).toBe(true);
    const progress = JSON.parse(await readFile(path.join(out, '.rfid-moe-progress.json'), 'utf8')) as { layers: Record<string, unknown> };
    const finishedBeforeKill = Object.keys(progress.layers).length;
    expect(finishedBeforeKill).toBeLessThan(12);
    // one pass keeps every layer's Gram matrices under one manifest; layer by layer, one layer's
    expect(existsSync(path.join(out, '.rfid-moe-grams', 'grams.json'))).toBe(name === 'original, one pass');

    // without --resume the unfinished run is refused, exit status 2 and a clear message
    const refused = await runCli([model, '--out', out, ...FLAGS]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/unfinished run of this same job.*pass --resume/);
    expect(refused.stderr).not.toMatch(/at .*\.ts:\d+/);

    const resumed = await runCli([model, '--out', out, ...FLAGS.filter((f) => f !== '--quiet'), '--resume', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const report = JSON.parse(resumed.stdout) as { ok: boolean; resumedLayers: number[] };
    expect(report.ok).toBe(true);
    expect(report.resumedLayers.length).toBe(finishedBeforeKill);

    const names = await filesOf(out);
    expect(names).toEqual(await filesOf(reference));
    expect(names).toContain('config.json');
    for (const name of names) {
      const [a, b] = await Promise.all([readFile(path.join(reference, name)), readFile(path.join(out, name))]);
      expect(Buffer.compare(a, b), name).toBe(0);
    }
  });
});
