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

/** Usage of a request's choices: the prompt counted once, the completions summed (none when only scored). */
function usageOf(p: Prepared, ends: ReadonlyArray<Extract<GenerationEvent, { type: 'end' }>>) {
  const completion = p.scoreOnly ? 0 : ends.reduce((a, e) => a + e.usage.completionTokens, 0);
  return { prompt_tokens: p.ids.length, completion_tokens: completion, total_tokens: p.ids.length + completion };
}

/** The token events of one choice, as the response shapes need them. */
function observe(p: Prepared, ctx: RouteContext, onFirstToken: () => void) {
  let first = true;
  return (event: Extract<GenerationEvent, { type: 'token' }>): { prompt: Scored[]; token: Scored | null } => {
    if (first) onFirstToken();
    first = false;
    ctx.metrics.generatedTokens.inc({ model: p.model.id });
    const prompt = event.promptLogprobs ? promptScored(p, event.promptLogprobs) : [];
    const token = event.logprob && !p.scoreOnly ? { token: event.token, logprob: event.logprob } : null;
    return { prompt, token };
  };
}

export async function jsonResponse(
  endpoint: Endpoint,
  p: Prepared,
  streams: readonly GenerationStream[],
  reply: FastifyReply,
  onFirstToken: () => void,
  ctx: RouteContext,
  count: (status: number) => void,
): Promise<void> {
  let firstOfAll = true;
  const firstToken = () => {
    if (firstOfAll) onFirstToken();
    firstOfAll = false;
  };
  // the choices decode together (one batch); each is collected on its own
  const choices = await Promise.all(
    streams.map(async (stream) => {
      const seen = observe(p, ctx, firstToken);
      const logprobs: Scored[] = [];
      let end: Extract<GenerationEvent, { type: 'end' }> | null = null;
      for await (const event of stream) {
        if (event.type !== 'token') {
          end = event;
          continue;
        }
        const { prompt, token } = seen(event);
        logprobs.push(...prompt, ...(token ? [token] : []));
      }
      return { end, logprobs };
    }),
  );
  const ends = choices.map((c) => c.end);
  if (ends.some((e) => !e || e.usage.finishReason === 'abort')) return; // the client is gone
  const done = ends as Array<Extract<GenerationEvent, { type: 'end' }>>;
  const created = Math.floor(Date.now() / 1000);
  count(200);
  const text = tokenText(p.model);
  if (endpoint === 'chat') {
    reply.send({
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      created,
      model: p.model.id,
      choices: choices.map((c, index) => ({
        index,
        message: { role: 'assistant', content: done[index].text },
        logprobs: p.params.logprobs === undefined ? null : chatLogprobs(c.logprobs.map((l) => l.logprob!), text),
        finish_reason: done[index].usage.finishReason,
      })),
      usage: usageOf(p, done),
    });
  } else {
    reply.send({
      id: `cmpl-${randomUUID()}`,
      object: 'text_completion',
      created,
      model: p.model.id,
      choices: choices.map((c, index) => ({
        index,
        text: (p.echo ?? '') + (p.scoreOnly ? '' : done[index].text),
        logprobs: p.params.logprobs === undefined ? null : new CompletionLogprobsBuilder(text).take(c.logprobs),
        finish_reason: done[index].usage.finishReason,
      })),
      usage: usageOf(p, done),
    });
  }
}

export async function streamResponse(
  endpoint: Endpoint,
  p: Prepared,
  streams: readonly GenerationStream[],
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
  const usageNull = p.includeUsage ? { usage: null } : {};
  const chunk = (choices: unknown[], extra: Record<string, unknown> = usageNull) => ({ id, object, created, model: p.model.id, choices, ...extra });
  const text = tokenText(p.model);
  let firstOfAll = true;
  const firstToken = () => {
    if (firstOfAll) onFirstToken();
    firstOfAll = false;
  };

  /** One choice's chunks, written as its tokens come (the choices' chunks interleave). */
  const streamChoice = async (stream: GenerationStream, index: number): Promise<Extract<GenerationEvent, { type: 'end' }> | null> => {
    const seen = observe(p, ctx, firstToken);
    // log-probabilities of tokens whose text is held back (a partial character, a possible stop
    // string) go out with the next chunk that carries text, or with the last one
    const pending: Scored[] = [];
    const completionLogprobs = endpoint === 'chat' ? null : new CompletionLogprobsBuilder(text);
    const takeLogprobs = () => {
      if (p.params.logprobs === undefined) return null;
      const entries = pending.splice(0);
      return completionLogprobs ? completionLogprobs.take(entries) : chatLogprobs(entries.map((l) => l.logprob!), text);
    };
    const choice = (piece: string | null, finish_reason: string | null, firstChunk = false) =>
      endpoint === 'chat'
        ? { index, delta: piece === null ? {} : firstChunk ? { role: 'assistant', content: piece } : { content: piece }, logprobs: firstChunk ? null : takeLogprobs(), finish_reason }
        : { index, text: piece ?? '', logprobs: takeLogprobs(), finish_reason };
    if (endpoint === 'chat') send(chunk([choice('', null, true)]));
    let echoed = false;
    for await (const event of stream) {
      if (event.type !== 'token') {
        if (event.usage.finishReason === 'abort') return null;
        send(chunk([choice(endpoint === 'chat' ? null : '', event.usage.finishReason)]));
        return event;
      }
      const { prompt, token } = seen(event);
      if (p.echo !== null && !echoed) {
        // the prompt (and its log-probabilities) first, as its own chunk
        echoed = true;
        pending.push(...prompt);
        send(chunk([choice(p.echo, null)]));
      }
      if (p.scoreOnly) continue;
      if (token) pending.push(token);
      if (event.text) send(chunk([choice(event.text, null)]));
    }
    return null;
  };

  const ends = await Promise.all(streams.map(streamChoice));
  if (ends.every((e) => e !== null)) {
    if (p.includeUsage) send(chunk([], { usage: usageOf(p, ends as Array<Extract<GenerationEvent, { type: 'end' }>>) }));
    raw.write('data: [DONE]\n\n');
    count(200);
  }
  if (!raw.writableEnded) raw.end();
}
