/**
 * MiniMax-M2's format (MiniMax-M2, M2.1: `minimax_m2` models): a block holds one call or more,
 *
 *   <minimax:tool_call>
 *   <invoke name="get_weather">
 *   <parameter name="city">Verona</parameter>
 *   <parameter name="days">3</parameter>
 *   </invoke>
 *   </minimax:tool_call>
 *
 * Its template writes a string value as its text and any other value as JSON, so each value is
 * read back with the type its schema gives it, as vLLM's minimax_m2 parser reads it
 * (minimax-m2-values.ts): `null` is null, then the first of integer, number, boolean, object,
 * array and string the text reads as; a parameter the schema does not name is text.
 *
 * A block the model opens is held (heldPattern) to the layout the template writes: one invoke or
 * more, each of a function among the tools, keys among its parameters, each value of its type
 * where the type is an integer, a number, a boolean or an enum (other values any text without the
 * block's closing tags), at most as many parameters as the function has. Which parameters are
 * required, that each comes once, and the form of object and array values are not held. A held
 * block's calls stream one by one, each when its `</invoke>` is written (minimax-m2-stream.ts), as
 * vLLM streams them.
 */
import type { FunctionTool } from '../call-schema.js';
import type { ToolCallFormat } from './format.js';
import { MinimaxM2CallStream } from './minimax-m2-stream.js';
import { invokesOf } from './minimax-m2-values.js';
import { heldCallPattern, JSON_VALUES, type TaggedCallLayout } from './pattern-text.js';

export const minimaxM2: ToolCallFormat = {
  name: 'minimax_m2',
  start: '<minimax:tool_call>',
  end: '</minimax:tool_call>',
  heldPattern: callPattern,
  streamer: (tools, open) => new MinimaxM2CallStream(tools, open),
  parse(body, tools) {
    const calls = invokesOf(body, tools);
    return calls.length > 0 ? calls : null;
  },
  detect: (template) => template.includes('<minimax:tool_call>'),
};

/** Calls as MiniMax-M2's template lays them out; values: a string as its text, anything else as JSON (`v | tojson if v is not string else v`). */
const LAYOUT: TaggedCallLayout = {
  prefix: '\\n',
  open: (name) => `<invoke name="${name}">\\n`,
  argument: (keys, value) => `<parameter name="${keys}">${value}<\\/parameter>\\n`,
  anyKey: '[^"<>\\n]+',
  callClose: '<\\/invoke>\\n',
  suffix: '<\\/minimax:tool_call>',
  endTags: ['</parameter>', '</invoke>', '</minimax:tool_call>'],
  values: JSON_VALUES,
};

/** What a held block holds after `<minimax:tool_call>` (heldCallPattern). */
function callPattern(tools: readonly FunctionTool[], bounded = true): string {
  return heldCallPattern(tools, bounded, LAYOUT);
}
