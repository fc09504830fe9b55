/**
 * Bearer-token authentication of the /v1 endpoints, as the OpenAI API and vLLM's --api-key do:
 * a client sends `Authorization: Bearer <key>` (the official clients send their apiKey so), and
 * any other request gets a 401 in the OpenAI error shape, which those clients raise as an
 * authentication error. /health and /metrics stay open for load balancers and scrapers. Keys are
 * compared through their SHA-256 digests with a constant-time comparison, so the time a refusal
 * takes says nothing about how much of a guess was right.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from './errors.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** A checker of Authorization headers against `key`; throws on an empty key (it would admit anyone). */
export function bearerChecker(key: string): (authorization: string | undefined) => ApiError | null {
  if (key.length === 0) throw new Error('the API key must not be empty');
  const expected = digest(key);
  return (authorization) => {
    const m = /^Bearer\s+(.+)$/i.exec(authorization?.trim() ?? '');
    if (!m) {
      return new ApiError(401, 'this server requires an API key: send it as "Authorization: Bearer <key>" (the openai clients send their apiKey so)', 'invalid_request_error', null, 'missing_api_key');
    }
    if (!timingSafeEqual(digest(m[1].trim()), expected)) {
      return new ApiError(401, 'incorrect API key provided; send the key this server was started with', 'invalid_request_error', null, 'invalid_api_key');
    }
    return null;
  };
}

/**
 * Whether a request path is one the key protects: the OpenAI API under /v1, /tokenize, /detokenize
 * and /tokenizer_info (which vLLM leaves open; they read the models' tokenizers, so they are closed
 * here too), and Text Generation Inference's API (/, /generate, /generate_stream, /info, /tgi/…).
 */
export const requiresApiKey = (url: string): boolean =>
  url === '/v1' || url.startsWith('/v1/') || url.startsWith('/v1?') || /^\/((de)?tokenize|tokenizer_info|generate|generate_stream|info|tgi)($|[/?])/.test(url) || url === '/' || url.startsWith('/?');
