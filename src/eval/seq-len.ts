/**
 * Window length for perplexity. A window longer than the positions a model was built for
 * (`max_position_embeddings`) still runs, RoPE extrapolates, but its perplexity says nothing
 * about the model, so such a length is refused rather than silently measured. A model whose
 * computation the runtime matches only on shorter sequences (checkpoint/position-limit.ts) is held
 * to that length too.
 */
import { exactPositionLimit } from '../checkpoint/position-limit.js';
import type { ModelConfig } from '../checkpoint/types.js';
import { RfidMoeError } from '../errors.js';

export class EvalSettingsError extends RfidMoeError {
  readonly kind = 'EvalSettingsError';
}

interface WindowBound {
  positions: number;
  /** the bound, as a message names it */
  what: string;
  /** why a window past it measures nothing */
  meaningless: string;
}

/** The longest window the config allows, and why; null when it names none. */
function windowBound(config: ModelConfig): WindowBound | null {
  const v = config.raw.max_position_embeddings;
  const declared = typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
  const exact = exactPositionLimit(config);
  if (exact !== null && (declared === null || exact.positions < declared)) return { positions: exact.positions, what: exact.why, meaningless: 'the model would be computed as it is not' };
  if (declared === null) return null;
  return { positions: declared, what: `the model's max_position_embeddings (${declared})`, meaningless: 'positions the model was not built for' };
}

/** The longest sequence the config allows, or null when it names none. */
export function maxPositions(config: ModelConfig): number | null {
  return windowBound(config)?.positions ?? null;
}

/** 2048 tokens, or the model's whole context when that is shorter. */
export function defaultEvalSeqLen(config: ModelConfig): number {
  return Math.min(2048, maxPositions(config) ?? 2048);
}

export function checkEvalSeqLen(config: ModelConfig, seqLen: number): void {
  const bound = windowBound(config);
  if (bound !== null && seqLen > bound.positions) {
    throw new EvalSettingsError(
      `\`seqLen\` ${seqLen} is longer than ${bound.what}: perplexity over ${bound.meaningless} is meaningless; use a \`seqLen\` of ${bound.positions} or less`,
    );
  }
}

/**
 * Calibration (and compression's calibration) windows are bounded the same way: routing counted
 * at positions the model was not built for describes nothing, and a huge --seq-len would only
 * make the run crawl (attention is quadratic in it) before failing.
 */
export function checkCalibrationSeqLen(config: ModelConfig, seqLen: number, option = '\`seqLen\`'): void {
  const bound = windowBound(config);
  if (bound !== null && seqLen > bound.positions) {
    throw new EvalSettingsError(
      `${option} ${seqLen} is longer than ${bound.what}: routing over ${bound.meaningless} is meaningless; use ${option} ${bound.positions} or less`,
    );
  }
}

/** 512 tokens, or the model's whole context when that is shorter. */
export function defaultCalibrationSeqLen(config: ModelConfig, preferred = 512): number {
  return Math.min(preferred, maxPositions(config) ?? preferred);
}
