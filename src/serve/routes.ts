/**
 * The OpenAI-compatible endpoints on fastify: GET /v1/models (and /v1/models/{id}), POST
 * /v1/completions and /v1/chat/completions (JSON or server-sent events: responses.ts), POST
 * /v1/responses (served as the chat request it describes: openai-responses/), GET
 * /health, GET /metrics, vLLM's POST /tokenize and /detokenize and GET /tokenizer_info
 * (tokenize.ts), and Text Generation Inference's generate API (tgi/). Requests are made ready in
 * prepare.ts; each API is a GenerationFront over the one generation path below.
 *
 * A generation request is validated and tokenized before its model is touched (a bad request
 * never causes a load), then acquires its model from the residency manager (waiting for a load
 * if it is not resident), is submitted to that model's continuous-batching decoder, and releases
 * the model when its stream ends. A client that disconnects aborts its request: the decoder
 * drops it at the next step and frees its KV-cache slot.
 */
import { setMaxListeners } from 'node:events';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, badRequest, modelUnavailable, toApiError } from './errors.js';
import type { ServeMetrics } from './metrics.js';
import type { LoadedHandle, RefusedModel, ServedModel } from './models.js';
import { lookupModel, MAX_SEQUENCES, modelNamed, prepare, type Endpoint, type Prepared, type PreparedPrompt } from './prepare.js';
import { KvCacheTooLargeError, type ResidencyManager } from './residency.js';
import { jsonResponse, streamResponse, type ResponseArgs } from './responses.js';
import { registerTgiRoutes } from './tgi/routes.js';
import { MAX_REQUEST_ID, requestId } from './schemas.js';
import { responsesJson, responsesStream, responsesStreamError } from './openai-responses/output.js';
import { parseResponsesRequest, responsesParam, type ResponsesRequest } from './openai-responses/request.js';
import { detokenizeRequest, tokenize, tokenizerInfo } from './tokenize.js';
import { kvSlotBoundBytes } from '../runtime/kv-cache.js';

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

/**
 * How one API reads a generation request and answers it: OpenAI's completions and chat, the
 * Responses API, Text Generation Inference's generate (tgi/). Everything between (the model's
 * residency, the decoder, metrics, aborts and drains) is one path, generation().
 */
export interface GenerationFront {
  /** the requests metric's endpoint label */
  label: string;
  /** the response shapes' endpoint (the Responses API is chat, TGI's generate completions) */
  endpoint: Endpoint;
  /** the model a body names, for the metrics of a request refused before it is made ready */
  modelName(body: unknown): string | null;
  /** the request validated and tokenized (prepare.ts); throws ApiErrors */
  prepare(body: unknown): Promise<Prepared>;
  /** the answer: JSON or events, as the prepared request asks */
  respond(args: ResponseArgs): Promise<void>;
  /** an error before anything was sent */
  sendError(reply: FastifyReply, e: ApiError): unknown;
  /** an error as the event that ends a stream already under way */
  streamError(e: ApiError): string;
}

export function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).header('content-type', 'application/json; charset=utf-8').send(err.body());
}

/** A handler whose result is the JSON answer and whose errors are OpenAI-shaped error objects. */
function answer(handle: (req: FastifyRequest) => unknown): (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
  return async (req, reply) => {
    try {
      return await handle(req);
    } catch (err) {
      return sendError(reply, toApiError(err));
    }
  };
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
          // since the model was last loaded: prompt tokens its forward passes ran, and those copied from a prompt with the same beginning
          prefill_tokens: decoder ? decoder.stats.prefillTokens : 0,
          shared_prefix_tokens: decoder ? decoder.stats.sharedPrefixTokens : 0,
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
  // the OpenAI API's "retrieve model" (client.models.retrieve(id)); the id is the rest of the path
  app.get('/v1/models/*', answer((req) => modelObject(lookupModel(ctx, (req.params as { '*': string })['*']))));

  // vLLM's tokenizer endpoints (tokenize.ts): the tokenizer alone, no load
  app.post('/tokenize', answer((req) => tokenize(ctx, req.body)));
  app.post('/detokenize', answer((req) => detokenizeRequest(ctx, req.body)));
  app.get('/tokenizer_info', answer((req) => tokenizerInfo(ctx, req.query)));

  app.post('/v1/completions', (req, reply) => generation(ctx, openaiFront(ctx, 'completions'), req, reply));
  app.post('/v1/chat/completions', (req, reply) => generation(ctx, openaiFront(ctx, 'chat'), req, reply));
  app.post('/v1/responses', (req, reply) => generation(ctx, responsesFront(ctx), req, reply));
  // nothing is stored (openai-responses/request.ts): a stored response is never found
  app.get('/v1/responses/:id', (req, reply) => sendError(reply, new ApiError(404, `no response ${JSON.stringify((req.params as { id: string }).id)}: this server does not store responses (store is accepted and ignored)`, 'invalid_request_error', 'id', 'response_not_found')));

  registerTgiRoutes(app, ctx, (front, req, reply) => generation(ctx, front, req, reply), (endpoint, model) => openaiFront(ctx, endpoint, model));
}

/** The X-Request-Id header's id (null: none); a 400 where it is not one. */
function requestIdHeader(req: FastifyRequest): string | null {
  const header = req.headers['x-request-id'];
  if (header === undefined) return null;
  const parsed = requestId.safeParse(header);
  if (!parsed.success) throw badRequest(`the X-Request-Id header must be 1 to ${MAX_REQUEST_ID} visible ASCII characters`, null, 'invalid_value');
  return parsed.data;
}

/**
 * The OpenAI completions and chat endpoints; `model`, when given, is the model whatever the body
 * names (a URL that names the model: tgi/routes.ts).
 */
function openaiFront(ctx: RouteContext, endpoint: Endpoint, model: string | null = null): GenerationFront {
  return {
    label: endpoint,
    endpoint,
    modelName: (body) => model ?? modelNamed(body),
    prepare: (body) => prepare(ctx, endpoint, model !== null && body !== null && typeof body === 'object' && !Array.isArray(body) ? { ...body, model } : body),
    respond: (args) => (args.p.stream ? streamResponse(args) : jsonResponse(args)),
    sendError,
    streamError: (e) => `data: ${JSON.stringify(e.body())}\n\n`,
  };
}

/** The Responses API, served as the chat request it stands for (openai-responses/request.ts). */
function responsesFront(ctx: RouteContext): GenerationFront {
  let request: ResponsesRequest | null = null;
  return {
    label: 'responses',
    endpoint: 'chat',
    modelName: modelNamed,
    async prepare(body) {
      const parsed = parseResponsesRequest(body);
      request = parsed.request;
      try {
        return await prepare(ctx, 'chat', parsed.chatBody);
      } catch (err) {
        const e = toApiError(err);
        throw new ApiError(e.status, e.message, e.type, responsesParam(e.param), e.code);
      }
    },
    respond: (args) => (args.p.stream ? responsesStream(args, request!) : responsesJson(args, request!)),
    sendError,
    streamError: (e) => responsesStreamError(e.body()),
  };
}

async function generation(ctx: RouteContext, front: GenerationFront, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const arrived = performance.now();
  let modelLabel = 'unknown';
  const count = (status: number) => ctx.metrics.requests.inc({ model: modelLabel, endpoint: front.label, status: String(status) });
  let prepared: Prepared;
  try {
    // the client's id, said back for its logs (as vLLM's --enable-request-id-headers does), errors included
    const header = requestIdHeader(req);
    if (header !== null) reply.header('x-request-id', header);
    prepared = await front.prepare(req.body);
    if (header !== null) prepared.requestId = header;
    else if (prepared.requestId !== null) reply.header('x-request-id', prepared.requestId);
  } catch (err) {
    const e = toApiError(err);
    const named = front.modelName(req.body);
    if (e.status !== 404 && named !== null && ctx.models.has(named)) modelLabel = named;
    count(e.status);
    front.sendError(reply, e);
    return;
  }
  const { model } = prepared;
  modelLabel = model.id;

  const controller = new AbortController();
  // every sequence of the request (n × prompts, up to MAX_SEQUENCES) listens for the abort: more
  // than Node's default of 10 listeners is expected here, not a leak to warn about
  setMaxListeners(MAX_SEQUENCES + 1, controller.signal);
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
      const slotBytes = (pr: PreparedPrompt) =>
        kvSlotBoundBytes(model.kv.layers, model.kv.width, model.contextLength, Math.min(model.contextLength, pr.ids.length + pr.maxTokens), model.kv.valuesAreKeys, model.kv);
      acquired = await ctx.residency.acquire(model.id, { kvBytes: prepared.n * prepared.prompts.reduce((sum, pr) => sum + slotBytes(pr), 0) });
    } catch (err) {
      if (err instanceof KvCacheTooLargeError) throw badRequest(err.message, 'max_tokens', 'memory_budget_exceeded');
      throw err instanceof ApiError ? err : modelUnavailable(model.id, `loading it failed: ${(err as Error).message}`);
    }
    if (acquired.cold) ctx.metrics.coldStarts.inc({ model: model.id });
    // per-request residency facts for clients and the trace-replay benchmark
    reply.header('x-rfid-moe-load-wait-ms', acquired.waitMs.toFixed(1));
    reply.header('x-rfid-moe-cold-start', acquired.cold ? '1' : '0');
    ctx.metrics.loadWait.observe({ model: model.id }, acquired.waitMs / 1000);
    // each prompt's n choices are n sequences of it, all of the request's decoded together; a
    // given seed s seeds choice i of every prompt with s + i, so they differ and each is
    // reproducible, the same as when its prompt is sent alone
    const { seed } = prepared.params;
    const choices = prepared.prompts.flatMap((prompt) =>
      Array.from({ length: prepared.n }, (_, i) => ({
        prompt,
        stream: acquired!.handle.decoder.submit(prompt.ids, {
          maxNewTokens: prompt.maxTokens,
          ...prepared.params,
          seed: seed === undefined ? undefined : seed + i,
          signal: controller.signal,
        }),
      })),
    );
    ctx.metrics.promptTokens.inc({ model: model.id }, prepared.prompts.reduce((sum, pr) => sum + pr.ids.length, 0));
    const onFirstToken = () => ctx.metrics.timeToFirstToken.observe({ model: model.id }, (performance.now() - arrived) / 1000);
    await front.respond({ endpoint: front.endpoint, p: prepared, choices, reply, onFirstToken, ctx, count });
  } catch (err) {
    const e = toApiError(err);
    count(e.status);
    if (reply.sent || reply.raw.headersSent) {
      if (!reply.raw.writableEnded) {
        reply.raw.write(front.streamError(e));
        reply.raw.end();
      }
    } else front.sendError(reply, e);
  } finally {
    reply.raw.off('close', onClose);
    acquired?.release();
    ctx.metrics.inFlight.dec({ model: model.id });
    finish();
  }
}
