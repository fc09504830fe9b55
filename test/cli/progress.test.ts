/**
 * The shared progress renderer on a fake clock: the ETA covers every remaining stage (measured
 * rate for started stages, the mean measured rate for the others), lines have one format, and a
 * terminal gets the line redrawn in place.
 */
import { describe, expect, it } from 'vitest';
import { CommandProgress } from '../../src/cli/progress.js';

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
