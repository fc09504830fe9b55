/**
 * A grammar constraint that waits for a trigger: the model writes freely until the generated text
 * holds `trigger`, then the text that follows is held to the grammar (a JSON schema, or a regex:
 * grammar-constraint.ts), and once that value closes the model is free again, until the next
 * trigger. This is how a tool call that the model decides to make ("auto") is still well-formed:
 * its call block opens freely (`<tool_call>`), and the call inside it can only be a call of one of
 * the tools with arguments valid under its parameters (Hermes's JSON, Qwen3-Coder's tags; the same
 * idea as llama.cpp's lazy grammars).
 *
 * What the trigger's own token carries after the trigger (GPT-2-style vocabularies split tags, and
 * a piece may run on past it) is read into the grammar first; where that already breaks it, the
 * block stays free (the reader of the calls then leaves it as text).
 */
import type { GrammarState, TokenConstraint } from './grammar-constraint.js';
import type { Sampler } from './sampling.js';
import type { TextDecoderLike } from './stop.js';
import { TagWatch } from './tag-watch.js';

export class TriggeredConstraint implements TokenConstraint {
  private readonly watch: TagWatch;
  private held: TokenConstraint | null = null;

  constructor(
    decoder: TextDecoderLike,
    trigger: string,
    private readonly start: GrammarState,
    /** a constraint holding the text to `state` from here (grammar-constraint.ts's GrammarConstraint) */
    private readonly hold: (state: GrammarState) => TokenConstraint,
    skipSpecialTokens = true,
    /** end the generation when the first held value closes (one tool call, no more) */
    private readonly once = false,
  ) {
    this.watch = new TagWatch(decoder, trigger, skipSpecialTokens);
  }

  /** a value held and closed, where the first ends the generation */
  private closed = false;

  /** a closed value hands the text back to the model, unless `once` */
  get complete(): boolean {
    return this.closed;
  }

  choose(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number): number {
    return this.held ? this.held.choose(row, sampler, pickGreedy) : sampler.next(row, pickGreedy);
  }

  commit(token: number): void {
    if (this.held) {
      this.held.commit(token);
      if (this.held.complete) {
        this.held = null;
        this.watch.reset();
        this.closed = this.once;
      }
      return;
    }
    this.trigger(this.watch.push(token));
  }

  /** text before the next token: held where it holds the trigger, else watched for one it begins */
  readText(text: string): boolean {
    if (this.held) return this.held.readText?.(text) ?? false;
    this.trigger(this.watch.seed(text));
    return true;
  }

  /** the grammar from the text after a trigger (none: not triggered) */
  private trigger(after: string | null): void {
    if (after === null) return;
    const state = this.start.clone();
    if (state.push(after)) this.held = this.hold(state);
  }
}
