/**
 * TaggedJsonPrefix: blocks of calls between fixed tags with JSON arguments (DeepSeek's form). The
 * blocks accepted are exactly those whose every call names a function by its opening, holds
 * arguments Ajv accepts under that function's schema, and closes as the spec says; however the
 * text is split into pieces, the verdict is the same. A state's key decides what may follow it: two
 * states with equal keys accept the same next characters.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { TaggedJsonPrefix, type TaggedJsonCalls } from '../../src/runtime/generation/tagged-json-prefix.js';
import { SchemaError } from '../../src/runtime/generation/json-schema.js';
import { mulberry32 } from '../helpers/rng.js';

const WEATHER = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'], additionalProperties: false };
const RING = { type: 'object', properties: { loud: { type: 'boolean' } }, additionalProperties: false };

const spec = (repeat: boolean, separator = ''): TaggedJsonCalls => ({
  calls: [
    { open: '<B>get_weather<S>', schema: WEATHER },
    { open: '<B>ring<S>', schema: RING },
  ],
  after: '<E>',
  separator,
  close: '<END>',
  repeat,
});

/** whether the whole text is a complete block, read in pieces cut at random */
function accepts(s: TaggedJsonCalls, text: string, seed: number): { ok: boolean; complete: boolean } {
  const r = mulberry32(seed);
  const state = new TaggedJsonPrefix(s);
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(r() * 5);
    if (!state.push(text.slice(i, i + n))) return { ok: false, complete: false };
    i += n;
  }
  return { ok: true, complete: state.complete };
}

const ajv = new Ajv();
const valid = { get_weather: ajv.compile(WEATHER), ring: ajv.compile(RING) };

describe('TaggedJsonPrefix', () => {
  it('accepts blocks of calls whose arguments are valid under their function’s schema, and no other', () => {
    const argsCases = [
      ['get_weather', '{"city": "Verona"}'],
      ['get_weather', '{"city": "Verona", "days": 3}'],
      ['get_weather', '{"days": 3}'],
      ['get_weather', '{"city": 7}'],
      ['get_weather', '{"city": "Rome", "when": 1}'],
      ['ring', '{}'],
      ['ring', '{"loud": true}'],
      ['ring', '{"loud": "yes"}'],
    ] as const;
    for (const [name, args] of argsCases) {
      const expected = valid[name](JSON.parse(args));
      for (let seed = 0; seed < 5; seed++) {
        const got = accepts(spec(false), `<B>${name}<S>${args}<E><END>`, seed);
        expect(got.ok && got.complete, `${name} ${args}`).toBe(expected);
      }
    }
  });

  it('several calls where repeat allows them, with the separator between; one call otherwise', () => {
    const two = '<B>ring<S>{}<E>\n<B>get_weather<S>{"city": "Pisa"}<E><END>';
    expect(accepts(spec(true, '\n'), two, 1)).toEqual({ ok: true, complete: true });
    expect(accepts(spec(false, '\n'), two, 1).ok).toBe(false);
    // the separator is required between calls where there is one, and refused where there is none
    expect(accepts(spec(true, '\n'), two.replace('\n', ''), 1).ok).toBe(false);
    expect(accepts(spec(true), two, 1).ok).toBe(false);
    expect(accepts(spec(true), two.replace('\n', ''), 1)).toEqual({ ok: true, complete: true });
  });

  it('refuses an unknown function, a block closed before any call, and text after the close', () => {
    for (const text of ['<B>launch<S>{}<E><END>', '<END>', '<B>ring<S>{}<E><END>x', '<B>ring<S>{}<END>', '<B>ring<S>{}}<E><END>']) {
      expect(accepts(spec(true), text, 2).ok && accepts(spec(true), text, 2).complete, text).toBe(false);
    }
    // an unfinished block is not complete
    expect(accepts(spec(true), '<B>ring<S>{"loud": tr', 3)).toEqual({ ok: true, complete: false });
  });

  it('equal keys accept the same next characters; clone and copyFrom carry the state', () => {
    const prefixes = ['', '<B>', '<B>ri', '<B>ring<S>', '<B>ring<S>{"lo', '<B>ring<S>{}<', '<B>ring<S>{}<E>', '<B>ring<S>{}<E><B>get_weather<S>{"city": "', '<B>ring<S>{}<E><EN'];
    const alphabet = [...new Set('<B>ring<S>get_weather{}"city: "loud"true,<E><END>x 1'.split(''))];
    const states = prefixes.map((p) => {
      const s = new TaggedJsonPrefix(spec(true));
      expect(s.push(p), p).toBe(true);
      return s;
    });
    const nextOf = (s: TaggedJsonPrefix) => alphabet.filter((c) => s.clone().push(c)).join('');
    for (const [i, a] of states.entries()) {
      // a fresh state made equal to this one by copyFrom reads as it does
      const copy = new TaggedJsonPrefix(spec(true)).copyFrom(a);
      expect(copy.key).toBe(a.key);
      expect(nextOf(copy)).toBe(nextOf(a));
      for (const b of states.slice(i + 1)) if (a.key === b.key) expect(nextOf(a)).toBe(nextOf(b));
    }
    // the states of the prefixes are told apart where they accept differently
    expect(new Set(states.map((s) => s.key)).size).toBe(prefixes.length);
  });

  it('a spec whose fixed texts begin one another, or are empty, is refused', () => {
    const bad: TaggedJsonCalls[] = [
      { ...spec(true), calls: [{ open: '<B>a', schema: RING }, { open: '<B>ab', schema: RING }] },
      { ...spec(true), close: '' },
      { ...spec(true), after: '' },
      { ...spec(true), calls: [] },
    ];
    for (const s of bad) expect(() => new TaggedJsonPrefix(s)).toThrow(SchemaError);
  });
});
