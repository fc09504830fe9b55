/**
 * The responses of a generation request in the OpenAI shapes: one JSON object, or server-sent
 * events (a chunk per piece of text, then the finish reason, usage if asked, and [DONE]), each
 * with the token log-probabilities the request asked for.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { GenerationEvent, GenerationStream } from '../runtime/generation/decoder.js';
import type { TokenLogprob } from '../runtime/generation/logprobs.js';
import { chatLogprobs, CompletionLogprobsBuilder, type ChatLogprobs, type CompletionLogprobs, type TokenText } from './logprobs-format.js';
import type { ServedModel } from './models.js';
import type { HarmonyCalls } from './harmony.js';
import { reasoningReaderOf } from './reasoning-reader.js';
import type { CallReader, ChoiceDelta } from './tools/call-readers.js';
import { callReader, finishReasonOf } from './tools/tool-choice.js';
import type { Endpoint, Prepared, PreparedPrompt } from './prepare.js';
import type { RouteContext } from './routes.js';

/** A token with its log-probability; null for the first prompt token, which nothing predicts. */
interface Scored {
  token: number;
  logprob: TokenLogprob | null;
}

/** The prompt's tokens with their log-probabilities (the decoder's promptLogprobs, first null). */
function promptScored(prompt: PreparedPrompt, entries: ReadonlyArray<TokenLogprob | null>): Scored[] {
  return entries.map((logprob, i) => ({ token: prompt.ids[i], logprob }));
}

/** Each token's own text, special tokens shown (the token a log-probability is about). */
const tokenText = (model: ServedModel): TokenText => (id) => model.tokenizer.tokenizer.decode([id], { skip_special_tokens: false });

type EndEvent = Extract<GenerationEvent, { type: 'end' }>;
type TokenEvent = Extract<GenerationEvent, { type: 'token' }>;

/** What both response shapes are written from. */
export interface ResponseArgs {
  endpoint: Endpoint;
  p: Prepared;
  /** n per prompt, in the order of their indexes (prompt by prompt), decoding together */
  choices: ReadonlyArray<{ prompt: PreparedPrompt; stream: GenerationStream }>;
  reply: FastifyReply;
  /** called once, at the first token of any choice */
  onFirstToken: () => void;
  ctx: RouteContext;
  count: (status: number) => void;
}

/** A response's id, OpenAI's prefix and the client's request id (or a fresh one). */
const responseId = (endpoint: Endpoint, p: Prepared) => `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${p.requestId ?? randomUUID()}`;

/** Usage of a request's choices: each prompt counted once, the completions summed (none when only scored). */
function usageOf(p: Prepared, ends: readonly EndEvent[]) {
  const prompt = p.prompts.reduce((a, pr) => a + pr.ids.length, 0);
  const completion = p.scoreOnly ? 0 : ends.reduce((a, e) => a + e.usage.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** `fn` on its first call only. */
export function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (!called) fn();
    called = true;
  };
}

/** A token event as the response shapes need it: counted, and its log-probabilities as scored tokens. */
export function observe(a: ResponseArgs, firstToken: () => void, of: PreparedPrompt, event: TokenEvent): { prompt: Scored[]; token: Scored | null } {
  firstToken();
  a.ctx.metrics.generatedTokens.inc({ model: a.p.model.id });
  const prompt = event.promptLogprobs ? promptScored(of, event.promptLogprobs) : [];
  const token = event.logprob && !a.p.scoreOnly ? { token: event.token, logprob: event.logprob } : null;
  return { prompt, token };
}

/**
 * One choice's log-probabilities in its endpoint's shape, taken piece by piece (a completions
 * builder keeps its text offsets across the pieces); null when the request asked for none.
 */
function logprobsWriter(endpoint: Endpoint, p: Prepared, text: TokenText): (entries: Scored[]) => CompletionLogprobs | ChatLogprobs | null {
  if (p.params.logprobs === undefined) return () => null;
  if (endpoint === 'chat') return (entries) => chatLogprobs(entries.map((l) => l.logprob!), text);
  const builder = new CompletionLogprobsBuilder(text);
  return (entries) => builder.take(entries);
}

/** A call delta as a chunk's `delta` (OpenAI's shape: the first delta of a call names it, later ones add to its arguments). */
function chunkDelta(d: ChoiceDelta): Record<string, unknown> {
  switch (d.kind) {
    case 'content':
      return { content: d.text };
    case 'reasoning':
      // vLLM's field, under its older name too (clients read one or the other)
      return { reasoning_content: d.text, reasoning: d.text };
    case 'call':
      return { tool_calls: [{ index: d.index, id: d.id, type: 'function', function: { name: d.name, arguments: d.arguments } }] };
    case 'arguments':
      return { tool_calls: [{ index: d.index, function: { arguments: d.text } }] };
  }
}

/**
 * The assistant message the deltas add up to: content (null when the message only calls tools, or
 * only reasoned), the calls, and with a reasoning parser the reasoning (null when there was none).
 */
function messageOf(deltas: readonly ChoiceDelta[], reasoningParsed: boolean): Record<string, unknown> {
  let content = '';
  let reasoning = '';
  const calls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = [];
  for (const d of deltas) {
    if (d.kind === 'content') content += d.text;
    else if (d.kind === 'reasoning') reasoning += d.text;
    else if (d.kind === 'call') calls[d.index] = { id: d.id, type: 'function', function: { name: d.name, arguments: d.arguments } };
    else calls[d.index].function.arguments += d.text;
  }
  const message: Record<string, unknown> = { role: 'assistant', content: content === '' && (calls.length > 0 || reasoningParsed) ? null : content };
  if (reasoningParsed) Object.assign(message, { reasoning_content: reasoning || null, reasoning: reasoning || null });
  if (calls.length > 0) message.tool_calls = calls;
  return message;
}

/**
 * The calls gpt-oss may write as messages to `functions.NAME` under the request's tool choice:
 * any tool under "auto" and "required", the named one under a named choice (one call); null
 * without tools or with tool_choice "none".
 */
function harmonyCalls(mode: Prepared['tools']): HarmonyCalls | null {
  switch (mode.kind) {
    case 'harmony':
    case 'required':
      return { parallel: mode.parallel, names: new Set(mode.tools.map((t) => t.name)) };
    case 'named':
      return { parallel: false, names: new Set([mode.name]) };
    default:
      return null;
  }
}

/** A reader of one chat choice's text: reasoning apart (with a reasoning parser), tool calls read (with tools); null: the text is the content. */
export function choiceReader(p: Prepared): CallReader | null {
  const calls = callReader(p.tools);
  return p.reasoning ? reasoningReaderOf(p.reasoning.parser, p.reasoning.start, calls, p.reasoning.include, harmonyCalls(p.tools)) : calls;
}

export async function jsonResponse(a: ResponseArgs): Promise<void> {
  const { endpoint, p, reply } = a;
  const firstToken = once(a.onFirstToken);
  // the choices decode together (one batch); each is collected on its own
  const choices = await Promise.all(
    a.choices.map(async ({ prompt: of, stream }) => {
      const logprobs: Scored[] = [];
      let end: EndEvent | null = null;
      // chat reads its text for tool calls (the same deltas a stream sends)
      const reader = endpoint === 'chat' ? choiceReader(p) : null;
      const deltas: ChoiceDelta[] = [];
      const ids: number[] = [];
      for await (const event of stream) {
        if (event.type !== 'token') {
          end = event;
          continue;
        }
        const { prompt, token } = observe(a, firstToken, of, event);
        logprobs.push(...prompt, ...(token ? [token] : []));
        if (!p.scoreOnly) ids.push(event.token);
        if (reader && event.text) deltas.push(...reader.push(event.text));
      }
      if (reader) deltas.push(...reader.end());
      return { end, logprobs, reader, deltas, ids };
    }),
  );
  if (choices.some((c) => !c.end || c.end.usage.finishReason === 'abort')) return; // the client is gone
  const done = choices.map((c) => c.end!);
  const text = tokenText(p.model);
  a.count(200);
  const choice = (c: (typeof choices)[number], index: number) => {
    const logprobs = logprobsWriter(endpoint, p, text)(c.logprobs);
    const finish_reason = finishReasonOf(p.tools, c.reader, done[index].usage.finishReason);
    // vLLM's return_token_ids: a completion choice carries its prompt's ids too, a chat response carries them once
    const ids = p.returnTokenIds ? { ...(endpoint === 'chat' ? {} : { prompt_token_ids: [...a.choices[index].prompt.ids] }), token_ids: c.ids } : {};
    return endpoint === 'chat'
      ? { index, message: c.reader ? messageOf(c.deltas, p.reasoning !== null) : { role: 'assistant', content: done[index].text }, logprobs, finish_reason, ...ids }
      : { index, text: (a.choices[index].prompt.echo ?? '') + (p.scoreOnly ? '' : done[index].text), logprobs, finish_reason, ...ids };
  };
  reply.send({
    id: responseId(endpoint, p),
    object: endpoint === 'chat' ? 'chat.completion' : 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: p.model.id,
    choices: choices.map(choice),
    usage: usageOf(p, done),
    ...(p.returnTokenIds && endpoint === 'chat' ? { prompt_token_ids: [...p.prompts[0].ids] } : {}),
  });
}

/** The reply taken over for server-sent events (its headers so far kept, proxies told not to buffer). */
export function openEventStream(reply: FastifyReply): FastifyReply['raw'] {
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  return raw;
}

export async function streamResponse(a: ResponseArgs): Promise<void> {
  const { endpoint, p, reply } = a;
  const id = responseId(endpoint, p);
  const created = Math.floor(Date.now() / 1000);
  const object = endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const raw = openEventStream(reply);
  const send = (data: unknown) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const usageNull = p.includeUsage ? { usage: null } : {};
  const requestChunk = (choices: unknown[], extra: Record<string, unknown>) => ({ id, object, created, model: p.model.id, choices, ...extra });
  const text = tokenText(p.model);
  const firstToken = once(a.onFirstToken);

  /** One choice's chunks, written as its tokens come (the choices' chunks interleave). */
  const streamChoice = async ({ prompt: of, stream }: ResponseArgs['choices'][number], index: number): Promise<EndEvent | null> => {
    // log-probabilities of tokens whose text is held back (a partial character, a possible stop
    // string) go out with the next chunk that carries text, or with the last one
    const pending: Scored[] = [];
    const write = logprobsWriter(endpoint, p, text);
    const takeLogprobs = () => write(pending.splice(0));
    // return_token_ids: each chunk carries the ids of the tokens since the last (as logprobs go)
    const pendingIds: number[] = [];
    let promptIdsSent = false;
    const takeIds = (): Record<string, unknown> => {
      if (!p.returnTokenIds) return {};
      const prompt = endpoint === 'completions' && !promptIdsSent ? { prompt_token_ids: [...of.ids] } : {};
      promptIdsSent = true;
      return { ...prompt, token_ids: pendingIds.splice(0) };
    };
    const choice = (piece: string | null, finish_reason: string | null, firstChunk = false) =>
      endpoint === 'chat'
        ? { index, delta: firstChunk ? { role: 'assistant', content: piece } : piece === null ? {} : { content: piece }, logprobs: firstChunk ? null : takeLogprobs(), finish_reason, ...(firstChunk ? {} : takeIds()) }
        : { index, text: piece ?? '', logprobs: takeLogprobs(), finish_reason, ...takeIds() };
    // chat with tools or a reasoning parser: the text becomes reasoning, content and call deltas (reasoning.ts, tools/call-readers.ts)
    const reader = endpoint === 'chat' ? choiceReader(p) : null;
    // vLLM's continuous_usage_stats: each chunk says the choice's usage so far (its prompt, its tokens)
    let generated = 0;
    const chunk = (choices: unknown[]) =>
      requestChunk(choices, p.continuousUsage ? { usage: { prompt_tokens: of.ids.length, completion_tokens: generated, total_tokens: of.ids.length + generated } } : usageNull);
    const sendDeltas = (deltas: ChoiceDelta[]) => {
      for (const d of deltas) send(chunk([{ index, delta: chunkDelta(d), logprobs: takeLogprobs(), finish_reason: null, ...takeIds() }]));
    };
    // a forced call has no text, so its first chunk says so (content null, as OpenAI's does)
    if (endpoint === 'chat') {
      const first = chunk([choice(p.tools.kind === 'named' || p.tools.kind === 'required' ? null : '', null, true)]);
      send(p.returnTokenIds ? { ...first, prompt_token_ids: [...of.ids] } : first);
    }
    let echoed = false;
    for await (const event of stream) {
      if (event.type !== 'token') {
        if (event.usage.finishReason === 'abort') return null;
        generated = p.scoreOnly ? 0 : event.usage.completionTokens;
        if (reader) sendDeltas(reader.end());
        send(chunk([choice(endpoint === 'chat' ? null : '', finishReasonOf(p.tools, reader, event.usage.finishReason))]));
        return event;
      }
      const { prompt, token } = observe(a, firstToken, of, event);
      if (of.echo !== null && !echoed) {
        // the prompt (and its log-probabilities) first, as its own chunk
        echoed = true;
        pending.push(...prompt);
        send(chunk([choice(of.echo, null)]));
      }
      if (p.scoreOnly) continue;
      generated++;
      if (token) pending.push(token);
      if (p.returnTokenIds) pendingIds.push(event.token);
      if (reader) sendDeltas(event.text ? reader.push(event.text) : []);
      else if (event.text) send(chunk([choice(event.text, null)]));
    }
    return null;
  };

  const ends = await Promise.all(a.choices.map(streamChoice));
  if (ends.every((e) => e !== null)) {
    if (p.includeUsage) send(requestChunk([], { usage: usageOf(p, ends as EndEvent[]) }));
    raw.write('data: [DONE]\n\n');
    a.count(200);
  }
  if (!raw.writableEnded) raw.end();
}
