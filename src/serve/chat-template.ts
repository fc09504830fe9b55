/**
 * Chat prompts from the tokenizer's own chat template (Jinja, as transformers'
 * `apply_chat_template(..., add_generation_prompt=True)` renders it). Rendering uses
 * @huggingface/jinja, the Jinja implementation written for exactly these templates; it is an
 * optional dependency loaded on first use, so a server without it still serves completions and
 * answers chat requests with a 400 that says what to install.
 */
import { badRequest } from './errors.js';
import { pythonStrings } from './jinja-python.js';
import type { ServedModel } from './models.js';
import { argumentsAsText, type ChatMessage } from './schemas.js';

interface JinjaTemplate {
  render(context: Record<string, unknown>): string;
}
type JinjaModule = { Template: new (source: string) => JinjaTemplate };

let jinja: Promise<JinjaModule | null> | null = null;
const JINJA_PACKAGE = '@huggingface/jinja';

function loadJinja(): Promise<JinjaModule | null> {
  // the name is a variable so the compiler does not require the optional package
  jinja ??= import(JINJA_PACKAGE as string)
    .then((m) => {
      pythonStrings(m as Parameters<typeof pythonStrings>[0]);
      return m as JinjaModule;
    })
    .catch(() => null);
  return jinja;
}

const compiled = new Map<string, JinjaTemplate>();

function compiledTemplate(mod: JinjaModule, template: string): JinjaTemplate {
  let t = compiled.get(template);
  if (!t) {
    t = new mod.Template(template);
    compiled.set(template, t);
  }
  return t;
}

/** Why `template` cannot render chat prompts (it does not parse, or the renderer is not installed); null where it can. */
export async function chatTemplateProblem(template: string): Promise<string | null> {
  const mod = await loadJinja();
  if (!mod) return `rendering chat templates needs the package ${JINJA_PACKAGE}, which is not installed`;
  try {
    compiledTemplate(mod, template);
    return null;
  } catch (err) {
    return `it does not parse as a Jinja template (${(err as Error).message})`;
  }
}

/** How the conversation ends (vLLM's request fields of the same names). */
export interface ChatPromptOptions {
  /** end with the header of a new assistant message (default true, false with continueFinalMessage) */
  addGenerationPrompt?: boolean;
  /** end inside the last message, which the model continues (default false) */
  continueFinalMessage?: boolean;
  /** tokenise with the tokenizer's own special tokens (BOS) too (default false: the template holds those it wants) */
  addSpecialTokens?: boolean;
}

/** A request's chat prompt fields (schemas.ts, chatPromptFields) as options. */
export function chatPromptOptionsOf(req: { add_generation_prompt?: boolean | null; continue_final_message?: boolean | null; add_special_tokens?: boolean | null }): ChatPromptOptions {
  return { addGenerationPrompt: req.add_generation_prompt ?? undefined, continueFinalMessage: req.continue_final_message ?? false, addSpecialTokens: req.add_special_tokens ?? false };
}

/** What a value concatenated into text renders as in @huggingface/jinja (its objects are Maps). */
const OBJECT_TEXT = '[object Map]';

/**
 * A message as templates read it, where the OpenAI API and transformers' conventions differ:
 * - A null content (an assistant turn of calls alone) is the empty string, as vLLM renders it.
 *   Templates test a message's text with `in` or join it to other text; a null there is an error.
 * - The reasoning is given as `thinking` too, the field gpt-oss's template reads (and keeps for a
 *   turn of calls: the analysis that led to them). Not in a turn of calls that has text of its own:
 *   that template refuses both there, and takes the text as the turn's analysis.
 */
function asTemplateReads(m: ChatMessage): ChatMessage & { thinking?: string } {
  const out: ChatMessage & { thinking?: string } = { ...m, content: m.content ?? '' };
  if (m.reasoning_content !== undefined && !(m.tool_calls?.length && m.content)) out.thinking = m.reasoning_content;
  return out;
}

/** The chat template's variables for a request: its `chat_template_kwargs`, and its `reasoning_effort` as the variable of that name (gpt-oss's template writes it into the system message) unless the kwargs set one. */
export function templateKwargsOf(req: { chat_template_kwargs?: Record<string, unknown> | null; reasoning_effort?: string | null }): Record<string, unknown> {
  const kwargs = req.chat_template_kwargs ?? {};
  return req.reasoning_effort == null || Object.hasOwn(kwargs, 'reasoning_effort') ? kwargs : { reasoning_effort: req.reasoning_effort, ...kwargs };
}

/** Appended to the final message to find where the template put it (transformers' own tag). */
const CONTINUE_TAG = 'CONTINUE_FINAL_MESSAGE_TAG ';

/**
 * The template rendered as transformers' `apply_chat_template(messages, add_generation_prompt,
 * continue_final_message, **kwargs)` renders it. `kwargs` (a request's chat_template_kwargs)
 * cannot replace the messages, the generation prompt or the special tokens. To continue the final
 * message, transformers appends a tag to it, renders, and cuts the text at the tag (and the
 * whitespace before it where the template trimmed the message); so does this.
 */
export async function renderChat(
  template: string | null,
  modelId: string,
  messages: ChatMessage[],
  special: { bos: string | null; eos: string | null },
  kwargs: Record<string, unknown> = {},
  options: ChatPromptOptions = {},
  /** the functions the model may call, as transformers' `tools=` (tools/tool-choice.ts); null: none */
  tools: unknown[] | null = null,
): Promise<string> {
  const continueFinal = options.continueFinalMessage ?? false;
  const addGenerationPrompt = options.addGenerationPrompt ?? !continueFinal;
  if (continueFinal && addGenerationPrompt) {
    throw badRequest('continue_final_message and add_generation_prompt cannot both be true: the prompt either continues the last message or starts a new one', 'continue_final_message', 'invalid_value');
  }
  if (template === null) {
    throw badRequest(
      `the model \`${modelId}\` has no chat template (neither a chat_template.jinja nor a chat_template in its tokenizer_config.json), so /v1/chat/completions cannot build a prompt for it; use /v1/completions with a plain prompt`,
      'messages',
      'chat_template_missing',
    );
  }
  const mod = await loadJinja();
  if (!mod) throw badRequest(`rendering chat templates needs the package ${JINJA_PACKAGE}, which is not installed on this server; use /v1/completions`, 'messages', 'chat_template_unavailable');
  const t = compiledTemplate(mod, template);
  const final = messages[messages.length - 1];
  const given = messages.map(asTemplateReads);
  const rendering = continueFinal ? [...given.slice(0, -1), { ...given[given.length - 1], content: (final.content ?? '') + CONTINUE_TAG }] : given;
  let rendered: string;
  try {
    // transformers renders `tools` (None without tools) beside the messages
    const render = (msgs: ChatMessage[]) => t.render({ ...kwargs, messages: msgs, tools, add_generation_prompt: addGenerationPrompt, bos_token: special.bos ?? '', eos_token: special.eos ?? '' });
    rendered = render(rendering);
    // calls' arguments go in as values (what `| tojson` templates expect); a template that
    // concatenates them as text instead would write "[object Map]": it gets the JSON text
    if (rendered.includes(OBJECT_TEXT) && messages.some((m) => m.tool_calls?.length) && !messages.some((m) => m.content?.includes(OBJECT_TEXT))) rendered = render(argumentsAsText(rendering));
  } catch (err) {
    // templates raise errors on purpose (e.g. "roles must alternate user/assistant")
    throw badRequest(`the chat template rejected the messages: ${(err as Error).message}`, 'messages', 'chat_template_error');
  }
  if (!continueFinal) return rendered;
  const tag = CONTINUE_TAG.trim();
  if (!rendered.includes((final.content ?? '').trim()) || !rendered.includes(tag)) {
    throw badRequest('continue_final_message is set but the chat template does not keep the final message as given, so there is nothing to continue', 'continue_final_message', 'chat_template_error');
  }
  const at = rendered.lastIndexOf(tag);
  return rendered.startsWith(CONTINUE_TAG, at) ? rendered.slice(0, at) : rendered.slice(0, at).trimEnd();
}

/**
 * The prompt /v1/chat/completions decodes from: the rendered template, tokenised without the
 * tokenizer's own special tokens (the template already holds those it wants), as transformers'
 * `apply_chat_template(..., tokenize=True)` does.
 */
export async function buildChatPrompt(
  model: Pick<ServedModel, 'id' | 'chatTemplate' | 'specialTokens' | 'encode'>,
  messages: ChatMessage[],
  kwargs: Record<string, unknown> = {},
  options: ChatPromptOptions = {},
  tools: unknown[] | null = null,
): Promise<{ text: string; ids: Int32Array }> {
  const text = await renderChat(model.chatTemplate, model.id, messages, model.specialTokens, kwargs, options, tools);
  return { text, ids: await model.encode(text, options.addSpecialTokens ?? false) };
}
