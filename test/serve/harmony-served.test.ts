/**
 * `--reasoning-parser openai_gptoss` through the server, with the official openai client. The
 * shipped tiny model is given a tokenizer with harmony's markers as special tokens (in place of
 * seven rare words) and a harmony chat template whose prompt ends in `<|start|>assistant`, and its
 * greedy choice is pushed towards the markers (logit_bias), so its text holds channels, messages
 * and ends in the model's own order. Independent truth: the model's free greedy text for the same
 * prompt ids with the special tokens kept (a completion of the ids /tokenize gives), read by
 * HarmonyReader (held to harmony's own examples in harmony.test.ts): the chat message, whole and
 * streamed, must be that reading, and no marker may reach the client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HarmonyReader } from '../../src/serve/harmony.js';
import { REASONING_PARSERS } from '../../src/serve/reasoning.js';
import { viableJsonObject } from '../helpers/json-judge.js';
import { HARMONY_FIRST_ID, HARMONY_MARKERS, postJson, startServer, tinyWithChatTemplate, withHarmonyMarkers, type Running } from './helpers.js';

const N = 40;
const MARKERS = HARMONY_MARKERS;
const FIRST_ID = HARMONY_FIRST_ID;
const TEMPLATE = "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|start|>assistant{% endif %}";
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Who is at the window?' }];

const work = mkdtempSync(path.join(tmpdir(), 'rfid-harmony-'));
let s: Running;
let client: OpenAI;
beforeAll(async () => {
  const dir = withHarmonyMarkers(tinyWithChatTemplate(path.join(work, 'gptoss'), TEMPLATE));
  s = await startServer({ models: [`gptoss=${dir}`], reasoningParser: REASONING_PARSERS.get('openai_gptoss')! });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await s?.close();
  rmSync(work, { recursive: true, force: true });
});

/** a bias towards <|channel|>, <|message|> and <|end|> (not <|return|> or <|call|>, which would end it early) */
const bias: Record<string, number> = { [FIRST_ID + 1]: 8, [FIRST_ID + 2]: 9, [FIRST_ID + 3]: 8, [FIRST_ID]: 7 };

type Message = OpenAI.ChatCompletionMessage & { reasoning_content?: string | null };

describe('gpt-oss harmony through the server', () => {
  it('the chat message is the free text read by channel, whole and streamed; no marker goes out', async () => {
    const ids = (await postJson(`${s.url}/tokenize`, { model: 'gptoss', messages })).json.tokens as number[];
    const free = await postJson(`${s.url}/v1/completions`, { model: 'gptoss', prompt: ids, max_tokens: N, temperature: 0, logit_bias: bias, skip_special_tokens: false });
    const text = free.json.choices[0].text as string;
    // the bias made the model write messages: a body and markers
    expect(text).toContain('<|message|>');
    const reader = new HarmonyReader();
    const want = { reasoning: '', content: '' };
    for (const d of [...reader.push(text), ...reader.end()]) if (d.kind === 'reasoning' || d.kind === 'content') want[d.kind] += d.text;
    expect(want.reasoning + want.content).not.toBe('');

    const r = await client.chat.completions.create({ model: 'gptoss', messages, max_tokens: N, temperature: 0, logit_bias: bias });
    const m = r.choices[0].message as Message;
    expect(m.reasoning_content ?? '').toBe(want.reasoning);
    expect(m.content ?? '').toBe(want.content);
    for (const marker of MARKERS) expect(`${m.reasoning_content ?? ''}${m.content ?? ''}`).not.toContain(marker);

    const stream = await client.chat.completions.create({ model: 'gptoss', messages, max_tokens: N, temperature: 0, logit_bias: bias, stream: true });
    const got = { reasoning: '', content: '' };
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta as (OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string }) | undefined;
      got.reasoning += d?.reasoning_content ?? '';
      got.content += d?.content ?? '';
    }
    expect(got).toEqual(want);
  });

  it('tool_choice "auto" is read from the messages (no tool-call parser needed): the same message where the model calls nothing', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const plain = await client.chat.completions.create({ model: 'gptoss', messages, max_tokens: N, temperature: 0, logit_bias: bias });
    const r = await client.chat.completions.create({ model: 'gptoss', messages, max_tokens: N, temperature: 0, logit_bias: bias, tools, tool_choice: 'auto' });
    expect(r.choices[0].message.content).toBe(plain.choices[0].message.content);
    expect((r.choices[0].message as Message).reasoning_content).toBe((plain.choices[0].message as Message).reasoning_content);
    expect(r.choices[0].message.tool_calls ?? []).toEqual([]);
  });

  it('under JSON mode the answer is held to JSON: a completion that writes no channel first is the answer at once', async () => {
    const r = await client.chat.completions.create({ model: 'gptoss', messages, max_tokens: N, temperature: 0, logit_bias: bias, response_format: { type: 'json_object' } });
    const m = r.choices[0].message as Message;
    expect(m.reasoning_content ?? null).toBeNull();
    expect(viableJsonObject(m.content!)).toBe(true);
  });

  it('without the parser the markers are left out of the content, as any special token is', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'gptoss', messages, max_tokens: N, temperature: 0, logit_bias: bias, skip_special_tokens: true });
    expect(r.status).toBe(200);
    // skip_special_tokens true asked explicitly: the reader sees no markers, so the text is content outside any message
    const content = r.json.choices[0].message.content as string | null;
    for (const marker of MARKERS) expect(content ?? '').not.toContain(marker);
  });
});
