/**
 * Typed errors of generation, each with a `kind` the CLI prints and the server maps to an
 * OpenAI-shaped 4xx (bad parameters, a prompt that does not fit the context) or 5xx.
 */
import { RfidMoeError } from '../../errors.js';

/** The generation input a GenerationParamsError is about (the server names the request field from it). */
export type GenerationParam = 'prompt' | 'maxNewTokens' | 'stop' | 'temperature' | 'topK' | 'topP' | 'minP' | 'typicalP' | 'seed' | 'logprobs' | 'repetitionPenalty' | 'frequencyPenalty' | 'presencePenalty' | 'logitBias' | 'allowedTokenIds' | 'minNewTokens' | 'responseFormat' | 'badWords';

/** A generation parameter is out of range or of the wrong type. */
export class GenerationParamsError extends RfidMoeError {
  readonly kind = 'GenerationParamsError';
  constructor(
    message: string,
    /** which input is wrong; absent for the decoder's own options */
    readonly param?: GenerationParam,
  ) {
    super(message);
    this.name = 'GenerationParamsError';
  }
}

/** The prompt (alone) does not fit the decoder's context length. */
export class ContextLengthError extends RfidMoeError {
  readonly kind = 'ContextLengthError';
  constructor(
    readonly promptTokens: number,
    readonly contextLength: number,
  ) {
    super(`the prompt has ${promptTokens} tokens, more than the context length of ${contextLength} (at least one position must be left to generate); shorten the prompt`);
    this.name = 'ContextLengthError';
  }
}

/** The decoder was closed (shutdown) before or while the request ran. */
export class DecoderClosedError extends RfidMoeError {
  readonly kind = 'DecoderClosedError';
  constructor() {
    super('the decoder has been closed; no new requests are accepted');
    this.name = 'DecoderClosedError';
  }
}
