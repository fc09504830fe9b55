/**
 * A held DeepSeek block read as it is written (deepseek.ts's format, held to the tools' calls by
 * TaggedJsonPrefix): after `<｜tool▁calls▁begin｜>`, per call
 *
 *   <｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Verona"}<｜tool▁call▁end｜>        (V3.1 on)
 *   <｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{…}\n```<｜tool▁call▁end｜>  (V3)
 *
 * A call opens as soon as its name is complete, and its arguments stream as the model writes
 * them (the JSON object's own text, whitespace before it left out), as OpenAI and vLLM stream
 * them. The block's end (`<｜tool▁calls▁end｜>`, or any text that is not another call) is left to
 * the block's reader. A call cut short by the end of the generation keeps the arguments written so
 * far (the finish reason says "length"); one cut before its name is handed back as text.
 */
import type { ChoiceDelta } from '../call-readers.js';
import type { FunctionTool } from '../call-schema.js';
import type { OpenCall } from './format.js';
import { BlockCallStream } from './block-call-stream.js';

/** How a DeepSeek template lays one call out (deepseek.ts's two forms). */
export interface DeepSeekLayout {
  /** the call's opening, before its name */
  open: string;
  /** what ends the name (and comes before the arguments) */
  nameEnd: string;
  /** what follows the arguments' object */
  after: string;
  /** what comes between one call and the next (V3's template writes a line break) */
  separator: string;
}

type Phase = 'call' | 'name' | 'args' | 'after';

export class DeepSeekCallStream extends BlockCallStream {
  private phase: Phase = 'call';
  private index = -1;
  /** inside the arguments: the JSON's nesting, and whether a string is open */
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(
    tools: readonly FunctionTool[],
    open: OpenCall,
    private readonly layout: DeepSeekLayout,
  ) {
    super(tools, open);
  }

  protected step(deltas: ChoiceDelta[]): boolean {
    const { open, nameEnd, after, separator } = this.layout;
    switch (this.phase) {
      case 'call': {
        const lead = this.calls > 0 ? separator + open : open;
        if (this.buffer.startsWith(lead)) {
          this.buffer = this.buffer.slice(lead.length);
          this.phase = 'name';
          return true;
        }
        // what may still become the next call's opening waits; anything else ends the calls
        if (lead.startsWith(this.buffer)) return false;
        this.done = true;
        return false;
      }
      case 'name': {
        const at = this.buffer.indexOf(nameEnd);
        if (at < 0) return false;
        const name = this.buffer.slice(0, at).trim();
        if (!this.tools.some((t) => t.name === name)) {
          // not a call of the tools (a block left free): the rest is the block reader's
          this.done = true;
          return false;
        }
        const { index, id } = this.open();
        this.index = index;
        this.calls++;
        deltas.push({ kind: 'call', index, id, name, arguments: '' });
        this.buffer = this.buffer.slice(at + nameEnd.length);
        this.phase = 'args';
        this.depth = 0;
        return true;
      }
      case 'args':
        return this.readArguments(deltas);
      case 'after': {
        if (this.buffer.startsWith(after)) {
          this.buffer = this.buffer.slice(after.length);
          this.phase = 'call';
          return true;
        }
        if (after.startsWith(this.buffer)) return false;
        this.done = true;
        return false;
      }
    }
  }

  /** The arguments' text up to the end of their object, given out as it comes. */
  private readArguments(deltas: ChoiceDelta[]): boolean {
    let i = 0;
    let text = '';
    // whitespace before the object is not part of it
    if (this.depth === 0) {
      while (i < this.buffer.length && /\s/.test(this.buffer[i])) i++;
    }
    for (; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      text += c;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth -= 1;
        if (this.depth === 0) {
          i++;
          this.phase = 'after';
          break;
        }
      } else if (this.depth === 0) {
        // text that is not an object (a block left free): the call has no arguments to read
        text = text.slice(0, -1);
        this.phase = 'after';
        break;
      }
    }
    if (text) deltas.push({ kind: 'arguments', index: this.index, text });
    this.buffer = this.buffer.slice(i);
    return this.phase === 'after';
  }
}
