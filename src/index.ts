/**
 * rfid-moe: the library surface. Each area has its own entry module; this file re-exports the
 * pieces a training or serving script needs (the namespaces give access to the rest).
 */
export { TOOL_VERSION } from './version.js';
export { RfidMoeError, isRfidMoeError } from './errors.js';

// Compression (the main job) and its output
export {
  compress,
  CompressError,
  stderrProgress,
  reportToMarkdown,
  reportSummary,
  parseRecipe,
  loadRecipe,
  recipeFingerprint,
  RecipeError,
  OutputDirError,
  type CompressOptions,
  type CompressProgress,
  type ProgressListener,
  type CompressionReport,
  type Recipe,
  type RecipeInput,
} from './compress/index.js';
export { loadCompressed, openModel, verifyOutputFiles, IntegrityError, densify } from './compressed/index.js';

// Generation (the serving layer's engine)
export {
  generate,
  generateAll,
  BatchDecoder,
  GenerationStream,
  loadTextCodec,
  GenerationParamsError,
  ContextLengthError,
  DecoderClosedError,
  type GenerationParam,
  type GenerateOptions,
  type GenerationParams,
  type JsonSchemaFormat,
  type RegexFormat,
  type ChoiceFormat,
  type TaggedJsonFormat,
  type TaggedJsonCalls,
  type ReasoningFormat,
  type GenerationEvent,
  type GenerationUsage,
  type FinishReason,
  type BatchDecoderOptions,
  type TextCodec,
} from './runtime/generation/index.js';

// Checkpoints and engines
export { openCheckpoint, parameterCounts, CheckpointError } from './checkpoint/index.js';
export { NonFiniteError } from './checkpoint/index.js';
export type { Checkpoint, ModelConfig, ModelLayout, FamilyName } from './checkpoint/types.js';
export { createEngine, listAvailableEngines, type EngineChoice } from './engine/index.js';
export type { Engine, EngineName, MatmulActivations } from './engine/types.js';

// Every area as a namespace, for everything else
export * as io from './io/index.js';
export * as checkpoint from './checkpoint/index.js';
export * as engines from './engine/index.js';
export * as runtime from './runtime/index.js';
export * as tokens from './tokens/index.js';
export * as routingStats from './routing-stats/index.js';
export * as evaluation from './eval/index.js';
export * as svd from './svd/index.js';
export * as rankAllocation from './rank-allocation/index.js';
export * as residual from './residual/index.js';
export * as compression from './compress/index.js';
export * as compressed from './compressed/index.js';
