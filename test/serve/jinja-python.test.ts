/**
 * Chat templates render Python's str() of booleans, None, lists and dicts as transformers (Python's
 * Jinja) renders them (src/serve/jinja-python.ts): a template that prints template variables with
 * `|string` and `{{ }}`, rendered by the server's renderChat and by transformers'
 * apply_chat_template with the same variables. Skipped without the venv.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { renderChat } from '../../src/serve/chat-template.js';
import { describeWithTransformers } from '../helpers/python.js';
import { hfChatReference } from './chat-reference.js';
import { tinyWithChatTemplate } from './helpers.js';

const VALUES: Record<string, unknown> = {
  yes: true,
  no: false,
  nothing: null,
  list: ['string', 'null', 3, 0.5, true, null, "it's", 'say "hi"', 'both \' and "', 'tab\there\nnewline', 'é ü 😀'],
  dict: { type: ['integer', 'null'], nested: { flags: [false], empty: {} }, 'key with \'quote\'': 1.25 },
  empty: [],
  text: 'plain text',
  integer: 7,
  fraction: 0.125,
};
const TEMPLATE = [
  '{%- for m in messages %}{{ m.content }}{% endfor %}',
  ...Object.keys(VALUES).map((k) => `\n${k}: [{{ ${k} | string }}]`),
  '\nprinted: {{ yes }} {{ no }} {{ integer }} {{ text }}',
  "\nin text: {{ 'type=' ~ (dict.type | string) }}",
  '\ntests: {{ yes is true }} {{ nothing is none }} {{ list is sequence }} {{ dict is mapping }}',
].join('');

const work = mkdtempSync(path.join(tmpdir(), 'rfid-jinja-python-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describeWithTransformers('Python’s str() in chat templates', () => {
  it('booleans, None, lists and dicts render as transformers renders them', async () => {
    const dir = tinyWithChatTemplate(path.join(work, 'model'), TEMPLATE);
    const messages = [{ role: 'user' as const, content: 'values' }];
    const [ref] = hfChatReference(dir, [{ messages, kwargs: VALUES, options: { add_generation_prompt: false } }], 1);
    const ours = await renderChat(TEMPLATE, 'model', messages, { bos: null, eos: null }, VALUES, { addGenerationPrompt: false });
    expect(ours).toBe(ref.text);
    // what it renders (read from transformers' output, so the comparison above is not of two empty texts)
    expect(ref.text).toContain("yes: [True]\nno: [False]\nnothing: [None]");
    expect(ref.text).toContain("dict: [{'type': ['integer', 'null'], 'nested': {'flags': [False], 'empty': {}}, \"key with 'quote'\": 1.25}]");
  });
});
