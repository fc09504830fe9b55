/**
 * Watching generated tokens for a tag (`<tool_call>`, `</think>`): the last few tokens are decoded
 * together, enough to hold the tag whatever the tokens, so a tag split across tokens is found in
 * the token that completes it. What TriggeredConstraint waits for before it holds a value, and
 * where ReasoningGate's reasoning ends.
 */
import type { TextDecoderLike } from './stop.js';

export class TagWatch {
  /** the last tokens since the tag was last found, as many as can hold it */
  private ids: number[] = [];
  private readonly window: number;

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
    if (this.ids.length > this.window) this.ids.shift();
    let text: string;
    try {
      text = this.decoder.decode(this.ids, { skipSpecialTokens: this.skipSpecialTokens });
    } catch {
      return null; // an id the tokenizer cannot decode writes no tag
    }
    const at = text.lastIndexOf(this.tag);
    if (at < 0) return null;
    this.ids = [];
    return text.slice(at + this.tag.length);
  }

  /** forgets the tokens read (the text from here on is watched afresh) */
  reset(): void {
    this.ids = [];
  }
}
