/**
 * A strict JSON parser (RFC 8259, the grammar serde_json accepts) for safetensors headers and
 * shard indexes. `JSON.parse` is not enough for either:
 *  - it silently keeps the last of duplicate keys, and the format forbids duplicates;
 *  - it turns integer literals into doubles, so 2^64−2 and 2^64−1 become the same number, and
 *    overflow checks on shapes and offsets would be wrong. Numbers here keep their literal text;
 *  - it makes `__proto__` an ordinary key only by a subtle rule; objects here are `Map`s.
 * Nesting is capped (serde_json's default recursion limit is 128) so hostile input cannot blow
 * the stack.
 */
import { RfidMoeError } from '../errors.js';

/** A number literal, kept verbatim. */
export class JsonNumber {
  constructor(readonly text: string) {}

  /** The value as a non-negative integer, or undefined if the literal is not one (no sign, fraction or exponent). */
  asUnsignedBigInt(): bigint | undefined {
    return /^(?:0|[1-9][0-9]*)$/.test(this.text) ? BigInt(this.text) : undefined;
  }

  toNumber(): number {
    return Number(this.text);
  }
}

export type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | JsonObject;
/** Objects keep key order (insertion order of the Map) and never hold duplicate keys. */
export type JsonObject = Map<string, JsonValue>;

export class JsonSyntaxError extends RfidMoeError {
  readonly kind = 'JsonSyntaxError';
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at character ${position}`);
  }
}

export const MAX_JSON_DEPTH = 128;

const NUMBER_PATTERN = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  private pos = 0;

  constructor(private readonly text: string) {}

  parseDocument(): JsonValue {
    this.skipWhitespace();
    const value = this.parseValue(0);
    this.skipWhitespace();
    if (this.pos !== this.text.length) this.fail('trailing characters after the JSON value');
    return value;
  }

  private fail(message: string): never {
    throw new JsonSyntaxError(message, this.pos);
  }

  private skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++;
      else break;
    }
    this.pos = pos;
  }

  private parseValue(depth: number): JsonValue {
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b /* { */:
        return this.parseObject(depth + 1);
      case 0x5b /* [ */:
        return this.parseArray(depth + 1);
      case 0x22 /* " */:
        return this.parseString();
      case 0x74 /* t */:
        return this.parseLiteral('true', true);
      case 0x66 /* f */:
        return this.parseLiteral('false', false);
      case 0x6e /* n */:
        return this.parseLiteral('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
        if (Number.isNaN(c)) this.fail('unexpected end of input');
        this.fail(`unexpected character ${JSON.stringify(this.text[this.pos])}`);
    }
  }

  private parseLiteral<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail(`invalid literal (expected ${word})`);
    this.pos += word.length;
    return value;
  }

  private parseNumber(): JsonNumber {
    NUMBER_PATTERN.lastIndex = this.pos;
    const match = NUMBER_PATTERN.exec(this.text);
    if (match === null) this.fail('invalid number');
    this.pos += match[0].length;
    return new JsonNumber(match[0]);
  }

  private parseString(): string {
    const text = this.text;
    let pos = this.pos + 1; // opening quote
    let out = '';
    let chunkStart = pos;
    for (;;) {
      if (pos >= text.length) {
        this.pos = pos;
        this.fail('unterminated string');
      }
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(chunkStart, pos);
        this.pos = pos + 1;
        return out;
      }
      if (c < 0x20) {
        this.pos = pos;
        this.fail('control character in string (must be escaped)');
      }
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(chunkStart, pos);
      const e = text[pos + 1];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          pos += 2;
          break;
        case 'b':
          out += '\b';
          pos += 2;
          break;
        case 'f':
          out += '\f';
          pos += 2;
          break;
        case 'n':
          out += '\n';
          pos += 2;
          break;
        case 'r':
          out += '\r';
          pos += 2;
          break;
        case 't':
          out += '\t';
          pos += 2;
          break;
        case 'u': {
          const unit = this.hex4(pos + 2);
          pos += 6;
          if (unit >= 0xdc00 && unit <= 0xdfff) {
            this.pos = pos - 6;
            this.fail('lone low surrogate in \\u escape');
          }
          if (unit >= 0xd800 && unit <= 0xdbff) {
            // serde_json (like Rust strings) requires a full surrogate pair.
            const low = text.startsWith('\\u', pos) ? this.hex4(pos + 2) : -1;
            if (low < 0xdc00 || low > 0xdfff) {
              this.pos = pos - 6;
              this.fail('lone high surrogate in \\u escape');
            }
            out += String.fromCharCode(unit, low);
            pos += 6;
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          this.pos = pos;
          this.fail('invalid escape in string');
      }
      chunkStart = pos;
    }
  }

  private hex4(at: number): number {
    const digits = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) {
      this.pos = at;
      this.fail('invalid \\u escape (need 4 hex digits)');
    }
    return parseInt(digits, 16);
  }

  private enter(depth: number): void {
    if (depth > MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
  }

  private parseArray(depth: number): JsonValue[] {
    this.enter(depth);
    this.pos++; // [
    const items: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return items;
    }
    for (;;) {
      this.skipWhitespace();
      items.push(this.parseValue(depth));
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c) {
        this.pos++;
        continue;
      }
      if (c === 0x5d) {
        this.pos++;
        return items;
      }
      this.fail("expected ',' or ']' in array");
    }
  }

  private parseObject(depth: number): JsonObject {
    this.enter(depth);
    this.pos++; // {
    const object: JsonObject = new Map();
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return object;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail('expected a string key in object');
      const keyPosition = this.pos;
      const key = this.parseString();
      if (object.has(key)) {
        this.pos = keyPosition;
        this.fail(`duplicate key ${JSON.stringify(key)}`);
      }
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail("expected ':' after object key");
      this.pos++;
      this.skipWhitespace();
      object.set(key, this.parseValue(depth));
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c) {
        this.pos++;
        continue;
      }
      if (c === 0x7d) {
        this.pos++;
        return object;
      }
      this.fail("expected ',' or '}' in object");
    }
  }
}

/** Parse a complete JSON document; throws `JsonSyntaxError` (with the position) on anything invalid. */
export function parseStrictJson(text: string): JsonValue {
  return new Parser(text).parseDocument();
}

export function isJsonObject(value: JsonValue): value is JsonObject {
  return value instanceof Map;
}

/** Human description of a JSON value's type for error messages. */
export function jsonTypeName(value: JsonValue): string {
  if (value === null) return 'null';
  if (value instanceof Map) return 'object';
  if (value instanceof JsonNumber) return 'number';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
