/**
 * Request bodies of the OpenAI-compatible endpoints, validated with zod. Known fields are
 * type-checked (a wrong type is a 400 naming the field); unknown fields are ignored, as the
 * OpenAI API and vLLM do, so newer clients keep working. Features this server does not implement
 * (n > 1, logprobs, echo, penalties, several prompts) are refused with a 400 instead of being
 * silently ignored.
 */
import { z } from 'zod';
import { badRequest, type ApiError } from './errors.js';

/** The largest max_tokens accepted before the context check (anything beyond is "absurd"). */
export const MAX_TOKENS_LIMIT = 1_000_000;

const maxTokens = z.number().int().min(1).max(MAX_TOKENS_LIMIT).nullish();
const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullish();

const sampling = {
  model: z.string().min(1),
  max_tokens: maxTokens,
  temperature: z.number().min(0).max(100).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** vLLM's extension; -1 or 0 = off */
  top_k: z.number().int().min(-1).nullish(),
  n: z.literal(1, { message: 'only n = 1 is supported' }).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  stop,
  seed: z.number().int().nullish(),
  presence_penalty: z.literal(0, { message: 'presence_penalty is not supported (only 0)' }).nullish(),
  frequency_penalty: z.literal(0, { message: 'frequency_penalty is not supported (only 0)' }).nullish(),
  logprobs: z.union([z.literal(false), z.null()], { message: 'logprobs are not supported' }).optional(),
  user: z.string().nullish(),
};

export const completionRequest = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1, { message: 'exactly one prompt per request is supported' }), z.array(z.number().int().min(0)).min(1)], {
    message: 'the prompt must be a string, an array of one string, or a non-empty array of token ids',
  }),
  echo: z.union([z.literal(false), z.null()], { message: 'echo is not supported' }).optional(),
  logprobs: z.union([z.literal(0), z.null()], { message: 'logprobs are not supported' }).optional(),
  suffix: z.null({ message: 'suffix is not supported' }).optional(),
});
export type CompletionRequest = z.infer<typeof completionRequest>;

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textPart)]),
  name: z.string().optional(),
});

export const chatRequest = z.object({
  ...sampling,
  messages: z.array(message, { message: 'messages must be an array of {role, content} objects' }).min(1),
  max_completion_tokens: maxTokens,
  top_logprobs: z.null({ message: 'logprobs are not supported' }).optional(),
});
export type ChatRequest = z.infer<typeof chatRequest>;
export type ChatMessage = { role: string; content: string };

/** Parse or throw a 400 naming the first bad field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  throw zodToApiError(r.error);
}

function zodToApiError(err: z.ZodError): ApiError {
  const issue = err.issues[0];
  const param = issue.path.map(String).join('.') || null;
  let detail = issue.message;
  if (issue.code === 'invalid_type' && issue.input === undefined) detail = 'this field is required';
  return badRequest(`${param ?? 'body'}: ${detail}`, param, 'invalid_value');
}

/** Messages' content as plain strings (text parts joined). */
export function flattenMessages(messages: ChatRequest['messages']): ChatMessage[] {
  return messages.map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('') }));
}

export function stopList(s: string | string[] | null | undefined): string[] {
  if (s === null || s === undefined) return [];
  const list = typeof s === 'string' ? [s] : s;
  if (list.some((x) => x.length === 0)) throw badRequest('stop: stop strings must not be empty', 'stop');
  return list;
}
