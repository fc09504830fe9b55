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


/** Copies the shipped tiny model to `dir` with `template` as its chat template (tokenizer_config.json), for the chat endpoint. */
export function tinyWithChatTemplate(dir: string, template: string = CHATML): string {
  cpSync(TINY_DIR, dir, { recursive: true });
  const configFile = path.join(dir, 'tokenizer_config.json');
  writeFileSync(configFile, JSON.stringify({ ...(JSON.parse(readFileSync(configFile, 'utf8')) as object), chat_template: template }, null, 2));
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
