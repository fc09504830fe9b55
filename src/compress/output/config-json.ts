/**
 * config.json of an output directory, written from the source's config.json TEXT, not from its
 * parsed object: a JSON.parse/JSON.stringify round trip turns `0.0` into `0` and `1e-06` into
 * `0.000001`, and transformers ≥ 5 validates config types (`router_jitter_noise expected float,
 * got int`), so the dense output would not load. Here every member of the source keeps its
 * exact bytes; only top-level members are replaced or appended:
 *
 * - always the `rfid_moe` block (appended, or replacing one the source already had);
 * - `quantization_config` removed: an FP8 source is read dequantised, so the output holds
 *   BF16 weights, and transformers would otherwise look for FP8 codes and scales;
 * - for factored outputs also `model_type` and `architectures`, set to names transformers does
 *   not know (`rfid-moe-factored`), so AutoConfig / AutoModelForCausalLM refuse the directory
 *   with an error that names rfid-moe instead of loading it with randomly initialised experts.
 *   The model's own values are kept in the block (`source`) for rfid-moe's loaders.
 *
 * Hand-written rather than a JSON-editing library: only top-level members are located (a scan
 * that skips strings and nested values), the text is validated by JSON.parse first, and this
 * avoids a dependency for ~60 lines.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FACTORED_ARCHITECTURE, FACTORED_MODEL_TYPE } from '../../checkpoint/registry.js';
import { writeFileAtomic } from '../../io/atomic.js';
import type { RfidBlock } from './block.js';
import type { ModelConfig } from '../../checkpoint/types.js';
import { CONFIG_BLOCK_KEY, CONFIG_FILE } from './names.js';
import { RfidMoeError } from '../../errors.js';

export class ConfigTextError extends RfidMoeError {
  readonly kind = 'ConfigTextError';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigTextError';
  }
}

interface Member {
  key: string;
  keyStart: number;
  /** [start, end) of the value's text */
  valueStart: number;
  valueEnd: number;
}

const WS = new Set([' ', '\t', '\n', '\r']);

function skipWs(text: string, i: number): number {
  while (i < text.length && WS.has(text[i])) i++;
  return i;
}

/** End (exclusive) of the string literal starting at text[i] === '"'. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  throw new ConfigTextError('unterminated string');
}

/** End (exclusive) of the JSON value starting at text[i]. */
function valueEnd(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') j = stringEnd(text, j) - 1;
      else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    throw new ConfigTextError('unbalanced brackets');
  }
  let j = i;
  while (j < text.length && !WS.has(text[j]) && text[j] !== ',' && text[j] !== '}' && text[j] !== ']') j++;
  return j;
}

/** The top-level members of a JSON object text, with their value spans; and where its `}` is. */
function topLevelMembers(text: string): { members: Member[]; open: number } {
  const open = skipWs(text, 0);
  if (text[open] !== '{') throw new ConfigTextError('config.json must hold a JSON object');
  const members: Member[] = [];
  let i = skipWs(text, open + 1);
  if (text[i] === '}') return { members, open };
  for (;;) {
    if (text[i] !== '"') throw new ConfigTextError('expected a key');
    const keyStart = i;
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    if (text[i] !== ':') throw new ConfigTextError(`expected ':' after key ${JSON.stringify(key)}`);
    const valueStart = skipWs(text, i + 1);
    const end = valueEnd(text, valueStart);
    members.push({ key, keyStart, valueStart, valueEnd: end });
    i = skipWs(text, end);
    if (text[i] === ',') i = skipWs(text, i + 1);
    else if (text[i] === '}') return { members, open };
    else throw new ConfigTextError(`expected ',' or '}' after the value of ${JSON.stringify(key)}`);
  }
}

/** The whitespace before the source's last key on its line; '' when it shares the line of the `{` (single-line JSON). */
function memberIndent(text: string, member: Member | undefined, open: number): string {
  if (member === undefined) return '  ';
  const lineStart = text.lastIndexOf('\n', member.keyStart) + 1;
  return lineStart > open ? text.slice(lineStart, member.keyStart) : '';
}

/** `value` as JSON: pretty with the source's indent unit, nested under a member at `indent`; compact for single-line JSON. */
function renderValue(value: unknown, indent: string | null): string {
  return indent === null ? JSON.stringify(value) : JSON.stringify(value, null, indent).split('\n').join('\n' + indent);
}

/**
 * The JSON object text `source` with the top-level members `set` replaced in place (every
 * occurrence, should a key be duplicated), appended before the closing brace, or removed (value
 * `undefined`). Everything else keeps its exact bytes. Throws ConfigTextError when `source` is not
 * a JSON object.
 */
export function setTopLevelMembers(source: string, set: ReadonlyArray<readonly [string, unknown]>): string {
  try {
    const parsed: unknown = JSON.parse(source);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigTextError('config.json must hold a JSON object');
  } catch (err) {
    if (err instanceof ConfigTextError) throw err;
    throw new ConfigTextError(`config.json is not valid JSON (${(err as Error).message})`);
  }
  const { members, open } = topLevelMembers(source);
  const indent = memberIndent(source, members[members.length - 1], open);
  const pretty = indent !== '' ? indent : null;
  const newline = pretty === null ? '' : '\n';
  const values = new Map(set.map(([k, v]) => [k, v]));
  const edits: Array<{ start: number; end: number; text: string }> = [];
  members.forEach((m, i) => {
    if (!values.has(m.key)) return;
    const value = values.get(m.key);
    if (value !== undefined) {
      edits.push({ start: m.valueStart, end: m.valueEnd, text: renderValue(value, pretty) });
      return;
    }
    // removed: from the end of the previous value (its comma goes too), or up to the next key
    if (i > 0) edits.push({ start: members[i - 1].valueEnd, end: m.valueEnd, text: '' });
    else edits.push({ start: m.keyStart, end: members[1]?.keyStart ?? m.valueEnd, text: '' });
  });
  const present = new Set(members.map((m) => m.key));
  const appended = set.filter(([k, v]) => !present.has(k) && v !== undefined);
  if (appended.length > 0) {
    const last = members[members.length - 1];
    const tail = appended.map(([k, v]) => `${newline}${indent}${JSON.stringify(k)}: ${renderValue(v, pretty)}`).join(',');
    // after the last value (or the opening brace), keeping whatever whitespace preceded the `}`
    const at = last ? last.valueEnd : open + 1;
    edits.push({ start: at, end: at, text: (last ? ',' : '') + tail + (last ? '' : newline) });
  }
  edits.sort((a, b) => b.start - a.start);
  let out = source;
  for (const e of edits) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/** The config.json text of an output written from `sourceText` with `block`. */
export function outputConfigText(sourceText: string, block: RfidBlock): string {
  const set: Array<[string, unknown]> = [];
  if (block.storage === 'factored') {
    set.push(['model_type', FACTORED_MODEL_TYPE], ['architectures', [FACTORED_ARCHITECTURE]]);
  } else if (block.source && (JSON.parse(sourceText) as Record<string, unknown>).model_type === FACTORED_MODEL_TYPE) {
    // densified from a factored output: the model's own identity comes back
    set.push(['model_type', block.source.modelType], ['architectures', block.source.architectures]);
  }
  set.push([CONFIG_BLOCK_KEY, block]);
  // a source that declared quantized weights (FP8) was read dequantised: the output's weights are plain floats
  set.push(['quantization_config', undefined]);
  const text = setTopLevelMembers(sourceText, set);
  return text.endsWith('\n') ? text : text + '\n';
}

/** The model's own identity (model_type, architectures) as transformers knows it, from a source config. */
export function modelIdentity(config: Pick<ModelConfig, 'raw' | 'multimodalWrapper'>): NonNullable<RfidBlock['source']> {
  // a multimodal checkpoint's own, not its language model's (config.raw is that one's text_config)
  const raw = config.multimodalWrapper?.raw ?? config.raw;
  const modelType = typeof raw.model_type === 'string' ? raw.model_type : '';
  const arch = raw.architectures;
  return { modelType, ...(Array.isArray(arch) && arch.every((a) => typeof a === 'string') ? { architectures: arch as string[] } : {}) };
}

/** The text of the config.json in `modelDir`; a Checkpoint built in memory falls back to its parsed config. */
export async function sourceConfigText(modelDir: string, raw: Record<string, unknown>): Promise<string> {
  try {
    return await readFile(path.join(modelDir, CONFIG_FILE), 'utf8');
  } catch {
    return JSON.stringify(raw, null, 2) + '\n';
  }
}

/**
 * Writes `out`/config.json (atomically) from the source's config text and the block; returns the
 * parsed result, which is exactly what loaders will read.
 */
export async function writeConfig(out: string, sourceText: string, block: RfidBlock): Promise<Record<string, unknown>> {
  const text = outputConfigText(sourceText, block);
  await writeFileAtomic(path.join(out, CONFIG_FILE), text);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * The config as the model's family reads it: for a factored output, config.json's top-level
 * model_type/architectures name rfid-moe, and the model's own come back from the block.
 */
export function modelConfigOf(raw: Record<string, unknown>, block: RfidBlock, source: string): Record<string, unknown> {
  if (raw.model_type !== FACTORED_MODEL_TYPE) return raw;
  if (!block.source) {
    throw new ConfigTextError(`${source}: model_type is '${FACTORED_MODEL_TYPE}' but the rfid_moe block has no source.modelType; the directory was edited — recompress the model`);
  }
  const { architectures: _hidden, ...rest } = raw;
  return { ...rest, model_type: block.source.modelType, ...(block.source.architectures ? { architectures: block.source.architectures } : {}) };
}
