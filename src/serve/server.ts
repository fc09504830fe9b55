/**
 * One server process hosting several models: validates every model directory (refusing broken
 * ones with their reason, serving the rest), wires the residency manager, the model store, the
 * metrics and the routes into fastify, and drains on shutdown: no new requests, in-flight
 * requests run to their end (bounded by `drainTimeoutMs`, after which they are aborted), then
 * every model is unloaded.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import os from 'node:os';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Engine } from '../engine/types.js';
import { realClock, type Clock } from './clock.js';
import { bearerChecker, requiresApiKey } from './api-key.js';
import { ApiError, toApiError } from './errors.js';
import { exposeGc, IdleCollector } from './idle-gc.js';
import { OffThreadEncoder } from './encode-off-thread.js';
import { parseJsonBody } from './json-body.js';
import { trackConnections } from './connections.js';
import { createMetrics, type ServeMetrics } from './metrics.js';
import type { ToolCallFormat } from './tools/formats/index.js';
import type { ReasoningParser } from './reasoning.js';
import { inspectServedModel, ModelStore, parseModelSpec, type LoadedHandle, type RefusedModel, type ServedModel } from './models.js';
import { createPolicy, type PolicyName, type TycheOptions } from './policies.js';
import { ModelTooLargeError, ResidencyManager } from './residency.js';
import { registerCors } from './cors.js';
import { registerRoutes, sendError } from './routes.js';
import { chatTemplateProblem } from './chat-template.js';

export interface ServeOptions {
  /** model directories, or `name=dir` */
  models: string[];
  engine: Engine;
  policy?: PolicyName;
  /** bytes all resident models may hold together (default: half of the machine's memory) */
  memoryBudget?: number;
  /** keep-alive TTL, and Tyche's TTL while a model's rate is still unknown (default 60 s) */
  keepAliveMs?: number;
  /** Tyche's parameters (window W, P_load, P_off, the switches of its rules where the seed is silent); used by policy 'tyche' */
  tyche?: TycheOptions;
  /** requests decoded together per model (default 32) */
  maxBatchSize?: number;
  /** routed experts stored as BF16 stay BF16 in memory (default true: half their bytes); false widens them to f32 */
  bf16Weights?: boolean;
  /**
   * weights kept as stored are views of the checkpoint files mapped into memory (default true;
   * ModelStoreOptions.mapWeights); false reads them into the process's own memory
   */
  mapWeights?: boolean;
  /**
   * a factored model builds its hottest experts densely within its memory share (default true);
   * false keeps every expert factored, so its results do not change while it serves (the dense
   * forms are rounded to the factors' dtype, and the dense set follows live routing)
   */
  materialiseExperts?: boolean;
  /**
   * how the models write tool calls, for tool_choice "auto": a format of TOOL_CALL_FORMATS (or null,
   * none) for every model, or by model id; a model not named gets its own, read from its chat
   * template
   */
  toolCallFormat?: PerModel<ToolCallFormat>;
  /**
   * tell each chat answer's reasoning from its content (reasoning.ts, REASONING_PARSERS): one
   * parser (or null, none) for every model, or by model id; a model not named gets its default
   * (defaultReasoningParser: gpt-oss's harmony reader for gpt-oss, none for the others, whose
   * reasoning then stays in the content)
   */
  reasoningParser?: PerModel<ReasoningParser>;
  /**
   * chat templates (Jinja source) to use instead of the models' own, as vLLM's --chat-template:
   * one for every model, or by model id (the others keep theirs). A model without a template of its
   * own serves chat with one; a template that does not parse refuses its model.
   */
  chatTemplate?: string | Readonly<Record<string, string>>;
  /**
   * the most positions (prompt and completion) a request may use, as vLLM's --max-model-len: caps
   * every model's context below its max_position_embeddings (DeepSeek-V2-Lite declares 163,840), so
   * a chat request without max_tokens reserves that much KV cache in the budget, not the whole
   * declared context. Default: each model's own.
   */
  maxModelLen?: number;
  /** under tool_choice "none", the chat template gets no tools either (vLLM's --exclude-tools-when-tool-choice-none; default false: it gets them, as transformers would render them) */
  excludeToolsWhenToolChoiceNone?: boolean;
  /** how often idle models are checked against the policy (default 100 ms) */
  tickMs?: number;
  /** in-flight requests get this long to finish on shutdown (default 30 s) */
  drainTimeoutMs?: number;
  clock?: Clock;
  /** called for every model refused at startup */
  onRefused?(m: RefusedModel): void;
  /** a problem that does not stop a model from serving (a background materialisation that failed) */
  onWarning?(message: string): void;
  onLoad?(e: { id: string; reason: string; ms: number; bytes: number }): void;
  /** called when a model leaves memory: offloaded by the policy, evicted for another, or at shutdown */
  onUnload?(e: { id: string; reason: 'policy' | 'evicted' | 'shutdown'; bytes: number }): void;
  /** one full GC a second after the server falls idle or unloads a model, so dead buffers do not pin RSS (the CLI sets it) */
  idleGc?: boolean;
  /** no prom-client process metrics (several servers in one process) */
  processMetrics?: boolean;
  /** when set, requests to /v1, the tokenizer routes and the TGI routes must send `Authorization: Bearer <apiKey>` (api-key.ts); /health and /metrics stay open */
  apiKey?: string;
  /** origins whose web pages may call the server (cors.ts): exact origins, or `*` for any; default: pages on this machine */
  allowedOrigins?: readonly string[];
}

export interface RfidMoeServer {
  app: FastifyInstance;
  models: ReadonlyMap<string, ServedModel>;
  refused: ReadonlyMap<string, RefusedModel>;
  residency: ResidencyManager<LoadedHandle>;
  metrics: ServeMetrics;
  listen(opts: { port: number; host: string }): Promise<string>;
  /** stop accepting, let in-flight requests finish, unload everything */
  close(): Promise<void>;
}

export const DEFAULT_MEMORY_BUDGET = () => Math.floor(os.totalmem() / 2);

/** What a draining server still answers: its state, for the orchestrator that stops it. */
const OPEN_WHILE_DRAINING = new Set(['/health', '/metrics']);

/**
 * A request Node's HTTP parser refuses before any route sees it (headers too large, a malformed
 * request line, a timeout), answered as Fastify's default handler answers it but with an OpenAI
 * error object; the connection then closes, as Node's own handler does.
 */
function writeClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request was not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request line and headers are larger than the 16 KiB Node accepts by default; shorten them']
        : [400, `the request could not be parsed as HTTP (${err.code ?? err.message})`];
  if (socket.writable) {
    const body = JSON.stringify(new ApiError(status, message, 'invalid_request_error', null, 'bad_http_request').body());
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}

export async function createServer(opts: ServeOptions): Promise<RfidMoeServer> {
  const policyName = opts.policy ?? 'tyche';
  const budget = opts.memoryBudget ?? DEFAULT_MEMORY_BUDGET();
  const specs = opts.models.map(parseModelSpec);
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.id)) throw new Error(`two models are named ${s.id}; name them apart with name=dir`);
    seen.add(s.id);
  }
  if (opts.maxModelLen !== undefined && !(Number.isSafeInteger(opts.maxModelLen) && opts.maxModelLen >= 2)) throw new RangeError(`maxModelLen must be a whole number of positions ≥ 2, got ${opts.maxModelLen}`);
  const templates = opts.chatTemplate;
  if (templates !== undefined && typeof templates !== 'string') {
    const unknown = Object.keys(templates).filter((id) => !specs.some((s) => s.id === id));
    if (unknown.length > 0) throw new Error(`chat templates are given for ${unknown.join(', ')}, not among the served models (${specs.map((s) => s.id).join(', ')})`);
  }
  const share = Math.floor(budget / Math.max(1, specs.length));
  // long prompts are tokenised off the event loop, by one worker for all models
  const encoder = new OffThreadEncoder();
  const models = new Map<string, ServedModel>();
  const refused = new Map<string, RefusedModel>();
  const refuse = (m: RefusedModel) => {
    refused.set(m.id, m);
    opts.onRefused?.(m);
  };
  for (const spec of specs) {
    try {
      const chatTemplate = forModel(templates, spec.id, (t): t is string => typeof t === 'string') ?? undefined;
      if (chatTemplate !== undefined) {
        const problem = await chatTemplateProblem(chatTemplate);
        if (problem !== null) throw new Error(`the chat template given for it cannot be used: ${problem}`);
      }
      const model = await inspectServedModel(spec, share, {
        bf16Weights: opts.bf16Weights ?? true,
        materialiseExperts: opts.materialiseExperts ?? true,
        encoder,
        toolCallFormat: forModel(opts.toolCallFormat, spec.id, isNamed<ToolCallFormat>),
        reasoningParser: forModel(opts.reasoningParser, spec.id, isNamed<ReasoningParser>),
        chatTemplate,
        maxModelLen: opts.maxModelLen,
        excludeToolsWhenToolChoiceNone: opts.excludeToolsWhenToolChoiceNone,
      });
      if (model.estimatedBytes > budget) throw new ModelTooLargeError(model.id, model.estimatedBytes, budget);
      models.set(model.id, model);
    } catch (err) {
      refuse({ id: spec.id, dir: spec.dir, reason: (err as Error).message });
    }
  }

  const clock = opts.clock ?? realClock;
  let metrics!: ServeMetrics;
  const residency: ResidencyManager<LoadedHandle> = new ResidencyManager({
    clock,
    policy: createPolicy(policyName, { ...opts.tyche, keepAliveMs: opts.keepAliveMs }),
    budgetBytes: budget,
    loader: new ModelStore(models, { engine: opts.engine, maxBatchSize: opts.maxBatchSize ?? 32, bf16Weights: opts.bf16Weights ?? true, mapWeights: opts.mapWeights ?? true, onWarning: opts.onWarning }),
    events: {
      onLoad: (e) => {
        metrics.modelLoads.inc({ model: e.id, reason: e.reason });
        metrics.loadSeconds.observe({ model: e.id }, e.ms / 1000);
        opts.onLoad?.(e);
      },
      onUnload: (e) => {
        opts.onUnload?.(e);
        // An offload exists to give memory back, but the model's buffers leave the process only
        // when V8 collects them, and an idle server does not collect: a model offloaded by its
        // policy's timer kept its RSS until the next request. So an unload counts as work done.
        idle?.begin();
        idle?.end();
      },
    },
  });
  for (const m of models.values()) residency.register(m.id, m.estimatedBytes);
  metrics = createMetrics({
    defaultMetrics: opts.processMetrics ?? true,
    residentBytes: () => residency.allStats().map((s) => ({ model: s.id, bytes: s.status === 'offloaded' ? 0 : s.bytes + s.kvBytes })),
  });

  let draining = false;
  const gc = opts.idleGc ? exposeGc() : null;
  const idle = gc ? new IdleCollector(gc) : null;
  const inFlight = new Map<Promise<unknown>, () => void>();
  // Every answer is an OpenAI error object, also where Fastify and Node would write their own
  // shapes: a URL that does not decode, a request line or headers the parser refuses, and a request
  // that arrives while the server drains (the hook below, in place of return503OnClosing's body).
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024 * 1024,
    return503OnClosing: false,
    frameworkErrors: (err, _req, reply) => {
      metrics.requests.inc({ model: 'unknown', endpoint: 'other', status: '400' });
      sendError(reply, new ApiError(400, `the request URL is not valid: ${err.message}`, 'invalid_request_error', null, 'invalid_url'));
    },
    clientErrorHandler: writeClientError,
  });
  const connections = trackConnections(app.server);
  await registerCors(app, opts.allowedOrigins);
  app.addHook('onRequest', async (req, reply) => {
    if (!draining || OPEN_WHILE_DRAINING.has(req.url.split('?')[0])) return;
    metrics.requests.inc({ model: 'unknown', endpoint: 'other', status: '503' });
    sendError(reply, new ApiError(503, 'the server is shutting down and accepts no new requests', 'service_unavailable_error', null, 'shutting_down'));
    return reply;
  });
  // every body is JSON, whatever its content type (curl -d sends form-urlencoded): json-body.ts
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as ApiError, undefined);
    }
  });
  app.setErrorHandler((err: FastifyError | ApiError, _req, reply) => {
    let e: ApiError;
    // the body parser's own errors (parseJsonBody) are already API errors
    if (err instanceof ApiError) e = err;
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      e = new ApiError(err.statusCode, err.message, 'invalid_request_error', null, err.code ?? null);
    } else e = toApiError(err);
    metrics.requests.inc({ model: 'unknown', endpoint: 'other', status: String(e.status) });
    sendError(reply, e);
  });
  if (opts.apiKey !== undefined) {
    const check = bearerChecker(opts.apiKey);
    app.addHook('onRequest', async (req, reply) => {
      if (!requiresApiKey(req.url)) return;
      const refused = check(req.headers.authorization);
      if (refused) {
        metrics.requests.inc({ model: 'unknown', endpoint: 'other', status: '401' });
        sendError(reply, refused);
        return reply;
      }
    });
  }
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, new ApiError(404, `no route ${req.method} ${req.url}; the endpoints are GET /v1/models, GET /v1/models/{id}, POST /v1/completions, POST /v1/chat/completions, POST /tokenize, POST /detokenize, GET /tokenizer_info, GET /health, GET /metrics`, 'not_found_error', null, 'route_not_found'));
  });

  registerRoutes(app, {
    models,
    refused,
    residency,
    metrics,
    isDraining: () => draining,
    track: (done, abort) => {
      inFlight.set(done, abort);
      idle?.begin();
      void done.finally(() => {
        inFlight.delete(done);
        idle?.end();
      });
    },
  });
  residency.start(opts.tickMs ?? 100);

  let closing: Promise<void> | null = null;
  return {
    app,
    models,
    refused,
    residency,
    metrics,
    async listen({ port, host }) {
      return app.listen({ port, host });
    },
    close() {
      closing ??= (async () => {
        draining = true;
        const closed = app.close();
        const all = Promise.all([...inFlight.keys()]);
        const timeout = opts.drainTimeoutMs ?? 30_000;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeout)))]);
        clearTimeout(timer);
        if (timedOut) for (const abort of inFlight.values()) abort();
        await all;
        // what Node's close leaves open once nothing is in flight: connections with no request
        // being answered, among them ones a client opened and never used, and those whose last
        // answer is still being sent once it ends (connections.ts)
        connections.closeWhenUnused();
        await closed;
        await residency.close();
        await encoder.close();
        idle?.stop();
      })();
      return closing;
    },
  };
}

/**
 * A setting given for every model or by model id: one value (a tool-call format, a reasoning
 * parser, a chat template; null for none where that means something), or a map from model ids.
 */
export type PerModel<T> = T | null | Readonly<Record<string, T | null>>;

/** What a PerModel setting gives model `id` (undefined: nothing, the model's own); `isOne` tells one value from a map. */
function forModel<T>(given: PerModel<T> | undefined, id: string, isOne: (v: unknown) => v is T): T | null | undefined {
  if (given === undefined || given === null || isOne(given)) return given as T | null | undefined;
  const byId = given as Readonly<Record<string, T | null>>;
  return Object.hasOwn(byId, id) ? byId[id] : undefined;
}

/** A tool-call format or reasoning parser (whose name is a string), not a map of them. */
const isNamed = <T extends { readonly name: string }>(v: unknown): v is T => typeof (v as { name?: unknown }).name === 'string';
