/**
 * A formatted answer, or tool calls instead: tool_choice "auto" with a response format, as agent
 * frameworks send it (OpenAI's Agents SDK sends an agent's output schema as response_format
 * beside its tools on every turn). The model decides by how it begins: a completion whose text
 * opens the call block (`<tool_call>`, `[TOOL_CALLS]`, … after any whitespace) is calls, held to
 * the tools where the format allows (the `calls` constraint, triggered by that opening); any
 * other is the answer, held to the response format from its first token.
 *
 * While the text can still be whitespace and the opening, the model's own draw is kept; the first
 * draw that cannot begin it makes the completion the answer, and that step is chosen by the
 * answer's constraint (as ReasoningGate decides whether a completion opens its reasoning). Text a
 * wrapper read before the first token (what follows `</think>` in its own token) counts as the
 * beginning too.
 */
import type { TokenConstraint } from './grammar-constraint.js';
import type { Sampler } from './sampling.js';
import type { TextDecoderLike } from './stop.js';
import { mayOpenWith } from './tag-watch.js';

export class CallsOrAnswer implements TokenConstraint {
  private state: 'undecided' | 'calls' | 'answer' = 'undecided';
  /** the completion's tokens while undecided, and the text read before them */
  private readonly opening: number[] = [];
  private before = '';
  /** the token `choose` returned came from the answer's constraint (commit goes there) */
  private answerChose = false;

  constructor(
    private readonly decoder: TextDecoderLike,
    /** the text that opens a block of calls */
    private readonly start: string,
    /** what holds the calls (triggered at `start`); null: they are free */
    private readonly calls: TokenConstraint | null,
    /** what holds the answer */
    private readonly answer: TokenConstraint,
  ) {}

  get complete(): boolean {
    if (this.state === 'calls') return this.calls?.complete ?? false;
    return this.state === 'answer' && this.answer.complete;
  }

  choose(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number): number {
    this.answerChose = false;
    if (this.state === 'calls') return this.calls ? this.calls.choose(row, sampler, pickGreedy) : sampler.next(row, pickGreedy);
    if (this.state === 'undecided') {
      // the model's own draw, on a copy (the answer's constraint may need the row as it is)
      const token = sampler.next(Float32Array.from(row), pickGreedy);
      if (mayOpenWith(this.textOf([...this.opening, token]), this.start)) return token;
      this.toAnswer();
    }
    this.answerChose = true;
    return this.answer.choose(row, sampler, pickGreedy);
  }

  commit(token: number): void {
    if (this.answerChose || this.state === 'answer') {
      this.answer.commit(token);
      return;
    }
    if (this.state === 'calls') {
      this.calls?.commit(token);
      return;
    }
    this.opening.push(token);
    this.decide(this.textOf(this.opening));
  }

  readText(text: string): boolean {
    if (this.state === 'answer') return this.answer.readText?.(text) ?? false;
    if (this.state === 'calls' || this.opening.length > 0) return false;
    this.before += text;
    if (!mayOpenWith(this.before, this.start)) this.toAnswer();
    else this.decide(this.before);
    return true;
  }

  /** the calls' block opened in `text`: from here on the calls' constraint holds, having read it (its trigger among it) */
  private decide(text: string): void {
    if (!text.trimStart().startsWith(this.start)) return;
    this.state = 'calls';
    this.calls?.readText?.(text);
  }

  /** the answer begins: what was written so far is its first text (whitespace; where the format refuses it, the format holds from the next token) */
  private toAnswer(): void {
    this.state = 'answer';
    const text = this.textOf(this.opening);
    if (text.length > 0) this.answer.readText?.(text);
  }

  private textOf(ids: number[]): string {
    try {
      return this.before + this.decoder.decode(ids, { skipSpecialTokens: false });
    } catch {
      return this.before;
    }
  }
}
