/**
 * Pieces of the regular expressions that hold a tagged tool-call block to the tools' calls
 * (ToolCallFormat.heldPattern: Qwen3-Coder's and GLM-4.5's formats): a text matched as itself, any
 * text that does not hold the format's closing tags, and a typed value as the format writes it.
 */
import { DFA, JS, NFA } from 'refa';
import { nullable, typeOf } from './qwen3-coder-values.js';

/** a regex's special characters escaped, so the text matches itself */
export const literal = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

const freeTexts = new Map<string, string>();

/**
 * Any text that does not hold one of `tags`: the complement of the texts that do, as refa builds
 * it (a regex for "not containing" is long to write by hand and easy to get wrong). Built once per
 * set of tags.
 */
export function textWithout(tags: readonly string[]): string {
  const key = JSON.stringify(tags);
  let text = freeTexts.get(key);
  if (text === undefined) {
    const { expression, maxCharacter } = JS.Parser.fromLiteral({ source: `[^]*(?:${tags.map(literal).join('|')})[^]*`, flags: 'u' }).parse();
    const dfa = DFA.fromFA(NFA.fromRegex(expression, { maxCharacter }));
    dfa.complement();
    dfa.minimize();
    text = JS.toLiteral(dfa.toRegex()).source;
    freeTexts.set(key, text);
  }
  return text;
}

/** How a format writes a typed value as text (Qwen3-Coder's template: Python's; GLM-4.5's: JSON). */
export interface ValueWriting {
  /** what a null is written as (a regex's alternatives) */
  null: string;
  /** a boolean (a regex) */
  boolean: string;
  /** an integer (a regex) */
  integer: string;
  /** a member of an enum, as written */
  member(value: string | number | boolean | null): string;
}

/** a number's optional fraction and exponent, after its integer part */
const FRACTION_EXPONENT = '(?:\\.\\d+)?(?:[eE][-+]?\\d+)?';

/**
 * A parameter's value as the format writes it, where its schema gives it a form a regex holds:
 * one of an enum, an integer, a number or a boolean (null also where the type allows it); null:
 * any text (a string, an object, an array, no type).
 */
export function typedValuePattern(property: unknown, writing: ValueWriting): string | null {
  const p = property !== null && typeof property === 'object' ? (property as { enum?: unknown }) : {};
  const orNull = nullable(property) ? `|${writing.null}` : '';
  if (Array.isArray(p.enum) && p.enum.length > 0 && p.enum.every((v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null)) {
    return `(?:${p.enum.map((v) => literal(writing.member(v as string | number | boolean | null))).join('|')}${orNull})`;
  }
  switch (typeOf(property)) {
    case 'integer':
    case 'int':
      return `(?:${writing.integer}${orNull})`;
    case 'number':
    case 'float':
      return `(?:${writing.integer}${FRACTION_EXPONENT}${orNull})`;
    case 'boolean':
    case 'bool':
      return `(?:${writing.boolean}${orNull})`;
    default:
      return null;
  }
}
