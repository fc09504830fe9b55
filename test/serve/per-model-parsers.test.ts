/**
 * Which reasoning parser and tool-call format each served model gets: gpt-oss models read their
 * harmony channels apart by default (their only format; vLLM reads every gpt-oss model so), the
 * others none unless one is named; a model's tool-call format is read from its chat template
 * unless one is named. `--reasoning-parser` and `--tool-call-parser` name one for every model or,
 * as MODEL=NAME, for one (none turns a default off). And `generate --chat` on a gpt-oss model
 * reads its answer apart by default. Independent truth: the tables (REASONING_PARSERS,
 * TOOL_CALL_FORMATS) and the server's own chat answers.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReasoningParsers, parseToolCallParsers } from '../../src/cli/commands/serve.js';
import { TOOL_CALL_FORMATS } from '../../src/serve/tools/formats/index.js';
import { REASONING_PARSERS } from '../../src/serve/reasoning.js';
import type { ServeOptions } from '../../src/serve/server.js';
import type { ServedModel } from '../../src/serve/models.js';
import { cliArgs } from '../helpers/cli.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';
import { GPT_OSS_STYLE } from './gpt-oss-template.js';
import { HERMES_TOOLS_CHATML, postJson, startServer, tinyWithChatTemplate, TINY_DIR, withHarmonyMarkers } from './helpers.js';

const run = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'rfid-reasoning-defaults-'));
let oss: string;
let chat: string;

beforeAll(async () => {
  // a gpt-oss checkpoint with the tiny model's tokenizer (harmony's markers as special tokens) and a template in gpt-oss's form
  oss = path.join(work, 'oss');
  await makeTinyCheckpoint(oss, 'gpt_oss', { seed: 3, hiddenSize: 64, expertIntermediateSize: 32, numExperts: 4, topK: 2, dtype: 'BF16', vocabSize: 4096 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(TINY_DIR, f), path.join(oss, f));
  const configFile = path.join(oss, 'tokenizer_config.json');
  writeFileSync(configFile, JSON.stringify({ ...(JSON.parse(readFileSync(configFile, 'utf8')) as object), chat_template: GPT_OSS_STYLE }));
  withHarmonyMarkers(oss);
  chat = tinyWithChatTemplate(path.join(work, 'chat'));
}, 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The name of what each model of a server over `models` with `opts` gets (`pick`: its reasoning parser or tool-call format), by model id. */
async function namesBy(models: string[], opts: Partial<ServeOptions>, pick: (m: ServedModel) => { name: string } | null): Promise<Record<string, string | null>> {
  const s = await startServer({ models, ...opts });
  try {
    return Object.fromEntries([...s.server.models.values()].map((m) => [m.id, pick(m)?.name ?? null]));
  } finally {
    await s.close();
  }
}

describe('reasoning parsers and tool-call formats by model', () => {
  it('a gpt-oss model reads harmony by default and the others nothing; a parser named for all or per model wins; none turns the default off', async () => {
    const parsers = (reasoningParser?: ServeOptions['reasoningParser']) =>
      namesBy([`oss=${oss}`, `chat=${chat}`], reasoningParser === undefined ? {} : { reasoningParser }, (m) => m.reasoningParser);
    expect(await parsers()).toEqual({ oss: 'openai_gptoss', chat: null });
    expect(await parsers(null)).toEqual({ oss: null, chat: null });
    expect(await parsers(REASONING_PARSERS.get('qwen3')!)).toEqual({ oss: 'qwen3', chat: 'qwen3' });
    expect(await parsers({ chat: REASONING_PARSERS.get('deepseek_r1')! })).toEqual({ oss: 'openai_gptoss', chat: 'deepseek_r1' });
    expect(await parsers({ oss: null })).toEqual({ oss: null, chat: null });
  });

  it('--reasoning-parser [model=]name: one for all, one per model, none; unknown names and models and repeats refused', () => {
    const ids = ['oss', 'chat'];
    const qwen3 = REASONING_PARSERS.get('qwen3')!;
    expect(parseReasoningParsers(undefined, ids)).toBeUndefined();
    expect(parseReasoningParsers(['qwen3'], ids)).toBe(qwen3);
    expect(parseReasoningParsers(['none'], ids)).toBeNull();
    expect(parseReasoningParsers(['oss=none'], ids)).toEqual({ oss: null });
    expect(parseReasoningParsers(['oss=none', 'qwen3'], ids)).toEqual({ oss: null, chat: qwen3 });
    expect(() => parseReasoningParsers(['x=qwen3'], ids)).toThrow(/--reasoning-parser x=qwen3: no model is served as "x" \(the models: oss, chat\)/);
    expect(() => parseReasoningParsers(['oss=bogus'], ids)).toThrow(/--reasoning-parser must be one of .* or none, got "bogus"/);
    expect(() => parseReasoningParsers(['qwen3', 'glm45'], ids)).toThrow(/given twice for every model/);
    expect(() => parseReasoningParsers(['oss=qwen3', 'oss=none'], ids)).toThrow(/given twice for oss/);
  });

  it('a tool-call format for every model or by model id; a model not named keeps the one its template writes', async () => {
    const hermes = TOOL_CALL_FORMATS.get('hermes')!;
    const mistral = TOOL_CALL_FORMATS.get('mistral')!;
    const tools = tinyWithChatTemplate(path.join(work, 'tools'), HERMES_TOOLS_CHATML);
    const formats = (toolCallFormat?: ServeOptions['toolCallFormat']) =>
      namesBy([`tools=${tools}`, `chat=${chat}`], toolCallFormat === undefined ? {} : { toolCallFormat }, (m) => m.toolCallFormat);
    expect(await formats()).toEqual({ tools: 'hermes', chat: null });
    expect(await formats(mistral)).toEqual({ tools: 'mistral', chat: 'mistral' });
    expect(await formats({ chat: hermes })).toEqual({ tools: 'hermes', chat: 'hermes' });
    expect(await formats({ tools: null })).toEqual({ tools: null, chat: null });
    const ids = ['tools', 'chat'];
    expect(parseToolCallParsers(['chat=hermes', 'none'], ids)).toEqual({ chat: hermes, tools: null });
    expect(parseToolCallParsers(['mistral'], ids)).toBe(mistral);
    expect(() => parseToolCallParsers(['chat=xml'], ids)).toThrow(/--tool-call-parser must be one of .* or none, got "xml"/);
    expect(() => parseToolCallParsers(['other=hermes'], ids)).toThrow(/--tool-call-parser other=hermes: no model is served as "other"/);
  });

  it('generate --chat on a gpt-oss model reads its answer apart by default, as the server does; --reasoning-parser none leaves the text whole', async () => {
    const s = await startServer({ models: [`oss=${oss}`] });
    try {
      const args = ['generate', oss, '--chat', '--prompt', 'Where is Romeo?', '--temperature', '0', '--max-new-tokens', '10', '--json'];
      const r = await run(process.execPath, [...cliArgs, ...args], { cwd: repoRoot });
      const out = JSON.parse(r.stdout) as { text: string; reasoning: string; content: string };
      expect(r.stderr).toMatch(/reading the answer apart with the openai_gptoss reasoning parser, gpt_oss's default \(--reasoning-parser none turns it off\)/);
      const answer = (await postJson(`${s.url}/v1/chat/completions`, { model: 'oss', messages: [{ role: 'user', content: 'Where is Romeo?' }], max_tokens: 10, temperature: 0 })).json.choices[0].message;
      expect({ reasoning: out.reasoning, content: out.content }).toEqual({ reasoning: answer.reasoning_content ?? '', content: answer.content ?? '' });
      const plain = JSON.parse((await run(process.execPath, [...cliArgs, ...args, '--reasoning-parser', 'none'], { cwd: repoRoot })).stdout) as Record<string, unknown>;
      expect(plain.reasoning).toBeUndefined();
      expect(plain.content).toBeUndefined();
    } finally {
      await s.close();
    }
  });
});
