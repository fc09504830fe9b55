/**
 * A served model follows its generation_config.json: requests end at every id of its
 * eos_token_id list, and fields a request leaves out (temperature, top_p, top_k,
 * repetition_penalty) take its values,
 * as vLLM applies them; fields a request sets win. `rfid-moe generate` does the same with its flags.
 * Truth: identities of the sampler (top_k 1 samples the greedy tokens whatever the seed) and the
 * greedy continuation of the same checkpoint without the file.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createEngine } from '../../src/engine/index.js';
import { BatchDecoder, weightProviderOf, type GenerationStream } from '../../src/runtime/index.js';
import { repoRoot } from '../helpers/shared-data.js';
import { postJson, startServer, TINY_DIR, type Running } from './helpers.js';
import { cliArgs } from '../helpers/cli.js';

const PROMPT = 'ROMEO:\n';
const NEW = 24;
let work: string;
let s: Running;
let greedyText: string;
/** the greedy continuation's token ids (no EOS stop) */
let greedyIds: number[];
/** index in greedyIds of the token made a second EOS id */
let at: number;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rfid-gen-defaults-'));
  const copy = (name: string, generationConfig: Record<string, unknown> | null) => {
    const dir = path.join(work, name);
    cpSync(TINY_DIR, dir, { recursive: true });
    if (generationConfig) writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify(generationConfig));
    return dir;
  };
  const plain = copy('plain', null);
  // the greedy continuation of the prompt, past any EOS
  const ckpt = await openCheckpoint(plain);
  const { engine } = await createEngine('auto', { threads: 1 });
  const first = await startServer({ models: [`plain=${plain}`] });
  const r = await postJson(`${first.url}/v1/completions`, { model: 'plain', prompt: PROMPT, max_tokens: NEW, temperature: 0 });
  await first.close();
  expect(r.json.choices[0].finish_reason).toBe('length');
  greedyText = r.json.choices[0].text as string;
  const promptIds = Int32Array.from(first.server.models.get('plain')!.tokenizer.tokenizer.encode(PROMPT).ids);
  const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1 });
  greedyIds = [];
  const drain = async (st: GenerationStream) => {
    for await (const e of st) if (e.type === 'token') greedyIds.push(e.token);
  };
  await drain(decoder.submit(promptIds, { temperature: 0, maxNewTokens: NEW, stopTokenIds: [] }));
  await decoder.close();
  await ckpt.close();
  engine.dispose();
  at = greedyIds.findIndex((t, i) => i >= 6 && greedyIds.indexOf(t) === i);
  expect(at).toBeGreaterThanOrEqual(6);
  const eos = ckpt.config.eosTokenIds[0];
  expect(greedyIds).not.toContain(eos);

  s = await startServer({
    models: [
      `plain=${plain}`,
      `eos-list=${copy('eos-list', { eos_token_id: [eos, greedyIds[at]] })}`,
      `top-k-1=${copy('top-k-1', { temperature: 1.3, top_k: 1 })}`,
      `repetition=${copy('repetition', { repetition_penalty: 1.4 })}`,
    ],
  });
}, 120_000);

afterAll(async () => {
  await s?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const complete = (body: Record<string, unknown>) => postJson(`${s.url}/v1/completions`, { prompt: PROMPT, max_tokens: NEW, ...body });

describe('generation_config.json in the server', () => {
  it('a request ends at the second id of its eos_token_id list', async () => {
    const r = await complete({ model: 'eos-list', temperature: 0 });
    expect(r.json.choices[0].finish_reason).toBe('stop');
    expect(r.json.usage.completion_tokens).toBe(at + 1);
    expect(greedyText.startsWith(r.json.choices[0].text)).toBe(true);
    // without the file, the same request runs to max_tokens
    const plain = await complete({ model: 'plain', temperature: 0 });
    expect(plain.json.usage.completion_tokens).toBe(NEW);
  });

  it('vLLM’s ignore_eos generates past those ids; its stop_token_ids stop at more', async () => {
    const past = await complete({ model: 'eos-list', temperature: 0, ignore_eos: true });
    expect(past.json.choices[0].finish_reason).toBe('length');
    expect(past.json.usage.completion_tokens).toBe(NEW);
    expect(past.json.choices[0].text).toBe(greedyText);
    const extra = await complete({ model: 'plain', temperature: 0, stop_token_ids: [greedyIds[at]] });
    expect(extra.json.choices[0].finish_reason).toBe('stop');
    expect(extra.json.usage.completion_tokens).toBe(at + 1);
    const outside = await complete({ model: 'plain', stop_token_ids: [1e9] });
    expect(outside.status).toBe(400);
    expect(outside.json.error).toMatchObject({ param: 'stop_token_ids', message: expect.stringMatching(/1000000000 is outside the vocabulary/) });
    // min_tokens keeps the stop ids out until that many tokens are generated
    const held = await complete({ model: 'eos-list', temperature: 0, min_tokens: at + 3 });
    expect(held.json.usage.completion_tokens).toBeGreaterThanOrEqual(at + 3);
    const tooMany = await complete({ model: 'plain', min_tokens: NEW + 1 });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error).toMatchObject({ param: 'min_tokens', message: expect.stringMatching(/must not exceed max_tokens/) });
  });

  it('fields a request leaves out take its temperature, top_p and top_k; fields it sets win', async () => {
    // top_k 1 from the file: the greedy tokens whatever the seed and the file's temperature
    for (const seed of [1, 2]) {
      const r = await complete({ model: 'top-k-1', seed });
      expect(r.json.choices[0].text).toBe(greedyText);
    }
    // the request's own top_k (off) and temperature win: sampling leaves the greedy path
    const sampled = await Promise.all([3, 4, 5].map((seed) => complete({ model: 'top-k-1', seed, top_k: 0, temperature: 1.5 })));
    expect(sampled.some((r) => r.json.choices[0].text !== greedyText)).toBe(true);
    // a model without the file samples at OpenAI's defaults (temperature 1, no top-k)
    const plain = await Promise.all([3, 4, 5].map((seed) => complete({ model: 'plain', seed })));
    expect(plain.some((r) => r.json.choices[0].text !== greedyText)).toBe(true);
  });
});

describe('min_p (vLLM’s field)', () => {
  it('min_p 1 keeps only the most likely token: the greedy text whatever the seed and temperature', async () => {
    for (const seed of [1, 2]) {
      const r = await complete({ model: 'plain', seed, temperature: 1.5, min_p: 1 });
      expect(r.json.choices[0].text).toBe(greedyText);
    }
    const sampled = await Promise.all([1, 2, 3].map((seed) => complete({ model: 'plain', seed, temperature: 1.5, min_p: 0 })));
    expect(sampled.some((r) => r.json.choices[0].text !== greedyText)).toBe(true);
  });
});

describe('repetition_penalty from generation_config.json', () => {
  it('applies to requests that leave it out, as the same penalty given in the request; a request’s own value wins', async () => {
    const fromFile = await complete({ model: 'repetition', temperature: 0 });
    const asked = await complete({ model: 'plain', temperature: 0, repetition_penalty: 1.4 });
    expect(fromFile.json.choices[0].text).toBe(asked.json.choices[0].text);
    expect(fromFile.json.choices[0].text).not.toBe(greedyText);
    const off = await complete({ model: 'repetition', temperature: 0, repetition_penalty: 1 });
    expect(off.json.choices[0].text).toBe(greedyText);
  });

  it('is bounded to [0.01, 100] in a request as in the file: 1e-300 rounds to 0 in float32 and would make the logits ±∞', async () => {
    for (const value of [1e-300, 0.009, 101]) {
      const r = await complete({ model: 'plain', temperature: 0.7, logprobs: 2, repetition_penalty: value });
      expect(r.status).toBe(400);
      expect(r.json.error.param).toBe('repetition_penalty');
    }
    for (const value of [0.01, 100]) expect((await complete({ model: 'plain', temperature: 0.7, logprobs: 2, repetition_penalty: value })).status).toBe(200);
  });
});

describe('generation_config.json in `rfid-moe generate`', () => {
  const run = promisify(execFile);
  const cli = (...args: string[]) => run(process.execPath, [...cliArgs, 'generate', ...args], { cwd: repoRoot });

  it('flags not given take the model’s settings (noted on stderr); a flag given wins', async () => {
    const dir = path.join(work, 'top-k-1');
    const fromModel = await cli(dir, '--prompt', PROMPT, '--max-new-tokens', String(NEW), '--seed', '9');
    // stdout is the completion and a final newline
    expect(fromModel.stdout).toBe(`${greedyText}\n`);
    expect(fromModel.stderr).toMatch(/sampling with the model's generation_config\.json: temperature 1\.3, top-k 1 \(flags override\)/);
    const overridden = await Promise.all(['3', '4', '5'].map((seed) => cli(dir, '--prompt', PROMPT, '--max-new-tokens', String(NEW), '--seed', seed, '--top-k', '0', '--temperature', '1.5')));
    expect(overridden.some((r) => r.stdout !== `${greedyText}\n`)).toBe(true);
    expect(overridden[0].stderr).not.toMatch(/top-k 1/);
  }, 120_000);

  it('repetition_penalty too, and --repetition-penalty 1 turns it off', async () => {
    const dir = path.join(work, 'repetition');
    const server = await complete({ model: 'repetition', temperature: 0 });
    const fromModel = await cli(dir, '--prompt', PROMPT, '--max-new-tokens', String(NEW), '--temperature', '0');
    expect(fromModel.stdout).toBe(`${server.json.choices[0].text}\n`);
    expect(fromModel.stderr).toMatch(/generation_config\.json: repetition-penalty 1\.4 \(flags override\)/);
    const off = await cli(dir, '--prompt', PROMPT, '--max-new-tokens', String(NEW), '--temperature', '0', '--repetition-penalty', '1');
    expect(off.stdout).toBe(`${greedyText}\n`);
    const bad = await cli(dir, '--prompt', PROMPT, '--frequency-penalty', '3').catch((e: { stderr: string; code: number }) => e);
    expect((bad as { code: number }).code).not.toBe(0);
    expect((bad as { stderr: string }).stderr).toMatch(/--frequency-penalty must be a number in \[-2, 2\], got "3"/);
  }, 120_000);
});
