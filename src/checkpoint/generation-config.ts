/**
 * The ids generation stops at. transformers' generate() takes them from the model's
 * generation_config.json when it has one (GenerationConfig.from_pretrained), and from config.json
 * otherwise; either may list several (Qwen3's generation_config.json names both <|im_end|> and
 * <|endoftext|>). A decoder that stopped only at config.json's first id would run past the end of
 * a document that transformers ends, so every checkpoint this project opens carries the full list
 * in ModelConfig.eosTokenIds.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from './errors.js';
import { allTokenIds } from './families/common.js';
import type { ModelConfig } from './types.js';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

/**
 * `config` with eosTokenIds from `dir`'s generation_config.json when that file names an
 * eos_token_id (one id or a list), unchanged otherwise. A file that is not JSON, or ids that are
 * not token ids of this vocabulary, are refused: a stop list read wrong would end generations in
 * the wrong place without a word.
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
  const eos = (parsed as Record<string, unknown>).eos_token_id;
  if (eos === undefined || eos === null) return config;
  const list = Array.isArray(eos) ? eos : [eos];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw new CheckpointError('InvalidGenerationConfig', `${file}: eos_token_id ${JSON.stringify(eos)} must be a token id or a list of them, each an integer in [0, ${config.vocabSize}); fix or remove it`);
    }
  }
  return { ...config, eosTokenIds: allTokenIds(list as number[]) };
}
