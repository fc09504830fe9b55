/**
 * `generate()`: one request, start to end, as an async iterator of events (tokens as they are
 * produced, then usage). It runs on a private `BatchDecoder` of batch size 1, so it shares every
 * line of the decoding path with the server's continuous batching.
 */
import type { Engine } from '../../engine/types.js';
import { weightProviderOf, type ModelSource } from '../model-source.js';
import { BatchDecoder, type GenerationEvent, type GenerationParams } from './decoder.js';
import { GenerationParamsError } from './errors.js';
import type { TextCodec } from './codec.js';
import type { TextDecoderLike } from './stop.js';

export interface GenerateOptions extends GenerationParams {
  /** needed for a text prompt, for event text and for stop strings */
  tokenizer?: TextCodec | TextDecoderLike;
  /** positions per sequence (default: the model's max_position_embeddings) */
  contextLength?: number;
  /** keep weights in memory between steps (default true) */
  keepWeights?: boolean;
  /**
   * Keep weight matrices stored as BF16 in BF16 (default true: half the memory, faster decoding
   * steps); false widens them to f32. Applies when `model` is a checkpoint (see weightProviderOf).
   */
  bf16Weights?: boolean;
}

export async function* generate(model: ModelSource, engine: Engine, prompt: string | ArrayLike<number>, opts: GenerateOptions = {}): AsyncGenerator<GenerationEvent> {
  let ids: ArrayLike<number>;
  if (typeof prompt === 'string') {
    const codec = opts.tokenizer;
    if (!codec || !('encode' in codec)) throw new GenerationParamsError('a text prompt needs a tokenizer (opts.tokenizer, e.g. from loadTextCodec(modelDir)); or pass token ids');
    ids = codec.encode(prompt);
  } else ids = prompt;
  const decoder = new BatchDecoder(weightProviderOf(model, { bf16Weights: opts.bf16Weights ?? true }), engine, {
    maxBatchSize: 1,
    contextLength: opts.contextLength,
    tokenizer: opts.tokenizer,
    keepWeights: opts.keepWeights,
  });
  try {
    yield* decoder.submit(ids, opts);
  } finally {
    await decoder.close();
  }
}

/** Convenience: the whole completion (token ids, text and usage) of one request. */
export async function generateAll(model: ModelSource, engine: Engine, prompt: string | ArrayLike<number>, opts: GenerateOptions = {}) {
  const tokens: number[] = [];
  for await (const event of generate(model, engine, prompt, opts)) {
    if (event.type === 'token') tokens.push(event.token);
    else return { tokens, text: event.text, usage: event.usage };
  }
  throw new Error('generation ended without its final event');
}
