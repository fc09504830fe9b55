/**
 * Next-token choice from a row of logits, in the order Hugging Face's logits warpers apply:
 * temperature → top-k → top-p (nucleus) → min-p → typical, then one draw from the renormalised distribution
 * with a seeded generator (the same seed gives the same tokens on every machine). Temperature 0 is
 * greedy: the arg-max, lowest id on ties (what torch.argmax returns).
 *
 * vLLM applies min-p before top-k and top-p; transformers after them. The two differ only where
 * top-p cuts inside the tokens min-p keeps; this follows transformers, the reference the tests use.
 */
import { argmaxOf } from '../../engine/ts/kernels/argmax-rows.js';
import { mulberry32 } from '../../util/prng.js';
import { GenerationParamsError } from './errors.js';

export interface SamplingParams {
  /** 0 = greedy; default 1 */
  temperature?: number;
  /** keep only the k most likely tokens; 0 or absent = all */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p; 1 or absent = all */
  topP?: number;
  /** drop tokens less likely than min-p × the most likely token's probability; 0 or absent = off */
  minP?: number;
  /**
   * typical sampling (Meister et al., transformers' TypicalLogitsWarper, TGI's typical_p): keep
   * the tokens whose surprise is closest to the distribution's entropy, up to this much of the
   * mass; 1 or absent = off
   */
  typicalP?: number;
  /** seed of the draws; absent = a random seed (reported in the request's usage) */
  seed?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  typicalP: number;
  seed: number;
}

/** Validates and fills defaults; throws GenerationParamsError naming the bad field. */
export function resolveSampling(p: SamplingParams): ResolvedSampling {
  const temperature = p.temperature ?? 1;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw new GenerationParamsError(`temperature must be a finite number ≥ 0 (0 = greedy), got ${String(p.temperature)}`, 'temperature');
  }
  const topK = p.topK ?? 0;
  if (!Number.isSafeInteger(topK) || topK < 0) throw new GenerationParamsError(`top-k must be an integer ≥ 0 (0 = off), got ${String(p.topK)}`, 'topK');
  const topP = p.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new GenerationParamsError(`top-p must be in (0, 1] (1 = off), got ${String(p.topP)}`, 'topP');
  const minP = p.minP ?? 0;
  if (typeof minP !== 'number' || !(minP >= 0 && minP <= 1)) throw new GenerationParamsError(`min-p must be in [0, 1] (0 = off), got ${String(p.minP)}`, 'minP');
  const typicalP = p.typicalP ?? 1;
  if (typeof typicalP !== 'number' || !(typicalP > 0 && typicalP <= 1)) throw new GenerationParamsError(`typical-p must be in (0, 1] (1 = off), got ${String(p.typicalP)}`, 'typicalP');
  const seed = p.seed ?? Math.floor(Math.random() * 2 ** 32);
  if (!Number.isSafeInteger(seed)) throw new GenerationParamsError(`seed must be an integer, got ${String(p.seed)}`, 'seed');
  return { temperature, topK, topP, minP, typicalP, seed };
}

/** Index of the largest logit (first on ties, NaN ignored; 0 when every logit is NaN). */
export function argmax(logits: Float32Array): number {
  return argmaxOf(logits);
}

/**
 * The distribution that is sampled: probabilities after temperature, top-k, top-p, min-p and
 * typical, as a sparse list (token ids, their renormalised probabilities; in descending
 * probability order, or typical's order where it cuts). Exposed for tests and for callers that
 * want log-probabilities.
 */
export function samplingDistribution(
  logits: Float32Array,
  params: Pick<ResolvedSampling, 'temperature' | 'topK' | 'topP'> & { minP?: number; typicalP?: number },
): { ids: Int32Array; probs: Float64Array } {
  const { temperature, topK, topP } = params;
  const minP = params.minP ?? 0;
  const typicalP = params.typicalP ?? 1;
  const vocab = logits.length;
  if (temperature === 0) return { ids: Int32Array.of(argmax(logits)), probs: Float64Array.of(1) };
  const weights = new Float64Array(vocab);
  const max = temperatureWeights(logits, temperature, weights);
  // the limits, which exp((l − max) / T) would turn into NaN: no finite or +∞ logit leaves nothing
  // to draw (the request's own checks refuse what would cause it), and +∞ logits share all the mass
  if (!(max > -Infinity)) throw new RangeError('no token can be sampled: every logit is -∞ or NaN');
  if (max === Infinity) {
    const ids = Int32Array.from(Array.from(logits.keys()).filter((j) => logits[j] === Infinity));
    return { ids, probs: new Float64Array(ids.length).fill(1 / ids.length) };
  }
  let total = 0;
  for (let j = 0; j < vocab; j++) total += weights[j];
  // top-k like HF's TopKLogitsWarper: drop values below the k-th largest (ties at the k-th are kept)
  let threshold = 0;
  if (topK > 0 && topK < vocab) {
    threshold = kthLargest(weights, topK);
    total = 0;
    for (let j = 0; j < vocab; j++) if (weights[j] >= threshold) total += weights[j];
  }
  // Candidates: every kept token whose weight is at least τ·total; τ shrinks until the candidates
  // carry top-p of the mass (then the nucleus, a prefix of the sorted order, lies within them), so
  // only a few tokens are sorted even for a large vocabulary.
  const need = topP * total;
  let tau = topP < 1 ? 1e-3 : 0;
  let candidates: number[] = [];
  for (;;) {
    candidates = [];
    let mass = 0;
    // (min-p's floor too: the largest weight is exp(0) = 1, so min-p drops weights below minP;
    // leaving them out here spares sorting a whole vocabulary when top-p is off)
    const floor = Math.max(threshold, tau * total, minP);
    for (let j = 0; j < vocab; j++) {
      if (weights[j] >= floor && weights[j] > 0) {
        candidates.push(j);
        mass += weights[j];
      }
    }
    if (tau === 0 || mass >= need) break;
    tau = tau < 1e-12 ? 0 : tau / 64;
  }
  // (typical sampling orders the tokens its own way: without a top-p cut they need no other order)
  const sorted = topP < 1 || typicalP >= 1;
  if (sorted) candidates.sort((a, b) => weights[b] - weights[a] || a - b);
  let keep = candidates.length;
  if (topP < 1) {
    // HF's TopPLogitsWarper keeps a token while the mass strictly before it is below top-p (≥ 1 token)
    let cumulative = 0;
    keep = 0;
    while (keep < candidates.length && (keep === 0 || cumulative < need)) cumulative += weights[candidates[keep++]];
  }
  // min-p (transformers' MinPLogitsWarper): a token stays if its probability is at least min-p
  // times the largest; the ratio is the same before and after renormalising, so weights serve
  // (unsorted, the candidates' floor above has applied it already: the largest weight is 1)
  if (minP > 0 && sorted) {
    const floor = minP * weights[candidates[0]];
    let kept = 1;
    while (kept < keep && weights[candidates[kept]] >= floor) kept++;
    keep = kept;
  }
  const ids = typicalP < 1 ? typicalCut(candidates.slice(0, keep), weights, typicalP) : Int32Array.from(candidates.slice(0, keep));
  let kept = 0;
  for (const id of ids) kept += weights[id];
  const probs = Float64Array.from(ids, (id) => weights[id] / kept);
  return { ids, probs };
}

/**
 * transformers' TypicalLogitsWarper on the tokens left (`ids`, unnormalised `weights`): each
 * token's distance from the entropy, |−log p − H|, ascending; the tokens kept are those up to the
 * first whose cumulative probability in that order reaches `mass` (ties with it kept, at least one).
 */
function typicalCut(ids: readonly number[], weights: Float64Array, mass: number): Int32Array {
  const n = ids.length;
  let total = 0;
  for (const id of ids) total += weights[id];
  let entropy = 0;
  for (const id of ids) {
    const p = weights[id] / total;
    if (p > 0) entropy -= p * Math.log(p);
  }
  // (arrays by position, not a map: with top-p off this sorts the whole vocabulary every token)
  const shifted = new Float64Array(n);
  for (let i = 0; i < n; i++) shifted[i] = Math.abs(-Math.log(weights[ids[i]] / total) - entropy);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => shifted[a] - shifted[b] || ids[a] - ids[b]);
  // the first index whose cumulative probability is not below the mass (transformers: the count below it)
  let cumulative = 0;
  let last = 0;
  while (last < n - 1) {
    cumulative += weights[ids[order[last]]] / total;
    if (!(cumulative < mass)) break;
    last++;
  }
  const limit = shifted[order[last]];
  let kept = 1;
  while (kept < n && shifted[order[kept]] <= limit) kept++;
  return Int32Array.from(order.subarray(0, kept), (i) => ids[i]);
}

/**
 * The largest logit, and where it is finite, the f64 weights of logits / T into `weights`
 * (unnormalised probabilities: exp((l − max) / T); a NaN logit weighs 0). Where it is not (no finite
 * logit, or +∞ ones) `weights` is left as it was: samplingDistribution handles those limits.
 */
function temperatureWeights(logits: Float32Array, temperature: number, weights: Float64Array): number {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) if (logits[j] > max) max = logits[j];
  if (max > -Infinity && max < Infinity) {
    for (let j = 0; j < logits.length; j++) {
      const w = Math.exp((logits[j] - max) / temperature);
      weights[j] = w === w ? w : 0;
    }
  }
  return max;
}

function kthLargest(values: Float64Array, k: number): number {
  // k is usually small: keep a sorted buffer of the k largest seen
  const top = new Float64Array(k).fill(-Infinity);
  for (const v of values) {
    if (v <= top[k - 1]) continue;
    let i = k - 1;
    while (i > 0 && top[i - 1] < v) {
      top[i] = top[i - 1];
      i--;
    }
    top[i] = v;
  }
  return top[k - 1];
}

/** Inverse-CDF draw with u ∈ [0, 1) from a sparse distribution (the last entry absorbs rounding). */
export function drawFrom(dist: { ids: Int32Array; probs: Float64Array }, u: number): number {
  let target = u;
  for (let i = 0; i < dist.ids.length; i++) {
    target -= dist.probs[i];
    if (target < 0) return dist.ids[i];
  }
  return dist.ids[dist.ids.length - 1];
}

/** Inverse-CDF draw from softmax(logits) at temperature 1 (f64 sums; the last token absorbs rounding). */
export function drawToken(logits: Float32Array, u: number): number {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let total = 0;
  for (const v of logits) total += Math.exp(v - max);
  let target = u * total;
  for (let j = 0; j < logits.length; j++) {
    target -= Math.exp(logits[j] - max);
    if (target < 0) return j;
  }
  return logits.length - 1;
}

/** One request's sampler: its parameters and its own seeded stream of uniforms. */
export class Sampler {
  readonly params: ResolvedSampling;
  private readonly random: () => number;

  constructor(params: SamplingParams | ResolvedSampling) {
    this.params = resolveSampling(params);
    this.random = mulberry32(this.params.seed);
  }

  /**
   * The next token for this row of logits (consumes one uniform unless greedy). `pickGreedy`
   * replaces the JavaScript arg-max for greedy rows (the decoder passes the engine's kernel); it
   * must choose as `argmax` does.
   */
  next(logits: Float32Array, pickGreedy: (logits: Float32Array) => number = argmax): number {
    if (this.params.temperature === 0) return pickGreedy(logits);
    if (this.params.topP >= 1 && this.params.typicalP >= 1) return this.drawKept(logits);
    return drawFrom(samplingDistribution(logits, this.params), this.random());
  }

  /** scratch weights for drawKept, grown to the largest vocabulary seen */
  private weights = new Float64Array(0);

  /**
   * A draw from samplingDistribution's distribution where no top-p cut needs the tokens in order
   * (top-p off; top-k and min-p are thresholds on the weights): the inverse-CDF draw runs over the
   * kept tokens in id order instead of sorted order. Same tokens kept, same probabilities; only
   * which token a given uniform lands on differs. Sorting the vocabulary took 58 ms a token at
   * 151,936 tokens for plain temperature sampling (the API's default).
   */
  private drawKept(logits: Float32Array): number {
    const { temperature, topK } = this.params;
    const vocab = logits.length;
    if (this.weights.length < vocab) this.weights = new Float64Array(vocab);
    const weights = this.weights.subarray(0, vocab);
    const max = temperatureWeights(logits, temperature, weights);
    // no finite logit, or +∞ ones: samplingDistribution's limits (an error, or the +∞ ones sharing the mass)
    if (!(max > -Infinity) || max === Infinity) return drawFrom(samplingDistribution(logits, this.params), this.random());
    // top-k's threshold (ties at the k-th kept) and min-p's floor (the largest weight is exp(0) = 1)
    const floor = Math.max(topK > 0 && topK < vocab ? kthLargest(weights, topK) : 0, this.params.minP ?? 0);
    const kept = (w: number) => w >= floor && w > 0;
    let total = 0;
    for (let j = 0; j < vocab; j++) if (kept(weights[j])) total += weights[j];
    let target = this.random() * total;
    let last = -1;
    for (let j = 0; j < vocab; j++) {
      if (!kept(weights[j])) continue;
      target -= weights[j];
      if (target < 0) return j;
      last = j;
    }
    return last;
  }
}
