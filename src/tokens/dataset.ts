/**
 * Datasets as one text: a plain text file as-is; JSONL rows' text field joined with "\n\n";
 * WikiText raw files as Hugging Face's rows (one per line: a whitespace-only line becomes "",
 * any other keeps its "\n") joined with "\n\n" (docs/method.md's evaluation protocol).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RfidMoeError } from '../errors.js';

export type DatasetFormat = 'text' | 'jsonl' | 'wikitext';

export class DatasetError extends RfidMoeError {
  readonly kind = 'DatasetError';
}

export interface DatasetOptions {
  /** default: by extension (.jsonl → jsonl, .raw → wikitext, anything else → text) */
  format?: DatasetFormat | 'auto';
  /** JSONL field holding the text (default "text") */
  textField?: string;
}

export interface LoadedDataset {
  path: string;
  format: DatasetFormat;
  /** sha256 of the file's bytes */
  sha256: string;
  text: string;
  rows: number;
}

export function detectFormat(file: string): DatasetFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl') return 'jsonl';
  if (ext === '.raw') return 'wikitext';
  return 'text';
}

export async function loadDataset(file: string, opts: DatasetOptions = {}): Promise<LoadedDataset> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new DatasetError(`cannot read dataset ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; pass an existing text, .jsonl or WikiText .raw file`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const format = !opts.format || opts.format === 'auto' ? detectFormat(file) : opts.format;
  const raw = decodeText(bytes, file);
  const rows = format === 'jsonl' ? jsonlRows(raw, file, opts.textField ?? 'text') : format === 'wikitext' ? wikitextRows(raw) : [raw];
  const text = rows.join('\n\n');
  if (text.length === 0) throw new DatasetError(`dataset ${file} holds no text`);
  return { path: file, format, sha256, text, rows: rows.length };
}

/**
 * The file's text, refusing what is not text: a NUL byte (binary data: weights, archives, UTF-16)
 * or bytes that are not valid UTF-8 (which Buffer#toString would silently turn into U+FFFD and
 * then into tokens).
 */
export function decodeText(bytes: Uint8Array, file: string): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw new DatasetError(`dataset ${file} is binary (a NUL byte at offset ${nul}), not text; pass a UTF-8 text, .jsonl or WikiText .raw file`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    let valid = 0;
    // locate the first bad byte for the message: the longest prefix that decodes
    for (let lo = 0, hi = bytes.length; lo <= hi; ) {
      const mid = (lo + hi) >> 1;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
        valid = mid;
        lo = mid + 1;
      } catch {
        hi = mid - 1;
      }
    }
    throw new DatasetError(`dataset ${file} is not valid UTF-8 text (first invalid byte near offset ${valid}); convert it to UTF-8 or pass another file`);
  }
}

export function wikitextRows(raw: string): string[] {
  const lines = raw.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  return lines.map((l) => (l.trim() === '' ? '' : l));
}

export function jsonlRows(raw: string, file: string, field: string): string[] {
  const rows: string[] = [];
  raw.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new DatasetError(`${file} line ${i + 1} is not valid JSON; each line of a .jsonl dataset must be one JSON object`);
    }
    const value = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[field] : undefined;
    if (typeof value !== 'string') {
      throw new DatasetError(`${file} line ${i + 1} has no string field "${field}"; set \`textField\` to the field holding the text`);
    }
    rows.push(value);
  });
  return rows;
}
