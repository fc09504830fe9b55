/**
 * A grammar of one function call addressed in a message header, as gpt-oss writes its calls:
 *
 *   <|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>
 *
 * From the text after the address (`to=functions.`, where ReasoningGate starts holding it): the
 * name of one of the functions, the rest of the header up to the text that opens the body
 * (`<|message|>`), then the arguments as one JSON object valid under that function's parameters.
 * The call is complete when the object closes (the model's `<|call|>` would end the generation
 * there anyway).
 *
 * The rest of the header is the model's own (` <|constrain|>json`, `<|channel|>commentary json`,
 * as the model and chat templates write it), within bounds: it begins with a space, a marker or the
 * body's opening (so the name has ended, and a name that another name begins is told apart), may not hold the texts
 * that end a message or start another (`refuses`), and may not run on for ever (`maxHeader`).
 * Neither a name nor JSON is a regular language together with the other, so this state reads the
 * name and the header itself and hands the arguments to the JSON schema state of the function
 * named (as TaggedJsonPrefix does for DeepSeek's fixed tags).
 */
import type { GrammarState } from './grammar-constraint.js';
import { startingState } from './grammar-constraint.js';
import { SchemaError } from './json-schema.js';
import { CompiledSpecs, copyArguments } from './compiled-specs.js';

/** What a call addressed in a header is made of (ReasoningFormat.addressedCalls). */
export interface AddressedCalls {
  /** the text after which the function's name comes (gpt-oss: `to=functions.`) */
  trigger: string;
  /** the functions that may be called: each name, and its arguments' JSON schema */
  functions: ReadonlyArray<{ name: string; schema: unknown }>;
  /** the text that ends the header and opens the body (gpt-oss: `<|message|>`) */
  bodyOpens: string;
  /** texts the header may not hold: those that end a message or start another */
  refuses: readonly string[];
  /** the most characters the header may hold between the name and the body (default 64) */
  maxHeader?: number;
}

const DEFAULT_MAX_HEADER = 64;
/** how the rest of the header begins after the name: a space, or a marker (`<|constrain|>`, `<|channel|>`, `<|message|>`), or else the body's opening itself */
const HEADER_GOES_ON = /[\s<]/u;

interface Compiled {
  spec: AddressedCalls;
  starts: GrammarState[];
  maxHeader: number;
  /** the header's last characters that can still begin a text it is watched for (its states' keys keep them) */
  tailKept: number;
  id: number;
}

const compiledSpecs = new CompiledSpecs<AddressedCalls, Compiled>((spec, id) => {
  if (spec.functions.length === 0) throw new SchemaError('addressed calls need at least one function', '');
  if (spec.functions.some((f) => typeof f.name !== 'string' || f.name === '')) throw new SchemaError('addressed calls need non-empty function names', '');
  if (new Set(spec.functions.map((f) => f.name)).size !== spec.functions.length) throw new SchemaError('addressed calls name a function twice', '');
  if (spec.bodyOpens === '' || spec.refuses.some((r) => r === '')) throw new SchemaError('addressed calls need a non-empty body opening and refused texts', '');
  const maxHeader = spec.maxHeader ?? DEFAULT_MAX_HEADER;
  if (!Number.isInteger(maxHeader) || maxHeader < spec.bodyOpens.length) throw new SchemaError(`addressed calls: maxHeader must be an integer of at least the body opening's length (${spec.bodyOpens.length})`, '');
  const tailKept = Math.max(spec.bodyOpens.length, ...spec.refuses.map((r) => r.length)) - 1;
  return { spec, starts: spec.functions.map((f) => startingState(f.schema, 'object')), maxHeader, tailKept, id };
});

/**
 * Where the text is:
 * - 'name': `at` characters into the names still matching (`alive`);
 * - 'header': after function `call`'s name, the header so far in `header`;
 * - 'args': inside the arguments (`json`);
 * - 'done': the object closed.
 */
type Phase = 'name' | 'header' | 'args' | 'done';

export class AddressedCallPrefix implements GrammarState {
  private readonly compiled: Compiled;
  private phase: Phase = 'name';
  private at = 0;
  private alive: number[];
  private call = -1;
  private header = '';
  private json: GrammarState | null = null;

  constructor(spec: AddressedCalls | Compiled) {
    this.compiled = 'starts' in spec ? spec : compiledSpecs.get(spec);
    this.alive = this.compiled.spec.functions.map((_, i) => i);
  }

  /** the function the header names, once the name has ended (null before) */
  get named(): string | null {
    return this.call < 0 ? null : this.compiled.spec.functions[this.call].name;
  }

  push(text: string): boolean {
    const { functions, bodyOpens, refuses } = this.compiled.spec;
    for (const c of text) {
      switch (this.phase) {
        case 'done':
          return false;
        case 'name': {
          const going = this.alive.filter((k) => functions[k].name.startsWith(c, this.at));
          if (going.length > 0) {
            this.alive = going;
            this.at += c.length;
            break;
          }
          // the name ended: it must be whole, and what follows cannot go on a name
          const whole = this.alive.find((k) => functions[k].name.length === this.at);
          if (whole === undefined || !(HEADER_GOES_ON.test(c) || bodyOpens.startsWith(c))) return false;
          this.phase = 'header';
          this.call = whole;
          this.header = '';
          if (!this.readHeader(c, bodyOpens, refuses)) return false;
          break;
        }
        case 'header':
          if (!this.readHeader(c, bodyOpens, refuses)) return false;
          break;
        case 'args':
          if (!this.json!.push(c)) return false;
          if (this.json!.complete) {
            this.phase = 'done';
            this.json = null;
          }
          break;
      }
    }
    return true;
  }

  /** one character of the header: refused texts break it; the body opening ends it, and must still fit within the bound */
  private readHeader(c: string, bodyOpens: string, refuses: readonly string[]): boolean {
    this.header += c;
    if (refuses.some((r) => this.header.endsWith(r))) return false;
    // the opening, begun by the header's end or not yet, must end within maxHeader (else the text could never close)
    let begun = Math.min(bodyOpens.length, this.header.length);
    while (begun > 0 && !this.header.endsWith(bodyOpens.slice(0, begun))) begun--;
    if (this.header.length - begun + bodyOpens.length > this.compiled.maxHeader) return false;
    if (begun === bodyOpens.length) {
      this.phase = 'args';
      this.json = this.compiled.starts[this.call].clone();
    }
    return true;
  }

  clone(): AddressedCallPrefix {
    return new AddressedCallPrefix(this.compiled).copyFrom(this);
  }

  copyFrom(other: GrammarState): this {
    const o = other as AddressedCallPrefix;
    this.phase = o.phase;
    this.at = o.at;
    this.alive = o.alive;
    this.header = o.header;
    this.json = copyArguments(this.json, o.json, this.call === o.call);
    this.call = o.call;
    return this;
  }

  get key(): string {
    const { id } = this.compiled;
    switch (this.phase) {
      case 'name':
        return `addressed${id}:name:${this.at}:${this.alive.join(',')}`;
      case 'header':
        // what may follow depends on the header's length (its bound) and its end (a refused text or the opening it may begin)
        const kept = this.compiled.tailKept;
        return `addressed${id}:header:${this.header.length}:${kept > 0 ? this.header.slice(-kept) : ''}`;
      case 'args':
        return `addressed${id}:args:${this.call}:${this.json!.key}`;
      case 'done':
        return `addressed${id}:done`;
    }
  }

  get complete(): boolean {
    return this.phase === 'done';
  }

  /** inside the arguments' strings; a name and a header take no character still being decoded */
  get inString(): boolean {
    return this.phase === 'args' && this.json!.inString;
  }

  /** inside a string of the arguments */
  get inValueString(): boolean {
    return this.phase === 'args' && this.json!.inValueString === true;
  }
}
