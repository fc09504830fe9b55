/**
 * JSON mode (GenerationParams.responseFormat 'json_object') on both shipped models, judged by
 * independent means: the text is held to V8's JSON.parse (test/helpers/json-judge.ts) after every
 * token, and greedy decoding is checked against transformers' own logits of the generated
 * sequence: at every step, each token that transformers scores above the chosen one must be one
 * that cannot continue the JSON (judged on the tokenizer's full decode of the completion), and
 * the chosen token must fit. Sampled decodes, and JSON requests batched with a free-text one,
 * stay valid and leave the others' tokens unchanged. Held to a JSON schema, what finishes is valid
 * under Ajv.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { BatchDecoder, GenerationParamsError, weightProviderOf, type GenerationParams, type GenerationStream, type TextCodec } from '../../src/runtime/index.js';
import { Ajv } from 'ajv';
import { describeWithTransformers, runHfJobs } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';
import { jsonOutcomeProblem, tokenFitsJson, viableJsonObject } from '../helpers/json-judge.js';
import { collectDecode, withShippedDecoder, type Decoded as BaseDecoded } from '../helpers/shipped-decoder.js';

const MODELS = ['qwen3-moe-tiny-shakespeare', 'mixtral-tiny-shakespeare'];
const PROMPTS = ['Answer in JSON. ROMEO:', 'First Citizen:\nBefore we proceed any further, hear me speak.\n', '{"name": "Juliet", "age": 13}\n'];
const NEW_TOKENS = 40;

let engine: Engine;
beforeAll(async () => {
  engine = (await createEngine('auto', { threads: 1 })).engine;
});
afterAll(() => engine?.dispose());

/** A decode and the prompt it continued. */
type Decoded = BaseDecoded & { prompt: number[] };

const collect = async (prompt: number[], stream: GenerationStream): Promise<Decoded> => ({ prompt, ...(await collectDecode(stream)) });
const withDecoder = <T>(model: string, body: (decoder: BatchDecoder, codec: TextCodec) => Promise<T>) => withShippedDecoder(engine, model, body);

const json: GenerationParams = { responseFormat: 'json_object', maxNewTokens: NEW_TOKENS };

/** The text is one JSON object when generation stopped, a viable beginning of one when it ran out of tokens; so is every streamed prefix. */
function expectJson(d: Decoded, label: string): void {
  expect(jsonOutcomeProblem(d.text, d.finishReason), label).toBeNull();
  if (d.finishReason === 'length') expect(d.tokens.length, label).toBe(NEW_TOKENS);
  for (const t of d.texts) expect(viableJsonObject(t), `${label}: ${JSON.stringify(t)}`).toBe(true);
}

describe('JSON mode on the shipped models', () => {
  it('sampled decodes (temperature, top-p, top-k) are JSON at every token', async () => {
    for (const model of MODELS) {
      await withDecoder(model, async (decoder, codec) => {
        const settings: GenerationParams[] = [{ temperature: 1 }, { temperature: 0.7, topP: 0.9 }, { temperature: 1.2, topK: 40 }];
        for (const [i, s] of settings.entries()) {
          for (const seed of [1, 2]) {
            const prompt = Array.from(codec.encode(PROMPTS[(i + seed) % PROMPTS.length]));
            expectJson(await collect(prompt, decoder.submit(prompt, { ...json, ...s, seed })), `${model} ${JSON.stringify(s)} seed ${seed}`);
          }
        }
      });
    }
  });

  it('JSON requests batched with a free-text one: each decodes as it does alone', async () => {
    for (const model of MODELS) {
      await withDecoder(model, async (decoder, codec) => {
        const prompts = PROMPTS.map((p) => Array.from(codec.encode(p)));
        const alone: Decoded[] = [];
        for (const p of prompts) alone.push(await collect(p, decoder.submit(p, { ...json, temperature: 0 })));
        const free = await collect(prompts[0], decoder.submit(prompts[0], { temperature: 0, maxNewTokens: NEW_TOKENS }));
        const together = await Promise.all([
          ...prompts.map((p) => collect(p, decoder.submit(p, { ...json, temperature: 0 }))),
          collect(prompts[0], decoder.submit(prompts[0], { temperature: 0, maxNewTokens: NEW_TOKENS })),
        ]);
        prompts.forEach((_, i) => expect(together[i].tokens, `${model} prompt ${i}`).toEqual(alone[i].tokens));
        expect(together[3].tokens).toEqual(free.tokens);
        // the constraint changed the free decode's text (Shakespeare is not JSON)
        expect(viableJsonObject(free.text)).toBe(false);
      });
    }
  });

  it('held to a schema: greedy and sampled decodes that finish are valid under Ajv, the rest valid JSON so far; a bad schema is refused', async () => {
    const schema = {
      type: 'object',
      properties: {
        verdict: { enum: ['guilty', 'not guilty'] },
        count: { type: 'integer' },
        witnesses: { type: 'array', items: { $ref: '#/$defs/Witness' }, maxItems: 2 },
      },
      required: ['verdict', 'count', 'witnesses'],
      additionalProperties: false,
      $defs: { Witness: { type: 'object', properties: { name: { type: 'string' }, reliable: { type: ['boolean', 'null'] } }, required: ['reliable'], additionalProperties: false } },
    };
    const validate = new Ajv({ strict: false }).compile(schema);
    let finished = 0;
    for (const model of MODELS) {
      await withDecoder(model, async (decoder, codec) => {
        for (const [i, s] of ([{ temperature: 0 }, { temperature: 1, seed: 4 }, { temperature: 0.8, topP: 0.9, seed: 5 }] as GenerationParams[]).entries()) {
          const prompt = Array.from(codec.encode(PROMPTS[i]));
          const d = await collect(prompt, decoder.submit(prompt, { ...s, maxNewTokens: 200, responseFormat: { jsonSchema: schema } }));
          const label = `${model} ${JSON.stringify(s)}: ${JSON.stringify(d.text)}`;
          if (d.finishReason === 'stop') {
            finished++;
            expect(validate(JSON.parse(d.text)), `${label} ${JSON.stringify(validate.errors)}`).toBe(true);
          } else expect(d.finishReason, label).toBe('length');
          for (const t of d.texts) expect(viableJsonObject(t), label).toBe(true);
        }
      });
    }
    expect(finished).toBeGreaterThan(0);
    await withDecoder(MODELS[0], async (decoder) => {
      expect(() => decoder.submit([1, 2], { responseFormat: { jsonSchema: { type: 'object', properties: { a: { not: { type: 'string' } } } } } })).toThrow(/"not" is not supported/);
      expect(() => decoder.submit([1, 2], { responseFormat: { jsonSchema: { type: 'object', properties: { a: { not: { type: 'string' } } } } } })).toThrow(GenerationParamsError);
    });
  });

  it('a request whose allowed tokens cannot start an object fails with a message, and the decoder needs a tokenizer', async () => {
    await withDecoder(MODELS[1], async (decoder, codec) => {
      const prompt = Array.from(codec.encode(PROMPTS[0]));
      const letters = Array.from(codec.encode('the king')).filter((t) => /^[\sA-Za-z▁]+$/.test(codec.decode([t])));
      await expect(collect(prompt, decoder.submit(prompt, { ...json, temperature: 0, allowedTokenIds: letters }))).rejects.toThrow(/no token can continue the constrained output/);
      // the decoder goes on serving
      expectJson(await collect(prompt, decoder.submit(prompt, { ...json, temperature: 0 })), 'after the failure');
    });
    const ckpt = await openCheckpoint(path.join(repoRoot, 'examples', 'models', MODELS[1]));
    const bare = new BatchDecoder(weightProviderOf(ckpt), engine);
    try {
      expect(() => bare.submit([1, 2, 3], json)).toThrow(GenerationParamsError);
      expect(() => bare.submit([1, 2, 3], json)).toThrow(/needs the decoder to have a tokenizer/);
    } finally {
      await bare.close();
      await ckpt.close();
    }
  });
});

describeWithTransformers('JSON mode’s greedy choice against transformers’ logits', () => {
  it('every token transformers ranks above the chosen one breaks the JSON, and the chosen one fits (both models, 3 prompts)', async () => {
    const decoded: Array<{ model: string; codec: TextCodec; d: Decoded }> = [];
    for (const model of MODELS) {
      await withDecoder(model, async (decoder, codec) => {
        for (const p of PROMPTS) {
          const prompt = Array.from(codec.encode(p));
          const d = await collect(prompt, decoder.submit(prompt, { ...json, temperature: 0 }));
          expectJson(d, `${model} greedy ${JSON.stringify(p)}`);
          decoded.push({ model, codec, d });
        }
      });
    }
    const { results } = await runHfJobs(
      decoded.map(({ model, d }) => {
        const ids = [...d.prompt, ...d.tokens];
        return { op: 'logits' as const, model: path.join(repoRoot, 'examples', 'models', model), ids: [ids], mask: [ids.map(() => 1)] };
      }),
    );
    let outranked = 0;
    decoded.forEach(({ model, codec, d }, k) => {
      const logits = results[k].logits!;
      for (let i = 0; i < d.tokens.length; i++) {
        const row = logits[d.prompt.length - 1 + i];
        const before = codec.decode(d.tokens.slice(0, i));
        const chosen = d.tokens[i];
        const label = `${model} prompt ${k % PROMPTS.length} step ${i}`;
        expect(tokenFitsJson(before, codec.decode([...d.tokens.slice(0, i), chosen])), `${label}: chosen ${JSON.stringify(codec.decode([chosen]))}`).toBe(true);
        for (let t = 0; t < row.length; t++) {
          // a margin for the two implementations' rounding (their logits agree to ~1e-5)
          if (!(row[t] > row[chosen] + 1e-3)) continue;
          outranked++;
          const after = codec.decode([...d.tokens.slice(0, i), t]);
          expect(tokenFitsJson(before, after), `${label}: ${JSON.stringify(codec.decode([t]))} (logit ${row[t]} > ${row[chosen]}) fits but was passed over after ${JSON.stringify(before)}`).toBe(false);
        }
      }
    });
    // the models, trained on Shakespeare, prefer other text: the constraint did the choosing
    expect(outranked).toBeGreaterThan(100);
  });
});
