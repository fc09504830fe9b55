/**
 * Which live sequence a new prompt copies its cached beginning from (BatchDecoder, sharePrefixes):
 * the n choices of a request, the same prompt sent twice at once, or prompts with a common
 * beginning (a system prompt, few-shot examples, a multiple-choice question's context before each
 * ending). The copy itself is KvCache.copyPrefix; the decoder waits until the leader holds the
 * positions, and keeps a finished leader's slot until its copies have them.
 */

/**
 * Fewest positions a prompt copies from another that begins the same way (a whole prompt but its
 * last token is always copied): below it, waiting a step for the other's prefill costs about what
 * computing them does.
 */
export const MIN_SHARED_POSITIONS = 16;

/** What the choice reads of a live sequence. */
export interface PrefixCandidate {
  prompt: Int32Array;
  aborted: boolean;
  /** a sequence that is itself still waiting to copy from another is not a leader */
  leader: unknown;
  /** the prompt's log-probabilities (null: not scored) and their alternatives */
  promptLogprobs: unknown[] | null;
  promptTop: number;
  /** vLLM's cache_salt: sequences share a beginning only with those of the same salt (null: unsalted) */
  cacheSalt: string | null;
}

/**
 * The candidate whose prompt shares the longest beginning with `ids` and the positions to copy:
 * the shared tokens but the last, so that the copy's next token (and its log-probability) is its
 * own. The positions must cover all of `ids` but its last token, or at least MIN_SHARED_POSITIONS.
 * A prompt that is scored (`promptTop` not null) copies only from one scored with the same number
 * of alternatives, whose log-probabilities it takes too, and a salted one (vLLM's cache_salt, which
 * keeps tenants from learning each other's prompts by timing) only from one with the same salt.
 * null: none qualifies.
 */
export function longestSharedBeginning<T extends PrefixCandidate>(candidates: Iterable<T>, ids: Int32Array, promptTop: number | null, cacheSalt: string | null = null): { leader: T; positions: number } | null {
  if (ids.length < 2) return null;
  let best: { leader: T; positions: number } | null = null;
  for (const s of candidates) {
    if (s.aborted || s.leader !== null || s.cacheSalt !== cacheSalt) continue;
    if (promptTop !== null && (s.promptLogprobs === null || s.promptTop !== promptTop)) continue;
    const limit = Math.min(s.prompt.length, ids.length);
    let common = 0;
    while (common < limit && s.prompt[common] === ids[common]) common++;
    const positions = common - 1;
    if (positions < 1 || (positions < MIN_SHARED_POSITIONS && positions < ids.length - 1)) continue;
    if (best === null || positions > best.positions) best = { leader: s, positions };
  }
  return best;
}
