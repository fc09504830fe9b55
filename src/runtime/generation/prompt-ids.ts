/**
 * A prompt's token ids, checked on the numbers as given: before a conversion to Int32Array, which
 * would wrap 2³² + 1 to the valid id 1, and (in the server) before a model is loaded for them.
 */
import { GenerationParamsError } from './errors.js';

/** Throws GenerationParamsError (param 'prompt') naming the first id outside [0, vocabSize). */
export function assertPromptIds(ids: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new GenerationParamsError(`prompt token id ${String(id)} (position ${i}) is outside the vocabulary [0, ${vocabSize})`, 'prompt');
  }
}
