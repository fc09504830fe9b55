/**
 * JSON mode through the server (`response_format: {"type": "json_object"}`): chat through the
 * official `openai` client and completions over raw HTTP give one JSON object (V8's JSON.parse,
 * test/helpers/json-judge.ts), the same tokens as the library's decoder on the same prompt ids,
 * the same text streamed as not, n choices each valid; JSON schemas get a 400 naming the field.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { BatchDecoder, textCodec, weightProviderOf } from '../../src/runtime/index.js';
import { isJsonObject, viableJsonObject } from '../helpers/json-judge.js';
import { postJson, startServer, TINY_DIR, tinyWithChatTemplate, type Running } from './helpers.js';

const MAX = 48;
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
function expectJson(text: string, finish: string | null | undefined): void {
  if (finish === 'stop') expect(isJsonObject(text), JSON.stringify(text)).toBe(true);
  else expect(finish).toBe('length');
  expect(viableJsonObject(text), JSON.stringify(text)).toBe(true);
}

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

  it('a JSON schema, or another format, is a 400 naming response_format.type', async () => {
    const schema = { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } };
    const r = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], response_format: schema as OpenAI.ResponseFormatJSONSchema }).catch((e: unknown) => e);
    expect(r).toBeInstanceOf(OpenAI.BadRequestError);
    expect((r as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format.type');
    expect((r as Error).message).toMatch(/JSON schemas \("json_schema"\) are not supported: use "json_object"/);
    const other = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'x', response_format: { type: 'yaml' } });
    expect(other.status).toBe(400);
    expect(other.json.error.param).toBe('response_format.type');
  });
});
