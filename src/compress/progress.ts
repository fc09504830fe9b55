/**
 * Typed progress events of a compression run, and the CLI's renderer: a bar redrawn in place
 * when stderr is a terminal, else one line per event worth logging (so logs stay readable).
 */

export type CompressProgress =
  | { type: 'calibration'; phase: 'start' | 'layer' | 'done'; source: 'dataset' | 'self-sampled'; layer?: number; of?: number; message: string }
  | { type: 'layer-start'; layer: number; of: number; etaSeconds: number | null }
  | { type: 'layer-group'; layer: number; of: number; matrixType: string; group: number; groups: number }
  | { type: 'layer-done'; layer: number; of: number; seconds: number; etaSeconds: number | null; resumed: boolean }
  | { type: 'finalize'; message: string }
  | { type: 'evaluation'; phase: 'start' | 'done'; message: string }
  | { type: 'warning'; message: string };

export type ProgressListener = (event: CompressProgress) => void;

/** Mean seconds per computed layer × layers left (null until one layer was computed). */
export class EtaClock {
  private computed = 0;
  private seconds = 0;

  record(seconds: number): void {
    this.computed++;
    this.seconds += seconds;
  }

  eta(layersLeft: number): number | null {
    return this.computed === 0 ? null : (this.seconds / this.computed) * layersLeft;
  }
}

function formatEta(eta: number | null): string {
  if (eta === null) return 'ETA —';
  if (eta < 90) return `ETA ${eta.toFixed(0)} s`;
  return `ETA ${(eta / 60).toFixed(1)} min`;
}

function bar(done: number, of: number, width = 24): string {
  const filled = of > 0 ? Math.round((done / of) * width) : width;
  return '[' + '#'.repeat(filled) + '.'.repeat(width - filled) + ']';
}

/** Where progress is drawn: process.stderr, or anything with `write` (and `isTTY` for a terminal). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** A listener that draws progress on a stream (stderr by default). */
export function stderrProgress(stream: ProgressStream = process.stderr): ProgressListener {
  const tty = stream.isTTY === true;
  let barShown = false;
  const line = (text: string) => {
    if (tty && barShown) stream.write('\r\x1b[K');
    barShown = false;
    stream.write(text + '\n');
  };
  const drawBar = (text: string) => {
    stream.write('\r\x1b[K' + text);
    barShown = true;
  };
  return (event) => {
    switch (event.type) {
      case 'layer-start':
        if (tty) drawBar(`compress ${bar(event.layer, event.of)} layer ${event.layer + 1}/${event.of} ${formatEta(event.etaSeconds)}`);
        return;
      case 'layer-group':
        if (tty) drawBar(`compress ${bar(event.layer, event.of)} layer ${event.layer + 1}/${event.of} ${event.matrixType} group ${event.group}/${event.groups}`);
        return;
      case 'layer-done': {
        const text = `compress ${bar(event.layer + 1, event.of)} layer ${event.layer + 1}/${event.of} ${event.resumed ? 'kept from the interrupted run' : `done in ${event.seconds.toFixed(1)} s`}, ${formatEta(event.etaSeconds)}`;
        if (tty) drawBar(text);
        else line(text);
        return;
      }
      case 'calibration':
        if (event.phase === 'layer' && tty) drawBar(`calibrate ${bar((event.layer ?? 0) + 1, event.of ?? 1)} ${event.message}`);
        else if (event.phase !== 'layer') line(`calibrate: ${event.message}`);
        return;
      case 'finalize':
      case 'evaluation':
        line(`${event.type === 'finalize' ? 'finalize' : 'evaluate'}: ${event.message}`);
        return;
      case 'warning':
        line(`warning: ${event.message}`);
        return;
    }
  };
}
