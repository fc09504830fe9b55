/**
 * tokenLogprobs: log-softmax of the raw logits (identities: the probabilities of every token sum
 * to 1; a shift of every logit changes nothing) and the top alternatives in order, ties to the
 * lower id, NaN never chosen; the engine's logitStats gives the same log-sum-exp.
 */
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import { logSumExpOf, tokenLogprobs } from '../../src/runtime/generation/logprobs.js';
import { mulberry32 } from '../helpers/rng.js';

describe('tokenLogprobs', () => {
  const rand = mulberry32(11);
  const logits = Float32Array.from({ length: 5000 }, () => (rand() - 0.5) * 20);

  it('is log-softmax: every token’s probability sums to 1, and a shift changes nothing', () => {
    let total = 0;
    for (let t = 0; t < logits.length; t++) total += Math.exp(tokenLogprobs(logits, t, 0).logprob);
    expect(total).toBeCloseTo(1, 10);
    const shifted = logits.map((v) => v + 50);
    expect(tokenLogprobs(shifted, 7, 0).logprob).toBeCloseTo(tokenLogprobs(logits, 7, 0).logprob, 4);
  });

  it('lists the k most likely tokens, most likely first, against a full sort', () => {
    const { top } = tokenLogprobs(logits, 3, 20);
    const sorted = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 20);
    expect(top.map((t) => t.token)).toEqual(sorted);
    for (const t of top) expect(t.logprob).toBe(tokenLogprobs(logits, t.token, 0).logprob);
  });

  it('ties go to the lower id, NaN is never chosen, and k beyond the vocabulary lists every token', () => {
    const row = Float32Array.of(1, 3, NaN, 3, 2, -Infinity);
    expect(tokenLogprobs(row, 0, 3).top.map((t) => t.token)).toEqual([1, 3, 4]);
    expect(tokenLogprobs(row, 0, 10).top.map((t) => t.token)).toEqual([1, 3, 4, 0, 5]);
    // a token the model rules out; a row with NaN has no distribution (NaN, as logitStats says)
    expect(tokenLogprobs(Float32Array.of(1, -Infinity), 1, 0).logprob).toBe(-Infinity);
    expect(tokenLogprobs(row, 0, 0).logprob).toBeNaN();
  });

  it('the engine’s logitStats gives the log-sum-exp the decoder passes in', async () => {
    for (const choice of ['ts', 'native'] as const) {
      const { engine } = await createEngine(choice, { threads: 1 });
      try {
        const out = { max: new Float64Array(1), sumExp: new Float64Array(1), argmax: new Int32Array(1) };
        engine.kernels.logitStats(1, logits.length, logits, out);
        expect(out.max[0] + Math.log(out.sumExp[0])).toBeCloseTo(logSumExpOf(logits), 5);
      } finally {
        engine.dispose();
      }
    }
  });
});
