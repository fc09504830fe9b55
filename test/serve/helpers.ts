/** A server on the shipped tiny model over loopback, for the serving tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { createServer, type RfidMoeServer, type ServeOptions } from '../../src/serve/server.js';
import { repoRoot } from '../helpers/shared-data.js';
import { cliArgs } from '../helpers/cli.js';

export const TINY_DIR = path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare');

// Qwen/Qwen2-7B-Instruct's chat_template
export const CHATML =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** CHATML whose generation prompt ends in `suffix` after the assistant header (`<think>\n`: a prompt that opens reasoning, as DeepSeek-R1's and Qwen3-Thinking's do). */
export const chatmlWithGenerationSuffix = (suffix: string) => CHATML.replace("{{ '<|im_start|>assistant\\n' }}", `{{ '<|im_start|>assistant\\n${suffix}' }}`);

/**
 * ChatML with tool calls in the Hermes format, as the Qwen2.5 and Qwen3 families write them (the
 * tools listed in the system message as JSON, one per line; each call a <tool_call> block; tool
 * results as <tool_response> blocks in a user turn). Written for the tests in the same form as those
 * models' templates, using what they use (tojson of tools and of parsed arguments, loop indexes).
 */
export const HERMES_TOOLS_CHATML = [
  "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}",
  "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}",
  "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}",
  "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}",
  "{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}",
  "{%- for message in messages %}",
  "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) or (message.role == 'assistant' and not message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}",
  "{%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant' }}{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}",
  "{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}",
  "{{- '\\n<tool_call>\\n{\"name\": \"' + tool_call.name + '\", \"arguments\": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}",
  "{%- elif message.role == 'tool' %}{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}",
  "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}",
  '{%- endif %}{%- endfor %}',
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
].join('');

/** Copies the shipped tiny model to `dir` with `template` as its chat template (tokenizer_config.json), for the chat endpoint. */
export function tinyWithChatTemplate(dir: string, template: string = CHATML): string {
  cpSync(TINY_DIR, dir, { recursive: true });
  const configFile = path.join(dir, 'tokenizer_config.json');
  writeFileSync(configFile, JSON.stringify({ ...(JSON.parse(readFileSync(configFile, 'utf8')) as object), chat_template: template }, null, 2));
  return dir;
}

/** OpenAI harmony's markers (gpt-oss's special tokens), in the ids withHarmonyMarkers gives them. */
export const HARMONY_MARKERS = ['<|start|>', '<|channel|>', '<|message|>', '<|end|>', '<|return|>', '<|call|>', '<|constrain|>'];
/** the first of the rare words of the tiny vocabulary whose ids the markers take */
export const HARMONY_FIRST_ID = 4080;

/**
 * Makes harmony's markers special tokens of the tokenizer in `dir` (a copy of the tiny model), in
 * place of seven words of its vocabulary (the last merges, which no other merge builds on). The
 * words leave the vocabulary and their merges go: Hugging Face's tokenizers gives an added token
 * whose id a vocabulary word holds a new id past the vocabulary instead, which the model has no
 * row for. Listed in tokenizer.json's added_tokens and tokenizer_config.json's
 * added_tokens_decoder, as transformers saves them.
 */
export function withHarmonyMarkers(dir: string): string {
  const file = path.join(dir, 'tokenizer.json');
  const tokenizer = JSON.parse(readFileSync(file, 'utf8')) as { added_tokens: object[]; model: { vocab: Record<string, number>; merges: Array<string | [string, string]> } };
  const configFile = path.join(dir, 'tokenizer_config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as { added_tokens_decoder?: Record<string, object> };
  const { vocab } = tokenizer.model;
  const words = new Map(Object.entries(vocab).map(([word, id]) => [id, word]));
  HARMONY_MARKERS.forEach((content, i) => {
    const id = HARMONY_FIRST_ID + i;
    const word = words.get(id)!;
    delete vocab[word];
    vocab[content] = id;
    tokenizer.model.merges = tokenizer.model.merges.filter((m) => (typeof m === 'string' ? m.split(' ') : m).join('') !== word);
    const token = { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    tokenizer.added_tokens.push({ id, ...token });
    config.added_tokens_decoder = { ...config.added_tokens_decoder, [id]: token };
  });
  writeFileSync(file, JSON.stringify(tokenizer));
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  return dir;
}

/** `rfid_moe_generated_tokens_total` of one model in a /metrics text (0 before its first token). */
export function generatedTokens(metrics: string, model = 'tiny'): number {
  return Number(new RegExp(`rfid_moe_generated_tokens_total\\{model="${model}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
}

export interface Running {
  server: RfidMoeServer;
  url: string;
  /** the server's engine (for a library decode beside it) */
  engine: Engine;
  close(): Promise<void>;
}

export async function startServer(opts: Partial<ServeOptions> = {}): Promise<Running> {
  const { engine } = await createEngine('auto', { threads: 1 });
  const server = await createServer({ models: [`tiny=${TINY_DIR}`], engine, processMetrics: false, ...opts });
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  return {
    server,
    url,
    engine,
    async close() {
      await server.close();
      engine.dispose();
    },
  };
}

export async function postJson(url: string, body: unknown, raw = false): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json, text };
}

export interface CliServer {
  child: ChildProcess;
  url: string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** `rfid-moe serve …` as a child process (see test/helpers/cli.ts); resolves once it prints its URL. */
export function spawnServeCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliServer> {
  const child = spawn(process.execPath, [...cliArgs, 'serve', ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not start within 60 s: ${err}`));
    }, 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = / at (http:\/\/[^ ]+) /.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr: () => err, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code} before listening: ${err}`));
    });
  });
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}
