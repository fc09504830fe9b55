/**
 * Request bodies of the OpenAI-compatible endpoints, validated with zod. Known fields are
 * type-checked (a wrong type is a 400 naming the field); unknown fields are ignored, as the
 * OpenAI API and vLLM do, so newer clients keep working. Features this server does not implement
 * (best_of > 1, suffix, vLLM's beam search, grammars and structural tags in its structured
 * outputs, and prompt_logprobs) are refused with a 400 instead of being silently ignored; their neutral values
 * pass. vLLM's sampling fields are implemented (top_k, min_p, repetition_penalty, min_tokens,
 * ignore_eos, stop_token_ids, include_stop_str_in_output, skip_special_tokens, allowed_token_ids,
 * bad_words, truncate_prompt_tokens, add_special_tokens) and, for chat, chat_template_kwargs,
 * add_generation_prompt, continue_final_message, and tools (tools/tool-choice.ts).
 */
import { z } from 'zod';
import { badRequest, type ApiError } from './errors.js';
import { MAX_TOP_LOGPROBS } from '../runtime/generation/logprobs.js';
import { MAX_PATTERN_LENGTH } from '../runtime/generation/regex-prefix.js';
import { MAX_REPETITION_PENALTY, MIN_REPETITION_PENALTY } from '../checkpoint/generation-config.js';
import { MAX_ALLOWED_TOKENS, MAX_FREQUENCY_PENALTY, MAX_LOGIT_BIAS } from '../runtime/generation/logits-processors.js';

/** Most choices (n) one request may ask for. */
export const MAX_CHOICES = 16;

/** Most tools one request may give (each is a schema checked, and in "required", one option of the calls). */
export const MAX_TOOLS = 128;
export const MAX_TOOL_NAME = 256;

/** Most strings of a guided choice (each is an alternative of the pattern it becomes). */
export const MAX_GUIDED_CHOICES = 1024;

/** Most bad words one request may give (each is one or two token sequences). */
export const MAX_BAD_WORD_STRINGS = 256;

/** Most prompts one completions request may send. */
export const MAX_PROMPTS = 64;

/** Most tokens one request's logit_bias may name (OpenAI's documented limit is 300; vLLM sets none). */
export const MAX_LOGIT_BIAS_TOKENS = 1024;

/** The largest max_tokens accepted before the context check (anything beyond is "absurd"). */
export const MAX_TOKENS_LIMIT = 1_000_000;

const maxTokens = z.number().int().min(1).max(MAX_TOKENS_LIMIT).nullish();
const stop = z.union([z.string(), z.array(z.string()).max(16)], { message: 'stop must be a string or an array of at most 16 strings' }).nullish();

/** a field this server does not implement: absent or null only */
const unsupported = (message: string) => z.null({ message }).optional();
/** a JSON schema (an object) or its JSON text */
const jsonSchemaOrText = (name: string) => z.union([z.record(z.string(), z.unknown()), z.string()], { message: `${name} must be a JSON schema (an object or its JSON text)` });
const pattern = z.string({ message: 'a regular expression must be a string' }).max(MAX_PATTERN_LENGTH);
const choices = z.array(z.string(), { message: 'choices must be an array of strings' }).min(1, { message: 'give at least one choice' }).max(MAX_GUIDED_CHOICES, { message: `give at most ${MAX_GUIDED_CHOICES} choices` });

/** the most characters of a request id (the request_id field, or the X-Request-Id header) */
export const MAX_REQUEST_ID = 256;
/** an id that goes into a response's id and a header: visible ASCII */
export const requestId = z
  .string()
  .min(1)
  .max(MAX_REQUEST_ID)
  .regex(/^[\x21-\x7e]+$/, { message: 'a request id must be visible ASCII characters (no spaces)' });

const sampling = {
  model: z.string().min(1),
  max_tokens: maxTokens,
  temperature: z.number().min(0).max(100).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** vLLM's extension; -1 or 0 = off */
  top_k: z.number().int().min(-1).nullish(),
  /** vLLM's extension; 0 = off */
  min_p: z.number().min(0).max(1).nullish(),
  /** choices per request, decoded together (at most MAX_CHOICES) */
  n: z.number().int().min(1).max(MAX_CHOICES).nullish(),
  stream: z.boolean().nullish(),
  /** continuous_usage_stats is vLLM's: with include_usage, every chunk carries its choice's usage so far */
  stream_options: z.object({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() }).nullish(),
  stop,
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-MAX_FREQUENCY_PENALTY).max(MAX_FREQUENCY_PENALTY).nullish(),
  frequency_penalty: z.number().min(-MAX_FREQUENCY_PENALTY).max(MAX_FREQUENCY_PENALTY).nullish(),
  /** vLLM's (and transformers') extension; 1 = off; bounded (1.0-1.5 is the usual range), see MIN_REPETITION_PENALTY */
  repetition_penalty: z.number().min(MIN_REPETITION_PENALTY).max(MAX_REPETITION_PENALTY).nullish(),
  user: z.string().nullish(),
  /** token id (a decimal string, as JSON object keys are) → bias in [-100, 100]; ids are checked against the model's vocabulary later */
  logit_bias: z
    .record(
      z.string().regex(/^(0|[1-9][0-9]{0,9})$/, { message: 'logit_bias keys must be token ids (decimal integers)' }),
      z.number().min(-MAX_LOGIT_BIAS).max(MAX_LOGIT_BIAS),
    )
    .refine((b) => Object.keys(b).length <= MAX_LOGIT_BIAS_TOKENS, { message: `logit_bias may name at most ${MAX_LOGIT_BIAS_TOKENS} tokens` })
    .nullish(),
  /** vLLM's extensions, which benchmark clients send: generate past the model's end-of-sequence ids, or stop at more ids */
  ignore_eos: z.boolean().nullish(),
  stop_token_ids: z.array(z.number().int().min(0)).max(64).nullish(),
  /** vLLM's other sampling fields */
  min_tokens: z.number().int().min(0).max(MAX_TOKENS_LIMIT).nullish(),
  include_stop_str_in_output: z.boolean().nullish(),
  skip_special_tokens: z.boolean().nullish(),
  /** vLLM uses it only with slow (Python) tokenizers; the tokenizers here are fast ones, so it changes nothing, there as here */
  spaces_between_special_tokens: z.boolean().nullish(),
  allowed_token_ids: z.array(z.number().int().min(0)).min(1).max(MAX_ALLOWED_TOKENS).nullish(),
  /** vLLM's: words never generated (prepare.ts turns them into token sequences, at a text's start and after a space) */
  bad_words: z.array(z.string().max(1000).refine((w) => w.trim() !== '', { message: 'a bad word must hold more than whitespace' })).max(MAX_BAD_WORD_STRINGS).nullish(),
  /** keep only the last k prompt tokens */
  truncate_prompt_tokens: z.number().int().min(1).nullish(),
  // vLLM's fields this server does not implement: refused where they would change anything
  use_beam_search: z.literal(false, { message: 'beam search (use_beam_search) is not supported' }).nullish(),
  length_penalty: z.literal(1, { message: 'length_penalty applies to beam search, which is not supported' }).nullish(),
  prompt_logprobs: z.null({ message: 'prompt_logprobs is not supported; on /v1/completions, echo: true with logprobs returns the prompt’s log-probabilities' }).optional(),
  return_tokens_as_token_ids: z.literal(false, { message: 'return_tokens_as_token_ids is not supported' }).nullish(),
  /** vLLM's: requests share a cached prompt beginning only with those of the same salt */
  cache_salt: z.string().min(1).max(1024).nullish(),
  /** vLLM's: the prompt's and each choice's token ids in the response (prompt_token_ids, token_ids) */
  return_token_ids: z.boolean().nullish(),
  /** vLLM's: the response's id (after "chatcmpl-" or "cmpl-"), for tracing; an X-Request-Id header wins over it */
  request_id: requestId.nullish(),
  /** vLLM's: only with its priority scheduler; requests here are served in arrival order, as vLLM's default scheduler serves them */
  priority: z
    .number()
    .int()
    .refine((p) => p === 0, { message: 'priority scheduling is not enabled on this server (requests are decoded in arrival order); send priority 0 or leave it out' })
    .nullish(),
  logits_processors: z.null({ message: 'custom logits_processors are not supported' }).optional(),
  /** vLLM's: a JSON schema (an object, or its JSON text) the completion is held to, as response_format json_schema */
  guided_json: jsonSchemaOrText('guided_json').nullish(),
  /** vLLM's (before 0.12): the completion fully matches the pattern (regex-prefix.ts) */
  guided_regex: pattern.nullish(),
  /** vLLM's (before 0.12): the completion is exactly one of the strings */
  guided_choice: choices.nullish(),
  guided_grammar: unsupported('guided_grammar: grammars are not supported (guided_json, guided_regex and guided_choice are)'),
  /** vLLM's (0.12 on): one of json, regex, choice, json_object (structured-output.ts) */
  structured_outputs: z
    .object({
      json: jsonSchemaOrText('structured_outputs.json').nullish(),
      regex: pattern.nullish(),
      choice: choices.nullish(),
      json_object: z.boolean().nullish(),
      grammar: unsupported('structured_outputs.grammar: grammars are not supported (json, regex, choice and json_object are)'),
      structural_tag: unsupported('structured_outputs.structural_tag is not supported'),
      whitespace_pattern: unsupported('structured_outputs.whitespace_pattern is not supported (disable_any_whitespace is)'),
      /** no whitespace outside a JSON value's strings */
      disable_any_whitespace: z.boolean().nullish(),
      disable_additional_properties: z.literal(false, { message: 'structured_outputs.disable_additional_properties is not supported: give additionalProperties: false in the schema' }).nullish(),
      /** there is no other backend to fall back to */
      disable_fallback: z.boolean().nullish(),
    })
    .nullish(),
};

/**
 * response_format: {"type": "text"}, JSON mode {"type": "json_object"}, or an object held to a
 * schema, {"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}
 * (grammar-constraint.ts; json-schema.ts says which keywords are followed, and the rest are a 400).
 * Also Text Generation Inference's grammars, which Hugging Face's InferenceClient sends (it turns
 * a json_schema format into {"type": "json_object", "value": schema}): {"type": "json" |
 * "json_object", "value": schema} and {"type": "regex", "value": pattern}. A `value` is read,
 * never dropped: a schema the server left out would leave the answer unheld without a word.
 */
const responseFormat = z
  .discriminatedUnion(
    'type',
    [
      z.object({ type: z.literal('text') }),
      z.object({ type: z.literal('json_object'), value: jsonSchemaOrText('response_format.value').optional() }),
      z.object({ type: z.literal('json'), value: jsonSchemaOrText('response_format.value') }),
      z.object({ type: z.literal('regex'), value: pattern }),
      z.object({
        type: z.literal('json_schema'),
        json_schema: z.object(
          {
            name: z.string().max(256).optional(),
            description: z.string().optional(),
            schema: z.record(z.string(), z.unknown(), { message: 'json_schema.schema must be a JSON schema object' }),
            strict: z.boolean().nullish(),
          },
          { message: 'json_schema must be an object {name, schema, strict}' },
        ),
      }),
    ],
    { message: 'response_format.type must be "text", "json_object" or "json_schema" (or Text Generation Inference\'s "json" and "regex", with a "value")' },
  )
  .nullish();

export const completionRequest = z.object({
  ...sampling,
  // the API's four forms: a string, strings, token ids, arrays of token ids (what clients that
  // batch, such as lm-evaluation-harness, send); each prompt gets its n choices
  prompt: z.union(
    [
      z.string(),
      z.array(z.string()).min(1).max(MAX_PROMPTS),
      z.array(z.number().int().min(0)).min(1),
      z.array(z.array(z.number().int().min(0)).min(1)).min(1).max(MAX_PROMPTS),
    ],
    { message: `the prompt must be a string, an array of strings, a non-empty array of token ids, or an array of such arrays (at most ${MAX_PROMPTS} prompts)` },
  ),
  /** the prompt comes back before the completion, with its log-probabilities when logprobs is set */
  echo: z.boolean().nullish(),
  /** 0 is allowed with echo: the prompt scored, nothing generated */
  max_tokens: z.number().int().min(0).max(MAX_TOKENS_LIMIT).nullish(),
  /** the log-probability of each token and this many alternatives (the legacy completions form) */
  logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  suffix: z.null({ message: 'suffix is not supported' }).optional(),
  best_of: z.literal(1, { message: 'only best_of = 1 is supported' }).nullish(),
  /** vLLM's: false leaves out the special tokens (BOS) the tokenizer adds to a text prompt */
  add_special_tokens: z.boolean().nullish(),
  response_format: responseFormat,
});
export type CompletionRequest = z.infer<typeof completionRequest>;

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)], { message: 'content must be a string or an array of {type: "text", text} parts (only text is supported)' });
/** A call an assistant message made, as the API gives it back (arguments are JSON text). */
const toolCall = z.object({
  id: z.string().max(256),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1).max(MAX_TOOL_NAME), arguments: z.string() }),
});
const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  // null where an assistant message only made calls (what the API returns for it)
  content: content.nullable(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).max(MAX_TOOLS).nullish(),
  tool_call_id: z.string().max(256).nullish(),
  /**
   * an assistant message's reasoning, as a reasoning parser gave it (vLLM's field, under both its
   * names), or as transformers' gpt-oss documentation passes it (`thinking`): to the template as
   * reasoning_content (and thinking: chat-template.ts)
   */
  reasoning_content: z.string().nullish(),
  reasoning: z.string().nullish(),
  thinking: z.string().nullish(),
});

/** A function the model may call: {"type": "function", "function": {name, description, parameters (a JSON schema), strict}}. */
const functionTool = z.object({
  type: z.literal('function', { message: 'only function tools are supported ({"type": "function", "function": {...}})' }),
  function: z.object({
    name: z.string().min(1).max(MAX_TOOL_NAME),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown(), { message: 'parameters must be a JSON schema object' }).nullish(),
    strict: z.boolean().nullish(),
  }),
});

/** The functions a conversation's model may call (tools/tool-choice.ts). */
export const toolsField = z.array(functionTool).max(MAX_TOOLS).nullish();

const toolChoice = z.union(
  [z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1) }) })],
  { message: 'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}' },
);

/** A conversation: at least one message. */
export const messagesSchema = z.array(message, { message: 'messages must be an array of {role, content} objects' }).min(1);

/** How a conversation becomes a prompt (vLLM's fields), for /v1/chat/completions and /tokenize alike (chatPromptOptionsOf). */
export const chatPromptFields = {
  /** vLLM's extension: variables for the chat template, e.g. {"enable_thinking": false} for Qwen3 */
  chat_template_kwargs: z.record(z.string(), z.unknown(), { message: 'chat_template_kwargs must be an object of template variables' }).nullish(),
  /**
   * OpenAI's reasoning effort (vLLM's values): the chat template's variable of that name
   * (templateKwargsOf), which gpt-oss's template writes into its system message; templates that
   * read none ignore it
   */
  reasoning_effort: z.enum(['low', 'medium', 'high'], { message: 'reasoning_effort must be "low", "medium" or "high"' }).nullish(),
  /** end the prompt with a new assistant header (default), or inside the last message, which the model continues */
  add_generation_prompt: z.boolean().nullish(),
  continue_final_message: z.boolean().nullish(),
  /** add the tokenizer's special tokens (BOS) to the rendered template (default false: the template holds them) */
  add_special_tokens: z.boolean().nullish(),
};

export const chatRequest = z.object({
  ...sampling,
  messages: messagesSchema,
  max_completion_tokens: maxTokens,
  /** chat: log-probabilities of the tokens of the answer, with top_logprobs alternatives each */
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  /** functions the model may call (tools/tool-choice.ts) */
  tools: toolsField,
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: responseFormat,
  /** vLLM's: with a reasoning parser, false leaves the reasoning out of the response */
  include_reasoning: z.boolean().nullish(),
  ...chatPromptFields,
  echo: z.literal(false, { message: 'echo is not supported on /v1/chat/completions (use continue_final_message to continue the last message)' }).nullish(),
  chat_template: z.null({ message: 'a chat_template in the request is not supported; the model’s own template is used' }).optional(),
  documents: z.null({ message: 'documents are not supported' }).optional(),
});
export type ChatRequest = z.infer<typeof chatRequest>;
export interface ChatMessage {
  role: string;
  content: string | null;
  name?: string;
  tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: unknown } }>;
  tool_call_id?: string;
  reasoning_content?: string;
}

/** Parse or throw a 400 naming the first bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw zodToApiError(r.error, body);
}

function zodToApiError(err: z.ZodError, body: object): ApiError {
  const issue = err.issues[0];
  const param = issue.path.map(String).join('.') || null;
  // a record's bad key is reported as "Invalid key in record" with the key's own issue nested
  let detail = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  // zod's issues do not carry the input, so "missing" is read from the body itself (only a
  // required field fails when absent); a field of the wrong type keeps zod's "expected boolean,
  // received string"
  if (issue.path.length > 0 && !isPresent(body, issue.path)) detail = 'this field is required';
  return badRequest(`${param ?? 'body'}: ${detail}`, param, 'invalid_value');
}

/** Whether the body has a value (null included) at the path. */
function isPresent(body: unknown, path: readonly PropertyKey[]): boolean {
  let at: unknown = body;
  for (const key of path) {
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, key)) return false;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at !== undefined;
}

/** Each call's arguments as the client wrote them, by the call's function object (argumentsAsText). */
const argumentTexts = new WeakMap<object, string>();

/**
 * The messages with each call's arguments as the JSON text the client sent instead of values: for
 * templates that write the arguments by concatenation (DeepSeek's `+ tool['function']['arguments']
 * +`), where a value renders as "[object Map]".
 */
export function argumentsAsText(messages: ChatMessage[]): ChatMessage[] {
  return messages.map((m) =>
    m.tool_calls ? { ...m, tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: argumentTexts.get(c.function) ?? JSON.stringify(c.function.arguments) } })) } : m,
  );
}

/**
 * The messages as a chat template receives them (as transformers and vLLM pass them): text parts
 * joined; an assistant's calls with their arguments parsed from JSON text into values, which is
 * what templates expect (`tool_call.arguments | tojson`); a 400 where they are not JSON.
 */
export function flattenMessages(messages: ChatRequest['messages']): ChatMessage[] {
  return messages.map((m, i) => {
    const out: ChatMessage = { role: m.role, content: m.content === null ? null : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('') };
    if (m.content === null && !(m.role === 'assistant' && m.tool_calls?.length)) {
      throw badRequest(`messages[${i}]: content may be null only in an assistant message with tool_calls`, `messages.${i}.content`, 'invalid_value');
    }
    if (m.name !== undefined) out.name = m.name;
    if (m.tool_calls?.length) {
      if (m.role !== 'assistant') throw badRequest(`messages[${i}]: only assistant messages carry tool_calls`, `messages.${i}.tool_calls`, 'invalid_value');
      out.tool_calls = m.tool_calls.map((c, j) => {
        let args: unknown;
        try {
          args = JSON.parse(c.function.arguments);
        } catch (err) {
          throw badRequest(`messages[${i}].tool_calls[${j}].function.arguments is not JSON text: ${(err as Error).message}`, `messages.${i}.tool_calls.${j}.function.arguments`, 'invalid_value');
        }
        const fn = { name: c.function.name, arguments: args };
        argumentTexts.set(fn, c.function.arguments);
        return { id: c.id, type: 'function', function: fn };
      });
    }
    if (m.tool_call_id !== null && m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
    // Qwen3's template writes it back inside <think> for the turns after the last question (a tool loop)
    const reasoning = m.reasoning_content ?? m.reasoning ?? m.thinking;
    if (reasoning !== null && reasoning !== undefined) out.reasoning_content = reasoning;
    return out;
  });
}

export function stopList(s: string | string[] | null | undefined): string[] {
  if (s === null || s === undefined) return [];
  const list = typeof s === 'string' ? [s] : s;
  if (list.some((x) => x.length === 0)) throw badRequest('stop: stop strings must not be empty', 'stop');
  return list;
}
