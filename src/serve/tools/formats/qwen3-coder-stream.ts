/**
 * A held Qwen3-Coder call read as it is written (qwen3-coder.ts's format, held to its pattern):
 *
 *   <function=write_file>\n<parameter=path>\na.ts\n</parameter>\n<parameter=content>\n…\n</parameter>\n</function>
 *
 * The call opens when `<function=…>` is complete, its arguments with `{`. A parameter whose value
 * is text (a string, or one the schema does not name) streams as the model writes it, escaped as
 * JSON, once it can no longer be read as null ("null", or Python's None where that counts); its
 * line breaks around the value, and a possible start of `</parameter>`, wait for what follows them.
 * Values of other types (numbers, booleans, objects, arrays) go out when their parameter closes,
 * read as the whole-block reader reads them. The arguments add up to what that reader gives for
 * the same block, except where a parameter is written twice (both are given: a JSON parser keeps
 * the last, as the whole-block reader does) and where a text value holds `</function>` (the
 * whole-block reader, which looks for the function's end first, cuts the value there).
 */
import { partialTagAtEnd, type ChoiceDelta } from '../call-readers.js';
import type { FunctionTool } from '../call-schema.js';
import type { CallStream, OpenCall } from './format.js';
import { BOOLEAN_TYPES, INTEGER_TYPES, JSON_TYPES, NUMBER_TYPES, nullable, propertiesOf, typeOf, valueOf } from './qwen3-coder-values.js';

const FUNCTION_OPEN = '<function=';
const FUNCTION_CLOSE = '</function>';
const PARAMETER_OPEN = '<parameter=';
const PARAMETER_CLOSE = '</parameter>';

/** a value of this type is written as JSON text (a string), so it can go out as it comes */
const isText = (type: string | null) => type === null || !(INTEGER_TYPES.has(type) || NUMBER_TYPES.has(type) || BOOLEAN_TYPES.has(type) || JSON_TYPES.has(type));

/** Whether a text value that begins with `prefix` may still be read as null (valueOf's rule). */
function mayStillBeNull(prefix: string, type: string | null, mayBeNull: boolean): boolean {
  if (type === null) return false;
  const t = prefix.trim();
  return 'null'.startsWith(t.toLowerCase()) || ((mayBeNull || type !== 'string') && 'None'.startsWith(t));
}

/** `text` as it reads inside a JSON string */
const escaped = (text: string) => JSON.stringify(text).slice(1, -1);

interface Parameter {
  key: string;
  type: string | null;
  mayBeNull: boolean;
  /** the value's text so far (its first line break dropped) */
  text: string;
  /** characters of `text` given out (text values, once they cannot be null) */
  sent: number;
  /** the key and the value's opening quote have gone out */
  started: boolean;
  /** nothing of the value read yet (its first line break, the format's, still to drop) */
  fresh: boolean;
}

export class Qwen3CoderCallStream implements CallStream {
  done = false;
  /** text read and not yet understood (a tag being written) */
  private buffer = '';
  /** the whole text read, for a block that turns out not to be a call */
  private raw = '';
  private index = -1;
  private properties: Record<string, unknown> | undefined;
  private parameters = 0;
  private parameter: Parameter | null = null;
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

  /** One step of reading the buffer; false where it needs more text. */
  private step(deltas: ChoiceDelta[]): boolean {
    if (this.index < 0) return this.readFunction(deltas);
    if (this.parameter !== null) return this.readValue(deltas);
    const rest = this.buffer.trimStart();
    if (rest.startsWith(PARAMETER_OPEN)) {
      const close = rest.indexOf('>');
      if (close < 0) return false;
      const key = rest.slice(PARAMETER_OPEN.length, close).trim();
      const property = this.properties?.[key];
      this.parameter = { key, type: typeOf(property), mayBeNull: nullable(property), text: '', sent: 0, started: false, fresh: true };
      this.buffer = rest.slice(close + 1);
      return true;
    }
    if (rest.startsWith(FUNCTION_CLOSE)) {
      this.arguments('}', deltas);
      this.buffer = rest.slice(FUNCTION_CLOSE.length);
      this.done = true;
      return false;
    }
    if (rest.length === 0 || PARAMETER_OPEN.startsWith(rest) || FUNCTION_CLOSE.startsWith(rest)) return false;
    // text the held pattern does not allow (a block left free): the call ends here
    this.arguments('}', deltas);
    this.done = true;
    return false;
  }

  private readFunction(deltas: ChoiceDelta[]): boolean {
    const rest = this.buffer.trimStart();
    if (rest.length < FUNCTION_OPEN.length) {
      if (FUNCTION_OPEN.startsWith(rest)) return false;
      return this.notACall();
    }
    if (!rest.startsWith(FUNCTION_OPEN)) return this.notACall();
    const close = rest.indexOf('>');
    if (close < 0) return rest.includes('\n') ? this.notACall() : false;
    const name = rest.slice(FUNCTION_OPEN.length, close).trim();
    const tool = this.tools.find((t) => t.name === name);
    if (tool === undefined) return this.notACall();
    this.properties = propertiesOf(tool);
    const { index, id } = this.open();
    this.index = index;
    deltas.push({ kind: 'call', index, id, name, arguments: '{' });
    this.buffer = rest.slice(close + 1);
    return true;
  }

  /** The block is not a call of the tools: its tag is handed back as text, and what followed it to be read again (push). */
  private notACall(): false {
    this.failed = true;
    this.done = true;
    return false;
  }

  private readValue(deltas: ChoiceDelta[]): boolean {
    const p = this.parameter!;
    if (p.fresh) {
      if (this.buffer.length === 0) return false;
      // the line break after the tag is the format's, not the value's
      if (this.buffer.startsWith('\n')) this.buffer = this.buffer.slice(1);
      p.fresh = false;
    }
    const close = this.buffer.indexOf(PARAMETER_CLOSE);
    if (close >= 0) {
      p.text += this.buffer.slice(0, close);
      this.buffer = this.buffer.slice(close + PARAMETER_CLOSE.length);
      const text = p.text.endsWith('\n') ? p.text.slice(0, -1) : p.text;
      if (p.started) this.arguments(`${escaped(text.slice(p.sent))}"`, deltas);
      else this.arguments(`${this.keyText(p)}${JSON.stringify(valueOf(text, p.type, p.mayBeNull))}`, deltas);
      this.parameter = null;
      return true;
    }
    // all but what may be the start of the closing tag (and the line break before it)
    const keep = Math.max(partialTagAtEnd(this.buffer, `\n${PARAMETER_CLOSE}`), partialTagAtEnd(this.buffer, PARAMETER_CLOSE));
    p.text += this.buffer.slice(0, this.buffer.length - keep);
    this.buffer = this.buffer.slice(this.buffer.length - keep);
    if (!isText(p.type)) return false;
    if (!p.started) {
      if (mayStillBeNull(p.text, p.type, p.mayBeNull)) return false;
      p.started = true;
      this.arguments(`${this.keyText(p)}"`, deltas);
    }
    // (a character split across two pieces goes out whole)
    let upTo = p.text.length;
    const last = p.text.charCodeAt(upTo - 1);
    if (last >= 0xd800 && last <= 0xdbff) upTo--;
    if (upTo > p.sent) {
      this.arguments(escaped(p.text.slice(p.sent, upTo)), deltas);
      p.sent = upTo;
    }
    return false;
  }

  /** the parameter's key as the arguments' JSON writes it, after a comma where it is not the first */
  private keyText(p: Parameter): string {
    return `${this.parameters++ > 0 ? ',' : ''}${JSON.stringify(p.key)}:`;
  }

  /** more of the arguments, in one delta with what this piece already gave */
  private arguments(text: string, deltas: ChoiceDelta[]): void {
    if (!text) return;
    const last = deltas.at(-1);
    if (last?.kind === 'arguments') last.text += text;
    else deltas.push({ kind: 'arguments', index: this.index, text });
  }
}
