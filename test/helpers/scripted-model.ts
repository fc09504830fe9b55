/**
 * A scripted model for constraint tests: each step's row of logits favours one token (10, the rest
 * 0), so the constraint's choice is the model's favourite where it fits, and where it does not, the
 * constraint's own (the lowest id that fits, under greedy).
 */
import type { TokenConstraint } from '../../src/runtime/generation/grammar-constraint.js';
import { Sampler, type SamplingParams } from '../../src/runtime/index.js';

const argmax = (r: Float32Array) => r.indexOf(Math.max(...r));

/** Favours `favourites` one step each, until the constraint is complete or they run out; the tokens chosen. */
export function chooseFavourites(c: TokenConstraint, vocab: number, favourites: Iterable<number>, sampling: SamplingParams = { temperature: 0 }, seed = 7): number[] {
  const sampler = new Sampler({ seed, ...sampling });
  const chosen: number[] = [];
  for (const t of favourites) {
    if (c.complete) break;
    const row = new Float32Array(vocab);
    row[t] = 10;
    const token = c.choose(row, sampler, argmax);
    if (token < 0) throw new Error(`no token fits after ${JSON.stringify(chosen)}`);
    c.commit(token);
    chosen.push(token);
  }
  return chosen;
}
