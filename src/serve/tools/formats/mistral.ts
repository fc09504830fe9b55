/**
 * Mistral's format (Mistral and Mixtral instruct models whose templates take tools): `[TOOL_CALLS]`
 * then a JSON array of {"name", "arguments"} objects, to the end of the message; the newer
 * tokenizers write `[TOOL_CALLS]name[ARGS]{…}` for each call instead. Both are read; neither is
 * held to the tools' schemas while written (the two forms begin alike, and the second is not one
 * JSON value).
 */
import { callFromJson, callWithArguments, tryJson, type ParsedCall, type ToolCallFormat } from './format.js';

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
        const value = tryJson(part);
        const list = Array.isArray(value) ? value : [value];
        if (list.length === 0) return null;
        for (const item of list) {
          const call = callFromJson(item);
          if (!call) return null;
          calls.push(call);
        }
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
};
