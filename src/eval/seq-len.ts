/**
 * Window length for perplexity. A window longer than the positions a model was built for
 * (`max_position_embeddings`) still runs, RoPE extrapolates, but its perplexity says nothing
 * about the model, so such a length is refused rather than silently measured.
 */
import type { ModelConfig } from '../checkpoint/types.js';
import { RfidMoeError } from '../errors.js';

export class EvalSettingsError extends RfidMoeError {
  readonly kind = 'EvalSettingsError';
}

/** The longest sequence the config declares, or null when it names none. */
export function maxPositions(config: ModelConfig): number | null {
  const v = config.raw.max_position_embeddings;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
}

/** 2048 tokens, or the model's whole context when that is shorter. */
export function defaultEvalSeqLen(config: ModelConfig): number {
  return Math.min(2048, maxPositions(config) ?? 2048);
}

export function checkEvalSeqLen(config: ModelConfig, seqLen: number): void {
  const max = maxPositions(config);
  if (max !== null && seqLen > max) {
    throw new EvalSettingsError(
      `\`seqLen\` ${seqLen} is longer than the model's max_position_embeddings (${max}): perplexity over positions the model was not built for is meaningless; use a \`seqLen\` of ${max} or less`,
    );
  }
}

/**
 * Calibration (and compression's calibration) windows are bounded the same way: routing counted
 * at positions the model was not built for describes nothing, and a huge --seq-len would only
 * make the run crawl (attention is quadratic in it) before failing.
 */
export function checkCalibrationSeqLen(config: ModelConfig, seqLen: number, option = '\`seqLen\`'): void {
  const max = maxPositions(config);
  if (max !== null && seqLen > max) {
    throw new EvalSettingsError(
      `${option} ${seqLen} is longer than the model's max_position_embeddings (${max}): routing over positions the model was not built for is meaningless; use ${option} ${max} or less`,
    );
  }
}

/** 512 tokens, or the model's whole context when that is shorter. */
export function defaultCalibrationSeqLen(config: ModelConfig, preferred = 512): number {
  return Math.min(preferred, maxPositions(config) ?? preferred);
}
