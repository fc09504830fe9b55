/**
 * Per-request adjustments of a row of logits before a token is chosen: a set of allowed tokens, a
 * bias per token, the repetition penalty, and the frequency and presence penalties. They run in
 * the order vLLM applies them (allowed tokens, bias, repetition, then frequency and presence;
 * transformers has the same order for those it has), before temperature, top-k and top-p, and
 * they change greedy choices too.
 *
 * - allowed tokens (vLLM's `allowed_token_ids`): every other token's logit becomes -∞.
 * - logit bias (OpenAI's `logit_bias`): a fixed amount added to a token's logit, in [-100, 100].
 * - repetition penalty (transformers' `repetition_penalty`, also a vLLM request field): every token
 *   that occurs in the prompt or the completion so far has its logit divided by the penalty when
 *   positive and multiplied by it when negative (> 1 discourages repeats; 1 = off).
 * - frequency and presence penalties (OpenAI's, in [-2, 2]): a token generated c times so far has
 *   c·frequency + presence subtracted from its logit (completion tokens only, as OpenAI and vLLM
 *   count them).
 * - a minimum length (vLLM's `min_tokens`): the request's stop token ids are -∞ until that many
 *   tokens have been generated.
 * - bad words (vLLM's `bad_words`, transformers' `bad_words_ids`): token sequences never generated:
 *   the last token of each is -∞ wherever the tokens generated so far end with the others (a
 *   one-token sequence is never generated).
 *
 * The arithmetic is float32, each operation rounded as PyTorch rounds it (a Float32Array store
 * rounds the exact f64 result once, which for +, ×, ÷ of float32 operands equals the float32
 * operation), so that a greedy decode matches transformers' token for token
 * (test/runtime/logits-processors.test.ts). Only the tokens seen so far are touched: a step costs the
 * number of distinct tokens, not the vocabulary.
 */
import { MAX_REPETITION_PENALTY, MIN_REPETITION_PENALTY } from '../../checkpoint/generation-config.js';
import { GenerationParamsError } from './errors.js';

/** Largest magnitude of a logit bias (OpenAI's range). */
export const MAX_LOGIT_BIAS = 100;
/** Largest magnitude of the frequency and presence penalties (OpenAI's range). */
export const MAX_FREQUENCY_PENALTY = 2;

/** Most tokens an allowed-token list may name. */
export const MAX_ALLOWED_TOKENS = 65536;
/** Most bad-word sequences, and tokens in one. */
export const MAX_BAD_WORDS = 1024;
export const MAX_BAD_WORD_TOKENS = 64;

export interface LogitsProcessingParams {
  /** only these token ids can be chosen (absent = all) */
  allowedTokenIds?: readonly number[];
  /** > 0; 1 or absent = off (transformers' and vLLM's repetition_penalty) */
  repetitionPenalty?: number;
  /** in [-2, 2]; 0 or absent = off */
  frequencyPenalty?: number;
  /** in [-2, 2]; 0 or absent = off */
  presencePenalty?: number;
  /** token id → amount added to its logit, each in [-100, 100] */
  logitBias?: ReadonlyMap<number, number>;
  /** token sequences never generated (the last token of each is banned after the others) */
  badWords?: ReadonlyArray<readonly number[]>;
}

/** The stop token ids a minimum length holds back (GenerationParams.minNewTokens, stopTokenIds). */
export interface HeldStops {
  /** tokens to generate before a stop id may be chosen */
  minTokens: number;
  stopIds: Iterable<number>;
}

interface ResolvedLogitsProcessing {
  /** sorted, distinct; null = all */
  allowed: Int32Array | null;
  minTokens: number;
  stopIds: Int32Array;
  repetition: number;
  frequency: number;
  presence: number;
  bias: ReadonlyArray<readonly [number, number]>;
  badWords: ReadonlyArray<readonly number[]>;
}

/**
 * Validates the parameters against a vocabulary; null when none of them changes anything (the
 * decoder then skips the row entirely). Throws GenerationParamsError naming the field. `held`
 * (validated by the decoder) masks the stop ids for a minimum length.
 */
export function resolveLogitsProcessing(p: LogitsProcessingParams, vocabSize: number, held: HeldStops = { minTokens: 0, stopIds: [] }): ResolvedLogitsProcessing | null {
  const repetition = p.repetitionPenalty ?? 1;
  if (typeof repetition !== 'number' || !(repetition >= MIN_REPETITION_PENALTY && repetition <= MAX_REPETITION_PENALTY)) {
    throw new GenerationParamsError(`the repetition penalty must be a number in [${MIN_REPETITION_PENALTY}, ${MAX_REPETITION_PENALTY}] (1 = off), got ${String(p.repetitionPenalty)}`, 'repetitionPenalty');
  }
  const ranged = (value: number | undefined, param: 'frequencyPenalty' | 'presencePenalty', name: string) => {
    const v = value ?? 0;
    if (typeof v !== 'number' || !(Math.abs(v) <= MAX_FREQUENCY_PENALTY)) {
      throw new GenerationParamsError(`the ${name} penalty must be a number in [-${MAX_FREQUENCY_PENALTY}, ${MAX_FREQUENCY_PENALTY}] (0 = off), got ${String(value)}`, param);
    }
    return v;
  };
  const frequency = ranged(p.frequencyPenalty, 'frequencyPenalty', 'frequency');
  const presence = ranged(p.presencePenalty, 'presencePenalty', 'presence');
  const bias: Array<readonly [number, number]> = [];
  if (p.logitBias !== undefined) {
    if (!(p.logitBias instanceof Map)) throw new GenerationParamsError('the logit bias must be a Map of token id → bias', 'logitBias');
    for (const [token, amount] of p.logitBias) {
      if (!Number.isSafeInteger(token) || token < 0 || token >= vocabSize) {
        throw new GenerationParamsError(`logit bias token ${String(token)} is not a token id of this model's vocabulary [0, ${vocabSize})`, 'logitBias');
      }
      if (typeof amount !== 'number' || !(Math.abs(amount) <= MAX_LOGIT_BIAS)) {
        throw new GenerationParamsError(`the logit bias of token ${token} must be a number in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}], got ${String(amount)}`, 'logitBias');
      }
      if (amount !== 0) bias.push([token, Math.fround(amount)]);
    }
  }
  let allowed: Int32Array | null = null;
  if (p.allowedTokenIds !== undefined) {
    const list = p.allowedTokenIds;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_ALLOWED_TOKENS) {
      throw new GenerationParamsError(`the allowed token ids must be a non-empty list of at most ${MAX_ALLOWED_TOKENS} token ids`, 'allowedTokenIds');
    }
    for (const id of list) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
        throw new GenerationParamsError(`allowed token ${String(id)} is not a token id of this model's vocabulary [0, ${vocabSize})`, 'allowedTokenIds');
      }
    }
    allowed = Int32Array.from(new Set(list)).sort();
  }
  const badWords = p.badWords ?? [];
  if (!Array.isArray(badWords) || badWords.length > MAX_BAD_WORDS) throw new GenerationParamsError(`bad words must be a list of at most ${MAX_BAD_WORDS} token sequences`, 'badWords');
  for (const seq of badWords) {
    if (!Array.isArray(seq) || seq.length === 0 || seq.length > MAX_BAD_WORD_TOKENS) throw new GenerationParamsError(`each bad word must be a sequence of 1 to ${MAX_BAD_WORD_TOKENS} token ids`, 'badWords');
    for (const id of seq) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) throw new GenerationParamsError(`bad word token ${String(id)} is not a token id of this model's vocabulary [0, ${vocabSize})`, 'badWords');
    }
  }
  const minTokens = held.minTokens;
  // every allowed token held back by the minimum length: every logit would be -∞ and no token
  // could be chosen (greedy would pick one that is not allowed, sampling would have nothing)
  if (allowed !== null && minTokens > 0) {
    const heldIds = new Set(held.stopIds);
    if (allowed.every((id) => heldIds.has(id))) {
      throw new GenerationParamsError(
        `every allowed token (${[...allowed].join(', ')}) is a stop token that the minimum length of ${minTokens} tokens holds back, so no token could be generated; allow another token or drop the minimum length`,
        'allowedTokenIds',
      );
    }
  }
  if (allowed === null && minTokens === 0 && repetition === 1 && frequency === 0 && presence === 0 && bias.length === 0 && badWords.length === 0) return null;
  return { allowed, minTokens, stopIds: Int32Array.from(held.stopIds), repetition: Math.fround(repetition), frequency: Math.fround(frequency), presence: Math.fround(presence), bias, badWords: badWords.map((w) => [...w]) };
}

/**
 * One request's logits processing and the token counts it depends on. `observe` each generated
 * token; `apply` to the row of logits its next token is chosen from.
 */
export class RequestLogitsProcessor {
  /** completion tokens and how often each was generated */
  private readonly counts = new Map<number, number>();
  /** completion tokens generated */
  private generated = 0;
  /** the prompt's distinct tokens (the repetition penalty's other half) */
  private readonly promptTokens: ReadonlySet<number>;
  /** the allowed tokens' logits, kept while the row is masked */
  private readonly kept: Float32Array;
  /** the last tokens generated, as many as the longest bad word's prefix */
  private readonly recent: number[] = [];
  private readonly recentMax: number;

  constructor(
    private readonly p: ResolvedLogitsProcessing,
    prompt: ArrayLike<number>,
  ) {
    this.promptTokens = p.repetition === 1 ? new Set() : new Set(Array.from(prompt));
    this.kept = new Float32Array(p.allowed?.length ?? 0);
    this.recentMax = Math.max(0, ...p.badWords.map((w) => w.length - 1));
  }

  observe(token: number): void {
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    this.generated++;
    if (this.recentMax > 0) {
      this.recent.push(token);
      if (this.recent.length > this.recentMax) this.recent.shift();
    }
  }

  /** Adjusts `row` (one token's logits over the vocabulary) in place. */
  apply(row: Float32Array): void {
    const { allowed, minTokens, stopIds, repetition, frequency, presence, bias } = this.p;
    if (allowed !== null) {
      for (let i = 0; i < allowed.length; i++) this.kept[i] = row[allowed[i]];
      row.fill(-Infinity);
      for (let i = 0; i < allowed.length; i++) row[allowed[i]] = this.kept[i];
    }
    for (const [token, amount] of bias) row[token] += amount;
    if (repetition !== 1) {
      const penalise = (token: number) => {
        const v = row[token];
        row[token] = v < 0 ? v * repetition : v / repetition;
      };
      for (const token of this.promptTokens) penalise(token);
      for (const token of this.counts.keys()) if (!this.promptTokens.has(token)) penalise(token);
    }
    if (frequency !== 0 || presence !== 0) {
      for (const [token, count] of this.counts) {
        // two float32 subtractions, as vLLM's logits -= f·counts; logits -= p·mask
        if (frequency !== 0) row[token] -= Math.fround(frequency * count);
        if (presence !== 0) row[token] -= presence;
      }
    }
    // -∞ stays -∞ under all of the above, so where these come makes no difference
    if (this.generated < minTokens) for (const id of stopIds) row[id] = -Infinity;
    for (const word of this.p.badWords) if (this.endsWith(word, word.length - 1)) row[word[word.length - 1]] = -Infinity;
  }

  /** whether the tokens generated so far end with the first `n` tokens of `word` */
  private endsWith(word: readonly number[], n: number): boolean {
    if (n > this.recent.length) return false;
    const offset = this.recent.length - n;
    for (let i = 0; i < n; i++) if (this.recent[offset + i] !== word[i]) return false;
    return true;
  }
}
