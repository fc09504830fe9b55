/**
 * The official `openai` npm client against the server: non-streamed and streamed completions
 * (greedy text equal to transformers' greedy decode, from the committed generation goldens),
 * concurrent requests decoded together by one continuous-batching decoder, and errors surfacing
 * as the client's typed exceptions.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { BatchDecoder, textCodec, weightProviderOf, type GenerationParams } from '../../src/runtime/index.js';
import { postJson, startServer, TINY_DIR, type Running } from './helpers.js';
import { cliArgs } from '../helpers/cli.js';

interface GoldenCase {
  prompt: string;
  tokens: number[];
  text: string;
}
const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test/golden/generate/mixtral-tiny-shakespeare.json'), 'utf8')) as { newTokens: number; cases: GoldenCase[] };
const N = 24; // tokens compared per case (a prefix of the golden's 64 keeps the test quick)

let s: Running;
let client: OpenAI;
/** golden text of the first N tokens, decoded with the model's own tokenizer */
let want: string[];
beforeAll(async () => {
  s = await startServer();
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const tok = s.server.models.get('tiny')!.tokenizer.tokenizer;
  want = golden.cases.map((c) => tok.decode(c.tokens.slice(0, N), { skip_special_tokens: true }));
  // the full decode equals the golden's text (its tokenizer is the same)
  expect(tok.decode(golden.cases[0].tokens, { skip_special_tokens: true })).toBe(golden.cases[0].text);
});
afterAll(async () => {
  await s?.close();
});

describe('openai client', () => {
  it('lists the models, and retrieves one by id', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['tiny']);
    const one = await client.models.retrieve('tiny');
    expect(one).toMatchObject({ id: 'tiny', object: 'model', owned_by: 'rfid-moe' });
    expect(one).toEqual(list.data[0]);
    const missing = await client.models.retrieve('nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect((missing as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('non-streamed greedy completion equals transformers', async () => {
    const c = golden.cases[0];
    const r = await client.completions.create({ model: 'tiny', prompt: c.prompt, max_tokens: N, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0].text).toBe(want[0]);
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage).toMatchObject({ completion_tokens: N, total_tokens: N + r.usage!.prompt_tokens });
  });

  it('streamed greedy completion: the deltas join to the same text, then usage', async () => {
    const c = golden.cases[1];
    const stream = await client.completions.create({ model: 'tiny', prompt: c.prompt, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.choices[0]) {
        text += chunk.choices[0].text;
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(want[1]);
    expect(chunks).toBeGreaterThan(N / 2); // tokens arrive one by one, not in one piece
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(N);
  });

  it('concurrent requests are decoded together and each still equals transformers', async () => {
    const decoder = s.server.residency.handleIfResident('tiny')!.decoder;
    const stepsBefore = decoder.stats.steps;
    const results = await Promise.all(golden.cases.map((c) => client.completions.create({ model: 'tiny', prompt: c.prompt, max_tokens: N, temperature: 0 })));
    results.forEach((r, i) => expect(r.choices[0].text).toBe(want[i]));
    // one after the other would take ≥ 5·N forward passes; together about N (+ prefill)
    const steps = decoder.stats.steps - stepsBefore;
    expect(steps).toBeLessThan(2 * N);
    expect(steps).toBeGreaterThanOrEqual(N);
  });

  it('a seeded sampled completion is reproducible', async () => {
    const ask = () => client.completions.create({ model: 'tiny', prompt: 'ROMEO:', max_tokens: 12, temperature: 0.8, top_p: 0.9, seed: 1234 });
    const [a, b] = await Promise.all([ask(), ask()]);
    expect(a.choices[0].text).toBe(b.choices[0].text);
  });

  it('penalties and logit_bias: each of several concurrent requests gets the library decoder’s tokens for its own settings', async () => {
    const tok = s.server.models.get('tiny')!.tokenizer.tokenizer;
    const prompt = golden.cases[2].prompt;
    const ids = [...tok.encode(prompt).ids];
    const banned = golden.cases[2].tokens[1];
    const settings: Array<{ body: Record<string, unknown>; params: GenerationParams }> = [
      { body: {}, params: {} },
      { body: { frequency_penalty: 1.2, presence_penalty: 0.5 }, params: { frequencyPenalty: 1.2, presencePenalty: 0.5 } },
      { body: { repetition_penalty: 1.4 }, params: { repetitionPenalty: 1.4 } },
      { body: { logit_bias: { [String(banned)]: -100 } }, params: { logitBias: new Map([[banned, -100]]) } },
    ];
    // the library's decoder, one request at a time (its tokens are checked against transformers in test/runtime/logits-processors.test.ts)
    const ckpt = await openCheckpoint(TINY_DIR);
    const decoder = new BatchDecoder(weightProviderOf(ckpt), s.engine, { maxBatchSize: 1, tokenizer: textCodec(s.server.models.get('tiny')!.tokenizer) });
    const want: string[] = [];
    try {
      for (const { params } of settings) want.push((await decoder.submit(ids, { temperature: 0, maxNewTokens: 32, ...params }).result).text);
    } finally {
      await decoder.close();
      await ckpt.close();
    }
    expect(new Set(want).size).toBe(settings.length); // every setting changes the text
    // the server, all four at once (one continuous batch, per-request state)
    const got = await Promise.all(settings.map(({ body }) => client.completions.create({ model: 'tiny', prompt, max_tokens: 32, temperature: 0, ...body } as OpenAI.CompletionCreateParamsNonStreaming)));
    expect(got.map((r) => r.choices[0].text)).toEqual(want);
  });

  it('a batch of prompts: n choices each, indexed prompt by prompt, each equal to the prompt sent alone; streamed too', async () => {
    const prompts = golden.cases.slice(0, 3).map((c) => c.prompt);
    const r = await client.completions.create({ model: 'tiny', prompt: prompts, max_tokens: N, temperature: 0, n: 2 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.choices.map((c) => c.text)).toEqual([want[0], want[0], want[1], want[1], want[2], want[2]]);
    const tok = s.server.models.get('tiny')!.tokenizer.tokenizer;
    const promptTokens = prompts.reduce((a, p) => a + tok.encode(p).ids.length, 0);
    expect(r.usage).toMatchObject({ prompt_tokens: promptTokens, completion_tokens: 6 * N });
    // seeded sampling: each prompt's choice i is what that prompt alone gives with the same seed
    const sampled = await client.completions.create({ model: 'tiny', prompt: prompts.slice(0, 2), max_tokens: 8, temperature: 0.9, seed: 77, n: 2 });
    const alone = await client.completions.create({ model: 'tiny', prompt: prompts[1], max_tokens: 8, temperature: 0.9, seed: 77, n: 2 });
    expect(sampled.choices.slice(2).map((c) => c.text)).toEqual(alone.choices.map((c) => c.text));
    // streamed, with echo: each index gets its own prompt back, then its completion
    const stream = await client.completions.create({ model: 'tiny', prompt: prompts, max_tokens: N, temperature: 0, stream: true, echo: true });
    const texts = ['', '', ''];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts).toEqual(prompts.map((p, i) => p + want[i]));
  });

  it('log-likelihood scoring of a batch of endings after one context (echo, max_tokens 0): each as when scored alone (to float32 rounding), the context computed once', async () => {
    const context = 'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;\n';
    const prompts = [' Or, if thou wilt not, be but sworn my love,', ' And I will love thee well.', ' ROMEO:\nShall I hear more?'].map((e) => context + e);
    const decoder = s.server.residency.handleIfResident('tiny')?.decoder;
    const sharedBefore = decoder?.stats.sharedPrefixTokens ?? 0;
    const batch = await client.completions.create({ model: 'tiny', prompt: prompts, max_tokens: 0, echo: true, logprobs: 0 });
    const sharedAfter = s.server.residency.handleIfResident('tiny')!.decoder.stats.sharedPrefixTokens;
    for (const [i, prompt] of prompts.entries()) {
      const alone = await client.completions.create({ model: 'tiny', prompt, max_tokens: 0, echo: true, logprobs: 0 });
      expect(batch.choices[i].text).toBe(prompt);
      expect(batch.choices[i].logprobs!.tokens).toEqual(alone.choices[0].logprobs!.tokens);
      // copied positions were computed in another prompt's prefill, a product of another shape:
      // the same values up to float32 summation order (OpenBLAS blocks by the number of rows)
      const [got, want] = [batch.choices[i].logprobs!.token_logprobs!, alone.choices[0].logprobs!.token_logprobs!];
      expect(got.length).toBe(want.length);
      expect(got[0]).toBeNull();
      got.slice(1).forEach((v, j) => expect(Math.abs((v as number) - (want[j + 1] as number))).toBeLessThan(1e-4));
    }
    // the endings after the first copied the context's positions instead of computing them
    const contextTokens = s.server.models.get('tiny')!.tokenizer.tokenizer.encode(context).ids.length;
    expect(sharedAfter - sharedBefore).toBeGreaterThanOrEqual(2 * (contextTokens - 2));
    // /health reports it per model
    const health = (await (await fetch(`${s.url}/health`)).json()) as { models: Array<{ id: string; shared_prefix_tokens: number; prefill_tokens: number }> };
    const tiny = health.models.find((m) => m.id === 'tiny')!;
    expect(tiny.shared_prefix_tokens).toBe(sharedAfter);
    expect(tiny.prefill_tokens).toBeGreaterThan(0);
  });

  it('cache_salt (vLLM’s): concurrent requests with one prompt share its beginning only when their salts agree', async () => {
    const prompt = 'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;\nOr, if thou wilt not,';
    const shared = () => s.server.residency.handleIfResident('tiny')?.decoder.stats.sharedPrefixTokens ?? 0;
    const twice = async (salts: Array<string | undefined>) => {
      const before = shared();
      const answers = await Promise.all(salts.map((cache_salt) => postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: 32, temperature: 0, ...(cache_salt ? { cache_salt } : {}) })));
      for (const a of answers) expect(a.status, a.text).toBe(200);
      expect(answers[1].json.choices[0].text).toBe(answers[0].json.choices[0].text);
      return shared() - before;
    };
    expect(await twice(['tenant-a', 'tenant-b'])).toBe(0);
    expect(await twice(['tenant-a', undefined])).toBe(0);
    expect(await twice(['tenant-a', 'tenant-a'])).toBeGreaterThan(0);
    expect(await twice([undefined, undefined])).toBeGreaterThan(0);
  });

  it('stop strings end the completion before the match', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: golden.cases[0].prompt, max_tokens: 64, temperature: 0, stop: ['king'] });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(golden.cases[0].text.startsWith(r.choices[0].text)).toBe(true);
    expect(r.choices[0].text).not.toContain('king');
    expect(golden.cases[0].text.slice(r.choices[0].text.length)).toMatch(/^king/);
  });

  it('n choices: decoded together, each its own sequence; a seed makes every choice reproducible', async () => {
    const c = golden.cases[0];
    // greedy: every choice is transformers' greedy completion
    const greedy = await client.completions.create({ model: 'tiny', prompt: c.prompt, max_tokens: N, temperature: 0, n: 3 });
    expect(greedy.choices.map((x) => x.index)).toEqual([0, 1, 2]);
    for (const x of greedy.choices) expect(x.text).toBe(want[0]);
    expect(greedy.usage).toMatchObject({ completion_tokens: 3 * N });
    // sampled: choice i of seed s is the single completion of seed s + i
    const params = { model: 'tiny', prompt: c.prompt, max_tokens: N, temperature: 1.2 };
    const three = await client.completions.create({ ...params, n: 3, seed: 40 });
    const singles = await Promise.all([40, 41, 42].map((seed) => client.completions.create({ ...params, seed })));
    expect(three.choices.map((x) => x.text)).toEqual(singles.map((x) => x.choices[0].text));
    expect(new Set(three.choices.map((x) => x.text)).size).toBeGreaterThan(1);
    expect(three.usage!.prompt_tokens).toBe(singles[0].usage!.prompt_tokens);
    // streamed: the chunks of each index join to that choice, each ends with its finish reason
    const stream = await client.completions.create({ ...params, n: 3, seed: 40, stream: true, stream_options: { include_usage: true } });
    const texts = ['', '', ''];
    const finished: Array<string | null> = [null, null, null];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const x of chunk.choices) {
        texts[x.index] += x.text;
        if (x.finish_reason) finished[x.index] = x.finish_reason;
      }
      usage = chunk.usage ?? usage;
    }
    expect(texts).toEqual(three.choices.map((x) => x.text));
    expect(finished).toEqual(three.choices.map((x) => x.finish_reason));
    expect(usage?.completion_tokens).toBe(three.usage!.completion_tokens);
  });

  it('errors arrive as the client’s typed exceptions', async () => {
    const notFound = await client.completions.create({ model: 'nope', prompt: 'x' }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect((notFound as InstanceType<typeof OpenAI.NotFoundError>).status).toBe(404);
    expect((notFound as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');

    const badTemp = await client.completions.create({ model: 'tiny', prompt: 'x', temperature: -1 }).catch((e: unknown) => e);
    expect(badTemp).toBeInstanceOf(OpenAI.BadRequestError);
    expect((badTemp as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('temperature');

    const chat = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(chat).toBeInstanceOf(OpenAI.BadRequestError);
    expect((chat as Error).message).toMatch(/no chat template/);

    const streamed = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 5000, stream: true }).catch((e: unknown) => e);
    expect(streamed).toBeInstanceOf(OpenAI.BadRequestError);
    expect((streamed as Error).message).toMatch(/maximum context length/);
  });
});

describe('an API key (--api-key)', () => {
  it('the client’s apiKey is accepted, a wrong or missing one is its AuthenticationError; /health and /metrics stay open, /tokenize does not', async () => {
    const locked = await startServer({ apiKey: 'sk-test-123' });
    try {
      const right = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: 'sk-test-123', maxRetries: 0 });
      const r = await right.completions.create({ model: 'tiny', prompt: golden.cases[0].prompt, max_tokens: N, temperature: 0 });
      expect(r.choices[0].text).toBe(want[0]);
      expect((await right.models.list()).data.map((m) => m.id)).toEqual(['tiny']);

      const wrong = new OpenAI({ baseURL: `${locked.url}/v1`, apiKey: 'sk-test-124', maxRetries: 0 });
      const refused = await wrong.completions.create({ model: 'tiny', prompt: 'x' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
      expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
      const listing = await wrong.models.list().catch((e: unknown) => e);
      expect(listing).toBeInstanceOf(OpenAI.AuthenticationError);

      // no header at all: a 401 in the OpenAI error shape, before the body is read
      const bare = await fetch(`${locked.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
      expect(bare.status).toBe(401);
      expect(((await bare.json()) as { error: { code: string } }).error.code).toBe('missing_api_key');
      expect((await fetch(`${locked.url}/health`)).status).toBe(200);
      expect((await fetch(`${locked.url}/metrics`)).status).toBe(200);
      // vLLM's tokenizer endpoints read the models' tokenizers: closed too
      const tokenize = (auth?: string) => fetch(`${locked.url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify({ prompt: 'x' }) });
      expect((await tokenize()).status).toBe(401);
      expect((await tokenize('Bearer sk-test-123')).status).toBe(200);
      expect((await fetch(`${locked.url}/detokenize?x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
      expect((await fetch(`${locked.url}/tokenizer_info`)).status).toBe(401);
      expect((await fetch(`${locked.url}/tokenizer_info`, { headers: { authorization: 'Bearer sk-test-123' } })).status).toBe(200);
    } finally {
      await locked.close();
    }
  });

  it('the CLI takes it from RFID_MOE_API_KEY (kept out of the process list) and refuses an empty one', async () => {
    const { spawnServeCli, TINY_DIR } = await import('./helpers.js');
    const cli = await spawnServeCli([TINY_DIR, '--port', '0', '--quiet'], { ...process.env, RFID_MOE_API_KEY: 'sk-env-7' });
    try {
      const body = JSON.stringify({ model: 'mixtral-tiny-shakespeare', prompt: 'x', max_tokens: 1 });
      const post = (headers: Record<string, string>) => fetch(`${cli.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      expect((await post({})).status).toBe(401);
      expect((await post({ authorization: 'Bearer sk-env-7' })).status).toBe(200);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const empty = await promisify(execFile)(process.execPath, [...cliArgs, 'serve', TINY_DIR, '--api-key', ' '], { cwd: repoRoot }).catch((e: { code: number; stderr: string }) => e);
    expect((empty as { code: number }).code).toBe(2);
    expect((empty as { stderr: string }).stderr).toMatch(/--api-key must not be empty/);
  }, 90_000);
});

describe('examples/openai-client.ts', () => {
  it('runs against a server on the shipped model, as the README shows', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { TINY_DIR } = await import('./helpers.js');
    const served = await startServer({ models: [TINY_DIR] });
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/openai-client.ts'], {
        cwd: repoRoot,
        env: { ...process.env, RFID_MOE_URL: `${served.url}/v1` },
        timeout: 60_000,
      });
      expect(stdout).toContain(golden.cases[0].text.slice(0, 20));
      expect(stdout).toMatch(/completion_tokens: 32/);
      expect(stdout).toMatch(/404: .*`no-such-model` does not exist/);
    } finally {
      await served.close();
    }
  });
});
