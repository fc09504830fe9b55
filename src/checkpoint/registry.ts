/**
 * model_type → family. Adding a family = one file under ./families plus one entry here.
 */
import { CheckpointError } from './errors.js';
import type { Family, ResolvedConfig } from './family.js';
import { languageModelConfig, supportedWrapperTypes, type LanguageModelWrapper } from './wrapped.js';
import { afmoe } from './families/afmoe.js';
import { axk1 } from './families/axk1.js';
import { cohere2Moe } from './families/cohere2-moe.js';
import { deepseek } from './families/deepseek.js';
import { deepseekV2 } from './families/deepseek-v2.js';
import { deepseekV3 } from './families/deepseek-v3.js';
import { deepseekV32 } from './families/deepseek-v32.js';
import { dots1 } from './families/dots1.js';
import { ernie45Moe } from './families/ernie4-5-moe.js';
import { exaoneMoe } from './families/exaone-moe.js';
import { flexOlmo } from './families/flex-olmo.js';
import { glm4Moe, glm4vMoeText } from './families/glm4-moe.js';
import { glm4MoeLite } from './families/glm4-moe-lite.js';
import { glmMoeDsa } from './families/glm-moe-dsa.js';
import { hunyuanV1Moe } from './families/hunyuan-v1-moe.js';
import { hyV3 } from './families/hy-v3.js';
import { graniteMoe } from './families/granitemoe.js';
import { graniteMoeShared } from './families/granitemoe-shared.js';
import { graniteMoeSwa } from './families/granitemoe-swa.js';
import { gptOss } from './families/gpt-oss.js';
import { llama4Text } from './families/llama4-text.js';
import { mimoV2Flash } from './families/mimo-v2-flash.js';
import { minimaxM2 } from './families/minimax-m2.js';
import { mistral4 } from './families/mistral4.js';
import { mixtral } from './families/mixtral.js';
import { olmoe } from './families/olmoe.js';
import { phimoe } from './families/phimoe.js';
import { qwen2Moe } from './families/qwen2-moe.js';
import { qwen35MoeText } from './families/qwen3-5-moe-text.js';
import { qwen3Moe } from './families/qwen3-moe.js';
import { qwen3Next } from './families/qwen3-next.js';
import { qwen3VlMoeText } from './families/qwen3-vl-moe-text.js';
import { solarOpen } from './families/solar-open.js';
import type { FamilyName } from './types.js';

export const FAMILIES: readonly Family[] = [mixtral, qwen2Moe, qwen3Moe, qwen3Next, qwen35MoeText, olmoe, deepseek, deepseekV2, deepseekV3, deepseekV32, glm4Moe, graniteMoe, graniteMoeShared, graniteMoeSwa, mimoV2Flash, minimaxM2, dots1, glm4MoeLite, glmMoeDsa, ernie45Moe, exaoneMoe, flexOlmo, hunyuanV1Moe, gptOss, mistral4, phimoe, solarOpen, axk1, cohere2Moe, hyV3, afmoe, llama4Text, qwen3VlMoeText, glm4vMoeText];

const byModelType = new Map<string, Family>(FAMILIES.flatMap((f) => f.modelTypes.map((t) => [t, f] as const)));

/**
 * The model_type and architectures a factored rfid-moe output puts in config.json. transformers
 * knows neither, so its Auto loaders refuse the directory (naming the model type, hence rfid-moe)
 * instead of loading it with its experts missing and randomly initialised. The model's own
 * values are kept in the rfid_moe block; rfid-moe's loaders (loadCompressed) read them there.
 */
export const FACTORED_MODEL_TYPE = 'rfid-moe-factored';
export const FACTORED_ARCHITECTURE = 'RfidMoeFactoredForCausalLM';

/** Every model_type this tool reads, sorted. */
export function supportedModelTypes(): string[] {
  return [...byModelType.keys()].sort();
}

export function familyByName(name: FamilyName): Family {
  const family = FAMILIES.find((f) => f.family === name);
  if (!family) throw new CheckpointError('UnknownModelType', `unknown family '${name}'; supported: ${FAMILIES.map((f) => f.family).join(', ')}`);
  return family;
}

/** The family of a config.json object; throws CheckpointError('UnknownModelType') listing the supported ones. */
export function familyForConfig(raw: Record<string, unknown>): Family {
  const modelType = raw.model_type;
  const supported = supportedModelTypes().join(', ');
  if (typeof modelType !== 'string')
    throw new CheckpointError('UnknownModelType', `config.json has no string 'model_type'; add one of: ${supported}`);
  if (modelType === FACTORED_MODEL_TYPE)
    throw new CheckpointError(
      'UnknownModelType',
      `config.json marks a factored rfid-moe output (model_type '${FACTORED_MODEL_TYPE}'), not an ordinary checkpoint: open it with loadCompressed (rfid-moe eval reads it directly), or convert it to a dense checkpoint with rfid-moe densify`,
    );
  const family = byModelType.get(modelType);
  if (!family) {
    // a multimodal wrapper not listed in wrapped.ts around a language model this tool reads
    const text = raw.text_config as Record<string, unknown> | null | undefined;
    const textType = text !== null && typeof text === 'object' ? text.model_type : undefined;
    const wrapped = typeof textType === 'string' && byModelType.has(textType);
    if (supportedWrapperTypes().includes(modelType))
      throw new CheckpointError('UnknownModelType', `model_type '${modelType}' is a multimodal checkpoint: its language model's family comes from resolveLanguageModel (openCheckpoint uses it), not from familyForConfig`);
    throw new CheckpointError(
      'UnknownModelType',
      wrapped
        ? `unsupported model_type '${modelType}': a multimodal model around a language model of model_type '${textType}', which rfid-moe reads, but this wrapper has not been checked against transformers; supported wrappers: ${supportedWrapperTypes().join(', ')}`
        : `unsupported model_type '${modelType}'; supported model types: ${supported}`,
    );
  }
  return family;
}

/**
 * The family and resolved config of a config.json's language model: the config itself, or the
 * text_config of a multimodal wrapper this tool reads (wrapped.ts), whose ModelConfig then names
 * the wrapper.
 */
export function resolveLanguageModel(raw: Record<string, unknown>): { family: Family; resolved: ResolvedConfig; wrapper: LanguageModelWrapper | null } {
  const model = languageModelConfig(raw);
  const family = familyForConfig(model.raw);
  const resolved = family.resolveConfig(model.raw);
  if (model.wrapper) resolved.config = { ...resolved.config, multimodalWrapper: { modelType: model.wrapper.modelType, label: model.wrapper.label, raw } };
  return { family, resolved, wrapper: model.wrapper };
}
