/**
 * DeepSeek's format (DeepSeek-V3 and later MoE chat models, whose templates take tools), written in
 * the tokenizer's special tokens: `<｜tool▁calls▁begin｜>`, then per call
 * `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>` (V3) or
 * `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>` (V3.1 on), then
 * `<｜tool▁calls▁end｜>`. Both are read; neither is held to the tools' schemas while written (a
 * block is not one JSON value).
 */
import { callWithArguments, type ParsedCall, type ToolCallFormat } from './format.js';

const CALLS_BEGIN = '<｜tool▁calls▁begin｜>';
const CALL_BEGIN = '<｜tool▁call▁begin｜>';
const CALL_END = '<｜tool▁call▁end｜>';
const SEP = '<｜tool▁sep｜>';
/** V3's arguments: a JSON code block after the name's line */
const FENCED = /^([^\n]+)\n```(?:json)?\n([\s\S]*)\n```\s*$/;

export const deepseek: ToolCallFormat = {
  name: 'deepseek',
  start: CALLS_BEGIN,
  end: '<｜tool▁calls▁end｜>',
  parse(body) {
    const calls: ParsedCall[] = [];
    const parts = body.split(CALL_BEGIN);
    if (parts[0].trim() !== '') return null;
    for (const part of parts.slice(1)) {
      const at = part.indexOf(CALL_END);
      // the last call may be cut by the end of the generation; any text after a call's end is not a call
      const call = at < 0 ? part : part.slice(0, at);
      if (at >= 0 && part.slice(at + CALL_END.length).trim() !== '') return null;
      const sep = call.indexOf(SEP);
      if (sep < 0) return null;
      const before = call.slice(0, sep).trim();
      const after = call.slice(sep + SEP.length);
      const fenced = FENCED.exec(after);
      const [name, argsText] = fenced && before === 'function' ? [fenced[1].trim(), fenced[2]] : [before, after.trim()];
      const parsed = callWithArguments(name, argsText);
      if (!parsed) return null;
      calls.push(parsed);
    }
    return calls.length > 0 ? calls : null;
  },
  detect: (template) => template.includes(CALLS_BEGIN),
};
