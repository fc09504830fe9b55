/**
 * A JSON schema held only after a trigger (responseFormat.trigger), on both shipped models: what
 * keeps a tool call the model chooses to make well-formed. The trigger is taken from the model's
 * own free greedy text, so the test knows where it comes. Independent truth: the free greedy
 * decode (token-identical up to the trigger, and again for the tokens right after the held value
 * closes, decoded afresh from the prompt and the tokens so far) and Ajv (the held value).
 */
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { GenerationParamsError, type BatchDecoder } from '../../src/runtime/index.js';
import { valueEnd } from '../helpers/json-judge.js';
import { collectDecode, withShippedDecoder } from '../helpers/shipped-decoder.js';
import { qwen3Coder } from '../../src/serve/tools/formats/qwen3-coder.js';

const MODELS = ['qwen3-moe-tiny-shakespeare', 'mixtral-tiny-shakespeare'];
const PROMPT_TEXT = 'ROMEO:\nWhat news from Verona?\n';
const SCHEMA = {
  type: 'object',
  properties: { name: { enum: ['get_weather', 'send_letter'] }, arguments: { type: 'object', properties: { to: { enum: ['Romeo', 'Juliet'] }, urgent: { type: 'boolean' } }, required: ['to', 'urgent'], additionalProperties: false } },
  required: ['name', 'arguments'],
  additionalProperties: false,
};

let engine: Engine;
beforeAll(async () => {
  engine = (await createEngine('auto', { threads: 1 })).engine;
});
afterAll(() => engine?.dispose());

/**
 * The model's free greedy decode and a trigger taken from it: the last 3 characters of the text
 * after token k, which first appear there (so the test knows where the trigger comes).
 */
async function freeTrigger(decoder: BatchDecoder, prompt: ArrayLike<number>) {
  const free = await collectDecode(decoder.submit(prompt, { maxNewTokens: 40, temperature: 0, stopTokenIds: [] }));
  let k = 6;
  while (!(free.texts[k].length >= 3 && free.texts[k].indexOf(free.texts[k].slice(-3)) === free.texts[k].length - 3)) k++;
  return { free, k, trigger: free.texts[k].slice(-3) };
}

describe('a schema held after a trigger', () => {
  for (const model of MODELS) {
    it(`${model}: free until the trigger, then a value valid under the schema, then free again`, async () => {
      await withShippedDecoder(engine, model, async (decoder, codec) => {
        const prompt = codec.encode(PROMPT_TEXT);
        const { free, k, trigger } = await freeTrigger(decoder, prompt);

        // (the models write much whitespace inside JSON: room for it)
        const held = await collectDecode(decoder.submit(prompt, { maxNewTokens: 800, temperature: 0, stopTokenIds: [], responseFormat: { jsonSchema: SCHEMA, trigger } }));
        expect(held.tokens.slice(0, k + 1)).toEqual(free.tokens.slice(0, k + 1));
        const text = held.texts.at(-1)!;
        const after = text.slice(free.texts[k].length);
        const end = valueEnd(after);
        expect(end, JSON.stringify(after)).toBeGreaterThan(0);
        const value = JSON.parse(after.slice(0, end)) as unknown;
        expect(new Ajv({ strict: false }).compile(SCHEMA)(value), after.slice(0, end)).toBe(true);
        // the generation went on past the value (it does not end there), and the model was free again:
        // the tokens after the one that closed the value are its free greedy choice from there
        const closed = held.texts.findIndex((t, i) => i > k && valueEnd(t.slice(free.texts[k].length)) > 0);
        expect(held.tokens.length).toBeGreaterThan(closed + 4);
        expect(held.finishReason).toBe('length');
        const resumed = await collectDecode(decoder.submit(Int32Array.from([...prompt, ...held.tokens.slice(0, closed + 1)]), { maxNewTokens: 4, temperature: 0, stopTokenIds: [] }));
        const next = held.texts[closed + 4].slice(held.texts[closed].length);
        // (unless those tokens wrote the trigger again, which would hold the text once more)
        if (!next.includes(trigger)) expect(held.tokens.slice(closed + 1, closed + 5)).toEqual(resumed.tokens);

        // once: the generation ends ('stop') with the first held value
        const once = await collectDecode(decoder.submit(prompt, { maxNewTokens: 800, temperature: 0, stopTokenIds: [], responseFormat: { jsonSchema: SCHEMA, trigger, once: true } }));
        expect(once.finishReason).toBe('stop');
        expect(once.tokens).toEqual(held.tokens.slice(0, closed + 1));
        const onceAfter = once.texts.at(-1)!.slice(free.texts[k].length);
        expect(valueEnd(onceAfter)).toBe(onceAfter.length);

        // sampled: the held value is valid too, whenever it closed
        for (const seed of [1, 2, 3]) {
          const sampled = await collectDecode(decoder.submit(prompt, { maxNewTokens: 200, temperature: 0.9, seed, stopTokenIds: [], responseFormat: { jsonSchema: SCHEMA, trigger } }));
          const all = sampled.texts.at(-1)!;
          const at = all.indexOf(trigger);
          if (at < 0) continue;
          const rest = all.slice(at + trigger.length);
          const e = valueEnd(rest);
          if (e > 0) expect(new Ajv({ strict: false }).compile(SCHEMA)(JSON.parse(rest.slice(0, e))), rest.slice(0, e)).toBe(true);
        }
      });
    }, 120_000);
  }

  it('a regex held after a trigger (Qwen3-Coder’s call tags): a full match of the pattern, and with once the generation ends there', async () => {
    const pattern = qwen3Coder.heldPattern!([{ name: 'send_letter', parameters: { type: 'object', properties: { to: { enum: ['Romeo', 'Juliet'] }, urgent: { type: 'boolean' }, copies: { type: 'integer' } } } }]);
    const full = new RegExp(`^(?:${pattern})$`, 'u');
    for (const model of MODELS) {
      await withShippedDecoder(engine, model, async (decoder, codec) => {
        const prompt = codec.encode(PROMPT_TEXT);
        const { trigger } = await freeTrigger(decoder, prompt);
        for (const params of [{ temperature: 0 }, { temperature: 0.9, seed: 5 }]) {
          const held = await collectDecode(decoder.submit(prompt, { ...params, maxNewTokens: 400, stopTokenIds: [], responseFormat: { regex: pattern, trigger, once: true } }));
          const text = held.texts.at(-1)!;
          const at = text.indexOf(trigger);
          // greedy writes the trigger where the free decode did; a sampled decode may never write it
          if (params.temperature === 0) expect(at, `${model} ${JSON.stringify(text)}`).toBeGreaterThanOrEqual(0);
          if (at < 0) continue;
          const call = text.slice(at + trigger.length);
          // greedy closes the call (at most three parameter blocks, then the end tags); a sampled one may run out
          if (params.temperature === 0) expect(held.finishReason, `${model} ${JSON.stringify(call)}`).toBe('stop');
          if (held.finishReason === 'stop') expect(full.test(call), `${model} ${JSON.stringify(call)}`).toBe(true);
          else expect(held.tokens.length).toBe(400);
        }
      });
    }
  }, 120_000);

  it('an empty trigger is refused', async () => {
    await withShippedDecoder(
      engine,
      MODELS[1],
      async (decoder, codec) => {
        expect(() => decoder.submit(codec.encode('x'), { maxNewTokens: 2, responseFormat: { jsonSchema: SCHEMA, trigger: '' } })).toThrow(GenerationParamsError);
      },
      1,
    );
  });
});
