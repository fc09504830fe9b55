/**
 * Text Generation Inference's own API (POST /generate, /generate_stream, /, GET /info) over plain
 * HTTP: greedy tokens are transformers' (the golden file of PyTorch's greedy decode), the shapes are
 * TGI's (a list from /, an event per token with the text and details on the last one), TGI's
 * semantics hold where they differ from OpenAI's (greedy by default, a bare body samples, the stop
 * sequence kept in the text, the rest of the context without max_new_tokens), and bad requests are
 * TGI's 422 {error, error_type: "validation"}. test/serve/hf-text-generation.test.ts runs
 * Hugging Face's own client against the same routes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';
import { postJson, startServer, TINY_DIR, type Running } from './helpers.js';

const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'golden', 'generate', 'mixtral-tiny-shakespeare.json'), 'utf8')) as {
  cases: Array<{ prompt: string; promptIds: number[]; tokens: number[]; text: string }>;
};
const c = golden.cases[1];
const QWEN_DIR = path.join(repoRoot, 'examples', 'models', 'qwen3-moe-tiny-shakespeare');

/** The events of a server-sent stream, as parsed JSON. */
async function events(url: string, body: unknown): Promise<{ status: number; contentType: string | null; events: any[] }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  const found = text
    .split('\n\n')
    .filter((block) => block.startsWith('data:'))
    .map((block) => JSON.parse(block.slice('data:'.length)));
  return { status: r.status, contentType: r.headers.get('content-type'), events: found };
}

describe('Text Generation Inference API, one model served', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer({ models: [`tiny=${TINY_DIR}`] });
  }, 60_000);
  afterAll(async () => s?.close());

  it('POST /generate is greedy without sampling parameters: the tokens transformers gives, with details TGI’s shape', async () => {
    const r = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 20, details: true } });
    expect(r.status, r.text).toBe(200);
    const ids = r.json.details.tokens.map((t: { id: number }) => t.id);
    expect(ids).toEqual(c.tokens.slice(0, 20));
    expect(r.json.generated_text).toBe(r.json.details.tokens.map((t: { text: string }) => t.text).join(''));
    expect(c.text.startsWith(r.json.generated_text)).toBe(true);
    expect(r.json.details).toMatchObject({ finish_reason: 'length', generated_tokens: 20, seed: null, prefill: [] });
    expect(r.json.details.top_tokens).toBeUndefined();
    for (const t of r.json.details.tokens) {
      expect(t.special).toBe(false);
      expect(t.logprob).toBeLessThanOrEqual(0);
    }
  });

  it('POST / answers in a list with the prompt before the text (TGI’s default there); return_full_text false leaves it out', async () => {
    const full = await postJson(`${s.url}/`, { inputs: c.prompt, parameters: { max_new_tokens: 8 } });
    expect(full.status, full.text).toBe(200);
    const bare = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 8 } });
    expect(Array.isArray(full.json)).toBe(true);
    expect(full.json).toEqual([{ generated_text: c.prompt + bare.json.generated_text }]);
    const off = await postJson(`${s.url}/`, { inputs: c.prompt, parameters: { max_new_tokens: 8, return_full_text: false } });
    expect(off.json).toEqual([{ generated_text: bare.json.generated_text }]);
  });

  it('decoder_input_details gives the prompt’s tokens with log-probabilities (the first has none); top_n_tokens the alternatives, best first', async () => {
    const r = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 4, decoder_input_details: true, top_n_tokens: 3 } });
    expect(r.status, r.text).toBe(200);
    const { prefill, tokens, top_tokens: top } = r.json.details;
    expect(prefill.map((t: { id: number }) => t.id)).toEqual(c.promptIds);
    expect(prefill[0].logprob).toBeNull();
    for (const t of prefill.slice(1)) expect(t.logprob).toBeLessThan(0);
    expect(top).toHaveLength(4);
    top.forEach((alternatives: Array<{ id: number; logprob: number }>, i: number) => {
      expect(alternatives).toHaveLength(3);
      // greedy: the chosen token is the most likely one
      expect(alternatives[0]).toMatchObject({ id: tokens[i].id, logprob: tokens[i].logprob });
      expect(alternatives[1].logprob).toBeLessThanOrEqual(alternatives[0].logprob);
      expect(alternatives[2].logprob).toBeLessThanOrEqual(alternatives[1].logprob);
    });
  });

  it('POST /generate_stream: an event per token, the last with the whole text and the details', async () => {
    const r = await events(`${s.url}/generate_stream`, { inputs: c.prompt, parameters: { max_new_tokens: 12, details: true } });
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^text\/event-stream/);
    expect(r.events.map((e) => e.index)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(r.events.map((e) => e.token.id)).toEqual(c.tokens.slice(0, 12));
    const text = r.events.map((e) => e.token.text).join('');
    expect(c.text.startsWith(text)).toBe(true);
    for (const e of r.events.slice(0, -1)) expect(e).toMatchObject({ generated_text: null, details: null });
    expect(r.events.at(-1)).toMatchObject({ generated_text: text, details: { finish_reason: 'length', generated_tokens: 12, seed: null, input_length: c.promptIds.length } });
    // POST / with stream: the same events, the prompt before the last one's text
    const compat = await events(`${s.url}/`, { inputs: c.prompt, stream: true, parameters: { max_new_tokens: 12 } });
    expect(compat.events.map((e) => e.token.id)).toEqual(c.tokens.slice(0, 12));
    expect(compat.events.at(-1)).toMatchObject({ generated_text: c.prompt + text, details: null });
  });

  it('a stop sequence ends the text and stays in it (finish_reason stop_sequence)', async () => {
    const stop = ' sir';
    const upTo = c.text.slice(0, c.text.indexOf(stop) + stop.length);
    const r = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 40, stop: [stop], details: true } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.generated_text).toBe(upTo);
    expect(r.json.details.finish_reason).toBe('stop_sequence');
  });

  it('a grammar holds the text (regex), and ends as TGI’s does, at the end of sequence', async () => {
    const pattern = '(ROMEO|JULIET): [a-z ]{1,20}\\.';
    const r = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 40, grammar: { type: 'regex', value: pattern }, details: true } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.generated_text).toMatch(new RegExp(`^(?:${pattern})$`));
    expect(r.json.details.finish_reason).toBe('eos_token');
  });

  it('samples with do_sample or a warper, reproducibly with a seed (given back in details); a bare body samples (TGI’s default parameters)', async () => {
    const body = { inputs: c.prompt, parameters: { max_new_tokens: 16, do_sample: true, seed: 77, details: true } };
    const [a, b] = [await postJson(`${s.url}/generate`, body), await postJson(`${s.url}/generate`, body)];
    expect(a.status, a.text).toBe(200);
    expect(a.json).toEqual(b.json);
    expect(a.json.details.seed).toBe(77);
    const texts = new Set<string>();
    for (let seed = 1; seed <= 4; seed++) {
      texts.add((await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 16, temperature: 1.5, seed } })).json.generated_text);
    }
    expect(texts.size).toBeGreaterThan(1);
    // temperature 1 is no warper: greedy still
    const one = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 12, temperature: 1, details: true } });
    expect(one.json.details.tokens.map((t: { id: number }) => t.id)).toEqual(c.tokens.slice(0, 12));
    const bare = await postJson(`${s.url}/generate`, { inputs: 'ROMEO:' });
    expect(bare.status, bare.text).toBe(200);
  });

  it('typical_p is followed: with a mass so small that one token is left at each step, every seed writes the same text', async () => {
    const texts = new Set<string>();
    for (const seed of [1, 2, 3]) {
      const r = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 12, do_sample: true, typical_p: 1e-6, seed } });
      expect(r.status, r.text).toBe(200);
      texts.add(r.json.generated_text);
    }
    expect(texts.size).toBe(1);
    // LangChain's HuggingFaceEndpoint sends these by default (typical_p 0.95 among them)
    const langchain = { max_new_tokens: 16, top_p: 0.95, typical_p: 0.95, temperature: 0.8, return_full_text: false, stop: [], do_sample: false, watermark: false };
    const r = await postJson(`${s.url}/`, { inputs: c.prompt, parameters: langchain });
    expect(r.status, r.text).toBe(200);
    expect(r.json[0].generated_text.length).toBeGreaterThan(0);
  });

  it('without max_new_tokens a request may fill the rest of the context, as TGI’s router allows', async () => {
    const r = await postJson(`${s.url}/generate`, { inputs: c.prompt, parameters: { details: true, stop: ['\n\n'] } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.details.generated_tokens).toBeGreaterThan(16);
  });

  it('bad requests are 422 {error, error_type: "validation"} in TGI’s words, before any decoding', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ inputs: 'x', parameters: { temperature: 0 } }, /^`temperature` must be strictly positive$/],
      [{ inputs: 'x', parameters: { top_p: 1.0 } }, /^`top_p` must be > 0.0 and < 1.0$/],
      [{ inputs: 'x', parameters: { top_k: 0 } }, /^`top_k` must be strictly positive$/],
      [{ inputs: 'x', parameters: { max_new_tokens: 0 } }, /^`max_new_tokens` must be strictly positive$/],
      [{ inputs: '', parameters: {} }, /^`inputs` cannot be empty$/],
      [{ inputs: 'x', parameters: { best_of: 2, do_sample: true } }, /`best_of` != 1 is not supported/],
      [{ inputs: 'x', parameters: { typical_p: 1.0 } }, /^`typical_p` must be > 0.0 and < 1.0$/],
      [{ inputs: 'x', parameters: { watermark: true } }, /`watermark` is not supported/],
      [{ inputs: 'x', parameters: { max_new_token: 5 } }, /^unknown parameter `parameters.max_new_token`; this server reads TGI.s generate parameters/],
      [{ inputs: 'x', parameters: { max_new_tokens: 'five' } }, /^`parameters\.max_new_tokens`: /],
      [{ inputs: 7 }, /inputs must be a string/],
      [[1, 2], /must be a JSON object/],
      [{ inputs: 'x', parameters: { max_new_tokens: 5000 } }, /maximum context length is 1024 tokens.*max_new_tokens/],
      [{ inputs: 'x', parameters: { grammar: { type: 'regex', value: '(?<=a)b' } } }, /lookbehind/i],
      [{ inputs: 'x', parameters: { stop: Array(17).fill('a') } }, /`stop` supports up to 16 stop sequences\. Given: 17/],
    ];
    for (const [body, message] of cases) {
      const r = await postJson(`${s.url}/generate`, body);
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(422);
      expect(r.json.error_type).toBe('validation');
      expect(r.json.error).toMatch(message);
    }
    const streamed = await postJson(`${s.url}/generate_stream`, { inputs: 'x', parameters: { decoder_input_details: true } });
    expect(streamed.status).toBe(422);
    expect(streamed.json.error).toBe('`decoder_input_details` == true is not supported when streaming tokens');
    const broken = await fetch(`${s.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs": "x",' });
    expect(broken.status).toBeGreaterThanOrEqual(400);
    expect(broken.status).toBeLessThan(500);
  });

  it('a client that leaves a stream stops its generation: nothing stays in flight', async () => {
    const generatedSoFar = async () => Number(/rfid_moe_generated_tokens_total\{model="tiny"\} (\d+)/.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1] ?? 0);
    const before = await generatedSoFar();
    const leave = new AbortController();
    const r = await fetch(`${s.url}/generate_stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: c.prompt, parameters: { max_new_tokens: 900 } }), signal: leave.signal });
    const reader = r.body!.getReader();
    await reader.read();
    leave.abort();
    let health: any;
    for (let i = 0; i < 100; i++) {
      health = await (await fetch(`${s.url}/health`)).json();
      if (health.models[0].in_flight === 0 && health.models[0].active_sequences === 0) break;
      await new Promise((done) => setTimeout(done, 50));
    }
    expect(health.models[0]).toMatchObject({ in_flight: 0, active_sequences: 0, kv_reserved_bytes: 0 });
    // 900 had it run to the end
    expect((await generatedSoFar()) - before).toBeLessThan(900);
  });

  it('GET /info gives the model and its limits', async () => {
    const r = await fetch(`${s.url}/info`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ model_id: 'tiny', model_pipeline_tag: 'text-generation', max_input_tokens: 1023, max_total_tokens: 1024, max_best_of: 1, router: 'rfid-moe' });
  });
});

describe('Text Generation Inference API, several models served', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer({ models: [`mixtral=${TINY_DIR}`, `qwen=${QWEN_DIR}`] });
  }, 60_000);
  afterAll(async () => s?.close());

  it('the path (/tgi/{model}/…) or the body’s model names the model; naming none is a 422 that lists them; an unknown one a 404', async () => {
    const byPath = await postJson(`${s.url}/tgi/mixtral/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 8, details: true } });
    expect(byPath.status, byPath.text).toBe(200);
    expect(byPath.json.details.tokens.map((t: { id: number }) => t.id)).toEqual(c.tokens.slice(0, 8));
    const compat = await postJson(`${s.url}/tgi/mixtral`, { inputs: c.prompt, parameters: { max_new_tokens: 8 } });
    expect(compat.json).toEqual([{ generated_text: c.prompt + byPath.json.generated_text }]);
    const byBody = await postJson(`${s.url}/generate`, { model: 'mixtral', inputs: c.prompt, parameters: { max_new_tokens: 8 } });
    expect(byBody.json.generated_text).toBe(byPath.json.generated_text);
    const qwen = await postJson(`${s.url}/tgi/qwen/generate`, { inputs: c.prompt, parameters: { max_new_tokens: 8 } });
    expect(qwen.status, qwen.text).toBe(200);

    const none = await postJson(`${s.url}/generate`, { inputs: c.prompt });
    expect(none.status).toBe(422);
    expect(none.json).toMatchObject({ error_type: 'validation', error: expect.stringMatching(/2 models are served here \(mixtral, qwen\): post to \/tgi\/\{model\}\/generate/) });
    const unknown = await postJson(`${s.url}/tgi/nope/generate`, { inputs: c.prompt });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatch(/`nope` does not exist\. Models served here: mixtral, qwen/);
    expect((await fetch(`${s.url}/info`)).status).toBe(422);
    expect(await (await fetch(`${s.url}/tgi/qwen/info`)).json()).toMatchObject({ model_id: 'qwen' });
  });

  it('the OpenAI endpoints under a model’s TGI URL serve that model, whatever the body names (InferenceClient sends "dummy")', async () => {
    const body = { model: 'dummy', prompt: c.prompt, max_tokens: 8, temperature: 0 };
    const under = await postJson(`${s.url}/tgi/mixtral/v1/completions`, body);
    expect(under.status, under.text).toBe(200);
    expect(under.json.model).toBe('mixtral');
    const direct = await postJson(`${s.url}/v1/completions`, { ...body, model: 'mixtral' });
    expect(under.json.choices[0].text).toBe(direct.json.choices[0].text);
    // mixtral has no chat template: the chat endpoint says so, for that model
    const chat = await postJson(`${s.url}/tgi/mixtral/v1/chat/completions`, { model: 'dummy', messages: [{ role: 'user', content: 'hi' }] });
    expect(chat.status).toBe(400);
    expect(chat.json.error.message).toMatch(/mixtral/);
    expect((await postJson(`${s.url}/tgi/nope/v1/completions`, body)).status).toBe(404);
  });

  it('the requests metric counts them under TGI’s endpoints', async () => {
    await postJson(`${s.url}/tgi/mixtral/generate`, { inputs: 'ROMEO:', parameters: { max_new_tokens: 2 } });
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/rfid_moe_requests_total\{[^}]*model="mixtral"[^}]*endpoint="tgi_generate"[^}]*status="200"[^}]*\} [1-9]/);
  });
});

describe('Text Generation Inference API behind an API key', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer({ models: [`tiny=${TINY_DIR}`], apiKey: 'sesame' });
  }, 60_000);
  afterAll(async () => s?.close());

  it('refuses requests without the key on every TGI route, and serves them with it', async () => {
    for (const route of ['/', '/generate', '/generate_stream', '/tgi/tiny/generate']) {
      const r = await postJson(`${s.url}${route}`, { inputs: 'x', parameters: { max_new_tokens: 1 } });
      expect(r.status, route).toBe(401);
    }
    expect((await fetch(`${s.url}/info`)).status).toBe(401);
    const ok = await fetch(`${s.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sesame' }, body: JSON.stringify({ inputs: 'x', parameters: { max_new_tokens: 1 } }) });
    expect(ok.status).toBe(200);
  });
});
