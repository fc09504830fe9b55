/** Seeded prompts for the decode benchmarks: token ids drawn uniformly from the vocabulary. */
import { mulberry32 } from '../../src/util/prng.js';

/** `length` token ids in [0, vocab), the same for the same seed (stream i of a run uses seed 1 for i = 0, else 100 + i). */
export function randomPrompt(vocab: number, length: number, seed: number): Int32Array {
  const next = mulberry32(seed);
  return Int32Array.from({ length }, () => Math.floor(next() * vocab));
}
