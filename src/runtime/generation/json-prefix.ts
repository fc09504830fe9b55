/**
 * Whether a text can still become one JSON object (RFC 8259, the object form that OpenAI's
 * `response_format: {"type": "json_object"}` asks for), read one character at a time. JSON mode
 * (grammar-constraint.ts) asks it of every candidate token: a token is allowed when the text it adds
 * keeps the whole completion a viable prefix, and generation ends when the object closes.
 *
 * Hand-written because what is needed is a prefix check, not a parser: JSON.parse and the npm
 * parsers answer "valid or not" for a whole text, and streaming parsers build values the
 * constraint does not need. The state is a few fields and the open containers as a string, so a
 * copy per candidate token is cheap.
 *
 * One deliberate restriction beyond the grammar: between two tokens of the JSON (outside strings)
 * at most `maxWhitespace` whitespace characters (default 32), of which at most `maxNewlines` line
 * breaks (default 1: what every pretty-printer writes), because a model held to JSON otherwise
 * can emit newlines until max_tokens runs out, a known failure of grammar-constrained decoding.
 */
import { isSpace, nextEscape, numberComplete, numberStep, type Escape } from './json-chars.js';

/** Where the next character falls. */
enum Mode {
  /** before the top-level value: whitespace, then '{' */
  Start,
  /** a value (after ':' or ',' in an array) */
  Value,
  /** after '[': a value or ']' */
  ValueOrClose,
  /** after '{': a key or '}' */
  KeyOrClose,
  /** after ',' in an object: a key */
  Key,
  /** after a key: ':' */
  Colon,
  /** after a value inside a container: ',' or its closing bracket */
  AfterValue,
  /** inside a string (`inKey` says whether it is an object's key, `esc` where in an escape it is) */
  String,
  /** inside a number (`phase`, as json-chars.ts's numberStep) */
  Number,
  /** inside true, false or null (`literal`, `count` characters read) */
  Literal,
  /** the top-level object is closed: nothing more may follow */
  Done,
}

const LITERALS = ['true', 'false', 'null'] as const;

export interface JsonPrefixOptions {
  /** most whitespace characters in a row outside strings (default 32) */
  maxWhitespace?: number;
  /** most line breaks (\n) among them (default 1) */
  maxNewlines?: number;
}

export class JsonPrefix {
  private mode: Mode = Mode.Start;
  /** open containers, innermost last: 'o' object, 'a' array */
  private stack = '';
  private inKey = false;
  private esc: Escape = 0;
  private phase = 0;
  private count = 0;
  private literal = 0;
  private spaces = 0;
  private newlines = 0;
  private readonly maxWhitespace: number;
  private readonly maxNewlines: number;

  constructor(opts: JsonPrefixOptions = {}) {
    this.maxWhitespace = opts.maxWhitespace ?? 32;
    this.maxNewlines = opts.maxNewlines ?? 1;
  }

  /** An independent copy (candidates are tried on copies). */
  clone(): JsonPrefix {
    return new JsonPrefix({ maxWhitespace: this.maxWhitespace, maxNewlines: this.maxNewlines }).copyFrom(this);
  }

  /** Makes this state equal to `other`, made with the same options (a scratch state reused for many checks allocates nothing). */
  copyFrom(other: JsonPrefix): this {
    this.mode = other.mode;
    this.stack = other.stack;
    this.inKey = other.inKey;
    this.esc = other.esc;
    this.phase = other.phase;
    this.count = other.count;
    this.literal = other.literal;
    this.spaces = other.spaces;
    this.newlines = other.newlines;
    return this;
  }

  /** The whole state as a string: two states with the same key accept the same texts. */
  get key(): string {
    return `${this.mode},${this.stack},${this.inKey ? 1 : 0},${this.esc},${this.phase},${this.count},${this.literal},${this.spaces},${this.newlines},${this.maxWhitespace},${this.maxNewlines}`;
  }

  /** the top-level object is complete */
  get complete(): boolean {
    return this.mode === Mode.Done;
  }

  /** inside a string (where a character still being decoded, U+FFFD for now, may go) */
  get inString(): boolean {
    return this.mode === Mode.String && this.esc === 0;
  }

  /** inside a string (a key's or a value's), escapes included */
  get inValueString(): boolean {
    return this.mode === Mode.String;
  }

  /** inside a string, no escape begun: a character a string takes as it is changes nothing */
  get plainRun(): boolean {
    return this.mode === Mode.String && this.esc === 0;
  }

  /**
   * Reads `text`; false as soon as a character makes the text impossible to complete as one JSON
   * object (this object's state is then unspecified: push onto a clone to keep the last good one).
   */
  push(text: string): boolean {
    for (let i = 0; i < text.length; i++) if (!this.char(text.charCodeAt(i))) return false;
    return true;
  }

  private space(c: number): boolean {
    if (c === 0x0a && ++this.newlines > this.maxNewlines) return false;
    return ++this.spaces <= this.maxWhitespace;
  }

  /** a value begins with c (in Value or ValueOrClose) */
  private startValue(c: number): boolean {
    switch (c) {
      case 0x7b: // {
        this.stack += 'o';
        this.mode = Mode.KeyOrClose;
        return true;
      case 0x5b: // [
        this.stack += 'a';
        this.mode = Mode.ValueOrClose;
        return true;
      case 0x22: // "
        this.mode = Mode.String;
        this.inKey = false;
        this.esc = 0;
        return true;
      case 0x74: // t
      case 0x66: // f
      case 0x6e: // n
        this.literal = c === 0x74 ? 0 : c === 0x66 ? 1 : 2;
        this.count = 1;
        this.mode = Mode.Literal;
        return true;
      default:
        // '-' or a digit begins a number
        this.phase = numberStep(0, c, false);
        if (this.phase === 0) return false;
        this.mode = Mode.Number;
        return true;
    }
  }

  /** an object's key begins with c (in KeyOrClose or Key) */
  private startKey(c: number): boolean {
    if (c !== 0x22) return false;
    this.mode = Mode.String;
    this.inKey = true;
    this.esc = 0;
    return true;
  }

  /** a value ended: what may follow depends on the container it is in */
  private endValue(): void {
    this.mode = this.stack.length === 0 ? Mode.Done : Mode.AfterValue;
  }

  /** c after a complete number: the number ends and c is read in AfterValue */
  private afterNumber(c: number): boolean {
    this.endValue();
    return this.char(c);
  }

  private char(c: number): boolean {
    if (this.mode !== Mode.String && !isSpace(c)) this.spaces = this.newlines = 0;
    switch (this.mode) {
      case Mode.Start:
        if (isSpace(c)) return this.space(c);
        if (c !== 0x7b) return false; // JSON mode's top level is an object
        this.stack = 'o';
        this.mode = Mode.KeyOrClose;
        return true;
      case Mode.Value:
        if (isSpace(c)) return this.space(c);
        return this.startValue(c);
      case Mode.ValueOrClose:
        if (isSpace(c)) return this.space(c);
        if (c === 0x5d) return this.close('a');
        return this.startValue(c);
      case Mode.KeyOrClose:
        if (isSpace(c)) return this.space(c);
        if (c === 0x7d) return this.close('o');
        return this.startKey(c);
      case Mode.Key:
        if (isSpace(c)) return this.space(c);
        return this.startKey(c);
      case Mode.Colon:
        if (isSpace(c)) return this.space(c);
        if (c !== 0x3a) return false;
        this.mode = Mode.Value;
        return true;
      case Mode.AfterValue: {
        if (isSpace(c)) return this.space(c);
        const inner = this.stack[this.stack.length - 1];
        if (c === 0x2c) {
          this.mode = inner === 'o' ? Mode.Key : Mode.Value;
          return true;
        }
        if (c === 0x7d) return this.close('o');
        if (c === 0x5d) return this.close('a');
        return false;
      }
      case Mode.String: {
        if (this.esc === 0 && c === 0x22) {
          if (this.inKey) this.mode = Mode.Colon;
          else this.endValue();
          return true;
        }
        // control characters must be escaped; an escape is \" \\ \/ \b \f \n \r \t or \uXXXX
        const esc = nextEscape(this.esc, c);
        if (esc < 0) return false;
        this.esc = esc;
        return true;
      }
      case Mode.Number: {
        const phase = numberStep(this.phase, c, false);
        if (phase > 0) {
          this.phase = phase;
          return true;
        }
        return numberComplete(this.phase, false) && this.afterNumber(c);
      }
      case Mode.Literal: {
        const word = LITERALS[this.literal];
        if (c !== word.charCodeAt(this.count)) return false;
        if (++this.count === word.length) this.endValue();
        return true;
      }
      case Mode.Done:
        return false;
    }
  }

  private close(kind: 'o' | 'a'): boolean {
    if (this.stack[this.stack.length - 1] !== kind) return false;
    this.stack = this.stack.slice(0, -1);
    this.endValue();
    return true;
  }
}
