/** Command-line option parsing shared by `calibrate` and `eval` (dataset format, integer flags). */
import type { DatasetFormat } from './dataset.js';

export class OptionError extends Error {
  readonly kind = 'OptionError';
  constructor(message: string) {
    super(message);
    this.name = 'OptionError';
  }
}

export function parseInteger(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new OptionError(`${flag} must be an integer ≥ ${min}, got "${value}"`);
  }
  return n;
}

export function parseDatasetFormat(value: string): DatasetFormat | 'auto' {
  if (value === 'auto' || value === 'text' || value === 'jsonl' || value === 'wikitext') return value;
  throw new OptionError(`--format must be one of auto, text, jsonl, wikitext; got "${value}"`);
}
