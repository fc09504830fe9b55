/**
 * Reasoning apart from the answer through the server (`reasoningParser`, the CLI's
 * --reasoning-parser), with the official openai client. The shipped tiny model is given three
 * ChatML templates: one whose prompt opens `<think>` (as DeepSeek-R1's and the Qwen3 thinking
 * models' do), one that closes an empty block (Qwen3 with thinking off), one with no block (the
 * model could open one; this one never does). Independent truth: the model's free greedy text for
 * the same prompt ids (a completion of the ids /tokenize gives): all reasoning where the prompt
 * opened the block (the model never closes it), all content otherwise; a response format waits
 * for the end of the reasoning, so the reasoning stays the free text under JSON mode too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASONING_PARSERS } from '../../src/serve/reasoning.js';
import { viableJsonObject } from '../helpers/json-judge.js';
import { CHATML, chatmlWithGenerationSuffix, postJson, spawnServeCli, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

const N = 16;
const TEMPLATES = { open: chatmlWithGenerationSuffix('<think>\\n'), closed: chatmlWithGenerationSuffix('<think>\\n\\n</think>\\n\\n'), none: CHATML };
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Who is at the window?' }];

const work = mkdtempSync(path.join(tmpdir(), 'rfid-reasoning-'));
let s: Running;
let client: OpenAI;
beforeAll(async () => {
  const models = Object.entries(TEMPLATES).map(([name, template]) => `${name}=${tinyWithChatTemplate(path.join(work, name), template)}`);
  s = await startServer({ models, reasoningParser: REASONING_PARSERS.get('qwen3')! });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await s?.close();
  rmSync(work, { recursive: true, force: true });
});

/** the model's free greedy text after the chat prompt of `model` */
async function freeText(model: string, extra: Record<string, unknown> = {}): Promise<string> {
  const ids = (await postJson(`${s.url}/tokenize`, { model, messages })).json.tokens as number[];
  const r = await postJson(`${s.url}/v1/completions`, { model, prompt: ids, max_tokens: N, temperature: 0, ...extra });
  return r.json.choices[0].text as string;
}

type Message = OpenAI.ChatCompletionMessage & { reasoning_content?: string | null; reasoning?: string | null };

describe('reasoning apart from the answer', () => {
  it('a prompt that opens the block: the text is reasoning (reasoning_content and reasoning), the content null; streamed as whole', async () => {
    const free = await freeText('open');
    const r = await client.chat.completions.create({ model: 'open', messages, max_tokens: N, temperature: 0 });
    const m = r.choices[0].message as Message;
    expect(m.reasoning_content).toBe(free);
    expect(m.reasoning).toBe(free);
    expect(m.content).toBeNull();
    expect(r.choices[0].finish_reason).toBe('length');
    const stream = await client.chat.completions.create({ model: 'open', messages, max_tokens: N, temperature: 0, stream: true });
    let reasoning = '';
    let content = '';
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta as (OpenAI.ChatCompletionChunk.Choice.Delta & { reasoning_content?: string }) | undefined;
      reasoning += d?.reasoning_content ?? '';
      content += d?.content ?? '';
    }
    expect([reasoning, content]).toEqual([free, '']);
  });

  it('include_reasoning false (vLLM’s): the reasoning is left out, the answer is still told from it', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'open', messages, max_tokens: N, temperature: 0, include_reasoning: false });
    expect(r.json.choices[0].message).toMatchObject({ content: null, reasoning_content: null, reasoning: null });
    const streamed = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'open', messages, max_tokens: N, temperature: 0, include_reasoning: false, stream: true }) });
    const text = await streamed.text();
    expect(text).not.toContain('reasoning_content');
    expect(text).toContain('data: [DONE]');
  });

  it('a prompt that closes it (thinking off), or has none: the text is content, the reasoning null', async () => {
    for (const model of ['closed', 'none']) {
      const free = await freeText(model);
      const r = await client.chat.completions.create({ model, messages, max_tokens: N, temperature: 0 });
      const m = r.choices[0].message as Message;
      expect(m.content, model).toBe(free);
      expect(m.reasoning_content, model).toBeNull();
    }
  });

  it('a response format holds the answer, not the reasoning: under JSON mode the reasoning is the free text', async () => {
    const free = await freeText('open');
    const r = await client.chat.completions.create({ model: 'open', messages, max_tokens: N, temperature: 0, response_format: { type: 'json_object' } });
    expect((r.choices[0].message as Message).reasoning_content).toBe(free);
    // where the model answers at once, the format holds from the first token
    const direct = await client.chat.completions.create({ model: 'none', messages, max_tokens: N, temperature: 0, response_format: { type: 'json_object' } });
    const content = direct.choices[0].message.content!;
    expect(content).not.toBe(await freeText('none'));
    expect(viableJsonObject(content)).toBe(true);
  });

  it('without a parser the fields are absent; the CLI refuses an unknown parser', async () => {
    const plain = await startServer({ models: [`open=${path.join(work, 'open')}`] });
    try {
      const r = await postJson(`${plain.url}/v1/chat/completions`, { model: 'open', messages, max_tokens: 4, temperature: 0 });
      expect(r.json.choices[0].message).not.toHaveProperty('reasoning_content');
      expect(typeof r.json.choices[0].message.content).toBe('string');
    } finally {
      await plain.close();
    }
    await expect(spawnServeCli([`open=${path.join(work, 'open')}`, '--reasoning-parser', 'o1'])).rejects.toThrow(/exited with 2.*--reasoning-parser must be one of qwen3, deepseek_r1, glm45, minimax_m2, openai_gptoss or none/s);
  });
});
