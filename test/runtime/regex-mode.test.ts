/**
 * Regex and choice constraints (GenerationParams.responseFormat { regex } / { choice }) on both
 * shipped models, judged by independent means: what finishes is a full match by V8's regex engine
 * (or one of the choices, compared as strings), every streamed text a viable beginning by a test
 * of the pattern's prefixes written by hand, and the greedy choice is the model's most likely token
 * among those that fit: every token the model's own log-probabilities rank above the chosen one is
 * one whose text (the tokenizer's decode of the completion with it) cannot begin a match. A model
 * may end the text where it matches (its end-of-sequence token is allowed there, and only there).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { GenerationParamsError, type BatchDecoder, type GenerationParams, type TextCodec } from '../../src/runtime/index.js';
import { collectDecode, withShippedDecoder, type Decoded } from '../helpers/shipped-decoder.js';

const MODELS = ['qwen3-moe-tiny-shakespeare', 'mixtral-tiny-shakespeare'];
const PROMPTS = ['ROMEO:\nWhat say you, ', 'First Citizen:\nBefore we proceed any further, hear me speak.\n', 'JULIET:\nO Romeo, Romeo!'];
const NEW_TOKENS = 24;

interface Case {
  format: NonNullable<GenerationParams['responseFormat']>;
  /** a full match */
  full: (text: string) => boolean;
  /** the text can still become a full match */
  viable: (text: string) => boolean;
}

const CHOICES = ['yes', 'no', 'my lord', 'never, sir'];
const CASES: Case[] = [
  { format: { regex: '\\d{3}-[a-z]{2,4}' }, full: (t) => /^\d{3}-[a-z]{2,4}$/.test(t), viable: (t) => /^(\d{0,3}|\d{3}-[a-z]{0,4})$/.test(t) },
  { format: { choice: CHOICES }, full: (t) => CHOICES.includes(t), viable: (t) => CHOICES.some((c) => c.startsWith(t)) },
  {
    format: { regex: '[A-Z][a-z]+( [a-z]+){2,5}[.!?]' },
    full: (t) => /^[A-Z][a-z]+( [a-z]+){2,5}[.!?]$/.test(t),
    viable: (t) => /^(?:|[A-Z]|[A-Z][a-z]+(?: [a-z]+){0,4}(?: [a-z]*)?|[A-Z][a-z]+(?: [a-z]+){5}|[A-Z][a-z]+(?: [a-z]+){2,5}[.!?])$/.test(t),
  },
];

let engine: Engine;
beforeAll(async () => {
  engine = (await createEngine('auto', { threads: 1 })).engine;
});
afterAll(() => engine?.dispose());

const collect = collectDecode;

const withDecoder = <T>(model: string, body: (decoder: BatchDecoder, codec: TextCodec) => Promise<T>) => withShippedDecoder(engine, model, body);

function expectHeld(c: Case, d: Decoded, label: string): void {
  if (d.finishReason === 'stop') expect(c.full(d.text), `${label}: ${JSON.stringify(d.text)}`).toBe(true);
  else {
    expect(d.finishReason, label).toBe('length');
    expect(d.tokens.length, label).toBe(NEW_TOKENS);
  }
  for (const t of d.texts) expect(c.viable(t), `${label}: ${JSON.stringify(t)}`).toBe(true);
}

describe('regex and choice constraints on the shipped models', () => {
  it('greedy: the most likely token that fits, at every step; what finishes matches', async () => {
    let checkedAbove = 0;
    for (const model of MODELS) {
      await withDecoder(model, async (decoder, codec) => {
        for (const [i, c] of CASES.entries()) {
          for (const p of [PROMPTS[i], PROMPTS[(i + 1) % PROMPTS.length]]) {
            const prompt = Array.from(codec.encode(p));
            const d = await collect(decoder.submit(prompt, { responseFormat: c.format, temperature: 0, maxNewTokens: NEW_TOKENS, logprobs: 20 }));
            const label = `${model} ${JSON.stringify(c.format)} ${JSON.stringify(p)}`;
            expectHeld(c, d, label);
            d.logprobs.forEach((lp, step) => {
              const before = d.tokens.slice(0, step);
              expect(c.viable(codec.decode([...before, lp.token])), `${label} step ${step}`).toBe(true);
              for (const alt of lp.top) {
                if (alt.logprob <= lp.logprob || alt.token === lp.token) continue;
                checkedAbove++;
                expect(c.viable(codec.decode([...before, alt.token])), `${label} step ${step}: ${JSON.stringify(codec.decode([alt.token]))} ranks above`).toBe(false);
              }
            });
          }
        }
      });
    }
    // the constraint overruled the model somewhere (Shakespeare is not digits)
    expect(checkedAbove).toBeGreaterThan(10);
  });

  it('sampled decodes (temperature, top-p, top-k) stay viable, and what finishes matches', async () => {
    let finished = 0;
    for (const model of MODELS) {
      await withDecoder(model, async (decoder, codec) => {
        const settings: GenerationParams[] = [{ temperature: 1 }, { temperature: 0.8, topP: 0.9 }, { temperature: 1.2, topK: 20 }];
        for (const [i, s] of settings.entries()) {
          for (const c of CASES) {
            const prompt = Array.from(codec.encode(PROMPTS[i]));
            const d = await collect(decoder.submit(prompt, { ...s, seed: 7 + i, responseFormat: c.format, maxNewTokens: NEW_TOKENS }));
            expectHeld(c, d, `${model} ${JSON.stringify(s)} ${JSON.stringify(c.format)}`);
            if (d.finishReason === 'stop') finished++;
          }
        }
      });
    }
    expect(finished).toBeGreaterThan(6);
  });

  it('the end-of-sequence token is allowed where the text matches, and nowhere else', async () => {
    await withDecoder(MODELS[0], async (decoder, codec) => {
      const prompt = Array.from(codec.encode(PROMPTS[0]));
      const free = await collect(decoder.submit(prompt, { temperature: 0, maxNewTokens: 4 }));
      // a stop token the model is pushed towards with all its weight
      const stop = free.tokens[0];
      const end = { stopTokenIds: [stop], logitBias: new Map([[stop, 100]]), temperature: 0, maxNewTokens: NEW_TOKENS };
      const words = await collect(decoder.submit(prompt, { ...end, responseFormat: { regex: '[a-z]+( [a-z]+)*' } }));
      expect(words.finishReason).toBe('stop');
      expect(words.tokens.at(-1)).toBe(stop);
      // it ended as soon as the text matched: one token of letters, then the stop token
      expect(words.tokens.length).toBe(2);
      expect(words.text).toMatch(/^[a-z]+$/);
      // not before a match: three digits, then the end (complete), without the stop token
      const digits = await collect(decoder.submit(prompt, { ...end, responseFormat: { regex: '\\d{3}' } }));
      expect(digits.text).toMatch(/^\d{3}$/);
      expect(digits.finishReason).toBe('stop');
      expect(digits.tokens).not.toContain(stop);
      // without the push the model writes on until max tokens (it rarely ends on its own)
      const open = await collect(decoder.submit(prompt, { temperature: 0, maxNewTokens: NEW_TOKENS, responseFormat: { regex: '[a-z ]+' } }));
      expect(open.finishReason).toBe('length');
      expect(open.text).toMatch(/^[a-z ]+$/);
    });
  });

  it('constrained requests batched with a free-text one decode as they do alone', async () => {
    await withDecoder(MODELS[1], async (decoder, codec) => {
      const prompts = PROMPTS.map((p) => Array.from(codec.encode(p)));
      const params = (i: number): GenerationParams => ({ responseFormat: CASES[i].format, temperature: 0, maxNewTokens: NEW_TOKENS });
      const alone: Decoded[] = [];
      for (const [i, p] of prompts.entries()) alone.push(await collect(decoder.submit(p, params(i))));
      const free = await collect(decoder.submit(prompts[0], { temperature: 0, maxNewTokens: NEW_TOKENS }));
      const together = await Promise.all([...prompts.map((p, i) => collect(decoder.submit(p, params(i)))), collect(decoder.submit(prompts[0], { temperature: 0, maxNewTokens: NEW_TOKENS }))]);
      prompts.forEach((_, i) => expect(together[i].tokens, `prompt ${i}`).toEqual(alone[i].tokens));
      expect(together[3].tokens).toEqual(free.tokens);
    });
  });

  it('a pattern that cannot be followed is refused when submitted', async () => {
    await withDecoder(MODELS[0], async (decoder) => {
      expect(() => decoder.submit([1, 2], { responseFormat: { regex: '(?<=a)b' } })).toThrow(GenerationParamsError);
      expect(() => decoder.submit([1, 2], { responseFormat: { regex: '(a*)\\1' } })).toThrow(/backreference/);
      expect(() => decoder.submit([1, 2], { responseFormat: { choice: [] } })).toThrow(/at least one choice/);
    });
  });
});
