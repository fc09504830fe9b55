/**
 * The OpenAI-compatible endpoints on fastify: GET /v1/models, POST /v1/completions and
 * /v1/chat/completions (JSON or server-sent events), GET /health, GET /metrics.
 *
 * A generation request is validated and tokenized before its model is touched (a bad request
 * never causes a load), then acquires its model from the residency manager (waiting for a load
 * if it is not resident), is submitted to that model's continuous-batching decoder, and releases
 * the model when its stream ends. A client that disconnects aborts its request: the decoder
 * drops it at the next step and frees its KV-cache slot.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationEvent, GenerationStream } from '../runtime/generation/decoder.js';
import { buildChatPrompt } from './chat-template.js';
import { ApiError, badRequest, modelNotFound, modelUnavailable, toApiError } from './errors.js';
import { chatLogprobs, CompletionLogprobsBuilder, type TokenText } from './logprobs-format.js';
import type { TokenLogprob } from '../runtime/generation/logprobs.js';
import type { ServeMetrics } from './metrics.js';
import type { LoadedHandle, RefusedModel, ServedModel } from './models.js';
import { KvCacheTooLargeError, type ResidencyManager } from './residency.js';
import { kvSlotBoundBytes } from '../runtime/kv-cache.js';
import { chatRequest, completionRequest, flattenMessages, parseBody, stopList, type ChatRequest, type CompletionRequest } from './schemas.js';

export interface RouteContext {
  models: ReadonlyMap<string, ServedModel>;
  refused: ReadonlyMap<string, RefusedModel>;
  residency: ResidencyManager<LoadedHandle>;
  metrics: ServeMetrics;
  /** true once SIGTERM/close began: new generation requests get 503 */
  isDraining(): boolean;
  /** in-flight generation requests register here so a drain can wait for them */
  track(done: Promise<unknown>, abort: () => void): void;
}

type Endpoint = 'completions' | 'chat';

/** Default completion length when a request gives none: OpenAI's 16 for completions, the rest of the context for chat (as vLLM). */
const DEFAULT_COMPLETION_TOKENS = 16;

export function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).header('content-type', 'application/json; charset=utf-8').send(err.body());
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/health', async () => ({
    status: ctx.isDraining() ? 'draining' : 'ok',
    policy: ctx.residency.policy.name,
    memory_budget_bytes: ctx.residency.budgetBytes,
    used_bytes: ctx.residency.usedBytes(),
    process_memory: process.memoryUsage(),
    models: [
      ...[...ctx.models.values()].map((m) => {
        const s = ctx.residency.stats(m.id);
        const decoder = ctx.residency.handleIfResident(m.id)?.decoder;
        return {
          id: m.id,
          kind: m.kind,
          status: s.status,
          bytes: s.bytes,
          kv_reserved_bytes: s.kvBytes,
          in_flight: s.inFlight,
          requests: s.requests,
          loads: s.loads,
          cold_starts: s.coldStarts,
          rate_per_s: s.rate,
          load_wait_ms: s.loadWaitMs,
          resident_byte_seconds: s.residentByteSeconds,
          active_sequences: decoder ? decoder.activeCount + decoder.waitingCount : 0,
          kv_cache_bytes: decoder ? decoder.kvCacheBytes : 0,
        };
      }),
      ...[...ctx.refused.values()].map((m) => ({ id: m.id, status: 'refused', reason: m.reason })),
    ],
  }));

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });

  const modelObject = (m: ServedModel) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'rfid-moe', max_model_len: m.contextLength });
  app.get('/v1/models', async () => ({ object: 'list', data: [...ctx.models.values()].map(modelObject) }));
  // the OpenAI API's "retrieve model" (client.models.retrieve(id)); ids may contain '/' (org/name)
  app.get('/v1/models/*', async (req, reply) => {
    try {
      return modelObject(lookupModel(ctx, (req.params as { '*': string })['*']));
    } catch (err) {
      return sendError(reply, toApiError(err));
    }
  });

  app.post('/v1/completions', (req, reply) => generation(ctx, 'completions', req, reply));
  app.post('/v1/chat/completions', (req, reply) => generation(ctx, 'chat', req, reply));
}

interface Prepared {
  model: ServedModel;
  ids: Int32Array;
  maxTokens: number;
  /** completions' echo: the prompt's text, sent back before the completion; null without echo */
  echo: string | null;
  /** max_tokens 0 with echo: one token is decoded (the prompt's last logits need a step) but none is returned */
  scoreOnly: boolean;
  stream: boolean;
  includeUsage: boolean;
  params: { temperature?: number; topP?: number; topK?: number; seed?: number; stop: string[]; stopTokenIds: number[]; logprobs?: number; promptLogprobs?: number };
}

/** Alternatives per token the request asks log-probabilities for (undefined: none), in either endpoint's form. */
function logprobsOf(endpoint: Endpoint, req: CompletionRequest | ChatRequest): number | undefined {
  if (endpoint !== 'chat') return (req as CompletionRequest).logprobs ?? undefined;
  const chat = req as ChatRequest;
  if (!chat.logprobs) {
    if (chat.top_logprobs !== null && chat.top_logprobs !== undefined) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs', 'invalid_value');
    return undefined;
  }
  return chat.top_logprobs ?? 0;
}

/** The prompt as echoed: the text given, or the decoding of the token ids given. */
function promptText(model: ServedModel, prompt: CompletionRequest['prompt'], ids: Int32Array): string {
  if (typeof prompt === 'string') return prompt;
  if (typeof prompt[0] === 'string') return prompt[0];
  return model.tokenizer.tokenizer.decode([...ids], { skip_special_tokens: false });
}

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

/** A request's stop_token_ids, each a token id of the model. */
function stopTokenIdsOf(ids: readonly number[] | null | undefined, model: ServedModel): number[] {
  for (const id of ids ?? []) {
    if (id >= model.vocabSize) throw badRequest(`stop_token_ids: ${id} is outside the vocabulary [0, ${model.vocabSize}) of \`${model.id}\``, 'stop_token_ids', 'invalid_parameter');
  }
  return [...(ids ?? [])];
}

function lookupModel(ctx: RouteContext, name: string): ServedModel {
  const model = ctx.models.get(name);
  if (model) return model;
  const refused = ctx.refused.get(name);
  if (refused) throw modelUnavailable(name, refused.reason);
  throw modelNotFound(name, [...ctx.models.keys()]);
}

async function prepare(ctx: RouteContext, endpoint: Endpoint, body: unknown): Promise<Prepared> {
  const req: CompletionRequest | ChatRequest = endpoint === 'chat' ? parseBody(chatRequest, body) : parseBody(completionRequest, body);
  const model = lookupModel(ctx, req.model);
  const logprobs = logprobsOf(endpoint, req);
  let ids: Int32Array;
  if (endpoint === 'chat') {
    const chat = req as ChatRequest;
    ids = (await buildChatPrompt(model, flattenMessages(chat.messages), chat.chat_template_kwargs ?? {})).ids;
  } else {
    const prompt = (req as CompletionRequest).prompt;
    if (typeof prompt === 'string' || typeof prompt[0] === 'string') {
      const text = typeof prompt === 'string' ? prompt : (prompt[0] as string);
      ids = Int32Array.from(model.tokenizer.tokenizer.encode(text).ids);
    } else {
      // token ids, checked here: before a load is started for them, and before the Int32
      // conversion, which would wrap 2³² + 1 to the valid id 1 (the schema checked integer ≥ 0)
      const given = (Array.isArray(prompt[0]) ? prompt[0] : prompt) as number[];
      const bad = given.findIndex((id) => id >= model.vocabSize);
      if (bad >= 0) throw badRequest(`prompt token id ${given[bad]} (position ${bad}) is outside the vocabulary [0, ${model.vocabSize}) of \`${model.id}\``, 'prompt', 'invalid_parameter');
      ids = Int32Array.from(given);
    }
  }
  const context = model.contextLength;
  if (ids.length >= context) {
    throw badRequest(`This model's maximum context length is ${context} tokens, but the prompt has ${ids.length} tokens (at least one position must be left to generate). Shorten the prompt.`, endpoint === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded');
  }
  const requested = endpoint === 'chat' ? ((req as ChatRequest).max_completion_tokens ?? req.max_tokens) : req.max_tokens;
  const echo = endpoint === 'chat' ? false : ((req as CompletionRequest).echo ?? false);
  if (requested === 0 && !echo) throw badRequest('max_tokens must be at least 1 (0 only with echo, to score the prompt)', 'max_tokens', 'invalid_value');
  const scoreOnly = requested === 0;
  const maxTokens = scoreOnly ? 1 : (requested ?? (endpoint === 'chat' ? context - ids.length : Math.min(DEFAULT_COMPLETION_TOKENS, context - ids.length)));
  if (ids.length + maxTokens > context) {
    throw badRequest(
      `This model's maximum context length is ${context} tokens. However, you requested ${ids.length + maxTokens} tokens (${ids.length} in the prompt, ${maxTokens} for the completion). Reduce the prompt or max_tokens.`,
      'max_tokens',
      'context_length_exceeded',
    );
  }
  // fields the request leaves out take the model's generation_config.json settings, as in vLLM
  const defaults = model.samplingDefaults;
  const topK = req.top_k ?? defaults.topK;
  return {
    model,
    ids,
    maxTokens,
    echo: echo ? promptText(model, (req as CompletionRequest).prompt, ids) : null,
    scoreOnly,
    stream: req.stream ?? false,
    includeUsage: req.stream_options?.include_usage ?? false,
    params: {
      temperature: req.temperature ?? defaults.temperature,
      topP: req.top_p ?? defaults.topP,
      topK: topK === undefined || topK < 0 ? undefined : topK,
      seed: req.seed ?? undefined,
      stop: stopList(req.stop),
      stopTokenIds: [...new Set([...(req.ignore_eos ? [] : model.eosTokenIds), ...stopTokenIdsOf(req.stop_token_ids, model)])],
      logprobs,
      promptLogprobs: echo ? logprobs : undefined,
    },
  };
}

async function generation(ctx: RouteContext, endpoint: Endpoint, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const arrived = performance.now();
  let modelLabel = 'unknown';
  const count = (status: number) => ctx.metrics.requests.inc({ model: modelLabel, endpoint, status: String(status) });
  if (ctx.isDraining()) {
    count(503);
    sendError(reply, new ApiError(503, 'the server is shutting down and accepts no new requests', 'service_unavailable_error', null, 'shutting_down'));
    return;
  }
  let prepared: Prepared;
  try {
    prepared = await prepare(ctx, endpoint, req.body);
  } catch (err) {
    const e = toApiError(err);
    if (e.status !== 404 && typeof (req.body as { model?: unknown } | null)?.model === 'string' && ctx.models.has((req.body as { model: string }).model)) modelLabel = (req.body as { model: string }).model;
    count(e.status);
    sendError(reply, e);
    return;
  }
  const { model } = prepared;
  modelLabel = model.id;

  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableEnded) controller.abort();
  };
  reply.raw.on('close', onClose);
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  ctx.track(done, () => controller.abort());
  ctx.metrics.inFlight.inc({ model: model.id });
  let acquired: Awaited<ReturnType<ResidencyManager<LoadedHandle>['acquire']>> | null = null;
  try {
    try {
      // the KV cache this request can grow to counts in the memory budget while it runs
      const positions = Math.min(model.contextLength, prepared.ids.length + prepared.maxTokens);
      acquired = await ctx.residency.acquire(model.id, { kvBytes: kvSlotBoundBytes(model.kv.layers, model.kv.width, model.contextLength, positions) });
    } catch (err) {
      if (err instanceof KvCacheTooLargeError) throw badRequest(err.message, 'max_tokens', 'memory_budget_exceeded');
      throw err instanceof ApiError ? err : modelUnavailable(model.id, `loading it failed: ${(err as Error).message}`);
    }
    if (acquired.cold) ctx.metrics.coldStarts.inc({ model: model.id });
    // per-request residency facts for clients and the trace-replay benchmark
    reply.header('x-rfid-moe-load-wait-ms', acquired.waitMs.toFixed(1));
    reply.header('x-rfid-moe-cold-start', acquired.cold ? '1' : '0');
    ctx.metrics.loadWait.observe({ model: model.id }, acquired.waitMs / 1000);
    const stream = acquired.handle.decoder.submit(prepared.ids, {
      maxNewTokens: prepared.maxTokens,
      ...prepared.params,
      signal: controller.signal,
    });
    ctx.metrics.promptTokens.inc({ model: model.id }, prepared.ids.length);
    const onFirstToken = () => ctx.metrics.timeToFirstToken.observe({ model: model.id }, (performance.now() - arrived) / 1000);
    if (prepared.stream) await streamResponse(endpoint, prepared, stream, reply, onFirstToken, ctx, count);
    else await jsonResponse(endpoint, prepared, stream, reply, onFirstToken, ctx, count);
  } catch (err) {
    const e = toApiError(err);
    count(e.status);
    if (reply.sent || reply.raw.headersSent) {
      if (!reply.raw.writableEnded) {
        reply.raw.write(`data: ${JSON.stringify(e.body())}\n\n`);
        reply.raw.end();
      }
    } else sendError(reply, e);
  } finally {
    reply.raw.off('close', onClose);
    acquired?.release();
    ctx.metrics.inFlight.dec({ model: model.id });
    finish();
  }
}

const usageOf = (u: { promptTokens: number; completionTokens: number }) => ({ prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens });

async function jsonResponse(
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

async function streamResponse(
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
