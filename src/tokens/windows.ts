/**
 * Token windows: calibration windows sampled at seeded random offsets (they may overlap, as in
 * GPTQ/SVD-LLM calibration, but the dataset must hold at least samples × seqLen tokens),
 * evaluation windows cut consecutively without overlap.
 */
import { mulberry32 } from '../util/prng.js';
import { RfidMoeError } from '../errors.js';

export class WindowError extends RfidMoeError {
  readonly kind = 'WindowError';
}

/** Seeded uniform [0, 1) generator of window offsets and sampled tokens (mulberry32). */
export const seededRandom: (seed: number) => () => number = mulberry32;

function checkLength(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new WindowError(`${name} must be a positive integer, got ${value}`);
}

/** `samples` windows of `seqLen` tokens at uniformly random offsets drawn from `seed`. */
export function calibrationWindows(ids: Int32Array, samples: number, seqLen: number, seed: number): Int32Array[] {
  checkLength('`samples`', samples);
  checkLength('`seqLen`', seqLen);
  if (ids.length < seqLen) {
    throw new WindowError(`the dataset has ${ids.length} tokens, fewer than one window of ${seqLen}; use a larger dataset or a smaller \`seqLen\``);
  }
  // random offsets may overlap by chance, but a dataset with fewer tokens than the windows need
  // could only be covered by repeating itself: that is a too-small dataset, said plainly
  if (ids.length < samples * seqLen) {
    throw new WindowError(
      `the dataset has ${ids.length} tokens, fewer than the ${samples} windows of ${seqLen} tokens need (${samples * seqLen}); the windows would repeat the same text. Use a larger dataset, or fewer \`samples\` or a smaller \`seqLen\` (at most ${Math.floor(ids.length / seqLen)} windows of ${seqLen} fit)`,
    );
  }
  const next = seededRandom(seed);
  const span = ids.length - seqLen + 1;
  return Array.from({ length: samples }, () => {
    const start = Math.floor(next() * span);
    return ids.subarray(start, start + seqLen);
  });
}

/**
 * Consecutive non-overlapping windows of `seqLen` tokens from the start; the incomplete tail is
 * dropped (every window predicts seqLen − 1 tokens), at most `maxWindows` when given.
 */
export function evaluationWindows(ids: Int32Array, seqLen: number, maxWindows?: number): Int32Array[] {
  checkLength('`seqLen`', seqLen);
  if (seqLen < 2) throw new WindowError('`seqLen` must be at least 2 (a window predicts seqLen − 1 tokens)');
  if (maxWindows !== undefined) checkLength('`maxWindows`', maxWindows);
  let count = Math.floor(ids.length / seqLen);
  if (count === 0) throw new WindowError(`the dataset has ${ids.length} tokens, fewer than one window of ${seqLen}; use a smaller \`seqLen\``);
  if (maxWindows !== undefined) count = Math.min(count, maxWindows);
  return Array.from({ length: count }, (_, w) => ids.subarray(w * seqLen, (w + 1) * seqLen));
}
