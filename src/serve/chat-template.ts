/**
 * Chat prompts from the tokenizer's own chat template (Jinja, as transformers'
 * `apply_chat_template(..., add_generation_prompt=True)` renders it). Rendering uses
 * @huggingface/jinja, the Jinja implementation written for exactly these templates; it is an
 * optional dependency loaded on first use, so a server without it still serves completions and
 * answers chat requests with a 400 that says what to install.
 */
import { badRequest } from './errors.js';
import type { ServedModel } from './models.js';
import type { ChatMessage } from './schemas.js';

interface JinjaTemplate {
  render(context: Record<string, unknown>): string;
}
type JinjaModule = { Template: new (source: string) => JinjaTemplate };

let jinja: Promise<JinjaModule | null> | null = null;
const JINJA_PACKAGE = '@huggingface/jinja';

function loadJinja(): Promise<JinjaModule | null> {
  // the name is a variable so the compiler does not require the optional package
  jinja ??= import(JINJA_PACKAGE as string).then((m) => m as JinjaModule).catch(() => null);
  return jinja;
}

const compiled = new Map<string, JinjaTemplate>();

/**
 * The template rendered as transformers' `apply_chat_template(messages, add_generation_prompt=True,
 * **kwargs)` renders it. `kwargs` (a request's chat_template_kwargs) cannot replace the messages,
 * the generation prompt or the special tokens.
 */
export async function renderChat(
  template: string | null,
  modelId: string,
  messages: ChatMessage[],
  special: { bos: string | null; eos: string | null },
  kwargs: Record<string, unknown> = {},
): Promise<string> {
  if (template === null) {
    throw badRequest(
      `the model \`${modelId}\` has no chat template (neither a chat_template.jinja nor a chat_template in its tokenizer_config.json), so /v1/chat/completions cannot build a prompt for it; use /v1/completions with a plain prompt`,
      'messages',
      'chat_template_missing',
    );
  }
  const mod = await loadJinja();
  if (!mod) throw badRequest(`rendering chat templates needs the package ${JINJA_PACKAGE}, which is not installed on this server; use /v1/completions`, 'messages', 'chat_template_unavailable');
  let t = compiled.get(template);
  if (!t) {
    t = new mod.Template(template);
    compiled.set(template, t);
  }
  try {
    return t.render({ ...kwargs, messages, add_generation_prompt: true, bos_token: special.bos ?? '', eos_token: special.eos ?? '' });
  } catch (err) {
    // templates raise errors on purpose (e.g. "roles must alternate user/assistant")
    throw badRequest(`the chat template rejected the messages: ${(err as Error).message}`, 'messages', 'chat_template_error');
  }
}

/**
 * The prompt /v1/chat/completions decodes from: the rendered template, tokenised without the
 * tokenizer's own special tokens (the template already holds those it wants), as transformers'
 * `apply_chat_template(..., tokenize=True)` does.
 */
export async function buildChatPrompt(
  model: Pick<ServedModel, 'id' | 'chatTemplate' | 'specialTokens' | 'tokenizer'>,
  messages: ChatMessage[],
  kwargs: Record<string, unknown> = {},
): Promise<{ text: string; ids: Int32Array }> {
  const text = await renderChat(model.chatTemplate, model.id, messages, model.specialTokens, kwargs);
  return { text, ids: Int32Array.from(model.tokenizer.tokenizer.encode(text, { add_special_tokens: false }).ids) };
}
