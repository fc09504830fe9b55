/**
 * Multimodal checkpoints whose language model is a family this tool reads: the wrapper's
 * config.json holds the language model's config under `text_config`, and its tensors sit under a
 * prefix (`model.language_model.…` as transformers ≥ 5 names its modules, or
 * `language_model.model.…` as the releases and transformers' own saves have them) beside the
 * vision tower and projector. The language model is read, run and compressed; every other tensor
 * is carried into outputs unchanged, so an output loads as the same multimodal model.
 *
 * Only wrappers checked against transformers are listed: one whose forward on text alone is its
 * language model's, and whose word-embedding tying is read from the wrapper's own config (with
 * the wrapper class's default), not from text_config.
 */
import { CheckpointError } from './errors.js';

export interface LanguageModelWrapper {
  /** config.json `model_type` of the wrapper */
  modelType: string;
  label: string;
  /** the wrapper config class's tie_word_embeddings default, which transformers ties by */
  tieWordEmbeddingsDefault: boolean;
  /** text_config model_types the wrapper accepts */
  textModelTypes: readonly string[];
}

const WRAPPERS: readonly LanguageModelWrapper[] = [
  { modelType: 'mistral3', label: 'Mistral 3 vision-language (Mistral3ForConditionalGeneration)', tieWordEmbeddingsDefault: true, textModelTypes: ['mistral4'] },
  { modelType: 'llama4', label: 'Llama 4 multimodal (Llama4ForConditionalGeneration)', tieWordEmbeddingsDefault: false, textModelTypes: ['llama4_text'] },
  { modelType: 'glm4v_moe', label: 'GLM-4.5V (Glm4vMoeForConditionalGeneration)', tieWordEmbeddingsDefault: false, textModelTypes: ['glm4v_moe_text'] },
  { modelType: 'qwen3_vl_moe', label: 'Qwen3-VL-MoE (Qwen3VLMoeForConditionalGeneration)', tieWordEmbeddingsDefault: false, textModelTypes: ['qwen3_vl_moe_text'] },
  { modelType: 'qwen3_5_moe', label: 'Qwen3.5-MoE (Qwen3_5MoeForConditionalGeneration)', tieWordEmbeddingsDefault: false, textModelTypes: ['qwen3_5_moe_text'] },
];

/** Where a wrapped language model's tensors are stored: `model.` of the language model's own names becomes `body`, its lm_head `head`. */
export interface LanguageModelPrefix {
  body: string;
  head: string;
}

/** The prefixes transformers reads for these wrappers, its modules' names first. */
const PREFIXES: readonly LanguageModelPrefix[] = [
  { body: 'model.language_model.', head: 'lm_head.weight' },
  { body: 'language_model.model.', head: 'language_model.lm_head.weight' },
];

/** The language model's config of a config.json, and the wrapper around it if there is one. */
export interface LanguageModelConfig {
  raw: Record<string, unknown>;
  wrapper: LanguageModelWrapper | null;
}

/** Wrapper model_types this tool reads. */
export function supportedWrapperTypes(): string[] {
  return WRAPPERS.map((w) => w.modelType).sort();
}

/**
 * The language model's config: config.json itself, or a listed wrapper's text_config with the
 * wrapper's tie_word_embeddings. Throws CheckpointError('InvalidConfig') for a wrapper whose
 * text_config is missing or of another kind.
 */
export function languageModelConfig(raw: Record<string, unknown>): LanguageModelConfig {
  const wrapper = WRAPPERS.find((w) => w.modelType === raw.model_type);
  if (!wrapper) return { raw, wrapper: null };
  const text = raw.text_config;
  if (text === null || typeof text !== 'object' || Array.isArray(text))
    throw new CheckpointError('InvalidConfig', `config.json key 'text_config': a ${wrapper.label} config needs its language model's config there, got ${JSON.stringify(text)}; restore the model's original config.json`);
  const textRaw = text as Record<string, unknown>;
  if (typeof textRaw.model_type !== 'string' || !wrapper.textModelTypes.includes(textRaw.model_type))
    throw new CheckpointError(
      'UnknownModelType',
      `config.json's text_config has model_type ${JSON.stringify(textRaw.model_type)}; rfid-moe reads ${wrapper.label} checkpoints whose language model is ${wrapper.textModelTypes.join(' or ')} (MoE)`,
    );
  const tie = raw.tie_word_embeddings ?? wrapper.tieWordEmbeddingsDefault;
  if (typeof tie !== 'boolean') throw new CheckpointError('InvalidConfig', `config.json key 'tie_word_embeddings': must be true or false, got ${JSON.stringify(tie)}; fix config.json`);
  return { raw: { ...textRaw, tie_word_embeddings: tie }, wrapper };
}

/** The prefix the checkpoint's tensors use (the first whose embedding table it holds; transformers' module names when neither). */
export function languageModelPrefix(has: (name: string) => boolean): LanguageModelPrefix {
  return PREFIXES.find((p) => has(`${p.body}embed_tokens.weight`)) ?? PREFIXES[0];
}

/** A language model's own tensor name (`model.…`, `lm_head.weight`) as the wrapped checkpoint stores it. */
export function storedName(prefix: LanguageModelPrefix | undefined, name: string): string {
  if (!prefix) return name;
  if (name === 'lm_head.weight') return prefix.head;
  return name.startsWith('model.') ? prefix.body + name.slice('model.'.length) : name;
}
