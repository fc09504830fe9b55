/**
 * gpt-oss's own tool calls held to the request's tools: a message addressed `to=functions.NAME`
 * is held, from the address on, to a call of a function the tool choice allows, its arguments valid
 * under that function's parameters (ReasoningGate's addressedCalls, as the server sets them from
 * the request: resolveTools → gateFormatOf). A scripted model (rows that favour one token) writes
 * with the tiny model's tokenizer given harmony's markers as special tokens; the server's own
 * reader of the choice (choiceReader) reads what the gate let through. Truth: the request's tool
 * schemas (every call read must be of an allowed function, its arguments valid JSON of them) and
 * the model's own text where it is already such a call (the gate leaves it as it is).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrammarConstraint, startingState, tokenPieces, type GrammarState, type TokenConstraint } from '../../src/runtime/generation/grammar-constraint.js';
import { ReasoningGate } from '../../src/runtime/generation/reasoning-gate.js';
import { compileRegex, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';
import { BatchDecoder, GenerationParamsError, loadTextCodec, weightProviderOf, type GenerationParams, type SamplingParams, type TextCodec } from '../../src/runtime/index.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createEngine } from '../../src/engine/index.js';
import { collectDecode } from '../helpers/shipped-decoder.js';
import { chooseFavourites } from '../helpers/scripted-model.js';
import { gateFormatOf, REASONING_PARSERS } from '../../src/serve/reasoning.js';
import { choiceReader } from '../../src/serve/responses.js';
import type { Prepared } from '../../src/serve/prepare.js';
import { resolveTools, type ToolFields } from '../../src/serve/tools/tool-choice.js';
import type { ChoiceDelta } from '../../src/serve/tools/call-readers.js';
import { HARMONY_FIRST_ID, TINY_DIR, withHarmonyMarkers } from './helpers.js';

const PARSER = REASONING_PARSERS.get('openai_gptoss')!;
const VOCAB = 4096;
const MESSAGE = HARMONY_FIRST_ID + 2;
const END = HARMONY_FIRST_ID + 3;

const work = mkdtempSync(path.join(tmpdir(), 'rfid-held-calls-'));
let codec: TextCodec;
beforeAll(async () => {
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'config.json']) copyFileSync(path.join(TINY_DIR, f), path.join(work, f));
  codec = await loadTextCodec(withHarmonyMarkers(work));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Tool = NonNullable<ToolFields['tools']>[number];
const tool = (name: string, parameters: Record<string, unknown>): Tool => ({ type: 'function', function: { name, parameters } });
const WEATHER = tool('get_weather', { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Rome'] } }, required: ['city'], additionalProperties: false });
const NOTE = tool('take_note', { type: 'object', properties: { note: { type: 'string' } }, required: ['note'], additionalProperties: false });
const TIME = tool('get_time', { type: 'object', properties: { zone: { type: 'string', enum: ['UTC', 'CET'] } }, required: ['zone'], additionalProperties: false });

/** the gate and the reader the server sets up for a chat request with these tool fields to gpt-oss */
function served(fields: ToolFields, answerFormat?: GenerationParams['responseFormat']): { gate: ReasoningGate; read: (text: string) => ChoiceDelta[] } {
  const resolved = resolveTools(fields, null, 'gptoss', answerFormat, true);
  const hold = (state: GrammarState): TokenConstraint => new GrammarConstraint(codec, tokenPieces(codec, VOCAB, true), new Set(), false, state);
  const rf = resolved.responseFormat as { jsonSchema: unknown; topLevel?: 'object' | 'any' } | undefined;
  const inner = rf ? hold(startingState(rf.jsonSchema, rf.topLevel ?? 'object')) : null;
  const gate = new ReasoningGate(codec, gateFormatOf(PARSER, 'maybe', resolved.callable), inner, hold);
  const prepared = { tools: resolved.mode, reasoning: { parser: PARSER, start: 'maybe', include: true, callable: resolved.callable } } as unknown as Prepared;
  return {
    gate,
    read: (text) => {
      const reader = choiceReader(prepared)!;
      return [...reader.push(text), ...reader.end()];
    },
  };
}

/** The scripted model (test/helpers/scripted-model.ts) writes `script` until the gate is complete; the text the gate let through, markers kept. */
const write = (gate: ReasoningGate, script: string, sampling: SamplingParams = { temperature: 0 }): string => codec.decode(chooseFavourites(gate, VOCAB, codec.encode(script), sampling), { skipSpecialTokens: false });

/** the calls, reasoning and content of the read deltas */
function summary(deltas: ChoiceDelta[]): { calls: Array<{ name: string; arguments: string }>; reasoning: string; content: string } {
  const calls: Array<{ name: string; arguments: string }> = [];
  let reasoning = '';
  let content = '';
  for (const d of deltas) {
    if (d.kind === 'call') calls[d.index] = { name: d.name, arguments: d.arguments };
    else if (d.kind === 'arguments') calls[d.index].arguments += d.text;
    else if (d.kind === 'reasoning') reasoning += d.text;
    else content += d.text;
  }
  return { calls, reasoning, content };
}

/** what the script goes on with after a refused call, long enough for the held call to close whatever the constraint picks */
const TAIL = ' and so on'.repeat(100);
const ANALYSIS = '<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant';

describe('gpt-oss calls held to the tools (addressedCalls)', () => {
  it('the markers are single special tokens of the scripted tokenizer', () => {
    expect(Array.from(codec.encode('<|message|>'))).toEqual([MESSAGE]);
    expect(codec.decode([END], { skipSpecialTokens: true })).toBe('');
  });

  it('a call the model writes well is left as it is, and read as the call', () => {
    const { gate, read } = served({ tools: [WEATHER, TIME], tool_choice: 'required' });
    const call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}';
    const text = write(gate, `${ANALYSIS}${call}<|call|>`);
    expect(text).toBe(`${ANALYSIS}${call}`);
    expect(gate.complete).toBe(true);
    const got = summary(read(text));
    expect(got.calls).toEqual([{ name: 'get_weather', arguments: '{"city": "Paris"}' }]);
    expect(got.reasoning).toBe('Need the weather.');
    expect(got.content).toBe('');
  });

  it('"required": a function not offered and arguments off the schema are held to an offered call', () => {
    const { gate, read } = served({ tools: [WEATHER, TIME], tool_choice: 'required' });
    const text = write(gate, `${ANALYSIS}<|channel|>commentary to=functions.lookup_city <|constrain|>json<|message|>{"city": 7, "more": [1, 2, 3, 4, 5, 6]}${TAIL}`);
    expect(gate.complete).toBe(true);
    const { calls, content } = summary(read(text));
    expect(calls).toHaveLength(1);
    expect(['get_weather', 'get_time']).toContain(calls[0].name);
    const args = JSON.parse(calls[0].arguments) as Record<string, unknown>;
    expect(calls[0].name === 'get_weather' ? ['Paris', 'Rome'] : ['UTC', 'CET']).toContain(Object.values(args)[0]);
    expect(Object.keys(args)).toEqual([calls[0].name === 'get_weather' ? 'city' : 'zone']);
    expect(content).toBe('');
  });

  it('a named function: an address to another is held to the named one', () => {
    const { gate, read } = served({ tools: [WEATHER, TIME], tool_choice: { type: 'function', function: { name: 'get_time' } } });
    const text = write(gate, `${ANALYSIS}<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Rome"}${TAIL}`);
    expect(gate.complete).toBe(true);
    const { calls } = summary(read(text));
    expect(calls.map((c) => c.name)).toEqual(['get_time']);
    expect(['UTC', 'CET']).toContain((JSON.parse(calls[0].arguments) as { zone: string }).zone);
  });

  it('"auto": the final channel is free; an address is held; tools the constraint cannot follow leave it free', () => {
    const auto = served({ tools: [WEATHER, TIME], tool_choice: 'auto' });
    const answer = '<|channel|>final<|message|>It is sunny, {not json} at all.';
    expect(write(auto.gate, `${ANALYSIS}${answer}`)).toBe(`${ANALYSIS}${answer}`);
    expect(auto.gate.complete).toBe(false);
    expect(summary(auto.read(`${ANALYSIS}${answer}`)).content).toBe('It is sunny, {not json} at all.');

    const addressed = served({ tools: [WEATHER, TIME], tool_choice: 'auto' });
    const text = write(addressed.gate, `<|channel|>commentary to=functions.lookup_city <|constrain|>json<|message|>{"city": 7}${TAIL}`);
    expect(addressed.gate.complete).toBe(true);
    expect(summary(addressed.read(text)).calls).toHaveLength(1);

    // a keyword the constraint cannot follow: the call is the model's own (as with other families' held blocks)
    const odd = tool('odd', { type: 'object', properties: { x: { type: 'string', format: 'hostname', pattern: '(?<=a)b' } } });
    const free = served({ tools: [odd], tool_choice: 'auto' });
    const own = '<|channel|>commentary to=functions.lookup_city <|constrain|>json<|message|>{"city": 7}';
    expect(write(free.gate, own)).toBe(own);
  });

  it('"auto" with a response format: the final channel held to it, and an addressed call still held to the tools', () => {
    const verdict = { jsonSchema: { type: 'object', properties: { verdict: { enum: ['fair', 'foul'] } }, required: ['verdict'], additionalProperties: false } };
    const answered = served({ tools: [WEATHER, TIME], tool_choice: 'auto' }, verdict);
    const text = write(answered.gate, `${ANALYSIS}<|channel|>final<|message|>It is sunny, I think.${TAIL}`);
    expect(answered.gate.complete).toBe(true);
    const { content, calls } = summary(answered.read(text));
    expect(calls).toEqual([]);
    expect(['fair', 'foul']).toContain((JSON.parse(content) as { verdict: string }).verdict);

    const calling = served({ tools: [WEATHER, TIME], tool_choice: 'auto' }, verdict);
    const call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Rome"}';
    expect(write(calling.gate, `${ANALYSIS}${call}<|call|>`)).toBe(`${ANALYSIS}${call}`);
    expect(summary(calling.read(`${ANALYSIS}${call}`)).calls).toEqual([{ name: 'get_weather', arguments: '{"city": "Rome"}' }]);
  });

  it('under sampling that screens the vocabulary, a marker fits the header but never a string of the arguments', () => {
    // top-p without top-k screens from the first step (grammar-constraint.ts): the pieces must carry the markers' text
    const sampling: SamplingParams = { temperature: 1, topP: 0.5 };
    for (const params of [sampling, { temperature: 0 }]) {
      const { gate, read } = served({ tools: [NOTE], tool_choice: 'required' });
      // the model puts <|end|> inside a free string, whose text it would fit: refused there, under both paths
      const text = write(gate, `<|channel|>commentary to=functions.take_note <|constrain|>json<|message|>{"note": "Pa<|end|>ris"}${TAIL}`, params);
      expect(text).toContain(' <|constrain|>json<|message|>{"note": "Pa'); // the header's markers, taken from the model
      expect(text.slice(text.indexOf('{'))).not.toContain('<|');
      expect(gate.complete).toBe(true);
      const { calls } = summary(read(text));
      expect((JSON.parse(calls[0].arguments) as { note: string }).note).toMatch(/^Pa/);
    }
  });

  it('a special token whose text a regex takes is taken as the token (a block’s tags may be special tokens), under greedy and screened sampling alike', () => {
    for (const params of [{ temperature: 0 }, { temperature: 1, topP: 0.5 }] as SamplingParams[]) {
      const c = new GrammarConstraint(codec, tokenPieces(codec, VOCAB, true), new Set(), false, new RegexPrefix(compileRegex('[^<]+<\\|end\\|>')));
      const chosen = chooseFavourites(c, VOCAB, [...codec.encode('aa'), END], params, 3);
      expect(chosen.at(-1), JSON.stringify(params)).toBe(END);
      expect(c.complete).toBe(true);
    }
  });

  it('through the decoder: a generation that addresses no call is the same with calls held; a bad spec is a GenerationParamsError', async () => {
    const { engine } = await createEngine('auto', { threads: 1 });
    const ckpt = await openCheckpoint(TINY_DIR);
    const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 2, tokenizer: codec });
    try {
      // the prompt opens the channel (so the gate starts in the reasoning, watching for an address)
      const prompt = Array.from(codec.encode('<|start|>user<|message|>Who is there?<|end|><|start|>assistant<|channel|>'));
      // a bias towards the markers, so the model writes messages (harmony-served.test.ts)
      const logitBias = new Map([[HARMONY_FIRST_ID + 1, 8], [HARMONY_FIRST_ID + 2, 9], [HARMONY_FIRST_ID + 3, 8], [HARMONY_FIRST_ID, 7]]);
      const base: GenerationParams = { temperature: 0, maxNewTokens: 40, logitBias, skipSpecialTokens: false, stopTokenIds: [] };
      const resolved = resolveTools({ tools: [WEATHER, TIME], tool_choice: 'auto' }, null, 'gptoss', undefined, true);
      const free = await collectDecode(decoder.submit(prompt, base));
      const held = await collectDecode(decoder.submit(prompt, { ...base, reasoning: gateFormatOf(PARSER, 'reasoning', resolved.callable) }));
      expect(free.text).toContain('<|'); // markers among the words
      expect(free.text).not.toContain('to=functions.');
      expect(held.tokens).toEqual(free.tokens);
      const bad = gateFormatOf(PARSER, 'maybe', resolved.callable);
      expect(() => decoder.submit(prompt, { ...base, reasoning: { ...bad, addressedCalls: { ...bad.addressedCalls!, functions: [] } } })).toThrow(GenerationParamsError);
      expect(() => decoder.submit(prompt, { ...base, reasoning: { ...bad, addressedCalls: { ...bad.addressedCalls!, trigger: '' } } })).toThrow(/addressedCalls/);
    } finally {
      await decoder.close();
      await ckpt.close();
      engine.dispose();
    }
  });
});
