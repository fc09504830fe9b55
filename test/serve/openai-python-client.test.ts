/**
 * The official `openai` Python client, which Python code reaches OpenAI-compatible servers with,
 * against the server (scripts/openai_python_check.py makes the calls and reports what the client
 * handed back). Independent truth: transformers' greedy tokens (the committed generation goldens)
 * for the completions' text, and the server's own raw JSON for what the client parsed
 * (log-probabilities, usage, the chat message). Also: streams read by the client's SSE decoder,
 * the async client's concurrent requests, errors as its typed exceptions, and a stream the client
 * closes early, which must stop its generation on the server.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
import { jsonOutcomeProblem } from '../helpers/json-judge.js';
import { describeWithPythonOpenai, pythonPath } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';
import { generatedTokens, getJson, postJson, startServer, tinyWithChatTemplate, TINY_DIR, type Running } from './helpers.js';

const SCRIPT = path.join(repoRoot, 'scripts', 'openai_python_check.py');
const N = 24; // new tokens a completion (a prefix of the goldens' 64)
const CONVERSATION = [
  { role: 'system', content: 'You speak as a player in Shakespeare.' },
  { role: 'user', content: 'Who comes there?' },
];
const LETTER_TOOL = {
  type: 'function',
  function: { name: 'send_letter', parameters: { type: 'object', properties: { to: { enum: ['Romeo', 'Juliet'] }, urgent: { type: 'boolean' } }, required: ['to', 'urgent'], additionalProperties: false } },
};

const CHOICES = ['Romeo', 'Juliet', 'the Nurse'];
const REGEX = '[A-Z][a-z]+(, [a-z]+)*[.!]';

interface ClientError {
  class: string;
  message: string;
  status_code?: number;
  code?: string;
  param?: string;
}
type Attempt<T> = { ok: T; error?: undefined } | { ok?: undefined; error: ClientError };
interface CompletionReport {
  id: string;
  object: string;
  model: string;
  text: string;
  finish_reason: string;
  usage: Record<string, number>;
  logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Array<Record<string, number>>; text_offset: number[] };
}
interface Report {
  openai: string;
  models: Attempt<string[]>;
  retrieve: Attempt<Record<string, unknown>>;
  retrieve_missing: Attempt<string>;
  completions: Array<Attempt<CompletionReport>>;
  streamed: Attempt<{ pieces: string[]; finish_reason: string; usage: Record<string, number> }>;
  batch: Attempt<Array<{ index: number; text: string; finish_reason: string }>>;
  concurrent: Attempt<string[]>;
  errors: Record<'unknown_model' | 'negative_temperature' | 'too_long_streamed' | 'chat_without_template', Attempt<unknown>>;
  chat: Attempt<{ object: string; role: string; content: string; finish_reason: string; usage: Record<string, number>; logprobs: Array<{ token: string; logprob: number; top: Array<[string, number]> }> }>;
  streamed_chat: Attempt<{ pieces: string[]; roles: string[]; finish_reason: string }>;
  json_chat: Attempt<{ content: string; finish_reason: string }>;
  guided_chat: Attempt<Record<'choice' | 'regex', { content: string; finish_reason: string }>>;
  responses: Attempt<{ output_text: string; status: string; usage: Record<string, number>; streamed: string; final_text: string; final_status: string }>;
  parsed_tool_chat: Attempt<{ tool: { function: { parameters: object } }; arguments: string; parsed_type: string; parsed: Record<string, unknown>; finish_reason: string }>;
  parsed_output_chat: Attempt<{ schema: object; answers: Array<{ parsed_type: string; parsed: Record<string, unknown>; content: string; finish_reason: string }> }>;
  tool_chat: Attempt<{ id: string; name: string; arguments: string; content: string | null; finish_reason: string; streamed: { name: string; arguments: string; ids: number; finish_reason: string } }>;
}

/** The value of an attempt that must have succeeded (the client's exception in the failure otherwise). */
function ok<T>(a: Attempt<T>, what: string): T {
  expect(a.error, `${what}: the client raised`).toBeUndefined();
  return a.ok as T;
}

/** The exception of an attempt that must have failed. */
function raised(a: Attempt<unknown>, what: string): ClientError {
  expect(a.error, `${what}: the client raised nothing`).toBeDefined();
  return a.error!;
}

describeWithPythonOpenai('the openai Python client against the server', () => {
  const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test/golden/generate/mixtral-tiny-shakespeare.json'), 'utf8')) as {
    cases: Array<{ prompt: string; tokens: number[] }>;
  };
  const prompts = golden.cases.slice(0, 3).map((c) => c.prompt);
  let s: Running;
  let chatDir: string;
  let want: string[];
  let report: Report;
  const job = () => ({ base_url: `${s.url}/v1`, model: 'tiny', chat_model: 'chat', prompts, max_tokens: N, conversation: CONVERSATION, cancel_after: 3, tools: [LETTER_TOOL], choices: CHOICES, regex: REGEX });

  beforeAll(async () => {
    // the shipped model with a chat template, for the chat endpoint
    chatDir = tinyWithChatTemplate(mkdtempSync(path.join(tmpdir(), 'rfid-py-chat-')));
    s = await startServer({ models: [`tiny=${TINY_DIR}`, `chat=${chatDir}`] });
    const tok = s.server.models.get('tiny')!.tokenizer.tokenizer;
    want = golden.cases.slice(0, 3).map((c) => tok.decode(c.tokens.slice(0, N), { skip_special_tokens: true }));
    report = await runPythonJson<Report>(pythonPath, SCRIPT, job());
  }, 180_000);
  afterAll(async () => {
    await s?.close();
    if (chatDir) rmSync(chatDir, { recursive: true, force: true });
  });

  it('lists and retrieves the models as the server sends them; an unknown one is its NotFoundError', async () => {
    expect(ok(report.models, 'models.list')).toEqual(['tiny', 'chat']);
    expect(ok(report.retrieve, 'models.retrieve')).toEqual(await getJson(`${s.url}/v1/models/tiny`));
    expect(raised(report.retrieve_missing, 'models.retrieve of an unknown id')).toMatchObject({ class: 'NotFoundError', status_code: 404, code: 'model_not_found' });
  });

  it('greedy completions: the text is transformers’ greedy text; the parsed log-probabilities and usage are the server’s own, to the last bit', async () => {
    for (const [i, attempt] of report.completions.entries()) {
      const got = ok(attempt, `completion ${i}`);
      expect(got.text).toBe(want[i]);
      expect(got).toMatchObject({ object: 'text_completion', model: 'tiny', finish_reason: 'length' });
      // the same request, read as raw JSON
      const raw = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: prompts[i], max_tokens: N, temperature: 0, logprobs: 2 });
      expect(raw.status).toBe(200);
      const choice = raw.json.choices[0];
      expect(got.text).toBe(choice.text);
      expect(got.logprobs).toEqual(choice.logprobs);
      expect(got.usage).toEqual(raw.json.usage);
      expect(got.usage.completion_tokens).toBe(N);
      // greedy: each chosen token is its step's most likely, so it heads its own alternatives
      expect(got.logprobs.tokens.join('')).toBe(got.text);
      got.logprobs.top_logprobs.forEach((top, t) => {
        expect(top[got.logprobs.tokens[t]]).toBe(got.logprobs.token_logprobs[t]);
        expect(Math.max(...Object.values(top))).toBe(got.logprobs.token_logprobs[t]);
      });
    }
  });

  it('a streamed completion read by the client’s SSE decoder: token by token, the same text, then usage', () => {
    const got = ok(report.streamed, 'streamed completion');
    expect(got.pieces.join('')).toBe(want[1]);
    expect(got.pieces.length).toBeGreaterThan(N / 2);
    expect(got.finish_reason).toBe('length');
    expect(got.usage.completion_tokens).toBe(N);
  });

  it('a batch of prompts and the async client’s concurrent requests each give that prompt’s greedy text', () => {
    const batch = ok(report.batch, 'batch completion');
    expect(batch.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(batch.map((c) => c.text)).toEqual(want);
    expect(ok(report.concurrent, 'AsyncOpenAI, concurrent')).toEqual(want);
  });

  it('chat: the parsed message and log-probabilities are the server’s; streamed deltas join to the same content', async () => {
    const got = ok(report.chat, 'chat completion');
    const raw = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, max_tokens: N, temperature: 0, logprobs: true, top_logprobs: 2 });
    expect(raw.status).toBe(200);
    const choice = raw.json.choices[0];
    expect(got).toMatchObject({ object: 'chat.completion', role: 'assistant', content: choice.message.content, finish_reason: choice.finish_reason });
    expect(got.content.length).toBeGreaterThan(0);
    expect(got.usage).toEqual(raw.json.usage);
    expect(got.logprobs).toEqual(
      (choice.logprobs.content as Array<{ token: string; logprob: number; top_logprobs: Array<{ token: string; logprob: number }> }>).map((t) => ({
        token: t.token,
        logprob: t.logprob,
        top: t.top_logprobs.map((a) => [a.token, a.logprob]),
      })),
    );
    const streamed = ok(report.streamed_chat, 'streamed chat');
    expect(streamed.pieces.join('')).toBe(got.content);
    expect(streamed.roles).toEqual(['assistant']);
    expect(streamed.finish_reason).toBe(got.finish_reason);
  });

  it('tool calls: a named function’s call, parsed by the client whole and from its streamed deltas, the server’s, with arguments valid under its parameters', async () => {
    const got = ok(report.tool_chat, 'chat with a named tool');
    const raw = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, temperature: 0, tools: [LETTER_TOOL], tool_choice: { type: 'function', function: { name: 'send_letter' } } });
    const call = raw.json.choices[0].message.tool_calls[0];
    expect(got).toMatchObject({ name: 'send_letter', arguments: call.function.arguments, content: null, finish_reason: 'stop' });
    expect(got.id).toMatch(/^call_/);
    expect(got.streamed).toEqual({ name: 'send_letter', arguments: call.function.arguments, ids: 1, finish_reason: 'stop' });
    expect(new Ajv({ strict: false }).compile(LETTER_TOOL.function.parameters)(JSON.parse(got.arguments))).toBe(true);
  });

  it('a strict tool from a pydantic model: the client’s chat.completions.parse gives back that model, from arguments valid under the schema it sent', async () => {
    const got = ok(report.parsed_tool_chat, 'parse() with a pydantic tool');
    expect(got.parsed_type).toBe('Letter');
    expect(got.finish_reason).toBe('stop');
    expect(JSON.parse(got.arguments)).toEqual(got.parsed);
    expect(new Ajv({ strict: false }).compile(got.tool.function.parameters)(got.parsed)).toBe(true);
  });

  it('a pydantic model as the response format, with the field rules pydantic writes (datetime, date, UUID, a pattern, lengths, bounds, a discriminated union, a timedelta, network addresses): the client’s parse() validates it into the model, greedy and sampled', async () => {
    const got = ok(report.parsed_output_chat, 'parse() with a pydantic response format');
    // Pydantic's own network formats are not Ajv's: pydantic's parse is their truth here
    const validate = addFormats(new Ajv({ strict: false, formats: { ipvanyaddress: true, ipv4network: true } })).compile(got.schema);
    expect(got.answers).toHaveLength(2);
    for (const a of got.answers) {
      expect(a.parsed_type).toBe('Booking');
      expect(a.finish_reason).toBe('stop');
      // pydantic validated it (parse() raises otherwise); Ajv, with its full formats, agrees on the server's text
      expect(validate(JSON.parse(a.content)), `${a.content}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('JSON mode (response_format json_object): the server’s content, one JSON object or a viable beginning of one at max_tokens', async () => {
    const got = ok(report.json_chat, 'chat in JSON mode');
    const raw = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, max_tokens: 48, temperature: 0, response_format: { type: 'json_object' } });
    expect(got).toEqual({ content: raw.json.choices[0].message.content, finish_reason: raw.json.choices[0].finish_reason });
    expect(jsonOutcomeProblem(got.content, got.finish_reason)).toBeNull();
  });

  it('vLLM’s structured outputs sent as extra_body (a choice, a regex): the server’s content, held to them', async () => {
    const got = ok(report.guided_chat, 'chat with structured outputs');
    for (const [name, extra] of [['choice', { structured_outputs: { choice: CHOICES } }], ['regex', { guided_regex: REGEX }]] as const) {
      const raw = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, max_tokens: 24, temperature: 0, ...extra });
      expect(got[name]).toEqual({ content: raw.json.choices[0].message.content, finish_reason: raw.json.choices[0].finish_reason });
    }
    expect(got.choice).toMatchObject({ content: expect.toBeOneOf(CHOICES), finish_reason: 'stop' });
    if (got.regex.finish_reason === 'stop') expect(got.regex.content).toMatch(new RegExp(`^(?:${REGEX})$`));
    else expect(got.regex.content).toMatch(/^(?:[A-Z][a-z]*|[A-Z][a-z]+(?:, [a-z]+)*(?:,|, [a-z]*)?)?$/);
  });

  it('the Responses API: the client parses the response and accumulates the streamed events to the same text, the chat answer to system + user', async () => {
    const got = ok(report.responses, 'responses');
    const chat = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, max_tokens: 24, temperature: 0 });
    const want = chat.json.choices[0].message.content;
    expect(got).toMatchObject({ output_text: want, streamed: want, final_text: want, status: 'incomplete', final_status: 'incomplete' });
    expect(got.usage).toMatchObject({ output_tokens: 24, input_tokens: chat.json.usage.prompt_tokens });
  });

  it('errors arrive as the client’s typed exceptions, with the code and param it reads', () => {
    expect(raised(report.errors.unknown_model, 'unknown model')).toMatchObject({ class: 'NotFoundError', status_code: 404, code: 'model_not_found' });
    expect(raised(report.errors.negative_temperature, 'negative temperature')).toMatchObject({ class: 'BadRequestError', status_code: 400, param: 'temperature' });
    const tooLong = raised(report.errors.too_long_streamed, 'max_tokens beyond the context, streamed');
    expect(tooLong).toMatchObject({ class: 'BadRequestError', status_code: 400 });
    expect(tooLong.message).toMatch(/maximum context length/);
    const chat = raised(report.errors.chat_without_template, 'chat on a model without a template');
    expect(chat).toMatchObject({ class: 'BadRequestError', status_code: 400 });
    expect(chat.message).toMatch(/no chat template/);
  });

  it('a stream the client closes early stops its generation and frees its sequence', async () => {
    const metrics = async () => generatedTokens(await (await fetch(`${s.url}/metrics`)).text());
    const before = await metrics();
    const { cancelled } = await runPythonJson<{ cancelled: Attempt<{ read: number }> }>(pythonPath, SCRIPT, { ...job(), cancel: true });
    expect(ok(cancelled, 'closing a stream').read).toBe(3);
    const tiny = async () => ((await getJson(`${s.url}/health`)).models as Array<{ id: string; active_sequences: number; in_flight: number }>).find((m) => m.id === 'tiny')!;
    let state = await tiny();
    for (let i = 0; i < 100 && (state.active_sequences > 0 || state.in_flight > 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
      state = await tiny();
    }
    expect(state).toMatchObject({ active_sequences: 0, in_flight: 0 });
    const generated = (await metrics()) - before;
    expect(generated).toBeGreaterThanOrEqual(3);
    expect(generated).toBeLessThan(1000); // it asked for 1000
  }, 60_000);

  it('examples/openai_client.py runs against a server on the shipped model, as the README shows', async () => {
    const served = await startServer({ models: [TINY_DIR] });
    try {
      const { stdout } = await promisify(execFile)(pythonPath, [path.join(repoRoot, 'examples', 'openai_client.py')], {
        env: { ...process.env, RFID_MOE_URL: `${served.url}/v1` },
        timeout: 60_000,
      });
      // its greedy completion of "ROMEO:\n" (golden case 0) is transformers' greedy text
      expect(golden.cases[0].prompt).toBe('ROMEO:\n');
      expect(stdout).toContain(want[0]);
      expect(stdout).toMatch(/completion_tokens=32/);
      expect(stdout).toMatch(/404: .*`no-such-model` does not exist/);
    } finally {
      await served.close();
    }
  });
});
