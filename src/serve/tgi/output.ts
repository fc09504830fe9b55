/**
 * Text Generation Inference's response shapes (request.ts says which requests come here):
 *
 * - POST /generate: {generated_text, details?}; POST / without stream: the same in a list, as TGI
 *   answers there. details (asked by `details` or `decoder_input_details`): finish_reason
 *   ("length", "eos_token", "stop_sequence"), generated_tokens, seed (sampled requests only),
 *   prefill (the prompt's tokens with log-probabilities, with decoder_input_details), tokens
 *   ({id, text, logprob, special}) and top_tokens (with top_n_tokens).
 * - POST /generate_stream, and / with stream: an event per token {index, token, top_tokens?,
 *   generated_text: null, details: null}; the last token's event carries the whole generated text
 *   and, with `details`, {finish_reason, generated_tokens, seed, input_length}. No [DONE].
 * - Errors: {error, error_type} ("validation" with 422 for a bad request), as an event when the
 *   stream has begun. Hugging Face's client raises its ValidationError, GenerationError, … from
 *   error_type.
 *
 * A token's text is the text it adds (the decoder's, which keeps a character split across tokens
 * whole); a special token's is its own text ("</s>"), as TGI sends it, while generated_text leaves
 * special tokens out.
 */
import type { FastifyReply } from 'fastify';
import type { GenerationEvent } from '../../runtime/generation/decoder.js';
import type { TokenLogprob } from '../../runtime/generation/logprobs.js';
import type { ApiError } from '../errors.js';
import type { ServedModel } from '../models.js';
import { observe, once, openEventStream, type ResponseArgs } from '../responses.js';
import type { TgiRequest } from './request.js';

type EndEvent = Extract<GenerationEvent, { type: 'end' }>;
type TokenEvent = Extract<GenerationEvent, { type: 'token' }>;

interface TgiToken {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
}

export interface TgiErrorBody {
  error: string;
  error_type: string;
}

/** OpenAI field names that prepare()'s messages use, as TGI's (the fields a TGI client sent). */
const TGI_FIELD: ReadonlyArray<[RegExp, string]> = [
  [/\bmax_tokens\b/g, 'max_new_tokens'],
  [/\btruncate_prompt_tokens\b/g, 'truncate'],
  [/\bresponse_format\b/g, 'grammar'],
];

/** An error as TGI's status and body: a bad request is a 422 "validation"; a failure while decoding a "generation" error. */
export function tgiError(e: ApiError): { status: number; body: TgiErrorBody } {
  let message = e.message;
  for (const [name, tgi] of TGI_FIELD) message = message.replace(name, tgi);
  if (e.status === 400 || e.status === 422) return { status: 422, body: { error: message, error_type: 'validation' } };
  if (e.status === 404) return { status: 404, body: { error: message, error_type: 'not_found' } };
  if (e.status === 503) return { status: 503, body: { error: message, error_type: 'unavailable' } };
  if (e.status >= 500) return { status: e.status, body: { error: message, error_type: 'generation' } };
  return { status: e.status, body: { error: message, error_type: 'validation' } };
}

export function sendTgiError(reply: FastifyReply, e: ApiError): FastifyReply {
  const { status, body } = tgiError(e);
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body);
}

/** An error event once the stream has begun. */
export const tgiStreamError = (e: ApiError): string => `data: ${JSON.stringify(tgiError(e).body)}\n\n`;

/** Whether a token is special: text of its own that skip_special_tokens leaves out (BOS, EOS, chat markers). */
function isSpecial(model: ServedModel, id: number): boolean {
  const tok = model.tokenizer.tokenizer;
  return tok.decode([id], { skip_special_tokens: true }) === '' && tok.decode([id], { skip_special_tokens: false }) !== '';
}

/** A token as TGI describes it; `text` is what the decoder said it adds (null: the token's own text). */
function describe(model: ServedModel, id: number, logprob: number, text: string | null): TgiToken {
  const special = isSpecial(model, id);
  return { id, text: special || text === null ? model.tokenizer.tokenizer.decode([id], { skip_special_tokens: false }) : text, logprob, special };
}

const topTokens = (model: ServedModel, lp: TokenLogprob | undefined): TgiToken[] => (lp ? lp.top.map((t) => describe(model, t.token, t.logprob, null)) : []);

/** TGI's finish reason: "stop" split into the end-of-sequence token and a stop sequence. */
function finishReason(end: EndEvent, lastToken: number | undefined, r: TgiRequest, p: ResponseArgs['p']): 'length' | 'eos_token' | 'stop_sequence' {
  if (end.usage.finishReason === 'length') return 'length';
  if (lastToken !== undefined && p.params.stopTokenIds.includes(lastToken)) return 'eos_token';
  // the stop sequence stays in the text (include_stop_str_in_output); a held grammar that closed ends as TGI's does, at its end of sequence
  return r.stop.some((s) => end.text.endsWith(s)) ? 'stop_sequence' : 'eos_token';
}

export async function tgiJson(a: ResponseArgs, r: TgiRequest, compat: boolean): Promise<void> {
  const { p, reply } = a;
  const model = p.model;
  const firstToken = once(a.onFirstToken);
  const { prompt: of, stream } = a.choices[0];
  const tokens: TgiToken[] = [];
  const top: TgiToken[][] = [];
  let prefill: Array<TokenLogprob | null> = [];
  let end: EndEvent | null = null;
  for await (const event of stream) {
    if (event.type !== 'token') {
      end = event;
      continue;
    }
    observe(a, firstToken, of, event);
    if (event.promptLogprobs) prefill = event.promptLogprobs;
    tokens.push(describe(model, event.token, event.logprob?.logprob ?? 0, event.text));
    top.push(topTokens(model, event.logprob));
  }
  if (!end || end.usage.finishReason === 'abort') return; // the client is gone
  a.count(200);
  const generated = { generated_text: (r.returnFullText ? r.inputs : '') + end.text };
  const withDetails =
    r.details || r.decoderInputDetails
      ? {
          ...generated,
          details: {
            finish_reason: finishReason(end, tokens.at(-1)?.id, r, p),
            generated_tokens: end.usage.completionTokens,
            seed: r.sampling ? end.usage.seed : null,
            // the first prompt token has no log-probability (TGI's NaN, which its JSON writes as null)
            prefill: r.decoderInputDetails ? Array.from(of.ids, (id, i) => ({ id, text: model.tokenizer.tokenizer.decode([id], { skip_special_tokens: false }), logprob: prefill[i]?.logprob ?? null })) : [],
            tokens,
            ...(r.topNTokens > 0 ? { top_tokens: top } : {}),
          },
        }
      : generated;
  reply.send(compat ? [withDetails] : withDetails);
}

export async function tgiStream(a: ResponseArgs, r: TgiRequest): Promise<void> {
  const { p, reply } = a;
  const model = p.model;
  const raw = openEventStream(reply);
  const send = (data: unknown) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const firstToken = once(a.onFirstToken);
  const { prompt: of, stream } = a.choices[0];
  // each token goes out when the next event shows whether it was the last: the last one carries the text and details
  let held: TokenEvent | null = null;
  let index = 0;
  const event = (t: TokenEvent, last: Record<string, unknown> | null) => {
    const top = topTokens(model, t.logprob);
    return { index: ++index, token: describe(model, t.token, t.logprob?.logprob ?? 0, t.text), ...(r.topNTokens > 0 ? { top_tokens: top } : {}), generated_text: null, details: null, ...last };
  };
  for await (const e of stream) {
    if (e.type === 'token') {
      observe(a, firstToken, of, e);
      if (held) send(event(held, null));
      held = e;
      continue;
    }
    if (e.usage.finishReason === 'abort' || held === null) break;
    const details = r.details ? { finish_reason: finishReason(e, held.token, r, p), generated_tokens: e.usage.completionTokens, seed: r.sampling ? e.usage.seed : null, input_length: of.ids.length } : null;
    send(event(held, { generated_text: (r.returnFullText ? r.inputs : '') + e.text, details }));
    a.count(200);
  }
  if (!raw.writableEnded) raw.end();
}
