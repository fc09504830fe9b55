/**
 * gpt-oss conversations as OpenAI clients send them, through a template in gpt-oss's form
 * (gpt-oss-template.ts) and `--reasoning-parser openai_gptoss`. A tool loop sends back the
 * assistant's turn of calls with `content: null` and its reasoning as `reasoning_content`; the
 * template tests that content with `in` and reads the reasoning as `thinking`, and the request's
 * `reasoning_effort` is its variable of that name.
 *
 * Independent truth: transformers' apply_chat_template on the same conversations written as its
 * documentation writes them (a turn of calls without content, its reasoning as `thinking`, the
 * arguments as values, the effort as a template kwarg), and its greedy continuation of those ids,
 * read by HarmonyReader (held to harmony's own examples in harmony.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HarmonyReader } from '../../src/serve/harmony.js';
import { REASONING_PARSERS } from '../../src/serve/reasoning.js';
import { describeWithTransformers } from '../helpers/python.js';
import { hfChatReference, type ChatReference } from './chat-reference.js';
import { GPT_OSS_STYLE } from './gpt-oss-template.js';
import { viableJsonObject } from '../helpers/json-judge.js';
import { HARMONY_MARKERS, postJson, startServer, tinyWithChatTemplate, withHarmonyMarkers, type Running } from './helpers.js';

const N = 12;
type Message = OpenAI.ChatCompletionMessageParam & { reasoning_content?: string };

const TOOLS: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string', description: 'where' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'], default: 'celsius' },
          days: { type: 'integer', default: 1 },
          hours: { type: 'array', items: { type: 'number' } },
          note: { type: 'string', nullable: true },
          either: { type: ['string', 'number'] },
        },
        required: ['city'],
      },
    },
  },
  { type: 'function', function: { name: 'now', description: 'The time' } },
];

const CALL = { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city": "Mantua", "days": 2}' } };
const ASK: Message[] = [
  { role: 'system', content: 'Thou art a messenger of Verona.' },
  { role: 'user', content: 'What weather in Mantua?' },
];
/** the turn of calls as a client sends back the server's message: no text, the reasoning beside */
const CALLED: Message = { role: 'assistant', content: null, reasoning_content: 'The user wants weather; call the tool.', tool_calls: [CALL] };
const RESULT: Message = { role: 'tool', tool_call_id: 'call_1', content: '{"sky": "stormy"}' };

/** One conversation, as a client sends it and as transformers' documentation writes it. */
interface Case {
  name: string;
  messages: Message[];
  transformers: unknown[];
  effort?: 'low' | 'medium' | 'high';
}
const asTransformers = { role: 'assistant', thinking: CALLED.reasoning_content, tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Mantua', days: 2 } } }] };
const CASES: Case[] = [
  { name: 'a question with tools, low effort', messages: ASK, transformers: ASK, effort: 'low' },
  // the call's analysis is kept: no final answer follows it
  { name: 'the tool loop', messages: [...ASK, CALLED, RESULT], transformers: [...ASK, asTransformers, RESULT] },
  // a final answer follows the call: its analysis is dropped, as every earlier answer's reasoning
  {
    name: 'after the answer',
    messages: [...ASK, CALLED, RESULT, { role: 'assistant', content: 'Stormy.', reasoning_content: 'Read the result.' } as Message, { role: 'user', content: 'And Verona?' }],
    transformers: [...ASK, asTransformers, RESULT, { role: 'assistant', content: 'Stormy.', thinking: 'Read the result.' }, { role: 'user', content: 'And Verona?' }],
  },
  // a preamble beside the calls: the template takes the text as the turn's analysis
  {
    name: 'a turn of calls with a preamble',
    messages: [...ASK, { ...CALLED, content: 'Let me look.' } as Message, RESULT],
    transformers: [...ASK, { role: 'assistant', content: 'Let me look.', tool_calls: asTransformers.tool_calls }, RESULT],
  },
];

const work = mkdtempSync(path.join(tmpdir(), 'rfid-gptoss-chat-'));
let s: Running;
let client: OpenAI;
let refs: ChatReference[];

describeWithTransformers('gpt-oss conversations through the chat endpoint', () => {
  beforeAll(async () => {
    const dir = withHarmonyMarkers(tinyWithChatTemplate(path.join(work, 'gptoss'), GPT_OSS_STYLE));
    refs = hfChatReference(
      dir,
      CASES.map((c) => ({ messages: c.transformers, tools: TOOLS, kwargs: c.effort ? { reasoning_effort: c.effort } : {} })),
      N,
    );
    s = await startServer({ models: [`gptoss=${dir}`], reasoningParser: REASONING_PARSERS.get('openai_gptoss')! });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  }, 300_000);
  afterAll(async () => {
    await s?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const tokenize = async (body: Record<string, unknown>) => {
    const r = await postJson(`${s.url}/tokenize`, { model: 'gptoss', tools: TOOLS, ...body });
    expect(r.status, r.text).toBe(200);
    return r.json.tokens as number[];
  };

  it('the prompt is the ids transformers renders, for each conversation (a null content, reasoning as thinking, the effort)', async () => {
    for (const [i, c] of CASES.entries()) {
      expect(await tokenize({ messages: c.messages, reasoning_effort: c.effort }), c.name).toEqual(refs[i].ids);
    }
    // the reasoning under transformers' name (thinking) reaches the template as under vLLM's
    const asThinking = CASES[1].messages.map((m) => ('reasoning_content' in m ? { ...m, reasoning_content: undefined, thinking: m.reasoning_content } : m));
    expect(await tokenize({ messages: asThinking })).toEqual(refs[1].ids);
    // the effort reached the template, and chat_template_kwargs' own wins over it
    expect(await tokenize({ messages: ASK })).not.toEqual(refs[0].ids);
    expect(await tokenize({ messages: ASK, reasoning_effort: 'high', chat_template_kwargs: { reasoning_effort: 'low' } })).toEqual(refs[0].ids);
  });

  it('the openai client: each conversation is answered as the model continues transformers’ prompt, read by channel', async () => {
    for (const [i, c] of CASES.entries()) {
      const r = await client.chat.completions.create({ model: 'gptoss', messages: c.messages, tools: TOOLS, max_tokens: N, temperature: 0, ...(c.effort ? { reasoning_effort: c.effort } : {}) });
      expect(r.usage?.prompt_tokens, c.name).toBe(refs[i].ids.length);
      const free = (await postJson(`${s.url}/detokenize`, { model: 'gptoss', tokens: refs[i].generated })).json.prompt as string;
      const want = { reasoning: '', content: '' };
      const reader = new HarmonyReader();
      for (const d of [...reader.push(free), ...reader.end()]) if (d.kind === 'reasoning' || d.kind === 'content') want[d.kind] += d.text;
      const m = r.choices[0].message as OpenAI.ChatCompletionMessage & { reasoning_content?: string | null };
      expect({ reasoning: m.reasoning_content ?? '', content: m.content ?? '' }, c.name).toEqual(want);
      for (const marker of HARMONY_MARKERS) expect(`${m.reasoning_content ?? ''}${m.content ?? ''}`).not.toContain(marker);
    }
  });

  it('tool_choice "required" and a named function: a call of an offered tool, its arguments JSON so far (the answer held to it)', async () => {
    for (const tool_choice of ['required', { type: 'function', function: { name: 'get_weather' } }] as const) {
      const r = await client.chat.completions.create({ model: 'gptoss', messages: ASK, tools: TOOLS, tool_choice, max_tokens: 200, temperature: 0 });
      const calls = r.choices[0].message.tool_calls ?? [];
      expect(calls.length, JSON.stringify(r.choices[0].message)).toBeGreaterThanOrEqual(1);
      for (const call of calls) {
        if (call.type !== 'function') throw new Error('not a function call');
        expect(TOOLS.map((t) => (t.type === 'function' ? t.function.name : ''))).toContain(call.function.name);
        // the tiny model writes long strings: complete JSON where it stopped by itself, a viable beginning where max_tokens cut it
        if (r.choices[0].finish_reason === 'length') expect(viableJsonObject(call.function.arguments), call.function.arguments).toBe(true);
        else expect(() => JSON.parse(call.function.arguments)).not.toThrow();
      }
      if (typeof tool_choice === 'object') expect(calls.map((c) => (c.type === 'function' ? c.function.name : ''))).toEqual(['get_weather']);
    }
  });

  it('a reasoning_effort outside vLLM’s values, and content holding harmony markers, are 400s that say why', async () => {
    const bad = await client.chat.completions.create({ model: 'gptoss', messages: ASK, reasoning_effort: 'minimal' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).message).toMatch(/reasoning_effort must be "low", "medium" or "high"/);
    expect((bad as { param?: string }).param).toBe('reasoning_effort');
    const marked = await client.chat.completions
      .create({ model: 'gptoss', messages: [...ASK, { role: 'assistant', content: '<|channel|>final<|message|>Stormy.' }, { role: 'user', content: 'And Verona?' }] })
      .catch((e: unknown) => e);
    expect(marked).toBeInstanceOf(OpenAI.BadRequestError);
    expect((marked as Error).message).toMatch(/chat template rejected the messages: an assistant content holds harmony markers/);
  });

  it('the Responses API: reasoning.effort is the request’s reasoning_effort (the same prompt; a value outside them names reasoning.effort)', async () => {
    const tools = TOOLS.map((t) => (t.type === 'function' ? { type: 'function', name: t.function.name, description: t.function.description, parameters: t.function.parameters ?? null, strict: false } : t));
    const ok = await postJson(`${s.url}/v1/responses`, { model: 'gptoss', instructions: ASK[0].content, input: ASK[1].content, tools, reasoning: { effort: 'low' }, max_output_tokens: 2 });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.usage.input_tokens).toBe(refs[0].ids.length);
    const bad = await postJson(`${s.url}/v1/responses`, { model: 'gptoss', input: 'Hi', reasoning: { effort: 'minimal' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('reasoning.effort');
  });
});
