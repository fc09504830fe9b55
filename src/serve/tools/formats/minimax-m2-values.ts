/**
 * How MiniMax-M2's calls are read (minimax-m2.ts): each `<invoke name="…">` with its
 * `<parameter name="…">` values, and each value's text given the type its schema says, as vLLM's
 * minimax_m2 parser reads it. Shared by the reader of whole blocks and the one that streams them
 * (minimax-m2-stream.ts).
 */
import type { FunctionTool } from '../call-schema.js';
import type { ParsedCall } from './format.js';
import { tryJson } from './format.js';
import { propertiesOf } from './qwen3-coder-values.js';

/** an invoke, to its `</invoke>` (or the end of a block cut short) */
const INVOKE = /<invoke name=([^>]*)>([\s\S]*?)(?:<\/invoke>|$)/g;
const PARAMETER = /<parameter name=([^>]*)>([\s\S]*?)(?:<\/parameter>|$)/g;

/** A name as written in its attribute: quoted (either quote) or bare. */
export function attributeName(text: string): string {
  const t = text.trim();
  return (t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'")) ? t.slice(1, -1) : t;
}

/** The calls of a block's text (between its tags), in order; invokes without a name are skipped. */
export function invokesOf(body: string, tools: readonly FunctionTool[]): ParsedCall[] {
  const calls: ParsedCall[] = [];
  for (const [, rawName, inside] of body.matchAll(INVOKE)) {
    const name = attributeName(rawName);
    if (name.length === 0) continue;
    calls.push({ name, arguments: JSON.stringify(argumentsOf(inside, tools.find((t) => t.name === name))) });
  }
  return calls;
}

/** The arguments of one invoke's text (after its opening tag), typed by the tool's schema. */
export function argumentsOf(inside: string, tool: FunctionTool | undefined): Record<string, unknown> {
  const properties = propertiesOf(tool);
  const args: Record<string, unknown> = {};
  for (const [, rawKey, rawValue] of inside.matchAll(PARAMETER)) {
    const key = attributeName(rawKey);
    args[key] = valueOf(rawValue.trim(), typesOf(properties?.[key]));
  }
  return args;
}

/** The types a property's schema allows (its type or type list, its enum's values, anyOf / oneOf / allOf); ["string"] where it gives none. */
export function typesOf(schema: unknown): string[] {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return ['string'];
  const s = schema as Record<string, unknown>;
  const types = new Set<string>();
  if (typeof s.type === 'string') types.add(s.type);
  else if (Array.isArray(s.type)) for (const t of s.type) if (typeof t === 'string') types.add(t);
  if (Array.isArray(s.enum)) {
    for (const v of s.enum) {
      types.add(v === null ? 'null' : typeof v === 'boolean' ? 'boolean' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v === 'string' ? 'string' : Array.isArray(v) ? 'array' : 'object');
    }
  }
  for (const key of ['anyOf', 'oneOf', 'allOf']) if (Array.isArray(s[key])) for (const choice of s[key] as unknown[]) for (const t of typesOf(choice)) types.add(t);
  return types.size > 0 ? [...types] : ['string'];
}

/** the order the types are tried in: the most specific first, text last */
const PRIORITY = ['integer', 'int', 'number', 'float', 'boolean', 'bool', 'object', 'array', 'string', 'str', 'text'];

/**
 * A value's text as the first of its types it reads as, tried integer, number, boolean, object,
 * array, then string (which takes any text); `null`, `none` or `nil` (any case) is null; where no
 * type fits, JSON where it is JSON, else the text.
 */
export function valueOf(text: string, types: readonly string[]): unknown {
  if (['null', 'none', 'nil'].includes(text.toLowerCase())) return null;
  const allowed = new Set(types.map((t) => t.toLowerCase()));
  for (const type of PRIORITY) {
    if (!allowed.has(type)) continue;
    switch (type) {
      case 'string':
      case 'str':
      case 'text':
        return text;
      case 'integer':
      case 'int':
        if (/^[-+]?\d+$/.test(text.trim()) && Number.isSafeInteger(Number(text))) return Number(text);
        break;
      case 'number':
      case 'float':
        if (/^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(text.trim()) && Number.isFinite(Number(text))) return Number(text);
        break;
      case 'boolean':
      case 'bool': {
        const t = text.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(t)) return true;
        if (['false', '0', 'no', 'off'].includes(t)) return false;
        break;
      }
      default: {
        const json = tryJson(text);
        if (json !== undefined) return json;
      }
    }
  }
  const json = tryJson(text);
  return json === undefined ? text : json;
}
