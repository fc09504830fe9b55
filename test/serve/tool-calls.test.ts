/**
 * Tool calling through /v1/chat/completions, with the official openai client. The shipped tiny
 * model is given a chat template with tool calls in the Hermes format (helpers.ts). Independent
 * truth:
 * - transformers renders each conversation with `apply_chat_template(messages, tools=…)` (the
 *   assistant's calls with their arguments as values, as transformers wants them): the server's
 *   prompt must be the same token ids, and its greedy answer (tool_choice "none", and "auto", where
 *   this model writes no call) transformers' greedy continuation;
 * - a forced call's arguments must be valid under the function's parameters by Ajv, streamed
 *   (accumulated by the client's own stream helper) as not.
 * Skipped without the venv (failing under CI=true).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { zodFunction } from 'openai/helpers/zod';
import { z } from 'zod';
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { callFromJson, TOOL_CALL_FORMATS, tryJson, type ToolCallFormat } from '../../src/serve/tools/formats/index.js';
import { deepseekStyle } from '../../src/serve/tools/formats/deepseek.js';
import { valueEnd } from '../helpers/json-judge.js';
import { describeWithTransformers } from '../helpers/python.js';
import { hfChatReference, type ChatReference, type ReferenceConversation } from './chat-reference.js';
import { QWEN3_CODER_STYLE } from './qwen3-coder-template.js';
import { GLM45_STYLE } from './glm45-template.js';
import { GRANITE_STYLE } from './granite-template.js';
import { MINIMAX_M2_STYLE } from './minimax-m2-template.js';
import { CHATML, HERMES_TOOLS_CHATML, postJson, spawnServeCli, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

const NEW_TOKENS = 12;

const TOOLS: ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather',
      parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Verona', 'Mantua', 'Padua'] }, days: { type: 'integer' } }, required: ['city', 'days'], additionalProperties: false },
    },
  },
  {
    type: 'function',
    function: {
      name: 'send_letter',
      description: 'A letter',
      parameters: {
        type: 'object',
        properties: { to: { $ref: '#/$defs/Person' }, urgent: { type: 'boolean' }, copies: { type: 'array', items: { $ref: '#/$defs/Person' }, maxItems: 2 } },
        required: ['to', 'urgent', 'copies'],
        additionalProperties: false,
        $defs: { Person: { type: 'string', enum: ['Romeo', 'Juliet', 'Friar Laurence'] } },
      },
    },
  },
];

// short: the tools fill most of the model's 1,024 positions, and it writes JSON with much whitespace
const ASK: ChatCompletionMessageParam[] = [{ role: 'user', content: 'What weather in Mantua?' }];
// a conversation that went through a call: the assistant's call (no text), the tool's answer, a new question
const AFTER_CALL: ChatCompletionMessageParam[] = [
  { role: 'system', content: 'Thou art a messenger of Verona.' },
  ...ASK,
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Mantua", "days": 2}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"sky": "stormy"}' },
  { role: 'user', content: 'Then send word to Romeo.' },
];

/** How many chunks of a streamed response carry a piece of its first call's arguments. */
async function argumentChunks(client: OpenAI, body: Parameters<OpenAI['chat']['completions']['create']>[0]): Promise<number> {
  let chunks = 0;
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) if (chunk.choices[0]?.delta.tool_calls?.[0]?.function?.arguments) chunks++;
  return chunks;
}

/**
 * The model's streamed answer to `body`, and a marker in it where a test's call format opens: the
 * 4 characters that end where a token ends, past `fraction` of the text, and occur there first (so
 * a block held from the marker on is held from the next token).
 */
async function markerAtTokenEnd(client: OpenAI, body: Parameters<OpenAI['chat']['completions']['create']>[0], fraction: number): Promise<{ text: string; at: number; marker: string }> {
  const pieces: string[] = [];
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) if (chunk.choices[0]?.delta.content) pieces.push(chunk.choices[0].delta.content);
  const text = pieces.join('');
  let end = 0;
  for (const piece of pieces) {
    end += piece.length;
    if (end > text.length * fraction && text.indexOf(text.slice(end - 4, end)) === end - 4) return { text, at: end - 4, marker: text.slice(end - 4, end) };
  }
  throw new Error(`no 4 characters past ${fraction} of the answer end where a token ends and occur there first: ${JSON.stringify(text)}`);
}

/** A test's call format: like Hermes's blocks, opened by `marker` (words of the model's own text) and closed by the end of the JSON instead of a tag. */
function markedJson(marker: string): ToolCallFormat {
  const parse = (block: string) => {
    const end = valueEnd(block);
    const call = end < 0 ? null : callFromJson(tryJson(block.slice(0, end)));
    return call ? [call] : null;
  };
  return { name: 'marked-json', start: marker, end: null, heldCall: 'one', streamer: TOOL_CALL_FORMATS.get('hermes')!.streamer, parse, detect: () => false };
}

/** The first 4 characters of `text` from a third of the way in that occur there first (where a test's call format opens). */
function markerIn(text: string): { at: number; marker: string } {
  let at = Math.floor(text.length / 3);
  while (text.indexOf(text.slice(at, at + 4)) !== at) at++;
  return { at, marker: text.slice(at, at + 4) };
}

/**
 * A template in the form of DeepSeek-V3's: the calls in its special tokens, and a call's arguments
 * written by concatenation, so it needs them as text (a value would render as an object).
 */
const DEEPSEEK_STYLE = [
  "{{ bos_token }}{%- for message in messages %}",
  "{%- if message.role == 'user' %}{{ '<｜User｜>' + message.content }}",
  "{%- elif message.role == 'assistant' and message.tool_calls %}{{ '<｜Assistant｜><｜tool▁calls▁begin｜>' }}",
  "{%- for tool in message.tool_calls %}{{ '<｜tool▁call▁begin｜>' + tool.type + '<｜tool▁sep｜>' + tool.function.name + '\\n```json\\n' + tool.function.arguments + '\\n```<｜tool▁call▁end｜>' }}{%- endfor %}",
  "{{ '<｜tool▁calls▁end｜><｜end▁of▁sentence｜>' }}",
  "{%- elif message.role == 'assistant' %}{{ '<｜Assistant｜>' + message.content + '<｜end▁of▁sentence｜>' }}",
  "{%- elif message.role == 'tool' %}{{ '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message.content + '<｜tool▁output▁end｜><｜tool▁outputs▁end｜>' }}",
  "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{ '<｜Assistant｜>' }}{%- endif %}",
].join('');

/** The messages as transformers takes them: a call's arguments as values, not JSON text. */
function forTransformers(messages: ChatCompletionMessageParam[]): unknown[] {
  return messages.map((m) =>
    'tool_calls' in m && m.tool_calls
      ? { ...m, tool_calls: m.tool_calls.map((c) => (c.type === 'function' ? { ...c, function: { ...c.function, arguments: JSON.parse(c.function.arguments) as unknown } } : c)) }
      : m,
  );
}

const reference = (dir: string, conversations: ReferenceConversation[]) => hfChatReference(dir, conversations, NEW_TOKENS);

/** Qwen3-Coder's form: a conversation through a call whose arguments hold every kind of value */
const CODER_ARGS = { path: 'verona.txt', lines: 3, force: true, dry_run: false, note: null, meta: { who: ['Romeo', 'Juliet'], act: 2 } };
const CODER_TOOLS: ChatCompletionTool[] = [
  { type: 'function', function: { name: 'write_file', description: 'Write a file', parameters: { type: 'object', properties: { path: { type: 'string' }, lines: { type: 'integer' }, force: { type: 'boolean' }, dry_run: { type: 'boolean' }, note: { type: ['string', 'null'] }, meta: { type: 'object' } } } } },
];
const CODER_MESSAGES: ChatCompletionMessageParam[] = [
  { role: 'system', content: 'Thou art a scribe.' },
  { role: 'user', content: 'Write it down.' },
  { role: 'assistant', content: 'I shall.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'write_file', arguments: JSON.stringify(CODER_ARGS) } }] },
  { role: 'tool', tool_call_id: 'call_1', content: 'written' },
  { role: 'user', content: 'Now read it.' },
];

/** Qwen3's rule, in short: an assistant turn after the last question carries its reasoning back inside <think> */
const THINK_TEMPLATE = CHATML.replace(
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}",
  "{%- if message.role == 'assistant' and message.reasoning_content is defined and message.reasoning_content is not none %}{{ '<|im_start|>assistant\\n<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' + (message.content or '') + '<|im_end|>\\n' }}{%- else %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{%- endif %}",
);
const THINK_CONVERSATION = [
  { role: 'user', content: 'Weather in Mantua?' },
  { role: 'assistant', content: 'Stormy.', reasoning_content: 'Mantua is inland; the sky was dark.' },
  { role: 'user', content: 'And Verona?' },
];

describeWithTransformers('tool calls through the chat endpoint', () => {
  let dir: string;
  let plainDir: string;
  let deepseekDir: string;
  let coderDir: string;
  let glmDir: string;
  let graniteDir: string;
  let minimaxDir: string;
  let thinkDir: string;
  let s: Running;
  let client: OpenAI;
  let refs: ChatReference[];
  let decode: (ids: number[]) => string;
  const validators = new Map(TOOLS.map((t) => [t.type === 'function' ? t.function.name : '', new Ajv({ strict: false }).compile(t.type === 'function' ? t.function.parameters! : {})]));

  /** The arguments are valid for the named tool (Ajv). */
  const expectValidCall = (call: { function: { name: string; arguments: string } }) => {
    const validate = validators.get(call.function.name);
    expect(validate, call.function.name).toBeDefined();
    expect(validate!(JSON.parse(call.function.arguments)), `${call.function.name}(${call.function.arguments})`).toBe(true);
  };

  beforeAll(async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'rfid-tools-'));
    dir = tinyWithChatTemplate(path.join(root, 'hermes'), HERMES_TOOLS_CHATML);
    plainDir = tinyWithChatTemplate(path.join(root, 'plain'), CHATML);
    deepseekDir = tinyWithChatTemplate(path.join(root, 'deepseek'), DEEPSEEK_STYLE);
    coderDir = tinyWithChatTemplate(path.join(root, 'qwen3-coder'), QWEN3_CODER_STYLE);
    glmDir = tinyWithChatTemplate(path.join(root, 'glm45'), GLM45_STYLE);
    graniteDir = tinyWithChatTemplate(path.join(root, 'granite'), GRANITE_STYLE);
    minimaxDir = tinyWithChatTemplate(path.join(root, 'minimax-m2'), MINIMAX_M2_STYLE);
    thinkDir = tinyWithChatTemplate(path.join(root, 'think'), THINK_TEMPLATE);
    // one Python run for every reference (its imports cost seconds): the other templates' prompts through their tokenizers
    refs = reference(dir, [
      { messages: ASK, tools: TOOLS },
      { messages: forTransformers(AFTER_CALL), tools: TOOLS },
      { messages: ASK, tools: null },
      // transformers takes what the DeepSeek-style template needs: the arguments as the text the client sent
      { messages: AFTER_CALL.slice(1), tools: TOOLS, tokenizer: deepseekDir },
      { messages: forTransformers(CODER_MESSAGES), tools: CODER_TOOLS, tokenizer: coderDir },
      { messages: THINK_CONVERSATION, tools: null, tokenizer: thinkDir },
      { messages: forTransformers(CODER_MESSAGES), tools: CODER_TOOLS, tokenizer: glmDir },
      { messages: forTransformers(CODER_MESSAGES), tools: CODER_TOOLS, tokenizer: graniteDir },
      { messages: forTransformers(CODER_MESSAGES), tools: CODER_TOOLS, tokenizer: minimaxDir },
    ]);
    s = await startServer({ models: [`tiny=${dir}`, `plain=${plainDir}`] });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const tok = s.server.models.get('tiny')!.tokenizer.tokenizer;
    decode = (ids) => tok.decode(ids, { skip_special_tokens: false });
  }, 300_000);

  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  it('the prompt with tools, and after a call and its result, is the one transformers renders (token ids)', async () => {
    for (const [i, messages] of [ASK, AFTER_CALL].entries()) {
      const r = await postJson(`${s.url}/tokenize`, { model: 'tiny', messages, tools: TOOLS });
      expect(r.status, r.text).toBe(200);
      expect(r.json.tokens).toEqual(refs[i].ids);
    }
    // the tools are in the prompt (and not without them)
    expect(refs[0].text).toContain('<tools>\n{"type": "function", "function": {"name": "get_weather"');
    expect(refs[1].text).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Mantua", "days": 2}}\n</tool_call>');
    expect(refs[1].text).toContain('<tool_response>\n{"sky": "stormy"}\n</tool_response>');
    const bare = await postJson(`${s.url}/tokenize`, { model: 'tiny', messages: ASK });
    expect(bare.json.tokens).toEqual(refs[2].ids);
  });

  it('a template that writes a call’s arguments as text (DeepSeek’s form) gets the client’s JSON text, as transformers renders it given that text', async () => {
    const ref = refs[3];
    expect(ref.text).toContain('get_weather\n```json\n{"city": "Mantua", "days": 2}\n```');
    const other = await startServer({ models: [`ds=${deepseekDir}`] });
    try {
      expect(other.server.models.get('ds')!.toolCallFormat?.name).toBe('deepseek');
      const r = await postJson(`${other.url}/tokenize`, { model: 'ds', messages: AFTER_CALL.slice(1), tools: TOOLS });
      expect(r.status, r.text).toBe(200);
      expect(r.json.tokens).toEqual(ref.ids);
    } finally {
      await other.close();
    }
  });

  it('Qwen3-Coder’s form: calls written parameter by parameter (booleans and null as Python writes them), the prompt transformers renders; "auto" reads that form', async () => {
    const ref = refs[4];
    const [messages, tools] = [CODER_MESSAGES, CODER_TOOLS];
    expect(ref.text).toContain('<parameter=force>\nTrue\n</parameter>\n<parameter=dry_run>\nFalse\n</parameter>\n<parameter=note>\nNone\n</parameter>');
    expect(ref.text).toContain('<parameter=meta>\n{"who": ["Romeo", "Juliet"], "act": 2}\n</parameter>');
    const other = await startServer({ models: [`coder=${coderDir}`] });
    try {
      expect(other.server.models.get('coder')!.toolCallFormat?.name).toBe('qwen3_coder');
      const r = await postJson(`${other.url}/tokenize`, { model: 'coder', messages, tools });
      expect(r.status, r.text).toBe(200);
      expect(r.json.tokens).toEqual(ref.ids);
      // "auto" is served (the model writes no call here; the reader takes its answer as content)
      const auto = await postJson(`${other.url}/v1/chat/completions`, { model: 'coder', messages, tools, tool_choice: 'auto', max_tokens: 4, temperature: 0 });
      expect(auto.status, auto.text).toBe(200);
      expect(auto.json.choices[0].message.tool_calls ?? []).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('GLM-4.5’s form: calls written key by key (strings as text, other values as JSON), the prompt transformers renders; "auto" is served in that form', async () => {
    const ref = refs[6];
    const [messages, tools] = [CODER_MESSAGES, CODER_TOOLS];
    expect(ref.text).toContain('<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>verona.txt</arg_value>\n<arg_key>lines</arg_key>\n<arg_value>3</arg_value>\n<arg_key>force</arg_key>\n<arg_value>true</arg_value>');
    expect(ref.text).toContain('<arg_key>note</arg_key>\n<arg_value>null</arg_value>\n<arg_key>meta</arg_key>\n<arg_value>{"who": ["Romeo", "Juliet"], "act": 2}</arg_value>\n</tool_call>');
    expect(ref.text).toContain('<|observation|>\n<tool_response>\nwritten\n</tool_response><|user|>\nNow read it.<|assistant|>');
    const other = await startServer({ models: [`glm=${glmDir}`] });
    try {
      const model = other.server.models.get('glm')!;
      expect(model.toolCallFormat?.name).toBe('glm45');
      const r = await postJson(`${other.url}/tokenize`, { model: 'glm', messages, tools });
      expect(r.status, r.text).toBe(200);
      expect(r.json.tokens).toEqual(ref.ids);
      const auto = await postJson(`${other.url}/v1/chat/completions`, { model: 'glm', messages, tools, tool_choice: 'auto', max_tokens: 4, temperature: 0 });
      expect(auto.status, auto.text).toBe(200);
      expect(auto.json.choices[0].message.tool_calls ?? []).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('Granite’s form: the tools as indented JSON, calls as a JSON list after <|tool_call|>, the prompt transformers renders; "auto" is served in that form', async () => {
    const ref = refs[7];
    const [messages, tools] = [CODER_MESSAGES, CODER_TOOLS];
    expect(ref.text).toContain('<|start_of_role|>available_tools<|end_of_role|>\n{\n    "type": "function",\n    "function": {\n        "name": "write_file"');
    expect(ref.text).toContain('<|tool_call|>[{"name": "write_file", "arguments": {"path": "verona.txt", "lines": 3, "force": true');
    const other = await startServer({ models: [`granite=${graniteDir}`] });
    try {
      expect(other.server.models.get('granite')!.toolCallFormat?.name).toBe('granite');
      const r = await postJson(`${other.url}/tokenize`, { model: 'granite', messages, tools });
      expect(r.status, r.text).toBe(200);
      expect(r.json.tokens).toEqual(ref.ids);
      // (its indented tools fill the tiny model's 1,024 positions: "auto" is asked with a smaller tool)
      const ring: ChatCompletionTool[] = [{ type: 'function', function: { name: 'ring', parameters: { type: 'object', properties: {} } } }];
      const auto = await postJson(`${other.url}/v1/chat/completions`, { model: 'granite', messages: [{ role: 'user', content: 'Ring.' }], tools: ring, tool_choice: 'auto', max_tokens: 4, temperature: 0 });
      expect(auto.status, auto.text).toBe(200);
    } finally {
      await other.close();
    }
  });

  it('MiniMax-M2’s form: invokes of parameters (strings as text, other values as JSON), the prompt transformers renders; "auto" is served in that form', async () => {
    const ref = refs[8];
    const [messages, tools] = [CODER_MESSAGES, CODER_TOOLS];
    expect(ref.text).toContain('I shall.\n<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">verona.txt</parameter>\n<parameter name="lines">3</parameter>\n<parameter name="force">true</parameter>\n');
    expect(ref.text).toContain('<parameter name="note">null</parameter>\n<parameter name="meta">{"who": ["Romeo", "Juliet"], "act": 2}</parameter>\n</invoke>\n</minimax:tool_call>[e~[\n]~b]tool\n<response>written</response>[e~[');
    const other = await startServer({ models: [`minimax=${minimaxDir}`] });
    try {
      expect(other.server.models.get('minimax')!.toolCallFormat?.name).toBe('minimax_m2');
      const r = await postJson(`${other.url}/tokenize`, { model: 'minimax', messages, tools });
      expect(r.status, r.text).toBe(200);
      expect(r.json.tokens).toEqual(ref.ids);
      const auto = await postJson(`${other.url}/v1/chat/completions`, { model: 'minimax', messages, tools, tool_choice: 'auto', max_tokens: 4, temperature: 0 });
      expect(auto.status, auto.text).toBe(200);
      expect(auto.json.choices[0].message.tool_calls ?? []).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('an assistant message’s reasoning_content (or reasoning) reaches the template, as transformers passes it', async () => {
    const [ref, conversation] = [refs[5], THINK_CONVERSATION];
    expect(ref.text).toContain('<think>\nMantua is inland; the sky was dark.\n</think>\n\nStormy.');
    const other = await startServer({ models: [`think=${thinkDir}`] });
    try {
      for (const field of ['reasoning_content', 'reasoning']) {
        const messages = conversation.map((m) => ('reasoning_content' in m ? { role: m.role, content: m.content, [field]: m.reasoning_content } : m));
        const r = await postJson(`${other.url}/tokenize`, { model: 'think', messages });
        expect(r.status, r.text).toBe(200);
        expect(r.json.tokens, field).toEqual(ref.ids);
      }
    } finally {
      await other.close();
    }
  });

  it('tool_choice "none" and "auto" (no call written): transformers’ greedy answer to the prompt with tools', async () => {
    for (const tool_choice of ['none', 'auto'] as const) {
      for (const [i, messages] of [ASK, AFTER_CALL].entries()) {
        const r = await client.chat.completions.create({ model: 'tiny', messages, tools: TOOLS, tool_choice, max_tokens: NEW_TOKENS, temperature: 0 });
        const expected = decode(refs[i].generated);
        expect(expected).not.toContain('<tool_call>');
        expect(r.choices[0].message.content, tool_choice).toBe(expected);
        expect(r.choices[0].message.tool_calls ?? []).toEqual([]);
        expect(r.choices[0].finish_reason).toBe('length');
      }
    }
    // "auto" is the default with tools
    const byDefault = await client.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, max_tokens: NEW_TOKENS, temperature: 0 });
    expect(byDefault.choices[0].message.content).toBe(decode(refs[0].generated));
  });

  it('excludeToolsWhenToolChoiceNone (vLLM’s --exclude-tools-when-tool-choice-none): "none" answers the prompt transformers renders without the tools; "auto" still gets them', async () => {
    const other = await startServer({ models: [`tiny=${dir}`], excludeToolsWhenToolChoiceNone: true });
    try {
      const otherClient = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const none = await otherClient.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'none', max_tokens: NEW_TOKENS, temperature: 0 });
      expect(none.choices[0].message.content).toBe(decode(refs[2].generated));
      expect(none.usage!.prompt_tokens).toBe(refs[2].ids.length);
      const auto = await otherClient.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'auto', max_tokens: NEW_TOKENS, temperature: 0 });
      expect(auto.choices[0].message.content).toBe(decode(refs[0].generated));
      expect(auto.usage!.prompt_tokens).toBe(refs[0].ids.length);
    } finally {
      await other.close();
    }
    // the default server renders them under "none" too
    const byDefault = await client.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'none', max_tokens: NEW_TOKENS, temperature: 0 });
    expect(byDefault.usage!.prompt_tokens).toBe(refs[0].ids.length);
  });

  it('"auto" where the text holds a call: the answer before it as content, the call, "tool_calls" when the model stops; streamed as whole', async () => {
    // this model never writes <tool_call>, so a format of its own is given to the server (the
    // library takes any ToolCallFormat): calls open at a piece of the model's own greedy answer
    const body = { model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'auto' as const, max_tokens: 32, temperature: 0 };
    const text = (await client.chat.completions.create(body)).choices[0].message.content!;
    const { at, marker } = markerIn(text);
    let stopAt = at + marker.length + 8;
    while (text.indexOf(text.slice(stopAt, stopAt + 3), at + marker.length) !== stopAt) stopAt++;
    const stop = text.slice(stopAt, stopAt + 3);
    expect(stopAt + 3).toBeLessThan(text.length);
    const format: ToolCallFormat = { name: 'marked', start: marker, end: null, parse: (said) => [{ name: 'get_weather', arguments: JSON.stringify({ said }) }], detect: () => false };
    const other = await startServer({ models: [`tiny=${dir}`], toolCallFormat: format });
    try {
      const otherClient = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      for (const [request, finish] of [
        [body, 'length'],
        [{ ...body, stop }, 'tool_calls'],
      ] as const) {
        const r = await otherClient.chat.completions.create(request);
        const message = r.choices[0].message;
        expect(r.choices[0].finish_reason).toBe(finish);
        expect(message.content).toBe(text.slice(0, at).trimEnd() || null);
        const said = finish === 'length' ? text.slice(at + marker.length) : text.slice(at + marker.length, stopAt);
        expect(message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual([{ name: 'get_weather', arguments: JSON.stringify({ said }) }]);
        const streamed = await otherClient.chat.completions.stream(request).finalChatCompletion();
        expect(streamed.choices[0].message.content).toBe(message.content ?? '');
        expect(streamed.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(message.tool_calls!.map((c) => c.type === 'function' && c.function));
        expect(streamed.choices[0].finish_reason).toBe(finish);
      }
    } finally {
      await other.close();
    }
  });

  it('"auto": a call block the model opens is held to the tools’ schemas (a format whose blocks are one JSON call)', async () => {
    const tools = [TOOLS[0]];
    const body = { model: 'tiny', messages: ASK, tools, tool_choice: 'auto' as const, temperature: 0 };
    const text = (await client.chat.completions.create({ ...body, max_tokens: 32 })).choices[0].message.content!;
    const { at, marker } = markerIn(text);
    const other = await startServer({ models: [`tiny=${dir}`], toolCallFormat: markedJson(marker) });
    try {
      const otherClient = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const r = await otherClient.chat.completions.create(body);
      const message = r.choices[0].message;
      expect(message.content).toBe(text.slice(0, at).trimEnd() || null);
      expect(message.tool_calls).toHaveLength(1);
      const call = message.tool_calls![0];
      if (call.type === 'function') expectValidCall(call);
      // the model went on after the call, free again, until the context was full
      expect(r.choices[0].finish_reason).toBe('length');
      const streamed = await otherClient.chat.completions.stream(body).finalChatCompletion();
      expect(streamed.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(message.tool_calls!.map((c) => c.type === 'function' && c.function));
      // the call streamed as it was written (its name first, as the schema orders it): its arguments in several chunks
      expect(await argumentChunks(otherClient, body)).toBeGreaterThan(1);
      // parallel_tool_calls false: the message ends with that call
      const one = await otherClient.chat.completions.create({ ...body, parallel_tool_calls: false });
      expect(one.choices[0].finish_reason).toBe('tool_calls');
      expect(one.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(message.tool_calls!.map((c) => c.type === 'function' && c.function));
      expect(one.usage!.completion_tokens).toBeLessThan(r.usage!.completion_tokens);
    } finally {
      await other.close();
    }
  });

  it('"auto" with a response format (an agent\'s output schema beside its tools): the answer held to the format, or a call where the model opens one; a forced call takes precedence', async () => {
    const schema = { type: 'object', properties: { verdict: { enum: ['fair', 'foul'] }, days: { type: 'integer' } }, required: ['verdict', 'days'], additionalProperties: false };
    const validate = new Ajv({ strict: false }).compile(schema);
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'verdict', schema, strict: true } };
    const body = { model: 'tiny', messages: ASK, tools: TOOLS, temperature: 0, max_tokens: 80, response_format };
    // this model opens no Hermes block: the answer is the formatted one, as under "none" with the same prompt
    const none = await client.chat.completions.create({ ...body, tool_choice: 'none' });
    const auto = await client.chat.completions.create({ ...body, tool_choice: 'auto' });
    expect(auto.choices[0].message.content).toBe(none.choices[0].message.content);
    expect(auto.choices[0].message.tool_calls ?? []).toEqual([]);
    if (auto.choices[0].finish_reason === 'stop') expect(validate(JSON.parse(auto.choices[0].message.content!))).toBe(true);
    // the format held it: the same request without one answers in free text
    const freeAnswer = (await client.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'auto', temperature: 0, max_tokens: 80 })).choices[0].message.content!;
    expect(tryJson(freeAnswer)).toBeUndefined();

    // a format whose block opens with the model's own first token: the model opens it, and its call is held to the tools
    let first = '';
    for await (const chunk of await client.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'auto', temperature: 0, max_tokens: 3, stream: true })) first ||= chunk.choices[0]?.delta.content ?? '';
    const marker = first.trimStart();
    expect(marker.length).toBeGreaterThan(0);
    const other = await startServer({ models: [`tiny=${dir}`], toolCallFormat: markedJson(marker) });
    try {
      const otherClient = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      // (no max_tokens: this model writes its JSON with much whitespace)
      const calling = { ...body, max_tokens: undefined, tool_choice: 'auto' as const, parallel_tool_calls: false };
      const called = await otherClient.chat.completions.create(calling);
      expect(called.choices[0].message.tool_calls).toHaveLength(1);
      const call = called.choices[0].message.tool_calls![0];
      if (call.type === 'function') expectValidCall(call);
      expect(called.choices[0].message.content ?? '').toBe('');
      expect(called.choices[0].finish_reason).toBe('tool_calls');
      const streamed = await otherClient.chat.completions.stream(calling).finalChatCompletion();
      const nameAndArguments = (calls: typeof called.choices[0]['message']['tool_calls']) => calls!.map((c) => c.type === 'function' && { name: c.function.name, arguments: c.function.arguments });
      expect(nameAndArguments(streamed.choices[0].message.tool_calls)).toEqual(nameAndArguments(called.choices[0].message.tool_calls));
    } finally {
      await other.close();
    }

    // "required" and a named function with a response format: the call is the answer, as without it
    for (const tool_choice of ['required', { type: 'function', function: { name: 'get_weather' } }] as const) {
      const forced = await client.chat.completions.create({ ...body, tool_choice, parallel_tool_calls: false });
      const plain = await client.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, temperature: 0, max_tokens: 80, tool_choice, parallel_tool_calls: false });
      expect(forced.choices[0].message.tool_calls).toEqual(plain.choices[0].message.tool_calls?.map((c) => ({ ...c, id: forced.choices[0].message.tool_calls![0].id })));
    }
  });

  it('"auto" in Qwen3-Coder’s form: a block the model opens is held to the tools’ calls in its tags, and streams as it is written', async () => {
    const tools: ChatCompletionTool[] = [
      { type: 'function', function: { name: 'write_note', parameters: { type: 'object', properties: { mode: { enum: ['fast', 'slow'] }, urgent: { type: 'boolean' }, text: { type: 'string' } } } } },
    ];
    const body = { model: 'tiny', messages: ASK, tools, tool_choice: 'auto' as const, temperature: 0, max_tokens: 160 };
    // (the model writes no Hermes call here: its answer, from which a marker is taken that ends
    // where a token ends, so the block is held from the next token on)
    const { text, at, marker } = await markerAtTokenEnd(client, body, 1 / 3);
    const format: ToolCallFormat = { ...TOOL_CALL_FORMATS.get('qwen3_coder')!, name: 'marked-qwen3-coder', start: marker, detect: () => false };
    const other = await startServer({ models: [`tiny=${dir}`], toolCallFormat: format });
    try {
      const otherClient = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const r = await otherClient.chat.completions.create(body);
      const message = r.choices[0].message;
      // (the answer before the block; after it the model is free again)
      expect((message.content ?? '').startsWith(text.slice(0, at).trimEnd()), message.content ?? '').toBe(true);
      const [call] = message.tool_calls!;
      expect(call.type === 'function' && call.function.name).toBe('write_note');
      const args = call.type === 'function' ? call.function.arguments : '';
      if (r.choices[0].finish_reason === 'tool_calls') {
        const value = JSON.parse(args) as Record<string, unknown>;
        expect(Object.keys(value).every((k) => ['mode', 'urgent', 'text'].includes(k)), args).toBe(true);
        if ('mode' in value) expect(['fast', 'slow']).toContain(value.mode);
        if ('urgent' in value) expect(typeof value.urgent).toBe('boolean');
      } else expect(r.choices[0].finish_reason).toBe('length');
      // streamed: the same call, its arguments in several chunks
      const streamed = await otherClient.chat.completions.stream(body).finalChatCompletion();
      expect(streamed.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(message.tool_calls!.map((c) => c.type === 'function' && c.function));
      const n = await argumentChunks(otherClient, body);
      expect(n).toBeGreaterThan(1);
    } finally {
      await other.close();
    }
  });

  it('"auto" in DeepSeek’s form: a block the model opens is held to the tools’ calls between its tags, each call’s arguments to its parameters, and streams as it is written', async () => {
    const tools: ChatCompletionTool[] = [
      { type: 'function', function: { name: 'set_alarm', parameters: { type: 'object', properties: { hour: { type: 'integer' }, loud: { type: 'boolean' } }, required: ['hour'], additionalProperties: false } } },
    ];
    // (room for the whitespace this model writes between the arguments' tokens, up to the JSON's limit)
    const body = { model: 'tiny', messages: ASK, tools, tool_choice: 'auto' as const, temperature: 0, max_tokens: 600 };
    // a marker from the model's free answer that ends where a token ends (as for Qwen3-Coder's form above)
    const { text, at, marker } = await markerAtTokenEnd(client, body, 1 / 4);
    // V3.1's layout (the name, then the arguments as they are) in ASCII tags: DeepSeek's own are
    // tokens of its vocabulary, which this tiny model's has not
    const format: ToolCallFormat = { ...deepseekStyle({ callsBegin: marker, callsEnd: '</calls>', callBegin: '<call>', callEnd: '</call>', sep: '<sep>' }, 'v3.1'), name: 'marked-deepseek', detect: () => false };
    const other = await startServer({ models: [`tiny=${dir}`], toolCallFormat: format });
    try {
      const otherClient = new OpenAI({ baseURL: `${other.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const r = await otherClient.chat.completions.create({ ...body, parallel_tool_calls: false });
      const message = r.choices[0].message;
      expect((message.content ?? '').startsWith(text.slice(0, at).trimEnd()), message.content ?? '').toBe(true);
      const [call] = message.tool_calls!;
      expect(message.tool_calls).toHaveLength(1);
      expect(call.type === 'function' && call.function.name).toBe('set_alarm');
      const args = call.type === 'function' ? call.function.arguments : '';
      // the block closed (one call: the generation ends with it), its arguments valid under the parameters
      expect(r.choices[0].finish_reason, args).toBe('tool_calls');
      expect(new Ajv().validate(tools[0].type === 'function' ? tools[0].function.parameters! : {}, JSON.parse(args)), args).toBe(true);
      // streamed: the same call, its arguments in several chunks
      const streamed = await otherClient.chat.completions.stream({ ...body, parallel_tool_calls: false }).finalChatCompletion();
      expect(streamed.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(message.tool_calls!.map((c) => c.type === 'function' && c.function));
      expect(await argumentChunks(otherClient, { ...body, parallel_tool_calls: false })).toBeGreaterThan(1);
    } finally {
      await other.close();
    }
  });

  it('a named function: one call of it, arguments valid under its parameters; streamed through the client’s helper, the same call', async () => {
    for (const name of ['get_weather', 'send_letter']) {
      // no max_tokens: the rest of the model's 1,024 positions (the tools fill most of them)
      const body = { model: 'tiny', messages: AFTER_CALL, tools: TOOLS, tool_choice: { type: 'function' as const, function: { name } }, temperature: 0 };
      const r = await client.chat.completions.create(body);
      const choice = r.choices[0];
      expect(choice.finish_reason).toBe('stop');
      expect(choice.message.content).toBeNull();
      expect(choice.message.tool_calls).toHaveLength(1);
      const call = choice.message.tool_calls![0];
      expect(call.type).toBe('function');
      if (call.type !== 'function') continue;
      expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
      expect(call.function.name).toBe(name);
      expectValidCall(call);
      const streamed = await client.chat.completions.stream(body).finalChatCompletion();
      const sc = streamed.choices[0].message.tool_calls![0];
      expect(sc.type === 'function' && sc.function).toEqual(call.function);
      expect(streamed.choices[0].finish_reason).toBe('stop');
    }
  });

  it('the client’s strict tools from zod (zodFunction) and chat.completions.parse: the arguments come back parsed into the schema’s type', async () => {
    const Letter = z.object({ to: z.enum(['Romeo', 'Juliet']), urgent: z.boolean(), note: z.enum(['in haste', 'by the friar']).nullable() });
    const r = await client.chat.completions.parse({
      model: 'tiny',
      messages: ASK,
      tools: [zodFunction({ name: 'send_letter', parameters: Letter })],
      tool_choice: { type: 'function', function: { name: 'send_letter' } },
      temperature: 0,
    });
    const call = r.choices[0].message.tool_calls?.[0];
    expect(call?.type).toBe('function');
    if (call?.type !== 'function') return;
    expect(Letter.parse(call.function.parsed_arguments)).toEqual(JSON.parse(call.function.arguments));
  });

  it('"required": calls of the given tools, valid under each one’s parameters (one when parallel_tool_calls is false); sampled choices too', async () => {
    for (const parallel_tool_calls of [true, false]) {
      const body = { model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'required' as const, parallel_tool_calls, temperature: 0 };
      const r = await client.chat.completions.create(body);
      const choice = r.choices[0];
      const calls = choice.message.tool_calls!;
      expect(calls.length).toBeGreaterThanOrEqual(1);
      const cut = parallel_tool_calls && choice.finish_reason === 'length';
      // (cut by the context: the last call may be one the end of the generation cut inside its arguments)
      for (const [i, call] of calls.entries()) {
        if (call.type !== 'function') continue;
        if (cut && i === calls.length - 1 && tryJson(call.function.arguments) === undefined) continue;
        expectValidCall(call);
      }
      if (cut) {
        // this model goes on past its call(s) until the context is full: the calls that closed, and
        // what was written of a further one: a call where its name was written, else content
        expect(choice.message.content === null || choice.message.content.startsWith('{')).toBe(true);
      } else {
        expect(choice.finish_reason).toBe('tool_calls');
        expect(choice.message.content).toBeNull();
      }
      if (!parallel_tool_calls) expect(calls).toHaveLength(1);
      const streamed = await client.chat.completions.stream(body).finalChatCompletion();
      expect(streamed.choices[0].message.tool_calls!.map((c) => c.type === 'function' && c.function)).toEqual(calls.map((c) => c.type === 'function' && c.function));
      expect(streamed.choices[0].message.content).toBe(choice.message.content);
      expect(streamed.choices[0].finish_reason).toBe(choice.finish_reason);
    }
    const sampled = await client.chat.completions.create({ model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'required', temperature: 1, n: 2, seed: 11 });
    for (const c of sampled.choices) {
      if (c.finish_reason === 'length') continue; // a sampled Shakespeare model may not finish
      expect(c.finish_reason).toBe('tool_calls');
      for (const call of c.message.tool_calls!) if (call.type === 'function') expectValidCall(call);
    }
  });

  it('a forced call streams as it is written; cut short by max_tokens, it ends with "length" and what was written of its arguments', async () => {
    const body = { model: 'tiny', messages: ASK, tools: TOOLS, tool_choice: 'required' as const, parallel_tool_calls: false, temperature: 0 };
    const whole = await client.chat.completions.create(body);
    expect(whole.choices[0].message.tool_calls).toHaveLength(1);
    const call = whole.choices[0].message.tool_calls![0];
    if (call.type !== 'function') throw new Error('a function call was expected');
    // streamed: the arguments come in several chunks, and add up to the whole response's
    // (return_token_ids: the tokens each chunk stands for, to cut the generation inside the arguments)
    const pieces: string[] = [];
    let tokens = 0;
    let tokensToLastPiece = 0;
    for await (const chunk of await client.chat.completions.create({ ...body, stream: true, return_token_ids: true } as never as typeof body & { stream: true })) {
      tokens += ((chunk.choices[0] as { token_ids?: number[] } | undefined)?.token_ids ?? []).length;
      const args = chunk.choices[0]?.delta.tool_calls?.[0]?.function?.arguments;
      if (args) {
        pieces.push(args);
        tokensToLastPiece = tokens;
      }
    }
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe(call.function.arguments);
    const cut = await client.chat.completions.create({ ...body, max_tokens: tokensToLastPiece - 1 });
    expect(cut.choices[0].finish_reason).toBe('length');
    expect(cut.choices[0].message.content).toBeNull();
    const [partial] = cut.choices[0].message.tool_calls!;
    expect(partial.type === 'function' && partial.function.name).toBe(call.function.name);
    const written = partial.type === 'function' ? partial.function.arguments : '';
    expect(call.function.arguments.startsWith(written), written).toBe(true);
    expect(written.length).toBeLessThan(call.function.arguments.length);
    expect(() => JSON.parse(written)).toThrow();
  });

  it('requests that cannot be served as asked are 400s naming the field', async () => {
    const chat = `${s.url}/v1/chat/completions`;
    const base = { model: 'tiny', messages: ASK, max_tokens: 4 };
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ tool_choice: 'required' }, 'tool_choice', /needs tools/],
      [{ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'absent' } } }, 'tool_choice.function.name', /not among the tools/],
      [{ tools: [TOOLS[0], TOOLS[0]] }, 'tools.1.function.name', /given twice/],
      [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { not: { type: 'string' } } } } } }], tool_choice: 'required' }, 'tools.0.function.parameters', /"not" is not supported/],
      [{ messages: [{ role: 'user', content: null }] }, 'messages.0.content', /null only in an assistant message with tool_calls/],
      [{ messages: [...ASK, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] }] }, 'messages.1.tool_calls.0.function.arguments', /not JSON text/],
      [{ model: 'plain', tools: TOOLS }, 'tool_choice', /writes no tool-call format/],
    ];
    for (const [fields, param, message] of cases) {
      const r = await postJson(chat, { ...base, ...fields });
      expect(r.status, JSON.stringify(fields)).toBe(400);
      expect(r.json.error.param).toBe(param);
      expect(r.json.error.message).toMatch(message);
    }
    // rfid-moe serve --tool-call-parser: a format for every model (then "auto" serves), an unknown one exits 2
    await expect(spawnServeCli([`plain=${plainDir}`, '--tool-call-parser', 'xml'])).rejects.toThrow(/exited with 2.*--tool-call-parser must be one of qwen3_coder, glm45, minimax_m2, hermes, mistral, deepseek, granite or none/s);
    const cli = await spawnServeCli([`plain=${plainDir}`, '--port', '0', '--quiet', '--tool-call-parser', 'hermes']);
    try {
      const r = await postJson(`${cli.url}/v1/chat/completions`, { ...base, model: 'plain', tools: TOOLS, temperature: 0 });
      expect(r.status, r.text).toBe(200);
      expect(r.json.choices[0].message.content.length).toBeGreaterThan(0);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
    // a model whose template has no call format still takes forced calls
    const forced = await client.chat.completions.create({ model: 'plain', messages: ASK, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, temperature: 0 });
    expect(forced.choices[0].finish_reason).toBe('stop');
    const call = forced.choices[0].message.tool_calls![0];
    if (call.type === 'function') expectValidCall(call);
  });
});
