/**
 * Hugging Face's `InferenceClient.text_generation` (huggingface_hub) against the server's Text
 * Generation Inference routes: the client given a model's URL (POST /tgi/{model}) speaks TGI's own
 * API, parses the answer and the stream with its own dataclasses, and raises its own exceptions
 * from TGI's error_type (scripts/hf_text_generation_check.py makes the calls and reports what came
 * back). Truth: the greedy tokens of PyTorch's decode (the golden file), and transformers'
 * log-probabilities for the same prompt and tokens, computed by the script.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithHfHub, pythonPath } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';
import { postJson, startServer, TINY_DIR, tinyWithChatTemplate, type Running } from './helpers.js';

const SCRIPT = path.join(repoRoot, 'scripts', 'hf_text_generation_check.py');
const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'golden', 'generate', 'mixtral-tiny-shakespeare.json'), 'utf8')) as {
  cases: Array<{ prompt: string; promptIds: number[]; tokens: number[]; text: string }>;
};
const c = golden.cases[1];
const STOP = ' sir';
const REGEX = '(ROMEO|JULIET): [a-z ]{1,20}\\.';
const QWEN_DIR = path.join(repoRoot, 'examples', 'models', 'qwen3-moe-tiny-shakespeare');
const CONVERSATION = [{ role: 'user', content: 'Who comes there?' }];

type Attempt<T> = { ok: T } | { error: { class: string; message: string; status: number | null } };
interface Token {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
}
interface Detailed {
  generated_text: string;
  details: { finish_reason: string; generated_tokens: number; seed: number | null; prefill: Array<{ id: number; text: string; logprob: number | null }>; tokens: Token[]; top_tokens: Token[][] };
}
interface StreamEvent {
  index: number;
  token: Token;
  generated_text: string | null;
  details: { finish_reason: string; generated_tokens: number; seed: number | null; input_length: number } | null;
}
interface Report {
  plain: Attempt<string>;
  no_full_text: Attempt<string>;
  details: Attempt<Detailed>;
  stream_text: Attempt<string[]>;
  stream_details: Attempt<StreamEvent[]>;
  stop: Attempt<Detailed>;
  regex: Attempt<Detailed>;
  seeded: Array<Attempt<Detailed>>;
  langchain: Attempt<string>;
  langchain_stream: Attempt<string[]>;
  zero_temperature: Attempt<string>;
  top_p_one: Attempt<string>;
  too_long: Attempt<string>;
  stream_prefill: Attempt<string[]>;
  unknown_model: Attempt<string>;
  which_model: Attempt<string>;
  chat: Attempt<string>;
  reference_logprobs: number[];
  reference_top: Array<Array<{ id: number; logprob: number }>>;
}

function ok<T>(a: Attempt<T>, what: string): T {
  if ('error' in a) throw new Error(`${what}: the client raised ${a.error.class}: ${a.error.message}`);
  return a.ok;
}

function raised<T>(a: Attempt<T>, what: string): { class: string; message: string } {
  if (!('error' in a)) throw new Error(`${what}: the client raised nothing and got ${JSON.stringify(a.ok).slice(0, 200)}`);
  return a.error;
}

describeWithHfHub('Hugging Face’s InferenceClient.text_generation against the server', () => {
  let s: Running;
  let dir: string;
  let report: Report;

  beforeAll(async () => {
    dir = tinyWithChatTemplate(mkdtempSync(path.join(tmpdir(), 'rfid-hf-tgi-')));
    s = await startServer({ models: [`mixtral=${TINY_DIR}`, `qwen=${QWEN_DIR}`, `chat=${dir}`] });
    const job = { url: `${s.url}/tgi/mixtral`, server_url: s.url, model_dir: TINY_DIR, prompt: c.prompt, stop: STOP, regex: REGEX, chat_url: `${s.url}/tgi/chat`, conversation: CONVERSATION };
    // (the client refuses every URL in Hugging Face's offline mode, loopback too; the script reaches nothing else)
    report = await runPythonJson<Report>(pythonPath, SCRIPT, job, { env: { HF_HUB_OFFLINE: '0' } });
  }, 240_000);
  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('greedy by default: the tokens PyTorch decodes, after the prompt (TGI’s default on its / route) or alone (return_full_text=False)', () => {
    const details = ok(report.details, 'details=True').details;
    expect(details.tokens.map((t) => t.id)).toEqual(c.tokens.slice(0, 20));
    const text = ok(report.no_full_text, 'return_full_text=False');
    expect(text).toBe(details.tokens.map((t) => t.text).join(''));
    expect(c.text.startsWith(text)).toBe(true);
    expect(ok(report.plain, 'a plain call')).toBe(c.prompt + text);
    expect(details).toMatchObject({ finish_reason: 'length', generated_tokens: 20, seed: null });
  });

  it('details: the prompt’s and the generated tokens’ log-probabilities are transformers’, the top tokens its most likely', () => {
    const { details } = ok(report.details, 'details=True');
    expect(details.prefill.map((t) => t.id)).toEqual(c.promptIds);
    expect(details.prefill[0].logprob).toBeNull();
    const ours = [...details.prefill.slice(1).map((t) => t.logprob!), ...details.tokens.map((t) => t.logprob)];
    expect(ours).toHaveLength(report.reference_logprobs.length);
    ours.forEach((lp, i) => expect(Math.abs(lp - report.reference_logprobs[i]), `position ${i + 1}`).toBeLessThan(1e-3));
    expect(details.top_tokens).toHaveLength(20);
    details.top_tokens.forEach((alternatives, i) => {
      expect(alternatives).toHaveLength(3);
      // each alternative is among transformers' four most likely, with its log-probability (ties at the edge may swap the third)
      for (const alt of alternatives) {
        const ref = report.reference_top[i].find((r) => r.id === alt.id);
        expect(ref, `position ${i}: token ${alt.id} is not among transformers' 4 most likely`).toBeDefined();
        expect(Math.abs(alt.logprob - ref!.logprob)).toBeLessThan(1e-3);
      }
      expect(alternatives[0].id).toBe(report.reference_top[i][0].id);
    });
  });

  it('streams: the client yields each token’s text, and with details the last event carries the text and how it ended', () => {
    const pieces = ok(report.stream_text, 'stream=True');
    expect(pieces).toHaveLength(12);
    expect(c.text.startsWith(pieces.join(''))).toBe(true);
    const events = ok(report.stream_details, 'stream=True, details=True');
    expect(events.map((e) => e.token.id)).toEqual(c.tokens.slice(0, 12));
    expect(events.map((e) => e.index)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(events.slice(0, -1).every((e) => e.generated_text === null && e.details === null)).toBe(true);
    expect(events.at(-1)).toMatchObject({ generated_text: c.prompt + pieces.join(''), details: { finish_reason: 'length', generated_tokens: 12, seed: null, input_length: c.promptIds.length } });
  });

  it('a stop sequence ends the text and stays in it; a regex grammar holds it', () => {
    const stop = ok(report.stop, 'stop');
    expect(stop.generated_text).toBe(c.prompt + c.text.slice(0, c.text.indexOf(STOP) + STOP.length));
    expect(stop.details.finish_reason).toBe('stop_sequence');
    const held = ok(report.regex, 'grammar regex');
    expect(held.generated_text.slice(c.prompt.length)).toMatch(new RegExp(`^(?:${REGEX})$`));
    expect(held.details.finish_reason).toBe('eos_token');
  });

  it('LangChain’s HuggingFaceEndpoint defaults (typical_p 0.95, top_p 0.95, temperature 0.8) are served, streamed and not', () => {
    expect(ok(report.langchain, 'LangChain’s default parameters').length).toBeGreaterThan(0);
    expect(ok(report.langchain_stream, 'LangChain’s default parameters, streamed').join('').length).toBeGreaterThan(0);
  });

  it('sampling with a seed is reproducible and the seed comes back', () => {
    const [a, b] = report.seeded.map((x, i) => ok(x, `seeded run ${i}`));
    expect(a).toEqual(b);
    expect(a.details).toMatchObject({ seed: 1234, finish_reason: 'length', generated_tokens: 16 });
  });

  it('bad requests raise the client’s ValidationError with TGI’s message; an unknown model and an unnamed one say what to do', () => {
    expect(raised(report.zero_temperature, 'temperature=0')).toEqual({ class: 'ValidationError', message: '`temperature` must be strictly positive', status: null });
    expect(raised(report.top_p_one, 'top_p=1.0')).toMatchObject({ class: 'ValidationError', message: '`top_p` must be > 0.0 and < 1.0' });
    expect(raised(report.too_long, 'max_new_tokens=100000')).toMatchObject({ class: 'ValidationError', message: expect.stringMatching(/maximum context length is 1024 tokens.*Reduce the prompt or max_new_tokens/) });
    expect(raised(report.stream_prefill, 'stream with decoder_input_details')).toMatchObject({ class: 'ValidationError', message: '`decoder_input_details` == true is not supported when streaming tokens' });
    expect(raised(report.unknown_model, 'an unknown model').message).toMatch(/`no-such-model` does not exist\. Models served here: mixtral, qwen/);
    expect(raised(report.which_model, 'no model named')).toMatchObject({ class: 'ValidationError', message: expect.stringMatching(/3 models are served here \(mixtral, qwen, chat\)/) });
  });

  it('chat_completion on the same kind of URL is the chat endpoint for that model (the client names the model "dummy")', async () => {
    const direct = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: CONVERSATION, max_tokens: 8, temperature: 0 });
    expect(direct.status, direct.text).toBe(200);
    expect(ok(report.chat, 'chat_completion')).toBe(direct.json.choices[0].message.content);
  });
});
