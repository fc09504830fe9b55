/**
 * Watching generated tokens for a tag (`<tool_call>`, `</think>`): the last few tokens are decoded
 * together, enough to hold the tag whatever the tokens, so a tag split across tokens is found in
 * the token that completes it. What TriggeredConstraint waits for before it holds a value, and
 * where ReasoningGate's reasoning ends.
 */
import type { TextDecoderLike } from './stop.js';

/**
 * Whether `text` can still be whitespace and then `tag`, or already begins with it: while it can,
 * a completion has not yet told whether it opens the tag's block (ReasoningGate's reasoning,
 * CallsOrAnswer's calls).
 */
export function mayOpenWith(text: string, tag: string): boolean {
  const lead = text.trimStart();
  return lead.length >= tag.length ? lead.startsWith(tag) : tag.startsWith(lead);
}

export class TagWatch {
  /** the last tokens since the tag was last found, as many as can hold it */
  private ids: number[] = [];
  private readonly window: number;
  /** text read before the tokens (seed), kept while every token since it is still in the window */
  private prefix = '';

  constructor(
    private readonly decoder: TextDecoderLike,
    readonly tag: string,
    private readonly skipSpecialTokens: boolean,
  ) {
    this.window = tag.length + 8;
  }

  /**
   * Reads a token: where its text completes the tag, the text after the tag (in the same decode;
   * the tokens before are forgotten), else null. The tag was not in the window one token before,
   * or it would have been found then.
   */
  push(token: number): string | null {
    this.ids.push(token);
    if (this.ids.length > this.window) {
      this.ids.shift();
      this.prefix = '';
    }
    let text: string;
    try {
      text = this.prefix + this.decoder.decode(this.ids, { skipSpecialTokens: this.skipSpecialTokens });
    } catch {
      return null; // an id the tokenizer cannot decode writes no tag
    }
    const at = text.lastIndexOf(this.tag);
    if (at < 0) return null;
    this.ids = [];
    this.prefix = '';
    return text.slice(at + this.tag.length);
  }

  /**
   * Reads text that came before the next token (not from a token this watch read): where it holds
   * the tag, the text after it, else null, and its end is kept to complete a tag the tokens begin.
   */
  seed(text: string): string | null {
    const at = text.lastIndexOf(this.tag);
    this.ids = [];
    if (at >= 0) {
      this.prefix = '';
      return text.slice(at + this.tag.length);
    }
    this.prefix = this.tag.length > 1 ? text.slice(-(this.tag.length - 1)) : '';
    return null;
  }

  /** forgets the tokens read (the text from here on is watched afresh) */
  reset(): void {
    this.ids = [];
    this.prefix = '';
  }
}
