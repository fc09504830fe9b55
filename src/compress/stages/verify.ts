/**
 * Stage 6, verify: open the finished output like a user would and measure KL divergence and top-1
 * agreement against the original on held-out sequences the compressor never saw.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import { openCompressed } from '../../compressed/load.js';
import type { Engine } from '../../engine/types.js';
import { evaluateWindows } from '../../eval/evaluate.js';
import type { ProgressListener } from '../progress.js';
import type { Fidelity } from '../report.js';
import type { CalibrationPlan } from './calibrate.js';

export async function measureFidelity(
  ckpt: Checkpoint,
  out: string,
  config: Record<string, unknown>,
  engine: Engine,
  calibration: CalibrationPlan,
  count: number,
  emit: ProgressListener,
): Promise<Fidelity | undefined> {
  emit({ type: 'evaluation', phase: 'start', message: `KL and top-1 agreement against the original on ${count} held-out sequence(s)` });
  const heldOut = await calibration.heldOut(count);
  if (!heldOut || heldOut.sequences.length === 0) {
    emit({ type: 'warning', message: 'fidelity not measured: no held-out data long enough for one window' });
    return undefined;
  }
  const compressed = await openCompressed(out, config, { verifyHashes: false }); // hashes were just computed from these files
  try {
    const result = await evaluateWindows(compressed, engine, heldOut.sequences, ckpt);
    const fidelity: Fidelity = {
      on: heldOut.on,
      sequences: heldOut.sequences.length,
      tokens: result.comparison!.tokens,
      meanKl: result.comparison!.meanKl,
      top1Agreement: result.comparison!.top1Agreement,
      perplexity: result.model.perplexity,
      referencePerplexity: result.reference!.perplexity,
    };
    emit({ type: 'evaluation', phase: 'done', message: `mean KL ${fidelity.meanKl.toExponential(3)}, top-1 ${(100 * fidelity.top1Agreement).toFixed(2)}%` });
    return fidelity;
  } finally {
    await compressed.close();
  }
}

