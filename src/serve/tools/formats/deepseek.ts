/**
 * DeepSeek's format (DeepSeek-V3 and later MoE chat models, whose templates take tools), written in
 * the tokenizer's special tokens: `<｜tool▁calls▁begin｜>`, then per call
 * `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>` (V3, whose
 * template puts a line break between two calls) or
 * `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>` (V3.1 on), then
 * `<｜tool▁calls▁end｜>`. Both are read whichever the model writes.
 *
 * Where the chat template says which form it writes, a block the model opens is held to it
 * (heldTaggedJson: a function among the tools, its arguments one JSON object valid under its
 * parameters, then the tags; one call a block with parallel_tool_calls false), and its calls
 * stream as they are written (deepseek-stream.ts). `--tool-call-parser deepseek` without such a
 * template reads either form unheld, the block going out whole when it closes.
 */
import type { FunctionTool } from '../call-schema.js';
import { argumentsSchema } from '../call-schema.js';
import type { TaggedJsonCalls } from '../../../runtime/generation/tagged-json-prefix.js';
import { DeepSeekCallStream, type DeepSeekLayout } from './deepseek-stream.js';
import { callWithArguments, type ParsedCall, type ToolCallFormat } from './format.js';

/** The tags of the format (DeepSeek's tokenizer's tokens; the same layout in other tags for tests of a vocabulary without them). */
export interface DeepSeekTags {
  callsBegin: string;
  callsEnd: string;
  callBegin: string;
  callEnd: string;
  sep: string;
}

const DEEPSEEK_TAGS: DeepSeekTags = {
  callsBegin: '<｜tool▁calls▁begin｜>',
  callsEnd: '<｜tool▁calls▁end｜>',
  callBegin: '<｜tool▁call▁begin｜>',
  callEnd: '<｜tool▁call▁end｜>',
  sep: '<｜tool▁sep｜>',
};

/** V3's arguments: a JSON code block after the name's line */
const FENCED = /^([^\n]+)\n```(?:json)?\n([\s\S]*)\n```\s*$/;

/** The calls of a block's text in either form; null where it is not well-formed. */
function parseCalls(body: string, tags: DeepSeekTags): ParsedCall[] | null {
  const calls: ParsedCall[] = [];
  const parts = body.split(tags.callBegin);
  if (parts[0].trim() !== '') return null;
  for (const part of parts.slice(1)) {
    const at = part.indexOf(tags.callEnd);
    // the last call may be cut by the end of the generation; any text after a call's end is not a call
    const call = at < 0 ? part : part.slice(0, at);
    if (at >= 0 && part.slice(at + tags.callEnd.length).trim() !== '') return null;
    const sep = call.indexOf(tags.sep);
    if (sep < 0) return null;
    const before = call.slice(0, sep).trim();
    const after = call.slice(sep + tags.sep.length);
    const fenced = FENCED.exec(after);
    const [name, argsText] = fenced && before === 'function' ? [fenced[1].trim(), fenced[2]] : [before, after.trim()];
    const parsed = callWithArguments(name, argsText);
    if (!parsed) return null;
    calls.push(parsed);
  }
  return calls.length > 0 ? calls : null;
}

/**
 * The format in these tags: read in either form; `form` (V3's or V3.1's) also holds the blocks
 * the model opens to that form and streams their calls.
 */
export function deepseekStyle(tags: DeepSeekTags, form?: 'v3' | 'v3.1'): ToolCallFormat {
  const format: ToolCallFormat = {
    name: 'deepseek',
    start: tags.callsBegin,
    end: tags.callsEnd,
    parse: (body) => parseCalls(body, tags),
    detect: (template) => template.includes(tags.callsBegin),
  };
  if (form === undefined) return format;
  const layout: DeepSeekLayout =
    form === 'v3'
      ? // the call's type, then the name's line and the arguments in a JSON code block
        { open: `${tags.callBegin}function${tags.sep}`, nameEnd: '\n```json\n', after: `\n\`\`\`${tags.callEnd}`, separator: '\n' }
      : // the name, then the arguments as they are
        { open: tags.callBegin, nameEnd: tags.sep, after: tags.callEnd, separator: '' };
  return {
    ...format,
    heldTaggedJson: (tools: readonly FunctionTool[], parallel: boolean): TaggedJsonCalls => ({
      calls: tools.map((tool) => ({ open: `${layout.open}${tool.name}${layout.nameEnd}`, schema: argumentsSchema(tool) })),
      after: layout.after,
      separator: layout.separator,
      close: tags.callsEnd,
      repeat: parallel,
    }),
    streamer: (tools, open) => new DeepSeekCallStream(tools, open, layout),
  };
}

const deepseekV3 = deepseekStyle(DEEPSEEK_TAGS, 'v3');
const deepseekV31 = deepseekStyle(DEEPSEEK_TAGS, 'v3.1');

export const deepseek: ToolCallFormat = {
  ...deepseekStyle(DEEPSEEK_TAGS),
  // V3's template writes the call's type and a code block; V3.1's the name and the arguments as they are
  forTemplate: (template) => (template.includes('```json') ? deepseekV3 : template.includes(DEEPSEEK_TAGS.sep) ? deepseekV31 : deepseek),
};
