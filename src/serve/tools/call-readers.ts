/**
 * One choice's generated text turned into what a chat response carries: content, and tool calls.
 * A reader takes the text piece by piece as the decoder gives it (each token's text) and answers
 * the deltas that can go out now, so a streamed response and a whole one are built from the same
 * deltas and cannot disagree.
 */
import { randomBytes } from 'node:crypto';
import type { FunctionTool } from './call-schema.js';
import { callFromJson, tryJson, type ParsedCall, type ToolCallFormat } from './formats/index.js';

export type ChoiceDelta =
  | { kind: 'content'; text: string }
  /** the model's reasoning, before its answer (reasoning.ts) */
  | { kind: 'reasoning'; text: string }
  /** a call opens: its id, name and its arguments (whole, or their first piece for a named choice) */
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
 * (callsSchema). Each call goes out whole as soon as its object closes; text that never became a
 * call (an object cut short at max_tokens) is content at the end, so nothing generated is lost.
 */
export class JsonCallsReader implements CallReader {
  calls = 0;
  private text = '';
  private scanned = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** where the object being read began (-1: between objects) */
  private itemStart = -1;
  /** the depth calls are read at: inside the array, or the top level */
  private readonly base: number;

  constructor(parallel: boolean) {
    this.base = parallel ? 1 : 0;
  }

  push(piece: string): ChoiceDelta[] {
    this.text += piece;
    const out: ChoiceDelta[] = [];
    for (; this.scanned < this.text.length; this.scanned++) {
      const c = this.text[this.scanned];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') {
        if (c === '{' && this.depth === this.base && this.itemStart < 0) this.itemStart = this.scanned;
        this.depth++;
      } else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === this.base && this.itemStart >= 0) {
          const item = this.text.slice(this.itemStart, this.scanned + 1);
          const call = callFromJson(tryJson(item));
          out.push(call ? this.open(call) : { kind: 'content', text: item });
          this.itemStart = -1;
        }
      }
    }
    return out;
  }

  end(): ChoiceDelta[] {
    return this.itemStart >= 0 ? [{ kind: 'content', text: this.text.slice(this.itemStart) }] : [];
  }

  private open(call: ParsedCall): ChoiceDelta {
    return { kind: 'call', index: this.calls++, id: callId(), name: call.name, arguments: call.arguments };
  }
}

/**
 * `tool_choice: "auto"`: the model writes an answer, calls in its family's format (formats/), or
 * both. Text outside the call blocks is content; a block that does not parse stays content as it
 * was written. Text that may be the start of a block is held until it is told apart, and a run of
 * whitespace until text follows it: whitespace before a call or after the last is dropped when
 * there are calls (what the template put between them), kept when there are none.
 */
export class TaggedCallsReader implements CallReader {
  calls = 0;
  private buffer = '';
  private inBlock = false;
  private heldSpace = '';

  constructor(
    private readonly format: ToolCallFormat,
    /** the request's tools, for formats that read the arguments' types from them */
    private readonly tools: readonly FunctionTool[] = [],
  ) {}

  push(text: string): ChoiceDelta[] {
    this.buffer += text;
    return this.drain(false);
  }

  end(): ChoiceDelta[] {
    const out = this.drain(true);
    if (this.calls === 0 && this.heldSpace) out.push({ kind: 'content', text: this.heldSpace });
    this.heldSpace = '';
    return out;
  }

  private drain(final: boolean): ChoiceDelta[] {
    const { start, end } = this.format;
    const out: ChoiceDelta[] = [];
    for (;;) {
      if (!this.inBlock) {
        const at = this.buffer.indexOf(start);
        if (at >= 0) {
          this.content(this.buffer.slice(0, at), out);
          this.buffer = this.buffer.slice(at + start.length);
          this.inBlock = true;
          continue;
        }
        const keep = final ? 0 : partialTagAtEnd(this.buffer, start);
        this.content(this.buffer.slice(0, this.buffer.length - keep), out);
        this.buffer = this.buffer.slice(this.buffer.length - keep);
        return out;
      }
      // a block that is one JSON value (Hermes's) ends at the first end tag outside its strings,
      // so a call whose arguments hold the tag's text is still one call
      const close = end === null ? -1 : this.format.heldCall === 'one' ? indexOutsideStrings(this.buffer, end) : this.buffer.indexOf(end);
      if (close < 0 && !final) return out;
      const body = close < 0 ? this.buffer : this.buffer.slice(0, close);
      const calls = this.format.parse(body, this.tools);
      if (calls) {
        this.heldSpace = '';
        for (const call of calls) out.push({ kind: 'call', index: this.calls++, id: callId(), name: call.name, arguments: call.arguments });
      } else {
        this.content(start + body + (close < 0 || end === null ? '' : end), out);
      }
      this.buffer = close < 0 || end === null ? '' : this.buffer.slice(close + end.length);
      this.inBlock = false;
      if (close < 0) return out;
    }
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

/** The first index of `tag` in `text` outside JSON strings (-1: none yet). */
function indexOutsideStrings(text: string, tag: string): number {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (text.startsWith(tag, i)) return i;
  }
  return -1;
}

/** The length of the longest end of `text` that is a proper beginning of `tag`. */
export function partialTagAtEnd(text: string, tag: string): number {
  for (let k = Math.min(tag.length - 1, text.length); k > 0; k--) if (text.endsWith(tag.slice(0, k))) return k;
  return 0;
}
