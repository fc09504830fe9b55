/**
 * The JSON schemas a forced tool call is generated under. A named function (`tool_choice:
 * {"type": "function", …}`) is held to its `parameters`; `tool_choice: "required"` to a call of any
 * of the tools, `{"name": …, "arguments": …}`, or a non-empty array of such calls when parallel
 * calls are allowed. Each function's parameters are checked on their own first, so that a schema
 * the generation cannot follow is a 400 naming that tool, not a place in the combined schema.
 */
import { compileSchema, SchemaError, type TopLevel } from '../../runtime/generation/json-schema.js';
import { badRequest } from '../errors.js';

/** A function tool as the request gives it. */
export interface FunctionTool {
  name: string;
  description?: string | null;
  parameters?: Record<string, unknown> | null;
  strict?: boolean | null;
}

/** The arguments a function takes: its parameters, or any object where they say nothing. */
export function argumentsSchema(tool: FunctionTool): Record<string, unknown> {
  const p = tool.parameters;
  // OpenAI's "parameters omitted: a function with an empty parameter list" (and {} alike)
  if (p === null || p === undefined || Object.keys(p).length === 0) return { type: 'object' };
  return p;
}

/** Each tool's arguments schema checked (compiled and kept): a 400 naming the first the generation cannot follow. */
export function assertToolSchemas(tools: readonly FunctionTool[]): void {
  tools.forEach((tool, i) => {
    try {
      compileSchema(argumentsSchema(tool), 'object');
    } catch (err) {
      if (err instanceof SchemaError) throw badRequest(`tools[${i}] (${tool.name}): its parameters ${err.message}`, `tools.${i}.function.parameters`, 'invalid_value');
      throw err;
    }
  });
}

/**
 * The schema of one call of any of `tools` (`parallel` false), or of a non-empty array of calls
 * (of one call when `array` but not `parallel`), and the top level it needs. Each tool's `$defs`/`definitions` move to the combined schema's
 * `$defs` under names of their own (its `$ref`s rewritten to match), since a `$ref` is resolved
 * against the whole schema.
 */
export function callsSchema(tools: readonly FunctionTool[], parallel: boolean, array = parallel): { schema: Record<string, unknown>; topLevel: TopLevel } {
  const defs: Record<string, unknown> = {};
  const options = tools.map((tool, i) => ({
    type: 'object',
    properties: { name: { const: tool.name }, arguments: hoistDefinitions(argumentsSchema(tool), `${i}`, defs) },
    required: ['name', 'arguments'],
    additionalProperties: false,
  }));
  const call = options.length === 1 ? options[0] : { anyOf: options };
  const withDefs = (s: Record<string, unknown>) => (Object.keys(defs).length > 0 ? { ...s, $defs: defs } : s);
  // (an array of one call where the format writes its calls as an array: Mistral's)
  if (array) return { schema: withDefs({ type: 'array', minItems: 1, ...(parallel ? {} : { maxItems: 1 }), items: call }), topLevel: 'any' };
  return { schema: withDefs(call), topLevel: 'object' };
}

/** A JSON pointer token (RFC 6901). */
const pointerToken = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * `schema` with its own definitions moved into `defs` as "<prefix>/<$defs|definitions>/<name>"
 * and the references to them rewritten. Only schema positions are walked (properties,
 * additionalProperties, items, anyOf, oneOf and the definitions), so an enum or const value that
 * happens to hold a "$ref" is left as it is.
 */
function hoistDefinitions(schema: Record<string, unknown>, prefix: string, defs: Record<string, unknown>): Record<string, unknown> {
  const rename = (kind: string, name: string) => `${prefix}/${kind}/${name}`;
  const walk = (s: unknown): unknown => {
    if (s === null || typeof s !== 'object' || Array.isArray(s)) return s;
    const out: Record<string, unknown> = { ...(s as Record<string, unknown>) };
    if (typeof out.$ref === 'string') {
      const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(out.$ref);
      if (m) out.$ref = `#/$defs/${pointerToken(rename(m[1], m[2].replace(/~1/g, '/').replace(/~0/g, '~')))}`;
    }
    if (isRecord(out.properties)) out.properties = Object.fromEntries(Object.entries(out.properties).map(([k, v]) => [k, walk(v)]));
    for (const key of ['additionalProperties', 'items'] as const) if (isRecord(out[key])) out[key] = walk(out[key]);
    for (const key of ['anyOf', 'oneOf'] as const) if (Array.isArray(out[key])) out[key] = (out[key] as unknown[]).map(walk);
    return out;
  };
  const top = walk(schema) as Record<string, unknown>;
  for (const kind of ['$defs', 'definitions'] as const) {
    const own = schema[kind];
    if (!isRecord(own)) continue;
    for (const [name, def] of Object.entries(own)) defs[rename(kind, name)] = walk(def);
    delete top[kind];
  }
  return top;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
