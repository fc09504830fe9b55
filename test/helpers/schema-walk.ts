/**
 * Random walks through a schema's constraint (schema-prefix.ts), for tests whose truth is an
 * outside validator (Ajv, Pydantic): each value written character by character, each character a
 * random one the constraint takes, so that a point where the constraint takes nothing and the
 * value is not complete (a dead end) shows.
 */
import type { SchemaNode } from '../../src/runtime/generation/json-schema.js';
import { SchemaPrefix } from '../../src/runtime/generation/schema-prefix.js';

/** The characters a random walk writes: JSON's structure, digits, the lower-case letters (keys, enums, literals), and escapes. */
const ALPHABET = [...'{}[]:,"0123456789abcdefghijklmnopqrstuvwxyz-.+Aé\\/'];
const CLOSERS = ['"', '}', ']'];

/** How a walk writes: its characters, its whitespace allowance, how soon it closes. */
export interface WalkOptions {
  /** characters longer than this: the walk gives up (null) */
  max?: number;
  /** `]` and `}` only where nothing else fits, so that arrays grow until the constraint lets no item more in */
  closeLast?: boolean;
  /** the characters tried (default: ALPHABET) */
  alphabet?: readonly string[];
  /** whitespace between tokens: at most this many characters, of which this many line breaks (default none) */
  whitespace?: [number, number];
  /** the text length over which closers come to be favoured (default 80) */
  closeAfter?: number;
}

/**
 * A value written character by character, each a random one the constraint takes (closers favoured
 * as the text grows, or last: WalkOptions); 'dead' where the constraint takes none of the alphabet
 * and the value is not complete, null where it grew past `max` characters.
 */
export function walk(node: SchemaNode, rand: () => number, options: WalkOptions = {}): string | 'dead' | null {
  const { max = 400, closeLast = false, alphabet = ALPHABET, whitespace = [0, 0], closeAfter = 80 } = options;
  let state = new SchemaPrefix(node, ...whitespace);
  let text = '';
  while (text.length < max) {
    let order = [...alphabet].sort(() => rand() - 0.5);
    // (closing what is open, more often as the text grows, keeps walks short: a top level open to other keys would otherwise wander)
    if (closeLast) order = [...order.filter((c) => c !== ']' && c !== '}'), ']', '}'];
    else if (rand() < Math.min(0.9, 0.3 + text.length / closeAfter)) order.unshift(...CLOSERS);
    let moved = false;
    for (const c of order) {
      const next = state.clone();
      if (!next.push(c)) continue;
      state = next;
      text += c;
      moved = true;
      break;
    }
    if (state.complete) return text;
    if (!moved) return 'dead';
  }
  return null;
}

/**
 * The schema a walk follows: a top level with properties and no word on other keys is closed to
 * them, so that walks write the dicts, not random keys beside them (what they write is valid under
 * the schema as given too).
 */
export const forWalks = (schema: object): object => {
  const o = schema as Record<string, unknown>;
  return o.properties !== undefined && o.additionalProperties === undefined && o.propertyNames === undefined && o.patternProperties === undefined ? { ...o, additionalProperties: false } : o;
};

