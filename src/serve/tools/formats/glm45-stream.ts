/**
 * A held GLM-4.5 call read as it is written (glm45.ts's format, held to its pattern):
 *
 *   get_weather\n<arg_key>city</arg_key>\n<arg_value>Verona</arg_value>\n</tool_call>
 *
 * The call opens when its name's line is complete, its arguments with `{`. A value the schema
 * declares a string streams as the model writes it, escaped as JSON (a nullable one once it can
 * no longer be read as null); a possible start of `</arg_value>` waits for what follows it. Other
 * values (numbers, booleans, objects, arrays, and parameters the schema does not name, which are
 * read as JSON where they are JSON) go out when their `</arg_value>` comes, read as the
 * whole-block reader reads them. The call ends at `</tool_call>`, which is left to the block's
 * reader (it is the block's end tag). The arguments add up to what the whole-block reader gives for
 * the same block, except where a key is written twice (both are given: a JSON parser keeps the
 * last, as the whole-block reader does).
 */
import { partialTagAtEnd, type ChoiceDelta } from '../call-readers.js';
import type { FunctionTool } from '../call-schema.js';
import type { CallStream, OpenCall } from './format.js';
import { declaredString, valueOf } from './glm45-values.js';
import { nullable, propertiesOf } from './qwen3-coder-values.js';

const KEY_OPEN = '<arg_key>';
const KEY_CLOSE = '</arg_key>';
const VALUE_OPEN = '<arg_value>';
const VALUE_CLOSE = '</arg_value>';
const CALL_CLOSE = '</tool_call>';

/** `text` as it reads inside a JSON string */
const escaped = (text: string) => JSON.stringify(text).slice(1, -1);

interface Argument {
  key: string;
  property: unknown;
  /** the value streams as text (the schema declares it a string) */
  text: boolean;
  mayBeNull: boolean;
  /** the value's text so far */
  value: string;
  /** characters of `value` given out */
  sent: number;
  /** the key and the value's opening quote have gone out */
  started: boolean;
}

export class Glm45CallStream implements CallStream {
  done = false;
  /** text read and not yet understood (a tag being written) */
  private buffer = '';
  /** the whole text read, for a block that turns out not to be a call */
  private raw = '';
  private index = -1;
  private properties: Record<string, unknown> | undefined;
  private written = 0;
  /** the argument whose key has been read: waiting for its value's tag (value null) or reading its value */
  private argument: Argument | null = null;
  private inValue = false;
  /** the block turned out not to be a call of the tools */
  private failed = false;

  constructor(
    private readonly tools: readonly FunctionTool[],
    private readonly open: OpenCall,
  ) {}

  push(text: string): { deltas: ChoiceDelta[]; rest: string } {
    const deltas: ChoiceDelta[] = [];
    this.buffer += text;
    // (the text is kept until the call opens: only a block that is not a call needs it)
    if (this.index < 0) this.raw += text;
    while (!this.done && this.step(deltas));
    if (!this.done) return { deltas, rest: '' };
    // what follows the call's end (its end tag first) is not its text
    const rest = this.buffer;
    if (this.failed) this.raw = this.raw.slice(0, this.raw.length - rest.length);
    this.buffer = '';
    if (this.failed) deltas.push({ kind: 'content', text: this.raw });
    return { deltas, rest };
  }

  end(): ChoiceDelta[] {
    return this.index < 0 && !this.done ? [{ kind: 'content', text: this.raw }] : [];
  }

  /** One step of reading the buffer; false where it needs more text. */
  private step(deltas: ChoiceDelta[]): boolean {
    if (this.index < 0) return this.readName(deltas);
    if (this.inValue) return this.readValue(deltas);
    const rest = this.buffer.trimStart();
    if (this.argument !== null) {
      // between a key and its value
      if (rest.startsWith(VALUE_OPEN)) {
        this.buffer = rest.slice(VALUE_OPEN.length);
        this.inValue = true;
        return true;
      }
      if (rest.length === 0 || VALUE_OPEN.startsWith(rest)) return false;
      return this.finish(rest, deltas);
    }
    if (rest.startsWith(KEY_OPEN)) {
      const close = rest.indexOf(KEY_CLOSE);
      if (close < 0) return false;
      const key = rest.slice(KEY_OPEN.length, close).trim();
      const property = this.properties?.[key];
      this.argument = { key, property, text: declaredString(property), mayBeNull: nullable(property), value: '', sent: 0, started: false };
      this.buffer = rest.slice(close + KEY_CLOSE.length);
      return true;
    }
    if (rest.startsWith(CALL_CLOSE)) return this.finish(rest, deltas);
    if (rest.length === 0 || KEY_OPEN.startsWith(rest) || CALL_CLOSE.startsWith(rest)) return false;
    // text the held pattern does not allow (a block left free): the call ends here
    return this.finish(rest, deltas);
  }

  /** The call's arguments close; `rest` (its end tag, or text that does not belong to it) is the block reader's. */
  private finish(rest: string, deltas: ChoiceDelta[]): false {
    this.arguments('}', deltas);
    this.buffer = rest;
    this.done = true;
    return false;
  }

  private readName(deltas: ChoiceDelta[]): boolean {
    // the name runs to the end of its line (or the first tag, where the model leaves out the line
    // break); space before it is not part of it
    const text = this.buffer.trimStart();
    const end = text.search(/[\n<]/);
    if (end < 0) return /[>{}"]/.test(text) ? this.notACall() : false;
    const name = text.slice(0, end).trim();
    const tool = this.tools.find((t) => t.name === name);
    if (tool === undefined) return this.notACall();
    this.properties = propertiesOf(tool);
    const { index, id } = this.open();
    this.index = index;
    deltas.push({ kind: 'call', index, id, name, arguments: '{' });
    this.buffer = text.slice(end);
    return true;
  }

  /** The block is not a call of the tools: its tag is handed back as text, and what followed it to be read again (push). */
  private notACall(): false {
    this.failed = true;
    this.done = true;
    return false;
  }

  private readValue(deltas: ChoiceDelta[]): boolean {
    const a = this.argument!;
    const close = this.buffer.indexOf(VALUE_CLOSE);
    if (close >= 0) {
      a.value += this.buffer.slice(0, close);
      this.buffer = this.buffer.slice(close + VALUE_CLOSE.length);
      if (a.started) this.arguments(`${escaped(a.value.slice(a.sent))}"`, deltas);
      else this.arguments(`${this.keyText(a)}${JSON.stringify(valueOf(a.value, a.property))}`, deltas);
      this.argument = null;
      this.inValue = false;
      return true;
    }
    // all but what may be the start of the closing tag
    const keep = partialTagAtEnd(this.buffer, VALUE_CLOSE);
    a.value += this.buffer.slice(0, this.buffer.length - keep);
    this.buffer = this.buffer.slice(this.buffer.length - keep);
    if (!this.streams(a)) return false;
    if (!a.started) {
      a.started = true;
      this.arguments(`${this.keyText(a)}"`, deltas);
    }
    // (a character split across two pieces goes out whole)
    let upTo = a.value.length;
    const last = a.value.charCodeAt(upTo - 1);
    if (last >= 0xd800 && last <= 0xdbff) upTo--;
    if (upTo > a.sent) {
      this.arguments(escaped(a.value.slice(a.sent, upTo)), deltas);
      a.sent = upTo;
    }
    return false;
  }

  /**
   * Whether the value's text can go out as it comes: the schema declares it a string (so
   * valueOf keeps it as written), and, where it may be null, it can no longer be "null".
   */
  private streams(a: Argument): boolean {
    if (!a.text) return false;
    return !(a.mayBeNull && 'null'.startsWith(a.value.trim()));
  }

  /** the argument's key as the arguments' JSON writes it, after a comma where it is not the first */
  private keyText(a: Argument): string {
    return `${this.written++ > 0 ? ',' : ''}${JSON.stringify(a.key)}:`;
  }

  /** more of the arguments, in one delta with what this piece already gave */
  private arguments(text: string, deltas: ChoiceDelta[]): void {
    if (!text) return;
    const last = deltas.at(-1);
    if (last?.kind === 'arguments') last.text += text;
    else deltas.push({ kind: 'arguments', index: this.index, text });
  }
}
