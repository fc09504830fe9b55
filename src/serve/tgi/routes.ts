/**
 * Text Generation Inference's routes (request.ts, output.ts): POST /generate, /generate_stream
 * and / (either, by `stream`), and GET /info. TGI serves one model; here several may be served,
 * so a request is for the model its path names (POST /tgi/{model}, /tgi/{model}/generate,
 * /tgi/{model}/generate_stream, GET /tgi/{model}/info: a URL to give InferenceClient, whose
 * chat_completion then posts to /tgi/{model}/v1/chat/completions, served as chat), else
 * the one its body's `model` names (this server's addition), else the one model served. With
 * several and none named it is a 422 that lists them.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toApiError } from '../errors.js';
import { lookupModel, MAX_SEQUENCES, modelNamed, prepare, type Endpoint } from '../prepare.js';
import type { GenerationFront, RouteContext } from '../routes.js';
import { sendTgiError, tgiJson, tgiStream, tgiStreamError } from './output.js';
import { parseTgiRequest, TGI_MAX_STOP_SEQUENCES, tgiValidation, type TgiRequest, type TgiRoute } from './request.js';
import { MAX_TOP_LOGPROBS } from '../../runtime/generation/logprobs.js';
import { TOOL_VERSION } from '../../version.js';

type Run = (front: GenerationFront, req: FastifyRequest, reply: FastifyReply) => Promise<void>;
/** The OpenAI endpoint's front for the model a path names, whatever the body says. */
type OpenAiFor = (endpoint: Endpoint, model: string) => GenerationFront;

/** The model a TGI request is for: its path's, its body's, or the only one served. */
function modelOf(ctx: RouteContext, fromPath: string | null, body: unknown): string {
  if (fromPath !== null) return fromPath;
  const named = modelNamed(body);
  if (named !== null) return named;
  const all = [...ctx.models.keys(), ...ctx.refused.keys()];
  if (all.length === 1) return all[0];
  throw tgiValidation(
    `${all.length} models are served here (${all.join(', ')}): post to /tgi/{model}/generate (or /tgi/{model} for InferenceClient), or name one in the body's "model" field`,
    'model',
  );
}

function tgiFront(ctx: RouteContext, route: TgiRoute, fromPath: string | null): GenerationFront {
  let request: TgiRequest | null = null;
  return {
    label: route === 'compat' ? 'tgi' : `tgi_${route}`,
    endpoint: 'completions',
    modelName: (body) => fromPath ?? modelNamed(body),
    async prepare(body) {
      const model = modelOf(ctx, fromPath, body);
      const parsed = parseTgiRequest(body, route, model);
      request = parsed.request;
      const prepared = await prepare(ctx, 'completions', parsed.completionBody, { restOfContext: true });
      // (typical sampling has no field in the completions body it is said as)
      if (request.typicalP < 1) prepared.params.typicalP = request.typicalP;
      return prepared;
    },
    respond: (args) => (request!.stream ? tgiStream(args, request!) : tgiJson(args, request!, route === 'compat')),
    sendError: sendTgiError,
    streamError: tgiStreamError,
  };
}

/** TGI's GET /info for one model: what a client reads of the limits. */
function info(ctx: RouteContext, name: string) {
  const model = lookupModel(ctx, name);
  return {
    model_id: model.id,
    model_sha: null,
    model_pipeline_tag: 'text-generation',
    max_concurrent_requests: MAX_SEQUENCES,
    max_best_of: 1,
    max_stop_sequences: TGI_MAX_STOP_SEQUENCES,
    max_input_tokens: model.contextLength - 1,
    max_total_tokens: model.contextLength,
    max_top_n_tokens: MAX_TOP_LOGPROBS,
    validation_workers: 1,
    max_client_batch_size: 1,
    router: 'rfid-moe',
    version: TOOL_VERSION,
    sha: null,
    docker_label: null,
  };
}

export function registerTgiRoutes(app: FastifyInstance, ctx: RouteContext, run: Run, openai: OpenAiFor): void {
  const infoOf = (fromPath: string | null) => async (_req: FastifyRequest, reply: FastifyReply) => {
    try {
      return info(ctx, modelOf(ctx, fromPath, null));
    } catch (err) {
      return sendTgiError(reply, toApiError(err));
    }
  };
  const pathModel = (req: FastifyRequest) => (req.params as { model: string }).model;

  app.post('/', (req, reply) => run(tgiFront(ctx, 'compat', null), req, reply));
  app.post('/generate', (req, reply) => run(tgiFront(ctx, 'generate', null), req, reply));
  app.post('/generate_stream', (req, reply) => run(tgiFront(ctx, 'generate_stream', null), req, reply));
  app.get('/info', infoOf(null));

  app.post('/tgi/:model', (req, reply) => run(tgiFront(ctx, 'compat', pathModel(req)), req, reply));
  app.post('/tgi/:model/generate', (req, reply) => run(tgiFront(ctx, 'generate', pathModel(req)), req, reply));
  app.post('/tgi/:model/generate_stream', (req, reply) => run(tgiFront(ctx, 'generate_stream', pathModel(req)), req, reply));
  app.get('/tgi/:model/info', (req, reply) => infoOf(pathModel(req))(req, reply));
  // InferenceClient(model=URL).chat_completion posts to URL + /v1/chat/completions with the model
  // "dummy" (TGI serves one model and ignores it): the path's model is the one served
  app.post('/tgi/:model/v1/chat/completions', (req, reply) => run(openai('chat', pathModel(req)), req, reply));
  app.post('/tgi/:model/v1/completions', (req, reply) => run(openai('completions', pathModel(req)), req, reply));
}
