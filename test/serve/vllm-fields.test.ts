/**
 * vLLM's request fields beyond OpenAI's, as vLLM defines them: min_tokens,
 * include_stop_str_in_output, skip_special_tokens, allowed_token_ids, truncate_prompt_tokens,
 * add_special_tokens, request_id (and the X-Request-Id header); those not implemented, refused unless neutral; and the /tokenize,
 * /detokenize and /tokenizer_info endpoints. Truth: identities of the
 * decoder (a bias of +100 on the end-of-sequence token makes it the greedy choice at every step;
 * the greedy continuation of the same prompt) and the tokenizer's own special tokens.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, tinyWithChatTemplate, TINY_DIR, type Running } from './helpers.js';

const PROMPT = 'ROMEO:\n';
const EOS = 4095; // <|endoftext|>, the demo tokenizer's one special token and the model's EOS
let work: string;
let s: Running;
/** the plain greedy continuation (24 tokens, no EOS among them) */
let greedy: { text: string; ids: number[] };

const complete = (body: Record<string, unknown>) => postJson(`${s.url}/v1/completions`, { model: 'plain', prompt: PROMPT, max_tokens: 24, temperature: 0, ...body });

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rfid-vllm-fields-'));
  // the same model with a tokenizer that adds <|endoftext|> before every text, as BOS-adding tokenizers (Llama, Mixtral) do
  const bos = path.join(work, 'bos');
  cpSync(TINY_DIR, bos, { recursive: true });
  const tokFile = path.join(bos, 'tokenizer.json');
  const tok = JSON.parse(readFileSync(tokFile, 'utf8')) as Record<string, unknown>;
  tok.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
    special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [EOS], tokens: ['<|endoftext|>'] } },
  };
  writeFileSync(tokFile, JSON.stringify(tok));
  s = await startServer({ models: [`plain=${TINY_DIR}`, `bos=${bos}`, `chat=${tinyWithChatTemplate(path.join(work, 'chat'))}`] });
  const r = await complete({ logprobs: 0 });
  expect(r.json.choices[0].finish_reason).toBe('length');
  greedy = { text: r.json.choices[0].text, ids: [...s.server.models.get('plain')!.tokenizer.tokenizer.encode(r.json.choices[0].text).ids] };
}, 120_000);

afterAll(async () => {
  await s?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('vLLM’s sampling fields', () => {
  it('min_tokens: the end-of-sequence token, forced by a bias, comes only after that many tokens', async () => {
    const forced = await complete({ logit_bias: { [EOS]: 100 } });
    expect(forced.json.usage.completion_tokens).toBe(1);
    expect(forced.json.choices[0].finish_reason).toBe('stop');
    const held = await complete({ logit_bias: { [EOS]: 100 }, min_tokens: 5 });
    expect(held.json.usage.completion_tokens).toBe(6);
    expect(held.json.choices[0].finish_reason).toBe('stop');
    // the 5 tokens before it are the greedy ones (EOS masked, nothing else changed)
    const five = await complete({ max_tokens: 5 });
    expect(held.json.choices[0].text).toBe(five.json.choices[0].text);
  });

  it('min_tokens: no stop string ends within the first tokens', async () => {
    const stop = greedy.text.slice(0, 2);
    const early = await complete({ stop: [stop] });
    expect(early.json.choices[0].text).toBe('');
    const held = await complete({ stop: [stop], min_tokens: 6 });
    const tok = s.server.models.get('plain')!.tokenizer.tokenizer;
    const boundary = tok.decode(greedy.ids.slice(0, 6), { skip_special_tokens: true }).length;
    // the first match that ends after the text of the first 6 tokens, as vLLM searches
    const at = greedy.text.indexOf(stop, boundary - stop.length + 1);
    expect(held.json.choices[0].text).toBe(at < 0 ? greedy.text : greedy.text.slice(0, at));
    expect(held.json.usage.completion_tokens).toBeGreaterThanOrEqual(6);
  });

  it('include_stop_str_in_output keeps the stop string; skip_special_tokens false keeps special tokens’ text', async () => {
    const stop = greedy.text.slice(5, 9);
    const cut = await complete({ stop: [stop] });
    expect(cut.json.choices[0].text).toBe(greedy.text.slice(0, greedy.text.indexOf(stop)));
    const kept = await complete({ stop: [stop], include_stop_str_in_output: true });
    expect(kept.json.choices[0].text).toBe(greedy.text.slice(0, greedy.text.indexOf(stop) + stop.length));
    // EOS at every step, generated past (ignore_eos): its text only with skip_special_tokens false
    const eos = { logit_bias: { [EOS]: 100 }, ignore_eos: true, max_tokens: 3 };
    expect((await complete(eos)).json.choices[0].text).toBe('');
    expect((await complete({ ...eos, skip_special_tokens: false })).json.choices[0].text).toBe('<|endoftext|>'.repeat(3));
    // the stop token's text is in the output only with include_stop_str_in_output (and kept special tokens)
    const stopEos = { logit_bias: { [EOS]: 100 }, skip_special_tokens: false };
    expect((await complete(stopEos)).json.choices[0].text).toBe('');
    expect((await complete({ ...stopEos, include_stop_str_in_output: true })).json.choices[0].text).toBe('<|endoftext|>');
  });

  it('bad_words: a word the greedy text holds never comes out, at the start of a text or inside it; the rest as greedy until then', async () => {
    const tok = s.server.models.get('plain')!.tokenizer.tokenizer;
    // the first word of three or more letters after a space in the greedy text
    const word = /(?<= )[A-Za-z]{3,}/.exec(greedy.text)![0];
    const r = await complete({ bad_words: [word] });
    expect(r.status, r.text).toBe(200);
    const text: string = r.json.choices[0].text;
    expect(text).not.toBe(greedy.text);
    // the token sequences banned: the word alone, and with a space before it (here one token, as vLLM would not ban it)
    const bare = [...tok.encode(word, { add_special_tokens: false }).ids];
    const spaced = [...tok.encode(` ${word}`, { add_special_tokens: false }).ids];
    const ids = [...tok.encode(text, { add_special_tokens: false }).ids];
    const holds = (seq: number[]) => ids.some((_, i) => seq.every((t, j) => ids[i + j] === t));
    expect(holds(bare), `${word} in ${JSON.stringify(text)}`).toBe(false);
    expect(spaced.length).toBeLessThan(bare.length);
    expect(holds(spaced), ` ${word} in ${JSON.stringify(text)}`).toBe(false);
    // up to where the word began, the text is the greedy one
    const at = greedy.text.indexOf(word);
    expect(text.slice(0, Math.max(0, at - 1))).toBe(greedy.text.slice(0, Math.max(0, at - 1)));
    for (const words of [['x'.repeat(1001)], ['ok', ' \n']]) {
      const bad = await complete({ bad_words: words });
      expect(bad.status).toBe(400);
      expect(bad.json.error.param).toBe(`bad_words.${words.length - 1}`);
    }
  });

  it('return_token_ids: the prompt’s ids (those /tokenize gives) and each choice’s, streamed as whole, on both endpoints', async () => {
    const tok = s.server.models.get('plain')!.tokenizer.tokenizer;
    const promptIds = (await postJson(`${s.url}/tokenize`, { model: 'plain', prompt: PROMPT })).json.tokens;
    const whole = await complete({ return_token_ids: true, n: 2, temperature: 0.8, seed: 3, stop: ['\n\n'] });
    for (const c of whole.json.choices) {
      expect(c.prompt_token_ids).toEqual(promptIds);
      expect(tok.decode(c.token_ids, { skip_special_tokens: true }).startsWith(c.text)).toBe(true);
    }
    expect(whole.json.choices.reduce((n: number, c: { token_ids: number[] }) => n + c.token_ids.length, 0)).toBe(whole.json.usage.completion_tokens);
    const streamed = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'plain', prompt: PROMPT, max_tokens: 24, return_token_ids: true, n: 2, temperature: 0.8, seed: 3, stop: ['\n\n'], stream: true }) });
    const events = (await streamed.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    for (const index of [0, 1]) {
      const mine = events.map((e) => e.choices[0]).filter((c) => c.index === index);
      expect(mine[0].prompt_token_ids).toEqual(promptIds);
      expect(mine.flatMap((c) => c.token_ids)).toEqual(whole.json.choices[index].token_ids);
    }
    // chat: the prompt's ids once, at the top
    const messages = [{ role: 'user', content: 'Speak.' }];
    const chatIds = (await postJson(`${s.url}/tokenize`, { model: 'chat', messages })).json.tokens;
    const chat = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages, max_tokens: 8, temperature: 0, return_token_ids: true });
    expect(chat.json.prompt_token_ids).toEqual(chatIds);
    expect(tok.decode(chat.json.choices[0].token_ids, { skip_special_tokens: true })).toBe(chat.json.choices[0].message.content);
    // without it, none
    expect((await complete({})).json.choices[0]).not.toHaveProperty('token_ids');
  });

  it('request_id: the response’s id holds it, and the X-Request-Id header’s wins over it; both said back in the header', async () => {
    const r = await complete({ request_id: 'trace-42' });
    expect(r.json.id).toBe('cmpl-trace-42');
    const send = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...body }) });
    const chat = await send({ request_id: 'body-id' }, { 'x-request-id': 'header-id' });
    expect(chat.headers.get('x-request-id')).toBe('header-id');
    expect(((await chat.json()) as { id: string }).id).toBe('chatcmpl-header-id');
    const streamed = await send({ request_id: 'body-id', stream: true });
    expect(streamed.headers.get('x-request-id')).toBe('body-id');
    const ids = new Set((await streamed.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => (JSON.parse(e.slice(6)) as { id: string }).id));
    expect([...ids]).toEqual(['chatcmpl-body-id']);
    // without one: a fresh id, and no header
    const plain = await send({});
    expect(plain.headers.get('x-request-id')).toBeNull();
    expect(((await plain.json()) as { id: string }).id).toMatch(/^chatcmpl-[0-9a-f-]{36}$/);
    // said back on errors too
    const refused = await send({ max_tokens: -1 }, { 'x-request-id': 'failing-one' });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('x-request-id')).toBe('failing-one');
    // ids that cannot go into an id and a header are 400s
    expect((await complete({ request_id: 'has space' })).json.error).toMatchObject({ param: 'request_id', message: expect.stringMatching(/visible ASCII/) });
    const badHeader = await send({}, { 'x-request-id': 'x'.repeat(300) });
    expect(badHeader.status).toBe(400);
    expect(((await badHeader.json()) as { error: { message: string } }).error.message).toMatch(/X-Request-Id header must be 1 to 256 visible ASCII characters/);
  });

  it('stream_options.continuous_usage_stats (with include_usage): every chunk carries its choice’s usage so far, ending at the request’s', async () => {
    const events = async (route: string, body: Record<string, unknown>) => {
      const r = await fetch(`${s.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ max_tokens: 12, temperature: 0, stream: true, ...body }) });
      return (await r.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { choices: unknown[]; usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null });
    };
    for (const [route, body] of [
      ['/v1/completions', { model: 'plain', prompt: PROMPT }],
      ['/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: 'hi' }] }],
    ] as const) {
      const got = await events(route, { ...body, stream_options: { include_usage: true, continuous_usage_stats: true } });
      const total = got.at(-1)!;
      expect(total.choices).toEqual([]);
      const perChunk = got.slice(0, -1).map((e) => e.usage!);
      expect(perChunk.length).toBeGreaterThan(2);
      for (const [i, u] of perChunk.entries()) {
        expect(u.prompt_tokens).toBe(total.usage!.prompt_tokens);
        expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
        if (i > 0) expect(u.completion_tokens).toBeGreaterThanOrEqual(perChunk[i - 1].completion_tokens);
      }
      expect(perChunk.at(-1)!.completion_tokens).toBe(total.usage!.completion_tokens);
      // without include_usage it says nothing, as in vLLM
      expect((await events(route, { ...body, stream_options: { continuous_usage_stats: true } })).every((e) => e.usage === undefined)).toBe(true);
    }
  });

  it('allowed_token_ids: only those tokens come out; the greedy choice among them', async () => {
    const allowed = [greedy.ids[3], greedy.ids[7], greedy.ids[11]];
    const r = await complete({ allowed_token_ids: allowed, logprobs: 0, max_tokens: 8 });
    const ids = [...s.server.models.get('plain')!.tokenizer.tokenizer.encode(r.json.choices[0].text).ids];
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(allowed).toContain(id);
    expect((await complete({ allowed_token_ids: [4096] })).json.error).toMatchObject({ param: 'allowed_token_ids', message: expect.stringMatching(/outside the vocabulary/) });
    // allowed tokens that min_tokens all holds back leave nothing to generate: a 400, not a token outside the list
    const heldBack = await complete({ allowed_token_ids: [EOS], min_tokens: 2 });
    expect(heldBack.status).toBe(400);
    expect(heldBack.json.error).toMatchObject({ param: 'allowed_token_ids', message: expect.stringMatching(/is a stop token that the minimum length of 2 tokens holds back/) });
    const stopIds = await complete({ allowed_token_ids: [EOS, greedy.ids[3]], stop_token_ids: [greedy.ids[3]], min_tokens: 1, stream: true });
    expect(stopIds.status).toBe(400);
    // with ignore_eos the end-of-sequence token is not held, so it can be generated
    const ignored = await complete({ allowed_token_ids: [EOS], min_tokens: 2, ignore_eos: true, max_tokens: 3, skip_special_tokens: false });
    expect(ignored.json.choices[0].text).toBe('<|endoftext|>'.repeat(3));
  });

  it('truncate_prompt_tokens keeps the prompt’s last k tokens', async () => {
    const tok = s.server.models.get('plain')!.tokenizer.tokenizer;
    const long = 'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nROMEO:\n';
    const ids = [...tok.encode(long).ids];
    const k = 5;
    const truncated = await complete({ prompt: long, truncate_prompt_tokens: k, echo: true });
    const direct = await complete({ prompt: ids.slice(-k) });
    expect(truncated.json.usage.prompt_tokens).toBe(k);
    const echoed = tok.decode(ids.slice(-k), { skip_special_tokens: false });
    expect(truncated.json.choices[0].text).toBe(echoed + direct.json.choices[0].text);
    // a k beyond the prompt's length leaves it whole
    expect((await complete({ prompt: long, truncate_prompt_tokens: 1000 })).json.usage.prompt_tokens).toBe(ids.length);
  });

  it('add_special_tokens false leaves out the special tokens a tokenizer adds to a text prompt', async () => {
    const withBos = await complete({ model: 'bos' });
    const without = await complete({ model: 'bos', add_special_tokens: false });
    const plainIds = s.server.models.get('plain')!.tokenizer.tokenizer.encode(PROMPT).ids.length;
    expect(withBos.json.usage.prompt_tokens).toBe(plainIds + 1);
    expect(without.json.usage.prompt_tokens).toBe(plainIds);
    expect(without.json.choices[0].text).toBe(greedy.text);
  });

  it('fields not implemented are refused unless neutral', async () => {
    const bad: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ use_beam_search: true }, 'use_beam_search', /beam search/],
      [{ length_penalty: 0.8 }, 'length_penalty', /beam search/],
      [{ prompt_logprobs: 1 }, 'prompt_logprobs', /echo/],
      [{ guided_json: { type: 'object', properties: { a: { minLength: 2 } } } }, 'guided_json', /"minLength" without a "type" is not supported/],
      [{ guided_json: '{"type": ' }, 'guided_json', /not a JSON schema/],
      [{ guided_json: { type: 'object' }, response_format: { type: 'json_object' } }, 'guided_json', /one structured-output constraint, not response_format and guided_json/],
      [{ guided_grammar: 'root ::= "a"' }, 'guided_grammar', /grammars are not supported/],
      [{ structured_outputs: { grammar: 'root ::= "a"' } }, 'structured_outputs.grammar', /grammars are not supported/],
      [{ return_tokens_as_token_ids: true }, 'return_tokens_as_token_ids', /not supported/],
      [{ logits_processors: ['x'] }, 'logits_processors', /not supported/],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', allOf: [] } } } }, 'response_format.json_schema.schema', /"allOf" must be a non-empty array/],
      [{ priority: 1 }, 'priority', /priority scheduling is not enabled/],
      // Text Generation Inference's grammars: a value that is no schema or pattern is named, never dropped
      [{ response_format: { type: 'regex' } }, 'response_format.value', /required/],
      [{ response_format: { type: 'json', value: '{"type": ' } }, 'response_format.value', /not a JSON schema/],
      [{ response_format: { type: 'json_object', value: { type: 'string', pattern: '(?=a)b' } } }, 'response_format.value', /pattern/],
      [{ response_format: { type: 'regex', value: 'a', json_schema: null }, guided_json: { type: 'object' } }, 'guided_json', /one structured-output constraint, not response_format and guided_json/],
      [{ response_format: { type: 'grammar', value: 'root ::= "a"' } }, 'response_format.type', /"json" and "regex", with a "value"/],
    ];
    for (const [fields, param, message] of bad) {
      const r = await complete(fields);
      expect(r.status, JSON.stringify(fields)).toBe(400);
      expect(r.json.error).toMatchObject({ param, message: expect.stringMatching(message) });
    }
    // what LangChain's VLLMOpenAI and vLLM's own defaults send
    const neutral = await complete({ priority: 0, use_beam_search: false, length_penalty: 1, prompt_logprobs: null, guided_json: null, best_of: 1, top_k: -1, min_p: 0, repetition_penalty: 1, min_tokens: 0, skip_special_tokens: true, spaces_between_special_tokens: true, include_stop_str_in_output: false, return_tokens_as_token_ids: false });
    expect(neutral.status).toBe(200);
    expect(neutral.json.choices[0].text).toBe(greedy.text);
    const chat = await postJson(`${s.url}/v1/chat/completions`, { model: 'plain', messages: [{ role: 'user', content: 'hi' }], echo: true });
    expect(chat.json.error).toMatchObject({ param: 'echo' });
    const chatTemplate = await postJson(`${s.url}/v1/chat/completions`, { model: 'plain', messages: [{ role: 'user', content: 'hi' }], chat_template: '{{ x }}' });
    expect(chatTemplate.json.error).toMatchObject({ param: 'chat_template' });
  });
});

describe('vLLM’s /tokenize, /detokenize and /tokenizer_info', () => {
  const post = (route: string, body: unknown) => postJson(`${s.url}${route}`, body);

  it('/tokenize gives the ids a completion’s prompt is made of, with the count and the context length', async () => {
    const prompt = 'JULIET:\nO Romeo, Romeo!';
    const r = await post('/tokenize', { model: 'plain', prompt, return_token_strs: true });
    expect(r.status).toBe(200);
    const tok = s.server.models.get('plain')!.tokenizer.tokenizer;
    expect(r.json.tokens).toEqual([...tok.encode(prompt).ids]);
    expect(r.json.count).toBe(r.json.tokens.length);
    expect(r.json.max_model_len).toBe(s.server.models.get('plain')!.contextLength);
    expect((r.json.token_strs as string[]).join('')).toBe(prompt);
    const used = await complete({ prompt, max_tokens: 1 });
    expect(used.json.usage.prompt_tokens).toBe(r.json.count);
    // a tokenizer that adds a BOS: counted, unless add_special_tokens is false
    const loadsBefore = s.server.residency.stats('bos').loads;
    const withBos = await post('/tokenize', { model: 'bos', prompt });
    expect(withBos.json.tokens).toEqual([EOS, ...r.json.tokens]);
    expect((await post('/tokenize', { model: 'bos', prompt, add_special_tokens: false })).json.tokens).toEqual(r.json.tokens);
    // the tokenizer alone: no load
    expect(s.server.residency.stats('bos').loads).toBe(loadsBefore);
  });

  it('/detokenize gives the text back, special tokens kept; bad input is a 4xx naming the field', async () => {
    const ids = (await post('/tokenize', { model: 'plain', prompt: 'ROMEO: Ay me!' })).json.tokens as number[];
    expect((await post('/detokenize', { model: 'plain', tokens: ids })).json).toEqual({ prompt: 'ROMEO: Ay me!' });
    expect((await post('/detokenize', { model: 'plain', tokens: [...ids, EOS] })).json.prompt).toBe('ROMEO: Ay me!<|endoftext|>');
    expect((await post('/detokenize', { model: 'plain', tokens: [4096] })).json.error).toMatchObject({ param: 'tokens', message: expect.stringMatching(/outside the vocabulary/) });
    expect((await post('/detokenize', { model: 'plain', tokens: 'abc' })).json.error).toMatchObject({ param: 'tokens' });
    // two models served: one must be named; an unknown one is a 404
    expect((await post('/tokenize', { prompt: 'x' })).json.error).toMatchObject({ param: 'model', message: expect.stringMatching(/serves 3 models/) });
    const unknown = await post('/detokenize', { model: 'nope', tokens: [1] });
    expect(unknown.status).toBe(404);
    // chat without a chat template: the same 400 as /v1/chat/completions
    expect((await post('/tokenize', { model: 'plain', messages: [{ role: 'user', content: 'hi' }] })).json.error).toMatchObject({ code: 'chat_template_missing' });
  });

  it('/tokenizer_info is tokenizer_config.json with special tokens as text; with two models the query names one', async () => {
    const config = JSON.parse(readFileSync(path.join(TINY_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    const r = await fetch(`${s.url}/tokenizer_info?model=plain`);
    expect(r.status).toBe(200);
    const info = (await r.json()) as Record<string, unknown>;
    const { added_tokens_decoder: _table, ...rest } = config;
    expect(info).toEqual({ ...rest, pad_token: null, chat_template: null });
    // the special token's text is the one /tokenize and /detokenize map to and from its id (lm-evaluation-harness's remote tokenizer relies on it)
    expect((await post('/tokenize', { model: 'plain', prompt: info.eos_token, add_special_tokens: false })).json.tokens).toEqual([EOS]);
    const bare = await fetch(`${s.url}/tokenizer_info`);
    expect(bare.status).toBe(400);
    expect(((await bare.json()) as { error: { param: string } }).error.param).toBe('model');
    expect((await fetch(`${s.url}/tokenizer_info?model=nope`)).status).toBe(404);
    expect((await fetch(`${s.url}/tokenizer_info?model=a&model=b`)).status).toBe(400);
  });
});
