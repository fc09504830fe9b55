/**
 * How Qwen3-Coder's calls give each parameter's text its type (qwen3-coder.ts): the tool's schema
 * says it, as in vLLM's qwen3_coder parser. Shared by the reader of whole blocks and the one that
 * streams them (qwen3-coder-stream.ts).
 */
import type { FunctionTool } from '../call-schema.js';

export const INTEGER_TYPES = new Set(['integer', 'int', 'long', 'short', 'uint', 'int32', 'int64']);
export const NUMBER_TYPES = new Set(['number', 'float', 'double', 'decimal']);
export const BOOLEAN_TYPES = new Set(['boolean', 'bool']);
export const JSON_TYPES = new Set(['object', 'array', 'dict', 'list']);

export function propertiesOf(tool: FunctionTool | undefined): Record<string, unknown> | undefined {
  const props = tool?.parameters?.properties;
  return props !== null && typeof props === 'object' && !Array.isArray(props) ? (props as Record<string, unknown>) : undefined;
}

/** A property's type, lower-cased ("string" where none is given; the first of a list that is not "null"). */
export function typeOf(property: unknown): string | null {
  if (property === undefined) return null;
  if (property === null || typeof property !== 'object') return 'string';
  const type = (property as { type?: unknown }).type;
  if (typeof type === 'string') return type.toLowerCase();
  if (Array.isArray(type)) {
    const first = type.find((t) => typeof t === 'string' && t !== 'null');
    return typeof first === 'string' ? first.toLowerCase() : 'string';
  }
  return 'string';
}

/** whether a property's type list allows null */
export function nullable(property: unknown): boolean {
  const type = property !== null && typeof property === 'object' ? (property as { type?: unknown }).type : undefined;
  return Array.isArray(type) && type.includes('null');
}

/** A parameter's text as the value its type says (null type: a parameter the schema does not name, kept as text). */
export function valueOf(text: string, type: string | null, mayBeNull: boolean): unknown {
  if (type === null) return text;
  const t = text.trim();
  // "null" as vLLM reads it; Python's None (what a template writes for it) where the value may be null or cannot be text
  if (t.toLowerCase() === 'null' || (t === 'None' && (mayBeNull || type !== 'string'))) return null;
  if (INTEGER_TYPES.has(type)) return /^-?\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : text;
  if (NUMBER_TYPES.has(type)) return /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(t) && Number.isFinite(Number(t)) ? Number(t) : text;
  if (BOOLEAN_TYPES.has(type)) return t.toLowerCase() === 'true' ? true : t.toLowerCase() === 'false' ? false : text;
  if (JSON_TYPES.has(type)) {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}
