/**
 * A grammar of tool calls written between fixed tags with JSON arguments, as DeepSeek's models
 * write them: per call a fixed opening that names the function
 * (`<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>`), its arguments as one JSON object valid under
 * that function's parameters, a fixed text after them (`<｜tool▁call▁end｜>`); then another call,
 * where more than one may come, or the block's closing text. A block of such calls is not one JSON
 * value and its arguments are not a regular language, so neither JsonPrefix/SchemaPrefix nor
 * RegexPrefix holds it alone: this state reads the tags itself and hands each call's arguments to
 * the JSON schema state of the function its opening named.
 */
import type { GrammarState } from './grammar-constraint.js';
import { startingState } from './grammar-constraint.js';
import { SchemaError } from './json-schema.js';
import { CompiledSpecs, copyArguments } from './compiled-specs.js';

/** What a block of tagged calls is made of (GenerationParams.responseFormat's `taggedJson`). */
export interface TaggedJsonCalls {
  /** per function: the text that opens its call (its name among it) and its arguments' JSON schema */
  calls: ReadonlyArray<{ open: string; schema: unknown }>;
  /** the text after each call's arguments */
  after: string;
  /** what comes between a call's `after` and the next call's opening ('' for nothing) */
  separator: string;
  /** the text that closes the block, after the last call */
  close: string;
  /** more than one call in a block (else the first call's `after` is followed by `close`) */
  repeat: boolean;
}

/** a spec's calls compiled once (startingState per schema), by the spec's text */
interface Compiled {
  spec: TaggedJsonCalls;
  /** the states each call's arguments start from */
  starts: GrammarState[];
  /** each call's fixed opening as the block's first, and as a later one (after the separator) */
  firstOpens: string[];
  laterOpens: string[];
  /** what distinguishes this spec's states' keys from another's */
  id: number;
}

const compiledSpecs = new CompiledSpecs<TaggedJsonCalls, Compiled>((spec, id) => {
  if (spec.calls.length === 0) throw new SchemaError('tagged JSON calls need at least one function', '');
  const texts = [...spec.calls.map((call) => call.open), ...(spec.repeat ? spec.calls.map((call) => spec.separator + call.open) : []), spec.close];
  if (texts.some((t) => t === '') || spec.after === '') throw new SchemaError('tagged JSON calls need non-empty openings, after and close texts', '');
  // a fixed text that begins another would make the grammar choose between them by what follows
  for (const [i, a] of texts.entries()) {
    for (const [j, b] of texts.entries()) if (i !== j && a !== b && b.startsWith(a)) throw new SchemaError(`tagged JSON calls: the text ${JSON.stringify(a)} begins ${JSON.stringify(b)}`, '');
  }
  return {
    spec,
    starts: spec.calls.map((call) => startingState(call.schema, 'object')),
    firstOpens: spec.calls.map((call) => call.open),
    laterOpens: spec.calls.map((call) => spec.separator + call.open),
    id,
  };
});

/**
 * Where the text is:
 * - 'tag': among the fixed texts that may come next (the openings of the calls, and the close once
 *   a call has been written; with `repeat` false, only the close after the first), `at`
 *   characters into them, `alive` those still matching;
 * - 'args': inside call `call`'s arguments (`json`);
 * - 'after': `at` characters into the text after the arguments;
 * - 'done': the block has closed.
 */
type Phase = 'tag' | 'args' | 'after' | 'done';

export class TaggedJsonPrefix implements GrammarState {
  private readonly compiled: Compiled;
  private phase: Phase = 'tag';
  private at = 0;
  /** the fixed texts still matching in 'tag': indexes into the calls, −1 for the close */
  private alive: number[];
  private call = -1;
  private json: GrammarState | null = null;
  private written = 0;

  constructor(spec: TaggedJsonCalls | Compiled) {
    this.compiled = 'starts' in spec ? spec : compiledSpecs.get(spec);
    this.alive = this.candidates();
  }

  /** the fixed texts that may come in 'tag' now */
  private candidates(): number[] {
    const { calls, repeat } = this.compiled.spec;
    const opens = this.written > 0 && !repeat ? [] : calls.map((_, i) => i);
    return this.written > 0 ? [...opens, -1] : opens;
  }

  private textOf(candidate: number): string {
    const c = this.compiled;
    return candidate < 0 ? c.spec.close : (this.written > 0 ? c.laterOpens : c.firstOpens)[candidate];
  }

  push(text: string): boolean {
    let i = 0;
    while (i < text.length) {
      switch (this.phase) {
        case 'done':
          return false;
        case 'tag': {
          const c = text[i++];
          this.alive = this.alive.filter((k) => this.textOf(k)[this.at] === c);
          if (this.alive.length === 0) return false;
          this.at++;
          // (no fixed text begins another, compile() checks: one that is whole is the only one left)
          const whole = this.alive.find((k) => this.textOf(k).length === this.at);
          if (whole === undefined) break;
          if (whole < 0) this.phase = 'done';
          else {
            this.phase = 'args';
            this.call = whole;
            this.json = this.compiled.starts[whole].clone();
          }
          this.at = 0;
          break;
        }
        case 'args': {
          // character by character, so that the text after the object's end goes to 'after'
          if (!this.json!.push(text[i++])) return false;
          if (this.json!.complete) {
            this.phase = 'after';
            this.json = null;
            this.at = 0;
          }
          break;
        }
        case 'after': {
          const after = this.compiled.spec.after;
          if (text[i++] !== after[this.at]) return false;
          if (++this.at === after.length) {
            this.written++;
            this.phase = 'tag';
            this.at = 0;
            this.alive = this.candidates();
          }
          break;
        }
      }
    }
    return true;
  }

  clone(): TaggedJsonPrefix {
    return new TaggedJsonPrefix(this.compiled).copyFrom(this);
  }

  copyFrom(other: GrammarState): this {
    const o = other as TaggedJsonPrefix;
    this.phase = o.phase;
    this.at = o.at;
    this.alive = o.alive;
    this.written = o.written;
    this.json = copyArguments(this.json, o.json, this.call === o.call);
    this.call = o.call;
    return this;
  }

  get key(): string {
    const { id } = this.compiled;
    switch (this.phase) {
      case 'args':
        return `tagged${id}:args:${this.call}:${this.json!.key}`;
      case 'after':
        return `tagged${id}:after:${this.at}`;
      case 'done':
        return `tagged${id}:done`;
      case 'tag':
        // what may follow depends only on whether a call was written, and the texts still matching
        return `tagged${id}:tag:${Math.min(this.written, 1)}:${this.at}:${this.alive.join(',')}`;
    }
  }

  get complete(): boolean {
    return this.phase === 'done';
  }

  /** inside a string of the arguments */
  get inValueString(): boolean {
    return this.phase === 'args' && this.json!.inValueString === true;
  }

  /**
   * where a character beyond ASCII may come next (a character still being decoded may go there):
   * in a string of the arguments, or where a fixed text goes on with one (DeepSeek's tags are
   * full-width; a vocabulary without them as tokens writes them a byte at a time)
   */
  get inString(): boolean {
    switch (this.phase) {
      case 'args':
        return this.json!.inString;
      case 'tag':
        return this.alive.some((k) => this.textOf(k).charCodeAt(this.at) >= 0x80);
      case 'after':
        return this.compiled.spec.after.charCodeAt(this.at) >= 0x80;
      default:
        return false;
    }
  }
}
