/**
 * A generation request made ready: validated and tokenized, with its sampling, stop and
 * log-probability options resolved against the model it names.
 */
import { assertPromptIds } from '../runtime/generation/prompt-ids.js';
import { MAX_BAD_WORD_TOKENS } from '../runtime/generation/logits-processors.js';
import type { GenerationParams } from '../runtime/generation/decoder.js';
import { responseFormatOf } from './structured-output.js';
import { gateFormatOf, reasoningStart, type ReasoningParser } from './reasoning.js';
import type { ReasoningStart } from '../runtime/generation/reasoning-gate.js';
import { buildChatPrompt, chatPromptOptionsOf, templateKwargsOf } from './chat-template.js';
import { badRequest, modelNotFound, modelUnavailable } from './errors.js';
import type { RefusedModel, ServedModel } from './models.js';
import { resolveTools, type ToolMode } from './tools/tool-choice.js';
import type { FunctionTool } from './tools/call-schema.js';
import { chatRequest, completionRequest, flattenMessages, parseBody, stopList, type ChatRequest, type CompletionRequest } from './schemas.js';

/** The served and refused models a request is looked up in. */
export interface ModelsInView {
  models: ReadonlyMap<string, ServedModel>;
  refused: ReadonlyMap<string, RefusedModel>;
}

export type Endpoint = 'completions' | 'chat';

/** Default completion length when a request gives none: OpenAI's 16 for completions, the rest of the context for chat (as vLLM). */
const DEFAULT_COMPLETION_TOKENS = 16;
/** One prompt of a request, tokenized, with its completion length and its echo. */
export interface PreparedPrompt {
  ids: Int32Array;
  maxTokens: number;
  /** completions' echo: the prompt's text, sent back before the completion; null without echo */
  echo: string | null;
}

/** Most sequences (prompts × n) one request may ask for. */
export const MAX_SEQUENCES = 256;

/** A validated request, tokenized, with what its response needs. */
export interface Prepared {
  model: ServedModel;
  /** one for chat; one or more for completions (a batch of prompts), each with n choices */
  prompts: PreparedPrompt[];
  /** choices to generate per prompt (n) */
  n: number;
  /** max_tokens 0 with echo: one token is decoded (the prompt's last logits need a step) but none is returned */
  scoreOnly: boolean;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's stream_options.continuous_usage_stats (with include_usage): every chunk carries its choice's usage so far */
  continuousUsage: boolean;
  /** chat: what the request's tools ask (tools/tool-choice.ts); completions: none */
  tools: ToolMode;
  /** vLLM's return_token_ids: the prompt's and the choices' token ids go in the response */
  returnTokenIds: boolean;
  /** the client's id of the request (vLLM's request_id; routes.ts puts an X-Request-Id header's in its place): the response's id holds it */
  requestId: string | null;
  /** chat with a reasoning parser: its tags and where the completion starts (reasoning.ts); else null */
  reasoning: { parser: ReasoningParser; start: ReasoningStart; include: boolean; callable: FunctionTool[] | null } | null;
  /** the decoder's parameters but each prompt's length and the abort signal (routes.ts adds them) */
  params: Omit<GenerationParams, 'maxNewTokens' | 'signal' | 'stop' | 'stopTokenIds'> & { stop: string[]; stopTokenIds: number[] };
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

/** The request's prompts, each a string or token ids (the API's four forms). */
function promptList(prompt: CompletionRequest['prompt']): Array<string | number[]> {
  if (typeof prompt === 'string') return [prompt];
  if (prompt.every((p) => typeof p === 'string')) return prompt as string[];
  if (prompt.every((p) => typeof p === 'number')) return [prompt as number[]];
  return prompt as number[][];
}

/**
 * Token ids a request names in `field` (integers ≥ 0, from the schema), each checked against the
 * model's vocabulary before any load starts: a 400 naming the field.
 */
export function assertVocabularyIds(ids: Iterable<number>, model: ServedModel, field: string, what = ''): void {
  for (const id of ids) {
    if (id >= model.vocabSize) throw badRequest(`${field}: ${what}${id} is outside the vocabulary [0, ${model.vocabSize}) of \`${model.id}\``, field, 'invalid_parameter');
  }
}

/** logit_bias as token id → bias. */
function logitBiasOf(bias: Record<string, number> | null | undefined, model: ServedModel): Map<number, number> | undefined {
  if (!bias) return undefined;
  const out = new Map(Object.entries(bias).map(([key, amount]) => [Number(key), amount]));
  assertVocabularyIds(out.keys(), model, 'logit_bias', 'token ');
  return out;
}

/**
 * vLLM's bad_words as token sequences: each word (leading whitespace dropped) as it is tokenised
 * at the start of a text, and with a space before it (the word in the middle of a text) where that
 * tokenises otherwise. vLLM adds the second only where it has as many tokens as the first, so a
 * word that is one token after a space and two without (" have" and "h"+"ave" in GPT-2-style
 * vocabularies) is banned there only at the start of a text; here it is banned in both places.
 */
async function badWordSequences(model: ServedModel, words: readonly string[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const word of words) {
    const bare = Array.from(await model.encode(word.trimStart(), false));
    if (bare.length > 0) out.push(bare);
    const spaced = Array.from(await model.encode(` ${word.trimStart()}`, false));
    if (spaced.length > 0 && spaced.join() !== bare.join()) out.push(spaced);
  }
  if (out.some((w) => w.length > MAX_BAD_WORD_TOKENS)) throw badRequest(`a bad word is longer than ${MAX_BAD_WORD_TOKENS} tokens`, 'bad_words', 'invalid_value');
  return out;
}

/** The model a request body names (its `model` field), before it is validated; null where it names none. */
export function modelNamed(body: unknown): string | null {
  const model = (body as { model?: unknown } | null)?.model;
  return typeof model === 'string' ? model : null;
}

/** The served model of that name; a 503 naming the reason for a refused one, a 404 listing the others. */
export function lookupModel(ctx: ModelsInView, name: string): ServedModel {
  const model = ctx.models.get(name);
  if (model) return model;
  const refused = ctx.refused.get(name);
  if (refused) throw modelUnavailable(name, refused.reason);
  throw modelNotFound(name, [...ctx.models.keys()]);
}

export interface PrepareOptions {
  /** a completion without max_tokens may fill the rest of the context (as chat may), not OpenAI's 16: Text Generation Inference's default */
  restOfContext?: boolean;
}

/**
 * Validates and tokenizes a request body before its model is touched (a bad request never causes
 * a load): the schema, the model, log-probability options, the prompt in any of its forms, the
 * context length, and the sampling fields with the model's defaults.
 */
export async function prepare(ctx: ModelsInView, endpoint: Endpoint, body: unknown, opts: PrepareOptions = {}): Promise<Prepared> {
  const req: CompletionRequest | ChatRequest = endpoint === 'chat' ? parseBody(chatRequest, body) : parseBody(completionRequest, body);
  const model = lookupModel(ctx, req.model);
  let responseFormat = responseFormatOf(req);
  const logprobs = logprobsOf(endpoint, req);
  let tools: ToolMode = { kind: 'none' };
  let reasoning: Prepared['reasoning'] = null;
  let callsInstead: GenerationParams['callsInstead'];
  // each prompt as token ids, with its text when the request gave text (echo sends it back)
  const given: Array<{ ids: Int32Array; text: string | null }> = [];
  if (endpoint === 'chat') {
    const chat = req as ChatRequest;
    const resolved = resolveTools(chat, model.toolCallFormat, model.id, responseFormat, model.reasoningParser?.format === 'harmony');
    tools = resolved.mode;
    responseFormat = resolved.responseFormat;
    callsInstead = resolved.callsInstead;
    // tool_choice "none": the template still gets the tools (as transformers renders them), unless the server leaves them out (vLLM's flag)
    const templateTools = resolved.mode.kind === 'none' && model.excludeToolsWhenToolChoiceNone ? null : resolved.templateTools;
    const prompt = await buildChatPrompt(model, flattenMessages(chat.messages), templateKwargsOf(chat), chatPromptOptionsOf(chat), templateTools);
    given.push({ ids: prompt.ids, text: null });
    if (model.reasoningParser) reasoning = { parser: model.reasoningParser, start: reasoningStart(prompt.text, model.reasoningParser), include: chat.include_reasoning ?? true, callable: resolved.callable };
  } else {
    const completion = req as CompletionRequest;
    const list = promptList(completion.prompt);
    for (const [i, prompt] of list.entries()) {
      if (typeof prompt === 'string') {
        given.push({ ids: await model.encode(prompt, completion.add_special_tokens ?? true), text: prompt });
      } else {
        // token ids, checked here so that a bad one never starts a load (a 400 naming the prompt)
        try {
          assertPromptIds(prompt, model.vocabSize);
        } catch (err) {
          throw list.length > 1 ? badRequest(`prompt ${i}: ${(err as Error).message}`, 'prompt', 'invalid_parameter') : err;
        }
        given.push({ ids: Int32Array.from(prompt), text: null });
      }
    }
  }
  const n = req.n ?? 1;
  if (given.length * n > MAX_SEQUENCES) {
    throw badRequest(`${given.length} prompts × n = ${n} is ${given.length * n} sequences, more than the ${MAX_SEQUENCES} one request may ask for; split the request`, 'n', 'invalid_value');
  }
  const requested = endpoint === 'chat' ? ((req as ChatRequest).max_completion_tokens ?? req.max_tokens) : req.max_tokens;
  const echo = endpoint === 'chat' ? false : ((req as CompletionRequest).echo ?? false);
  if (requested === 0 && !echo) throw badRequest('max_tokens must be at least 1 (0 only with echo, to score the prompt)', 'max_tokens', 'invalid_value');
  const scoreOnly = requested === 0;
  const context = model.contextLength;
  const prompts = given.map(({ ids: full, text }, i): PreparedPrompt => {
    const which = given.length > 1 ? `prompt ${i}` : 'the prompt';
    // vLLM's truncate_prompt_tokens: the last k tokens (the echoed prompt is then their text)
    const k = req.truncate_prompt_tokens;
    const truncated = k !== null && k !== undefined && k < full.length;
    let ids = truncated ? full.slice(full.length - k) : full;
    // an empty prompt starts from BOS, as the decoder would start it; made explicit here so that
    // usage, the echo's log-probabilities and the KV reservation count the token that is run
    const empty = ids.length === 0;
    if (empty) {
      if (model.bosTokenId === null) throw badRequest(`${which} is empty and the model names no BOS token to start from; give at least one token`, 'prompt', 'invalid_value');
      ids = Int32Array.of(model.bosTokenId);
    }
    if (ids.length >= context) {
      throw badRequest(`This model's maximum context length is ${context} tokens, but ${which} has ${ids.length} tokens (at least one position must be left to generate). Shorten it.`, endpoint === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded');
    }
    const maxTokens = scoreOnly ? 1 : (requested ?? (endpoint === 'chat' || opts.restOfContext ? context - ids.length : Math.min(DEFAULT_COMPLETION_TOKENS, context - ids.length)));
    if (ids.length + maxTokens > context) {
      throw badRequest(
        `This model's maximum context length is ${context} tokens. However, you requested ${ids.length + maxTokens} tokens (${ids.length} in ${which}, ${maxTokens} for the completion). Reduce the prompt or max_tokens.`,
        'max_tokens',
        'context_length_exceeded',
      );
    }
    if ((req.min_tokens ?? 0) > maxTokens) throw badRequest(`min_tokens (${req.min_tokens}) must not exceed max_tokens (${maxTokens})`, 'min_tokens', 'invalid_value');
    const echoText = !echo ? null : text !== null && !truncated && !empty ? text : model.tokenizer.tokenizer.decode([...ids], { skip_special_tokens: false });
    return { ids, maxTokens, echo: echoText };
  });
  assertVocabularyIds(req.allowed_token_ids ?? [], model, 'allowed_token_ids');
  assertVocabularyIds(req.stop_token_ids ?? [], model, 'stop_token_ids');
  // fields the request leaves out take the model's generation_config.json settings, as in vLLM
  const defaults = model.samplingDefaults;
  const topK = req.top_k ?? defaults.topK;
  return {
    model,
    prompts,
    n,
    scoreOnly,
    stream: req.stream ?? false,
    includeUsage: req.stream_options?.include_usage ?? false,
    continuousUsage: (req.stream_options?.include_usage ?? false) && (req.stream_options?.continuous_usage_stats ?? false),
    tools,
    reasoning,
    returnTokenIds: req.return_token_ids ?? false,
    requestId: req.request_id ?? null,
    params: {
      temperature: req.temperature ?? defaults.temperature,
      topP: req.top_p ?? defaults.topP,
      topK: topK === undefined || topK < 0 ? undefined : topK,
      minP: req.min_p ?? defaults.minP,
      repetitionPenalty: req.repetition_penalty ?? defaults.repetitionPenalty,
      frequencyPenalty: req.frequency_penalty ?? undefined,
      presencePenalty: req.presence_penalty ?? undefined,
      logitBias: logitBiasOf(req.logit_bias, model),
      allowedTokenIds: req.allowed_token_ids ?? undefined,
      badWords: req.bad_words?.length ? await badWordSequences(model, req.bad_words) : undefined,
      minNewTokens: req.min_tokens ?? undefined,
      includeStopInText: req.include_stop_str_in_output ?? undefined,
      // "auto" reads calls from the text, and some families' call markers are special tokens ([TOOL_CALLS]): kept, as vLLM keeps them;
      // so are harmony's channel markers, which the reader needs and gives none of out
      skipSpecialTokens: req.skip_special_tokens ?? (tools.kind === 'auto' || reasoning?.parser.format === 'harmony' ? false : undefined),
      seed: req.seed ?? undefined,
      cacheSalt: req.cache_salt ?? undefined,
      stop: stopList(req.stop),
      // a response format (or a held tool call) holds the answer after the reasoning, and a call
      // gpt-oss addresses its own way is held to the tools the choice allows
      reasoning: reasoning ? gateFormatOf(reasoning.parser, reasoning.start, reasoning.callable) : undefined,
      stopTokenIds: [...new Set([...(req.ignore_eos ? [] : model.eosTokenIds), ...(req.stop_token_ids ?? [])])],
      logprobs,
      promptLogprobs: echo ? logprobs : undefined,
      responseFormat,
      callsInstead,
    },
  };
}
