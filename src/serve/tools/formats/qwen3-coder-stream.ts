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
import type { ChoiceDelta } from '../call-readers.js';
import { nullable, typeOf, valueOf, BOOLEAN_TYPES, INTEGER_TYPES, JSON_TYPES, NUMBER_TYPES } from './qwen3-coder-values.js';
import { TaggedCallStream, type StreamedValue } from './tagged-call-stream.js';

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

interface Parameter extends StreamedValue {
  type: string | null;
  mayBeNull: boolean;
  /** nothing of the value read yet (its first line break, the format's, still to drop) */
  fresh: boolean;
}

export class Qwen3CoderCallStream extends TaggedCallStream {
  private parameter: Parameter | null = null;

  protected step(deltas: ChoiceDelta[]): boolean {
    if (!this.opened) return this.readFunction(deltas);
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
    if (!this.openCall(rest.slice(FUNCTION_OPEN.length, close).trim(), deltas)) return false;
    this.buffer = rest.slice(close + 1);
    return true;
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
      this.closeValue(p, text, () => valueOf(text, p.type, p.mayBeNull), deltas);
      this.parameter = null;
      return true;
    }
    // all but what may be the start of the closing tag (and the line break before it)
    p.text += this.takeText([`\n${PARAMETER_CLOSE}`, PARAMETER_CLOSE]);
    if (!isText(p.type) || (!p.started && mayStillBeNull(p.text, p.type, p.mayBeNull))) return false;
    this.streamText(p, deltas);
    return false;
  }
}
