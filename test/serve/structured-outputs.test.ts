/**
 * vLLM's structured outputs through the server: `structured_outputs` ({choice, regex, json,
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
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, TINY_DIR, tinyWithChatTemplate, type Running } from './helpers.js';

const work = mkdtempSync(path.join(tmpdir(), 'rfid-structured-'));
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
      [{ guided_regex: '(?=a)b' }, 'guided_regex', /lookarounds/],
      [{ structured_outputs: { regex: '(a+)\\1' } }, 'structured_outputs.regex', /backreference/],
      [{ structured_outputs: { regex: '[' } }, 'structured_outputs.regex', /Unterminated character class/],
      [{ structured_outputs: { choice: [] } }, 'structured_outputs.choice', /give at least one choice/],
      [{ guided_choice: 'yes' }, 'guided_choice', /array of strings/],
      [{ structured_outputs: { json: { type: 'string', pattern: 'a' } } }, 'structured_outputs.json', /"pattern" is not supported/],
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
