/**
 * A state's screen of the vocabulary (TokenPieces.screen, grammar-constraint.ts) walks the pieces in
 * sorted order, sharing the states of common beginnings and refusing at once every piece that
 * begins with a refused beginning. Truth: each piece pushed alone onto the state, as a token is
 * judged (the text, with a trailing U+FFFD a character still being decoded that goes only where any
 * character may). Compared token by token on the shipped tokenizer (4,096 tokens), GPT-2's (50,257),
 * and a made-up vocabulary of emoji, escapes and bytes split across tokens, over JSON, schema and
 * regex states.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startingState, TokenPieces, type GrammarState } from '../../src/runtime/generation/grammar-constraint.js';
import { AddressedCallPrefix } from '../../src/runtime/generation/addressed-call-prefix.js';
import { compileRegex, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';
import { textCodec } from '../../src/runtime/index.js';
import type { TextDecoderLike } from '../../src/runtime/generation/stop.js';
import { loadTokenizer } from '../../src/tokens/tokenizer.js';
import { hasSharedData, repoRoot, sharedDataSkipReason, sharedPath } from '../helpers/shared-data.js';

/** a piece pushed alone: what a token's text does to the state */
function fitsAlone(state: GrammarState, piece: string): boolean {
  const partial = piece.endsWith('\uFFFD');
  const settled = partial ? piece.slice(0, -1) : piece;
  if (settled.length === 0 && !partial) return false;
  const s = state.clone();
  return s.push(settled) && (!partial || s.inString);
}

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', pattern: '^[A-Z][a-z]+( [A-Z][a-z]+)?$' },
    mood: { enum: ['glad', 'sad', 'mad 😀'] },
    age: { type: 'integer', minimum: 1, maximum: 120 },
    when: { type: 'string', format: 'date' },
    tags: { type: 'array', items: { type: 'string', maxLength: 5 } },
    note: { anyOf: [{ type: 'string' }, { type: 'null' }] },
  },
  required: ['name', 'mood', 'age'],
};

/** keys held to rules (propertyNames, patternProperties), and of any name; arrays of unique items */
const DICTS = {
  type: 'object',
  properties: {
    counts: { type: 'object', patternProperties: { '^[a-z]{1,3}$': { type: 'integer' } } },
    stock: { type: 'object', additionalProperties: { type: 'integer' }, propertyNames: { enum: ['pears', 'plums', 'pe"'] } },
    free: { type: 'object', additionalProperties: { type: 'integer' } },
    // arrays of unique items: an item that repeats one is refused where it closes
    tags: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    ids: { type: 'array', items: { type: 'integer' }, uniqueItems: true },
    colours: { type: 'array', items: { enum: ['red', 'green', 're"d'] }, uniqueItems: true },
    // held to a pattern (six values in all) and bounded: a character is taken only where a value not given is left
    codes: { type: 'array', items: { type: 'string', pattern: '^[ab]{1,2}$' }, uniqueItems: true },
    scores: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 12 }, uniqueItems: true },
  },
};

/** states of every kind, after texts that stop in strings, keys, numbers, escapes and between values */
function states(): Array<[string, GrammarState]> {
  const out: Array<[string, GrammarState]> = [];
  const after = (what: string, start: GrammarState, text: string) => {
    const s = start.clone();
    expect(s.push(text), `${what} ${JSON.stringify(text)}`).toBe(true);
    out.push([`${what} after ${JSON.stringify(text)}`, s]);
  };
  for (const text of ['', '{', '{"a', '{"a": ', '{"a": 1', '{"a": 12.5e', '{"a": "x\\', '{"a": "x\\u00', '{"a": [true, ', '{"a": "😀 ']) after('json_object', startingState(), text);
  for (const text of ['', '{"name": "Ro', '{"name": "Romeo", ', '{"name": "Romeo", "mood": "ma', '{"name": "Romeo", "mood": "glad", "age": 1', '{"name": "Romeo", "mood": "glad", "age": 12, "when": "2024-02-', '{"name": "Romeo", "mood": "glad", "age": 12, "tags": ["abc', '{"name": "Romeo", "mood": "glad", "age": 12, "note": "so 😀', '{"name": "Romeo", "mood": "glad", "age": 12, "note": "a\\"']) after('schema', startingState(SCHEMA), text);
  // inside keys: of any name (a run of plain characters fits without being read), of a pattern, of an enum, after a key given
  for (const text of ['{"free": {"ab', '{"free": {"ab": 1, "ab', '{"free": {"a\\', '{"counts": {"ab', '{"counts": {"ab": 1, "a', '{"stock": {"p', '{"stock": {"pears": 1, "p', '{"counts": {"abc": 1, ', '{"tags": ["ab", "a', '{"tags": ["ab", ', '{"ids": [0, ', '{"ids": [1, 1', '{"colours": ["red", "', '{"colours": ["red", "re', '{"codes": ["a", "aa", "', '{"codes": ["a", "aa", "a', '{"scores": [1, 10, 11, ', '{"scores": [1, 10, 11, 1', '{"counts": {"ab": 1, "xy', '{"counts": {"cd": 1, "xy', '{"codes": ["a", "b', '{"codes": ["ab", "b', '{"stock": {"pears": 1, "pl', '{"stock": {"pe\\"": 1, "p']) after('dict keys', startingState(DICTS), text);
  after('schema', startingState(SCHEMA), '{"name": "Romeo", "mood": "glad", "age": 12, "xy');
  for (const [pattern, text] of [['😀+a', '😀'], ['[a-z ]+\\.', 'th'], ['(yes|no|maybe)', 'm'], ['\\d{3}-\\w+', '12'], ['(?!ab)\\w+', 'a']] as const) after(`regex ${pattern}`, new RegexPrefix(compileRegex(pattern)), text);
  // a grammar that wraps others: gpt-oss's addressed call (a name, a header, then JSON arguments)
  const calls = { trigger: 'to=functions.', functions: [{ name: 'get_weather', schema: { type: 'object', properties: { city: { type: 'string' } } } }, { name: 'get_time', schema: { type: 'object' } }], bodyOpens: '<|message|>', refuses: ['<|end|>'] };
  for (const text of ['', 'get_', 'get_weather <|constrain|>', 'get_weather <|constrain|>json<|message|>{"ci']) after('addressed call', new AddressedCallPrefix(calls), text);
  return out;
}

function agree(pieces: TokenPieces, vocabSize: number): void {
  for (const [what, state] of states()) {
    const screen = pieces.screen(state);
    const wrong: string[] = [];
    for (let id = 0; id < vocabSize; id++) {
      const want = fitsAlone(state, pieces.get(id)) ? 1 : 0;
      if (screen[id] !== want) wrong.push(`${id} ${JSON.stringify(pieces.get(id))}: ${screen[id]}, alone ${want}`);
    }
    expect(wrong.slice(0, 5), `${what}: ${wrong.length} tokens disagree`).toEqual([]);
  }
}

describe('a state’s screen of the vocabulary', () => {
  it('a made-up vocabulary (emoji, shared beginnings, escapes, bytes of a character split across tokens): each token as pushed alone', () => {
    const vocab = ['": 1, "ab"', '": 1, "ab', '", "', '", "ab"', '", "ab"]', 'b\\', '{', '{"', '{"a', '{"a":', '"', '""', '"a', '"ab', 'a', 'ab', 'abc', '😀', '😀a', '😀😀', 'a😀', '\\', '\\u', '\\u00', '\\n', '1', '12', '12.', '1e', 'e', ' ', '  ', ' "', ',', ', ', ']', '}', '"}', '":', ': ', 'B1', 'B1B2', 'yes', 'ye', 'no', 'maybe', '.', 'th', 'the', 'the ', '', 'get_', 'get_weather', 'weather', ' <|', '<|message|>', '<|constrain|>', 'json', '<|end|>'];
    const decoder: TextDecoderLike = {
      decode: (ids: number[]) => ids.map((i) => (vocab[i] === 'B1' ? '\uFFFD' : vocab[i] === 'B1B2' ? 'é' : vocab[i])).join(''),
    };
    agree(new TokenPieces(decoder, vocab.length), vocab.length);
  });

  it('states inside keys (or items of unique items held to a rule) that differ only in what the text is, not in the names it may still become, share one screen for pieces without a quote or backslash, and the quoted pieces are judged in each', () => {
    const dicts = startingState(DICTS);
    const at = (text: string) => {
      const s = dicts.clone();
      expect(s.push(text), text).toBe(true);
      return s;
    };
    // "ab" given or "cd" given, and "xy" typed: no name given begins with "xy"
    const [x, y] = [at('{"counts": {"ab": 1, "xy'), at('{"counts": {"cd": 1, "xy')];
    expect(x.interiorKey).toBeDefined();
    expect(x.interiorKey).toBe(y.interiorKey);
    expect(x.key).not.toBe(y.key);
    // and "ab" typed where "abc" is given is another interior: a name still begins with it
    expect(at('{"counts": {"abc": 1, "ab').interiorKey).not.toBe(at('{"counts": {"xyz": 1, "ab').interiorKey);
    const vocab = ['": 1, "ab"', '": 2}', 'z', 'zz', 'a', '"', '\\', 'xy'];
    const decoder: TextDecoderLike = { decode: (ids: number[]) => ids.map((i) => vocab[i]).join('') };
    const pieces = new TokenPieces(decoder, vocab.length);
    const [sx, sy] = [pieces.screen(x), pieces.screen(y)];
    // closing the key and writing "ab" again: refused where "ab" is given, taken where it is not
    expect([sx[0], sy[0]]).toEqual([0, 1]);
    for (const [state, screen] of [[x, sx], [y, sy]] as const) vocab.forEach((piece, id) => expect(screen[id], piece).toBe(fitsAlone(state, piece) ? 1 : 0));
    // the same inside an item of unique items held to a rule: "a" given or "ab", and "b" typed
    const [u, v] = [at('{"codes": ["a", "b'), at('{"codes": ["ab", "b')];
    expect(u.interiorKey).toBeDefined();
    expect(u.interiorKey).toBe(v.interiorKey);
    expect(at('{"codes": ["ba", "b').interiorKey).not.toBe(u.interiorKey); // "ba" still begins with "b"
    const items = ['", "ab"]', '", "a"]', 'a', '"', 'b'];
    const itemPieces = new TokenPieces({ decode: (ids: number[]) => ids.map((i) => items[i]).join('') }, items.length);
    const [su, sv] = [itemPieces.screen(u), itemPieces.screen(v)];
    expect([su[0], sv[0]]).toEqual([1, 0]); // "ab" again: taken where it is not given
    expect([su[1], sv[1]]).toEqual([0, 1]);
    for (const [state, screen] of [[u, su], [v, sv]] as const) items.forEach((piece, id) => expect(screen[id], piece).toBe(fitsAlone(state, piece) ? 1 : 0));
  });

  it('the shipped tokenizer: each of its 4,096 tokens as pushed alone', async () => {
    const loaded = await loadTokenizer(path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare'));
    agree(new TokenPieces(textCodec(loaded), 4096), 4096);
  });

  it.skipIf(!hasSharedData)(`GPT-2's tokenizer: each of its 50,257 tokens as pushed alone${hasSharedData ? '' : ` [skipped: ${sharedDataSkipReason}]`}`, async () => {
    const loaded = await loadTokenizer(sharedPath('gpt2-tokenizer'));
    agree(new TokenPieces(textCodec(loaded), 50257), 50257);
  }, 120_000);
});
