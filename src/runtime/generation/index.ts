/**
 * Text generation on the runtime: sampling, stop strings, the continuous-batching decoder and
 * the single-request `generate()`; also the self-sampled calibration sequences of compression.
 */
export {
  BatchDecoder,
  GenerationStream,
  type BatchDecoderOptions,
  type GenerationParams,
  type JsonSchemaFormat,
  type RegexFormat,
  type ChoiceFormat,
  type TaggedJsonFormat,
  type GenerationEvent,
  type GenerationUsage,
  type FinishReason,
} from './decoder.js';
export type { ReasoningFormat } from './reasoning-gate.js';
export type { TaggedJsonCalls } from './tagged-json-prefix.js';
export { generate, generateAll, type GenerateOptions } from './generate.js';
export { Sampler, resolveSampling, samplingDistribution, argmax, drawFrom, drawToken, type SamplingParams, type ResolvedSampling } from './sampling.js';
export { StopTextStream, type TextDecoderLike } from './stop.js';
export { textCodec, loadTextCodec, type TextCodec } from './codec.js';
export { GenerationParamsError, ContextLengthError, DecoderClosedError, type GenerationParam } from './errors.js';
export { sampleSequences, type SampleOptions } from './sample-sequences.js';
export { tokenLogprobs, MAX_TOP_LOGPROBS, type TokenLogprob } from './logprobs.js';
export { RequestLogitsProcessor, resolveLogitsProcessing, MAX_LOGIT_BIAS, MAX_FREQUENCY_PENALTY, MAX_ALLOWED_TOKENS, type LogitsProcessingParams } from './logits-processors.js';
