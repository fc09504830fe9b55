/**
 * The shared progress renderer on a fake clock: the ETA covers every remaining stage (measured
 * rate for started stages, the mean measured rate for the others), lines have one format, and a
 * terminal gets the line redrawn in place.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandProgress } from '../../src/cli/progress.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { syntheticStats } from '../compress/helpers.js';
import { cliArgs } from '../helpers/cli.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';

function sink(isTTY = false): { stream: NodeJS.WritableStream & { isTTY?: boolean }; text: () => string } {
  let text = '';
  const stream = { isTTY, write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WritableStream & { isTTY?: boolean };
  return { stream, text: () => text };
}

describe('CommandProgress', () => {
  it('estimates the whole command, not the current stage', () => {
    let now = 0;
    const out = sink();
    const p = new CommandProgress('compress', [{ name: 'calibration layer', steps: 4 }, { name: 'layer', steps: 4 }, { name: 'evaluation', steps: 1 }], { stream: out.stream, now: () => now });
    expect(p.etaSeconds()).toBeNull();
    now = 1000;
    p.step('calibration layer', 1); // 1 s per calibration layer
    // 3 calibration layers at 1 s, then 4 + 1 steps not started, at the mean rate (1 s)
    expect(p.etaSeconds()).toBeCloseTo(8, 12);
    now = 4000;
    p.step('calibration layer', 4);
    now = 10_000;
    p.step('layer', 1); // 6 s per compression layer
    // 3 compression layers at 6 s, and the evaluation step at the mean of all measured steps (10 s / 5)
    expect(p.etaSeconds()).toBeCloseTo(3 * 6 + 2, 12);
    now = 28_000;
    p.step('layer', 4);
    p.begin('evaluation');
    now = 29_000;
    p.step('evaluation', 1);
    expect(p.etaSeconds()).toBe(0);
    const lines = out.text().trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toBe('compress [###.....................]  11% calibration layer 1/4 · 1.0 s elapsed · ETA 8.0 s total');
    expect(lines[2]).toBe('compress [########................]  33% layer 1/4 · 10.0 s elapsed · ETA 20.0 s total');
    expect(lines[4]).toBe('compress [########################] 100% evaluation 1/1 · 29.0 s elapsed · ETA 0.0 s total');
  });

  it('a stage that never reports is skipped; step counts can be revised', () => {
    let now = 0;
    const out = sink();
    const p = new CommandProgress('eval', [{ name: 'sampling position', steps: 10 }, { name: 'layer', steps: 0 }], { stream: out.stream, now: () => now });
    now = 2000;
    p.step('layer', 1, 4, '(model, pass 1/1)');
    expect(p.etaSeconds()).toBeCloseTo(6, 12);
    expect(out.text()).toBe('eval [######..................]  25% layer 1/4 (model, pass 1/1) · 2.0 s elapsed · ETA 6.0 s total\n');
  });

  it('redraws in place on a terminal and keeps notes on their own lines; prints nothing when disabled', () => {
    const tty = sink(true);
    const p = new CommandProgress('calibrate', [{ name: 'layer', steps: 2 }], { stream: tty.stream, now: () => 0 });
    p.step('layer', 1);
    p.note('warning: x');
    p.step('layer', 2);
    expect(tty.text()).toMatch(/^\r\x1b\[Kcalibrate .* layer 1\/2 .*\r\x1b\[Kwarning: x\n\r\x1b\[Kcalibrate .* layer 2\/2 .*total\n$/s);
    const quiet = sink();
    const q = new CommandProgress('calibrate', [{ name: 'layer', steps: 1 }], { stream: quiet.stream, enabled: false });
    q.step('layer', 1);
    q.note('dataset: 10 tokens');
    expect(quiet.text()).toBe('');
  });
});

describe('rfid-moe compress progress', () => {
  it('counts the MoE layers as the compression steps, naming each one\'s decoder layer (a dense first layer is no step)', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'rfid-progress-'));
    try {
      // DeepSeek-V2: layer 0 dense, layers 1 and 2 MoE
      const { dir } = await makeTinyCheckpoint(path.join(work, 'model'), 'deepseek_v2', { seed: 4 });
      const ckpt = await openCheckpoint(dir);
      const stats = path.join(work, 'stats.json');
      try {
        await writeRoutingStats(stats, syntheticStats(ckpt));
      } finally {
        await ckpt.close();
      }
      const r = spawnSync(process.execPath, [...cliArgs, 'compress', dir, '--out', path.join(work, 'out'), '--stats', stats, '--retain', '0.5', '--no-eval'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const steps = r.stderr.split('\n').filter((l) => l.startsWith('compress [')).map((l) => /(MoE layer \d+\/\d+ \(decoder layer \d+\/\d+)/.exec(l)?.[1]);
      expect(steps.filter((x) => x !== undefined)).toEqual(['MoE layer 1/2 (decoder layer 2/3', 'MoE layer 2/2 (decoder layer 3/3']);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
