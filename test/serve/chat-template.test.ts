/**
 * /v1/chat/completions with a real chat template. Neither shipped model has one, so the tiny
 * model is copied to a temp dir and given Qwen2-Instruct's ChatML template (verbatim from its
 * tokenizer_config.json). Independent truth: transformers renders and tokenises each
 * conversation with `apply_chat_template(..., add_generation_prompt=True)` and decodes greedily
 * from those ids (scripts/hf_chat_reference.py). The prompt the server builds must equal it,
 * text and ids, and the official openai client's chat call, streamed and not, must answer with
 * transformers' greedy continuation. The same tokenizer saved by transformers itself (which puts the
 * template in chat_template.jinja, not tokenizer_config.json) must give transformers' prompts too,
 * and a template printing booleans, None, lists and dicts must render them as Python does.
 * Skipped without the venv (failing under CI=true).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildChatPrompt, renderChat } from '../../src/serve/chat-template.js';
import { describeWithTransformers, pythonPath } from '../helpers/python.js';
import { hfChatReference, type ChatReference, type ReferenceConversation } from './chat-reference.js';
import { CHATML, postJson, startServer, tinyWithChatTemplate, TINY_DIR, type Running } from './helpers.js';

// ChatML that closes an empty reasoning block when the caller turns thinking off, as Qwen3's
// template does (chat_template_kwargs: {"enable_thinking": false})
const THINKING_SWITCH = `${CHATML}{% if add_generation_prompt and enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}`;

type Message = { role: 'system' | 'user' | 'assistant'; content: string };
const CONVERSATIONS: Message[][] = [
  [{ role: 'user', content: 'Who art thou?' }],
  [
    { role: 'system', content: 'Thou speakest as a player in Verona.' },
    { role: 'user', content: 'ROMEO, what news?' },
    { role: 'assistant', content: 'None, good cousin; the Capulets are abed.' },
    { role: 'user', content: 'Then speak of JULIET:' },
  ],
];
const NEW_TOKENS = 12;

// the conversation's end as vLLM's add_generation_prompt and continue_final_message set it
const ENDINGS: Array<{ messages: Message[]; options: { add_generation_prompt: boolean; continue_final_message?: boolean } }> = [
  {
    messages: [
      { role: 'user', content: 'Who art thou?' },
      { role: 'assistant', content: 'I am the ghost of' },
    ],
    options: { add_generation_prompt: false, continue_final_message: true },
  },
  { messages: [{ role: 'user', content: 'Who art thou?' }, { role: 'assistant', content: 'A friend.  ' }], options: { add_generation_prompt: false, continue_final_message: true } },
  { messages: CONVERSATIONS[1], options: { add_generation_prompt: false } },
];

const NO_THINKING = { enable_thinking: false };

/** transformers' rendering, ids and greedy continuation of each conversation with the model in `dir` */
const reference = (dir: string, conversations: ReferenceConversation[] = CONVERSATIONS) => hfChatReference(dir, conversations, NEW_TOKENS);

/** Template variables of every kind, and a template that prints them with |string and {{ }} (Python's str() of each, as transformers renders them). */
const VALUES: Record<string, unknown> = {
  yes: true,
  no: false,
  nothing: null,
  list: ['string', 'null', 3, 0.5, true, null, "it's", 'say "hi"', 'both \' and "', 'tab\there\nnewline', 'é ü 😀'],
  dict: { type: ['integer', 'null'], nested: { flags: [false], empty: {} }, "key with 'quote'": 1.25 },
  empty: [],
  text: 'plain text',
  integer: 7,
  fraction: 0.125,
};
const VALUES_TEMPLATE = [
  '{%- for m in messages %}{{ m.content }}{% endfor %}',
  ...Object.keys(VALUES).map((k) => `\n${k}: [{{ ${k} | string }}]`),
  '\nprinted: {{ yes }} {{ no }} {{ integer }} {{ text }}',
  "\nin text: {{ 'type=' ~ (dict.type | string) }}",
  '\ntests: {{ yes is true }} {{ nothing is none }} {{ list is sequence }} {{ dict is mapping }}',
].join('');
const VALUES_MESSAGES = [{ role: 'user' as const, content: 'values' }];

describeWithTransformers('chat completions with a real chat template', () => {
  let dir: string;
  let jinjaDir: string;
  let jinjaRefs: ChatReference[];
  let s: Running;
  let client: OpenAI;
  let refs: ChatReference[];
  let decode: (ids: number[]) => string;
  let pythonValuesDir: string;
  let valuesRef: ChatReference;

  beforeAll(async () => {
    dir = tinyWithChatTemplate(mkdtempSync(path.join(tmpdir(), 'rfid-chat-')));
    // the tokenizer with the thinking switch, saved by transformers itself, which (from version 5)
    // writes the template to chat_template.jinja and leaves it out of tokenizer_config.json
    jinjaDir = mkdtempSync(path.join(tmpdir(), 'rfid-chat-jinja-'));
    cpSync(TINY_DIR, jinjaDir, { recursive: true });
    const save = 'import sys; from transformers import AutoTokenizer; t = AutoTokenizer.from_pretrained(sys.argv[1]); t.chat_template = sys.argv[3]; t.save_pretrained(sys.argv[2])';
    execFileSync(pythonPath, ['-c', save, dir, jinjaDir, THINKING_SWITCH], {
      env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
    pythonValuesDir = tinyWithChatTemplate(path.join(jinjaDir, '..', `${path.basename(jinjaDir)}-values`), VALUES_TEMPLATE);
    // one Python run for every reference: the thinking-switch and values templates through their own tokenizers
    const own = [...CONVERSATIONS, ...ENDINGS];
    const thinking = [...CONVERSATIONS, ...CONVERSATIONS.map((messages) => ({ messages, kwargs: NO_THINKING }))].map((c) => (Array.isArray(c) ? { messages: c, tokenizer: jinjaDir } : { ...c, tokenizer: jinjaDir }));
    const all = reference(dir, [...own, ...thinking, { messages: VALUES_MESSAGES, kwargs: VALUES, options: { add_generation_prompt: false }, tokenizer: pythonValuesDir }]);
    refs = all.slice(0, own.length);
    jinjaRefs = all.slice(own.length, own.length + thinking.length);
    valuesRef = all[all.length - 1];
    s = await startServer({ models: [`chat=${dir}`, `chat-jinja=${jinjaDir}`] });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const tok = s.server.models.get('chat')!.tokenizer.tokenizer;
    decode = (ids) => tok.decode(ids, { skip_special_tokens: true });
  }, 300_000);

  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (jinjaDir) rmSync(jinjaDir, { recursive: true, force: true });
    if (pythonValuesDir) rmSync(pythonValuesDir, { recursive: true, force: true });
  });

  it('booleans, None, lists and dicts a template writes with |string or prints come out as Python writes them (src/serve/jinja-python.ts)', async () => {
    const ours = await renderChat(VALUES_TEMPLATE, 'model', VALUES_MESSAGES, { bos: null, eos: null }, VALUES, { addGenerationPrompt: false });
    expect(ours).toBe(valuesRef.text);
    // what it renders (read from transformers' output, so the comparison above is not of two empty texts)
    expect(valuesRef.text).toContain('yes: [True]\nno: [False]\nnothing: [None]');
    expect(valuesRef.text).toContain("dict: [{'type': ['integer', 'null'], 'nested': {'flags': [False], 'empty': {}}, \"key with 'quote'\": 1.25}]");
  });

  it('the server builds the prompt transformers renders, text and token ids', async () => {
    const model = s.server.models.get('chat')!;
    expect(model.chatTemplate).toBe(CHATML);
    for (const [i, messages] of CONVERSATIONS.entries()) {
      const built = await buildChatPrompt(model, messages);
      expect(built.text).toBe(refs[i].text);
      expect([...built.ids]).toEqual(refs[i].ids);
    }
    // the template's default system prompt appears only when the conversation has none
    expect(refs[0].text.startsWith('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n')).toBe(true);
    expect(refs[1].text).not.toContain('You are a helpful assistant');
  });

  it('finds a template where transformers 5 saves it (chat_template.jinja, none in tokenizer_config.json)', async () => {
    const config = JSON.parse(readFileSync(path.join(jinjaDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.chat_template).toBeUndefined();
    const model = s.server.models.get('chat-jinja')!;
    expect(model.chatTemplate).toBe(readFileSync(path.join(jinjaDir, 'chat_template.jinja'), 'utf8'));
    expect(model.chatTemplate).toBe(THINKING_SWITCH);
    // vLLM's /tokenizer_info serves the template found there, and the special tokens as text
    const info = (await (await fetch(`${s.url}/tokenizer_info?model=chat-jinja`)).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ chat_template: THINKING_SWITCH, eos_token: '<|endoftext|>', tokenizer_class: config.tokenizer_class });
    expect(info.added_tokens_decoder).toBeUndefined();
    for (const [i, messages] of CONVERSATIONS.entries()) {
      const built = await buildChatPrompt(model, messages);
      expect(built.text).toBe(jinjaRefs[i].text);
      expect([...built.ids]).toEqual(jinjaRefs[i].ids);
    }
    const r = await client.chat.completions.create({ model: 'chat-jinja', messages: CONVERSATIONS[0], max_tokens: NEW_TOKENS, temperature: 0 });
    expect(r.choices[0].message.content).toBe(decode(jinjaRefs[0].generated));
  });

  it('chat_template_kwargs reach the template as apply_chat_template(**kwargs) passes them (Qwen3’s enable_thinking)', async () => {
    const model = s.server.models.get('chat-jinja')!;
    const n = CONVERSATIONS.length;
    for (const [i, messages] of CONVERSATIONS.entries()) {
      const built = await buildChatPrompt(model, messages, NO_THINKING);
      expect(built.text).toBe(jinjaRefs[n + i].text);
      expect([...built.ids]).toEqual(jinjaRefs[n + i].ids);
      expect(built.text.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(true);
    }
    // through the official client: a field the server accepts beyond OpenAI's own, as vLLM does
    const params = { model: 'chat-jinja', messages: CONVERSATIONS[1], max_tokens: NEW_TOKENS, temperature: 0, chat_template_kwargs: NO_THINKING };
    const r = await client.chat.completions.create(params as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(r.usage!.prompt_tokens).toBe(jinjaRefs[n + 1].ids.length);
    expect(r.choices[0].message.content).toBe(decode(jinjaRefs[n + 1].generated));
    // the kwargs cannot replace the conversation
    const kept = await buildChatPrompt(model, CONVERSATIONS[0], { messages: CONVERSATIONS[1], add_generation_prompt: false });
    expect(kept.text).toBe(jinjaRefs[0].text);
  });

  it('add_generation_prompt and continue_final_message end the prompt as transformers’ apply_chat_template does', async () => {
    const model = s.server.models.get('chat')!;
    for (const [i, { messages, options }] of ENDINGS.entries()) {
      const ref = refs[CONVERSATIONS.length + i];
      const built = await buildChatPrompt(model, messages, {}, { addGenerationPrompt: options.add_generation_prompt, continueFinalMessage: options.continue_final_message });
      expect(built.text).toBe(ref.text);
      expect([...built.ids]).toEqual(ref.ids);
      // through the server, with vLLM's request fields: the greedy continuation transformers decodes
      const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages, max_tokens: NEW_TOKENS, temperature: 0, ...options });
      expect(r.status).toBe(200);
      expect(r.json.usage.prompt_tokens).toBe(ref.ids.length);
      expect(r.json.choices[0].message.content).toBe(decode(ref.generated));
    }
    // the continued message is open (no end marker after it); the spaces it ends with are kept
    expect(refs[CONVERSATIONS.length].text.endsWith('<|im_start|>assistant\nI am the ghost of')).toBe(true);
    expect(refs[CONVERSATIONS.length + 1].text.endsWith('A friend.  ')).toBe(true);
    // vLLM's /tokenize builds the same ids for a conversation, with the same options
    for (const [i, messages] of CONVERSATIONS.entries()) {
      expect((await postJson(`${s.url}/tokenize`, { model: 'chat', messages })).json.tokens).toEqual(refs[i].ids);
    }
    const continued = await postJson(`${s.url}/tokenize`, { model: 'chat', messages: ENDINGS[0].messages, ...ENDINGS[0].options });
    expect(continued.json.tokens).toEqual(refs[CONVERSATIONS.length].ids);
    // continue_final_message alone implies no generation prompt; asking for both is a 400
    const alone = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: ENDINGS[0].messages, max_tokens: 2, temperature: 0, continue_final_message: true });
    expect(alone.json.usage.prompt_tokens).toBe(refs[CONVERSATIONS.length].ids.length);
    const both = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: ENDINGS[0].messages, continue_final_message: true, add_generation_prompt: true });
    expect(both.status).toBe(400);
    expect(both.json.error).toMatchObject({ param: 'continue_final_message', message: expect.stringMatching(/cannot both be true/) });
  });

  it('openai client, not streamed: greedy answer equals transformers', async () => {
    for (const [i, messages] of CONVERSATIONS.entries()) {
      const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: NEW_TOKENS, temperature: 0 });
      expect(r.object).toBe('chat.completion');
      expect(r.choices[0].message.role).toBe('assistant');
      expect(r.choices[0].message.content).toBe(decode(refs[i].generated));
      expect(r.usage!.prompt_tokens).toBe(refs[i].ids.length);
      expect(r.usage!.completion_tokens).toBe(refs[i].generated.length);
    }
  });

  it('chat log-probabilities (logprobs: true, top_logprobs), streamed and not, in the chat shape', async () => {
    const params = { model: 'chat', messages: CONVERSATIONS[1], max_tokens: NEW_TOKENS, temperature: 0, logprobs: true, top_logprobs: 2 };
    const r = await client.chat.completions.create(params);
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(r.usage!.completion_tokens);
    for (const c of content) {
      expect(c.logprob).toBeLessThanOrEqual(0);
      expect(c.bytes).toEqual([...Buffer.from(c.token, 'utf8')]);
      expect(c.top_logprobs).toHaveLength(2);
      // greedy: the chosen token is the most likely one
      expect(c.top_logprobs[0]).toEqual({ token: c.token, logprob: c.logprob, bytes: c.bytes });
      expect(c.top_logprobs[1].logprob).toBeLessThanOrEqual(c.logprob);
    }
    if (r.choices[0].finish_reason === 'length') expect(content.map((c) => c.token).join('')).toBe(r.choices[0].message.content);
    const stream = await client.chat.completions.create({ ...params, stream: true });
    const streamed: typeof content = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    const without = await client.chat.completions.create({ ...params, logprobs: false, top_logprobs: undefined });
    expect(without.choices[0].logprobs).toBeNull();
  });

  it('openai client, streamed: the deltas join to the same answer', async () => {
    const messages = CONVERSATIONS[1];
    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: NEW_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role;
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(role).toBe('assistant');
    expect(text).toBe(decode(refs[1].generated));
    expect(usage?.prompt_tokens).toBe(refs[1].ids.length);
  });

  it('n = 2 chat choices, streamed: each index gets its role, then deltas joining to the greedy answer', async () => {
    const stream = await client.chat.completions.create({ model: 'chat', messages: CONVERSATIONS[1], max_tokens: NEW_TOKENS, temperature: 0, n: 2, stream: true });
    const texts = ['', ''];
    const roles: Array<string | undefined> = [undefined, undefined];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        roles[c.index] ??= c.delta.role;
        texts[c.index] += c.delta.content ?? '';
      }
    }
    expect(roles).toEqual(['assistant', 'assistant']);
    expect(texts).toEqual([decode(refs[1].generated), decode(refs[1].generated)]);
  });
});
