/**
 * POST /v1/responses through the official openai client's `responses.create` and
 * `responses.stream` (whose stream accumulator checks every event against the ones before it:
 * items added before their deltas, matching ids, a final response that agrees with them). The
 * conversation a Responses request describes must be the one the equivalent chat request gives:
 * the same greedy text (the chat endpoint's prompts and greedy decodes are checked against
 * transformers elsewhere). Calls and structured output are held as in chat (Ajv); reasoning
 * comes back as a reasoning item; what cannot be served is a 400 naming the Responses field.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASONING_PARSERS } from '../../src/serve/reasoning.js';
import { chatmlWithGenerationSuffix, HERMES_TOOLS_CHATML, postJson, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

const N = 16;
const work = mkdtempSync(path.join(tmpdir(), 'rfid-responses-'));
let s: Running;
let client: OpenAI;
beforeAll(async () => {
  const chat = tinyWithChatTemplate(path.join(work, 'chat'), HERMES_TOOLS_CHATML);
  const thinking = tinyWithChatTemplate(path.join(work, 'thinking'), chatmlWithGenerationSuffix('<think>\\n'));
  s = await startServer({ models: [`chat=${chat}`, `thinking=${thinking}`], reasoningParser: REASONING_PARSERS.get('deepseek_r1')! });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await s?.close();
  rmSync(work, { recursive: true, force: true });
});

const WEATHER: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather',
  parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Verona', 'Mantua'] }, days: { type: 'integer' } }, required: ['city', 'days'], additionalProperties: false },
  strict: true,
};

/** the chat endpoint's greedy answer to these messages (the reference a Responses request must match) */
async function chatText(messages: unknown[], extra: Record<string, unknown> = {}): Promise<string> {
  const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages, max_tokens: N, temperature: 0, ...extra });
  expect(r.status, r.text).toBe(200);
  return r.json.choices[0].message.content as string;
}

describe('the Responses API', () => {
  it('a text input with instructions: the chat answer to system + user, streamed as whole; status incomplete at max_output_tokens', async () => {
    const r = await client.responses.create({ model: 'chat', instructions: 'Speak as Juliet.', input: 'Who is at the window?', max_output_tokens: N, temperature: 0 });
    const want = await chatText([{ role: 'system', content: 'Speak as Juliet.' }, { role: 'user', content: 'Who is at the window?' }]);
    expect(r.output_text).toBe(want);
    expect(r).toMatchObject({ object: 'response', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, model: 'chat', store: false });
    expect(r.id).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(r.usage).toMatchObject({ output_tokens: N, total_tokens: r.usage!.input_tokens + N });
    const stream = client.responses.stream({ model: 'chat', instructions: 'Speak as Juliet.', input: 'Who is at the window?', max_output_tokens: N, temperature: 0 });
    let deltas = '';
    const types: string[] = [];
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.output_text.delta') deltas += e.delta;
    }
    const final = await stream.finalResponse();
    expect(deltas).toBe(want);
    expect(final.output_text).toBe(want);
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(final.status).toBe('incomplete');
    expect(types).toEqual(expect.arrayContaining(['response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.output_item.done']));
  });

  it('input items (messages, a function call, its output, earlier reasoning) are the conversation the chat messages make', async () => {
    const input: OpenAI.Responses.ResponseInputItem[] = [
      { role: 'developer', content: 'Thou art a messenger.' },
      { role: 'user', content: [{ type: 'input_text', text: 'Weather in ' }, { type: 'input_text', text: 'Mantua?' }] },
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city": "Mantua", "days": 1}' },
      { type: 'function_call_output', call_id: 'call_1', output: '{"sky": "stormy"}' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Stormy, my lord.', annotations: [] }], id: 'msg_1', status: 'completed' },
      { role: 'user', content: 'Then send word to Romeo.' },
    ];
    const r = await client.responses.create({ model: 'chat', input, tools: [WEATHER], tool_choice: 'none', max_output_tokens: N, temperature: 0 });
    const want = await chatText(
      [
        { role: 'system', content: 'Thou art a messenger.' },
        { role: 'user', content: 'Weather in Mantua?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Mantua", "days": 1}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '{"sky": "stormy"}' },
        { role: 'assistant', content: 'Stormy, my lord.' },
        { role: 'user', content: 'Then send word to Romeo.' },
      ],
      { tools: [{ type: 'function', function: { name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.parameters, strict: true } }], tool_choice: 'none' },
    );
    expect(r.output_text).toBe(want);
  });

  it('function calls: required and named, whole and streamed, arguments valid under the parameters', async () => {
    const validate = new Ajv({ strict: false }).compile(WEATHER.parameters!);
    for (const tool_choice of ['required', { type: 'function', name: 'get_weather' }] as const) {
      const r = await client.responses.create({ model: 'chat', input: 'Weather in Verona?', tools: [WEATHER], tool_choice, temperature: 0 });
      const calls = r.output.filter((o) => o.type === 'function_call');
      expect(calls.length, JSON.stringify(tool_choice)).toBeGreaterThan(0);
      for (const c of calls) {
        expect(c).toMatchObject({ name: 'get_weather', status: 'completed', call_id: expect.stringMatching(/^call_/), id: expect.stringMatching(/^fc_/) });
        expect(validate(JSON.parse(c.arguments))).toBe(true);
      }
      const stream = client.responses.stream({ model: 'chat', input: 'Weather in Verona?', tools: [WEATHER], tool_choice, temperature: 0 });
      for await (const e of stream) void e;
      const final = await stream.finalResponse();
      expect(final.output.filter((o) => o.type === 'function_call').map((c) => (c as OpenAI.Responses.ResponseFunctionToolCall).arguments)).toEqual(calls.map((c) => c.arguments));
    }
  });

  it('text.format json_schema: the output text valid under the schema (Ajv)', async () => {
    const schema = { type: 'object', properties: { who: { enum: ['Romeo', 'Juliet'] }, alive: { type: 'boolean' } }, required: ['who', 'alive'], additionalProperties: false };
    const r = await client.responses.create({ model: 'chat', input: 'Who?', text: { format: { type: 'json_schema', name: 'who', schema, strict: true } }, temperature: 0, max_output_tokens: 300 });
    expect(r.status).toBe('completed');
    expect(new Ajv({ strict: false }).compile(schema)(JSON.parse(r.output_text))).toBe(true);
  });

  it('text.format beside tools, as OpenAI’s Agents SDK sends an agent’s output type with its tools: the output text held to the schema where the model calls nothing, the same as with tool_choice none', async () => {
    const schema = { type: 'object', properties: { who: { enum: ['Romeo', 'Juliet'] }, alive: { type: 'boolean' } }, required: ['who', 'alive'], additionalProperties: false };
    const text = { format: { type: 'json_schema' as const, name: 'final_output', schema, strict: true } };
    const asked = { model: 'chat', input: 'Who?', tools: [WEATHER], text, temperature: 0, max_output_tokens: 300 };
    const auto = await client.responses.create({ ...asked, tool_choice: 'auto' });
    const none = await client.responses.create({ ...asked, tool_choice: 'none' });
    expect(auto.status).toBe('completed');
    expect(auto.output.filter((o) => o.type === 'function_call')).toEqual([]);
    expect(auto.output_text).toBe(none.output_text);
    expect(new Ajv({ strict: false }).compile(schema)(JSON.parse(auto.output_text))).toBe(true);
  });

  it('with a reasoning parser, the thinking is a reasoning item and its tokens are counted', async () => {
    const r = await client.responses.create({ model: 'thinking', input: 'Who is at the window?', max_output_tokens: N, temperature: 0 });
    const chat = await postJson(`${s.url}/v1/chat/completions`, { model: 'thinking', messages: [{ role: 'user', content: 'Who is at the window?' }], max_tokens: N, temperature: 0 });
    const reasoning = r.output.find((o) => o.type === 'reasoning') as OpenAI.Responses.ResponseReasoningItem;
    expect(reasoning.content?.[0]).toEqual({ type: 'reasoning_text', text: chat.json.choices[0].message.reasoning_content });
    expect(r.output_text).toBe('');
    expect(r.usage?.output_tokens_details.reasoning_tokens).toBe(N);
  });

  it('what cannot be served is a 400 naming the Responses field; nothing is stored', async () => {
    const bad: Array<[Record<string, unknown>, number, string | null, RegExp]> = [
      [{ previous_response_id: 'resp_1' }, 400, 'previous_response_id', /not stored/],
      [{ tools: [{ type: 'web_search' }] }, 400, 'tools.0.type', /only function tools/],
      [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x' }] }] }, 400, 'input.0', /each input item|only text/],
      [{ max_output_tokens: 100_000 }, 400, 'max_output_tokens', /maximum context length/],
      [{ text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object', properties: { a: { not: { type: 'string' } } } } } } }, 400, 'text.format.schema', /"not" is not supported/],
      [{ tools: [WEATHER], tool_choice: { type: 'function', name: 'absent' } }, 400, 'tool_choice.name', /not among the tools/],
      [{ truncation: 'auto' }, 400, 'truncation', /never shortened/],
      [{ input: [{ role: 'user', content: 'x' }, { type: 'function_call', call_id: 'c', name: 'f', arguments: '{' }] }, 400, 'input', /arguments is not JSON text/],
      [{ model: 'no-such-model' }, 404, 'model', /./],
    ];
    for (const [fields, status, param, message] of bad) {
      const r = await postJson(`${s.url}/v1/responses`, { model: 'chat', input: 'x', ...fields });
      expect(r.status, JSON.stringify(fields)).toBe(status);
      expect(r.json.error, JSON.stringify(fields)).toMatchObject({ message: expect.stringMatching(message) });
      if (status === 400) expect(r.json.error.param, JSON.stringify(fields)).toBe(param);
    }
    const viaClient = await client.responses.create({ model: 'chat', input: 'x', previous_response_id: 'resp_1' }).catch((e: unknown) => e);
    expect(viaClient).toBeInstanceOf(OpenAI.BadRequestError);
    const stored = await client.responses.create({ model: 'chat', input: 'x', max_output_tokens: 2, store: true });
    const fetched = await client.responses.retrieve(stored.id).catch((e: unknown) => e);
    expect(fetched).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('request_id (vLLM’s) and the X-Request-Id header name the response: resp_<id>, streamed or not, the header’s winning', async () => {
    const whole = await postJson(`${s.url}/v1/responses`, { model: 'chat', input: 'x', max_output_tokens: 2, request_id: 'trace-7' });
    expect(whole.json.id).toBe('resp_trace-7');
    const streamed = await fetch(`${s.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'header-7' },
      body: JSON.stringify({ model: 'chat', input: 'x', max_output_tokens: 2, request_id: 'body-7', stream: true }),
    });
    expect(streamed.headers.get('x-request-id')).toBe('header-7');
    const ids = new Set((await streamed.text()).split('\n\n').filter((e) => e.includes('data: {')).map((e) => (JSON.parse(e.slice(e.indexOf('data: ') + 6)) as { response?: { id: string } }).response?.id).filter((id) => id !== undefined));
    expect([...ids]).toEqual(['resp_header-7']);
    const bad = await postJson(`${s.url}/v1/responses`, { model: 'chat', input: 'x', request_id: 'has space' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ param: 'request_id', message: expect.stringMatching(/visible ASCII/) });
  });
});
