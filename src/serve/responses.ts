/**
 * The responses of a generation request in the OpenAI shapes: one JSON object, or server-sent
 * events (a chunk per piece of text, then the finish reason, usage if asked, and [DONE]), each
 * with the token log-probabilities the request asked for.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { GenerationEvent, GenerationStream } from '../runtime/generation/decoder.js';
import type { TokenLogprob } from '../runtime/generation/logprobs.js';
import { chatLogprobs, CompletionLogprobsBuilder, type TokenText } from './logprobs-format.js';
import type { ServedModel } from './models.js';
import type { Endpoint, Prepared } from './prepare.js';
import type { RouteContext } from './routes.js';

/** A token with its log-probability; null for the first prompt token, which nothing predicts. */
interface Scored {
  token: number;
  logprob: TokenLogprob | null;
}

/** The prompt's tokens with their log-probabilities (the decoder's promptLogprobs, first null). */
function promptScored(p: Prepared, entries: ReadonlyArray<TokenLogprob | null>): Scored[] {
  return entries.map((logprob, i) => ({ token: p.ids[i], logprob }));
}

/** Each token's own text, special tokens shown (the token a log-probability is about). */
const tokenText = (model: ServedModel): TokenText => (id) => model.tokenizer.tokenizer.decode([id], { skip_special_tokens: false });

const usageOf = (u: { promptTokens: number; completionTokens: number }) => ({ prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens });

export async function jsonResponse(
  endpoint: Endpoint,
  p: Prepared,
  stream: GenerationStream,
  reply: FastifyReply,
  onFirstToken: () => void,
  ctx: RouteContext,
  count: (status: number) => void,
): Promise<void> {
  let first = true;
  let end: Extract<GenerationEvent, { type: 'end' }> | null = null;
  const logprobs: Scored[] = [];
  for await (const event of stream) {
    if (event.type === 'token') {
      if (first) onFirstToken();
      first = false;
      ctx.metrics.generatedTokens.inc({ model: p.model.id });
      if (event.promptLogprobs) logprobs.push(...promptScored(p, event.promptLogprobs));
      if (event.logprob && !p.scoreOnly) logprobs.push({ token: event.token, logprob: event.logprob });
    } else end = event;
  }
  if (!end || end.usage.finishReason === 'abort') return; // the client is gone
  const created = Math.floor(Date.now() / 1000);
  const finish_reason = end.usage.finishReason;
  count(200);
  if (endpoint === 'chat') {
    reply.send({
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      created,
      model: p.model.id,
      choices: [{ index: 0, message: { role: 'assistant', content: end.text }, logprobs: p.params.logprobs === undefined ? null : chatLogprobs(logprobs.map((l) => l.logprob!), tokenText(p.model)), finish_reason }],
      usage: usageOf(end.usage),
    });
  } else {
    reply.send({
      id: `cmpl-${randomUUID()}`,
      object: 'text_completion',
      created,
      model: p.model.id,
      choices: [{ index: 0, text: (p.echo ?? '') + (p.scoreOnly ? '' : end.text), logprobs: p.params.logprobs === undefined ? null : new CompletionLogprobsBuilder(tokenText(p.model)).take(logprobs), finish_reason }],
      usage: usageOf(p.scoreOnly ? { ...end.usage, completionTokens: 0 } : end.usage),
    });
  }
}

export async function streamResponse(
  endpoint: Endpoint,
  p: Prepared,
  stream: GenerationStream,
  reply: FastifyReply,
  onFirstToken: () => void,
  ctx: RouteContext,
  count: (status: number) => void,
): Promise<void> {
  const id = `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const object = endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const send = (data: unknown) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  // log-probabilities of tokens whose text is held back (a partial character, a possible stop
  // string) go out with the next chunk that carries text, or with the last one
  const pending: Scored[] = [];
  const completionLogprobs = endpoint === 'chat' ? null : new CompletionLogprobsBuilder(tokenText(p.model));
  const takeLogprobs = () => {
    if (p.params.logprobs === undefined) return null;
    const entries = pending.splice(0);
    return completionLogprobs ? completionLogprobs.take(entries) : chatLogprobs(entries.map((l) => l.logprob!), tokenText(p.model));
  };
  const choice = (text: string | null, finish_reason: string | null, firstChunk = false) =>
    endpoint === 'chat'
      ? { index: 0, delta: text === null ? {} : firstChunk ? { role: 'assistant', content: text } : { content: text }, logprobs: firstChunk ? null : takeLogprobs(), finish_reason }
      : { index: 0, text: text ?? '', logprobs: takeLogprobs(), finish_reason };
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ id, object, created, model: p.model.id, choices, ...extra });
  if (endpoint === 'chat') send(chunk([choice('', null, true)], p.includeUsage ? { usage: null } : {}));
  let first = true;
  let echoed = false;
  for await (const event of stream) {
    if (event.type === 'token') {
      if (first) onFirstToken();
      first = false;
      ctx.metrics.generatedTokens.inc({ model: p.model.id });
      if (p.echo !== null && !echoed) {
        // the prompt (and its log-probabilities) first, as its own chunk
        echoed = true;
        if (event.promptLogprobs) pending.push(...promptScored(p, event.promptLogprobs));
        send(chunk([choice(p.echo, null)], p.includeUsage ? { usage: null } : {}));
      }
      if (p.scoreOnly) continue;
      if (event.logprob) pending.push({ token: event.token, logprob: event.logprob });
      if (event.text) send(chunk([choice(event.text, null)], p.includeUsage ? { usage: null } : {}));
      continue;
    }
    if (event.usage.finishReason === 'abort') break;
    send(chunk([choice(endpoint === 'chat' ? null : '', event.usage.finishReason)], p.includeUsage ? { usage: null } : {}));
    if (p.includeUsage) send(chunk([], { usage: usageOf(event.usage) }));
    raw.write('data: [DONE]\n\n');
    count(200);
  }
  if (!raw.writableEnded) raw.end();
}
