/**
 * Bad requests get OpenAI-shaped error objects ({"error": {message, type, param, code}}) with
 * 4xx statuses and messages that name the problem, never a stack trace; the read-only endpoints
 * (models, health, metrics) answer in their documented shapes.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { postJson, startServer, type Running, getJson, TINY_DIR } from './helpers.js';

let s: Running;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s?.close();
});

function expectApiError(r: { status: number; json: any; text: string }, status: number, param: string | null, message: RegExp) {
  expect(r.status).toBe(status);
  expect(Object.keys(r.json)).toEqual(['error']);
  expect(Object.keys(r.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(r.json.error.type).toBe(status === 404 ? 'not_found_error' : 'invalid_request_error');
  expect(r.json.error.param).toBe(param);
  expect(r.json.error.message).toMatch(message);
  // no stack frames or source paths
  expect(r.text).not.toMatch(/\n\s+at |\.ts:\d+|node_modules|\/src\//);
}

describe('bad requests', () => {
  const completions = () => `${s.url}/v1/completions`;

  it('invalid JSON', async () => {
    expectApiError(await postJson(completions(), '{"model": "tiny", "prompt": ', true), 400, null, /not valid JSON/);
  });

  it('a body that is not an object', async () => {
    expectApiError(await postJson(completions(), '[1, 2]', true), 400, null, /JSON object/);
  });

  it('a body nested too deeply, or of too many objects and arrays, is refused before it is parsed', async () => {
    expectApiError(await postJson(completions(), `{"model":"tiny","prompt":"x","extra":${'['.repeat(600)}${']'.repeat(600)}}`, true), 400, null, /nests objects and arrays more than 512 levels deep/);
    // 15 MiB of "{}," (within the 16 MiB body limit; parsed, seconds of the event loop and hundreds of MB)
    const r = await postJson(completions(), `{"model":"tiny","prompt":[${new Array(5_000_000).fill('{}').join(',')}]}`, true);
    expectApiError(r, 400, null, /holds more than 100000 objects and arrays; send fewer prompts or messages per request/);
    expect(r.json.error.code).toBe('body_too_complex');
  });

  it('known fields of the wrong type', async () => {
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', max_tokens: 'ten' }), 400, 'max_tokens', /max_tokens/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 42 }), 400, 'prompt', /prompt must be a string/);
    // a field of the wrong type is named with its type, not called missing
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', stream: 'yes' }), 400, 'stream', /^stream: .*expected boolean, received string/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', stream: true, stream_options: 'yes' }), 400, 'stream_options', /expected object, received string/);
    expectApiError(await postJson(completions(), { model: 7, prompt: 'x' }), 400, 'model', /^model: .*expected string, received number/);
    expectApiError(await postJson(completions(), { prompt: 'x' }), 400, 'model', /^model: this field is required$/);
    const chat = `${s.url}/v1/chat/completions`;
    expectApiError(await postJson(chat, { model: 'tiny', messages: [{ content: 'hi' }] }), 400, 'messages.0.role', /this field is required/);
    expectApiError(await postJson(chat, { model: 'tiny', messages: [{ role: 'user' }] }), 400, 'messages.0.content', /this field is required/);
    expectApiError(await postJson(chat, { model: 'tiny', messages: [{ role: 'user', content: 3 }] }), 400, 'messages.0.content', /content must be a string or an array of .*text/);
    expectApiError(await postJson(chat, { model: 'tiny', messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: 'think' }), 400, 'chat_template_kwargs', /must be an object of template variables/);
  });

  it('unknown fields are ignored, as the OpenAI API does', async () => {
    const r = await postJson(completions(), { model: 'tiny', prompt: 'ROMEO:', max_tokens: 2, temperature: 0, some_future_field: { a: 1 } });
    expect(r.status).toBe(200);
    expect(r.json.usage.completion_tokens).toBe(2);
  });

  it('what Fastify and Node refuse before any route is an OpenAI error object too: a URL that does not decode, headers too large, bytes that are not HTTP', async () => {
    const badUrl = await fetch(`${s.url}/v1/models/%E0%A4%A`);
    const badUrlText = await badUrl.text();
    expectApiError({ status: badUrl.status, json: JSON.parse(badUrlText), text: badUrlText }, 400, null, /^the request URL is not valid: .*not a valid url component/);
    const long = await fetch(`${s.url}/v1/models/${'a'.repeat(40_000)}`);
    const longText = await long.text();
    expect(long.status).toBe(431);
    expect(JSON.parse(longText)).toEqual({ error: { message: expect.stringMatching(/larger than the 16 KiB/), type: 'invalid_request_error', param: null, code: 'bad_http_request' } });
    // a raw connection that sends something other than HTTP gets a 400 and is closed
    const { port } = new URL(s.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let got = '';
      socket.on('data', (d) => (got += d.toString()));
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({ error: { message: expect.stringMatching(/could not be parsed as HTTP/), type: 'invalid_request_error', param: null, code: 'bad_http_request' } });
    // and the server goes on serving
    expect((await postJson(completions(), { model: 'tiny', prompt: 'ROMEO:', max_tokens: 1 })).status).toBe(200);
  });

  it('an unknown model is a 404 that lists the served ones', async () => {
    expectApiError(await postJson(completions(), { model: 'gpt-4', prompt: 'x' }), 404, 'model', /`gpt-4` does not exist.*tiny/);
  });

  it('a prompt longer than the context', async () => {
    const r = await postJson(completions(), { model: 'tiny', prompt: 'the king '.repeat(1200), max_tokens: 1 });
    expectApiError(r, 400, 'prompt', /maximum context length is 1024 tokens/);
    expect(r.json.error.code).toBe('context_length_exceeded');
  });

  it('prompt + max_tokens beyond the context', async () => {
    const r = await postJson(completions(), { model: 'tiny', prompt: 'ROMEO:', max_tokens: 1023 });
    expectApiError(r, 400, 'max_tokens', /requested 1025 tokens \(2 in the prompt, 1023 for the completion\)/);
  });

  it('absurd max_tokens', async () => {
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', max_tokens: 1e12 }), 400, 'max_tokens', /max_tokens/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', max_tokens: 0 }), 400, 'max_tokens', /max_tokens/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', max_tokens: 2.5 }), 400, 'max_tokens', /max_tokens/);
  });

  it('a negative temperature, top_p outside (0, 1], min_p outside [0, 1]', async () => {
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', temperature: -0.5 }), 400, 'temperature', /temperature/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', top_p: 0 }), 400, 'top_p', /top_p/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', min_p: 1.5 }), 400, 'min_p', /min_p: Too big/);
  });

  it('penalties and logit_bias out of range, or naming no token of the vocabulary', async () => {
    const bad: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ frequency_penalty: 2.5 }, 'frequency_penalty', /frequency_penalty: Too big/],
      [{ presence_penalty: -3 }, 'presence_penalty', /presence_penalty: Too small/],
      [{ repetition_penalty: 0 }, 'repetition_penalty', /repetition_penalty: Too small/],
      [{ repetition_penalty: 'high' }, 'repetition_penalty', /expected number/],
      [{ logit_bias: { '12': 101 } }, 'logit_bias.12', /Too big/],
      [{ logit_bias: { ab: 1 } }, 'logit_bias.ab', /token ids/],
      [{ logit_bias: { '-1': 1 } }, 'logit_bias.-1', /token ids/],
      [{ logit_bias: { '4096': 1 } }, 'logit_bias', /token 4096 is outside the vocabulary \[0, 4096\)/],
      [{ logit_bias: [1, 2] }, 'logit_bias', /expected record/],
    ];
    for (const [fields, param, message] of bad) expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', ...fields }), 400, param, message);
  });

  it('features that are not implemented are refused, not ignored', async () => {
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', n: 17 }), 400, 'n', /n: Too big/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', suffix: 'y' }), 400, 'suffix', /suffix is not supported/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', best_of: 2 }), 400, 'best_of', /only best_of = 1/);
    const chat = `${s.url}/v1/chat/completions`;
    const messages = [{ role: 'user', content: 'hi' }];
    const tool = { type: 'function', function: { name: 'f', parameters: {} } };
    // tools default to tool_choice "auto", which needs the model's own call format (none here)
    expectApiError(await postJson(chat, { model: 'tiny', messages, tools: [tool] }), 400, 'tool_choice', /writes no tool-call format this server knows/);
    expectApiError(await postJson(chat, { model: 'tiny', messages, tool_choice: 'auto' }), 400, 'tool_choice', /tool_choice needs tools/);
    expectApiError(await postJson(chat, { model: 'tiny', messages, tools: [{ type: 'retrieval' }] }), 400, 'tools.0.type', /only function tools/);
    const unique = { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { not: { type: 'string' } } } } } };
    expectApiError(await postJson(chat, { model: 'tiny', messages, response_format: unique }), 400, 'response_format.json_schema.schema', /the keyword "not" is not supported/);
    // the neutral values some clients always send pass (on to the missing chat template, here)
    const neutral = await postJson(chat, { model: 'tiny', messages, tools: [], tool_choice: 'none', response_format: { type: 'text' }, logit_bias: {}, n: 1, presence_penalty: 0 });
    expectApiError(neutral, 400, 'messages', /has no chat template/);
  });

  it('one prompt in any of the API’s four forms gives the same completion; batches of prompts beyond the limits are refused', async () => {
    const ids = [...s.server.models.get('tiny')!.tokenizer.tokenizer.encode('ROMEO:').ids];
    const texts = [];
    for (const prompt of ['ROMEO:', ['ROMEO:'], ids, [ids]]) {
      const r = await postJson(completions(), { model: 'tiny', prompt, max_tokens: 4, temperature: 0 });
      expect(r.status).toBe(200);
      texts.push(r.json.choices[0].text);
    }
    expect(new Set(texts).size).toBe(1);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: ['ROMEO:', ids] }), 400, 'prompt', /prompt must be a string/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: [] }), 400, 'prompt', /prompt must be a string/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: Array(65).fill('x') }), 400, 'prompt', /at most 64 prompts/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: Array(17).fill('x'), n: 16 }), 400, 'n', /272 sequences, more than the 256/);
    // the most sequences one request may have decode without Node warning of a listener leak
    // (each listens for the request's abort)
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const most = await postJson(completions(), { model: 'tiny', prompt: Array(16).fill('ROMEO:'), n: 16, max_tokens: 1 });
      expect(most.json.choices).toHaveLength(256);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => /MaxListeners/.test(w))).toEqual([]);
    // a prompt of the batch beyond the context is named
    const long = Array(1100).fill(ids[0]);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: [ids, long] }), 400, 'prompt', /prompt 1 has 1100 tokens/);
  });

  it('a token id outside the vocabulary, including one that a 32-bit conversion would wrap to a valid id', async () => {
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: [1, 99999], max_tokens: 1 }), 400, 'prompt', /id 99999 \(position 1\) is outside the vocabulary/);
    // 2³² + 1 is token 1 once it is an Int32: it must be refused, not decoded as 1
    const r = await postJson(completions(), { model: 'tiny', prompt: [2 ** 32 + 1], max_tokens: 1 });
    expectApiError(r, 400, 'prompt', /id 4294967297 \(position 0\) is outside the vocabulary/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: [[1, 99999]], max_tokens: 1 }), 400, 'prompt', /id 99999 \(position 1\)/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: [[1, 2], [1, 99999]], max_tokens: 1 }), 400, 'prompt', /prompt 1: prompt token id 99999 \(position 1\)/);
    expect(r.json.error.code).toBe('invalid_parameter');
  });

  it('a stop that is neither a string nor a list of strings', async () => {
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', stop: 5 }), 400, 'stop', /stop must be a string or an array of at most 16 strings/);
    expectApiError(await postJson(completions(), { model: 'tiny', prompt: 'x', stop: [''] }), 400, 'stop', /must not be empty/);
  });

  it('chat on a model whose tokenizer has no chat template is a clear 400', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'hello' }] });
    expectApiError(r, 400, 'messages', /has no chat template.*use \/v1\/completions/);
  });

  it('an unknown route is an OpenAI-shaped 404', async () => {
    const res = await fetch(`${s.url}/v1/embeddings`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('route_not_found');
  });
});

describe('read-only endpoints', () => {
  it('GET /v1/models lists the served model', async () => {
    const body = await getJson(`${s.url}/v1/models`);
    expect(body.object).toBe('list');
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(['tiny']);
    expect(body.data[0]).toMatchObject({ object: 'model', owned_by: 'rfid-moe', max_model_len: 1024 });
  });

  it('GET /health reports the policy and each model', async () => {
    const body = await getJson(`${s.url}/health`);
    expect(body.status).toBe('ok');
    expect(body.policy).toBe('tyche');
    expect(body.models[0]).toMatchObject({ id: 'tiny', kind: 'original' });
  });

  it('GET /metrics counts requests, tokens, loads, load waits, TTFT and resident bytes', async () => {
    await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 3, temperature: 0 });
    const text = await (await fetch(`${s.url}/metrics`)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    expect(value(/rfid_moe_requests_total\{model="tiny",endpoint="completions",status="200"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(value(/rfid_moe_generated_tokens_total\{model="tiny"\} (\d+)/)).toBeGreaterThanOrEqual(3);
    expect(value(/rfid_moe_model_loads_total\{model="tiny",reason="request"\} (\d+)/)).toBe(1);
    expect(value(/rfid_moe_time_to_first_token_seconds_count\{model="tiny"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(value(/rfid_moe_load_wait_seconds_count\{model="tiny"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    // the shipped model's tensors (all stored BF16) held at 2 bytes a value, but the norms and the
    // router at 4 (widened to f32)
    expect(value(/rfid_moe_resident_bytes\{model="tiny"\} (\d+)/)).toBe(s.server.models.get('tiny')!.estimatedBytes);
    const ckpt = await openCheckpoint(TINY_DIR);
    let values = 0;
    let widenedValues = 0;
    for (const name of ckpt.tensorNames()) {
      const t = ckpt.tensor(name)!;
      const n = t.shape.reduce((a, b) => a * b, 1);
      expect(t.dtype).toBe('BF16');
      values += n;
      if (/norm\.weight$|\.gate\.weight$/.test(name)) widenedValues += n;
    }
    await ckpt.close();
    expect(widenedValues).toBeGreaterThan(0);
    expect(s.server.models.get('tiny')!.estimatedBytes).toBe(2 * values + 2 * widenedValues);
    expect(text).toMatch(/rfid_moe_requests_total\{model="unknown",endpoint="completions",status="404"\}/);
  });
});
