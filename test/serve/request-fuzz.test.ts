/**
 * Hostile requests, generated (fast-check, seeded): valid requests to every POST endpoint with one
 * to four fields mutated (values of the field's own type at its edges, wrong types, absurd
 * numbers, huge and lone-surrogate strings, missing required fields, unknown fields), bodies that are JSON but not requests, and
 * bytes that are not JSON. Whatever comes in, the server must:
 * - answer within a bound, with a 2xx in the endpoint's documented shape or a 4xx OpenAI error
 *   object ({"error": {message, type, param, code}}) that carries no stack trace; never a 5xx;
 * - end every stream with [DONE], or with an error event when it fails after the headers;
 * - keep serving: afterwards nothing is in flight, no KV cache is reserved, and a plain greedy
 *   request gets the same text as before the fuzzing.
 * Hand-picked cases of each kind are in http-errors.test.ts; this file looks for the cases nobody
 * thought of. A failure prints the shrunk request (fast-check's counterexample) and the seed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, HERMES_TOOLS_CHATML, postJson, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

/** How long one answer may take: the largest request a mutation can make (16 choices up to the 1024-token context) decodes in a few seconds on the tiny model. */
const ANSWER_TIMEOUT_MS = 60_000;
/** fast-check's seed: fixed, so a failure reproduces; RFID_MOE_FUZZ_SEED and RFID_MOE_FUZZ_RUNS (a multiplier) explore further. */
const SEED = Number(process.env.RFID_MOE_FUZZ_SEED ?? 20261204);
const RUNS = Number(process.env.RFID_MOE_FUZZ_RUNS ?? 1);

let s: Running;
let dir: string;
let vocab: number;
let plainText: string;

const PLAIN = { model: 'tiny', prompt: 'ROMEO:', max_tokens: 8, temperature: 0 };

beforeAll(async () => {
  // the shipped model with a chat template, so chat requests reach generation
  // a template with tool calls, so that every tool_choice reaches decoding
  dir = tinyWithChatTemplate(mkdtempSync(path.join(tmpdir(), 'rfid-fuzz-')), HERMES_TOOLS_CHATML);
  s = await startServer({ models: [`tiny=${dir}`], maxBatchSize: 8 });
  vocab = s.server.models.get('tiny')!.vocabSize;
  const r = await postJson(`${s.url}/v1/completions`, PLAIN);
  expect(r.status).toBe(200);
  plainText = r.json.choices[0].text;
});

afterAll(async () => {
  await s?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---- what a mutated field may become ----

const loneSurrogates = fc.constantFrom('\ud800', 'a\udfffb', '\udbff\udbff');
const hugeString = fc.integer({ min: 10_000, max: 200_000 }).map((n) => 'the king '.repeat(Math.ceil(n / 9)).slice(0, n));
const absurdNumber = fc.constantFrom(-1, 0, 1, 2, -0.5, 0.5, 1.5, 100, 101, 1023, 1024, 1025, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -1e308, Number.MIN_VALUE, 1e-320);
const tokenId = fc.oneof(fc.integer({ min: 0, max: 600 }), fc.constantFrom(-1, 2 ** 31, 1e12, 0.5));
const anyJson = fc.jsonValue({ maxDepth: 3 });
const fieldValue = fc.oneof(
  { weight: 4, arbitrary: anyJson },
  { weight: 3, arbitrary: absurdNumber },
  { weight: 2, arbitrary: fc.constantFrom(null, true, false, '', 'x', [], {}, [1, 2], { a: 1 }) },
  { weight: 1, arbitrary: loneSurrogates },
  { weight: 1, arbitrary: hugeString },
  { weight: 2, arbitrary: fc.array(tokenId, { maxLength: 40 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.oneof(fc.integer({ min: 0, max: 600 }).map(String), fc.string()), fc.oneof(absurdNumber, anyJson), { maxKeys: 5 }) },
);

/**
 * Values of each field's own type, at its edges and in odd combinations: these pass validation
 * and reach tokenisation, sampling and decoding, where a NaN or an empty set of candidates would
 * show up (a temperature of 1e-300, top_p of 1e-300, every allowed token biased to -100, …).
 */
function wellTyped(vocab: number): Record<string, fc.Arbitrary<unknown>> {
  const id = fc.integer({ min: 0, max: vocab - 1 });
  const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), loneSurrogates, fc.constantFrom('', ' ', '\n', 'ROMEO:', '<|endoftext|>', '\u0000'));
  const tiny = fc.constantFrom(1e-300, 1e-30, 1e-8, Number.MIN_VALUE);
  const pattern = fc.oneof(text, fc.constantFrom('[a-z]+', '\\d{3}', '(?=a)b', '(a|b)*', '.*', 'a?', '', '^$', 'a{1,99999}', '[^\\s\\S]', '(a+)\\1', 'é+😀'));
  return {
    prompt: fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 }), fc.array(id, { minLength: 1, maxLength: 30 }), fc.array(fc.array(id, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 })),
    messages: fc.array(
      fc.oneof(
        fc.record({ role: fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool'), content: fc.oneof(text, fc.array(fc.record({ type: fc.constant('text'), text }), { maxLength: 3 })) }),
        fc.record({
          role: fc.constantFrom('assistant', 'user'),
          content: fc.constantFrom(null, '', 'Anon.'),
          tool_calls: fc.array(fc.record({ id: fc.string({ maxLength: 8 }), type: fc.constant('function'), function: fc.record({ name: fc.constantFrom('f', 'g'), arguments: fc.oneof(fc.constantFrom('{}', '{"a": 1}', '{', '[1]'), text) }) }), { maxLength: 2 }),
        }),
      ),
      { minLength: 1, maxLength: 4 },
    ),
    max_tokens: fc.oneof(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 900, max: 1100 })),
    max_completion_tokens: fc.integer({ min: 1, max: 24 }),
    temperature: fc.oneof(tiny, fc.double({ min: 0, max: 100, noNaN: true })),
    top_p: fc.oneof(tiny, fc.double({ min: 1e-6, max: 1, noNaN: true })),
    top_k: fc.oneof(fc.constantFrom(-1, 0, 1, 2, 2 ** 31), fc.integer({ min: 0, max: vocab + 10 })),
    min_p: fc.oneof(tiny, fc.constantFrom(0, 1, 0.999999), fc.double({ min: 0, max: 1, noNaN: true })),
    n: fc.integer({ min: 1, max: 16 }),
    stop: fc.oneof(text.filter((t) => t !== ''), fc.array(text.filter((t) => t !== ''), { maxLength: 4 })),
    seed: fc.oneof(fc.integer(), fc.constantFrom(2 ** 53 - 1, -(2 ** 53) + 1)),
    presence_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
    frequency_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
    repetition_penalty: fc.oneof(tiny, fc.constantFrom(0.01, 1, 100), fc.double({ min: 0.01, max: 100, noNaN: true })),
    logit_bias: fc.dictionary(id.map(String), fc.oneof(fc.constantFrom(-100, 100), fc.double({ min: -100, max: 100, noNaN: true })), { maxKeys: 20 }),
    ignore_eos: fc.boolean(),
    stop_token_ids: fc.array(id, { maxLength: 6 }),
    min_tokens: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.constant(1_000_000)),
    include_stop_str_in_output: fc.boolean(),
    skip_special_tokens: fc.boolean(),
    allowed_token_ids: fc.array(id, { minLength: 1, maxLength: 5 }),
    return_token_ids: fc.boolean(),
    cache_salt: fc.oneof(text, fc.constantFrom('tenant-a', 'tenant-b')),
    include_reasoning: fc.boolean(),
    bad_words: fc.array(fc.oneof(text.filter((t) => t !== ''), fc.constantFrom('the', ' king', 'ROMEO', '\n')), { maxLength: 4 }),
    truncate_prompt_tokens: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(1_000_000)),
    echo: fc.boolean(),
    logprobs: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.boolean()),
    top_logprobs: fc.integer({ min: 0, max: 20 }),
    stream: fc.boolean(),
    stream_options: fc.record({ include_usage: fc.boolean() }),
    add_special_tokens: fc.boolean(),
    add_generation_prompt: fc.boolean(),
    continue_final_message: fc.boolean(),
    chat_template_kwargs: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    return_token_strs: fc.boolean(),
    input: fc.oneof(
      text,
      fc.array(
        fc.oneof(
          fc.record({ role: fc.constantFrom('user', 'assistant', 'system', 'developer'), content: fc.oneof(text, fc.array(fc.record({ type: fc.constantFrom('input_text', 'output_text'), text }), { maxLength: 2 })) }),
          fc.record({ type: fc.constant('function_call'), call_id: fc.constantFrom('c1', 'c2'), name: fc.constantFrom('f', 'g'), arguments: fc.oneof(fc.constantFrom('{}', '{"a": 1}', '{'), text) }),
          fc.record({ type: fc.constant('function_call_output'), call_id: fc.constantFrom('c1', 'c2', 'zz'), output: text }),
          fc.record({ type: fc.constant('reasoning'), content: fc.array(fc.record({ type: fc.constant('reasoning_text'), text }), { maxLength: 2 }) }),
        ),
        { minLength: 1, maxLength: 5 },
      ),
    ),
    instructions: text,
    max_output_tokens: fc.oneof(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 900, max: 1100 })),
    text: fc.oneof(
      fc.constant({ format: { type: 'text' } }),
      fc.constant({ format: { type: 'json_object' } }),
      fc.record({ format: fc.record({ type: fc.constant('json_schema'), name: fc.constant('x'), schema: fc.constantFrom({ type: 'object' }, { type: 'object', properties: { a: { enum: ['x', 'y'] } }, required: ['a'] }, { type: 'string' }) }) }),
    ),
    metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
    store: fc.boolean(),
    guided_regex: pattern,
    guided_choice: fc.array(text, { minLength: 1, maxLength: 4 }),
    structured_outputs: fc.oneof(
      fc.record({ regex: pattern }),
      fc.record({ choice: fc.array(text, { minLength: 1, maxLength: 4 }) }),
      fc.record({ json_object: fc.boolean(), disable_any_whitespace: fc.boolean() }),
      fc.record({ json: fc.constantFrom({ type: 'integer' }, { enum: ['a', 'b'] }, { type: 'string', pattern: 'x' }), disable_any_whitespace: fc.boolean() }),
    ),
    tools: fc.array(
      fc.record(
        {
          type: fc.constant('function'),
          function: fc.record(
            {
              name: fc.oneof(fc.constantFrom('f', 'g', 'get_weather'), text),
              description: text,
              parameters: fc.oneof(
                fc.constantFrom({}, { type: 'object' }, { type: 'object', properties: { a: { type: 'string', pattern: 'x' } } }, { type: 'array' }, { $ref: '#/$defs/missing' }),
                fc.record({ type: fc.constant('object'), properties: fc.dictionary(fc.string({ maxLength: 6 }), fc.constantFrom({ type: 'string' }, { type: 'integer' }, { enum: [1, 'a', null] }, { type: 'array', items: { type: 'boolean' } }), { maxKeys: 3 }), required: fc.array(fc.string({ maxLength: 6 }), { maxLength: 2 }), additionalProperties: fc.boolean() }),
              ),
            },
            { requiredKeys: ['name'] },
          ),
        },
        { requiredKeys: ['type', 'function'] },
      ),
      { maxLength: 3 },
    ).chain((tools) =>
      // the chat shape, or the Responses API's flat one ({type, name, parameters}); each endpoint meets both
      fc.constantFrom(tools, tools.map((t) => ({ type: t.type, ...(t.function as object) }))),
    ),
    tool_choice: fc.constantFrom('none', 'auto', 'required', { type: 'function', function: { name: 'f' } }, { type: 'function', function: { name: 'absent' } }, { type: 'function', name: 'f' }),
    parallel_tool_calls: fc.boolean(),
    tokens: fc.array(id, { maxLength: 40 }),
    user: fc.string({ maxLength: 20 }),
  };
}

const SAMPLING = [
  'model', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'n', 'stream', 'stream_options', 'stop', 'seed', 'presence_penalty',
  'frequency_penalty', 'repetition_penalty', 'logit_bias', 'ignore_eos', 'stop_token_ids', 'min_tokens', 'include_stop_str_in_output',
  'skip_special_tokens', 'allowed_token_ids', 'truncate_prompt_tokens', 'user', 'response_format', 'use_beam_search', 'guided_json',
  'guided_regex', 'guided_choice', 'structured_outputs', 'bad_words', 'return_token_ids', 'cache_salt',
];
const FIELDS: Record<string, string[]> = {
  '/v1/completions': [...SAMPLING, 'prompt', 'echo', 'logprobs', 'suffix', 'best_of', 'add_special_tokens'],
  '/v1/chat/completions': [
    ...SAMPLING, 'messages', 'max_completion_tokens', 'logprobs', 'top_logprobs', 'tools', 'tool_choice', 'parallel_tool_calls', 'chat_template_kwargs', 'include_reasoning',
    'add_generation_prompt', 'continue_final_message', 'add_special_tokens', 'echo', 'chat_template',
  ],
  '/v1/responses': [
    'model', 'input', 'instructions', 'max_output_tokens', 'temperature', 'top_p', 'tools', 'tool_choice', 'parallel_tool_calls', 'text', 'stream', 'store',
    'metadata', 'reasoning', 'truncation', 'include', 'previous_response_id', 'background', 'seed', 'stop', 'user',
  ],
  '/tokenize': ['model', 'prompt', 'messages', 'add_special_tokens', 'return_token_strs', 'add_generation_prompt', 'continue_final_message', 'chat_template_kwargs', 'tools'],
  '/detokenize': ['model', 'tokens'],
};

/** A valid request per endpoint, varied in the ways that reach different code (streaming, choices, echo, logprobs, prompt forms). */
const validBody: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  '/v1/completions': fc.record(
    {
      model: fc.constant('tiny'),
      prompt: fc.oneof(fc.constant('ROMEO:'), fc.constant(['JULIET:', 'the king']), fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 12 })),
      max_tokens: fc.integer({ min: 0, max: 6 }),
      temperature: fc.constantFrom(0, 0.7, 1.3),
      n: fc.integer({ min: 1, max: 3 }),
      stream: fc.boolean(),
      echo: fc.boolean(),
      logprobs: fc.integer({ min: 0, max: 3 }),
      seed: fc.integer({ min: 0, max: 1000 }),
    },
    { requiredKeys: ['model', 'prompt', 'max_tokens'] },
  ),
  '/v1/chat/completions': fc.record(
    {
      model: fc.constant('tiny'),
      messages: fc.constantFrom(
        [{ role: 'user', content: 'Speak, friend.' }],
        [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Who goes there?' }] }],
      ),
      max_tokens: fc.integer({ min: 1, max: 6 }),
      temperature: fc.constantFrom(0, 0.9),
      n: fc.integer({ min: 1, max: 2 }),
      stream: fc.boolean(),
      logprobs: fc.boolean(),
      top_logprobs: fc.integer({ min: 0, max: 3 }),
    },
    { requiredKeys: ['model', 'messages', 'max_tokens'] },
  ).map(({ top_logprobs, ...rest }) => (rest.logprobs ? { ...rest, top_logprobs } : rest)),
  '/v1/responses': fc.record(
    {
      model: fc.constant('tiny'),
      input: fc.constantFrom('Speak, friend.', [{ role: 'user', content: 'Who goes there?' }], [{ role: 'user', content: [{ type: 'input_text', text: 'Weather?' }] }, { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 'c1', output: 'fair' }]),
      instructions: fc.constant('Be brief.'),
      max_output_tokens: fc.integer({ min: 1, max: 6 }),
      temperature: fc.constantFrom(0, 0.9),
      stream: fc.boolean(),
    },
    { requiredKeys: ['model', 'input', 'max_output_tokens'] },
  ),
  '/tokenize': fc.oneof(
    fc.record({ model: fc.constant('tiny'), prompt: fc.string({ maxLength: 40 }), add_special_tokens: fc.boolean(), return_token_strs: fc.boolean() }, { requiredKeys: ['prompt'] }),
    fc.record({ model: fc.constant('tiny'), messages: fc.constant([{ role: 'user', content: 'hi' }]) }, { requiredKeys: ['messages'] }),
  ),
  '/detokenize': fc.record({ model: fc.constant('tiny'), tokens: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 20 }) }, { requiredKeys: ['tokens'] }),
};

type Mutation = { kind: 'set'; field: string; value: unknown } | { kind: 'delete'; field: string } | { kind: 'unknown'; field: string; value: unknown };

function mutations(endpoint: string, typed: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Mutation[]> {
  const fields = FIELDS[endpoint];
  const ofType = fields.filter((f) => f in typed);
  const one: fc.Arbitrary<Mutation> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), field: fc.constantFrom(...fields), value: fieldValue }) },
    { weight: 8, arbitrary: fc.constantFrom(...ofType).chain((field) => typed[field].map((value): Mutation => ({ kind: 'set', field, value }))) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...fields) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('unknown' as const), field: fc.constantFrom('__proto__', 'constructor', 'prompt ', 'x-extra', 'choices'), value: anyJson }) },
  );
  return fc.array(one, { minLength: 1, maxLength: 4 });
}

/** The mutated body as the JSON text a client sends ("__proto__" as a real key, not the prototype). */
function bodyText(base: Record<string, unknown>, ms: Mutation[]): string {
  const entries = new Map(Object.entries(base));
  for (const m of ms) {
    if (m.kind === 'delete') entries.delete(m.field);
    else entries.set(m.field, m.value);
  }
  return `{${[...entries].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`;
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

async function send(endpoint: string, text: string, contentType = 'application/json'): Promise<Answer> {
  const res = await fetch(`${s.url}${endpoint}`, { method: 'POST', headers: { 'content-type': contentType }, body: text, signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text() };
}

function expectNoStack(text: string): void {
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+|\.js:\d+|node_modules|\/src\//);
}

function expectApiError(json: unknown, status: number): void {
  expect(Object.keys(json as object)).toEqual(['error']);
  const e = (json as { error: Record<string, unknown> }).error;
  expect(Object.keys(e).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof e.message).toBe('string');
  expect((e.message as string).length).toBeGreaterThan(0);
  expect(e.type).toBe(status === 404 ? 'not_found_error' : status === 401 ? 'authentication_error' : 'invalid_request_error');
}

/** The answer's shape, whatever the request was. */
function checkAnswer(endpoint: string, a: Answer): void {
  expect(a.status, a.text.slice(0, 400)).toBeLessThan(500);
  expectNoStack(a.text);
  if (a.status >= 400) {
    expect(a.status).toBeOneOf([400, 404, 413]);
    expectApiError(JSON.parse(a.text), a.status);
    return;
  }
  expect(a.status).toBe(200);
  if (endpoint === '/v1/responses') return checkResponsesAnswer(a);
  if (a.contentType.startsWith('text/event-stream')) {
    const events = a.text
      .split('\n\n')
      .filter((e) => e.trim() !== '')
      .map((e) => {
        expect(e.startsWith('data: '), e).toBe(true);
        return e.slice('data: '.length);
      });
    const last = events.at(-1);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Record<string, unknown>);
    if (last === '[DONE]') {
      for (const c of chunks) {
        if ('error' in c) expectApiError(c, 400);
        else expect(c.object).toBe(endpoint === '/v1/completions' ? 'text_completion' : 'chat.completion.chunk');
      }
    } else {
      // a failure after the headers: the last event is the error object
      expectApiError(JSON.parse(last!), 400);
    }
    return;
  }
  const json = JSON.parse(a.text) as Record<string, any>;
  switch (endpoint) {
    case '/v1/completions':
    case '/v1/chat/completions': {
      expect(json.object).toBe(endpoint === '/v1/completions' ? 'text_completion' : 'chat.completion');
      expect(json.choices.length).toBeGreaterThan(0);
      for (const c of json.choices) {
        expect(['stop', 'length']).toContain(c.finish_reason);
        expect(typeof (endpoint === '/v1/completions' ? c.text : c.message.content)).toBe('string');
      }
      for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) expect(Number.isInteger(json.usage[k]) && json.usage[k] >= 0).toBe(true);
      expect(json.usage.total_tokens).toBe(json.usage.prompt_tokens + json.usage.completion_tokens);
      break;
    }
    case '/tokenize':
      expect(json.tokens.every((t: unknown) => Number.isInteger(t) && (t as number) >= 0 && (t as number) < vocab)).toBe(true);
      expect(json.count).toBe(json.tokens.length);
      break;
    case '/detokenize':
      expect(typeof json.prompt).toBe('string');
      break;
  }
}

/** A Responses API answer: typed events ending in response.completed (or an error event), or the response object. */
function checkResponsesAnswer(a: Answer): void {
  const checkResponse = (r: Record<string, any>) => {
    expect(r.object).toBe('response');
    expect(['completed', 'incomplete']).toContain(r.status);
    expect(Array.isArray(r.output)).toBe(true);
    for (const k of ['input_tokens', 'output_tokens', 'total_tokens']) expect(Number.isInteger(r.usage[k]) && r.usage[k] >= 0).toBe(true);
    expect(r.usage.total_tokens).toBe(r.usage.input_tokens + r.usage.output_tokens);
  };
  if (!a.contentType.startsWith('text/event-stream')) return checkResponse(JSON.parse(a.text));
  const events = a.text
    .split('\n\n')
    .filter((e) => e.trim() !== '')
    .map((e) => {
      const m = /^event: (\S+)\ndata: (.*)$/s.exec(e);
      expect(m, e).not.toBeNull();
      const data = JSON.parse(m![2]) as Record<string, any>;
      expect(data.type).toBe(m![1]);
      return data;
    });
  const last = events.at(-1)!;
  if (last.type === 'error') {
    expect(typeof last.message).toBe('string');
    return;
  }
  expect(last.type).toBe('response.completed');
  events.forEach((e, i) => expect(e.sequence_number).toBe(i));
  checkResponse(last.response);
}

async function expectStillServing(): Promise<void> {
  // the last stream's request may still be finishing after its [DONE], and a client that left is
  // dropped at the decoder's next step; give them up to 10 s on a busy machine
  let health: any;
  for (let i = 0; i < 200; i++) {
    health = await getJson(`${s.url}/health`);
    if (health.models[0].in_flight === 0 && health.models[0].kv_reserved_bytes === 0 && health.models[0].active_sequences === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(health.status).toBe('ok');
  expect(health.models[0]).toMatchObject({ in_flight: 0, kv_reserved_bytes: 0, active_sequences: 0 });
  const r = await postJson(`${s.url}/v1/completions`, PLAIN);
  expect(r.status).toBe(200);
  expect(r.json.choices[0].text).toBe(plainText);
}

describe('generated hostile requests', () => {
  it.each(Object.keys(FIELDS))('%s: every mutated request gets a documented answer, never a 5xx', async (endpoint) => {
    await fc.assert(
      fc.asyncProperty(validBody[endpoint], mutations(endpoint, wellTyped(vocab)), async (base, ms) => {
        checkAnswer(endpoint, await send(endpoint, bodyText(base, ms)));
      }),
      { seed: SEED, numRuns: RUNS * (endpoint.startsWith('/v1/') ? 300 : 150), endOnFailure: true },
    );
    await expectStillServing();
  }, 600_000);

  it('Text Generation Inference routes: every mutated request gets a TGI answer or a TGI error, never a 5xx', async () => {
    const typed = wellTyped(vocab);
    const text = fc.oneof(fc.string({ maxLength: 30 }), loneSurrogates, fc.constantFrom('', ' ', '\n', 'ROMEO:', '<|endoftext|>'));
    const tiny = fc.constantFrom(1e-300, 1e-30, 1e-8, Number.MIN_VALUE);
    const params: Record<string, fc.Arbitrary<unknown>> = {
      temperature: fc.oneof(tiny, fc.constantFrom(0, 1, -1), fc.double({ min: 0, max: 100, noNaN: true })),
      top_p: fc.oneof(tiny, fc.constantFrom(0, 1, 0.999999), fc.double({ min: 0, max: 1, noNaN: true })),
      top_k: fc.oneof(fc.constantFrom(-1, 0, 1, 2, 2 ** 31), fc.integer({ min: 0, max: vocab + 10 })),
      typical_p: fc.constantFrom(0.5, 1, null),
      do_sample: fc.boolean(),
      max_new_tokens: fc.oneof(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 900, max: 1100 }), fc.constant(2 ** 31)),
      return_full_text: fc.boolean(),
      stop: fc.array(text, { maxLength: 5 }),
      truncate: fc.oneof(fc.integer({ min: -1, max: 8 }), fc.constant(1_000_000)),
      watermark: fc.boolean(),
      details: fc.boolean(),
      decoder_input_details: fc.boolean(),
      seed: fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }), fc.constantFrom(-1, 2 ** 53 - 1, 2 ** 64)),
      top_n_tokens: fc.integer({ min: 0, max: 25 }),
      best_of: fc.integer({ min: 0, max: 3 }),
      repetition_penalty: fc.oneof(tiny, fc.constantFrom(0, 0.01, 1, 100, 1000)),
      frequency_penalty: fc.double({ min: -3, max: 3, noNaN: true }),
      adapter_id: fc.oneof(text, fc.constant(null)),
      grammar: fc.oneof(
        (typed.guided_regex as fc.Arbitrary<unknown>).map((value) => ({ type: 'regex', value })),
        fc.constantFrom(
          { type: 'json', value: { type: 'integer' } },
          { type: 'json_object', value: '{"type": "object", "properties": {"a": {"enum": ["x", "y"]}}, "required": ["a"]}' },
          { type: 'json_schema', value: { name: 'x', schema: { type: 'string', maxLength: 3 } } },
          { type: 'json_schema', value: { schema: 'not a schema' } },
          { type: 'json', value: '{' },
          { type: 'cfg', value: 'x' },
          { type: 'regex' },
        ),
      ),
    };
    const names = Object.keys(params);
    const base = fc.record({
      route: fc.constantFrom('/generate', '/generate_stream', '/'),
      inputs: fc.constantFrom('ROMEO:', 'the king', 'First Citizen:\n'),
      parameters: fc.record({ max_new_tokens: fc.integer({ min: 1, max: 6 }), details: fc.boolean(), do_sample: fc.boolean(), seed: fc.integer({ min: 0, max: 1000 }), top_n_tokens: fc.integer({ min: 0, max: 3 }) }, { requiredKeys: ['max_new_tokens'] }),
      stream: fc.boolean(),
    });
    const change = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...names).chain((field) => params[field].map((value) => ({ where: 'parameters', field, value }))) },
      { weight: 4, arbitrary: fc.record({ where: fc.constant('parameters'), field: fc.constantFrom(...names), value: fieldValue }) },
      { weight: 1, arbitrary: fc.record({ where: fc.constant('parameters'), field: fc.constantFrom('__proto__', 'max_tokens', 'x'), value: anyJson }) },
      { weight: 2, arbitrary: fc.record({ where: fc.constant('top'), field: fc.constantFrom('inputs', 'parameters', 'stream', 'model', '__proto__'), value: fieldValue }) },
    );
    const isTgiError = (json: unknown) => {
      expect(Object.keys(json as object).sort()).toEqual(['error', 'error_type']);
      expect(typeof (json as { error: unknown }).error).toBe('string');
      expect((json as { error: string }).error.length).toBeGreaterThan(0);
    };
    const isToken = (t: Record<string, unknown>) => {
      expect(Number.isInteger(t.id) && (t.id as number) >= 0 && (t.id as number) < vocab).toBe(true);
      expect(typeof t.text).toBe('string');
      expect(typeof t.special).toBe('boolean');
      expect(typeof t.logprob === 'number' && (t.logprob as number) <= 0).toBe(true);
    };
    await fc.assert(
      fc.asyncProperty(base, fc.array(change, { minLength: 1, maxLength: 4 }), async ({ route, inputs, parameters, stream }, changes) => {
        const p = new Map<string, unknown>(Object.entries(parameters));
        const top = new Map<string, unknown>([['inputs', inputs], ['stream', stream]]);
        for (const c of changes) (c.where === 'parameters' ? p : top).set(c.field, c.value);
        const json = (m: Map<string, unknown>) => `{${[...m].map(([k, v]) => `${JSON.stringify(k)}:${typeof v === 'string' && v.startsWith('{"') && k === 'parameters' ? v : (JSON.stringify(v) ?? 'null')}`).join(',')}}`;
        if (!top.has('parameters')) top.set('parameters', '__params__');
        const body = json(top).replace('"__params__"', json(p));
        const a = await send(route, body);
        expect(a.status, a.text.slice(0, 400)).toBeLessThan(500);
        expectNoStack(a.text);
        if (a.status >= 400) {
          expect(a.status, a.text.slice(0, 400)).toBeOneOf([400, 404, 413, 422]);
          // the framework's own refusals (a body that is not JSON, too large) keep the OpenAI shape
          if (a.status === 422 || a.status === 404) isTgiError(JSON.parse(a.text));
          return;
        }
        expect(a.status).toBe(200);
        if (a.contentType.startsWith('text/event-stream')) {
          const events = a.text.split('\n\n').filter((e) => e.trim() !== '').map((e) => JSON.parse(e.slice('data:'.length)) as Record<string, any>);
          expect(events.length).toBeGreaterThan(0);
          const last = events.at(-1)!;
          if ('error' in last) return isTgiError(last);
          events.forEach((e, i) => {
            expect(e.index).toBe(i + 1);
            isToken(e.token);
            if (i < events.length - 1) expect(e.generated_text).toBeNull();
          });
          expect(typeof last.generated_text).toBe('string');
          return;
        }
        const answer = JSON.parse(a.text);
        const one = (route === '/' ? answer[0] : answer) as Record<string, any>;
        if (route === '/') expect(answer).toHaveLength(1);
        expect(typeof one.generated_text).toBe('string');
        if (one.details) {
          expect(['length', 'eos_token', 'stop_sequence']).toContain(one.details.finish_reason);
          expect(one.details.tokens).toHaveLength(one.details.generated_tokens);
          one.details.tokens.forEach(isToken);
        }
      }),
      { seed: SEED, numRuns: RUNS * 300, endOnFailure: true },
    );
    await expectStillServing();
  }, 600_000);

  it('requests decoded together: mixed endpoints and settings at once, some clients leaving mid-answer', async () => {
    const typed = wellTyped(vocab);
    const one = fc
      .constantFrom('/v1/completions', '/v1/chat/completions')
      .chain((ep) => fc.tuple(fc.constant(ep), validBody[ep], mutations(ep, typed), fc.option(fc.integer({ min: 0, max: 300 }), { freq: 3 })));
    await fc.assert(
      fc.asyncProperty(fc.array(one, { minLength: 2, maxLength: 8 }), async (batch) => {
        await Promise.all(
          batch.map(async ([endpoint, base, ms, leaveAfterMs]) => {
            const text = bodyText(base, ms);
            if (leaveAfterMs === null) return checkAnswer(endpoint, await send(endpoint, text));
            // a client that disconnects: whatever it got is not checked, the server's state afterwards is
            const leave = new AbortController();
            const timer = setTimeout(() => leave.abort(), leaveAfterMs);
            try {
              await (await fetch(`${s.url}${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text, signal: leave.signal })).text();
            } catch {
              /* left */
            } finally {
              clearTimeout(timer);
            }
          }),
        );
      }),
      { seed: SEED, numRuns: RUNS * 40, endOnFailure: true },
    );
    await expectStillServing();
  }, 600_000);

  it('bodies that are JSON but not requests, and bytes that are not JSON', async () => {
    const notRequests = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null'),
      fc.string({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
      // deep nesting and truncation
      fc.integer({ min: 1, max: 200_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
      fc.integer({ min: 1, max: 200_000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
      fc.integer({ min: 1, max: 60 }).map((n) => bodyText({ model: 'tiny', prompt: 'ROMEO:', max_tokens: 2 }, []).slice(0, n)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(FIELDS)), notRequests, fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'), async (endpoint, text, type) => {
        const a = await send(endpoint, text, type);
        if (a.status === 200) checkAnswer(endpoint, a);
        else {
          expect(a.status, a.text.slice(0, 400)).toBeOneOf([400, 404, 413]);
          expectNoStack(a.text);
          expectApiError(JSON.parse(a.text), a.status);
        }
      }),
      { seed: SEED, numRuns: RUNS * 300, endOnFailure: true },
    );
    await expectStillServing();
  }, 600_000);

  it('GET paths and query strings: model ids, percent-escapes that do not decode, repeated and odd keys', async () => {
    const piece = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('tiny', '%', '%E0%A4%A', '%00', '..%2F..', '%ZZ', '?', '#', 'a'.repeat(20_000)));
    const target = fc.oneof(
      piece.map((p) => `/v1/models/${p.startsWith('%') || p === 'a'.repeat(20_000) ? p : encodeURIComponent(p)}`),
      fc.array(fc.tuple(fc.constantFrom('model', 'model[]', '__proto__', 'x'), piece), { maxLength: 3 }).map((q) => `/tokenizer_info?${q.map(([k, v]) => `${k}=${v.startsWith('%') ? v : encodeURIComponent(v)}`).join('&')}`),
      fc.constantFrom('/health?%ZZ', '/metrics?x=%', '/v1/models?model=tiny', '/v1/completions', '/'),
    );
    await fc.assert(
      fc.asyncProperty(target, async (t) => {
        const res = await fetch(`${s.url}${t}`, { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
        const text = await res.text();
        expect(res.status, text.slice(0, 300)).toBeOneOf([200, 400, 404, 431]);
        expectNoStack(text);
        if (res.status !== 200) expectApiError(JSON.parse(text), res.status);
      }),
      { seed: SEED, numRuns: RUNS * 200, endOnFailure: true },
    );
    await expectStillServing();
  }, 600_000);

  it('a body over the size limit is a 413 error object', async () => {
    const a = await send('/v1/completions', JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(17 * 1024 * 1024) }));
    expect(a.status).toBe(413);
    expectApiError(JSON.parse(a.text), 413);
    await expectStillServing();
  });
});
