/**
 * The model's own tokenizer through @huggingface/tokenizers (pure JS, offline): tokenizer.json
 * (+ tokenizer_config.json when present) from the model directory, or an explicit path.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { RfidMoeError } from '../errors.js';

export class TokenizerError extends RfidMoeError {
  readonly kind = 'TokenizerError';
}

/**
 * What this library uses of @huggingface/tokenizers' `Tokenizer` (the object at run time is one).
 * Declared here so the public types do not depend on that package's declarations, which do not
 * resolve for a consumer compiling with `moduleResolution: NodeNext` and `skipLibCheck: false`.
 */
export interface TextTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}

export interface LoadedTokenizer {
  /** the tokenizer.json used */
  path: string;
  /** the tokenizer_config.json read beside it, null when there is none */
  configPath: string | null;
  tokenizer: TextTokenizer;
  /**
   * true when splitting text at a non-space → space boundary cannot change the ids: a ByteLevel
   * pre-tokenizer without prefix space and no normaliser (GPT-2, Qwen, OLMoE, DeepSeek style).
   * SentencePiece/Metaspace tokenizers prepend "▁" to each piece, so they are encoded whole.
   */
  chunkSafe: boolean;
}

/**
 * @param location a model directory holding tokenizer.json, or the path of a tokenizer.json
 */
export async function loadTokenizer(location: string): Promise<LoadedTokenizer> {
  let file = location;
  if (existsSync(location) && statSync(location).isDirectory()) {
    file = path.join(location, 'tokenizer.json');
    if (!existsSync(file)) {
      throw new TokenizerError(`no tokenizer.json in ${location}; copy the model's tokenizer.json there or pass \`tokenizer\` (the path of a tokenizer.json)`);
    }
  } else if (!existsSync(location)) {
    throw new TokenizerError(`tokenizer file ${location} does not exist; pass \`tokenizer\` (the path of a tokenizer.json)`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError(`${file} is not valid JSON (${(err as Error).message}); pass the model's tokenizer.json`);
  }
  if (typeof json.model !== 'object' || json.model === null) {
    throw new TokenizerError(`${file} has no "model" section: it is not a Hugging Face tokenizer.json (a SentencePiece tokenizer.model must be converted first)`);
  }
  const configFile = path.join(path.dirname(file), 'tokenizer_config.json');
  const configPath = existsSync(configFile) ? configFile : null;
  const config = configPath ? (JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>) : {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (err) {
    throw new TokenizerError(`could not load ${file}: ${(err as Error).message}`);
  }
  return { path: file, configPath, tokenizer, chunkSafe: isChunkSafe(json) };
}

function isChunkSafe(json: Record<string, unknown>): boolean {
  if (json.normalizer !== null && json.normalizer !== undefined) return false;
  const pre = json.pre_tokenizer as { type?: string; add_prefix_space?: boolean; pretokenizers?: unknown[] } | null;
  if (!pre) return false;
  if (pre.type === 'ByteLevel') return pre.add_prefix_space === false;
  return false;
}

/** Characters per encode call when a text may be split (the library's cost grows with text size). */
const CHUNK_CHARS = 256 * 1024;

/**
 * Token ids of `text` without special tokens (no BOS: docs/method.md's protocol). Long texts are
 * encoded in pieces cut just before a whitespace character that follows a non-whitespace one;
 * a GPT-2-style byte-level pre-tokenizer always has a piece boundary there, so the ids equal
 * those of encoding the whole text (tested against the golden WikiText-2 count).
 */
export function encodeText(tok: LoadedTokenizer, text: string): Int32Array {
  const pieces: number[][] = [];
  let total = 0;
  const encode = (s: string) => {
    const ids = tok.tokenizer.encode(s, { add_special_tokens: false }).ids;
    pieces.push(ids);
    total += ids.length;
  };
  if (!tok.chunkSafe || text.length <= CHUNK_CHARS) encode(text);
  else {
    let start = 0;
    while (start < text.length) {
      let end = Math.min(text.length, start + CHUNK_CHARS);
      if (end < text.length) end = safeCut(text, start, end);
      encode(text.slice(start, end));
      start = end;
    }
  }
  const out = new Int32Array(total);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const isSpace = (c: string) => /\s/u.test(c);

/** The last index in (start, end] where text[i−1] is not whitespace and text[i] is; else end. */
function safeCut(text: string, start: number, end: number): number {
  for (let i = end; i > start + 1; i--) {
    if (isSpace(text[i]) && !isSpace(text[i - 1]) && !isLowSurrogate(text.charCodeAt(i))) return i;
  }
  return end;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
