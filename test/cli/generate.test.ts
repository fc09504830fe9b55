/**
 * `rfid-moe generate` in a child process on the shipped model: streamed greedy text equals the
 * transformers golden (test/golden/generate), --json carries ids and usage, stop strings cut the
 * text, --chat builds the prompt the server builds for the same conversation, and bad flags exit 2
 * with one message.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/index.js';
import { repoRoot } from '../helpers/shared-data.js';
import { cliArgs } from '../helpers/cli.js';
import { CHATML, chatmlWithGenerationSuffix, postJson, startServer, tinyWithChatTemplate, withHarmonyMarkers } from '../serve/helpers.js';
import { GPT_OSS_STYLE } from '../serve/gpt-oss-template.js';
import { REASONING_PARSERS } from '../../src/serve/reasoning.js';

const run = promisify(execFile);
const model = path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare');
const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'golden', 'generate', 'mixtral-tiny-shakespeare.json'), 'utf8')) as {
  cases: Array<{ prompt: string; tokens: number[]; text: string }>;
};

/** a run of the CLI that takes this long has hung: killed, and the failure says which run and what it had written */
const CLI_TIMEOUT_MS = 60_000;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...cliArgs, ...args], { cwd: repoRoot, timeout: CLI_TIMEOUT_MS });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string; killed?: boolean; signal?: string };
    if (e.killed) throw new Error(`rfid-moe ${args.join(' ')} ran past ${CLI_TIMEOUT_MS / 1000} s and was killed (${e.signal}); stderr so far:\n${e.stderr}\nstdout so far:\n${e.stdout}`);
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('rfid-moe generate', () => {
  const c = golden.cases[1];

  it('streams the greedy completion transformers gives to stdout, notes on stderr', async () => {
    const r = await cli('generate', model, '--prompt', c.prompt, '--temperature', '0', '--max-new-tokens', '64', '--ignore-eos');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(c.text + '\n');
    expect(r.stderr).toMatch(/64 token\(s\) after a 15-token prompt .* finish: length/);
  });

  it('--json gives one object with the token ids and usage, with the files mapped (the default) or read (--no-mmap)', async () => {
    for (const flags of [[], ['--no-mmap']]) {
      const r = await cli('generate', model, '--prompt', c.prompt, '--temperature', '0', '--max-new-tokens', '20', '--ignore-eos', '--json', '--quiet', ...flags);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ ok: true, tokens: c.tokens.slice(0, 20), usage: { promptTokens: 15, completionTokens: 20, finishReason: 'length' } });
      expect(c.text.startsWith(out.text)).toBe(true);
    }
  });

  it('a stop string ends generation before it; a seed makes sampling reproducible', async () => {
    const stop = c.text.slice(c.text.indexOf('people') + 2, c.text.indexOf('people') + 6);
    const r = await cli('generate', model, '--prompt', c.prompt, '--temperature', '0', '--stop', stop, '--json');
    const out = JSON.parse(r.stdout);
    expect(out.usage.finishReason).toBe('stop');
    expect(out.text).toBe(c.text.slice(0, c.text.indexOf(stop)));
    const a = JSON.parse((await cli('generate', model, '--prompt', 'ROMEO:', '--seed', '42', '--max-new-tokens', '16', '--json')).stdout);
    const b = JSON.parse((await cli('generate', model, '--prompt', 'ROMEO:', '--seed', '42', '--max-new-tokens', '16', '--json')).stdout);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.usage.seed).toBe(42);
  });

  it('--top-k 1 samples the greedy tokens at any temperature; --top-p keeps sampling reproducible under a seed', async () => {
    const r = await cli('generate', model, '--prompt', c.prompt, '--temperature', '1.5', '--top-k', '1', '--seed', '7', '--max-new-tokens', '20', '--ignore-eos', '--json', '--quiet');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).tokens).toEqual(c.tokens.slice(0, 20));
    const args = ['generate', model, '--prompt', 'ROMEO:', '--top-p', '0.9', '--top-k', '40', '--seed', '3', '--max-new-tokens', '12', '--json', '--quiet'];
    const [a, b] = await Promise.all([cli(...args), cli(...args)]);
    expect(JSON.parse(a.stdout).tokens).toEqual(JSON.parse(b.stdout).tokens);
  });

  it('--regex and --choice hold the completion to a full match or one of the texts', async () => {
    const date = '(19|20)\\d\\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])';
    const r = await cli('generate', model, '--prompt', 'ROMEO:\nWhat day is it?\nJULIET:\n', '--temperature', '0', '--regex', date, '--json', '--quiet');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.text).toMatch(new RegExp(`^(?:${date})$`));
    expect(out.usage.finishReason).toBe('stop');
    const choices = ['my lord', 'no, madam', 'never'];
    const sampled = await cli('generate', model, '--prompt', c.prompt, '--seed', '5', ...choices.flatMap((t) => ['--choice', t]));
    expect(sampled.code, sampled.stderr).toBe(0);
    expect(choices).toContain(sampled.stdout.replace(/\n$/, ''));
    const both = await cli('generate', model, '--prompt', 'x', '--regex', 'a+', '--choice', 'a');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^rfid-moe: give one of --regex and --choice/m);
    const lookbehind = await cli('generate', model, '--prompt', 'x', '--regex', '(?<=a)a');
    expect(lookbehind.code).toBe(2);
    expect(lookbehind.stderr).toMatch(/^rfid-moe: --regex: the pattern "\(\?<=a\)a" is not supported: .*lookbehinds/m);
  });

  it('bad flags and a too-long prompt exit 2 with one message', async () => {
    const bad = await cli('generate', model, '--prompt', 'x', '--top-p', '1.5');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^rfid-moe: --top-p must be a number in \(0, 1\]/m);
    const long = await cli('generate', model, '--prompt', 'the '.repeat(50), '--context-length', '16', '--json');
    expect(long.code).toBe(2);
    expect(JSON.parse(long.stdout)).toMatchObject({ ok: false, error: { kind: 'ContextLengthError' } });
    // a wrong model path is reported as one, not as a missing tokenizer
    const missing = await cli('generate', path.join(tmpdir(), 'rfid-no-such-model'), '--prompt', 'x');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/rfid-no-such-model does not exist; pass a checkpoint directory/);
    expect(missing.stderr).not.toMatch(/tokenizer/);
  });

  it('--matmul-activations bf16 rounds, says so, and is refused beside --no-bf16-weights, which would make it a no-op', async () => {
    const args = ['generate', model, '--prompt', c.prompt, '--temperature', '0', '--max-new-tokens', '8', '--ignore-eos', '--json'];
    const rounded = await cli(...args, '--matmul-activations', 'bf16');
    expect(rounded.code).toBe(0);
    expect(rounded.stderr).toMatch(/engine: .*BF16 matmul activations/);
    expect(JSON.parse(rounded.stdout)).toMatchObject({ ok: true, usage: { completionTokens: 8 } });
    const both = await cli(...args, '--matmul-activations', 'bf16', '--no-bf16-weights');
    expect(both.code).toBe(2);
    expect(JSON.parse(both.stdout)).toMatchObject({ ok: false, error: { kind: 'OptionError', message: expect.stringMatching(/^--matmul-activations bf16 .* --no-bf16-weights widens them all to f32: drop one of the two$/) } });
    const unknown = await cli(...args, '--matmul-activations', 'f16');
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ ok: false, error: { kind: 'UsageError', message: expect.stringMatching(/Allowed choices are f32, bf16/) } });
  });
});

describe('rfid-moe generate --chat', () => {
  it('sends the prompt as a user message through the chat template: the prompt and greedy answer the server gives the same conversation', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'rfid-gen-chat-'));
    const s = await startServer({ models: [`chat=${tinyWithChatTemplate(path.join(work, 'chat'))}`] });
    try {
      const template = path.join(work, 'chatml.jinja');
      writeFileSync(template, CHATML);
      const messages = [
        { role: 'system', content: 'Thou art brief.' },
        { role: 'user', content: 'Where is Romeo?' },
      ];
      // the shipped model has no template of its own: given one on the command line
      const r = await cli('generate', model, '--chat', '--system', messages[0].content, '--prompt', messages[1].content, '--chat-template', template, '--temperature', '0', '--max-new-tokens', '12', '--json');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { chatPrompt: string; text: string; usage: { promptTokens: number } };
      const ids = (await postJson(`${s.url}/tokenize`, { model: 'chat', messages })).json.tokens as number[];
      expect(out.usage.promptTokens).toBe(ids.length);
      expect(out.chatPrompt).toBe((await postJson(`${s.url}/detokenize`, { model: 'chat', tokens: ids })).json.prompt);
      const answer = await postJson(`${s.url}/v1/chat/completions`, { model: 'chat', messages, max_tokens: 12, temperature: 0 });
      expect(out.text.length).toBeGreaterThan(0);
      expect(out.text).toBe(answer.json.choices[0].message.content);
      // a model without a template, and chat flags without --chat, are refused with what to do
      const none = await cli('generate', model, '--chat', '--prompt', 'x');
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/--chat: .* has no chat template .*; give one with --chat-template FILE, or leave out --chat/);
      const stray = await cli('generate', model, '--system', 'x', '--prompt', 'x');
      expect(stray.code).toBe(2);
      expect(stray.stderr).toMatch(/--system applies to --chat only/);
    } finally {
      await s.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('rfid-moe generate --reasoning-parser', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rfid-gen-reasoning-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('reads the answer apart as the server does: a prompt that opens <think>, the reasoning to stderr and the answer to stdout', async () => {
    const dir = tinyWithChatTemplate(path.join(work, 'think'), chatmlWithGenerationSuffix('<think>\n'));
    const s = await startServer({ models: [`think=${dir}`], reasoningParser: REASONING_PARSERS.get('deepseek_r1')! });
    try {
      const args = ['generate', dir, '--chat', '--prompt', 'Where is Romeo?', '--reasoning-parser', 'deepseek_r1', '--temperature', '0', '--max-new-tokens', '12', '--quiet'];
      const r = await cli(...args, '--json');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { text: string; reasoning: string; content: string };
      const answer = (await postJson(`${s.url}/v1/chat/completions`, { model: 'think', messages: [{ role: 'user', content: 'Where is Romeo?' }], max_tokens: 12, temperature: 0 })).json.choices[0].message;
      // the prompt opened the reasoning and the tiny model never closes it: all of it is reasoning
      expect(out.reasoning.length).toBeGreaterThan(0);
      expect(out.reasoning).toBe(answer.reasoning_content);
      expect(out.content).toBe(answer.content ?? '');
      expect(out.reasoning + out.content).toBe(out.text);
      const plain = await cli(...args);
      expect(plain.code, plain.stderr).toBe(0);
      expect(plain.stdout.trim()).toBe(out.content.trim());
      expect(plain.stderr).toContain(out.reasoning);
    } finally {
      await s.close();
    }
  });

  it('gpt-oss: --reasoning-effort and --chat-template-kwargs reach its template, and its channels are read apart as the server reads them', async () => {
    const dir = withHarmonyMarkers(tinyWithChatTemplate(path.join(work, 'gptoss'), GPT_OSS_STYLE));
    const s = await startServer({ models: [`gptoss=${dir}`], reasoningParser: REASONING_PARSERS.get('openai_gptoss')! });
    try {
      const messages = [
        { role: 'system', content: 'Thou art brief.' },
        { role: 'user', content: 'Where is Romeo?' },
      ];
      const args = ['generate', dir, '--chat', '--system', messages[0].content, '--prompt', messages[1].content, '--reasoning-parser', 'openai_gptoss', '--temperature', '0', '--max-new-tokens', '12', '--json'];
      const r = await cli(...args, '--reasoning-effort', 'low');
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { chatPrompt: string; reasoning: string; content: string; usage: { promptTokens: number } };
      expect(out.chatPrompt).toContain('Reasoning: low');
      const answer = (await postJson(`${s.url}/v1/chat/completions`, { model: 'gptoss', messages, max_tokens: 12, temperature: 0, reasoning_effort: 'low' })).json;
      expect(out.usage.promptTokens).toBe(answer.usage.prompt_tokens);
      expect(out.reasoning).toBe(answer.choices[0].message.reasoning_content ?? '');
      expect(out.content).toBe(answer.choices[0].message.content ?? '');
      // the kwargs' own effort wins, as chat_template_kwargs' does on the server
      const high = await cli(...args, '--reasoning-effort', 'low', '--chat-template-kwargs', '{"reasoning_effort": "high"}');
      expect(JSON.parse(high.stdout).chatPrompt).toContain('Reasoning: high');
      for (const [flags, message] of [
        [['--reasoning-effort', 'minimal'], /--reasoning-effort must be low, medium or high, got "minimal"/],
        [['--chat-template-kwargs', '[1]'], /--chat-template-kwargs must be a JSON object of template variables/],
        [['--chat-template-kwargs', '{oops'], /--chat-template-kwargs must be a JSON object of template variables: /],
      ] as const) {
        const bad = await cli(...args.filter((a) => a !== '--json'), ...flags);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(message);
      }
    } finally {
      await s.close();
    }
  });
});

describe('rfid-moe generate on compressed outputs', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rfid-gen-cli-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  beforeAll(async () => {
    const ckpt = await openCheckpoint(model);
    try {
      for (const storage of ['factored', 'dense'] as const) {
        await compress(ckpt, { retain: 0.6 }, { out: path.join(work, storage), storage, selfSampled: { samples: 4, seqLen: 32 }, evaluation: false, engine: 'native' });
      }
    } finally {
      await ckpt.close();
    }
  }, 240_000);

  it('runs factored and dense checkpoints of the same compression to the same greedy tokens', async () => {
    const args = ['--prompt', golden.cases[0].prompt, '--temperature', '0', '--max-new-tokens', '24', '--ignore-eos', '--json'];
    const factored = await cli('generate', path.join(work, 'factored'), ...args);
    const dense = await cli('generate', path.join(work, 'dense'), ...args);
    expect(factored.code).toBe(0);
    expect(factored.stderr).toMatch(/compressed \(factored\)/);
    expect(dense.stderr).toMatch(/compressed \(dense\)/);
    const f = JSON.parse(factored.stdout);
    const d = JSON.parse(dense.stdout);
    expect(f.usage.completionTokens).toBe(24);
    expect(f.tokens).toEqual(d.tokens);
  }, 60_000);
});
