/**
 * Text ↔ token ids for generation, from the model's own tokenizer (src/tokens/tokenizer.ts).
 * Prompts are encoded with the tokenizer's own special-token rule (its post-processor decides
 * whether a BOS is added, as `tokenizer(prompt)` does in transformers); completions are decoded
 * without special tokens unless asked to keep them.
 */
import { loadTokenizer, type LoadedTokenizer } from '../../tokens/tokenizer.js';
import type { TextDecoderLike } from './stop.js';

export interface TextCodec extends TextDecoderLike {
  encode(text: string): Int32Array;
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
}

const codecs = new WeakMap<LoadedTokenizer, TextCodec>();

/**
 * The codec of a loaded tokenizer: the same object on every call, so what is kept per tokenizer
 * (JSON mode's token pieces, grammar-constraint.ts) outlives a served model's unload and reload.
 */
export function textCodec(loaded: LoadedTokenizer): TextCodec {
  let codec = codecs.get(loaded);
  if (codec === undefined) {
    const tok = loaded.tokenizer;
    codec = {
      encode: (text) => Int32Array.from(tok.encode(text).ids),
      // the library refuses an empty list; the empty completion decodes to ''
      decode: (ids, options) => (ids.length === 0 ? '' : tok.decode(ids, { skip_special_tokens: options?.skipSpecialTokens ?? true })),
    };
    codecs.set(loaded, codec);
  }
  return codec;
}

/** The tokenizer of a model directory (or a tokenizer.json path) as a codec. */
export async function loadTextCodec(location: string): Promise<TextCodec> {
  return textCodec(await loadTokenizer(location));
}
