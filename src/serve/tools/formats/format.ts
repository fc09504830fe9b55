/**
 * How a model family writes tool calls in its own text, so that `tool_choice: "auto"` can tell its
 * calls from its answer (one small file per family, as the chat templates differ per family).
 */
import type { FunctionTool } from '../call-schema.js';
import type { ChoiceDelta } from '../call-readers.js';
import type { TaggedJsonCalls } from '../../../runtime/generation/tagged-json-prefix.js';

/** One call read from the model's text; `arguments` is JSON text, as the OpenAI API carries it. */
export interface ParsedCall {
  name: string;
  arguments: string;
}

export interface ToolCallFormat {
  /** the name `rfid-moe serve --tool-call-parser` takes */
  readonly name: string;
  /** the text that opens a block of calls */
  readonly start: string;
  /** the text that closes it; null: the block runs to the end of the generation */
  readonly end: string | null;
  /**
   * 'one': a block is one JSON call {"name", "arguments"}, so the server holds it to the tools'
   * schemas once the model has opened it (TriggeredConstraint), and its end is looked for outside
   * the JSON's strings; 'array': a block is a JSON array of such calls (held the same way, and the
   * generation ends when it closes); absent: the block's form is not one JSON value.
   */
  readonly heldCall?: 'one' | 'array';
  /**
   * a regular expression (JavaScript's syntax, regex-prefix.ts) of what follows `start` in a
   * block of one call of these tools, end included: the server holds the block to it once the
   * model has opened it, as it holds a 'one' block to the tools' JSON
   */
  heldPattern?(tools: readonly FunctionTool[], bounded?: boolean): string;
  /**
   * what follows `start` in a block of calls of these tools, for a format whose calls sit between
   * fixed tags with JSON arguments (DeepSeek's): the server holds the block to it once the model
   * has opened it, each call's arguments to its function's parameters; `parallel` false: one call
   */
  heldTaggedJson?(tools: readonly FunctionTool[], parallel: boolean): TaggedJsonCalls;
  /**
   * a reader of a held block's calls as they are written, from the text after `start` (the
   * format's heldCall or heldPattern holds the block to that form): its calls then stream, a
   * call's first delta as soon as its name is written. Absent: a block goes out whole when it
   * closes (`parse`).
   */
  streamer?(tools: readonly FunctionTool[], open: OpenCall): CallStream;
  /**
   * the calls a block's text (between start and end) holds; null where it is not well-formed.
   * `tools`: the request's, for formats whose text does not carry the arguments' types
   */
  parse(body: string, tools: readonly FunctionTool[]): ParsedCall[] | null;
  /** whether a chat template writes (and so expects) calls this way */
  detect(template: string): boolean;
  /** the format as this template writes it, where a family has variants (Mistral's two forms) */
  forTemplate?(template: string): ToolCallFormat;
}

/**
 * A call from a parsed JSON value of the usual shape, {"name": "…", "arguments": {…}} (also
 * "parameters", as some fine-tunes write it); null for anything else. Arguments given as JSON text
 * are kept if they parse.
 */
export function callFromJson(value: unknown): ParsedCall | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.name !== 'string' || v.name.length === 0) return null;
  const args = v.arguments ?? v.parameters ?? {};
  if (typeof args === 'string') return jsonText(args) ? { name: v.name, arguments: args } : null;
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return null;
  return { name: v.name, arguments: JSON.stringify(args) };
}

/** The calls of a JSON array of them, or of one call not in an array (Mistral's and Granite's blocks); null where any is not the call shape, or there are none. */
export function callsOfJson(text: string): ParsedCall[] | null {
  const value = tryJson(text.trim());
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) return null;
  const calls: ParsedCall[] = [];
  for (const item of list) {
    const call = callFromJson(item);
    if (!call) return null;
    calls.push(call);
  }
  return calls;
}

/** A call of `name` whose arguments are written apart from it, as JSON text (null where that text is not a JSON object). */
export function callWithArguments(name: string, argumentsText: string): ParsedCall | null {
  const args = tryJson(argumentsText);
  return args === undefined ? null : callFromJson({ name, arguments: args });
}

/** JSON.parse that answers undefined instead of throwing. */
export function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const jsonText = (text: string) => tryJson(text) !== undefined;

/** A new call's index and id (the reader's count of calls). */
export type OpenCall = () => { index: number; id: string };

/** A held block's calls read as they are written (ToolCallFormat.streamer). */
export interface CallStream {
  /**
   * Reads `text`; answers the deltas that can go out now, and `rest`: text that is not the
   * block's calls (what followed their end), to be read as text again. Where no call comes of the
   * block, its content delta is the block's text as written.
   */
  push(text: string): { deltas: ChoiceDelta[]; rest: string };
  /** What is left when the generation ends: a call cut short before its name, as the text written. */
  end(): ChoiceDelta[];
  /** the block's calls have ended: what follows (its end tag, or more text) is not this reader's */
  readonly done: boolean;
}
