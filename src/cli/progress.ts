/**
 * The progress display of every long command (`calibrate`, `compress`, `eval`): one renderer, so
 * the three look the same. A command declares its stages (e.g. calibration 8 layers, compression
 * 8 layers, evaluation 1 step) and reports steps as they finish; each line reads
 *
 *   compress [########................]  33% MoE layer 2/6 (decoder layer 3/7, 1.9 s) · 4.1 s elapsed · ETA 8.2 s total
 *
 * The ETA covers the whole command, not just the current stage: every stage's remaining steps
 * at that stage's measured seconds per step, or, for a stage not started yet, at the mean of
 * the steps measured so far (an estimate, refined as stages start). The bar and percentage show
 * the share of the estimated total time, since steps of different stages cost different times.
 *
 * On a terminal the line is redrawn in place; otherwise (logs, CI, pipes) one line per step, so
 * logs stay readable. Hand-written rather than a progress-bar package: the maintained ones
 * (cli-progress, progress) draw only on a TTY and print nothing, or garbage, into a log file,
 * and this is the one format that must work in both.
 */

import type { ProgressStream } from '../compress/progress.js';

export interface StagePlan {
  name: string;
  /** steps this stage will take; 0 when it turns out to be skipped */
  steps: number;
}

interface StageState extends StagePlan {
  done: number;
  seconds: number;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  enabled?: boolean;
  /** milliseconds since an arbitrary origin (tests pass a fake clock) */
  now?: () => number;
}

export function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function bar(fraction: number, width = 24): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return '[' + '#'.repeat(filled) + '.'.repeat(width - filled) + ']';
}

export class CommandProgress {
  private readonly stages: StageState[];
  private readonly stream: ProgressStream;
  private readonly enabled: boolean;
  private readonly now: () => number;
  private readonly started: number;
  private stageStarted: number;
  private lastEvent: number;
  private current = 0;
  private barShown = false;

  constructor(
    private readonly command: string,
    stages: StagePlan[],
    opts: ProgressOptions = {},
  ) {
    this.stages = stages.map((s) => ({ ...s, done: 0, seconds: 0 }));
    this.stream = opts.stream ?? process.stderr;
    this.enabled = opts.enabled ?? true;
    this.now = opts.now ?? (() => performance.now());
    this.started = this.now();
    this.stageStarted = this.started;
    this.lastEvent = this.started;
  }

  /** Revise a stage's step count once it is known (e.g. the number of MoE layers). */
  plan(stage: string, steps: number): void {
    this.stage(stage).steps = steps;
  }

  /**
   * `stage` starts now (optional: a stage otherwise starts when the previous one's last step
   * was reported). Earlier stages are over; one that never reported keeps 0 steps.
   */
  begin(stage: string): void {
    this.enter(stage, this.now());
  }

  /** `done` steps of `stage` are finished (`of` revises its step count); prints the line. */
  step(stage: string, done: number, of?: number, detail?: string): void {
    const s = this.enter(stage, this.lastEvent);
    if (of !== undefined) s.steps = of;
    s.done = Math.min(done, s.steps);
    this.lastEvent = this.now();
    s.seconds = (this.lastEvent - this.stageStarted) / 1000;
    this.draw(this.line(s, detail), s.done < s.steps);
  }

  private enter(stage: string, startedAt: number): StageState {
    const s = this.stage(stage);
    const index = this.stages.indexOf(s);
    if (index !== this.current) {
      for (let i = this.current; i < index; i++) this.stages[i].steps = this.stages[i].done;
      this.current = index;
      this.stageStarted = startedAt;
      this.lastEvent = startedAt;
    } else if (s.done === 0) {
      this.stageStarted = startedAt;
      this.lastEvent = startedAt;
    }
    return s;
  }

  /** A message line (dataset size, engine, warnings) that does not disturb the progress line. */
  note(text: string): void {
    if (!this.enabled) return;
    this.clearBar();
    this.stream.write(text + '\n');
  }

  /** Ends the in-place line on a terminal. */
  finish(): void {
    if (this.enabled && this.barShown) this.stream.write('\n');
    this.barShown = false;
  }

  /** Seconds until the whole command is done, or null before the first step. */
  etaSeconds(): number | null {
    const measured = this.stages.filter((s) => s.done > 0);
    if (measured.length === 0) return null;
    const meanRate = measured.reduce((sum, s) => sum + s.seconds, 0) / measured.reduce((sum, s) => sum + s.done, 0);
    let eta = 0;
    for (const s of this.stages.slice(this.current)) {
      const rate = s.done > 0 ? s.seconds / s.done : meanRate;
      eta += Math.max(0, s.steps - s.done) * rate;
    }
    return eta;
  }

  /** The progress line of the current state (what `step` prints). */
  line(s: StageState = this.stages[this.current], detail?: string): string {
    const eta = this.etaSeconds();
    const elapsed = (this.now() - this.started) / 1000;
    // the share of the time, not of the steps: stages' steps cost very different times
    const total = this.stages.reduce((sum, x) => sum + x.steps, 0);
    const done = this.stages.reduce((sum, x) => sum + x.done, 0);
    const fraction = done >= total ? 1 : eta === null || elapsed + eta <= 0 ? 0 : elapsed / (elapsed + eta);
    return (
      `${this.command} ${bar(fraction)} ${(100 * fraction).toFixed(0).padStart(3)}% ${s.name} ${s.done}/${s.steps}` +
      `${detail ? ` ${detail}` : ''} · ${formatSeconds(elapsed)} elapsed · ETA ${eta === null ? '—' : formatSeconds(eta)} total`
    );
  }

  private stage(name: string): StageState {
    const s = this.stages.find((x) => x.name === name);
    if (!s) throw new Error(`progress: unknown stage "${name}" (declared: ${this.stages.map((x) => x.name).join(', ')})`);
    return s;
  }

  private clearBar(): void {
    if (this.barShown) this.stream.write('\r\x1b[K');
    this.barShown = false;
  }

  private draw(text: string, more: boolean): void {
    if (!this.enabled) return;
    if (this.stream.isTTY === true) {
      this.stream.write('\r\x1b[K' + text);
      this.barShown = true;
      if (!more) this.finish();
    } else this.stream.write(text + '\n');
  }
}
