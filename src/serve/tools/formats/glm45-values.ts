/**
 * How GLM-4.5's calls give each argument's text its value (glm45.ts), as vLLM's glm45 parser reads
 * it. Shared by the reader of whole blocks and the one that streams them (glm45-stream.ts).
 */
import { tryJson } from './format.js';
import { nullable } from './qwen3-coder-values.js';

const STRING_TYPES = new Set(['string', 'str', 'text']);

/** Whether the schema declares the property a string (the first of a type list that is not "null"). */
export function declaredString(property: unknown): boolean {
  const p = property !== null && typeof property === 'object' ? (property as { type?: unknown }) : {};
  const declared = Array.isArray(p.type) ? p.type.find((x) => x !== 'null') : p.type;
  return typeof declared === 'string' && STRING_TYPES.has(declared.toLowerCase());
}

/**
 * A value's text as vLLM's glm45 parser reads it: as written where the schema declares the
 * parameter a string (or the text is one of its enum's strings), else as JSON where it is JSON,
 * else Python's True, False or None, else as written. A nullable string's `null` is null (the
 * template writes None as JSON).
 */
export function valueOf(text: string, property: unknown): unknown {
  const p = property !== null && typeof property === 'object' ? (property as { enum?: unknown }) : {};
  const t = text.trim();
  if (Array.isArray(p.enum) && p.enum.includes(text)) return text;
  if (declaredString(property) && !(nullable(property) && t === 'null')) return text;
  const json = tryJson(t);
  if (json !== undefined) return json;
  if (t === 'True' || t === 'False') return t === 'True';
  if (t === 'None') return null;
  return text;
}
