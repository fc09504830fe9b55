/**
 * Qwen3-Coder's format (Qwen3-Coder-30B-A3B and -480B-A35B, Qwen3-MoE models): a call is XML-like,
 *
 *   <tool_call>
 *   <function=get_weather>
 *   <parameter=city>
 *   Verona
 *   </parameter>
 *   </function>
 *   </tool_call>
 *
 * each parameter's value written as plain text, so its type comes from the tool's schema: a
 * string stays text, an integer, number or boolean is read as one where the text is one, an
 * object or array is read as JSON, and `null` is null (what vLLM's qwen3_coder parser does). A
 * parameter the schema does not name, or a function not among the tools, keeps its values as
 * text. Blocks are not held to the tools' schemas (they are not one JSON value). Its template
 * also has `<tool_call>`, so it is told from Hermes's by `<function=` and `<parameter=`.
 */
import type { FunctionTool } from '../call-schema.js';
import type { ParsedCall, ToolCallFormat } from './format.js';

const FUNCTION = /<function=([^>\n]+)>([\s\S]*?)(?:<\/function>|$)/g;
const PARAMETER = /<parameter=([^>\n]+)>([\s\S]*?)(?:<\/parameter>|(?=<parameter=)|$)/g;
const INTEGER_TYPES = new Set(['integer', 'int', 'long', 'short', 'uint', 'int32', 'int64']);
const NUMBER_TYPES = new Set(['number', 'float', 'double', 'decimal']);
const BOOLEAN_TYPES = new Set(['boolean', 'bool']);
const JSON_TYPES = new Set(['object', 'array', 'dict', 'list']);

export const qwen3Coder: ToolCallFormat = {
  name: 'qwen3_coder',
  start: '<tool_call>',
  end: '</tool_call>',
  parse(body, tools) {
    const calls: ParsedCall[] = [];
    for (const [, rawName, inside] of body.matchAll(FUNCTION)) {
      const name = rawName.trim();
      if (name.length === 0) return null;
      const properties = propertiesOf(tools.find((t) => t.name === name));
      const args: Record<string, unknown> = {};
      for (const [, rawKey, rawValue] of inside.matchAll(PARAMETER)) {
        const key = rawKey.trim();
        args[key] = valueOf(rawValue.replace(/^\n/, '').replace(/\n$/, ''), typeOf(properties?.[key]));
      }
      calls.push({ name, arguments: JSON.stringify(args) });
    }
    return calls.length > 0 ? calls : null;
  },
  detect: (template) => template.includes('<function=') && template.includes('<parameter='),
};

function propertiesOf(tool: FunctionTool | undefined): Record<string, unknown> | undefined {
  const props = tool?.parameters?.properties;
  return props !== null && typeof props === 'object' && !Array.isArray(props) ? (props as Record<string, unknown>) : undefined;
}

/** A property's type, lower-cased ("string" where none is given; the first of a list that is not "null"). */
function typeOf(property: unknown): string | null {
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

/** A parameter's text as the value its type says (null type: a parameter the schema does not name, kept as text). */
function valueOf(text: string, type: string | null): unknown {
  if (type === null) return text;
  const t = text.trim();
  if (t.toLowerCase() === 'null') return null;
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
