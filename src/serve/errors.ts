/**
 * Errors as the OpenAI API (and vLLM) shape them: {"error": {"message", "type", "param", "code"}}
 * with a 4xx/5xx status. Clients such as the official `openai` package parse this shape into
 * typed exceptions. Messages name the problem and the fix; no stack trace ever reaches a client.
 */
import { RfidMoeError } from '../errors.js';
export type ApiErrorType = 'invalid_request_error' | 'not_found_error' | 'server_error' | 'service_unavailable_error';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

export class ApiError extends RfidMoeError {
  readonly kind = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) => new ApiError(400, message, 'invalid_request_error', param, code);

export const modelNotFound = (model: string, available: readonly string[]) =>
  new ApiError(404, `The model \`${model}\` does not exist. Models served here: ${available.length ? available.join(', ') : 'none'} (GET /v1/models lists them).`, 'not_found_error', 'model', 'model_not_found');

export const modelUnavailable = (model: string, reason: string) => new ApiError(503, `The model \`${model}\` cannot be served: ${reason}`, 'service_unavailable_error', 'model', 'model_unavailable');

/** The request field of each generation input (GenerationParamsError.param). */
const REQUEST_FIELD: Record<string, string> = {
  prompt: 'prompt',
  maxNewTokens: 'max_tokens',
  stop: 'stop',
  temperature: 'temperature',
  topK: 'top_k',
  topP: 'top_p',
  minP: 'min_p',
  typicalP: 'typical_p',
  seed: 'seed',
  logprobs: 'logprobs',
  repetitionPenalty: 'repetition_penalty',
  frequencyPenalty: 'frequency_penalty',
  presencePenalty: 'presence_penalty',
  logitBias: 'logit_bias',
  allowedTokenIds: 'allowed_token_ids',
  minNewTokens: 'min_tokens',
  responseFormat: 'response_format',
  badWords: 'bad_words',
};

/** Any thrown value as an ApiError; unexpected errors keep only their message (no stack). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const kind = (err as { kind?: unknown } | null)?.kind;
  const message = err instanceof Error ? err.message : String(err);
  // typed generation errors from src/runtime/generation map to client errors
  if (kind === 'GenerationParamsError') {
    const param = (err as { param?: string }).param;
    return badRequest(message, param === undefined ? null : (REQUEST_FIELD[param] ?? null), 'invalid_parameter');
  }
  if (kind === 'ContextLengthError') return badRequest(message, 'prompt', 'context_length_exceeded');
  if (kind === 'DecoderClosedError') return new ApiError(503, message, 'service_unavailable_error', null, 'shutting_down');
  return new ApiError(500, `internal error: ${message}`, 'server_error');
}
