/**
 * Parsing of option values the CLI cannot leave to commander (integers with a lower bound,
 * finite numbers). These messages name command-line flags: they belong to the CLI layer only.
 */
import { RfidMoeError } from '../errors.js';

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
