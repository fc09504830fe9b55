/**
 * Mistral's format (Mistral and Mixtral instruct models whose templates take tools): `[TOOL_CALLS]`
 * then a JSON array of {"name", "arguments"} objects, to the end of the message; the newer
 * tokenizers write `[TOOL_CALLS]name[ARGS]{…}` for each call instead. Both are read. Where the
 * model's template writes the array (Mixtral-8x22B's), the array the model opens is held to calls
 * of the tools, as Hermes's JSON is; where it writes `[ARGS]`, or the format is named on the
 * command line (the template unknown), the calls are not held (the second form is not one JSON
 * value, and the two begin alike).
 */
import { callsOfJson, callWithArguments, type ParsedCall, type ToolCallFormat } from './format.js';
import { jsonCallsStreamer } from '../streamed-calls.js';

const START = '[TOOL_CALLS]';
const ARGS = '[ARGS]';

export const mistral: ToolCallFormat = {
  name: 'mistral',
  start: START,
  end: null,
  parse(body) {
    const calls: ParsedCall[] = [];
    for (const part of body.split(START).map((p) => p.trim())) {
      if (part.length === 0) continue;
      if (part.startsWith('[') || part.startsWith('{')) {
        const listed = callsOfJson(part);
        if (!listed) return null;
        calls.push(...listed);
      } else {
        const at = part.indexOf(ARGS);
        if (at <= 0) return null;
        const call = callWithArguments(part.slice(0, at).trim(), part.slice(at + ARGS.length));
        if (!call) return null;
        calls.push(call);
      }
    }
    return calls.length > 0 ? calls : null;
  },
  detect: (template) => template.includes(START),
  forTemplate: (template) => (template.includes(ARGS) ? mistral : mistralArrays),
};

/** Mistral's format where the template writes the calls as one JSON array: held as it is written. */
const mistralArrays: ToolCallFormat = {
  ...mistral,
  heldCall: 'array',
  streamer: jsonCallsStreamer(true),
};
