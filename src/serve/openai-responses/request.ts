/**
 * POST /v1/responses (OpenAI's Responses API, which the openai clients' `responses.create` and
 * agent frameworks built on it send): the request validated, then said as the chat request it
 * stands for, so that one path (prepare.ts) builds the prompt, the tools and the structured output
 * of both. `instructions` become a system message, `input` the conversation (a text, or items:
 * messages, the model's earlier function calls and their outputs, its earlier reasoning), function
 * tools and `tool_choice` the chat's, `text.format` the response format, `max_output_tokens` the
 * limit.
 *
 * Nothing is stored: `store` is accepted (no response can be fetched later, so a client that
 * relies on it learns so from the 404 of GET /v1/responses/{id}), `previous_response_id` and
 * `conversation` are a 400 asking for the conversation in `input`, as is anything this server
 * cannot do (built-in tools, images and files in the input, background runs).
 */
import { z } from 'zod';
import { badRequest } from '../errors.js';
import { MAX_TOOL_NAME, MAX_TOOLS, parseBody, requestId } from '../schemas.js';

const text = z.string();
/** a message's content: text, or parts of text (input_text; output_text in the model's earlier turns) */
const content = z.union(
  [
    text,
    z.array(
      z.object({
        type: z.enum(['input_text', 'output_text', 'text'], { message: 'only text content is supported (input_text, output_text); images, files and audio are not' }),
        text,
      }),
    ),
  ],
  { message: 'content must be a string or an array of {type: "input_text", text} parts' },
);
const messageItem = z.object({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'assistant', 'system', 'developer']),
  content,
  id: z.string().optional(),
  status: z.string().optional(),
});
const functionCallItem = z.object({
  type: z.literal('function_call'),
  call_id: z.string().min(1).max(256),
  name: z.string().min(1).max(MAX_TOOL_NAME),
  arguments: z.string(),
  id: z.string().optional(),
  status: z.string().optional(),
});
const functionCallOutputItem = z.object({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1).max(256),
  output: z.union([text, z.array(z.object({ type: z.literal('input_text'), text }))], { message: 'a function call’s output must be text' }),
  id: z.string().optional(),
  status: z.string().optional(),
});
const reasoningItem = z.object({
  type: z.literal('reasoning'),
  id: z.string().optional(),
  summary: z.array(z.object({ type: z.string(), text })).optional(),
  content: z.array(z.object({ type: z.string(), text })).nullish(),
  encrypted_content: z.null({ message: 'encrypted reasoning is not supported' }).optional(),
});
const inputItem = z.union([messageItem, functionCallItem, functionCallOutputItem, reasoningItem], {
  message: 'each input item must be a message {role, content}, a function_call, a function_call_output or a reasoning item (item references, images, files and built-in tool calls are not supported)',
});

const functionTool = z.object({
  type: z.literal('function', { message: 'only function tools are supported ({"type": "function", "name", "parameters"}); built-in tools (web search, file search, …) are not' }),
  name: z.string().min(1).max(MAX_TOOL_NAME),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown(), { message: 'parameters must be a JSON schema object' }).nullish(),
  strict: z.boolean().nullish(),
});

const format = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      name: z.string().max(256).optional(),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown(), { message: 'text.format.schema must be a JSON schema object' }),
      strict: z.boolean().nullish(),
    }),
  ],
  { message: 'text.format.type must be "text", "json_object" or "json_schema"' },
);

const unsupported = (message: string) => z.null({ message }).optional();

export const responsesRequest = z.object({
  model: z.string().min(1),
  // items are checked one by one (parseResponsesRequest), so a bad one is named by its index
  input: z.union([text, z.array(z.unknown()).min(1)], { message: 'input must be a string or a non-empty array of items' }),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().min(1).max(1_000_000).nullish(),
  temperature: z.number().min(0).max(100).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  tools: z.array(functionTool).max(MAX_TOOLS).nullish(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string().min(1) })], {
      message: 'tool_choice must be "none", "auto", "required" or {"type": "function", "name": ...}',
    })
    .nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.object({ format: format.nullish(), verbosity: z.string().nullish() }).nullish(),
  stream: z.boolean().nullish(),
  /** accepted; nothing is stored */
  store: z.boolean().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  /** the effort goes to the chat template as the request's reasoning_effort (gpt-oss's writes it into its system message) */
  reasoning: z.object({ effort: z.string().nullish(), summary: z.string().nullish() }).nullish(),
  user: z.string().nullish(),
  safety_identifier: z.string().nullish(),
  prompt_cache_key: z.string().nullish(),
  service_tier: z.string().nullish(),
  truncation: z.literal('disabled', { message: 'truncation "auto" is not supported: the conversation is never shortened; a prompt longer than the context is a 400' }).nullish(),
  include: z.array(z.string()).max(0, { message: 'include is not supported (nothing extra can be included)' }).nullish(),
  top_logprobs: z.literal(0, { message: 'top_logprobs is not supported on /v1/responses (use /v1/chat/completions with logprobs)' }).nullish(),
  max_tool_calls: z.number().int().min(1).nullish(),
  stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).nullish(),
  previous_response_id: unsupported('previous_response_id is not supported: responses are not stored; send the whole conversation in input'),
  conversation: unsupported('conversation is not supported: responses are not stored; send the whole conversation in input'),
  background: z.literal(false, { message: 'background responses are not supported' }).nullish(),
  prompt: unsupported('prompt templates are not supported'),
  /** vLLM's: the client's id of the request; the response's id holds it (resp_<id>), as the X-Request-Id header's does */
  request_id: requestId.nullish(),
  /** vLLM's sampling extensions, as on the other endpoints */
  seed: z.number().int().nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().nullish(),
  stop: z.union([text, z.array(text).max(16)]).nullish(),
});
export type ResponsesRequest = Omit<z.infer<typeof responsesRequest>, 'input'> & { input: string | Array<z.infer<typeof inputItem>> };

type ChatMessage = { role: string; content: string | null; tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }>; tool_call_id?: string; reasoning_content?: string };

const joined = (c: z.infer<typeof content>) => (typeof c === 'string' ? c : c.map((p) => p.text).join(''));

/** The conversation the input items make: messages, calls added to the assistant turn before them, outputs as tool messages, reasoning to the next assistant turn. */
function messagesOf(req: ResponsesRequest): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (req.instructions) out.push({ role: 'system', content: req.instructions });
  if (typeof req.input === 'string') {
    out.push({ role: 'user', content: req.input });
    return out;
  }
  let reasoning: string | null = null;
  const assistant = (): ChatMessage => {
    const last = out[out.length - 1];
    if (last?.role === 'assistant' && reasoning === null) return last;
    const m: ChatMessage = { role: 'assistant', content: null };
    if (reasoning !== null) m.reasoning_content = reasoning;
    reasoning = null;
    out.push(m);
    return m;
  };
  for (const item of req.input) {
    if (item.type === 'reasoning') {
      reasoning = (reasoning ?? '') + (item.content ?? item.summary ?? []).map((p) => p.text).join('');
    } else if (item.type === 'function_call') {
      const m = assistant();
      (m.tool_calls ??= []).push({ id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
    } else if (item.type === 'function_call_output') {
      out.push({ role: 'tool', tool_call_id: item.call_id, content: typeof item.output === 'string' ? item.output : item.output.map((p) => p.text).join('') });
    } else if (item.role === 'assistant') {
      const m = assistant();
      m.content = (m.content ?? '') + joined(item.content);
    } else {
      out.push({ role: item.role === 'developer' ? 'system' : item.role, content: joined(item.content) });
    }
  }
  return out;
}

/** The chat request this Responses request stands for (schemas.ts's chatRequest reads it). */
export function chatBodyOf(req: ResponsesRequest): Record<string, unknown> {
  const messages = messagesOf(req);
  for (const [i, m] of messages.entries()) {
    // an assistant turn of reasoning alone (no text, no calls) has nothing for the template to write
    if (m.role === 'assistant' && m.content === null && !m.tool_calls) messages[i] = { ...m, content: '' };
  }
  const f = req.text?.format;
  const tc = req.tool_choice;
  return {
    model: req.model,
    messages,
    max_tokens: req.max_output_tokens,
    temperature: req.temperature,
    top_p: req.top_p,
    top_k: req.top_k,
    min_p: req.min_p,
    repetition_penalty: req.repetition_penalty,
    seed: req.seed,
    stop: req.stop,
    tools: req.tools?.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters, strict: t.strict } })),
    tool_choice: tc && typeof tc === 'object' ? { type: 'function', function: { name: tc.name } } : tc,
    parallel_tool_calls: req.parallel_tool_calls,
    response_format: !f || f.type === 'text' ? undefined : f.type === 'json_object' ? f : { type: 'json_schema', json_schema: { name: f.name, description: f.description, schema: f.schema, strict: f.strict } },
    stream: req.stream,
    request_id: req.request_id,
    reasoning_effort: req.reasoning?.effort,
  };
}

/** A 400 from the chat path names the chat field; said in the Responses request's terms. */
export function responsesParam(param: string | null): string | null {
  if (param === null) return null;
  const renames: Array<[RegExp, string]> = [
    // the chat messages do not line up with the input items (instructions come first, calls join
    // their assistant turn), so a message's index would name the wrong item: the field alone
    [/^messages(\..*)?$/, 'input'],
    [/^max_tokens$/, 'max_output_tokens'],
    [/^response_format\.json_schema\.schema/, 'text.format.schema'],
    [/^response_format/, 'text.format'],
    [/^tools\.(\d+)\.function\./, 'tools.$1.'],
    [/^tool_choice\.function\.name$/, 'tool_choice.name'],
    [/^reasoning_effort$/, 'reasoning.effort'],
  ];
  for (const [from, to] of renames) if (from.test(param)) return param.replace(from, to);
  return param;
}

/** The request checked and said as a chat request; a 400 naming the Responses field. */
export function parseResponsesRequest(body: unknown): { request: ResponsesRequest; chatBody: Record<string, unknown> } {
  const parsed = parseBody(responsesRequest, body);
  const input = typeof parsed.input === 'string' ? parsed.input : parsed.input.map((item, i) => parseItem(item, i));
  const request = { ...parsed, input };
  return { request, chatBody: chatBodyOf(request) };
}

function parseItem(item: unknown, i: number): z.infer<typeof inputItem> {
  const r = inputItem.safeParse(item);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const at = ['input', i, ...issue.path].map(String).join('.');
  throw badRequest(`${at}: ${issue.message}`, `input.${i}`, 'invalid_value');
}
