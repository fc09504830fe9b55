/**
 * GLM-4.5's format (GLM-4.5, GLM-4.6, GLM-4.5-Air: `glm4_moe` models): each call is one block,
 *
 *   <tool_call>get_weather
 *   <arg_key>city</arg_key>
 *   <arg_value>Verona</arg_value>
 *   </tool_call>
 *
 * the function's name on the tag's line, then a key and a value per argument. Its template writes
 * a string value as its text and any other value as JSON, so a value is read back as vLLM's glm45
 * parser reads it: as text where the tool's schema declares the parameter a string, otherwise as
 * JSON where it is JSON (else Python's True, False and None, else the text). Several calls are
 * several blocks. Its template also holds `<tool_call>`, so it is told from Hermes's by `<arg_key>`.
 *
 * A block the model opens is held (heldPattern) to the layout the template writes: a function
 * among the tools, keys among its parameters, each value of its type where the type is an integer,
 * a number, a boolean or an enum (other values any text that does not hold `</arg_value>` or
 * `</tool_call>`), at most as many arguments as the function has parameters. Which are required,
 * that each comes once, and the form of object and array values are not held. A held block's call
 * streams as it is written (glm45-stream.ts).
 */
import type { FunctionTool } from '../call-schema.js';
import type { ParsedCall, ToolCallFormat } from './format.js';
import { heldCallPattern, JSON_VALUES, type TaggedCallLayout } from './pattern-text.js';
import { Glm45CallStream } from './glm45-stream.js';
import { valueOf } from './glm45-values.js';
import { propertiesOf } from './qwen3-coder-values.js';

const ARGUMENT = /<arg_key>([\s\S]*?)<\/arg_key>\s*<arg_value>([\s\S]*?)(?:<\/arg_value>|$)/g;

export const glm45: ToolCallFormat = {
  name: 'glm45',
  start: '<tool_call>',
  end: '</tool_call>',
  heldPattern: callPattern,
  streamer: (tools, open) => new Glm45CallStream(tools, open),
  parse(body, tools) {
    const at = body.indexOf('<arg_key>');
    const name = (at < 0 ? body : body.slice(0, at)).trim();
    // a name is one line of text, not JSON (that would be Hermes's block) nor another tag
    if (name.length === 0 || /[\n<>{}"]/.test(name)) return null;
    const properties = propertiesOf(tools.find((t) => t.name === name));
    const args: Record<string, unknown> = {};
    if (at >= 0) {
      const rest = body.slice(at);
      let read = 0;
      for (const m of rest.matchAll(ARGUMENT)) {
        if (rest.slice(read, m.index).trim() !== '') return null;
        read = m.index + m[0].length;
        args[m[1].trim()] = valueOf(m[2], properties?.[m[1].trim()]);
      }
      if (rest.slice(read).trim() !== '') return null;
    }
    const call: ParsedCall = { name, arguments: JSON.stringify(args) };
    return [call];
  },
  detect: (template) => template.includes('<tool_call>') && template.includes('<arg_key>'),
};

/** A call as GLM-4.5's template lays it out; values: a string as its text, anything else as JSON (`v | tojson if v is not string else v`). */
const LAYOUT: TaggedCallLayout = {
  prefix: '',
  open: (name) => `${name}\\n`,
  argument: (keys, value) => `<arg_key>${keys}<\\/arg_key>\\n<arg_value>${value}<\\/arg_value>\\n`,
  anyKey: '[^<>\\n]+',
  suffix: '<\\/tool_call>',
  endTags: ['</arg_value>', '</tool_call>'],
  values: JSON_VALUES,
};

/** What a held block holds after `<tool_call>` (heldCallPattern). */
function callPattern(tools: readonly FunctionTool[], bounded = true): string {
  return heldCallPattern(tools, bounded, LAYOUT);
}
