/**
 * One choice's generated text turned into what a chat response carries: content, and tool calls.
 * A reader takes the text piece by piece as the decoder gives it (each token's text) and answers
 * the deltas that can go out now, so a streamed response and a whole one are built from the same
 * deltas and cannot disagree.
 */
import { randomBytes } from 'node:crypto';
import type { FunctionTool } from './call-schema.js';
import type { CallStream, ToolCallFormat } from './formats/index.js';
import { StreamedCalls } from './streamed-calls.js';

export type ChoiceDelta =
  | { kind: 'content'; text: string }
  /** the model's reasoning, before its answer (reasoning.ts) */
  | { kind: 'reasoning'; text: string }
  /** a call opens: its id, name and its arguments so far (the whole of them where the call was read whole) */
  | { kind: 'call'; index: number; id: string; name: string; arguments: string }
  /** more of the arguments of the call at `index` */
  | { kind: 'arguments'; index: number; text: string };

export interface CallReader {
  push(text: string): ChoiceDelta[];
  /** what is left once the generation has ended */
  end(): ChoiceDelta[];
  /** calls given out so far */
  readonly calls: number;
}

/** An id for a call, in OpenAI's form ("call_" and 24 hex digits). */
export const callId = () => `call_${randomBytes(12).toString('hex')}`;

/** A named function (`tool_choice: {"type": "function", …}`): the text is the call's arguments, streamed as they come. */
export class NamedCallReader implements CallReader {
  calls = 0;
  private readonly id = callId();
  constructor(private readonly name: string) {}
  push(text: string): ChoiceDelta[] {
    if (this.calls === 0) {
      this.calls = 1;
      return [{ kind: 'call', index: 0, id: this.id, name: this.name, arguments: text }];
    }
    return text ? [{ kind: 'arguments', index: 0, text }] : [];
  }
  end(): ChoiceDelta[] {
    return this.calls === 0 ? this.push('') : [];
  }
}

/**
 * `tool_choice: "required"`: the text is one call `{"name", "arguments"}`, or an array of them
 * (callsSchema), held there by the constraint. Each call opens as soon as its name is written and
 * its arguments stream as they come (streamed-calls.ts); an object cut short before its name (at
 * max_tokens) is content at the end, so nothing generated is lost.
 */
export class JsonCallsReader implements CallReader {
  calls = 0;
  private readonly reader: StreamedCalls;

  constructor(parallel: boolean, names: ReadonlySet<string>) {
    this.reader = new StreamedCalls(parallel, names, () => ({ index: this.calls++, id: callId() }));
  }

  push(piece: string): ChoiceDelta[] {
    return this.reader.push(piece).deltas;
  }

  end(): ChoiceDelta[] {
    return this.reader.end();
  }
}

export interface TaggedCallsOptions {
  /**
   * the server holds the blocks the model opens to the tools' calls (tool-choice.ts's heldCalls):
   * a format that can read them as they are written (its streamer) then streams them
   */
  held?: boolean;
  /** false: one call at most (parallel_tool_calls); calls after the first are dropped */
  parallel?: boolean;
}

/**
 * `tool_choice: "auto"`: the model writes an answer, calls in its family's format (formats/), or
 * both. Text outside the call blocks is content; a block that does not parse stays content as it
 * was written. Text that may be the start of a block is held until it is told apart, and a run of
 * whitespace until text follows it: whitespace before a call or after the last is dropped when
 * there are calls (what the template put between them), kept when there are none. A block the
 * server holds to the tools' JSON streams its call as it is written; any other block goes out
 * whole when it closes.
 */
export class TaggedCallsReader implements CallReader {
  /**
   * calls handed an index: a held block's reader opens each as it is written (MiniMax-M2's and
   * DeepSeek's blocks may hold several), so with parallel_tool_calls false those after the first
   * are opened but not given out
   */
  private opened = 0;
  private buffer = '';
  private inBlock = false;
  private heldSpace = '';
  /** the held block being read (formats' streamer), and the index its first call would have */
  private streamed: CallStream | null = null;
  private blockFirstCall = 0;
  /** where the block read whole ends (looked for as its text grows) */
  private blockEnd: BlockEnd | null = null;
  /** a streamed call has closed: its block's end tag (and whitespace before it) is dropped when it follows */
  private afterStreamed = false;

  constructor(
    private readonly format: ToolCallFormat,
    /** the request's tools, for formats that read the arguments' types from them */
    private readonly tools: readonly FunctionTool[] = [],
    private readonly options: TaggedCallsOptions = {},
  ) {}

  /** the calls given out (with parallel_tool_calls false, the first only) */
  get calls(): number {
    return this.options.parallel === false ? Math.min(this.opened, 1) : this.opened;
  }

  push(text: string): ChoiceDelta[] {
    this.buffer += text;
    return this.drain(false);
  }

  end(): ChoiceDelta[] {
    const out = this.drain(true);
    if (this.opened === 0 && this.heldSpace) out.push({ kind: 'content', text: this.heldSpace });
    this.heldSpace = '';
    return out;
  }

  private drain(final: boolean): ChoiceDelta[] {
    const { start, end } = this.format;
    const out: ChoiceDelta[] = [];
    for (;;) {
      if (this.streamed !== null) {
        if (!this.readStreamed(final, out)) return out;
        continue;
      }
      if (this.afterStreamed) {
        if (end === null) {
          // (the block runs to the end of the generation: what follows its calls is part of it)
          this.buffer = '';
          return out;
        }
        const rest = this.buffer.trimStart();
        if (rest.startsWith(end)) this.buffer = rest.slice(end.length);
        else if (!final && (rest.length === 0 || end.startsWith(rest))) return out;
        this.afterStreamed = false;
      }
      if (!this.inBlock) {
        const at = this.buffer.indexOf(start);
        if (at >= 0) {
          this.content(this.buffer.slice(0, at), out);
          this.buffer = this.buffer.slice(at + start.length);
          this.inBlock = true;
          // (a block after the first call, with parallel_tool_calls false, is read whole and dropped)
          if (this.options.held && this.format.streamer && !(this.options.parallel === false && this.opened > 0)) {
            this.streamed = this.format.streamer(this.tools, () => ({ index: this.opened++, id: callId() }));
            this.blockFirstCall = this.opened;
          }
          continue;
        }
        const keep = final ? 0 : partialTagAtEnd(this.buffer, start);
        this.content(this.buffer.slice(0, this.buffer.length - keep), out);
        this.buffer = this.buffer.slice(this.buffer.length - keep);
        return out;
      }
      this.blockEnd ??= end === null ? null : new BlockEnd(end, this.format.heldCall === 'one');
      const close = this.blockEnd === null ? -1 : this.blockEnd.find(this.buffer);
      if (close < 0 && !final) return out;
      const body = close < 0 ? this.buffer : this.buffer.slice(0, close);
      const calls = this.format.parse(body, this.tools);
      if (calls) {
        this.heldSpace = '';
        for (const call of calls) this.call(call.name, call.arguments, out);
      } else {
        this.content(start + body + (close < 0 || end === null ? '' : end), out);
      }
      this.buffer = close < 0 || end === null ? '' : this.buffer.slice(close + end.length);
      this.inBlock = false;
      this.blockEnd = null;
      if (close < 0) return out;
    }
  }

  /**
   * The buffer read into the held block's calls; false where it needs more text. A block from
   * which no call came (its JSON was not a call of the tools) is content as written.
   */
  private readStreamed(final: boolean, out: ChoiceDelta[]): boolean {
    const streamed = this.streamed!;
    const { deltas, rest } = streamed.push(this.buffer);
    this.buffer = rest;
    for (const d of deltas) this.streamedDelta(d, out);
    if (!streamed.done && !final) return false;
    for (const d of streamed.end()) this.streamedDelta(d, out);
    this.afterStreamed = streamed.done && this.opened > this.blockFirstCall;
    this.streamed = null;
    this.inBlock = false;
    return true;
  }

  /** A delta of a held block's reader, as this reader gives it out: a block no call came from is content as written, its tag too. */
  private streamedDelta(d: ChoiceDelta, out: ChoiceDelta[]): void {
    // a block of several calls (MiniMax-M2's, DeepSeek's) with parallel_tool_calls false: its first only
    if (this.options.parallel === false && (d.kind === 'call' || d.kind === 'arguments') && d.index > 0) return;
    if (d.kind === 'call') this.heldSpace = '';
    if (d.kind !== 'content') out.push(d);
    else this.content(this.opened > this.blockFirstCall ? d.text : this.format.start + d.text, out);
  }

  /** A call read whole; with parallel_tool_calls false, only the first. */
  private call(name: string, args: string, out: ChoiceDelta[]): void {
    if (this.options.parallel === false && this.opened > 0) return;
    out.push({ kind: 'call', index: this.opened++, id: callId(), name, arguments: args });
  }

  /** Content, but its trailing whitespace held until more text follows it. */
  private content(text: string, out: ChoiceDelta[]): void {
    if (!text) return;
    const trailing = /\s*$/.exec(text)![0];
    const body = text.slice(0, text.length - trailing.length);
    if (body) {
      out.push({ kind: 'content', text: this.heldSpace + body });
      this.heldSpace = '';
    }
    this.heldSpace += trailing;
  }
}

/**
 * Where a block's end tag is in its text, which grows piece by piece: each character is looked at
 * once (a block of 100 KB arrives in tens of thousands of pieces). A block that is one JSON value
 * (Hermes's) ends at the first tag outside its strings, so a call whose arguments hold the tag's
 * text is still one call.
 */
class BlockEnd {
  private scanned = 0;
  private inString = false;
  private escaped = false;

  constructor(
    private readonly tag: string,
    private readonly outsideStrings: boolean,
  ) {}

  /** The tag's index in `text` (the block's text so far, grown since the last call); -1: not yet. */
  find(text: string): number {
    if (!this.outsideStrings) {
      const at = text.indexOf(this.tag, Math.max(0, this.scanned - this.tag.length + 1));
      this.scanned = text.length;
      return at;
    }
    for (; this.scanned < text.length; this.scanned++) {
      const c = text[this.scanned];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (text.startsWith(this.tag, this.scanned)) return this.scanned;
      // (the tag's beginning at the end of the text: looked at again when more comes)
      else if (text.length - this.scanned < this.tag.length && this.tag.startsWith(text.slice(this.scanned))) return -1;
    }
    return -1;
  }
}

/** The length of the longest end of `text` that is a proper beginning of `tag`. */
export function partialTagAtEnd(text: string, tag: string): number {
  for (let k = Math.min(tag.length - 1, text.length); k > 0; k--) if (text.endsWith(tag.slice(0, k))) return k;
  return 0;
}
