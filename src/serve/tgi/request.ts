/**
 * Text Generation Inference's own API (POST /generate, /generate_stream, and / which is either):
 * what Hugging Face's `InferenceClient.text_generation` sends to a URL, and LangChain's
 * HuggingFaceEndpoint through it. A request {inputs, parameters, stream} is validated with TGI's
 * rules and messages, then said as the completions request it stands for, so one path
 * (prepare.ts) tokenizes, bounds and samples both. TGI's semantics are kept where they differ
 * from OpenAI's:
 *
 * - Greedy unless asked otherwise: a request samples when `do_sample` is true or a sampling
 *   parameter is active (temperature ≠ 1, top_k, top_p < 1, typical_p), as TGI's server
 *   decides; a body without `parameters` samples (TGI's default parameters set do_sample). The
 *   model's generation_config.json settings are not a request's defaults here, as they are not in
 *   TGI.
 * - `max_new_tokens` left out: the rest of the context, as TGI's router does.
 * - A stop sequence stays in the generated text (TGI does not cut it).
 * - `return_full_text`: the prompt before the text; POST / defaults to it, as TGI does for a
 *   text-generation model, and /generate and /generate_stream do not.
 *
 * typical_p is followed (transformers' TypicalLogitsWarper, sampling.ts): LangChain's
 * HuggingFaceEndpoint sends 0.95 by default. What this server cannot do is a 422 that names it,
 * never ignored: best_of > 1, watermark, adapters. Unknown parameters are refused too (TGI
 * ignores them): a misspelt one would otherwise change nothing without a word.
 */
import { z } from 'zod';
import { MAX_TOP_LOGPROBS } from '../../runtime/generation/logprobs.js';
import { MAX_FREQUENCY_PENALTY } from '../../runtime/generation/logits-processors.js';
import { ApiError } from '../errors.js';
import { MAX_TOKENS_LIMIT } from '../schemas.js';

/** Which of TGI's routes a request came by. */
export type TgiRoute = 'compat' | 'generate' | 'generate_stream';

/** The most stop sequences a request may give (TGI's own default is 4; the completions endpoints allow 16). */
export const TGI_MAX_STOP_SEQUENCES = 16;

/** A TGI validation error: 422 with TGI's error_type (output.ts writes TGI's error body). */
export const tgiValidation = (message: string, param: string | null = null) => new ApiError(422, message, 'invalid_request_error', param, 'validation');

const parameters = z
  .object({
    best_of: z.number().int().nullish(),
    temperature: z.number().nullish(),
    repetition_penalty: z.number().nullish(),
    frequency_penalty: z.number().nullish(),
    top_k: z.number().int().nullish(),
    top_p: z.number().nullish(),
    typical_p: z.number().nullish(),
    do_sample: z.boolean().nullish(),
    max_new_tokens: z.number().int().nullish(),
    return_full_text: z.boolean().nullish(),
    stop: z.array(z.string()).nullish(),
    truncate: z.number().int().nullish(),
    watermark: z.boolean().nullish(),
    details: z.boolean().nullish(),
    decoder_input_details: z.boolean().nullish(),
    seed: z.number().int().min(0).nullish(),
    top_n_tokens: z.number().int().min(0).nullish(),
    grammar: z
      .object({ type: z.enum(['json', 'json_object', 'regex', 'json_schema'], { message: 'grammar.type must be "json", "regex" or "json_schema"' }), value: z.unknown() })
      .strict()
      .nullish(),
    adapter_id: z.string().nullish(),
  })
  .strict();

const request = z.object({
  inputs: z.string({ message: 'inputs must be a string' }),
  parameters: parameters.nullish(),
  stream: z.boolean().nullish(),
  /** this server's addition: which served model, where the path does not say and several are served */
  model: z.string().min(1).nullish(),
});

/** What the TGI response shapes need beyond the prepared request. */
export interface TgiRequest {
  inputs: string;
  stream: boolean;
  /** the prompt text goes before the generated text */
  returnFullText: boolean;
  details: boolean;
  /** the prompt tokens with their log-probabilities (details.prefill) */
  decoderInputDetails: boolean;
  /** alternatives per token (details.top_tokens), 0 for none */
  topNTokens: number;
  /** sampled, not greedy: details carry the seed only then */
  sampling: boolean;
  /** typical sampling's mass (1: off); the completions body has no field for it, so the front sets it on the prepared request */
  typicalP: number;
  stop: string[];
}

/** A zod issue as TGI's kind of message ("`parameters.top_k`: expected an integer"). */
function issueMessage(err: z.ZodError): ApiError {
  const issue = err.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length ? `${issue.path.join('.')}.` : '';
    return tgiValidation(
      `unknown parameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `\`${where}${k}\``).join(', ')}; this server reads TGI's generate parameters (best_of, temperature, repetition_penalty, frequency_penalty, top_k, top_p, typical_p, do_sample, max_new_tokens, return_full_text, stop, truncate, watermark, details, decoder_input_details, seed, top_n_tokens, grammar, adapter_id)`,
      issue.keys[0],
    );
  }
  const path = issue.path.map(String).join('.');
  return tgiValidation(path ? `\`${path}\`: ${issue.message}` : issue.message, path || null);
}

/**
 * The TGI request validated, as the completions body for prepare() (with the model to use) and
 * what its response needs. `route` is the path it came by; `model` the served model it is for.
 */
export function parseTgiRequest(body: unknown, route: TgiRoute, model: string): { request: TgiRequest; completionBody: Record<string, unknown> } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw tgiValidation('the request body must be a JSON object {"inputs": …, "parameters": {…}}');
  const parsed = request.safeParse(body);
  if (!parsed.success) throw issueMessage(parsed.error);
  const { inputs } = parsed.data;
  // TGI's default parameters (a body without them) sample; given parameters default do_sample to false
  const p = parsed.data.parameters ?? { do_sample: true };
  const stream = route === 'generate_stream' || (route === 'compat' && (parsed.data.stream ?? false));

  // TGI's checks, with its messages (router/src/validation.rs)
  if ((p.best_of ?? 1) !== 1) throw tgiValidation('`best_of` != 1 is not supported by this server; send the request several times with do_sample and keep the best', 'best_of');
  if (p.temperature !== null && p.temperature !== undefined && p.temperature <= 0) throw tgiValidation('`temperature` must be strictly positive', 'temperature');
  if (p.repetition_penalty !== null && p.repetition_penalty !== undefined && p.repetition_penalty <= 0) throw tgiValidation('`repetition_penalty` must be strictly positive', 'repetition_penalty');
  if (p.frequency_penalty !== null && p.frequency_penalty !== undefined && Math.abs(p.frequency_penalty) > MAX_FREQUENCY_PENALTY) throw tgiValidation('`frequency_penalty` must be >= -2.0 and <= 2.0', 'frequency_penalty');
  if (p.top_p !== null && p.top_p !== undefined && (p.top_p <= 0 || p.top_p >= 1)) throw tgiValidation('`top_p` must be > 0.0 and < 1.0', 'top_p');
  if (p.top_k !== null && p.top_k !== undefined && p.top_k <= 0) throw tgiValidation('`top_k` must be strictly positive', 'top_k');
  if (p.typical_p !== null && p.typical_p !== undefined && (p.typical_p <= 0 || p.typical_p >= 1)) throw tgiValidation('`typical_p` must be > 0.0 and < 1.0', 'typical_p');
  if (p.max_new_tokens !== null && p.max_new_tokens !== undefined && p.max_new_tokens <= 0) throw tgiValidation('`max_new_tokens` must be strictly positive', 'max_new_tokens');
  if (p.max_new_tokens !== null && p.max_new_tokens !== undefined && p.max_new_tokens > MAX_TOKENS_LIMIT) throw tgiValidation(`\`max_new_tokens\` must be <= ${MAX_TOKENS_LIMIT}. Given: ${p.max_new_tokens}`, 'max_new_tokens');
  const stop = p.stop ?? [];
  if (stop.length > TGI_MAX_STOP_SEQUENCES) throw tgiValidation(`\`stop\` supports up to ${TGI_MAX_STOP_SEQUENCES} stop sequences. Given: ${stop.length}`, 'stop');
  if (stop.some((s) => s.length === 0)) throw tgiValidation('`stop` sequences must not be empty', 'stop');
  if ((p.top_n_tokens ?? 0) > MAX_TOP_LOGPROBS) throw tgiValidation(`\`top_n_tokens\` must be >= 0 and <= ${MAX_TOP_LOGPROBS}. Given: ${p.top_n_tokens}`, 'top_n_tokens');
  if (p.truncate !== null && p.truncate !== undefined && p.truncate <= 0) throw tgiValidation(`\`truncate\` must be strictly positive. Given: ${p.truncate}`, 'truncate');
  if (inputs.length === 0) throw tgiValidation('`inputs` cannot be empty', 'inputs');
  if (p.watermark) throw tgiValidation('`watermark` is not supported by this server', 'watermark');
  if (p.adapter_id !== null && p.adapter_id !== undefined) throw tgiValidation('`adapter_id`: adapters are not supported by this server', 'adapter_id');
  if (stream && p.decoder_input_details) throw tgiValidation('`decoder_input_details` == true is not supported when streaming tokens', 'decoder_input_details');

  // TGI's server samples when asked or when a warper is active (a temperature of 1 is none)
  const temperature = p.temperature ?? 1;
  const typicalP = p.typical_p ?? 1;
  const sampling = (p.do_sample ?? false) || temperature !== 1 || (p.top_k ?? 0) !== 0 || (p.top_p ?? 1) < 1 || typicalP < 1;
  const details = p.details ?? false;
  const decoderInputDetails = p.decoder_input_details ?? false;
  const topNTokens = p.top_n_tokens ?? 0;
  const completionBody: Record<string, unknown> = {
    model,
    prompt: inputs,
    max_tokens: p.max_new_tokens ?? undefined,
    stream,
    temperature: sampling ? temperature : 0,
    top_p: sampling ? (p.top_p ?? 1) : 1,
    top_k: sampling ? (p.top_k ?? -1) : -1,
    min_p: 0,
    repetition_penalty: p.repetition_penalty ?? 1,
    frequency_penalty: p.frequency_penalty ?? 0,
    seed: p.seed ?? undefined,
    stop,
    include_stop_str_in_output: true,
    // each token's log-probability goes out whenever tokens are described (details, or a stream's events)
    logprobs: details || decoderInputDetails || stream || topNTokens > 0 ? topNTokens : undefined,
    echo: decoderInputDetails,
    truncate_prompt_tokens: p.truncate ?? undefined,
    response_format: p.grammar ? grammarFormat(p.grammar) : undefined,
  };
  return {
    request: {
      inputs,
      stream,
      returnFullText: p.return_full_text ?? route === 'compat',
      details,
      decoderInputDetails,
      topNTokens,
      sampling,
      typicalP: sampling ? typicalP : 1,
      stop,
    },
    completionBody,
  };
}

/** TGI's grammar as the response_format the completions endpoint reads. */
function grammarFormat(g: { type: 'json' | 'json_object' | 'regex' | 'json_schema'; value: unknown }): unknown {
  switch (g.type) {
    case 'json':
    case 'json_object':
      return { type: 'json', value: g.value };
    case 'regex':
      return { type: 'regex', value: g.value };
    case 'json_schema': {
      // TGI's {"type": "json_schema", "value": {"name"?, "schema"}}
      const v = g.value as { name?: unknown; schema?: unknown } | null;
      if (v === null || typeof v !== 'object' || v.schema === null || typeof v.schema !== 'object') {
        throw tgiValidation('grammar json_schema: value must be {"name"?: string, "schema": {…}}', 'grammar');
      }
      return { type: 'json_schema', json_schema: { name: typeof v.name === 'string' ? v.name : 'schema', schema: v.schema } };
    }
  }
}
