/**
 * What the readers of held calls written in tags share (qwen3-coder-stream.ts, glm45-stream.ts):
 * the text read so far, a call opened once its name is known, its arguments given out as JSON text
 * piece by piece, a value's text streamed as it comes, and a block that turns out not to be a call
 * handed back as it was written. Each format reads its own tags (`step`).
 */
import { partialTagAtEnd, type ChoiceDelta } from '../call-readers.js';
import type { FunctionTool } from '../call-schema.js';
import type { CallStream, OpenCall } from './format.js';
import { propertiesOf } from './qwen3-coder-values.js';

/** `text` as it reads inside a JSON string */
const escaped = (text: string) => JSON.stringify(text).slice(1, -1);

/** A value being read: its text so far, how much of it went out, and whether its key and opening quote did. */
export interface StreamedValue {
  key: string;
  text: string;
  sent: number;
  started: boolean;
}

export abstract class TaggedCallStream implements CallStream {
  done = false;
  /** text read and not yet understood (a tag being written) */
  protected buffer = '';
  /** the call's properties in the tool's schema, once the call is open */
  protected properties: Record<string, unknown> | undefined;
  /** the whole text read, for a block that turns out not to be a call */
  private raw = '';
  private index = -1;
  private written = 0;
  /** the block turned out not to be a call of the tools */
  private failed = false;

  constructor(
    private readonly tools: readonly FunctionTool[],
    private readonly open: OpenCall,
  ) {}

  /** One step of reading the buffer; false where it needs more text (or the call has ended: `done`). */
  protected abstract step(deltas: ChoiceDelta[]): boolean;

  push(text: string): { deltas: ChoiceDelta[]; rest: string } {
    const deltas: ChoiceDelta[] = [];
    this.buffer += text;
    // (the text is kept until the call opens: only a block that is not a call needs it)
    if (this.index < 0) this.raw += text;
    while (!this.done && this.step(deltas));
    if (!this.done) return { deltas, rest: '' };
    // what follows the call's end is not its text
    const rest = this.buffer;
    if (this.failed) this.raw = this.raw.slice(0, this.raw.length - rest.length);
    this.buffer = '';
    if (this.failed) deltas.push({ kind: 'content', text: this.raw });
    return { deltas, rest };
  }

  end(): ChoiceDelta[] {
    return this.index < 0 && !this.done ? [{ kind: 'content', text: this.raw }] : [];
  }

  /** whether the call has opened (its name read) */
  protected get opened(): boolean {
    return this.index >= 0;
  }

  /** Opens the call of `name` (its first delta, with `{`); false where no tool has that name (the block is then no call). */
  protected openCall(name: string, deltas: ChoiceDelta[]): boolean {
    const tool = this.tools.find((t) => t.name === name);
    if (tool === undefined) return this.notACall();
    this.properties = propertiesOf(tool);
    const { index, id } = this.open();
    this.index = index;
    deltas.push({ kind: 'call', index, id, name, arguments: '{' });
    return true;
  }

  /** The block is not a call of the tools: its tag is handed back as text, and what followed it to be read again (push). */
  protected notACall(): false {
    this.failed = true;
    this.done = true;
    return false;
  }

  /** The buffer's text up to what may be the start of one of `tags` (the rest stays in the buffer). */
  protected takeText(tags: readonly string[]): string {
    const keep = Math.max(...tags.map((tag) => partialTagAtEnd(this.buffer, tag)));
    const text = this.buffer.slice(0, this.buffer.length - keep);
    this.buffer = this.buffer.slice(this.buffer.length - keep);
    return text;
  }

  /** The value's text so far that has not gone out, as JSON string text (its key and opening quote first). */
  protected streamText(value: StreamedValue, deltas: ChoiceDelta[]): void {
    if (!value.started) {
      value.started = true;
      this.arguments(`${this.keyText(value.key)}"`, deltas);
    }
    // (a character split across two pieces goes out whole)
    let upTo = value.text.length;
    const last = value.text.charCodeAt(upTo - 1);
    if (last >= 0xd800 && last <= 0xdbff) upTo--;
    if (upTo > value.sent) {
      this.arguments(escaped(value.text.slice(value.sent, upTo)), deltas);
      value.sent = upTo;
    }
  }

  /** A value whose text is complete: the rest of a streamed one and its closing quote, or its key and `value` as JSON. */
  protected closeValue(value: StreamedValue, text: string, read: () => unknown, deltas: ChoiceDelta[]): void {
    if (value.started) this.arguments(`${escaped(text.slice(value.sent))}"`, deltas);
    else this.arguments(`${this.keyText(value.key)}${JSON.stringify(read())}`, deltas);
  }

  /** the key as the arguments' JSON writes it, after a comma where it is not the first */
  private keyText(key: string): string {
    return `${this.written++ > 0 ? ',' : ''}${JSON.stringify(key)}:`;
  }

  /** more of the arguments, in one delta with what this piece already gave */
  protected arguments(text: string, deltas: ChoiceDelta[]): void {
    if (!text) return;
    const last = deltas.at(-1);
    if (last?.kind === 'arguments') last.text += text;
    else deltas.push({ kind: 'arguments', index: this.index, text });
  }
}
