/**
 * Logit bias and the repetition, frequency and presence penalties (src/runtime/generation/penalties.ts):
 * - the arithmetic of one row against the formulas, float32 operation by operation;
 * - greedy decodes of both shipped models, token for token against transformers' generate() with
 *   its own repetition_penalty, sequence_bias and prefix_allowed_tokens_fn and an independent torch
 *   processor for OpenAI's penalties (scripts/hf_reference.py);
 * - log-probabilities stay the model's own under penalties.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { BatchDecoder, GenerationParamsError, RequestLogitsProcessor, resolveLogitsProcessing, weightProviderOf, type GenerationParams } from '../../src/runtime/index.js';
import { describeWithTransformers, runHfJobs, type HfJob } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';

const f32 = Math.fround;

describe('one row of logits', () => {
  const row = () => Float32Array.from([2.5, -1.25, 0.3, -0.7, 4.1, 0, 1.9, -3.3]);

  it('adds the bias, then divides positive and multiplies negative logits of every prompt or completion token by the repetition penalty', () => {
    const p = new RequestLogitsProcessor(resolveLogitsProcessing({ repetitionPenalty: 1.3, logitBias: new Map([[0, -2], [5, 1.5]]) }, 8)!, [1, 2, 1]);
    p.observe(4);
    p.observe(0);
    const x = row();
    p.apply(x);
    const r = f32(1.3);
    const want = row();
    want[0] = f32(f32(2.5 - 2) / r); // biased, then a completion token (positive)
    want[5] = f32(0 + 1.5); // biased, never seen
    want[1] = f32(f32(-1.25) * r); // prompt token, negative
    want[2] = f32(f32(0.3) / r); // prompt token, positive
    want[4] = f32(f32(4.1) / r); // completion token
    expect(Array.from(x)).toEqual(Array.from(want));
  });

  it('subtracts count × frequency and then presence from completion tokens only', () => {
    const p = new RequestLogitsProcessor(resolveLogitsProcessing({ frequencyPenalty: 0.7, presencePenalty: -0.4 }, 8)!, [6, 6, 7]);
    for (const t of [2, 3, 2, 2]) p.observe(t);
    const x = row();
    p.apply(x);
    const want = row();
    want[2] = f32(f32(f32(0.3) - f32(f32(0.7) * 3)) - f32(-0.4));
    want[3] = f32(f32(f32(-0.7) - f32(0.7)) - f32(-0.4));
    expect(Array.from(x)).toEqual(Array.from(want));
    expect(x[6]).toBe(f32(1.9)); // a prompt token is not a completion token
  });

  it('keeps only the allowed tokens’ logits (every other one -∞), before the rest', () => {
    const p = new RequestLogitsProcessor(resolveLogitsProcessing({ allowedTokenIds: [6, 1, 6, 4], logitBias: new Map([[4, 1], [0, 50]]) }, 8)!, []);
    const x = row();
    p.apply(x);
    expect(Array.from(x)).toEqual([-Infinity, f32(-1.25), -Infinity, -Infinity, f32(f32(4.1) + 1), -Infinity, f32(1.9), -Infinity]);
  });

  it('is null when nothing would change, and names the bad field', () => {
    expect(resolveLogitsProcessing({}, 8)).toBeNull();
    expect(resolveLogitsProcessing({ repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, logitBias: new Map([[3, 0]]) }, 8)).toBeNull();
    const bad: Array<[GenerationParams, string]> = [
      [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
      [{ repetitionPenalty: -1 }, 'repetitionPenalty'],
      [{ repetitionPenalty: Number.NaN }, 'repetitionPenalty'],
      // rounds to 0 in float32: penalised logits would become ±∞ and NaN
      [{ repetitionPenalty: 1e-300 }, 'repetitionPenalty'],
      [{ repetitionPenalty: 0.0099 }, 'repetitionPenalty'],
      [{ repetitionPenalty: 100.5 }, 'repetitionPenalty'],
      [{ frequencyPenalty: 2.5 }, 'frequencyPenalty'],
      [{ presencePenalty: -2.01 }, 'presencePenalty'],
      [{ presencePenalty: Number.NaN }, 'presencePenalty'],
      [{ logitBias: new Map([[8, 1]]) }, 'logitBias'],
      [{ logitBias: new Map([[-1, 1]]) }, 'logitBias'],
      [{ logitBias: new Map([[2, 101]]) }, 'logitBias'],
      [{ logitBias: { 2: 1 } as unknown as Map<number, number> }, 'logitBias'],
      [{ allowedTokenIds: [] }, 'allowedTokenIds'],
      [{ allowedTokenIds: [3, 8] }, 'allowedTokenIds'],
      [{ allowedTokenIds: [1.5] }, 'allowedTokenIds'],
    ];
    for (const [params, field] of bad) {
      let err: unknown;
      try {
        resolveLogitsProcessing(params, 8);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(params)).toBeInstanceOf(GenerationParamsError);
      expect((err as GenerationParamsError).param).toBe(field);
    }
    expect(resolveLogitsProcessing({ repetitionPenalty: 0.01 }, 8)?.repetition).toBe(Math.fround(0.01));
    expect(resolveLogitsProcessing({ repetitionPenalty: 100 }, 8)?.repetition).toBe(100);
  });

  it('refuses a minimum length that holds back every allowed token (nothing could be chosen)', () => {
    const held = { minTokens: 2, stopIds: [7, 3] };
    let err: unknown;
    try {
      resolveLogitsProcessing({ allowedTokenIds: [3, 7, 3] }, 8, held);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GenerationParamsError);
    expect((err as GenerationParamsError).param).toBe('allowedTokenIds');
    expect((err as Error).message).toMatch(/every allowed token \(3, 7\) is a stop token that the minimum length of 2 tokens holds back/);
    // one allowed token that is not held, or no minimum length, leaves something to choose
    const some = new RequestLogitsProcessor(resolveLogitsProcessing({ allowedTokenIds: [3, 7, 5] }, 8, held)!, []);
    const row = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    some.apply(row);
    expect(Array.from(row)).toEqual([-Infinity, -Infinity, -Infinity, -Infinity, -Infinity, 5, -Infinity, -Infinity]);
    expect(resolveLogitsProcessing({ allowedTokenIds: [3, 7] }, 8, { minTokens: 0, stopIds: [7, 3] })).not.toBeNull();
  });
});

const MODELS = ['qwen3-moe-tiny-shakespeare', 'mixtral-tiny-shakespeare'];
const PROMPTS = [
  [464, 1110, 286, 262, 3290, 11],
  [40, 716, 257, 1310, 26, 290, 339],
];
const NEW_TOKENS = 40;

let engine: Engine;
beforeAll(async () => {
  engine = (await createEngine('auto', { threads: 1 })).engine;
});
afterAll(() => engine?.dispose());

async function greedy(model: string, prompt: number[], params: GenerationParams): Promise<{ tokens: number[]; logprobs: Array<{ token: number; logprob: number }[]> }> {
  const ckpt = await openCheckpoint(path.join(repoRoot, 'examples', 'models', model));
  const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1 });
  const tokens: number[] = [];
  const logprobs: Array<{ token: number; logprob: number }[]> = [];
  try {
    for await (const e of decoder.submit(prompt, { temperature: 0, maxNewTokens: NEW_TOKENS, ...params })) {
      if (e.type !== 'token') continue;
      tokens.push(e.token);
      if (e.logprob) logprobs.push([{ token: e.logprob.token, logprob: e.logprob.logprob }, ...e.logprob.top]);
    }
  } finally {
    await decoder.close();
    await ckpt.close();
  }
  return { tokens, logprobs };
}

describeWithTransformers('penalties and logit bias against transformers’ generate()', () => {
  it('greedy tokens equal transformers’ on both shipped models, and the penalties change them', async () => {
    const cases: Array<{ model: string; prompt: number[]; params: GenerationParams; hf: Partial<HfJob> }> = [];
    const plain = new Map<string, number[]>();
    for (const model of MODELS) {
      for (const prompt of PROMPTS) {
        const free = (await greedy(model, prompt, {})).tokens;
        plain.set(`${model}|${prompt.join()}`, free);
        // bias: ban the plain decode's third token, favour the token after it
        const bias: Array<[number, number]> = [
          [free[2], -100],
          [free[3], 3.5],
        ];
        const allowed = [...new Set([...free.slice(1), ...Array.from({ length: 40 }, (_, i) => 300 - 7 * i)])];
        const settings: Array<{ params: GenerationParams; hf: Partial<HfJob> }> = [
          { params: { repetitionPenalty: 1.3 }, hf: { repetitionPenalty: 1.3 } },
          { params: { repetitionPenalty: 0.8 }, hf: { repetitionPenalty: 0.8 } },
          { params: { frequencyPenalty: 0.9, presencePenalty: 0.6 }, hf: { frequencyPenalty: 0.9, presencePenalty: 0.6 } },
          { params: { frequencyPenalty: -0.5 }, hf: { frequencyPenalty: -0.5 } },
          { params: { logitBias: new Map(bias) }, hf: { logitBias: bias } },
          // allowed: the plain decode's tokens after its first, and 40 ids counted down from 300
          { params: { allowedTokenIds: allowed }, hf: { allowedTokenIds: allowed } },
          // bad words: the plain decode's third token never; its fifth never right after its fourth
          { params: { badWords: [[free[2]]] }, hf: { badWordsIds: [[free[2]]] } },
          { params: { badWords: [[free[3], free[4]]] }, hf: { badWordsIds: [[free[3], free[4]]] } },
          {
            params: { repetitionPenalty: 1.2, frequencyPenalty: 0.5, presencePenalty: 0.3, logitBias: new Map(bias) },
            hf: { repetitionPenalty: 1.2, frequencyPenalty: 0.5, presencePenalty: 0.3, logitBias: bias },
          },
        ];
        for (const s of settings) cases.push({ model, prompt, ...s });
      }
    }
    const ours: number[][] = [];
    for (const c of cases) ours.push((await greedy(c.model, c.prompt, c.params)).tokens);
    const jobs = cases.map((c) => ({ op: 'generate', model: path.join(repoRoot, 'examples', 'models', c.model), ids: c.prompt, maxNewTokens: NEW_TOKENS, ...c.hf }) as HfJob);
    const { results } = await runHfJobs(jobs);
    let changed = 0;
    cases.forEach((c, i) => {
      const label = `${c.model} ${JSON.stringify(c.hf)} prompt ${c.prompt.join(',')}`;
      expect(results[i].ok, results[i].error).toBe(true);
      expect(ours[i], label).toEqual(results[i].generated);
      if (ours[i].join() !== plain.get(`${c.model}|${c.prompt.join()}`)!.join()) changed++;
    });
    // the penalties act in (nearly) every case: equality with transformers is not the trivial one
    expect(changed).toBeGreaterThanOrEqual(cases.length - 2);
  }, 300_000);
});

describe('log-probabilities under penalties', () => {
  it('are the model’s own: the first token’s alternatives equal an unpenalised run’s, and each token’s value is its raw log-probability', async () => {
    const model = MODELS[0];
    const prompt = PROMPTS[0];
    const free = await greedy(model, prompt, { logprobs: 5 });
    const banned = free.tokens[0];
    const biased = await greedy(model, prompt, { logprobs: 5, logitBias: new Map([[banned, -100]]), repetitionPenalty: 1.5 });
    // the first step's logits are the same model output: same alternatives and values
    expect(biased.logprobs[0].slice(1)).toEqual(free.logprobs[0].slice(1));
    // the bias changed the choice, and its reported log-probability is the unbiased one
    expect(biased.tokens[0]).not.toBe(banned);
    const alt = free.logprobs[0].slice(1).find((a) => a.token === biased.tokens[0]);
    expect(alt, 'the biased choice is among the unbiased top 5').toBeDefined();
    expect(biased.logprobs[0][0].logprob).toBe(alt!.logprob);
  }, 60_000);
});
