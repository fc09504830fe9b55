/**
 * JSON mode's token choice (src/runtime/generation/grammar-constraint.ts) on a small made-up
 * vocabulary, against what it must equal by definition: greedy is the arg-max over the tokens
 * that keep the text a viable JSON object; sampling draws from the sampling distribution of the
 * row with every other token masked (counted over many draws); a character split over two tokens
 * goes only inside a string; the stop ids, and ids the tokenizer cannot decode, are never chosen.
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { GrammarConstraint, TokenPieces, tokenPieces } from '../../src/runtime/generation/grammar-constraint.js';
import { Sampler, samplingDistribution, textCodec } from '../../src/runtime/index.js';
import { loadTokenizer } from '../../src/tokens/tokenizer.js';
import { repoRoot } from '../helpers/shared-data.js';
import { tokenFitsJson } from '../helpers/json-judge.js';

/** id → text; 'B1' and 'B2' are the two bytes of 'é' (each alone decodes to U+FFFD, as byte-level tokenizers do) */
const VOCAB = ['{', '}', '"', 'a', ' ', ':', '1', ',', '"a"', '{"', '":', 'B1', 'B2', 'xyz', '<eos>', '[', ']', 'true', '\n\n'];
const EOS = VOCAB.indexOf('<eos>');
const id = (piece: string) => VOCAB.indexOf(piece);

const decoder = {
  decode(ids: number[]): string {
    let out = '';
    for (let i = 0; i < ids.length; i++) {
      const p = VOCAB[ids[i]];
      if (p === 'B1' && VOCAB[ids[i + 1]] === 'B2') {
        out += 'é';
        i++;
      } else if (p === 'B1' || p === 'B2') out += '\uFFFD';
      else if (p === '<eos>') out += '';
      else out += p;
    }
    return out;
  },
};

function constraintAfter(pieces: string[]): GrammarConstraint {
  const c = new GrammarConstraint(decoder, new TokenPieces(decoder, VOCAB.length), new Set([EOS]));
  for (const p of pieces) {
    const row = new Float32Array(VOCAB.length).fill(-Infinity);
    row[id(p)] = 0;
    expect(c.choose(row, new Sampler({ temperature: 0 }), argmaxOf)).toBe(id(p));
    c.commit(id(p));
  }
  return c;
}

function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** the tokens that keep decode(ids) + token viable, by the independent judge */
function validAfter(pieces: string[]): Set<number> {
  const ids = pieces.map(id);
  const before = decoder.decode(ids);
  const ok = new Set<number>();
  VOCAB.forEach((_, t) => {
    if (t === EOS) return;
    if (tokenFitsJson(before, decoder.decode([...ids, t]))) ok.add(t);
  });
  return ok;
}

const randomRow = (seed: number) => {
  let s = seed;
  return Float32Array.from(VOCAB, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31) * 6 - 3;
  });
};

describe('JSON mode’s token choice', () => {
  const contexts: string[][] = [[], ['{'], ['{', '"', 'a'], ['{"', 'a', '":'], ['{"', 'a', '":', ' ', '1'], ['{', '"a"', ':', '['], ['{', '"', 'B1']];

  it('greedy takes the best token that keeps the JSON viable, past many better invalid ones', () => {
    for (const ctx of contexts) {
      const valid = validAfter(ctx);
      expect(valid.size, ctx.join('|')).toBeGreaterThan(0);
      for (let seed = 1; seed <= 20; seed++) {
        const row = randomRow(seed * 7 + ctx.length);
        // every invalid token far above the valid ones: the lazy tries all fail and the vocabulary is screened
        if (seed % 2 === 0) for (let t = 0; t < row.length; t++) if (!valid.has(t)) row[t] += 100;
        let want = -1;
        for (const t of valid) if (want < 0 || row[t] > row[want]) want = t;
        const c = constraintAfter(ctx);
        const got = c.choose(Float32Array.from(row), new Sampler({ temperature: 0 }), argmaxOf);
        expect(got, `${ctx.join('|')} seed ${seed}`).toBe(want);
      }
    }
  });

  it('sampling draws from the masked row’s distribution, lazily (plain temperature; top-k, with top-p or min-p after it) and screened (top-p alone)', () => {
    const draws = 6000;
    for (const ctx of [['{'], ['{"', 'a', '":']]) {
      const valid = validAfter(ctx);
      for (const params of [{ temperature: 0.8 }, { temperature: 1.3, topP: 0.7 }, { temperature: 1, topK: 3 }, { temperature: 0.9, topK: 4, topP: 0.8 }, { temperature: 1, topK: 2, minP: 0.3 }]) {
        const row = randomRow(ctx.length * 31 + 5);
        const masked = Float32Array.from(row, (v, t) => (valid.has(t) ? v : -Infinity));
        const sampler = new Sampler({ ...params, seed: 99 });
        const want = samplingDistribution(masked, sampler.params);
        const counts = new Map<number, number>();
        for (let k = 0; k < draws; k++) {
          const c = constraintAfter(ctx);
          const t = c.choose(Float32Array.from(row), sampler, argmaxOf);
          counts.set(t, (counts.get(t) ?? 0) + 1);
        }
        for (const t of counts.keys()) expect(want.ids.includes(t), `${ctx.join('|')} ${JSON.stringify(params)}: token ${VOCAB[t]}`).toBe(true);
        want.ids.forEach((t, i) => {
          const p = want.probs[i];
          const sigma = Math.sqrt((p * (1 - p)) / draws);
          expect(Math.abs((counts.get(t) ?? 0) / draws - p), `${ctx.join('|')} ${JSON.stringify(params)}: ${VOCAB[t]}`).toBeLessThan(5 * sigma + 1e-9);
        });
      }
    }
  });

  it('once the model has missed the JSON two steps running, steps screen at once: the same greedy choice, the same distribution', () => {
    const draws = 6000;
    for (const ctx of [['{'], ['{"', 'a', '":']]) {
      const valid = validAfter(ctx);
      /** a constraint whose lazy draws have just failed twice (rows where only tokens that do not fit are left) */
      const missed = () => {
        const c = constraintAfter(ctx);
        for (let k = 0; k < 2; k++) {
          const row = Float32Array.from(randomRow(17 + k), (v, t) => (valid.has(t) ? -Infinity : v));
          expect(c.choose(row, new Sampler({ temperature: 0 }), argmaxOf)).toBe(-1);
        }
        return c;
      };
      const row = randomRow(ctx.length * 31 + 5);
      let want = -1;
      for (const t of valid) if (want < 0 || row[t] > row[want]) want = t;
      expect(missed().choose(Float32Array.from(row), new Sampler({ temperature: 0 }), argmaxOf)).toBe(want);
      const masked = Float32Array.from(row, (v, t) => (valid.has(t) ? v : -Infinity));
      const sampler = new Sampler({ temperature: 0.8, seed: 5 });
      const expected = samplingDistribution(masked, sampler.params);
      const counts = new Map<number, number>();
      for (let k = 0; k < draws; k++) {
        const t = missed().choose(Float32Array.from(row), sampler, argmaxOf);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      for (const t of counts.keys()) expect(expected.ids.includes(t), `${ctx.join('|')}: token ${VOCAB[t]}`).toBe(true);
      expected.ids.forEach((t, i) => {
        const p = expected.probs[i];
        expect(Math.abs((counts.get(t) ?? 0) / draws - p), `${ctx.join('|')}: ${VOCAB[t]}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / draws) + 1e-9);
      });
    }
  });

  it('lets a split character into a string only, and completes it there', () => {
    expect(validAfter(['{']).has(id('B1'))).toBe(false);
    expect(validAfter(['{', '"']).has(id('B1'))).toBe(true);
    const c = constraintAfter(['{', '"', 'B1', 'B2', '"', ':', '1', '}']);
    expect(c.complete).toBe(true);
  });

  it('passes over ids the tokenizer cannot decode (an embedding padded past its vocabulary)', () => {
    const strict = { decode: (ids: number[]) => (ids.some((t) => t >= VOCAB.length) ? fail(ids) : decoder.decode(ids)) };
    const fail = (ids: number[]): string => {
      throw new Error(`unknown id in ${ids.join(',')}`);
    };
    const c = new GrammarConstraint(strict, new TokenPieces(strict, VOCAB.length + 8), new Set([EOS]));
    const row = new Float32Array(VOCAB.length + 8).fill(-5);
    row.fill(50, VOCAB.length); // the padded ids are the most likely
    row[id('{')] = 0;
    expect(c.choose(Float32Array.from(row), new Sampler({ temperature: 0 }), argmaxOf)).toBe(id('{'));
    expect(c.choose(Float32Array.from(row), new Sampler({ temperature: 1, topP: 0.9, seed: 3 }), argmaxOf)).toBe(id('{'));
  });

  it('keeps one set of pieces per tokenizer: a served model reloaded finds its screens again', async () => {
    const loaded = await loadTokenizer(path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare'));
    expect(textCodec(loaded)).toBe(textCodec(loaded));
    expect(tokenPieces(textCodec(loaded), 4096)).toBe(tokenPieces(textCodec(loaded), 4096));
  });

  it('never chooses a stop id, and reports -1 when nothing fits', () => {
    const c = constraintAfter(['{']);
    const row = new Float32Array(VOCAB.length).fill(-Infinity);
    row[EOS] = 10;
    row[id('xyz')] = 5;
    expect(c.choose(row, new Sampler({ temperature: 0 }), argmaxOf)).toBe(-1);
    const d = constraintAfter(['{']);
    row[id('}')] = -50;
    expect(d.choose(row, new Sampler({ temperature: 0 }), argmaxOf)).toBe(id('}'));
    d.commit(id('}'));
    expect(d.complete).toBe(true);
  });
});
