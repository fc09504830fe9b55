/**
 * A JSON schema's string rules (`pattern`, `format`, `minLength`, `maxLength`) as the schema
 * constraint holds them (string-rules.ts, schema-prefix.ts). Independent truth: Ajv with
 * ajv-formats' full formats (JSON Schema's own validator for JavaScript) on whole values, and
 * JavaScript's RegExp for a pattern's search semantics. A string the constraint completes must be
 * valid under Ajv; for patterns and lengths the two must agree exactly, every prefix of a valid
 * value being viable; for formats, held to a subset, every value the constraint takes must pass
 * and the common forms of each must be taken.
 */
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startingState } from '../../src/runtime/generation/grammar-constraint.js';
import { compileRegex, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';
import { FORMAT_PATTERNS, searchSource } from '../../src/runtime/generation/string-rules.js';
import { SchemaError } from '../../src/runtime/generation/json-schema.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false }));

/** what the constraint makes of `text` under `schema`: refused, viable (a prefix) or complete */
function held(schema: unknown, text: string): 'refused' | 'viable' | 'complete' {
  const state = startingState(schema, 'any');
  if (!state.push(text)) return 'refused';
  return state.complete ? 'complete' : 'viable';
}

/** `value` as JSON text, with some control characters written as \u escapes rather than simple ones (\u000a for \n) */
function written(value: string, escapeEvery: number): string {
  if (escapeEvery === 0) return JSON.stringify(value);
  let out = '"';
  let i = 0;
  for (const ch of value) {
    out += ch.charCodeAt(0) < 0x20 && i++ % escapeEvery === 0 ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}` : JSON.stringify(ch).slice(1, -1);
  }
  return `${out}"`;
}

describe('string rules', () => {
  it('a pattern matches anywhere in the value unless anchored, as RegExp.test: agreed on random strings', () => {
    const patterns = ['\\d{3}', '^ab', 'yz$', '^a.c$', 'x|^y|z$', '[aeiou]{2}', '^(?:ab|cd)+$', 'é+', '\\.\\*', '(?=.*\\d)[a-z]{2}', '^(?!ab)\\w+$', 'a(?!b)'];
    const alphabet = fc.constantFrom('a', 'b', 'c', 'd', 'x', 'y', 'z', '1', '2', '3', 'é', '.', '*', ' ', '😀');
    for (const pattern of patterns) {
      const regex = new RegExp(pattern, 'u');
      const whole = compileRegex(searchSource(pattern));
      fc.assert(
        fc.property(fc.array(alphabet, { maxLength: 8 }), (chars) => {
          const value = chars.join('');
          const m = new RegexPrefix(whole);
          const wholeMatch = m.push(value) && m.canEnd;
          expect(wholeMatch, `${pattern} on ${JSON.stringify(value)}`).toBe(regex.test(value));
          expect(held({ type: 'string', pattern }, JSON.stringify(value)) === 'complete', `${pattern} on ${JSON.stringify(value)}`).toBe(regex.test(value));
        }),
        { numRuns: 300, seed: 7 },
      );
    }
  });

  it('pattern and lengths on the decoded value, escapes and surrogate pairs included, agree with Ajv; every prefix of a valid value is viable', () => {
    const schemas = [
      { type: 'string', minLength: 2, maxLength: 4 },
      { type: 'string', pattern: '^[a-c]+\\n?$' },
      { type: 'string', pattern: '^[\\s\\S]*\\t', maxLength: 3 },
      { type: 'string', pattern: '😀', maxLength: 3 },
      { type: 'string', pattern: '^\\d+$', minLength: 3 },
    ];
    const alphabet = fc.constantFrom('a', 'b', 'c', '1', '2', '\n', '\t', '\u0001', '"', '\\', '/', '😀', 'é');
    for (const schema of schemas) {
      const validate = ajv.compile(schema);
      fc.assert(
        fc.property(fc.array(alphabet, { maxLength: 6 }), fc.constantFrom(0, 1, 2, 3), (chars, escapeEvery) => {
          const value = chars.join('');
          const text = written(value, escapeEvery);
          expect(JSON.parse(text)).toBe(value);
          const valid = validate(value);
          expect(held(schema, text), `${JSON.stringify(schema)} on ${text}`).toBe(valid ? 'complete' : 'refused');
          if (valid) for (let i = 1; i < text.length; i++) expect(held(schema, text.slice(0, i)), text.slice(0, i)).toBe('viable');
        }),
        { numRuns: 300, seed: 11 },
      );
    }
  });

  it('in a string held to a rule, \\u escapes write only control characters (others are written as themselves), and an escape is begun only where its character is taken', () => {
    const letters = { type: 'string', pattern: '^[a-z]*$' };
    expect(held(letters, '"ab"')).toBe('complete');
    expect(held(letters, '"\\u0061')).toBe('refused');
    expect(held(letters, '"a\\')).toBe('refused'); // no escaped character is a letter
    const lines = { type: 'string', pattern: '^a\\nb$' };
    expect(held(lines, '"a\\nb"')).toBe('complete');
    expect(held(lines, '"a\\u000ab"')).toBe('complete');
    expect(held(lines, '"a\\u000b')).toBe('refused');
    expect(held(lines, '"a\\u001')).toBe('refused'); // no control from U+0010 on is a line feed
    // a free string takes any escape, as before
    expect(held({ type: 'string' }, '"\\u0061\\ud83d\\ude00"')).toBe('complete');
  });

  it('a character still being decoded may come only where a character beyond ASCII can, within the length', () => {
    const at = (schema: unknown, text: string) => {
      const state = startingState(schema, 'any');
      expect(state.push(text)).toBe(true);
      return state.inString;
    };
    expect(at({ type: 'string', maxLength: 2 }, '"a')).toBe(true);
    expect(at({ type: 'string', maxLength: 2 }, '"ab')).toBe(false);
    expect(at({ type: 'string', pattern: '^[a-z]+$' }, '"a')).toBe(false);
    expect(at({ type: 'string', pattern: '^[a-zé]+$' }, '"a')).toBe(true);
    expect(at({ type: 'string' }, '"ab')).toBe(true);
  });

  it('a held format takes only values Ajv\'s full format passes (random candidates near each form)', () => {
    const digit = fc.constantFrom(...'0123456789');
    const digits = (n: number) => fc.array(digit, { minLength: n, maxLength: n }).map((d) => d.join(''));
    // two-digit fields near their ranges, on both sides of each edge
    const two = (from: number, to: number) => fc.integer({ min: from, max: to }).map((n) => String(n).padStart(2, '0'));
    const year = fc.oneof(digits(4), fc.constantFrom('2000', '1900', '2024', '2023', '2100', '2400'));
    const date = fc.tuple(year, two(0, 13), two(0, 32)).map(([y, m, d]) => `${y}-${m}-${d}`);
    const time = fc.tuple(two(0, 24), two(0, 60), two(0, 61), fc.constantFrom('Z', '+01:00', '-23:59', '+24:00', 'z', '', '.5Z', '+05:60')).map(([h, m, s, z]) => `${h}:${m}:${s}${z}`);
    const candidates: Record<string, fc.Arbitrary<string>> = {
      'date-time': fc.tuple(date, time).map(([d, t]) => `${d}T${t}`),
      date,
      time,
      uuid: fc.uuid(),
      email: fc.emailAddress(),
      ipv4: fc.ipV4(),
      ipv6: fc.ipV6(),
      hostname: fc.domain(),
      uri: fc.webUrl(),
    };
    for (const [format, arbitrary] of Object.entries(candidates)) {
      const validate = ajv.compile({ type: 'string', format });
      let taken = 0;
      fc.assert(
        fc.property(arbitrary, (value) => {
          if (held({ type: 'string', format }, JSON.stringify(value)) !== 'complete') return;
          taken++;
          expect(validate(value), `${format}: ${JSON.stringify(value)}`).toBe(true);
        }),
        { numRuns: 400, seed: 3 },
      );
      expect(taken, format).toBeGreaterThan(0);
    }
  });

  it('the common forms of each held format are taken', () => {
    const common: Record<string, string[]> = {
      'date-time': ['2024-02-29T12:00:00Z', '1999-12-31T23:59:59.123+05:30', '2023-06-01T00:00:00-08:00'],
      date: ['2024-02-29', '2000-02-29', '2023-11-30'],
      time: ['12:30:00Z', '23:59:59.5+01:00'],
      uuid: ['123e4567-e89b-12d3-a456-426614174000'],
      email: ['romeo@verona.it', 'juliet.capulet+note@mail.example.com'],
      ipv4: ['192.168.0.1', '255.255.255.255'],
      ipv6: ['2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
      hostname: ['example.com', 'a-b.c-d.org'],
      uri: ['https://example.com/path/to?x=1&y=2', 'http://localhost:8000/v1'],
    };
    for (const [format, values] of Object.entries(common)) {
      for (const value of values) {
        expect(held({ type: 'string', format }, JSON.stringify(value)), `${format}: ${value}`).toBe('complete');
        expect(ajv.compile({ type: 'string', format })(value)).toBe(true);
      }
    }
    // and what is not a date is refused where it stops being one
    expect(held({ type: 'string', format: 'date' }, '"2023-02-29"')).toBe('refused');
    expect(held({ type: 'string', format: 'date' }, '"2023-13')).toBe('refused');
    // years and fractions Python's datetime (and so Pydantic) takes: no year 0, microseconds at most
    expect(held({ type: 'string', format: 'date' }, '"0000-01-01"')).toBe('refused');
    expect(held({ type: 'string', format: 'date' }, '"0400-02-29"')).toBe('complete');
    expect(held({ type: 'string', format: 'time' }, '"12:00:00.1234567')).toBe('refused');
    expect(FORMAT_PATTERNS.has('password')).toBe(false);
    // a format not held only annotates (any string is one)
    expect(held({ type: 'string', format: 'password' }, '"whenever"')).toBe('complete');
  });

  it('a pattern and a length that leave no value are refused up front, and any that leave one are taken: agreed with every string up to the length under Ajv', () => {
    const patterns = ['^[ab]{2}$', '^(ab)*$', 'a1', '^1+$', '^(a|bb)+$', 'b$', '^a{3,4}$', '^(?:aaa)+$|^(?:bb)+$'];
    const alphabet = ['a', 'b', '1'];
    const strings: string[][] = [['']];
    for (let n = 1; n <= 7; n++) strings.push(strings[n - 1].flatMap((s) => alphabet.map((c) => s + c)));
    for (const pattern of patterns) {
      for (let min = 0; min <= 4; min++) {
        for (const max of [min, min + 1, min + 2, 5, Infinity]) {
          if (max < min) continue;
          const schema = { type: 'string', pattern, minLength: min, ...(max === Infinity ? {} : { maxLength: max }) };
          const validate = ajv.compile(schema);
          // every language here that has a value longer than 7 has one of at most min + 3 ≤ 7 characters
          const some = strings.slice(min, Math.min(max, 7) + 1).some((level) => level.some((s) => validate(s)));
          let taken = true;
          try {
            startingState(schema, 'any');
          } catch (err) {
            expect(err, JSON.stringify(schema)).toBeInstanceOf(SchemaError);
            expect((err as Error).message).toMatch(/no string of .* meets the pattern/);
            taken = false;
          }
          expect(taken, JSON.stringify(schema)).toBe(some);
        }
      }
    }
  });

  it('random patterns and lengths: taken up front exactly when some string meets them, and each prefix takes exactly the characters some such string goes on with (every string to length 8, by RegExp)', () => {
    // patterns over a and b built from the operators a length interacts with: classes, alternation, repetition, counts
    const { pattern } = fc.letrec<{ pattern: string }>((tie) => ({
      pattern: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constantFrom('a', 'b', '[ab]', 'ab', 'ba'),
        fc.tuple(tie('pattern'), tie('pattern')).map(([x, y]) => `${x}${y}`),
        fc.tuple(tie('pattern'), tie('pattern')).map(([x, y]) => `(?:${x}|${y})`),
        fc.tuple(tie('pattern'), fc.constantFrom('*', '+', '?', '{2}', '{1,3}', '{3,}')).map(([x, q]) => `(?:${x})${q}`),
      ),
    }));
    const strings: string[] = [''];
    for (let n = 1, level = ['']; n <= 8; n++) strings.push(...(level = level.flatMap((w) => [`${w}a`, `${w}b`])));
    fc.assert(
      fc.property(pattern, fc.nat(5), fc.nat(4), fc.array(fc.nat(), { minLength: 10, maxLength: 10 }), (core, min, extra, draws) => {
        const max = Math.min(8, min + extra);
        const schema = { type: 'string', pattern: `^(?:${core})$`, minLength: min, maxLength: max };
        const full = new RegExp(`^(?:${core})$`);
        const valid = strings.filter((w) => w.length >= min && w.length <= max && full.test(w));
        let state;
        try {
          state = startingState(schema, 'any');
        } catch (err) {
          expect(err, core).toBeInstanceOf(SchemaError);
          expect(valid, `${JSON.stringify(schema)} refused, yet ${valid[0]} meets it`).toEqual([]);
          return;
        }
        expect(valid.length, `${JSON.stringify(schema)} taken, yet no string meets it`).toBeGreaterThan(0);
        // a walk: every prefix it reaches is one some valid string begins with, and it can always go on
        expect(state.push('"')).toBe(true);
        let text = '';
        for (const draw of draws) {
          const next = ['a', 'b', '"'].filter((c) => state.clone().push(c));
          expect(next.sort(), `${JSON.stringify(schema)} after ${JSON.stringify(text)}`).toEqual(['a', 'b', '"'].filter((c) => (c === '"' ? valid.includes(text) : valid.some((w) => w.startsWith(text + c)))).sort());
          const c = next[draw % next.length];
          state.push(c);
          if (c === '"') break;
          text += c;
        }
      }),
      { numRuns: 600, seed: 23 },
    );
  });

  it('no prefix a rule takes is a dead end: random walks over what it takes always go on and end in a value Ajv accepts', () => {
    const schemas = [
      { type: 'string', pattern: '^a+b$', maxLength: 3 },
      { type: 'string', pattern: '^(ab)*$', minLength: 3, maxLength: 4 },
      { type: 'string', pattern: '1', minLength: 4, maxLength: 4 },
      { type: 'string', pattern: '^[ab]*1[ab]{2}$', maxLength: 5 },
      { type: 'string', pattern: '^(?:aaa)+$|^(?:bb)+$', minLength: 5 },
      { type: 'string', format: 'date', pattern: '^2' },
      { type: 'string', format: 'date', pattern: '-29$' },
      { type: 'string', format: 'time', maxLength: 9 },
      { type: 'string', format: 'date-time', maxLength: 20 },
      { type: 'string', format: 'uuid', pattern: 'ab' },
    ];
    const alphabet = [...'ab0123456789-:TZ+.', '"'];
    for (const schema of schemas) {
      const validate = ajv.compile(schema);
      fc.assert(
        fc.property(fc.array(fc.nat(), { minLength: 40, maxLength: 40 }), (draws) => {
          const state = startingState(schema, 'any');
          expect(state.push('"')).toBe(true);
          let text = '"';
          for (const draw of draws) {
            const next = alphabet.filter((c) => state.clone().push(c));
            expect(next.length, `${JSON.stringify(schema)} stuck after ${text}`).toBeGreaterThan(0);
            const c = next[draw % next.length];
            expect(state.push(c)).toBe(true);
            text += c;
            if (c === '"') break;
          }
          if (text.endsWith('"') && text.length > 1) expect(validate(JSON.parse(text)), `${JSON.stringify(schema)}: ${text}`).toBe(true);
        }),
        { numRuns: 100, seed: 5 },
      );
    }
  });

  it('a pattern and a format held together: a value must meet both at once, and where none can the schema is refused', () => {
    expect(() => startingState({ type: 'string', pattern: '^\\d+$', format: 'date' })).toThrow(/no string meets both the pattern "\^\\\\d\+\$" and the format "date"/);
    expect(() => startingState({ type: 'string', format: 'date', maxLength: 9 })).toThrow(/no string of at most 9 characters meets the format "date"/);
    // held apart, each takes "2100-02-": the pattern wants 29 next, the date any day but the 29th (2100 is no leap year)
    expect(held({ type: 'string', format: 'date', pattern: '^2\\d{3}-02-29$' }, '"2100-02-')).toBe('refused');
    expect(held({ type: 'string', format: 'date', pattern: '^2\\d{3}-02-29$' }, '"2096-02-29"')).toBe('complete');
  });

  it('rules the constraint cannot follow are SchemaErrors naming the keyword', () => {
    expect(() => startingState({ type: 'string', pattern: '(?=a)b' })).toThrow(SchemaError);
    expect(() => startingState({ type: 'string', pattern: 'a(^b)' })).toThrow(/pattern/);
    expect(() => startingState({ type: 'string', minLength: -1 })).toThrow(/minLength/);
    expect(() => startingState({ type: 'string', minLength: 3, maxLength: 2 })).toThrow(/maxLength/);
    expect(() => startingState({ enum: ['a', 'b'], pattern: 'a' })).toThrow(/beside "enum"/);
    expect(() => startingState({ type: 'string', pattern: 3 })).toThrow(/"pattern" must be a string/);
    // without a type they bind only strings (or numbers), and any other value would pass unheld
    expect(() => startingState({ minLength: 2 }, 'any')).toThrow(/"minLength" without a "type"/);
    expect(() => startingState({ maximum: 2 }, 'any')).toThrow(/"maximum" without a "type"/);
  });
});
