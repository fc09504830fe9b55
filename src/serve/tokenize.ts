/**
 * vLLM's POST /tokenize and POST /detokenize: a served model's own tokenizer (and chat template)
 * without generating, which clients use to count a prompt's tokens against the context or to
 * read token ids back. Only the tokenizer is used, so neither loads the model's weights.
 *
 * - /tokenize {model, prompt, add_special_tokens = true} or {model, messages,
 *   add_generation_prompt, continue_final_message, add_special_tokens = false,
 *   chat_template_kwargs}: {count, max_model_len, tokens[, token_strs]}, the ids exactly as
 *   /v1/completions and /v1/chat/completions would build them.
 * - /detokenize {model, tokens}: {prompt}, the text with special tokens kept.
 * - GET /tokenizer_info[?model=id]: the tokenizer's configuration (ServedModel.tokenizerInfo),
 *   which lm-evaluation-harness's remote tokenizer reads with the two above.
 *
 * `model` may be left out when one model is served, as vLLM serves one (it serves only one, so its
 * /tokenizer_info takes no model; here the query names one when several are served).
 */
import { z } from 'zod';
import { buildChatPrompt, chatPromptOptionsOf, templateKwargsOf } from './chat-template.js';
import { badRequest } from './errors.js';
import type { ServedModel } from './models.js';
import { assertVocabularyIds, lookupModel, type ModelsInView } from './prepare.js';
import { chatPromptFields, flattenMessages, messagesSchema, parseBody, toolsField } from './schemas.js';
import { templateToolsOf } from './tools/tool-choice.js';

/** Most token ids one /detokenize request may send. */
const MAX_DETOKENIZE_TOKENS = 1_000_000;

const model = z.string().min(1).nullish();

const tokenizeCompletion = z.object({
  model,
  prompt: z.string(),
  add_special_tokens: z.boolean().nullish(),
  return_token_strs: z.boolean().nullish(),
});

const tokenizeChat = z.object({
  model,
  messages: messagesSchema,
  ...chatPromptFields,
  /** the prompt a chat request with these tools would start from (vLLM's field) */
  tools: toolsField,
  return_token_strs: z.boolean().nullish(),
});

const detokenize = z.object({
  model,
  tokens: z.array(z.number().int().min(0)).max(MAX_DETOKENIZE_TOKENS),
});

/** The named model, or the only one served when the request names none. */
function modelOf(ctx: ModelsInView, name: string | null | undefined): ServedModel {
  if (name) return lookupModel(ctx, name);
  if (ctx.models.size === 1) return [...ctx.models.values()][0];
  throw badRequest(`model: this server serves ${ctx.models.size} models (${[...ctx.models.keys()].join(', ')}); name one`, 'model', 'invalid_value');
}

export async function tokenize(ctx: ModelsInView, body: unknown): Promise<Record<string, unknown>> {
  const isChat = body !== null && typeof body === 'object' && 'messages' in body;
  let served: ServedModel;
  let ids: number[];
  let strs = false;
  if (isChat) {
    const req = parseBody(tokenizeChat, body);
    served = modelOf(ctx, req.model);
    ids = [...(await buildChatPrompt(served, flattenMessages(req.messages), templateKwargsOf(req), chatPromptOptionsOf(req), templateToolsOf(req.tools))).ids];
    strs = req.return_token_strs ?? false;
  } else {
    const req = parseBody(tokenizeCompletion, body);
    served = modelOf(ctx, req.model);
    ids = [...(await served.encode(req.prompt, req.add_special_tokens ?? true))];
    strs = req.return_token_strs ?? false;
  }
  const out: Record<string, unknown> = { count: ids.length, max_model_len: served.contextLength, tokens: ids };
  if (strs) out.token_strs = ids.map((id) => served.tokenizer.tokenizer.decode([id], { skip_special_tokens: false }));
  return out;
}

export function detokenizeRequest(ctx: ModelsInView, body: unknown): { prompt: string } {
  const req = parseBody(detokenize, body);
  const served = modelOf(ctx, req.model);
  assertVocabularyIds(req.tokens, served, 'tokens');
  return { prompt: req.tokens.length === 0 ? '' : served.tokenizer.tokenizer.decode(req.tokens, { skip_special_tokens: false }) };
}

export function tokenizerInfo(ctx: ModelsInView, query: unknown): Record<string, unknown> {
  const name = (query as { model?: unknown } | null)?.model;
  if (name !== undefined && typeof name !== 'string') throw badRequest('model: name one model, once (?model=ID)', 'model', 'invalid_value');
  return modelOf(ctx, name).tokenizerInfo;
}
