/**
 * The conventions every command keeps, checked on the real `rfid-moe` process:
 * - a command line commander cannot parse (missing required option, unknown option, bad choice)
 *   exits 2 with one message, a JSON error object when `--json` appears anywhere;
 * - `--help` shows a default for every option that is not required;
 * - `--format` is the output format only; the dataset format is `--dataset-format` everywhere;
 * - library messages name options (`seqLen`), and the CLI shows them as its flags (`--seq-len`);
 * - calibrate, compress and eval draw the same progress line, with a total ETA;
 * - `--format dense` says that it saves no bytes and points to factored.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';
import { DEMO_TOKENIZER, makeExampleFixture } from '../examples/fixture.js';
import { calibrationWindows } from '../../src/tokens/windows.js';
import { cliArgs } from '../helpers/cli.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Run {
  const r = spawnSync(process.execPath, [...cliArgs, ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, COLUMNS: '100' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonError(r: Run): { kind: string; variant?: string; message: string } {
  const parsed = JSON.parse(r.stdout) as { ok: boolean; error: { kind: string; variant?: string; message: string } };
  expect(parsed.ok).toBe(false);
  return parsed.error;
}

/** Option entries of a `--help` text: flags and the whole (possibly wrapped) description. */
function helpOptions(help: string): Array<{ flags: string; text: string }> {
  const section = help.split(/^Options:\n/m)[1] ?? '';
  const entries: Array<{ flags: string; text: string }> = [];
  for (const line of section.split('\n')) {
    const start = /^ {2}((?:-\w, )?--[\w-]+(?: <[^>]+>)?)\s+(.*)$/.exec(line);
    if (start) entries.push({ flags: start[1], text: start[2] });
    else if (/^\s{4,}\S/.test(line) && entries.length > 0) entries[entries.length - 1].text += ' ' + line.trim();
    else if (line.trim() === '' || /^\S/.test(line)) break;
  }
  return entries;
}

const COMMANDS = ['inspect', 'doctor', 'calibrate', 'eval', 'compress'];
/** Options that have no default because the command cannot run without them. */
const REQUIRED: Record<string, string[]> = { calibrate: ['--dataset', '--out'], eval: ['--dataset'], compress: ['--out'] };

describe('parse errors go through the one error path', () => {
  it('a missing required option: exit 2, one message, JSON with --json', () => {
    const plain = cli('calibrate', 'some-model', '--dataset', 'x.txt');
    expect(plain.code).toBe(2);
    expect(plain.stderr.trim()).toBe("rfid-moe: required option '--out <stats.json>' not specified");
    expect(plain.stdout).toBe('');

    const json = cli('calibrate', 'some-model', '--dataset', 'x.txt', '--json');
    expect(json.code).toBe(2);
    expect(jsonError(json)).toEqual({ kind: 'UsageError', variant: 'MissingMandatoryOptionValue', message: "required option '--out <stats.json>' not specified" });
  });

  it('an unknown option, with --json before or after it', () => {
    for (const args of [
      ['eval', 'm', '--dataset', 'd', '--bogus', '--json'],
      ['eval', '--json', 'm', '--bogus', '--dataset', 'd'],
    ]) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(jsonError(r)).toMatchObject({ kind: 'UsageError', variant: 'UnknownOption', message: "unknown option '--bogus'" });
    }
    const plain = cli('compress', 'm', '--out', 'o', '--retain', '0.5', '--bogus');
    expect(plain.code).toBe(2);
    expect(plain.stderr.trim()).toBe("rfid-moe: unknown option '--bogus'");
  });

  it('a value outside the choices, a missing argument and an unknown command', () => {
    const choice = cli('compress', 'm', '--out', 'o', '--format', 'sparse', '--json');
    expect(choice.code).toBe(2);
    expect(jsonError(choice)).toMatchObject({ kind: 'UsageError', variant: 'InvalidArgument' });
    expect(jsonError(choice).message).toMatch(/--format.*factored, dense/);

    const missing = cli('inspect', '--json');
    expect(missing.code).toBe(2);
    expect(jsonError(missing)).toMatchObject({ kind: 'UsageError', variant: 'MissingArgument' });

    const unknown = cli('compres', '--json');
    expect(unknown.code).toBe(2);
    expect(jsonError(unknown).kind).toBe('UsageError');
  });

  it('--json before the command is the command\'s --json', () => {
    const r = cli('--json', 'inspect', path.join(os.tmpdir(), 'rfid-moe-no-such-dir'));
    expect(r.code).toBe(2);
    expect(jsonError(r)).toMatchObject({ kind: 'CheckpointError', variant: 'NotFound' });
  });

  it('--help and --version still exit 0', () => {
    expect(cli('compress', '--help').code).toBe(0);
    expect(cli('--version').code).toBe(0);
  });
});

describe('--help', () => {
  const helps = Object.fromEntries(COMMANDS.map((c) => [c, cli(c, '--help')]));

  it.each(COMMANDS)('%s shows the default of every option', (command) => {
    const help = helps[command];
    expect(help.code).toBe(0);
    const options = helpOptions(help.stdout);
    expect(options.length).toBeGreaterThan(1);
    const missing = options.filter((o) => !o.flags.includes('--help') && !(REQUIRED[command] ?? []).includes(o.flags.split(' ')[0]) && !/\(.*default: .+\)/.test(o.text));
    expect(missing.map((o) => o.flags)).toEqual([]);
  });

  it('--format is the output format only; the dataset format is --dataset-format in every command', () => {
    for (const command of ['calibrate', 'eval', 'compress']) {
      const flags = helpOptions(helps[command].stdout).map((o) => o.flags.split(' ')[0]);
      expect(flags, command).toContain('--dataset-format');
      const format = helpOptions(helps[command].stdout).find((o) => o.flags.startsWith('--format '));
      if (command === 'compress') expect(format?.text).toMatch(/output format: factored.*dense/);
      else expect(format, command).toBeUndefined();
    }
    const r = cli('eval', 'm', '--dataset', 'd', '--format', 'text', '--json');
    expect(r.code).toBe(2);
    expect(jsonError(r).message).toBe("unknown option '--format'");
  });
});

describe.skipIf(!existsSync(DEMO_TOKENIZER))('commands on a tiny model', () => {
  let work: string;
  let model: string;
  let text: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'rfid-cli-conventions-'));
    const fixture = await makeExampleFixture(work);
    model = fixture.model;
    text = path.join(fixture.data, 'tinyshakespeare', 'input.txt');
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('a library error names options as this command\'s flags', () => {
    // WindowError from src/tokens says `seqLen` (the library's option); the CLI says --seq-len
    expect(() => calibrationWindows(Int32Array.from([1, 2, 3]), 1, 1000, 0)).toThrow(/smaller `seqLen`/);
    const r = cli('calibrate', model, '--dataset', text, '--out', path.join(work, 's.json'), '--seq-len', '1000000', '--samples', '1', '--engine', 'ts', '--json');
    expect(r.code).toBe(2);
    const error = jsonError(r);
    // the context-length check (EvalSettingsError) speaks of `seqLen` too
    expect(error.kind).toBe('EvalSettingsError');
    expect(error.message).toMatch(/--seq-len 1000000/);
    expect(error.message).not.toContain('`');
  });

  it('calibrate, compress and eval draw the same progress line with a total ETA', () => {
    const line = (command: string) => new RegExp(`^${command} \\[[#.]{24}\\] +\\d+% [A-Za-z ]+ \\d+\\/\\d+( \\(.*\\))? · [\\d.]+ (s|min|h) elapsed · ETA ([\\d.]+ (s|min|h)|—) total$`);
    const stats = path.join(work, 'stats.json');
    const runs: Record<string, Run> = {
      calibrate: cli('calibrate', model, '--dataset', text, '--out', stats, '--samples', '4', '--seq-len', '32', '--engine', 'ts'),
      compress: cli('compress', model, '--out', path.join(work, 'out'), '--retain', '0.6', '--stats', stats, '--eval-sequences', '2', '--engine', 'ts'),
      eval: cli('eval', model, '--dataset', text, '--seq-len', '32', '--max-windows', '4', '--batch-tokens', '64', '--reference', model, '--engine', 'ts'),
    };
    for (const [command, r] of Object.entries(runs)) {
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith(`${command} [`));
      expect(lines.length, command).toBeGreaterThan(1);
      for (const l of lines) expect(l, command).toMatch(line(command));
      expect(lines.at(-1), command).toMatch(/ 100% /);
      // a total ETA: once the first step is measured it is a number, and it is 0 at the end
      expect(lines.slice(1).every((l) => !l.includes('ETA —')), command).toBe(true);
      expect(lines.at(-1), command).toMatch(/ETA 0\.0 s total$/);
    }
    // eval with a reference: its steps cover both models and every pass
    expect(runs.eval.stderr).toMatch(/(model, pass 2\/2)/);
    expect(runs.eval.stderr).toMatch(/eval \[#{24}\] 100% layer (\d+)\/\1 \(reference, pass 2\/2\)/);
  });

  it('--format dense says it saves no bytes and points to --format factored, on stderr and in the report', () => {
    const r = cli('compress', model, '--out', path.join(work, 'dense'), '--retain', '0.6', '--samples', '2', '--seq-len', '16', '--no-eval', '--format', 'dense', '--engine', 'ts', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^warning: dense output saves no bytes.*--format factored/m);
    const report = JSON.parse(r.stdout) as { warnings: string[]; storage: string };
    expect(report.storage).toBe('dense');
    expect(report.warnings.some((w) => /^dense output saves no bytes.*as large on disk and in memory as the original.*--format factored/.test(w))).toBe(true);
  });
});
