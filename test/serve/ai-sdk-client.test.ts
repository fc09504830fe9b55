/**
 * Vercel's AI SDK (`ai`, with its `@ai-sdk/openai-compatible` and `@ai-sdk/openai` providers), the
 * client most TypeScript code reaches a model server with, against the server. The SDK builds its
 * own requests (structured outputs as `response_format` json_schema, tools, `stream_options`), reads
 * streams with its own parser, which checks every chunk's shape, and validates objects and tool
 * inputs with the zod schema it was given. Truth: the server's raw answer to the same request for
 * text and usage; zod's own parse for objects and tool inputs.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateObject, generateText, streamObject, streamText, tool } from 'ai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { repoRoot } from '../helpers/shared-data.js';
import { postJson, startServer, tinyWithChatTemplate, TINY_DIR, type Running } from './helpers.js';

const SYSTEM = 'You speak as a player in Shakespeare.';
const USER = 'Who comes there?';
const Speaker = z.object({ who: z.enum(['Romeo', 'Juliet']), act: z.number().int().min(1).max(5), line: z.string().max(12) });
const Letter = z.object({ to: z.enum(['Romeo', 'Juliet']), urgent: z.boolean() });
const letter = tool({ description: 'Send a letter', inputSchema: Letter });

describe('Vercel’s AI SDK against the server', () => {
  let s: Running;
  let dir: string;
  let compatible: ReturnType<typeof createOpenAICompatible>;
  let openai: ReturnType<typeof createOpenAI>;
  const rawChat = async (body: Record<string, unknown>) => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: USER }], temperature: 0, ...body });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    return r.json as { choices: Array<{ message: { content: string }; finish_reason: string }>; usage: { prompt_tokens: number; completion_tokens: number } };
  };

  beforeAll(async () => {
    dir = tinyWithChatTemplate(mkdtempSync(path.join(tmpdir(), 'rfid-ai-sdk-')));
    s = await startServer({ models: [`tiny=${TINY_DIR}`, `chat=${dir}`] });
    compatible = createOpenAICompatible({ name: 'rfid-moe', baseURL: `${s.url}/v1`, supportsStructuredOutputs: true, includeUsage: true });
    openai = createOpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused' });
  }, 60_000);
  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('generateText and streamText, chat and completion models: the server’s text, finish reason and usage', async () => {
    const want = await rawChat({ max_tokens: 12 });
    const text = await generateText({ model: compatible.chatModel('chat'), system: SYSTEM, prompt: USER, maxOutputTokens: 12, temperature: 0 });
    expect(text.text).toBe(want.choices[0].message.content);
    expect(text.finishReason).toBe('length');
    expect(text.usage).toMatchObject({ inputTokens: want.usage.prompt_tokens, outputTokens: 12 });
    const stream = streamText({ model: compatible.chatModel('chat'), system: SYSTEM, prompt: USER, maxOutputTokens: 12, temperature: 0 });
    let streamed = '';
    for await (const piece of stream.textStream) streamed += piece;
    expect(streamed).toBe(want.choices[0].message.content);
    expect(await stream.usage).toMatchObject({ inputTokens: want.usage.prompt_tokens, outputTokens: 12 });
    // (the SDK writes a completion model's prompt as a dialogue, and stops at the next "user:")
    const raw = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'user:\nROMEO:\n\nassistant:\n', stop: ['\nuser:'], max_tokens: 12, temperature: 0 });
    const completion = await generateText({ model: compatible.completionModel('tiny'), prompt: 'ROMEO:', maxOutputTokens: 12, temperature: 0 });
    expect(completion.text).toBe(raw.json.choices[0].text);
    // the OpenAI provider's default model speaks the Responses API
    const responses = await generateText({ model: openai('chat'), system: SYSTEM, prompt: USER, maxOutputTokens: 12, temperature: 0 });
    expect(responses.text).toBe(want.choices[0].message.content);
  });

  it('generateObject and streamObject with a zod schema (sent as response_format json_schema, and through the Responses API): zod parses the object', async () => {
    for (const model of [compatible.chatModel('chat'), openai('chat'), openai.chat('chat')]) {
      const { object } = await generateObject({ model, system: SYSTEM, prompt: USER, schema: Speaker, maxOutputTokens: 400, temperature: 0 });
      expect(Speaker.safeParse(object).success, JSON.stringify(object)).toBe(true);
    }
    const stream = streamObject({ model: compatible.chatModel('chat'), system: SYSTEM, prompt: USER, schema: Speaker, maxOutputTokens: 400, temperature: 0 });
    let partials = 0;
    for await (const _ of stream.partialObjectStream) partials++;
    expect(partials).toBeGreaterThan(1);
    expect(Speaker.safeParse(await stream.object).success).toBe(true);
  });

  it('tool calls, generated and streamed (chat completions and Responses): the SDK parses each call, and its input passes the tool’s zod schema', async () => {
    const forced = await generateText({ model: compatible.chatModel('chat'), system: SYSTEM, prompt: USER, tools: { letter }, toolChoice: { type: 'tool', toolName: 'letter' }, maxOutputTokens: 300, temperature: 0 });
    expect(forced.toolCalls).toHaveLength(1);
    expect(forced.toolCalls[0].toolName).toBe('letter');
    expect(Letter.safeParse(forced.toolCalls[0].input).success).toBe(true);
    for (const model of [compatible.chatModel('chat'), openai('chat')]) {
      const stream = streamText({ model, system: SYSTEM, prompt: USER, tools: { letter }, toolChoice: 'required', maxOutputTokens: 300, temperature: 0 });
      const kinds = new Set<string>();
      for await (const part of stream.fullStream) kinds.add(part.type);
      expect(kinds.has('error'), [...kinds].join(', ')).toBe(false);
      expect(kinds).toContain('tool-input-delta');
      const calls = await stream.toolCalls;
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls) expect(Letter.safeParse(call.input).success, JSON.stringify(call.input)).toBe(true);
    }
  });

  it('examples/ai-sdk.ts runs against a server on the shipped model, as the README shows', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const served = await startServer({ models: [TINY_DIR] });
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/ai-sdk.ts'], {
        cwd: repoRoot,
        env: { ...process.env, RFID_MOE_URL: `${served.url}/v1` },
        timeout: 60_000,
      });
      const raw = await postJson(`${served.url}/v1/completions`, { model: 'mixtral-tiny-shakespeare', prompt: 'user:\nROMEO:\n\nassistant:\n', stop: ['\nuser:'], max_tokens: 32, temperature: 0 });
      expect(stdout).toContain(raw.json.choices[0].text.trim().slice(0, 20));
      expect(stdout).toMatch(/outputTokens: \d+/);
      expect(stdout).toMatch(/404: .*`no-such-model` does not exist/);
    } finally {
      await served.close();
    }
  });

  it('an unknown model is the SDK’s APICallError, with the status and the server’s message', async () => {
    const err = await generateText({ model: compatible.chatModel('no-such-model'), prompt: USER, maxOutputTokens: 4, maxRetries: 0 }).catch((e: unknown) => e);
    expect(APICallError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ statusCode: 404, message: expect.stringContaining('no-such-model') });
  });
});
