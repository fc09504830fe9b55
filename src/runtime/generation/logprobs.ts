/**
 * Log-probabilities of generated tokens, as the OpenAI API reports them: the model's own
 * distribution, softmax of the raw logits (temperature 1, before top-k or top-p; vLLM's default
 * "raw logprobs"), of the chosen token and of the `top` most likely tokens. f64 sums.
 */

/** Most alternatives a request may ask for (vLLM's default max_logprobs). */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenLogprob {
  /** the generated token and its log-probability */
  token: number;
  logprob: number;
  /** the most likely tokens, most likely first (ties: lower id first); `top` of them */
  top: ReadonlyArray<{ token: number; logprob: number }>;
}

/**
 * log softmax(logits)[token] and the `top` largest entries. `logSumExp` is log Σ exp(logits),
 * when the caller has it from a kernel (the decoder takes it from the engine's logitStats, ~10×
 * faster than this loop's Math.exp over a 152k vocabulary).
 */
export function tokenLogprobs(logits: Float32Array, token: number, top: number, logSumExp?: number): TokenLogprob {
  const lse = logSumExp ?? logSumExpOf(logits);
  return { token, logprob: logits[token] - lse, top: largest(logits, top).map((t) => ({ token: t, logprob: logits[t] - lse })) };
}

/** Ids of the k largest values, largest first, lower id first among equals (NaN never chosen). */
function largest(values: Float32Array, k: number): number[] {
  const ids: number[] = [];
  if (k <= 0) return ids;
  const insert = (j: number) => {
    // after every kept value ≥ this one (equal values keep the earlier id first)
    const v = values[j];
    let i = ids.length < k ? ids.length : k - 1;
    while (i > 0 && values[ids[i - 1]] < v) i--;
    ids.splice(i, 0, j);
    if (ids.length > k) ids.pop();
  };
  let j = 0;
  for (; j < values.length && ids.length < k; j++) if (!Number.isNaN(values[j])) insert(j);
  // then one comparison per entry against the smallest kept value (NaN compares false)
  let floor = ids.length === k ? values[ids[k - 1]] : Infinity;
  for (; j < values.length; j++) {
    if (values[j] > floor) {
      insert(j);
      floor = values[ids[k - 1]];
    }
  }
  return ids;
}

/** log Σ_j exp(logits_j), f64, shifted by the max. */
export function logSumExpOf(logits: Float32Array): number {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) if (logits[j] > max) max = logits[j];
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += Math.exp(logits[j] - max);
  return max + Math.log(sum);
}
