/** Errors of the runtime that bad input (not a bug) causes. */
import { RfidMoeError } from '../errors.js';

/** Input that does not fit the model: token ids outside its vocabulary, models that do not share a vocabulary. */
export class ModelInputError extends RfidMoeError {
  readonly kind = 'ModelInputError';
}

/** A model whose architecture or configuration the runtime does not implement (a RoPE scaling it lacks). */
export class UnsupportedModelError extends RfidMoeError {
  readonly kind = 'UnsupportedModelError';
}
