/**
 * The Hermes format (NousResearch's Hermes 2 Pro, and the Qwen2.5 / Qwen3 families, Qwen3-MoE
 * included): each call is `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`; several
 * calls are several blocks. The JSON of a block the model opens is held to the tools' schemas.
 */
import { callFromJson, tryJson, type ToolCallFormat } from './format.js';
import { jsonCallsStreamer } from '../streamed-calls.js';

export const hermes: ToolCallFormat = {
  name: 'hermes',
  start: '<tool_call>',
  end: '</tool_call>',
  heldCall: 'one',
  streamer: jsonCallsStreamer(false),
  parse(body) {
    const call = callFromJson(tryJson(body.trim()));
    return call ? [call] : null;
  },
  // GLM-4.5's templates hold <tool_call> too, around <arg_key>/<arg_value> pairs, not JSON: not this format
  detect: (template) => template.includes('<tool_call>') && !template.includes('<arg_key>'),
};
