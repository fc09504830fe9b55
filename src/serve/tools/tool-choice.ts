/**
 * What a chat request's `tools`, `tool_choice` and `parallel_tool_calls` ask of the generation, as
 * the OpenAI API defines them:
 * - "none" (the default without tools): an answer, no calls (the tools still reach the template);
 * - a named function: a call of it, its arguments held to its parameters (JSON schema);
 * - "required": one or more calls (one when parallel_tool_calls is false), held to the
 *   {"name", "arguments"} shape of any of the tools and each tool's parameters;
 * - "auto" (the default with tools): the model decides; its calls are read from its text in its
 *   family's format (formats/), which the model must have: its chat template writes one the server
 *   knows, or `serve --tool-call-parser` names one. Otherwise "auto" is a 400 that says so, as in
 *   vLLM, rather than calls that never come. A call block the model opens is held to the tools'
 *   schemas where the format allows (Hermes).
 * Forced calls are held by the JSON constraint, so they are well-formed whatever the model. A
 * structured output beside the tools holds the answer the model gives instead of calls (under
 * "auto": CallsOrAnswer), and yields to a forced call.
 */
import { badRequest } from '../errors.js';
import type { GenerationParams } from '../../runtime/generation/decoder.js';
import { compiled } from '../compiled-schema.js';
import type { TopLevel } from '../../runtime/generation/json-schema.js';
import { argumentsSchema, assertToolSchemas, callsSchema, type FunctionTool } from './call-schema.js';
import { JsonCallsReader, NamedCallReader, TaggedCallsReader, type CallReader } from './call-readers.js';
import { TOOL_CALL_FORMATS, type ToolCallFormat } from './formats/index.js';
import { compileRegex, RegexError } from '../../runtime/generation/regex-prefix.js';

export type ToolMode =
  | { kind: 'none' }
  | { kind: 'named'; name: string }
  | { kind: 'required'; parallel: boolean; tools: FunctionTool[] }
  /** `held`: the blocks the model opens are held to the tools' calls (heldCalls), so a format that can read them as written (its streamer) streams them */
  | { kind: 'auto'; format: ToolCallFormat; tools: FunctionTool[]; held: boolean; parallel: boolean }
  /** "auto" for a model that writes harmony (gpt-oss): its calls are messages to `functions.NAME`, read by HarmonyReader */
  | { kind: 'harmony'; tools: FunctionTool[]; parallel: boolean };

/** The request fields this reads (schemas.ts, chatRequest). */
export interface ToolFields {
  tools?: Array<{ type: 'function'; function: FunctionTool }> | null;
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } } | null;
  parallel_tool_calls?: boolean | null;
}

export interface ResolvedTools {
  mode: ToolMode;
  /** the constraint the generation is under: forced calls, held auto blocks, or the request's answer format (undefined: none) */
  responseFormat: GenerationParams['responseFormat'];
  /** "auto" with an answer format: the calls the model may open instead of the formatted answer (GenerationParams.callsInstead) */
  callsInstead: GenerationParams['callsInstead'];
  /** the tools as the chat template receives them (as transformers' apply_chat_template(tools=…)); null without tools */
  templateTools: unknown[] | null;
  /**
   * the functions a call the model addresses in a message header of its own (gpt-oss's) may name,
   * each held to its parameters (ReasoningFormat.addressedCalls): the named one, every tool under
   * "required", and under "auto" every tool where the constraint can follow their parameters; null: none held
   */
  callable: FunctionTool[] | null;
}

/**
 * The request's tool fields checked against each other and the model (400s naming the field), as
 * the generation and the response need them. `answerFormat`: the request's own structured output
 * (response_format, structured_outputs, guided_*), which holds the answer where the model gives one
 * instead of calls: under "none", and under "auto" (OpenAI's API takes both, and agent frameworks
 * send an output schema beside their tools); a forced call is the whole answer, so under
 * "required" and a named function the call's format holds (vLLM's precedence).
 */
export function resolveTools(
  req: ToolFields,
  modelFormat: ToolCallFormat | null,
  modelId: string,
  answerFormat: GenerationParams['responseFormat'],
  harmony = false,
): ResolvedTools {
  const tools = req.tools ?? [];
  const choice = req.tool_choice ?? (tools.length > 0 ? 'auto' : 'none');
  const answerOnly = { responseFormat: answerFormat, callsInstead: undefined };
  if (tools.length === 0) {
    if (choice !== 'none') throw badRequest('tool_choice needs tools: give the functions the model may call in `tools`', 'tool_choice', 'invalid_value');
    return { mode: { kind: 'none' }, ...answerOnly, templateTools: null, callable: null };
  }
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    if (names.has(t.function.name)) throw badRequest(`tools[${i}]: the function name "${t.function.name}" is given twice; names must be unique`, `tools.${i}.function.name`, 'invalid_value');
    names.add(t.function.name);
  }
  const templateTools = templateToolsOf(tools)!;
  if (choice === 'none') return { mode: { kind: 'none' }, ...answerOnly, templateTools, callable: null };
  if (typeof choice === 'object') {
    const at = tools.findIndex((t) => t.function.name === choice.function.name);
    if (at < 0) throw badRequest(`tool_choice names the function "${choice.function.name}", which is not among the tools (${[...names].join(', ')})`, 'tool_choice.function.name', 'invalid_value');
    const tool = tools[at].function;
    assertToolSchemas([tool]);
    return { mode: { kind: 'named', name: tool.name }, responseFormat: { jsonSchema: compiled(argumentsSchema(tool), `tools.${at}.function.parameters`) }, callsInstead: undefined, templateTools, callable: [tool] };
  }
  const functions = tools.map((t) => t.function);
  const parallel = req.parallel_tool_calls ?? true;
  if (choice === 'required') {
    assertToolSchemas(functions);
    return { mode: { kind: 'required', parallel, tools: functions }, responseFormat: callsFormat(functions, parallel), callsInstead: undefined, templateTools, callable: functions };
  }
  // gpt-oss: an answer format holds the final channel, and its calls are held where it addresses them (ReasoningGate)
  if (harmony) return { mode: { kind: 'harmony', tools: functions, parallel }, ...answerOnly, templateTools, callable: schemasHeld(functions) ? functions : null };
  if (modelFormat === null) {
    throw badRequest(
      `tool_choice "auto" needs to read the model's calls from its text, and the chat template of \`${modelId}\` writes no tool-call format this server knows (${[...TOOL_CALL_FORMATS.values()].map((f) => `${f.name}: ${f.start}`).join(', ')}); use tool_choice "required" or a named function (the server then holds the output to the call), or start the server with a tool-call parser for it`,
      'tool_choice',
      'tool_choice_unsupported',
    );
  }
  const heldFormat = heldCalls(functions, modelFormat, parallel);
  const held = heldFormat !== undefined && modelFormat.streamer !== undefined;
  const mode: ToolMode = { kind: 'auto', format: modelFormat, tools: functions, held, parallel };
  if (answerFormat === undefined || answerFormat === 'text') return { mode, responseFormat: heldFormat, callsInstead: undefined, templateTools, callable: null };
  // an answer format beside the tools: a completion that opens the call block is calls, any other the formatted answer
  return { mode, responseFormat: answerFormat, callsInstead: { start: modelFormat.start, held: heldFormat }, templateTools, callable: null };
}

/** The constraint of calls of `tools` (callsSchema: one call, or a non-empty array when parallel). */
function callsFormat(tools: FunctionTool[], parallel: boolean): { jsonSchema: unknown; topLevel: TopLevel } {
  const { schema, topLevel } = callsSchema(tools, parallel);
  return { jsonSchema: compiled(schema, 'tools', topLevel), topLevel };
}

/**
 * "auto": where the format's blocks are one JSON call, each block the model opens is held to a
 * call of one of the tools (TriggeredConstraint), so what it writes there is a call the client can
 * run; with parallel_tool_calls false the generation ends when the first call closes (the reader
 * takes a block that the end of the generation closes). Tools whose parameters use keywords the
 * constraint cannot follow leave the blocks free (the model chose to call; a 400 would refuse a
 * request that needs no constraint to be served).
 */
function heldCalls(tools: FunctionTool[], format: ToolCallFormat, parallel: boolean): NonNullable<GenerationParams['callsInstead']>['held'] {
  if (format.heldPattern) {
    // a format of its own (Qwen3-Coder's tags): held to its pattern of the tools' calls; where the
    // pattern that bounds a call's parameter blocks is too large to follow, to the one that does
    // not; where that is too, the blocks are left free (hundreds of parameters)
    for (const bounded of [true, false]) {
      const regex = format.heldPattern(tools, bounded);
      try {
        compileRegex(regex);
        return { regex, trigger: format.start, once: !parallel };
      } catch (err) {
        if (!(err instanceof RegexError)) throw err;
      }
    }
    return undefined;
  }
  if ((format.heldCall === undefined && format.heldTaggedJson === undefined) || !schemasHeld(tools)) return undefined;
  // calls between fixed tags (DeepSeek's): the block, each call's arguments held to its parameters
  if (format.heldTaggedJson) return { taggedJson: format.heldTaggedJson(tools, parallel), trigger: format.start, once: !parallel };
  if (format.heldCall === 'one') return { ...callsFormat(tools, false), trigger: format.start, once: !parallel };
  // an array of the calls, the message's end (Mistral's): the generation ends when it closes
  const { schema, topLevel } = callsSchema(tools, parallel, true);
  return { jsonSchema: compiled(schema, 'tools', topLevel), topLevel, trigger: format.start, once: true };
}

/** whether the constraint can follow every tool's parameters (a call the model chose to make is left free where not) */
function schemasHeld(tools: readonly FunctionTool[]): boolean {
  try {
    assertToolSchemas(tools);
    return true;
  } catch {
    return false;
  }
}

/** The tools as the chat template receives them, in the request's form; null without tools. */
export function templateToolsOf(tools: ToolFields['tools']): unknown[] | null {
  return tools?.length ? tools.map((t) => ({ type: 'function', function: t.function })) : null;
}

/** A fresh reader of one chat choice's text under the request's tools; null without calls to read (its text is the content). */
export function callReader(mode: ToolMode): CallReader | null {
  switch (mode.kind) {
    case 'none':
      return null;
    case 'named':
      return new NamedCallReader(mode.name);
    case 'required':
      return new JsonCallsReader(mode.parallel, new Set(mode.tools.map((t) => t.name)));
    case 'auto':
      return new TaggedCallsReader(mode.format, mode.tools, { held: mode.held, parallel: mode.parallel });
    case 'harmony':
      return null;
  }
}

/** The finish reason a choice reports: "tool_calls" where the model called tools and stopped by itself (OpenAI's rule; a named choice reports "stop"). */
export function finishReasonOf(mode: ToolMode, reader: CallReader | null, reason: string): string {
  return reason === 'stop' && reader !== null && reader.calls > 0 && (mode.kind === 'auto' || mode.kind === 'required' || mode.kind === 'harmony') ? 'tool_calls' : reason;
}
