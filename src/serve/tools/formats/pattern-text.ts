/**
 * Pieces of the regular expressions that hold a tagged tool-call block to the tools' calls
 * (ToolCallFormat.heldPattern: Qwen3-Coder's and GLM-4.5's formats): a text matched as itself, any
 * text that does not hold the format's closing tags, a typed value as the format writes it, and
 * the whole call built from a format's layout.
 */
import { DFA, JS, NFA } from 'refa';
import type { FunctionTool } from '../call-schema.js';
import { nullable, propertiesOf, typeOf } from './qwen3-coder-values.js';

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

/** Values as templates write them with `v | tojson if v is not string else v` (GLM-4.5's, MiniMax-M2's): a string as its text, anything else as JSON. */
export const JSON_VALUES: ValueWriting = {
  null: 'null',
  boolean: 'true|false',
  integer: '-?(?:0|[1-9]\\d*)',
  member: (v) => (typeof v === 'string' ? v : JSON.stringify(v)),
};

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

/** How a tagged format lays one call out after its block's start tag (each piece a regex). */
export interface TaggedCallLayout {
  /** before the function: the same for every function */
  prefix: string;
  /** the function's opening, from its name (escaped) */
  open(name: string): string;
  /** one argument, from its key (a regex of one or more names) and its value */
  argument(keys: string, value: string): string;
  /** a key the schema does not name */
  anyKey: string;
  /** after the last argument, to the block's end */
  suffix: string;
  /**
   * where a block holds one call or more (MiniMax-M2's invokes): what closes each call, after its
   * last argument; the calls then repeat, and `suffix` follows the last. Absent: one call a block.
   */
  callClose?: string;
  /** the closing tags a free-text value may not hold */
  endTags: readonly string[];
  /** how typed values are written */
  values: ValueWriting;
}

/**
 * What a held block holds after its start tag: one call of one of the tools (one or more, where the
 * layout closes each: `callClose`), each argument a key
 * among its parameters with a value of its type (typedValuePattern; other values any text without
 * the end tags), then the end. `bounded`: at most as many arguments as the function has parameters
 * (a model that repeats one must close the call); the automaton then repeats the function's
 * arguments that many times, so a large tool set is held unbounded instead (tool-choice.ts).
 * Which parameters are required, that each comes once, and the form of object and array values
 * are not held.
 */
export function heldCallPattern(tools: readonly FunctionTool[], bounded: boolean, layout: TaggedCallLayout): string {
  const free = `(?:${textWithout(layout.endTags)})`;
  const functions = tools.map((tool) => {
    const properties = Object.entries(propertiesOf(tool) ?? {});
    const blocks: string[] = [];
    // parameters of any text share one alternative (the free text's pattern is long: once per function)
    const textKeys: string[] = [];
    for (const [key, schema] of properties) {
      const value = typedValuePattern(schema, layout.values);
      if (value === null) textKeys.push(literal(key));
      else blocks.push(layout.argument(literal(key), value));
    }
    if (textKeys.length > 0) blocks.push(layout.argument(`(?:${textKeys.join('|')})`, free));
    // a function whose schema names no parameter: any key, any text
    if (properties.length === 0) blocks.push(layout.argument(layout.anyKey, free));
    return `${layout.open(literal(tool.name))}(?:${blocks.join('|')})${bounded ? `{0,${properties.length || 64}}` : '*'}`;
  });
  const call = `(?:${functions.join('|')})`;
  return layout.callClose === undefined ? `${layout.prefix}${call}${layout.suffix}` : `${layout.prefix}(?:${call}${layout.callClose})+${layout.suffix}`;
}
