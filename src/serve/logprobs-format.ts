/**
 * Token log-probabilities in the two shapes of the OpenAI API: the legacy completions form
 * (`tokens`, `token_logprobs`, `top_logprobs` as {token text: logprob}, `text_offset`) and the chat
 * form (`content`: token, logprob, UTF-8 bytes, top_logprobs). A token's text is its own decoding
 * with special tokens shown; a token that is part of a multi-byte character decodes to U+FFFD, as
 * in vLLM. A log-probability that is not finite (a token the model rules out) is sent as -9999, as
 * vLLM does, since JSON has no -Infinity.
 */
import type { TokenLogprob } from '../runtime/generation/logprobs.js';

export type TokenText = (id: number) => string;

const finite = (x: number) => (Number.isFinite(x) ? x : -9999);
const bytesOf = (s: string) => Array.from(Buffer.from(s, 'utf8'));

export interface CompletionLogprobs {
  tokens: string[];
  /** null for an echoed prompt's first token, which nothing predicts */
  token_logprobs: Array<number | null>;
  /** the top alternatives and the chosen token, by their text (null where token_logprobs is) */
  top_logprobs: Array<Record<string, number> | null>;
  /** where each token's text starts in the completion text */
  text_offset: number[];
}

/** The legacy form, built chunk by chunk: text offsets run on across the chunks of a stream. */
export class CompletionLogprobsBuilder {
  private offset = 0;

  constructor(private readonly text: TokenText) {}

  take(entries: ReadonlyArray<{ token: number; logprob: TokenLogprob | null }>): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const { token, logprob: e } of entries) {
      const t = this.text(token);
      out.tokens.push(t);
      out.text_offset.push(this.offset);
      this.offset += t.length;
      if (e === null) {
        out.token_logprobs.push(null);
        out.top_logprobs.push(null);
        continue;
      }
      out.token_logprobs.push(finite(e.logprob));
      // the API always includes the chosen token beside the alternatives
      const top: Record<string, number> = {};
      for (const a of e.top) top[this.text(a.token)] = finite(a.logprob);
      top[t] = finite(e.logprob);
      out.top_logprobs.push(top);
    }
    return out;
  }
}

export interface ChatLogprobs {
  content: Array<{ token: string; logprob: number; bytes: number[]; top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }> }>;
  refusal: null;
}

export function chatLogprobs(entries: readonly TokenLogprob[], text: TokenText): ChatLogprobs {
  return {
    content: entries.map((e) => {
      const t = text(e.token);
      return {
        token: t,
        logprob: finite(e.logprob),
        bytes: bytesOf(t),
        top_logprobs: e.top.map((a) => {
          const at = text(a.token);
          return { token: at, logprob: finite(a.logprob), bytes: bytesOf(at) };
        }),
      };
    }),
    refusal: null,
  };
}
