/**
 * gpt-oss's answers in OpenAI's harmony format, read apart as vLLM's `openai_gptoss` reasoning
 * parser reads them: a chat message's `reasoning_content` holds the analysis channel, `content` the
 * final channel, and, under tool_choice "auto", a commentary message to `functions.NAME` (a tool
 * offered; one not offered is content, and a second call where parallel_tool_calls is false is
 * dropped) is a call of NAME with the message as its arguments. Under "required" or a named
 * function the server holds the final channel's body to the call (ReasoningGate), and the inner
 * reader reads it.
 *
 * What the model writes after a prompt that ends in `<|start|>assistant` (its chat template's
 * generation prompt) is a run of messages, each a header, `<|message|>`, a body and an end:
 *
 *   <|channel|>analysis<|message|>…reasoning…<|end|>
 *   <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>
 *   <|start|>assistant<|channel|>final<|message|>…answer…<|return|>
 *
 * The header names the channel after `<|channel|>` and may name a recipient (`to=…`, before or
 * after the channel) and a content type (`<|constrain|>json`). A body ends at `<|end|>`, or at
 * `<|return|>` or `<|call|>`, which end the generation (they are the model's stop tokens, so they
 * seldom reach the text). The markers are special tokens: the server keeps them in the text it
 * reads here (skip_special_tokens false by default with this parser) and gives none of them out.
 *
 * Bodies go out as they are written, each piece routed by its channel:
 * - analysis, and any message to a built-in tool (whose calls are part of the reasoning): reasoning;
 * - final, and text the model writes outside any message (no header where one belongs: it ignored
 *   the format): the answer, content, or the inner reader's where the server holds the answer to a
 *   call (tool_choice "required" or a named function);
 * - commentary without a recipient (a preamble to the user), an unknown channel: content;
 * - commentary to `functions.NAME`: a call where the request allows NAME (any tool under "auto" and
 *   "required", the named one under a named choice), content otherwise. gpt-oss calls this way
 *   under any choice, and `<|call|>` then ends the generation before any final channel the server
 *   would hold. The server holds such a call from its address on (ReasoningFormat.addressedCalls,
 *   reasoning.ts): a function the choice allows, its body valid under that function's parameters,
 *   so a call of another function is not written unless the calls are left free (under "auto",
 *   parameters the constraint cannot follow); such a call is content. Where one call is allowed and the model made it, a held final body is
 *   dropped.
 * A header cut short at the end (max_tokens), or one after a `<|start|>` that never
 * reaches `<|message|>`, is dropped.
 */
import { ReasoningTextReader } from './reasoning.js';
import { callId, partialTagAtEnd, type CallReader, type ChoiceDelta } from './tools/call-readers.js';

const START = '<|start|>';
const MESSAGE = '<|message|>';
const CHANNEL = '<|channel|>';
/** what ends a message's body */
const ENDS = ['<|end|>', '<|return|>', '<|call|>'];
/** every marker a header may hold, for telling a header from plain text */
const MARKERS = [START, MESSAGE, CHANNEL, '<|constrain|>', ...ENDS];

/**
 * Where a message's body goes: the reasoning; content; the answer (the final channel, or text
 * outside the format), which is content too unless the server holds it to a call (the inner
 * reader's); a call's arguments; nowhere.
 */
type Route = { kind: 'reasoning' } | { kind: 'content' } | { kind: 'answer' } | { kind: 'call'; index: number } | { kind: 'dropped' };

/** Calls read from messages to `functions.NAME` (tool_choice "auto", "required" or a named function): the functions allowed, and whether more than one call may be made. */
export interface HarmonyCalls {
  names: ReadonlySet<string>;
  parallel: boolean;
}

export class HarmonyReader extends ReasoningTextReader {
  /** calls read from messages to functions */
  private ownCalls = 0;
  /** 'header': reading a header up to `<|message|>`; 'body': a message's body */
  private state: 'header' | 'body' = 'header';
  private route: Route = { kind: 'answer' };
  /** the header being read followed a `<|start|>` the model wrote: a header, never plain text */
  private afterStart = false;

  constructor(
    /** false: the reasoning is read but given out as nothing (vLLM's include_reasoning) */
    private readonly include = true,
    /** where the answer goes when the request holds it to a call (tool_choice "required" or a named function): its reader */
    inner: CallReader | null = null,
    /** the functions whose messages (to `functions.NAME`) are calls; null: none are */
    private readonly recipientCalls: HarmonyCalls | null = null,
  ) {
    super(inner);
  }

  get calls(): number {
    return this.ownCalls + (this.inner?.calls ?? 0);
  }

  /** where the inner reader's call indices start (its first call comes after this many of the model's own); null: none yet */
  private innerBase: number | null = null;

  /** inside a message whose body is reasoning */
  get inReasoning(): boolean {
    return this.state === 'body' && this.route.kind === 'reasoning';
  }

  protected drain(final: boolean): ChoiceDelta[] {
    const out: ChoiceDelta[] = [];
    for (;;) {
      if (this.state === 'header') {
        const at = this.buffer.indexOf(MESSAGE);
        if (!this.afterStart) {
          const header = this.startsHeader(final);
          if (header === null) return out; // whitespace, or the beginning of a marker: not told apart yet
          if (!header) {
            // plain text where a header belongs: the model left the format; it is the answer
            if (this.buffer.trim() === '') this.buffer = '';
            this.route = { kind: 'answer' };
            this.state = 'body';
            continue;
          }
        }
        if (at < 0) {
          // a header still being written, or one cut short at the end (dropped)
          if (final) this.buffer = '';
          return out;
        }
        this.route = this.routeOf(this.buffer.slice(0, at), out);
        this.buffer = this.buffer.slice(at + MESSAGE.length);
        this.state = 'body';
        continue;
      }
      // body: up to the first end marker, or a `<|start|>` the model wrote without one
      let cut = -1;
      let marker = '';
      for (const m of [...ENDS, START]) {
        const at = this.buffer.indexOf(m);
        if (at >= 0 && (cut < 0 || at < cut)) [cut, marker] = [at, m];
      }
      if (cut < 0) {
        const keep = final ? 0 : Math.max(...MARKERS.map((m) => partialTagAtEnd(this.buffer, m)));
        this.emit(this.buffer.slice(0, this.buffer.length - keep), out);
        this.buffer = this.buffer.slice(this.buffer.length - keep);
        return out;
      }
      this.emit(this.buffer.slice(0, cut), out);
      // the next header starts after `<|start|>` (its role then follows) or right after the end marker
      this.buffer = this.buffer.slice(cut + (marker === START ? 0 : marker.length));
      this.afterStart = this.buffer.startsWith(START);
      if (this.afterStart) this.buffer = this.buffer.slice(START.length);
      this.state = 'header';
    }
  }

  /**
   * Whether what stands where a header belongs begins one (a marker, or a recipient `to=…` before
   * the channel, as right after the prompt's `<|start|>assistant`), decided on its first
   * characters alone so that any cutting of the text decides alike; null: not told apart yet.
   */
  private startsHeader(final: boolean): boolean | null {
    const lead = this.buffer.trimStart();
    if (lead === '') return final ? false : null;
    for (const opening of [...MARKERS, 'to=']) {
      if (lead.startsWith(opening)) return true;
      if (opening.startsWith(lead)) return final ? false : null;
    }
    return false;
  }

  /** Where a message with this header goes; a call opens here (with no arguments yet). */
  private routeOf(header: string, out: ChoiceDelta[]): Route {
    const channel = /<\|channel\|>\s*([^\s<]+)/.exec(header)?.[1] ?? null;
    const recipient = /(?:^|\s|>)to=([^\s<]+)/.exec(header)?.[1] ?? null;
    if (recipient?.startsWith('functions.') && this.recipientCalls) {
      const name = recipient.slice('functions.'.length);
      // a function not offered is no call (its text is content); a second one where one was allowed is dropped, as TaggedCallsReader drops it
      if (!this.recipientCalls.names.has(name)) return { kind: 'content' };
      if (!this.recipientCalls.parallel && this.calls > 0) return { kind: 'dropped' };
      // after any the inner reader gave (indices are the message's, one sequence)
      const index = this.ownCalls + (this.inner?.calls ?? 0);
      this.ownCalls++;
      out.push({ kind: 'call', index, id: callId(), name, arguments: '' });
      return { kind: 'call', index };
    }
    if (channel === 'analysis' || (recipient !== null && !recipient.startsWith('functions.'))) return { kind: 'reasoning' };
    return channel === 'final' && recipient === null ? { kind: 'answer' } : { kind: 'content' };
  }

  private emit(body: string, out: ChoiceDelta[]): void {
    // a marker that has no place in a body (a header's, written out of turn) is not text
    let text = body;
    for (const m of MARKERS) text = text.split(m).join('');
    if (!text) return;
    if (this.route.kind === 'reasoning') {
      if (this.include) out.push({ kind: 'reasoning', text });
    } else if (this.route.kind === 'call') out.push({ kind: 'arguments', index: this.route.index, text });
    else if (this.route.kind === 'answer' && this.inner) out.push(...this.innerDeltas(text));
    else if (this.route.kind === 'content' || this.route.kind === 'answer') out.push({ kind: 'content', text });
  }

  override end(): ChoiceDelta[] {
    const out = this.drain(true);
    if (this.inner && !this.innerDropped()) out.push(...this.numbered(this.inner.end()));
    return out;
  }

  /** Where one call is allowed and the model made it: what the server held for the final channel is not another. */
  private innerDropped(): boolean {
    return this.recipientCalls !== null && !this.recipientCalls.parallel && this.ownCalls > 0;
  }

  /** The inner reader's deltas for `text` (none where innerDropped). */
  private innerDeltas(text: string): ChoiceDelta[] {
    return this.innerDropped() ? [] : this.numbered(this.inner!.push(text));
  }

  /** The inner reader's deltas with its calls numbered after the model's own. */
  private numbered(deltas: ChoiceDelta[]): ChoiceDelta[] {
    if (!deltas.some((d) => d.kind === 'call' || d.kind === 'arguments')) return deltas;
    this.innerBase ??= this.ownCalls;
    const base = this.innerBase;
    return base === 0 ? deltas : deltas.map((d) => (d.kind === 'call' || d.kind === 'arguments' ? { ...d, index: d.index + base } : d));
  }
}
