/**
 * Token log-probabilities. Truth: transformers' own logits for the same tokens
 * (scripts/hf_reference.py), whose log-softmax at each generated position (and, for a scored
 * prompt, at each prompt position) must equal what the decoder reports for the chosen token and
 * its most likely alternatives; then the server's two
 * OpenAI shapes of them (completions, streamed and not) must carry the same numbers, and greedy
 * identities hold (the chosen token is the most likely one).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { BatchDecoder, GenerationParamsError, weightProviderOf, type TokenLogprob } from '../../src/runtime/index.js';
import { describeWithTransformers, runHfJobs } from '../helpers/python.js';
import { postJson, startServer, TINY_DIR, type Running } from './helpers.js';

const NEW = 12;
const TOP = 5;
let engine: Engine;
let ckpt: Checkpoint;
let s: Running;
let prompt: number[];
let generated: Array<{ token: number; logprob: TokenLogprob }>;
/** a longer prompt, scored by the decoder in chunks of 5 tokens */
const LONG = 'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;';
let longIds: number[];
let promptScores: Array<TokenLogprob | null>;
let promptScoresInBlocks: Array<TokenLogprob | null>;

beforeAll(async () => {
  ({ engine } = await createEngine('auto', { threads: 1 }));
  ckpt = await openCheckpoint(TINY_DIR);
  s = await startServer();
  prompt = [...s.server.models.get('tiny')!.tokenizer.tokenizer.encode('ROMEO:\n').ids];
  const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1 });
  generated = [];
  for await (const e of decoder.submit(prompt, { temperature: 0, maxNewTokens: NEW, stopTokenIds: [], logprobs: TOP })) {
    if (e.type === 'token') generated.push({ token: e.token, logprob: e.logprob! });
  }
  await decoder.close();
  longIds = [...s.server.models.get('tiny')!.tokenizer.tokenizer.encode(LONG).ids];
  const chunked = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 2, maxPrefillTokens: 5 });
  for await (const e of chunked.submit(longIds, { temperature: 0, maxNewTokens: 1, promptLogprobs: 2 })) {
    if (e.type === 'token') promptScores = e.promptLogprobs!;
  }
  await chunked.close();
  // the whole prompt in one chunk, its rows through the head 3 at a time
  const blocks = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1, promptLogitsBytes: 3 * 4 * ckpt.config.vocabSize });
  for await (const e of blocks.submit(longIds, { temperature: 0, maxNewTokens: 1, promptLogprobs: 2 })) {
    if (e.type === 'token') promptScoresInBlocks = e.promptLogprobs!;
  }
  await blocks.close();
}, 120_000);

afterAll(async () => {
  await s?.close();
  await ckpt?.close();
  engine?.dispose();
});

it('the decoder refuses a logprobs count outside [0, 20]', () => {
  const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1 });
  expect(() => decoder.submit([1, 2], { logprobs: 21 })).toThrow(GenerationParamsError);
  expect(() => decoder.submit([1, 2], { logprobs: 1.5 })).toThrow(expect.objectContaining({ param: 'logprobs' }));
  void decoder.close();
});

describeWithTransformers('log-probabilities against transformers', () => {
  it('each generated token’s log-probability and its top alternatives are log-softmax of transformers’ logits', async () => {
    const ids = [...prompt, ...generated.slice(0, -1).map((g) => g.token)];
    const [hf] = (await runHfJobs([{ op: 'logits', model: TINY_DIR, ids: [ids], mask: [ids.map(() => 1)] }])).results;
    expect(hf.ok, hf.error).toBe(true);
    for (const [i, g] of generated.entries()) {
      const row = hf.logits![prompt.length - 1 + i];
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
      expect(g.logprob.token).toBe(g.token);
      expect(Math.abs(g.logprob.logprob - (row[g.token] - lse))).toBeLessThan(2e-3);
      // the alternatives: transformers' most likely tokens, with their log-probabilities
      const order = row.map((v, j) => [v, j] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      expect(g.logprob.top).toHaveLength(TOP);
      for (const [k, alt] of g.logprob.top.entries()) {
        const gapBelow = k + 1 < order.length ? order[k][0] - order[k + 1][0] : Infinity;
        const gapAbove = k > 0 ? order[k - 1][0] - order[k][0] : Infinity;
        // a near-tie may swap two places under f32 rounding; otherwise the same token
        if (Math.min(gapBelow, gapAbove) > 1e-3) expect(alt.token).toBe(order[k][1]);
        expect(Math.abs(alt.logprob - (row[alt.token] - lse))).toBeLessThan(2e-3);
      }
      // greedy: the chosen token is the most likely one
      expect(g.logprob.top[0].logprob).toBe(g.logprob.logprob);
    }
  }, 120_000);

  it('a prompt’s log-probabilities, scored chunk by chunk, are log-softmax of transformers’ logits at the position before each token', async () => {
    expect(longIds.length).toBeGreaterThan(12);
    expect(promptScores).toHaveLength(longIds.length);
    expect(promptScores[0]).toBeNull();
    const [hf] = (await runHfJobs([{ op: 'logits', model: TINY_DIR, ids: [longIds], mask: [longIds.map(() => 1)] }])).results;
    expect(hf.ok, hf.error).toBe(true);
    for (let p = 1; p < longIds.length; p++) {
      const row = hf.logits![p - 1];
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
      const got = promptScores[p]!;
      expect(got.token).toBe(longIds[p]);
      expect(Math.abs(got.logprob - (row[longIds[p]] - lse))).toBeLessThan(2e-3);
      expect(got.top).toHaveLength(2);
      expect(Math.abs(got.top[0].logprob - (max - lse))).toBeLessThan(2e-3);
      // the same scores when the head runs over blocks of 3 rows of one chunk
      expect(promptScoresInBlocks[p]!.token).toBe(longIds[p]);
      expect(Math.abs(promptScoresInBlocks[p]!.logprob - got.logprob)).toBeLessThan(1e-4);
    }
    expect(promptScoresInBlocks).toHaveLength(longIds.length);
  }, 120_000);
});

it('completions carry the same numbers in the legacy shape, streamed and not', async () => {
  const body = { model: 'tiny', prompt, max_tokens: NEW, temperature: 0, logprobs: 3, ignore_eos: true };
  const r = await postJson(`${s.url}/v1/completions`, body);
  expect(r.status).toBe(200);
  const lp = r.json.choices[0].logprobs as { tokens: string[]; token_logprobs: number[]; top_logprobs: Array<Record<string, number>>; text_offset: number[] };
  expect(lp.tokens.join('')).toBe(r.json.choices[0].text);
  // the server's engine settings differ from the library run above (threads, BF16 weights kept): f32 rounding apart
  expect(lp.token_logprobs).toHaveLength(NEW);
  for (const [i, g] of generated.entries()) expect(Math.abs(lp.token_logprobs[i] - g.logprob.logprob)).toBeLessThan(1e-4);
  let offset = 0;
  for (const [i, t] of lp.tokens.entries()) {
    expect(lp.text_offset[i]).toBe(offset);
    offset += t.length;
    // the chosen token is always among them, beside up to 3 alternatives
    expect(lp.top_logprobs[i][t]).toBe(lp.token_logprobs[i]);
    expect(Object.keys(lp.top_logprobs[i]).length).toBeLessThanOrEqual(4);
  }
  // streamed: the chunks' pieces join to the same lists
  const streamed = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  const joined = { tokens: [] as string[], token_logprobs: [] as number[], text_offset: [] as number[] };
  for (const line of (await streamed.text()).split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const piece = JSON.parse(line.slice(6)).choices[0]?.logprobs;
    if (!piece) continue;
    joined.tokens.push(...piece.tokens);
    joined.token_logprobs.push(...piece.token_logprobs);
    joined.text_offset.push(...piece.text_offset);
  }
  expect(joined).toEqual({ tokens: lp.tokens, token_logprobs: lp.token_logprobs, text_offset: lp.text_offset });
  // without logprobs there are none
  const plain = await postJson(`${s.url}/v1/completions`, { ...body, logprobs: undefined });
  expect(plain.json.choices[0].logprobs).toBeNull();
});

it('echo returns the prompt and its log-probabilities before the completion; max_tokens 0 scores the prompt alone', async () => {
  const url = `${s.url}/v1/completions`;
  const scored = await postJson(url, { model: 'tiny', prompt: LONG, max_tokens: 0, echo: true, logprobs: 1 });
  expect(scored.status).toBe(200);
  const c = scored.json.choices[0];
  expect(c.text).toBe(LONG);
  expect(scored.json.usage).toMatchObject({ prompt_tokens: longIds.length, completion_tokens: 0 });
  expect(c.logprobs.tokens).toHaveLength(longIds.length);
  expect(c.logprobs.tokens.join('')).toBe(LONG);
  expect(c.logprobs.token_logprobs[0]).toBeNull();
  expect(c.logprobs.top_logprobs[0]).toBeNull();
  for (let i = 1; i < longIds.length; i++) expect(Math.abs(c.logprobs.token_logprobs[i] - promptScores[i]!.logprob)).toBeLessThan(1e-4);
  // with a completion: the prompt's tokens, then the generated ones; streamed, the same lists
  const body = { model: 'tiny', prompt: LONG, max_tokens: 3, echo: true, logprobs: 0, temperature: 0 };
  const both = await postJson(url, body);
  const lp = both.json.choices[0].logprobs;
  expect(both.json.choices[0].text.startsWith(LONG)).toBe(true);
  expect(lp.tokens).toHaveLength(longIds.length + both.json.usage.completion_tokens);
  expect(lp.tokens.join('')).toBe(both.json.choices[0].text);
  const streamed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  let text = '';
  const tokens: string[] = [];
  const logprobs: Array<number | null> = [];
  for (const line of (await streamed.text()).split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const choice = JSON.parse(line.slice(6)).choices[0];
    text += choice.text;
    tokens.push(...choice.logprobs.tokens);
    logprobs.push(...choice.logprobs.token_logprobs);
  }
  expect(text).toBe(both.json.choices[0].text);
  expect(tokens).toEqual(lp.tokens);
  expect(logprobs).toEqual(lp.token_logprobs);
  // max_tokens 0 without echo has nothing to return
  const empty = await postJson(url, { model: 'tiny', prompt: 'x', max_tokens: 0 });
  expect(empty.status).toBe(400);
  expect(empty.json.error.message).toMatch(/0 only with echo/);
});

it('an empty prompt starts from BOS, counted and echoed as the token ids [BOS] would be', async () => {
  const url = `${s.url}/v1/completions`;
  const bos = s.server.models.get('tiny')!.bosTokenId!;
  expect(Number.isInteger(bos)).toBe(true);
  const body = { model: 'tiny', max_tokens: 3, echo: true, logprobs: 1, temperature: 0 };
  for (const stream of [false, true]) {
    const asText = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream, prompt: [''] }) });
    const asIds = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream, prompt: [bos] }) });
    expect(asText.status).toBe(200);
    const strip = (t: string) => t.replace(/"(id|created)":("[^"]*"|\d+)/g, '');
    expect(strip(await asText.text())).toBe(strip(await asIds.text()));
  }
  const r = await postJson(url, { ...body, prompt: '' });
  expect(r.json.usage.prompt_tokens).toBe(1);
  const lp = r.json.choices[0].logprobs;
  expect(lp.tokens.join('')).toBe(r.json.choices[0].text);
  expect(lp.token_logprobs[0]).toBeNull();
  expect(lp.text_offset[1]).toBe(lp.tokens[0].length);
});

it('a window scored through echo has the perplexity `rfid-moe eval` computes for it', async () => {
  const r = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: longIds, max_tokens: 0, echo: true, logprobs: 0 });
  const logprobs = (r.json.choices[0].logprobs.token_logprobs as Array<number | null>).slice(1) as number[];
  const served = Math.exp(-logprobs.reduce((a, b) => a + b, 0) / logprobs.length);
  const { evaluateWindows } = await import('../../src/eval/evaluate.js');
  const evaluated = await evaluateWindows(ckpt, engine, [Int32Array.from(longIds)]);
  expect(evaluated.model.tokens).toBe(logprobs.length);
  expect(Math.abs(served / evaluated.model.perplexity - 1)).toBeLessThan(1e-4);
});

it('the openai client reads them, and out-of-range counts are 400s naming the field', async () => {
  const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const c = await client.completions.create({ model: 'tiny', prompt, max_tokens: 4, temperature: 0, logprobs: 2 });
  const got = c.choices[0].logprobs?.token_logprobs ?? [];
  expect(got).toHaveLength(4);
  for (const [i, g] of generated.slice(0, 4).entries()) expect(Math.abs(got[i] - g.logprob.logprob)).toBeLessThan(1e-4);
  const tooMany = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'x', logprobs: 21 });
  expect(tooMany.status).toBe(400);
  expect(tooMany.json.error.param).toBe('logprobs');
  const orphan = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'hi' }], top_logprobs: 2 });
  expect(orphan.status).toBe(400);
  expect(orphan.json.error).toMatchObject({ param: 'top_logprobs', message: 'top_logprobs needs logprobs: true' });
});
