/**
 * A response format that waits for the model's reasoning to end. Reasoning models (DeepSeek-R1,
 * Qwen3 and its thinking variants, QwQ) write `<think>…</think>` before their answer; a JSON
 * schema, a regex or a tool call's format holds the answer, not the thinking (as vLLM does with a
 * reasoning parser). The gate lets the model write freely while it reasons, and hands each token
 * to the inner constraint (grammar-constraint.ts, triggered-constraint.ts) from the first token
 * after the end tag.
 *
 * Where the completion starts:
 * - 'reasoning': the prompt opened the block (R1's and Qwen3-Thinking's templates end the prompt
 *   in `<think>\n`), so it ends at the end tag;
 * - 'answer': the prompt closed it (Qwen3 with enable_thinking false ends in an empty block), so
 *   the constraint holds from the first token;
 * - 'maybe': the model may open the block itself (Qwen3's hybrid models): while the text can still
 *   be (whitespace and) the start tag, the model's own draw is kept; the first draw that cannot
 *   begin it makes the completion an answer, and that step is chosen by the inner constraint.
 *
 * Text after the end tag in the end tag's own token (a vocabulary that splits the tag, as GPT-2's
 * does, may end it in `>\n\n{`) is the answer's start, and is read by the inner constraint first.
 * Where that text already breaks the format, the constraint holds from the next token on (the
 * model drew those characters freely while it reasoned).
 */
import type { TokenConstraint } from './grammar-constraint.js';
import type { Sampler } from './sampling.js';
import type { TextDecoderLike } from './stop.js';
import { TagWatch } from './tag-watch.js';

export type ReasoningStart = 'reasoning' | 'answer' | 'maybe';

/** The reasoning block's tags and where the completion starts (GenerationParams.reasoning). */
export interface ReasoningFormat {
  start: string;
  end: string;
  /**
   * another tag that ends the reasoning as `end` does: gpt-oss's function-call header
   * (`…json<|message|>`), whose body a named tool choice holds as it holds the final channel's
   */
  alsoEnd?: string;
  state: ReasoningStart;
}

export class ReasoningGate implements TokenConstraint {
  private state: ReasoningStart;
  /** the completion's tokens while it may still open the block (decoded together to find the start tag) */
  private readonly opening: number[] = [];
  /** where the block ends (either tag) */
  private readonly ends: TagWatch[];
  /** the token `choose` returned came from the inner constraint (commit goes there) */
  private innerChose = false;

  constructor(
    private readonly decoder: TextDecoderLike,
    private readonly format: ReasoningFormat,
    private readonly inner: TokenConstraint,
  ) {
    this.state = format.state;
    this.ends = [format.end, ...(format.alsoEnd ? [format.alsoEnd] : [])].map((tag) => new TagWatch(decoder, tag, false));
  }

  get complete(): boolean {
    return this.state === 'answer' && this.inner.complete;
  }

  choose(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number): number {
    this.innerChose = false;
    if (this.state === 'reasoning') return sampler.next(row, pickGreedy);
    if (this.state === 'maybe') {
      // the model's own draw, on a copy (the inner constraint may need the row as it is)
      const token = sampler.next(Float32Array.from(row), pickGreedy);
      if (this.opensBlock([...this.opening, token])) return token;
      this.state = 'answer';
    }
    this.innerChose = true;
    return this.inner.choose(row, sampler, pickGreedy);
  }

  commit(token: number): void {
    if (this.innerChose || this.state === 'answer') {
      this.inner.commit(token);
      return;
    }
    if (this.state === 'reasoning') {
      // every watch reads the token; the first tag found ends the block
      let after: string | null = null;
      for (const watch of this.ends) after = watch.push(token) ?? after;
      if (after !== null) this.answer(after);
      return;
    }
    this.opening.push(token);
    const opened = this.decode(this.opening).trimStart();
    if (!opened.startsWith(this.format.start)) return;
    // the block opened: what follows the tag may already close it (the earliest end tag)
    let closed: { at: number; tag: string } | null = null;
    for (const { tag } of this.ends) {
      const at = opened.indexOf(tag, this.format.start.length);
      if (at >= 0 && (closed === null || at < closed.at)) closed = { at, tag };
    }
    if (closed === null) this.state = 'reasoning';
    else this.answer(opened.slice(closed.at + closed.tag.length));
  }

  /** the block closed: `after` (the rest of the closing token's text) starts the answer */
  private answer(after: string): void {
    this.state = 'answer';
    if (after.length > 0) this.inner.readText?.(after);
  }

  /** whether these tokens' text can still be whitespace and the start tag (or begins with it) */
  private opensBlock(ids: number[]): boolean {
    const text = this.decode(ids).trimStart();
    return text.length === 0 ? true : text.length >= this.format.start.length ? text.startsWith(this.format.start) : this.format.start.startsWith(text);
  }

  private decode(ids: number[]): string {
    try {
      return this.decoder.decode(ids, { skipSpecialTokens: false });
    } catch {
      return '';
    }
  }
}
