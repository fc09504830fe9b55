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
 * object or array is read as JSON, and `null` is null (what vLLM's qwen3_coder parser does), as is
 * Python's `None` (what the template writes for null) where the value may be null or is no string. A
 * parameter the schema does not name, or a function not among the tools, keeps its values as
 * text. Its template also has `<tool_call>`, so it is told from Hermes's by `<function=` and
 * `<parameter=`.
 *
 * A block the model opens is held (heldPattern, a regular expression the decoder follows after
 * the tag): a function among the tools, parameters among its properties, each value of its type
 * (an integer, a number, a boolean, one of an enum; other values any text that does not hold
 * `</parameter>` or `</tool_call>`, so the block ends where its reader finds the end), then
 * `</function>` and `</tool_call>`, with at most as many parameter blocks as the function has
 * parameters (where the automaton of that bound is too large, without it). Which parameters are required, that each comes once, and the form of object and
 * array values, are not held.
 */
import type { FunctionTool } from '../call-schema.js';
import type { ParsedCall, ToolCallFormat } from './format.js';
import { nullable, propertiesOf, typeOf, valueOf } from './qwen3-coder-values.js';
import { Qwen3CoderCallStream } from './qwen3-coder-stream.js';
import { heldCallPattern, type TaggedCallLayout } from './pattern-text.js';

const FUNCTION = /<function=([^>\n]+)>([\s\S]*?)(?:<\/function>|$)/g;
const PARAMETER = /<parameter=([^>\n]+)>([\s\S]*?)(?:<\/parameter>|(?=<parameter=)|$)/g;

export const qwen3Coder: ToolCallFormat = {
  name: 'qwen3_coder',
  start: '<tool_call>',
  end: '</tool_call>',
  heldPattern: callPattern,
  streamer: (tools, open) => new Qwen3CoderCallStream(tools, open),
  parse(body, tools) {
    const calls: ParsedCall[] = [];
    for (const [, rawName, inside] of body.matchAll(FUNCTION)) {
      const name = rawName.trim();
      if (name.length === 0) return null;
      const properties = propertiesOf(tools.find((t) => t.name === name));
      const args: Record<string, unknown> = {};
      for (const [, rawKey, rawValue] of inside.matchAll(PARAMETER)) {
        const key = rawKey.trim();
        args[key] = valueOf(rawValue.replace(/^\n/, '').replace(/\n$/, ''), typeOf(properties?.[key]), nullable(properties?.[key]));
      }
      calls.push({ name, arguments: JSON.stringify(args) });
    }
    return calls.length > 0 ? calls : null;
  },
  detect: (template) => template.includes('<function=') && template.includes('<parameter='),
};

/** A call as Qwen3-Coder's template lays it out; values: booleans and None as Python writes them (`|string`), null also as JSON's. */
const LAYOUT: TaggedCallLayout = {
  prefix: '\\n',
  open: (name) => `<function=${name}>\\n`,
  argument: (keys, value) => `<parameter=${keys}>\\n${value}\\n<\\/parameter>\\n`,
  anyKey: '[^>\\n<]+',
  suffix: '<\\/function>\\n<\\/tool_call>',
  endTags: ['</parameter>', '</tool_call>'],
  values: {
    null: 'null|None',
    boolean: '[Tt]rue|[Ff]alse',
    integer: '-?\\d+',
    member: (v) => (v === null ? 'null' : typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v)),
  },
};

/** What a held block holds after `<tool_call>` (heldCallPattern). */
function callPattern(tools: readonly FunctionTool[], bounded = true): string {
  return heldCallPattern(tools, bounded, LAYOUT);
}
