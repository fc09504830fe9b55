/** What the constrained-decoding benches share: their flags, the tokenizer's vocabulary size, made-up logits, every token's piece, a constraint fed to a state, and a state's first screen. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GrammarConstraint, TokenPieces, type GrammarState } from '../../src/runtime/generation/grammar-constraint.js';
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

/** The flags of a constrained-decoding bench: --model (the shipped Mixtral-shaped model), --tokenizer, --rounds, --new-tokens. */
export function constraintBenchFlags(defaultNewTokens: number): { model: string; tokenizer: string | undefined; rounds: number; newTokens: number } {
  const root = path.resolve(import.meta.dirname, '..', '..');
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: path.join(root, 'examples/models/mixtral-tiny-shakespeare') },
      tokenizer: { type: 'string' },
      rounds: { type: 'string', default: '5' },
      'new-tokens': { type: 'string', default: String(defaultNewTokens) },
    },
  });
  return { model: values.model!, tokenizer: values.tokenizer, rounds: Number(values.rounds), newTokens: Number(values['new-tokens']) };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Every token's piece of the vocabulary, decoded and sorted for the screens' walk, and how long that took (once per tokenizer). */
export function allPieces(codec: TextCodec, vocab: number): { pieces: TokenPieces; ms: number } {
  const pieces = new TokenPieces(codec, vocab);
  const t0 = performance.now();
  pieces.prepare(); // every piece decoded, and sorted for the screens' walk
  return { pieces, ms: performance.now() - t0 };
}

/** Fresh TokenPieces of the tokenizer, decoded and sorted (allPieces), none with a screen kept: one for each first screen a bench times. */
export function freshPieces(codec: TextCodec, vocab: number, count: number): TokenPieces[] {
  return Array.from({ length: count }, () => allPieces(codec, vocab).pieces);
}

/**
 * A state's first screen (ms): its top-p choice once (screen and draw), less the second (the kept
 * screen and the draw); the median over `fresh` pieces (one run each: a first screen is timed once
 * per pieces, and one run alone moved by 2× between runs).
 */
export function firstScreenMs(fresh: TokenPieces[], constraintOf: (pieces: TokenPieces) => GrammarConstraint, row: Float32Array): number {
  return median(
    fresh.map((pieces) => {
      const constraint = constraintOf(pieces);
      const times: number[] = [];
      for (let k = 0; k < 2; k++) {
        const t0 = performance.now();
        constraint.choose(Float32Array.from(row), new Sampler({ temperature: 1, topP: 0.9, seed: 1 }), argmax);
        times.push(performance.now() - t0);
      }
      return times[0] - times[1];
    }),
  );
}
