/**
 * Tool calls read out of JSON while it is being written: one `{"name": …, "arguments": …}` object,
 * or an array of them. This is for text a constraint holds to that shape (`tool_choice:
 * "required"`, and the call blocks of Hermes's and Mistral's formats under "auto"), so a call can
 * go out before it closes: it opens as soon as its name is known, and its arguments follow piece by
 * piece, as written, as OpenAI and vLLM stream them. A client writing a file through a tool sees it
 * come, not all of it at the end.
 *
 * The arguments are the model's own text of that value (whitespace inside it kept, whitespace
 * after it not), which a client parses as it would any JSON. An object cut short by the end of the
 * generation leaves its call with the arguments written so far (the finish reason says "length");
 * one cut before its name was known is handed back as text.
 */
import type { ChoiceDelta } from './call-readers.js';
import type { FunctionTool } from './call-schema.js';
import { callFromJson, tryJson, type CallStream, type OpenCall } from './formats/format.js';

/** One call object being read, from the character after its `{`. */
class CallObject {
  /** the object's text from its `{`, for when it turns out not to be a call */
  raw = '{';
  name: string | null = null;
  /** arguments read and not yet given out; whitespace after them held until more of them follows */
  pending = '';
  private heldSpace = '';
  /** some of the arguments' text has been read */
  private sawArguments = false;
  private depth = 1;
  private inString = false;
  private escaped = false;
  private mode: 'key' | 'value' = 'key';
  private keyText = '';
  private key: unknown = undefined;
  private valueText = '';
  closed = false;

  /** the object's text is kept (false once it is a call: only an object that is not one needs it) */
  keepRaw = true;

  /** Reads `text` up to the object's end; answers how many characters it took. */
  push(text: string): number {
    let i = 0;
    for (; i < text.length && !this.closed; i++) this.read(text[i]);
    if (this.keepRaw) this.raw += text.slice(0, i);
    return i;
  }

  /** whether an `arguments` value was read (a call without one has no arguments: `{}`) */
  get hasArguments(): boolean {
    return this.sawArguments;
  }

  private read(c: string): void {
    if (this.inString) {
      this.keep(c);
      if (this.escaped) this.escaped = false;
      else if (c === '\\') this.escaped = true;
      else if (c === '"') {
        this.inString = false;
        if (this.depth === 1 && this.mode === 'value' && this.key === 'name') {
          const name = tryJson(this.valueText);
          if (typeof name === 'string') this.name = name;
        }
      }
      return;
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') {
      if (this.mode === 'value' && this.key === 'arguments' && this.sawArguments) this.heldSpace += c;
      return;
    }
    if (this.depth === 1) {
      if (c === ':' && this.mode === 'key') {
        this.key = tryJson(this.keyText);
        this.mode = 'value';
        this.valueText = '';
        return;
      }
      if (c === ',' || c === '}') {
        this.heldSpace = '';
        this.mode = 'key';
        this.keyText = '';
        this.key = undefined;
        if (c === '}') this.closed = true;
        return;
      }
    }
    this.keep(c);
    if (c === '"') this.inString = true;
    else if (c === '{' || c === '[') this.depth++;
    else if (c === '}' || c === ']') this.depth--;
  }

  /** a character of the key or value being read */
  private keep(c: string): void {
    if (this.mode === 'key') {
      if (this.depth === 1) this.keyText += c;
    } else if (this.key === 'arguments') {
      this.pending += this.heldSpace + c;
      this.heldSpace = '';
      this.sawArguments = true;
    } else if (this.key === 'name') this.valueText += c;
  }
}

export class StreamedCalls implements CallStream {
  /** the value has closed: the rest of the text is not this reader's */
  done = false;
  private started = false;
  private item: CallObject | null = null;
  /** the item's call, once opened */
  private index = -1;
  /** calls opened, and the text read until the first opened (a block no call came of is handed back whole) */
  private opened = 0;
  private written = '';

  constructor(
    /** an array of calls (true), or one call */
    private readonly array: boolean,
    /** the names a call may have (the request's tools); an object of another name is not a call */
    private readonly names: ReadonlySet<string>,
    private readonly open: OpenCall,
  ) {}

  push(text: string): { deltas: ChoiceDelta[]; rest: string } {
    const deltas: ChoiceDelta[] = [];
    let i = 0;
    while (i < text.length && !this.done) {
      if (this.item !== null) {
        const n = this.item.push(text.slice(i));
        if (this.opened === 0) this.written += text.slice(i, i + n);
        i += n;
        this.flush(deltas);
        continue;
      }
      const c = text[i++];
      if (this.opened === 0) this.written += c;
      if (!this.started) {
        if (c === (this.array ? '[' : '{')) {
          this.started = true;
          if (!this.array) this.item = new CallObject();
        }
        // (whitespace before the value; nothing else can come there under the constraint)
        continue;
      }
      if (c === '{') this.item = new CallObject();
      else if (c === ']') this.done = true;
    }
    return { deltas, rest: text.slice(i) };
  }

  end(): ChoiceDelta[] {
    const item = this.item;
    this.item = null;
    return item !== null && this.index < 0 ? [this.notACall(item)] : [];
  }

  /** an object that did not become a call, as text: the whole block where no call came of it */
  private notACall(item: CallObject): ChoiceDelta {
    return { kind: 'content', text: this.opened === 0 ? this.written : item.raw };
  }

  private flush(deltas: ChoiceDelta[]): void {
    const item = this.item!;
    if (this.index < 0 && item.name !== null && this.names.has(item.name)) {
      const { index, id } = this.open();
      this.opened++;
      this.index = index;
      item.keepRaw = false;
      deltas.push({ kind: 'call', index, id, name: item.name, arguments: item.pending });
      item.pending = '';
    } else if (this.index >= 0 && item.pending) {
      deltas.push({ kind: 'arguments', index: this.index, text: item.pending });
      item.pending = '';
    }
    if (!item.closed) return;
    if (this.index < 0) {
      // closed without being a call of the tools: a call in another spelling, or text
      const call = callFromJson(tryJson(item.raw));
      if (call !== null && this.names.has(call.name)) {
        const { index, id } = this.open();
        this.opened++;
        deltas.push({ kind: 'call', index, id, name: call.name, arguments: call.arguments });
      } else deltas.push(this.notACall(item));
    } else if (!item.hasArguments) deltas.push({ kind: 'arguments', index: this.index, text: '{}' });
    this.item = null;
    this.index = -1;
    if (!this.array) this.done = true;
  }
}

/** A format's streamer of held JSON calls (ToolCallFormat.streamer): one call a block, or an array of them. */
export const jsonCallsStreamer =
  (array: boolean) =>
  (tools: readonly FunctionTool[], open: OpenCall): CallStream =>
    new StreamedCalls(array, new Set(tools.map((t) => t.name)), open);
