/**
 * What a model's generation_config.json says about generating, read when a checkpoint opens.
 *
 * The ids generation stops at: transformers' generate() takes them from generation_config.json
 * when it has one (GenerationConfig.from_pretrained), and from config.json otherwise; either may
 * list several (Qwen3's generation_config.json names both <|im_end|> and <|endoftext|>). A decoder
 * that stopped only at config.json's first id would run past the end of a document that
 * transformers ends, so every checkpoint carries the full list in ModelConfig.eosTokenIds.
 *
 * The model's sampling settings (temperature, top_p, top_k, min_p, repetition_penalty):
 * ModelConfig.samplingDefaults, which the server and `rfid-moe generate` use where a request or
 * flag does not set them.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from './errors.js';
import { allTokenIds } from './families/common.js';
import type { ModelConfig, SamplingDefaults } from './types.js';

/**
 * Range of the repetition penalty, as a default here and in a request: [1/100, 100]. vLLM and
 * transformers accept any positive value, but below 1/100 a penalised logit is multiplied by more
 * than 100, and a penalty that rounds to 0 in float32 (1e-300) turns logits into ±∞ and NaN,
 * which no sampler can draw from.
 */
export const MAX_REPETITION_PENALTY = 100;
export const MIN_REPETITION_PENALTY = 1 / MAX_REPETITION_PENALTY;

export const GENERATION_CONFIG_FILE = 'generation_config.json';

/**
 * `config` with eosTokenIds from `dir`'s generation_config.json when that file names an
 * eos_token_id (one id or a list), and its samplingDefaults; unchanged without the file. A file
 * that is not JSON, ids that are not token ids of this vocabulary or settings out of range are
 * refused: read wrong, they would end or sample generations wrongly without a word.
 */
export async function withGenerationConfig(dir: string, config: ModelConfig): Promise<ModelConfig> {
  const file = path.join(dir, GENERATION_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return config;
    throw new CheckpointError('InvalidGenerationConfig', `cannot read ${file}: ${(err as Error).message}`, [], { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError('InvalidGenerationConfig', `${file} is not valid JSON (${(err as Error).message}); restore the model's generation_config.json or remove it`, [], { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CheckpointError('InvalidGenerationConfig', `${file} must hold a JSON object`);
  }
  const g = parsed as Record<string, unknown>;
  return { ...config, eosTokenIds: eosIdsOf(file, g.eos_token_id, config), samplingDefaults: samplingOf(file, g) };
}

function eosIdsOf(file: string, eos: unknown, config: ModelConfig): readonly number[] {
  if (eos === undefined || eos === null) return config.eosTokenIds;
  const list = Array.isArray(eos) ? (eos as unknown[]) : [eos];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new CheckpointError('InvalidGenerationConfig', `${file}: eos_token_id ${JSON.stringify(eos)} must be a token id or a list of them, each an integer in [0, ${config.vocabSize}); fix or remove it`);
    }
  }
  return allTokenIds(list as number[]);
}

/**
 * temperature, top_p, top_k, min_p and repetition_penalty where the file sets them (Qwen2.5's files set
 * repetition_penalty 1.05; vLLM applies it as a default too). do_sample is not consulted: vLLM, whose
 * server this one follows, applies these whatever it says. top_k 0 (transformers' "off") stays 0.
 */
function samplingOf(file: string, g: Record<string, unknown>): SamplingDefaults {
  const out: SamplingDefaults = {};
  const bad = (key: string, what: string) =>
    new CheckpointError('InvalidGenerationConfig', `${file}: ${key} ${JSON.stringify(g[key])} must be ${what}; fix or remove it`);
  const setting = (key: string) => (g[key] === null ? undefined : g[key]);
  const t = setting('temperature');
  if (t !== undefined) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw bad('temperature', 'a number ≥ 0');
    out.temperature = t;
  }
  const p = setting('top_p');
  if (p !== undefined) {
    if (typeof p !== 'number' || !(p > 0 && p <= 1)) throw bad('top_p', 'a number in (0, 1]');
    out.topP = p;
  }
  const k = setting('top_k');
  if (k !== undefined) {
    if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) throw bad('top_k', 'an integer ≥ 0');
    out.topK = k;
  }
  const m = setting('min_p');
  if (m !== undefined) {
    if (typeof m !== 'number' || !(m >= 0 && m <= 1)) throw bad('min_p', 'a number in [0, 1]');
    out.minP = m;
  }
  const r = setting('repetition_penalty');
  if (r !== undefined) {
    if (typeof r !== 'number' || !(r >= MIN_REPETITION_PENALTY && r <= MAX_REPETITION_PENALTY)) throw bad('repetition_penalty', `a number in [${MIN_REPETITION_PENALTY}, ${MAX_REPETITION_PENALTY}] (1 = off)`);
    out.repetitionPenalty = r;
  }
  return out;
}
