/**
 * A chat template given to the server in place of a model's own (vLLM's --chat-template). Truth:
 * the same model with the same template in its tokenizer_config.json (the form transformers
 * reads, which the chat-template suite checks against transformers) gives the same prompt and the
 * same greedy answer.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChatTemplates } from '../../src/cli/commands/serve.js';
import { CHATML, postJson, spawnServeCli, startServer, tinyWithChatTemplate, TINY_DIR, type Running } from './helpers.js';

const MESSAGES = [
  { role: 'system', content: 'Thou art brief.' },
  { role: 'user', content: 'Where is Romeo?' },
];

let work: string;
let s: Running;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'rfid-chat-template-'));
  s = await startServer({ models: [`plain=${TINY_DIR}`, `own=${tinyWithChatTemplate(path.join(work, 'own'))}`, `broken=${TINY_DIR}`], chatTemplate: { plain: CHATML, broken: '{% if %}' } });
}, 120_000);

afterAll(async () => {
  await s?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a chat template given to the server', () => {
  it('serves chat for a model without one, as the same template in the model’s own files does', async () => {
    const prompt = async (model: string) => (await postJson(`${s.url}/tokenize`, { model, messages: MESSAGES })).json.tokens as number[];
    expect(await prompt('plain')).toEqual(await prompt('own'));
    const answer = async (model: string) => (await postJson(`${s.url}/v1/chat/completions`, { model, messages: MESSAGES, max_tokens: 12, temperature: 0 })).json.choices[0].message.content as string;
    const own = await answer('own');
    expect(own.length).toBeGreaterThan(0);
    expect(await answer('plain')).toBe(own);
    // and /tokenizer_info shows the template in use
    expect((await fetch(`${s.url}/tokenizer_info?model=plain`).then((r) => r.json()) as { chat_template: string }).chat_template).toBe(CHATML);
  });

  it('a template that does not parse refuses its model, saying why; the others serve', async () => {
    expect(s.server.models.has('broken')).toBe(false);
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'broken', messages: MESSAGES, max_tokens: 2 });
    expect(r.status).toBe(503);
    expect(r.json.error.message).toMatch(/the chat template given for it cannot be used: it does not parse as a Jinja template/);
  });

  it('templates for models that are not served are refused before anything loads', async () => {
    await expect(startServer({ models: [`plain=${TINY_DIR}`], chatTemplate: { other: CHATML } })).rejects.toThrow(/chat templates are given for other, not among the served models \(plain\)/);
  });

  it('--chat-template: a file or the template itself, for every model or model=file for one', async () => {
    const file = path.join(work, 'chatml.jinja');
    writeFileSync(file, CHATML);
    const ids = ['a', 'b'];
    expect(parseChatTemplates(undefined, ids)).toBeUndefined();
    expect(parseChatTemplates([file], ids)).toBe(CHATML);
    expect(parseChatTemplates(['{{ messages[0].content }}'], ids)).toBe('{{ messages[0].content }}');
    expect(parseChatTemplates([`a=${file}`], ids)).toEqual({ a: CHATML });
    // one for all and one for a: b gets the one for all
    expect(parseChatTemplates([`a=${file}`, '{{ x }}'], ids)).toEqual({ a: CHATML, b: '{{ x }}' });
    // a prefix that is no served model's id is part of the value
    expect(() => parseChatTemplates([`c=${file}`], ids)).toThrow(/no file c=/);
    expect(() => parseChatTemplates([path.join(work, 'missing.jinja')], ids)).toThrow(/--chat-template: no file .*missing\.jinja/);
    expect(() => parseChatTemplates([file, file], ids)).toThrow(/given twice for every model/);
    expect(() => parseChatTemplates([`a=${file}`, `a=${file}`], ids)).toThrow(/given twice for a/);
    // through the command line
    const cli = await spawnServeCli([`plain=${TINY_DIR}`, '--chat-template', file, '--port', '0', '--quiet']);
    try {
      const r = await postJson(`${cli.url}/v1/chat/completions`, { model: 'plain', messages: MESSAGES, max_tokens: 2 });
      expect(r.status, r.text).toBe(200);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });
});
