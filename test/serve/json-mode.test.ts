/**
 * JSON mode through the server (`response_format: {"type": "json_object"}`): chat through the
 * official `openai` client and completions over raw HTTP give one JSON object (V8's JSON.parse,
 * test/helpers/json-judge.ts), the same tokens as the library's decoder on the same prompt ids,
 * the same text streamed as not, n choices each valid; json_schema gives an object Ajv finds valid
 * under the schema, and a schema with keywords it cannot follow is a 400 naming the field.
 *
 * In the same server, vLLM's structured outputs: `structured_outputs` ({choice, regex, json,
 * json_object, disable_any_whitespace}, the form vLLM reads since 0.12) and the older
 * `guided_choice` / `guided_regex` / `guided_json`, sent by the official `openai` client as extra
 * body fields and over raw HTTP. Independent truth: the choices compared as strings, V8's regex
 * engine for full matches, JSON.parse and Ajv for JSON; the two spellings of one constraint give
 * the same text, streamed as not; what cannot be followed, or two constraints at once, is a 400
 * naming the field.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { BatchDecoder, textCodec, weightProviderOf } from '../../src/runtime/index.js';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { jsonOutcomeProblem } from '../helpers/json-judge.js';
import { postJson, startServer, TINY_DIR, tinyWithChatTemplate, type Running } from './helpers.js';

const MAX = 48;
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
/**
 * A schema as OpenAI's strict mode wants it (every property required, no others), of enums,
 * booleans and an integer: a model trained on Shakespeare, not JSON, writes free strings until
 * max_tokens runs out, but these it finishes.
 */
const CHARACTER = {
  type: 'object',
  properties: {
    name: { enum: ['Romeo', 'Juliet', 'Tybalt'] },
    age: { type: 'integer' },
    house: { enum: ['Montague', 'Capulet', 'neither'] },
    alive: { type: 'boolean' },
    friends: { type: 'array', items: { enum: ['Mercutio', 'Benvolio', 'the Nurse'] }, maxItems: 3 },
  },
  required: ['name', 'age', 'house', 'alive', 'friends'],
  additionalProperties: false,
};
const work = mkdtempSync(path.join(tmpdir(), 'rfid-json-mode-'));
let s: Running;
let client: OpenAI;
beforeAll(async () => {
  s = await startServer({ models: [`tiny=${TINY_DIR}`, `chat=${tinyWithChatTemplate(path.join(work, 'chat'))}`] });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await s?.close();
  rmSync(work, { recursive: true, force: true });
});

/** one JSON object when it stopped; a viable beginning of one when it reached max_tokens */
const expectJson = (text: string, finish: string | null | undefined) => expect(jsonOutcomeProblem(text, finish)).toBeNull();

describe('JSON mode through the server', () => {
  it('chat through the openai client: an object, streamed as not', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Describe Romeo as a JSON object.' }];
    const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: MAX, temperature: 0, response_format: { type: 'json_object' } });
    const content = r.choices[0].message.content!;
    expectJson(content, r.choices[0].finish_reason);
    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: MAX, temperature: 0, response_format: { type: 'json_object' }, stream: true });
    let streamed = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(streamed).toBe(content);
    expect(finish).toBe(r.choices[0].finish_reason);
    // free text from the same request differs: the model was trained on Shakespeare, not JSON
    const free = await client.chat.completions.create({ model: 'chat', messages, max_tokens: MAX, temperature: 0 });
    expect(free.choices[0].message.content).not.toBe(content);
  });

  it('completions: the tokens of the library’s decoder on the same ids; n sampled choices each valid', async () => {
    const prompt = 'KING HENRY:';
    const r = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: MAX, temperature: 0, logprobs: 0, response_format: { type: 'json_object' } });
    expect(r.status).toBe(200);
    expectJson(r.json.choices[0].text, r.json.choices[0].finish_reason);
    // the library's decoder on the server's prompt ids
    const model = s.server.models.get('tiny')!;
    const ids = await model.encode(prompt, true);
    const ckpt = await openCheckpoint(TINY_DIR);
    const decoder = new BatchDecoder(weightProviderOf(ckpt), s.engine, { tokenizer: textCodec(model.tokenizer) });
    const tokens: number[] = [];
    try {
      for await (const e of decoder.submit(ids, { temperature: 0, maxNewTokens: MAX, responseFormat: 'json_object' })) if (e.type === 'token') tokens.push(e.token);
    } finally {
      await decoder.close();
      await ckpt.close();
    }
    expect(r.json.choices[0].logprobs.tokens.length).toBe(tokens.length);
    expect(r.json.usage.completion_tokens).toBe(tokens.length);
    expect(r.json.choices[0].text).toBe(model.tokenizer.tokenizer.decode(tokens, { skip_special_tokens: true }));

    const n = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: MAX, temperature: 0.9, top_p: 0.95, seed: 5, n: 3, response_format: { type: 'json_object' } });
    expect(n.status).toBe(200);
    expect(n.json.choices).toHaveLength(3);
    for (const c of n.json.choices) expectJson(c.text, c.finish_reason);
  });

  it('json_schema through the openai client: an object valid under the schema (Ajv), streamed as not; every sampled choice too', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Who is Romeo?' }];
    const format = { type: 'json_schema' as const, json_schema: { name: 'character', strict: true, schema: CHARACTER } };
    const validate = new Ajv({ strict: false }).compile(CHARACTER);
    // enough tokens for the model (trained on Shakespeare) to finish the object
    const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 400, temperature: 0, response_format: format });
    const content = r.choices[0].message.content!;
    expect(r.choices[0].finish_reason, content).toBe('stop');
    expect(validate(JSON.parse(content)), `${content}: ${JSON.stringify(validate.errors)}`).toBe(true);
    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 400, temperature: 0, response_format: format, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toBe(content);
    const n = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 400, temperature: 0.9, seed: 11, n: 3, response_format: format });
    for (const c of n.choices) {
      expect(c.finish_reason, c.message.content!).toBe('stop');
      expect(validate(JSON.parse(c.message.content!)), `${c.message.content}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('a Pydantic model’s field rules (formats, a pattern, lengths, numeric bounds) through the openai client: each object valid under Ajv with its full formats, greedy and sampled', async () => {
    const event = {
      type: 'object',
      properties: {
        when: { type: 'string', format: 'date-time' },
        day: { type: 'string', format: 'date' },
        id: { type: 'string', format: 'uuid' },
        code: { type: 'string', pattern: '^[A-Z]{3}-\\d{2}$' },
        note: { type: 'string', minLength: 2, maxLength: 12 },
        contact: { type: 'string', format: 'email' },
        age: { type: 'integer', minimum: 13, maximum: 120 },
        score: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
      },
      required: ['when', 'day', 'id', 'code', 'note', 'contact', 'age', 'score'],
      additionalProperties: false,
    };
    const validate = addFormats(new Ajv({ strict: false })).compile(event);
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'When did Romeo leave?' }];
    const format = { type: 'json_schema' as const, json_schema: { name: 'event', strict: true, schema: event } };
    const greedy = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 700, temperature: 0, response_format: format });
    const sampled = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 700, temperature: 0.9, seed: 12, n: 3, response_format: format });
    for (const c of [...greedy.choices, ...sampled.choices]) {
      expect(c.finish_reason, c.message.content!).toBe('stop');
      expect(validate(JSON.parse(c.message.content!)), `${c.message.content}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    // without the rules the same schema's strings are the model's own (Shakespeare, not dates)
    const loose = JSON.parse(JSON.stringify(event, (k, v: unknown) => (['format', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum'].includes(k) ? undefined : v))) as Record<string, unknown>;
    const free = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 300, temperature: 0, response_format: { type: 'json_schema', json_schema: { name: 'event', schema: loose } } });
    const when = /"when"\s*:\s*"([^"]*)"/.exec(free.choices[0].message.content!)?.[1];
    expect(when === undefined || !addFormats(new Ajv()).validate({ type: 'string', format: 'date-time' }, when), when).toBe(true);
  });

  it('dictionaries of constrained keys (propertyNames, patternProperties) and sets (uniqueItems: of an enum, a pattern, bounded integers) through the openai client: each object valid under Ajv, sampled choices with keys among them', async () => {
    const stock = {
      type: 'object',
      properties: {
        stock: { type: 'object', additionalProperties: { type: 'integer' }, propertyNames: { enum: ['apples', 'pears', 'plums'] } },
        // (names of a few: the shipped model, which does not know JSON, would fill an open-ended dictionary until max_tokens)
        lines: { type: 'object', patternProperties: { '^(romeo|juliet|nurse)$': { type: 'integer', minimum: 0, maximum: 99 } } },
        // a set of an enum (Pydantic's set[Literal[…]]): each colour at most once
        colours: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, uniqueItems: true },
        // sets of strings of a pattern and of bounded integers (set[constr(pattern=…)], set[conint(ge=1, le=3)])
        codes: { type: 'array', items: { type: 'string', pattern: '^[a-c]{2}$' }, uniqueItems: true, maxItems: 4 },
        tiers: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 3 }, uniqueItems: true },
      },
      required: ['stock', 'lines', 'colours', 'codes', 'tiers'],
      additionalProperties: false,
    };
    const validate = addFormats(new Ajv({ strict: false })).compile(stock);
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is in the larder?' }];
    const format = { type: 'json_schema' as const, json_schema: { name: 'stock', schema: stock } };
    const sampled = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 600, temperature: 1, seed: 5, n: 6, response_format: format });
    let keys = 0;
    for (const c of sampled.choices) {
      expect(c.finish_reason, c.message.content!).toBe('stop');
      const value = JSON.parse(c.message.content!);
      expect(validate(value), `${c.message.content}: ${JSON.stringify(validate.errors)}`).toBe(true);
      keys += Object.keys(value.stock).length + Object.keys(value.lines).length + value.colours.length + value.codes.length + value.tiers.length;
    }
    expect(keys).toBeGreaterThan(0);
  });

  it('vLLM’s guided_json (an object or its text) is the same as response_format json_schema', async () => {
    const body = { model: 'tiny', prompt: 'KING HENRY:', max_tokens: 200, temperature: 0 };
    const viaFormat = await postJson(`${s.url}/v1/completions`, { ...body, response_format: { type: 'json_schema', json_schema: { name: 'c', schema: CHARACTER } } });
    expect(viaFormat.status).toBe(200);
    for (const guided of [CHARACTER, JSON.stringify(CHARACTER)]) {
      const r = await postJson(`${s.url}/v1/completions`, { ...body, guided_json: guided });
      expect(r.status).toBe(200);
      expect(r.json.choices[0]).toMatchObject({ text: viaFormat.json.choices[0].text, finish_reason: viaFormat.json.choices[0].finish_reason });
    }
    if (viaFormat.json.choices[0].finish_reason === 'stop') expect(new Ajv({ strict: false }).compile(CHARACTER)(JSON.parse(viaFormat.json.choices[0].text))).toBe(true);
  });

  it('guided_json takes any top-level value, as vLLM’s does (response_format only an object, as OpenAI’s)', async () => {
    const list = { type: 'array', items: { enum: ['Romeo', 'Juliet', 'Tybalt'] }, minItems: 1, maxItems: 2 };
    const body = { model: 'tiny', prompt: 'Who dies?', max_tokens: 200, temperature: 0 };
    const r = await postJson(`${s.url}/v1/completions`, { ...body, guided_json: list });
    expect(r.status, r.text).toBe(200);
    expect(r.json.choices[0].finish_reason).toBe('stop');
    expect(new Ajv({ strict: false }).compile(list)(JSON.parse(r.json.choices[0].text))).toBe(true);
    const refused = await postJson(`${s.url}/v1/completions`, { ...body, response_format: { type: 'json_schema', json_schema: { name: 'l', schema: list } } });
    expect(refused.status).toBe(400);
    expect(refused.json.error.message).toMatch(/the top level must be an object/);
  });

  it('a schema it cannot follow, or another format, is a 400 naming the field, before any load', async () => {
    const unique = { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { not: { type: 'string' } } } } } };
    const r = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], response_format: unique as OpenAI.ResponseFormatJSONSchema }).catch((e: unknown) => e);
    expect(r).toBeInstanceOf(OpenAI.BadRequestError);
    expect((r as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format.json_schema.schema');
    expect((r as Error).message).toMatch(/schema \/properties\/a: the keyword "not" is not supported/);
    for (const [format, param] of [
      [{ type: 'yaml' }, 'response_format.type'],
      [{ type: 'json_schema' }, 'response_format.json_schema'],
      [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array' } } }, 'response_format.json_schema.schema'],
    ] as const) {
      const other = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'x', response_format: format });
      expect(other.status, JSON.stringify(format)).toBe(400);
      expect(other.json.error.param, JSON.stringify(format)).toBe(param);
    }
  });
});

const CHOICES = ['Romeo', 'Juliet', 'the Nurse', 'nobody, my lord'];
const DATE = '(19|20)\\d\\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])';
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Who is at the window?' }];
/** fields vLLM reads that the openai client's types do not know: sent as they are */
type Extra = Record<string, unknown>;
const chat = (extra: Extra, more: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
  client.chat.completions.create({ model: 'chat', messages, max_tokens: 32, temperature: 0, ...more, ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
const complete = (extra: Extra, more: Extra = {}) => postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:\nWhat day is it?\nJULIET:\n', max_tokens: 32, temperature: 0, ...more, ...extra });

describe('structured outputs through the server', () => {
  it('a choice (structured_outputs and guided_choice alike): one of the strings, streamed as not, through the openai client', async () => {
    const r = await chat({ structured_outputs: { choice: CHOICES } });
    const c = r.choices[0];
    expect(CHOICES).toContain(c.message.content);
    expect(c.finish_reason).toBe('stop');
    const old = await chat({ guided_choice: CHOICES });
    expect(old.choices[0].message.content).toBe(c.message.content);
    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 32, temperature: 0, stream: true, structured_outputs: { choice: CHOICES } } as OpenAI.ChatCompletionCreateParamsStreaming);
    let streamed = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect([streamed, finish]).toEqual([c.message.content, 'stop']);
    // sampled choices, each one of the strings
    const n = await chat({ structured_outputs: { choice: CHOICES } }, { n: 4, temperature: 1.5, seed: 3 });
    for (const choice of n.choices) expect(CHOICES).toContain(choice.message.content);
  });

  it('a regex (structured_outputs and guided_regex alike): a full match by V8’s engine, on completions too', async () => {
    const full = new RegExp(`^(?:${DATE})$`);
    for (const extra of [{ structured_outputs: { regex: DATE } }, { guided_regex: DATE }]) {
      const r = await chat(extra);
      expect(r.choices[0].message.content, JSON.stringify(extra)).toMatch(full);
      expect(r.choices[0].finish_reason).toBe('stop');
      const text = await complete(extra);
      expect(text.status, text.text).toBe(200);
      expect(text.json.choices[0].text).toMatch(full);
      // a ^ and a $ around it change nothing
      const anchored = await complete({ structured_outputs: { regex: `^${DATE}$` } });
      expect(anchored.json.choices[0].text).toBe(text.json.choices[0].text);
    }
    // streamed, the deltas join to the same text
    const whole = await complete({ guided_regex: DATE });
    const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'tiny', prompt: 'ROMEO:\nWhat day is it?\nJULIET:\n', max_tokens: 32, temperature: 0, stream: true, guided_regex: DATE }) });
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {'));
    expect(events.map((e) => JSON.parse(e.slice(6)).choices[0]?.text ?? '').join('')).toBe(whole.json.choices[0].text);
  });

  it('json and json_object in structured_outputs are guided_json and JSON mode; disable_any_whitespace writes no whitespace outside strings', async () => {
    const schema = { type: 'object', properties: { who: { enum: CHOICES }, act: { enum: [1, 2, 3, 4, 5] }, alive: { type: 'boolean' } }, required: ['who', 'act', 'alive'], additionalProperties: false };
    const via = await complete({ structured_outputs: { json: schema } }, { max_tokens: 64 });
    const old = await complete({ guided_json: schema }, { max_tokens: 64 });
    expect(via.json.choices[0].text).toBe(old.json.choices[0].text);
    const objectMode = await complete({ structured_outputs: { json_object: true } });
    const format = await complete({ response_format: { type: 'json_object' } });
    expect(objectMode.json.choices[0].text).toBe(format.json.choices[0].text);
    const compact = await complete({ structured_outputs: { json: schema, disable_any_whitespace: true } }, { max_tokens: 64 });
    const text: string = compact.json.choices[0].text;
    expect(compact.json.choices[0].finish_reason).toBe('stop');
    expect(new Ajv({ strict: false }).compile(schema)(JSON.parse(text))).toBe(true);
    expect(outsideStrings(text)).not.toMatch(/\s/);
    const compactObject = await complete({ structured_outputs: { json_object: true, disable_any_whitespace: true } }, { max_tokens: 64 });
    expect(compactObject.status, compactObject.text).toBe(200);
    expect(outsideStrings(compactObject.json.choices[0].text)).not.toMatch(/\s/);
  });

  it('what cannot be followed, or two constraints at once, is a 400 naming the field, through the openai client too', async () => {
    const refused: Array<[Extra, string, RegExp]> = [
      [{ guided_regex: '(?<=a)b' }, 'guided_regex', /lookbehinds/],
      [{ structured_outputs: { regex: '(a+)\\1' } }, 'structured_outputs.regex', /backreference/],
      [{ structured_outputs: { regex: '[' } }, 'structured_outputs.regex', /Unterminated character class/],
      [{ structured_outputs: { choice: [] } }, 'structured_outputs.choice', /give at least one choice/],
      [{ guided_choice: 'yes' }, 'guided_choice', /array of strings/],
      [{ structured_outputs: { json: { type: 'string', pattern: '(?<=a)b' } } }, 'structured_outputs.json', /the pattern "\(\?<=a\)b" cannot be held/],
      [{ structured_outputs: {} }, 'structured_outputs', /exactly one of json, regex, choice and json_object/],
      [{ structured_outputs: { regex: 'a', choice: ['a'] } }, 'structured_outputs', /not regex and choice/],
      [{ structured_outputs: { grammar: 'root ::= "a"' } }, 'structured_outputs.grammar', /grammars are not supported/],
      [{ guided_grammar: 'root ::= "a"' }, 'guided_grammar', /grammars are not supported/],
      [{ structured_outputs: { structural_tag: '{}' } }, 'structured_outputs.structural_tag', /not supported/],
      [{ guided_regex: 'a', response_format: { type: 'json_object' } }, 'guided_regex', /one structured-output constraint, not response_format and guided_regex/],
      [{ guided_choice: ['a'], structured_outputs: { regex: 'a' } }, 'structured_outputs', /not guided_choice and structured_outputs/],
    ];
    for (const [extra, param, message] of refused) {
      const r = await complete(extra);
      expect(r.status, JSON.stringify(extra)).toBe(400);
      expect(r.json.error, JSON.stringify(extra)).toMatchObject({ type: 'invalid_request_error', param, message: expect.stringMatching(message) });
    }
    const viaClient = await chat({ structured_outputs: { regex: '(?<!a)b' } }).catch((e: unknown) => e);
    expect(viaClient).toBeInstanceOf(OpenAI.BadRequestError);
    expect((viaClient as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('structured_outputs.regex');
    // the neutral values pass
    const neutral = await complete({ structured_outputs: null, guided_regex: null, guided_choice: null, guided_grammar: null });
    expect(neutral.status).toBe(200);
  });
});

/** the text with the contents of its JSON strings removed */
function outsideStrings(json: string): string {
  return json.replace(/"(?:[^"\\]|\\.)*"/g, '""');
}
