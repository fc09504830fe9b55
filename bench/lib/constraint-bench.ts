/** What the constrained-decoding benches share: the tokenizer's vocabulary size, made-up logits, and a constraint fed to a state. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GrammarConstraint, type GrammarState, type TokenPieces } from '../../src/runtime/generation/grammar-constraint.js';
import { Sampler, type TextCodec } from '../../src/runtime/index.js';
import { mulberry32 } from '../../src/util/prng.js';

/** The tokenizer's own size (a model directory or a tokenizer.json): one past the largest id of its vocabulary and added tokens. */
export function tokenizerVocabSize(where: string): number {
  const file = where.endsWith('.json') ? where : path.join(where, 'tokenizer.json');
  const json = JSON.parse(readFileSync(file, 'utf8')) as { model: { vocab: Record<string, number> | Array<[string, number]> }; added_tokens?: Array<{ id: number }> };
  const ids = Array.isArray(json.model.vocab) ? json.model.vocab.map((_, i) => i) : Object.values(json.model.vocab);
  return Math.max(...ids, ...(json.added_tokens ?? []).map((t) => t.id)) + 1;
}

/** `count` rows of made-up logits over `vocab` tokens: normal, σ = 3, seeded. */
export function madeUpRows(vocab: number, count: number, seed: number): Float32Array[] {
  const next = mulberry32(seed);
  const gauss = () => 3 * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return Array.from({ length: count }, () => Float32Array.from({ length: vocab }, gauss));
}

/** The JavaScript arg-max (the engine's kernel's stand-in when a bench times the choice alone). */
export function argmax(r: Float32Array): number {
  let b = 0;
  for (let i = 1; i < r.length; i++) if (r[i] > r[b]) b = i;
  return b;
}

/** A constraint from `start` after `text`, fed as the tokenizer encodes it; throws where the text does not fit `start`. */
export function constraintAt(codec: TextCodec, pieces: TokenPieces, start: GrammarState, text: string): GrammarConstraint {
  const c = new GrammarConstraint(codec, pieces, new Set(), true, start);
  for (const t of codec.encode(text)) {
    const r = new Float32Array(pieces.vocabSize).fill(-Infinity);
    r[t] = 0;
    if (c.choose(r, new Sampler({ temperature: 0 }), argmax) !== t) throw new Error(`${JSON.stringify(text)} does not begin what the constraint holds, for this tokenizer`);
    c.commit(t);
  }
  return c;
}
