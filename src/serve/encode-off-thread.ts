/**
 * Tokenising a request's text without stopping the server. The tokenizer is synchronous JS at
 * about 0.7 s per MB of text (measured on the demo tokenizer), and the event loop also drives
 * every running stream's decode steps, so a 15 MB prompt (the body limit is 16 MB) froze every
 * other request for 10 s, even when the prompt was then refused for its length. Texts longer than
 * INLINE_CHARS are therefore encoded by one worker thread holding its own copy of each model's
 * tokenizer, built from the same tokenizer.json and tokenizer_config.json, so the ids are the
 * same; shorter texts, nearly all of them, are encoded in place, where a round trip would cost
 * more than it saves.
 *
 * The worker is plain JS evaluated from a string (as engine/ts/gemm-parallel.ts does), so it runs
 * the same from the compiled package, under tsx and under vitest. It loads @huggingface/tokenizers
 * from the path this module resolves, not from the working directory.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { LoadedTokenizer } from '../tokens/tokenizer.js';

/**
 * Texts up to this many UTF-16 units are encoded in place (about 10 ms of tokenizer time).
 * RFID_MOE_INLINE_TOKENIZE_CHARS overrides it (bench:long-prompt sets it past any prompt to
 * measure the server without the worker).
 */
export const INLINE_CHARS = inlineCharsFromEnv(process.env.RFID_MOE_INLINE_TOKENIZE_CHARS) ?? 16 * 1024;

function inlineCharsFromEnv(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`RFID_MOE_INLINE_TOKENIZE_CHARS must be a whole number of characters ≥ 0, got "${value}"`);
  return n;
}

// the files are the ones loadTokenizer read (LoadedTokenizer.path and configPath)
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { Tokenizer } = require(workerData.tokenizersPath);
const loaded = new Map();
function tokenizerFor(file, configFile) {
  let t = loaded.get(file);
  if (!t) {
    const config = configFile ? JSON.parse(readFileSync(configFile, 'utf8')) : {};
    t = new Tokenizer(JSON.parse(readFileSync(file, 'utf8')), config);
    loaded.set(file, t);
  }
  return t;
}
parentPort.on('message', (m) => {
  try {
    const ids = Int32Array.from(tokenizerFor(m.file, m.configFile).encode(m.text, { add_special_tokens: m.addSpecialTokens }).ids);
    parentPort.postMessage({ id: m.id, ids }, [ids.buffer]);
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) });
  }
});
`;

/** `tokenizer.encode(text, { add_special_tokens })` on this thread, as ids. */
export function encodeInPlace(tok: LoadedTokenizer, text: string, addSpecialTokens: boolean): Int32Array {
  return Int32Array.from(tok.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids);
}

type Pending = { resolve: (ids: Int32Array) => void; reject: (err: Error) => void };

/** One worker for every model served by a process: long prompts are rare, and the worker's copy of a tokenizer is only built for a model that gets one. */
export class OffThreadEncoder {
  private worker: Worker | null = null;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();

  /** The ids of `text`, as encodeInPlace gives them. */
  async encode(tok: LoadedTokenizer, text: string, addSpecialTokens: boolean): Promise<Int32Array> {
    if (text.length <= INLINE_CHARS) return encodeInPlace(tok, text, addSpecialTokens);
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<Int32Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, file: path.resolve(tok.path), configFile: tok.configPath && path.resolve(tok.configPath), text, addSpecialTokens });
    });
  }

  /** Stops the worker (pending encodes fail); a later encode starts a new one. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const tokenizersPath = createRequire(import.meta.url).resolve('@huggingface/tokenizers');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { tokenizersPath } });
    // an idle worker must not keep a finished process alive
    worker.unref();
    worker.on('message', (m: { id: number; ids?: Int32Array; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ids) p.resolve(m.ids);
      else p.reject(new Error(`tokenising the prompt failed: ${m.error}`));
    });
    const failAll = (err: Error) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      if (this.worker === worker) this.worker = null;
    };
    worker.on('error', (err) => failAll(new Error(`the tokenizer thread failed: ${err.message}`)));
    worker.on('exit', () => failAll(new Error('the tokenizer thread stopped')));
    this.worker = worker;
    return worker;
  }
}
