/**
 * Parsing of option values the CLI cannot leave to commander (integers with a lower bound,
 * finite numbers, names from a list). These messages name command-line flags: they belong to the CLI layer only.
 */
import type { MatmulActivations } from '../engine/types.js';
import { RfidMoeError } from '../errors.js';
import { REASONING_PARSERS, type ReasoningParser } from '../serve/reasoning.js';

/** An option value that parsed but is not acceptable (not a number, out of range, conflicting). */
export class OptionError extends RfidMoeError {
  readonly kind = 'OptionError';
}

export function parseInteger(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new OptionError(`${flag} must be an integer ≥ ${min}, got "${value}"`);
  }
  return n;
}

export function parseNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new OptionError(`${flag} must be a number, got "${value}"`);
  return n;
}

/**
 * `--matmul-activations` as MatmulActivations (commander has held it to the choices; createEngine
 * checks it again). BF16 activations apply to the matrices held BF16 as stored, so with
 * `--no-bf16-weights` (every weight widened to f32) they would change nothing: that pair is
 * refused rather than silently ignored.
 */
export function parseMatmulActivations(value: string, bf16Weights = true): MatmulActivations {
  if (value === 'bf16' && !bf16Weights) {
    throw new OptionError('--matmul-activations bf16 rounds the activations of products against weights held in BF16, and --no-bf16-weights widens them all to f32: drop one of the two');
  }
  return value as MatmulActivations;
}

/** --reasoning-parser: a known parser, "none", or absent (none). */
export function parseReasoningParser(name: string | undefined): ReasoningParser | null {
  if (name === undefined || name === 'none') return null;
  const parser = REASONING_PARSERS.get(name);
  if (!parser) throw new OptionError(`--reasoning-parser must be one of ${[...REASONING_PARSERS.keys()].join(', ')} or none, got "${name}"`);
  return parser;
}
