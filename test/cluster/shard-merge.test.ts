/**
 * Sharded runs against one-process runs, on every model shipped in examples/models:
 *  - calibrate --shard i/N + merge-stats writes the bytes of a one-process calibrate; the summed
 *    Gram matrices equal the one-process ones to f64 rounding;
 *  - compress --shard i/N + merge writes the bytes of a one-process compress (the two reports,
 *    which hold wall times, aside);
 *  - merges of mismatched, incomplete, doubled or modified parts are refused and write nothing;
 *  - a shard killed with SIGKILL resumes, and the merge is still byte-identical.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress } from '../../src/compress/pipeline.js';
import { merge } from '../../src/compress/shard/merge.js';
import { loadGram } from '../../src/routing-stats/gram.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';
import { tempDir } from '../compress/helpers.js';
import { cliArgs } from '../helpers/cli.js';

const execFileP = promisify(execFile);
const TIMED = new Set(['rfid-moe-report.json', 'rfid-moe-report.md']);
const models = existsSync(path.join(repoRoot, 'examples', 'models'))
  ? (await readdir(path.join(repoRoot, 'examples', 'models'))).map((m) => path.join(repoRoot, 'examples', 'models', m)).filter((m) => existsSync(path.join(m, 'config.json')))
  : [];

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [...cliArgs, ...args], { cwd: repoRoot, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Every file of `a` except the timed reports has the same bytes in `b`, and no other file exists. */
async function expectSameOutput(a: string, b: string): Promise<void> {
  const names = (await readdir(a)).filter((f) => !TIMED.has(f)).sort();
  expect((await readdir(b)).filter((f) => !TIMED.has(f)).sort()).toEqual(names);
  expect(names).toContain('config.json');
  for (const name of names) {
    const [x, y] = await Promise.all([readFile(path.join(a, name)), readFile(path.join(b, name))]);
    expect(Buffer.compare(x, y), name).toBe(0);
  }
}

/** Text of a few thousand tokens, deterministic, so that tests need no external data. */
function calibrationText(): string {
  const words = ['the', 'king', 'said', 'and', 'then', 'a', 'river', 'of', 'light', 'ran', 'through', 'old', 'town', 'where', 'we', 'stood', 'long', 'ago', 'in', 'silence'];
  let seed = 7;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const lines: string[] = [];
  for (let i = 0; i < 400; i++) lines.push(Array.from({ length: 12 }, () => words[Math.floor(next() * words.length)]).join(' ') + '.');
  return lines.join('\n');
}

let root: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  root = await tempDir('shard');
  await writeFile(path.join(root.dir, 'calib.txt'), calibrationText());
});
afterAll(async () => {
  await root.cleanup();
});

describe.each(models.map((m) => [path.basename(m), m]))('sharded runs on the shipped model %s', (name, model) => {
  const CAL = ['--samples', '6', '--seq-len', '48', '--seed', '3', '--engine', 'ts', '--threads', '1', '--quiet'];
  let work: string;
  beforeAll(() => {
    work = path.join(root.dir, name);
  });

  it('calibrate --shard i/3 + merge-stats equals one process: statistics byte for byte, Gram matrices to f64 rounding', async () => {
    const data = path.join(root.dir, 'calib.txt');
    const one = await cli('calibrate', model, '--dataset', data, ...CAL, '--out', path.join(work, 'one.json'), '--grams', path.join(work, 'g-one'));
    expect(one.code, one.stderr).toBe(0);
    for (const i of [0, 1, 2]) {
      const r = await cli('calibrate', model, '--dataset', data, ...CAL, '--shard', `${i}/3`, '--out', path.join(work, `p${i}.json`), '--grams', path.join(work, `g${i}`));
      expect(r.code, r.stderr).toBe(0);
    }
    // parts in any order
    const merged = await cli('merge-stats', path.join(work, 'p2.json'), path.join(work, 'p0.json'), path.join(work, 'p1.json'), '--out', path.join(work, 'stats.json'), '--grams', path.join(work, 'g-merged'), '--quiet');
    expect(merged.code, merged.stderr).toBe(0);
    expect(Buffer.compare(await readFile(path.join(work, 'one.json')), await readFile(path.join(work, 'stats.json')))).toBe(0);

    const manifest = JSON.parse(await readFile(path.join(work, 'g-one', 'grams.json'), 'utf8')) as { entries: Record<string, { tokens: number }> };
    const mergedManifest = JSON.parse(await readFile(path.join(work, 'g-merged', 'grams.json'), 'utf8')) as { entries: Record<string, { tokens: number }> };
    expect(Object.keys(mergedManifest.entries).sort()).toEqual(Object.keys(manifest.entries).sort());
    for (const key of Object.keys(manifest.entries)) {
      const [layer, expert] = key.split('/').map(Number);
      const a = (await loadGram(path.join(work, 'g-one'), layer, expert))!;
      const b = (await loadGram(path.join(work, 'g-merged'), layer, expert))!;
      expect(b.tokens).toBe(a.tokens);
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < a.gram.length; i++) {
        scale = Math.max(scale, Math.abs(a.gram[i]));
        diff = Math.max(diff, Math.abs(a.gram[i] - b.gram[i]));
      }
      expect(diff).toBeLessThanOrEqual(1e-12 * scale * a.tokens);
    }
  });

  it('merge-stats refuses parts of another seed, sequence length or dataset, and missing or doubled shards, writing nothing', async () => {
    const data = path.join(root.dir, 'calib.txt');
    const other = path.join(root.dir, 'other.txt');
    await writeFile(other, calibrationText().replace(/king/g, 'queen'));
    const seed = await cli('calibrate', model, '--dataset', data, ...CAL.map((v) => (v === '3' ? '4' : v)), '--shard', '1/3', '--out', path.join(work, 'seed.json'));
    const len = await cli('calibrate', model, '--dataset', data, ...CAL.map((v) => (v === '48' ? '40' : v)), '--shard', '1/3', '--out', path.join(work, 'len.json'));
    const ds = await cli('calibrate', model, '--dataset', other, ...CAL, '--shard', '1/3', '--out', path.join(work, 'ds.json'));
    for (const r of [seed, len, ds]) expect(r.code, r.stderr).toBe(0);
    const out = path.join(work, 'refused.json');
    const cases: Array<[string[], RegExp]> = [
      [['p0.json', 'seed.json', 'p2.json'], /different seed/],
      [['p0.json', 'len.json', 'p2.json'], /different sequence length/],
      [['p0.json', 'ds.json', 'p2.json'], /different dataset/],
      [['p0.json', 'p2.json'], /shard\(s\) 1\/3 missing/],
      [['p0.json', 'p1.json', 'p1.json', 'p2.json'], /both shard 1\/3/],
      [['p0.json', 'one.json'], /complete statistics file, not a part/],
    ];
    for (const [parts, message] of cases) {
      const r = await cli('merge-stats', ...parts.map((p) => path.join(work, p)), '--out', out, '--grams', path.join(work, 'g-refused'));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
      expect(existsSync(out)).toBe(false);
      expect(existsSync(path.join(work, 'g-refused'))).toBe(false);
    }
    // a part is not usable as statistics by itself
    const r = await cli('compress', model, '--retain', '0.6', '--stats', path.join(work, 'p0.json'), '--out', path.join(work, 'nope'), '--no-eval', '--quiet');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/shard 0\/3 of a sharded calibration.*merge-stats/);
  });

  it('compress --shard i/3 + merge equals one process byte for byte; bad merges are refused and write nothing', async () => {
    const stats = path.join(work, 'stats.json');
    const base = { stats, engine: 'ts' as const, threads: 1 };
    await compress(model, { retain: 0.6 }, { ...base, out: path.join(work, 'c-one'), evaluation: { sequences: 2 } });
    for (const i of [0, 1, 2]) {
      const report = await compress(model, { retain: 0.6 }, { ...base, out: path.join(work, `c${i}`), layers: { shard: { index: i, count: 3 } } });
      expect(report.part?.layers.length).toBeGreaterThan(0);
      expect(existsSync(path.join(work, `c${i}`, 'config.json'))).toBe(false);
    }
    // by CLI, in another order
    const r = await cli('merge', path.join(work, 'c2'), path.join(work, 'c0'), path.join(work, 'c1'), '--out', path.join(work, 'c-merged'), '--engine', 'ts', '--eval-sequences', '2', '--quiet', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).fidelity.sequences).toBe(2);
    await expectSameOutput(path.join(work, 'c-one'), path.join(work, 'c-merged'));

    // refusals
    const out = path.join(work, 'm-refused');
    await compress(model, { retain: 0.5 }, { ...base, out: path.join(work, 'c1-other-recipe'), layers: { shard: { index: 1, count: 3 } } });
    await compress(model, { retain: 0.6 }, { ...base, out: path.join(work, 'c-first-two'), layers: { layers: '0-1' } });
    await cp(path.join(work, 'c2'), path.join(work, 'c2-flipped'), { recursive: true });
    const part2 = JSON.parse(await readFile(path.join(work, 'c2', 'rfid-moe-part.json'), 'utf8')) as { entries: Array<{ file: string }> };
    const victim = path.join(work, 'c2-flipped', part2.entries[0].file);
    const bytes = await readFile(victim);
    bytes[bytes.length - 3] ^= 0x40;
    await writeFile(victim, bytes);
    await cp(path.join(work, 'c1'), path.join(work, 'c1-unfinished'), { recursive: true });
    await rm(path.join(work, 'c1-unfinished', 'rfid-moe-part.json'));
    await writeFile(path.join(work, 'c1-unfinished', '.rfid-moe-progress.json'), JSON.stringify({ format: 'rfid-moe.progress', version: 1, runFingerprint: 'x', modelDir: model, selection: '1', layers: {} }));
    const cases: Array<[string[], RegExp]> = [
      [['c0', 'c2'], /layers? .* in no part/],
      [['c0', 'c1', 'c2', 'c-first-two'], /is in two parts/],
      [['c0', 'c1-other-recipe', 'c2'], /different runs: their recipe differ/],
      [['c0', 'c1', 'c2-flipped'], /does not have the content its manifest records/],
      [['c0', 'c1-unfinished', 'c2'], /unfinished.*resume/],
      [['c0', 'c1', 'c-one'], /complete compressed model, not a part/],
    ];
    for (const [parts, message] of cases) {
      await expect(merge(parts.map((p) => path.join(work, p)), { out, engine: 'ts', evaluation: false })).rejects.toThrow(message);
      expect(existsSync(out)).toBe(false);
      expect((await readdir(work)).some((f) => f.includes('rfid-moe-merge.tmp'))).toBe(false);
    }
  });
});

describe('model-wide allocation in a sharded run (spectra → allocate → factorise)', () => {
  it('gives the bytes of a one-process run, and refuses spectra of another run or with a missing layer', async () => {
    const work = path.join(root.dir, 'global');
    const model = path.join(work, 'model');
    await makeTinyCheckpoint(model, 'qwen3_moe', { numLayers: 4, hiddenSize: 64, expertIntermediateSize: 24, seed: 9 });
    const seed = await compress(model, { retain: 0.5 }, { out: path.join(work, 'seed-run'), engine: 'ts', threads: 1, evaluation: false, selfSampled: { samples: 4, seqLen: 16 } });
    expect(seed.runFingerprint).toBeTruthy();
    const stats = path.join(work, 'stats.json');
    await cp(path.join(work, 'seed-run', 'rfid-moe-routing-stats.json'), stats);
    const recipe = { retain: 0.5, allocation: 'waterfill', allocationScope: 'model', residual: { share: 0 } } as const;
    const base = { stats, engine: 'ts' as const, threads: 1, evaluation: false as const };
    await compress(model, recipe, { ...base, out: path.join(work, 'one') });
    for (const i of [0, 1]) {
      await compress(model, recipe, { ...base, out: path.join(work, 'unused'), layers: { shard: { index: i, count: 2 } }, spectraOut: path.join(work, `spectra-${i}.json`) });
    }
    expect(existsSync(path.join(work, 'unused'))).toBe(false);
    const missing = await cli('allocate', path.join(work, 'spectra-0.json'), '--out', path.join(work, 'nope.json'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/MoE layers 2-3 are in no spectra file/);
    expect(existsSync(path.join(work, 'nope.json'))).toBe(false);
    const r = await cli('allocate', path.join(work, 'spectra-1.json'), path.join(work, 'spectra-0.json'), '--out', path.join(work, 'budgets.json'));
    expect(r.code, r.stderr).toBe(0);
    for (const i of [0, 1]) {
      await compress(model, recipe, { ...base, out: path.join(work, `p${i}`), layers: { shard: { index: i, count: 2 } }, rankBudgets: path.join(work, 'budgets.json') });
    }
    await merge([path.join(work, 'p0'), path.join(work, 'p1')], { out: path.join(work, 'merged'), engine: 'ts', threads: 1, evaluation: false });
    await expectSameOutput(path.join(work, 'one'), path.join(work, 'merged'));
    // budgets of another recipe are refused
    await expect(compress(model, { ...recipe, retain: 0.4 }, { ...base, out: path.join(work, 'other'), rankBudgets: path.join(work, 'budgets.json') })).rejects.toThrow(/different runs: their recipe differ/);
  });
});

describe('a shard killed with SIGKILL', () => {
  it('resumes with --resume, and the merge still equals a one-process run', async () => {
    const work = path.join(root.dir, 'kill');
    const model = path.join(work, 'model');
    await makeTinyCheckpoint(model, 'mixtral', { numLayers: 8, hiddenSize: 128, expertIntermediateSize: 96, seed: 5 });
    const flags = ['--retain', '0.5', '--samples', '4', '--seq-len', '8', '--no-eval', '--engine', 'ts', '--threads', '1', '--quiet'];
    // statistics of the tiny model (self-sampled calibration is refused for shards: calibrate first)
    const one = await cli('compress', model, '--out', path.join(work, 'seed-run'), ...flags);
    expect(one.code, one.stderr).toBe(0);
    const stats = path.join(work, 'stats.json');
    await cp(path.join(work, 'seed-run', 'rfid-moe-routing-stats.json'), stats);
    const refused = await cli('compress', model, '--out', path.join(work, 'x'), ...flags, '--shard', '0/2');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/needs routing statistics made beforehand.*--stats/);

    const withStats = flags.filter((f, i) => !['--samples', '--seq-len'].includes(f) && !['--samples', '--seq-len'].includes(flags[i - 1] ?? ''));
    const ref = await cli('compress', model, '--out', path.join(work, 'ref'), ...withStats, '--stats', stats);
    expect(ref.code, ref.stderr).toBe(0);
    const part0 = await cli('compress', model, '--out', path.join(work, 's0'), ...withStats, '--stats', stats, '--shard', '0/2');
    expect(part0.code, part0.stderr).toBe(0);

    // shard 1/2 owns layers 4-7: kill it once its first layer's shard exists
    const out = path.join(work, 's1');
    const firstShard = path.join(out, 'model-00005-of-00009.safetensors');
    const killed = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
      const child = spawn(process.execPath, [...cliArgs, 'compress', model, '--out', out, ...withStats, '--stats', stats, '--shard', '1/2'], { cwd: repoRoot, stdio: 'ignore' });
      const poll = setInterval(() => {
        if (existsSync(firstShard)) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 2);
      child.on('error', reject);
      child.on('close', (_code, signal) => {
        clearInterval(poll);
        resolve(signal);
      });
    });
    expect(killed).toBe('SIGKILL');
    expect(existsSync(path.join(out, 'rfid-moe-part.json'))).toBe(false);
    const early = await cli('merge', path.join(work, 's0'), out, '--out', path.join(work, 'early'), '--no-eval');
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/unfinished.*rerun its shard task with --resume/);

    const progress = JSON.parse(await readFile(path.join(out, '.rfid-moe-progress.json'), 'utf8')) as { layers: Record<string, unknown> };
    const resumed = await cli('compress', model, '--out', out, ...withStats, '--stats', stats, '--shard', '1/2', '--resume', '--json');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout).resumedLayers.length).toBe(Object.keys(progress.layers).length);
    const merged = await cli('merge', path.join(work, 's0'), out, '--out', path.join(work, 'merged'), '--no-eval', '--engine', 'ts');
    expect(merged.code, merged.stderr).toBe(0);
    await expectSameOutput(path.join(work, 'ref'), path.join(work, 'merged'));
  });
});
