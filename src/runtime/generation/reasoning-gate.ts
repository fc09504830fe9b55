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
 *
 * A model may also call a function while it reasons, in a message header of its own (gpt-oss:
 * `to=functions.NAME … <|message|>{…}`): with `addressedCalls`, the text after the address is held
 * to a call of one of the functions (addressed-call-prefix.ts) and the generation ends when its
 * arguments close. Without an inner constraint the answer is then free (tool_choice "auto"); where
 * the text after the address already breaks the call, it stays free.
 */
import { AddressedCallPrefix, type AddressedCalls } from './addressed-call-prefix.js';
import type { GrammarState, TokenConstraint } from './grammar-constraint.js';
import type { Sampler } from './sampling.js';
import type { TextDecoderLike } from './stop.js';
import { mayOpenWith, TagWatch } from './tag-watch.js';

export type ReasoningStart = 'reasoning' | 'answer' | 'maybe';

/** The reasoning block's tags and where the completion starts (GenerationParams.reasoning). */
export interface ReasoningFormat {
  start: string;
  end: string;
  /** calls the model may address while it reasons (gpt-oss's messages to functions), held from their address on */
  addressedCalls?: AddressedCalls;
  state: ReasoningStart;
}

export class ReasoningGate implements TokenConstraint {
  /** 'call': a call addressed while reasoning is being held (`call`) */
  private state: ReasoningStart | 'call';
  /** the completion's tokens while it may still open the block (decoded together to find the start tag) */
  private readonly opening: number[] = [];
  /** where the block ends */
  private readonly end: TagWatch;
  /** where a call's address is written (addressedCalls) */
  private readonly address: TagWatch | null;
  /** the call being held */
  private call: TokenConstraint | null = null;
  /** the token `choose` returned came from the inner constraint (commit goes there) */
  private innerChose = false;

  constructor(
    private readonly decoder: TextDecoderLike,
    private readonly format: ReasoningFormat,
    /** what holds the answer; null: the answer is free (only addressed calls are held) */
    private readonly inner: TokenConstraint | null,
    /** a constraint holding the text to a state (grammar-constraint.ts), for addressed calls */
    private readonly hold: ((state: GrammarState) => TokenConstraint) | null = null,
  ) {
    this.state = format.state;
    this.end = new TagWatch(decoder, format.end, false);
    this.address = format.addressedCalls && hold ? new TagWatch(decoder, format.addressedCalls.trigger, false) : null;
  }

  get complete(): boolean {
    if (this.state === 'call') return this.call!.complete;
    return this.state === 'answer' && (this.inner?.complete ?? false);
  }

  choose(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number): number {
    this.innerChose = false;
    if (this.state === 'call') return this.call!.choose(row, sampler, pickGreedy);
    if (this.state === 'reasoning') return sampler.next(row, pickGreedy);
    if (this.state === 'maybe') {
      // the model's own draw, on a copy (the inner constraint may need the row as it is)
      const token = sampler.next(Float32Array.from(row), pickGreedy);
      if (mayOpenWith(this.decode([...this.opening, token]), this.format.start)) return token;
      this.state = 'answer';
    }
    if (this.inner === null) return sampler.next(row, pickGreedy);
    this.innerChose = true;
    return this.inner.choose(row, sampler, pickGreedy);
  }

  commit(token: number): void {
    if (this.state === 'call') {
      this.call!.commit(token);
      return;
    }
    if (this.innerChose || this.state === 'answer') {
      this.inner?.commit(token);
      return;
    }
    if (this.state === 'reasoning') {
      // both watches read the token; where both tags are in it, the one written first counts (its text after is longer)
      const ended = this.end.push(token);
      const addressed = this.address?.push(token) ?? null;
      if (addressed !== null && (ended === null || addressed.length > ended.length) && this.addressed(addressed)) return;
      if (ended !== null) this.answer(ended);
      return;
    }
    this.opening.push(token);
    const opened = this.decode(this.opening).trimStart();
    if (!opened.startsWith(this.format.start)) return;
    this.state = 'reasoning';
    // the block opened: what follows the tag may already close it, or address a call (the earlier of them)
    const rest = opened.slice(this.format.start.length);
    const endAt = rest.indexOf(this.format.end);
    const addressAt = this.address ? rest.indexOf(this.format.addressedCalls!.trigger) : -1;
    if (addressAt >= 0 && (endAt < 0 || addressAt < endAt) && this.addressed(rest.slice(addressAt + this.format.addressedCalls!.trigger.length))) return;
    if (endAt >= 0) this.answer(rest.slice(endAt + this.format.end.length));
    else {
      this.end.seed(rest);
      this.address?.seed(rest);
    }
  }

  /** the block closed: `after` (the rest of the closing token's text) starts the answer */
  private answer(after: string): void {
    this.state = 'answer';
    if (after.length > 0) this.inner?.readText?.(after);
  }

  /** a call's address was written: the call is held from `after` (the rest of its token's text) on, unless that text already breaks it (false) */
  private addressed(after: string): boolean {
    const state = new AddressedCallPrefix(this.format.addressedCalls!);
    if (!state.push(after)) {
      this.address!.reset();
      return false;
    }
    this.call = this.hold!(state);
    this.state = 'call';
    return true;
  }

  private decode(ids: number[]): string {
    try {
      return this.decoder.decode(ids, { skipSpecialTokens: false });
    } catch {
      return '';
    }
  }
}
