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
import type { ChoiceDelta } from '../call-readers.js';
import { declaredString, valueOf } from './glm45-values.js';
import { nullable } from './qwen3-coder-values.js';
import { TaggedCallStream, type StreamedValue } from './tagged-call-stream.js';

const KEY_OPEN = '<arg_key>';
const KEY_CLOSE = '</arg_key>';
const VALUE_OPEN = '<arg_value>';
const VALUE_CLOSE = '</arg_value>';
const CALL_CLOSE = '</tool_call>';

interface Argument extends StreamedValue {
  property: unknown;
  /** the value streams as text (the schema declares it a string) */
  asText: boolean;
  mayBeNull: boolean;
  /** its `<arg_value>` has been read */
  inValue: boolean;
}

export class Glm45CallStream extends TaggedCallStream {
  /** the argument whose key has been read: waiting for its value's tag, or reading its value */
  private argument: Argument | null = null;

  protected step(deltas: ChoiceDelta[]): boolean {
    if (!this.opened) return this.readName(deltas);
    const a = this.argument;
    if (a?.inValue) return this.readValue(a, deltas);
    const rest = this.buffer.trimStart();
    if (a !== null) {
      // between a key and its value
      if (rest.startsWith(VALUE_OPEN)) {
        this.buffer = rest.slice(VALUE_OPEN.length);
        a.inValue = true;
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
      this.argument = { key, property, asText: declaredString(property), mayBeNull: nullable(property), inValue: false, text: '', sent: 0, started: false };
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
    if (!this.openCall(text.slice(0, end).trim(), deltas)) return false;
    this.buffer = text.slice(end);
    return true;
  }

  private readValue(a: Argument, deltas: ChoiceDelta[]): boolean {
    const close = this.buffer.indexOf(VALUE_CLOSE);
    if (close >= 0) {
      a.text += this.buffer.slice(0, close);
      this.buffer = this.buffer.slice(close + VALUE_CLOSE.length);
      this.closeValue(a, a.text, () => valueOf(a.text, a.property), deltas);
      this.argument = null;
      return true;
    }
    // all but what may be the start of the closing tag
    a.text += this.takeText([VALUE_CLOSE]);
    // a string goes out as it comes, a nullable one once it can no longer be "null" (valueOf's rule)
    if (!a.asText || (!a.started && a.mayBeNull && 'null'.startsWith(a.text.trim()))) return false;
    this.streamText(a, deltas);
    return false;
  }
}
