/**
 * Hugging Face's `InferenceClient` (huggingface_hub), which Hugging Face's own Python code reaches a
 * self-hosted OpenAI-compatible server with, against the server (scripts/hf_inference_client_check.py
 * makes the calls and reports what the client handed back). It builds its own request bodies: a
 * `json_schema` response format goes out as Text Generation Inference's
 * `{"type": "json_object", "value": schema}`, which a server that drops the `value` answers with
 * unheld JSON. Truth: the server's raw answer to the same request in vLLM's fields (`guided_json`,
 * `structured_outputs.regex`), Ajv for the schema, V8's RegExp for the pattern.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithHfHub, pythonPath } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';
import { postJson, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

const SCRIPT = path.join(repoRoot, 'scripts', 'hf_inference_client_check.py');
const CONVERSATION = [
  { role: 'system', content: 'You speak as a player in Shakespeare.' },
  { role: 'user', content: 'Who comes there?' },
];
const SCHEMA = {
  type: 'object',
  properties: { who: { enum: ['Romeo', 'Juliet', 'the Nurse'] }, act: { type: 'integer', minimum: 1, maximum: 5 }, line: { type: 'string', maxLength: 12 } },
  required: ['who', 'act', 'line'],
  additionalProperties: false,
};
const REGEX = '[A-Z][a-z]+(, [a-z]+)*[.!]';
const TOOL = {
  type: 'function',
  function: { name: 'send_letter', parameters: { type: 'object', properties: { to: { enum: ['Romeo', 'Juliet'] }, urgent: { type: 'boolean' } }, required: ['to', 'urgent'], additionalProperties: false } },
};

type Attempt<T> = { ok: T } | { error: { class: string; message: string; status: number | null } };
interface Chat {
  content: string | null;
  finish_reason: string;
  tool_calls: Array<{ name: string; arguments: string | Record<string, unknown> }>;
  usage: { prompt_tokens: number; completion_tokens: number };
}
interface Report {
  plain: Attempt<Chat>;
  streamed: Attempt<{ content: string; finish_reason: string }>;
  json_schema: Attempt<Chat>;
  tgi_json: Attempt<Chat>;
  tgi_regex: Attempt<Chat>;
  tool_call: Attempt<Chat>;
  unknown_model: Attempt<string>;
  bad_schema: Attempt<Chat>;
}

function ok<T>(a: Attempt<T>, what: string): T {
  if ('error' in a) throw new Error(`${what}: the client raised ${a.error.class}: ${a.error.message}`);
  return a.ok;
}

describeWithHfHub('Hugging Face’s InferenceClient against the server', () => {
  let s: Running;
  let dir: string;
  let report: Report;
  const raw = async (body: Record<string, unknown>) => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, temperature: 0, ...body });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    return r.json.choices[0] as { message: { content: string | null; tool_calls?: Array<{ function: { name: string; arguments: string } }> }; finish_reason: string };
  };

  beforeAll(async () => {
    dir = tinyWithChatTemplate(mkdtempSync(path.join(tmpdir(), 'rfid-hf-client-')));
    s = await startServer({ models: [`chat=${dir}`] });
    // (the client refuses every URL in Hugging Face's offline mode, loopback too; the script reaches nothing else)
    const job = { base_url: `${s.url}/v1`, model: 'chat', conversation: CONVERSATION, schema: SCHEMA, regex: REGEX, tool: TOOL };
    report = await runPythonJson<Report>(pythonPath, SCRIPT, job, { env: { HF_HUB_OFFLINE: '0' } });
  }, 180_000);
  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a chat answer, whole and streamed: the server’s own text, usage and finish reason', async () => {
    const plain = ok(report.plain, 'chat_completion');
    const want = await raw({ max_tokens: 16 });
    expect(plain).toMatchObject({ content: want.message.content, finish_reason: want.finish_reason });
    expect(plain.usage.completion_tokens).toBe(16);
    const streamed = ok(report.streamed, 'streamed chat_completion');
    expect(streamed).toEqual({ content: want.message.content, finish_reason: want.finish_reason });
  });

  it('a json_schema response format, which the client sends as TGI’s json_object with a value, is held to the schema', async () => {
    const got = ok(report.json_schema, 'chat_completion with a json_schema response format');
    const want = await raw({ max_tokens: 400, guided_json: SCHEMA });
    expect(got.content).toBe(want.message.content);
    expect(got.finish_reason).toBe('stop');
    expect(new Ajv().compile(SCHEMA)(JSON.parse(got.content!))).toBe(true);
  });

  it('TGI’s grammars as the client documents them: {"type": "json", "value": schema} and {"type": "regex", "value": pattern}', async () => {
    const json = ok(report.tgi_json, 'chat_completion with a TGI json grammar');
    expect(json.content).toBe((await raw({ max_tokens: 400, guided_json: SCHEMA })).message.content);
    expect(json.finish_reason).toBe('stop');
    expect(new Ajv().compile(SCHEMA)(JSON.parse(json.content!))).toBe(true);
    const regex = ok(report.tgi_regex, 'chat_completion with a TGI regex grammar');
    const want = await raw({ max_tokens: 24, structured_outputs: { regex: REGEX } });
    expect(regex).toMatchObject({ content: want.message.content, finish_reason: want.finish_reason });
    if (regex.finish_reason === 'stop') expect(regex.content).toMatch(new RegExp(`^(?:${REGEX})$`));
  });

  it('a named tool choice: the client parses the call, arguments valid under the parameters', () => {
    const got = ok(report.tool_call, 'chat_completion with a named tool');
    // a call the request forced ends with "stop", as OpenAI's API ends it
    expect(got.finish_reason).toBe('stop');
    expect(got.tool_calls).toHaveLength(1);
    expect(got.tool_calls[0].name).toBe('send_letter');
    const args = got.tool_calls[0].arguments;
    expect(new Ajv().compile(TOOL.function.parameters)(typeof args === 'string' ? JSON.parse(args) : args)).toBe(true);
  });

  it('errors reach the client as HTTP errors with the server’s message: an unknown model (404), a schema that cannot be held (400)', () => {
    expect(report.unknown_model).toMatchObject({ error: { status: 404, message: expect.stringContaining('no-such-model') } });
    expect(report.bad_schema).toMatchObject({ error: { status: 400, message: expect.stringMatching(/pattern/) } });
  });
});
