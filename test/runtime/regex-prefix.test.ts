/**
 * RegexPrefix (guided_regex, guided_choice) against independent truth: V8's own regex engine for
 * full matches (`^(?:p)$`), and, for whether a text can still become a match, a regex of the
 * pattern's prefixes written out by hand for each pattern. Random texts over each pattern's
 * alphabet, and every prefix of random full matches.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { choicePattern, compileRegex, RegexError, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';

/** pattern, the regex of its viable prefixes (written by hand), and the characters texts are drawn from */
const CASES: Array<{ pattern: string; prefixes: RegExp; alphabet: string }> = [
  { pattern: '\\d{3}-[a-z]{2,4}', prefixes: /^(\d{0,3}|\d{3}-[a-z]{0,4})$/, alphabet: '0123-abz' },
  { pattern: '(yes|no|maybe)', prefixes: /^(|y|ye|yes|n|no|m|ma|may|mayb|maybe)$/, alphabet: 'yesnomab' },
  { pattern: '(ab)+c?', prefixes: /^((ab)*a?|(ab)+c)$/, alphabet: 'abc' },
  { pattern: '[A-Z][a-z]*( [a-z]+)*\\.', prefixes: /^(|[A-Z][a-z]*( [a-z]+)* ?|[A-Z][a-z]*( [a-z]+)*\.)$/, alphabet: 'Ab .' },
  { pattern: '-?(0|[1-9]\\d*)(\\.\\d+)?', prefixes: /^(-?|-?(0|[1-9]\d*)(\.\d*)?)$/, alphabet: '-0159.' },
  { pattern: '(a|b)*a(a|b){3}', prefixes: /^[ab]*$/, alphabet: 'abc' },
  { pattern: '.{2}😀', prefixes: /^(.{0,2}|.{2}😀)$/u, alphabet: 'x😀é' },
  // a branch that only a lone surrogate completes, which no text holds: its first letter is no prefix
  { pattern: 'x[\\uD800-\\uDFFF]|ab?c', prefixes: /^(|a|ab?c|ab)$/, alphabet: 'xabc' },
];

/** the text split into characters as the pattern reads them (code points) */
const chars = (s: string) => [...s];

/**
 * Patterns with lookaheads (lookaheads.ts), with V8 as truth for full matches, and for prefixes a
 * search for a completion over the alphabet: a text that matches has every prefix viable, and a
 * prefix refused has no completion of up to 8 more characters.
 */
const LOOKAHEAD_CASES: Array<{ pattern: string; alphabet: string }> = [
  // Pydantic's Decimal and condecimal(max_digits=5, decimal_places=2), as it writes them
  { pattern: '^(?!^[-+.]*$)[+-]?0*\\d*\\.?\\d*$', alphabet: '-+.019' },
  { pattern: '^(?!^[-+.]*$)[+-]?0*(?:\\d{0,3}|(?=[\\d.]{1,6}0*$)\\d{0,3}\\.\\d{0,2}0*$)', alphabet: '-.019' },
  { pattern: '(?=.*\\d)(?=.*[a-z]).{4,}', alphabet: 'ab1-' },
  { pattern: 'foo(?=bar)\\w+', alphabet: 'fobarz' },
  { pattern: '(?!abc)\\w+', alphabet: 'abcd' },
  { pattern: 'a(?=b$)\\w|c', alphabet: 'abc' },
  { pattern: '(?:x|(?!yy)y)z+', alphabet: 'xyz' },
  { pattern: '(?=\\d{3}$)\\d+|[a-z]{2}', alphabet: 'a1b2' },
];

describe('RegexPrefix with lookaheads against V8’s regex engine', () => {
  for (const { pattern, alphabet } of LOOKAHEAD_CASES) {
    const full = new RegExp(`^(?:${pattern})$`, 'u');
    const regex = compileRegex(pattern);
    const letters = chars(alphabet);
    /** whether some completion of up to `depth` more characters matches */
    const completes = (t: string, depth: number): boolean => full.test(t) || (depth > 0 && letters.some((c) => completes(t + c, depth - 1)));
    it(`${pattern}: full matches exactly as V8’s; a match’s prefixes are viable, a refused prefix has no completion`, () => {
      fc.assert(
        fc.property(fc.array(fc.constantFrom(...letters), { maxLength: 9 }).map((a) => a.join('')), (t) => {
          const state = new RegexPrefix(regex);
          const ok = state.push(t);
          if (ok) expect(state.canEnd, JSON.stringify(t)).toBe(full.test(t));
          if (full.test(t)) {
            expect(ok, JSON.stringify(t)).toBe(true);
            for (let i = 0; i < t.length; i++) expect(new RegexPrefix(regex).push(t.slice(0, i)), JSON.stringify(t.slice(0, i))).toBe(true);
          }
          if (!ok) expect(completes(t, Math.max(0, 8 - t.length)), `${JSON.stringify(t)} refused, yet it completes`).toBe(false);
        }),
        { numRuns: 300, seed: 31 },
      );
    });
  }
});

describe('random patterns with lookaheads, anchors and groups', () => {
  it('either refused with a RegexError or matching exactly what V8 matches, on every string of a and b to length 6', () => {
    const { pattern } = fc.letrec<{ pattern: string }>((tie) => ({
      pattern: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constantFrom('a', 'b', '[ab]', 'ab', '$', '^'),
        fc.tuple(tie('pattern'), tie('pattern')).map(([x, y]) => `${x}${y}`),
        fc.tuple(tie('pattern'), tie('pattern')).map(([x, y]) => `(?:${x}|${y})`),
        fc.tuple(tie('pattern'), fc.constantFrom('*', '+', '?', '{2}')).map(([x, q]) => `(?:${x})${q}`),
        fc.tuple(fc.constantFrom('(?=', '(?!'), tie('pattern')).map(([open, x]) => `${open}${x})`),
      ),
    }));
    const strings: string[] = [''];
    for (let n = 1, level = ['']; n <= 6; n++) strings.push(...(level = level.flatMap((w) => [`${w}a`, `${w}b`])));
    let held = 0;
    fc.assert(
      fc.property(pattern, (p) => {
        let regex;
        try {
          regex = compileRegex(p);
        } catch (err) {
          expect(err, p).toBeInstanceOf(RegexError);
          return;
        }
        held++;
        const full = new RegExp(`^(?:${p})$`);
        for (const w of strings) {
          const state = new RegexPrefix(regex);
          expect(state.push(w) && state.canEnd, `${p} on ${JSON.stringify(w)}`).toBe(full.test(w));
        }
      }),
      { numRuns: 500, seed: 41 },
    );
    // most are followed: refusals are the anchors inside, lookaheads under repetition, and empty languages
    expect(held).toBeGreaterThan(150);
  });
});

describe('RegexPrefix against V8’s regex engine', () => {
  for (const { pattern, prefixes, alphabet } of CASES) {
    const full = new RegExp(`^(?:${pattern})$`, 'u');
    const regex = compileRegex(pattern);
    const letters = chars(alphabet);
    const text = fc.array(fc.constantFrom(...letters), { maxLength: 12 }).map((a) => a.join(''));

    it(`${pattern}: a text is read through exactly when it is a viable prefix, and may end exactly when it matches`, () => {
      fc.assert(
        fc.property(text, (t) => {
          const state = new RegexPrefix(regex);
          const ok = state.push(t);
          expect(ok, JSON.stringify(t)).toBe(prefixes.test(t));
          if (ok) expect(state.canEnd, JSON.stringify(t)).toBe(full.test(t));
        }),
        { numRuns: 400 },
      );
    });

    it(`${pattern}: read a character at a time, the states agree with reading at once`, () => {
      fc.assert(
        fc.property(text, (t) => {
          const whole = new RegexPrefix(regex);
          const stepped = new RegexPrefix(regex);
          const ok = whole.push(t);
          const okStepped = chars(t).every((c) => stepped.push(c));
          expect(okStepped).toBe(ok);
          if (ok) expect(stepped.key).toBe(whole.key);
        }),
      );
    });
  }

  it('complete (nothing can follow) only where a match cannot be extended', () => {
    const cases: Array<[string, string, boolean, boolean]> = [
      // pattern, text, canEnd, complete
      ['\\d{3}-[a-z]{2,4}', '123-ab', true, false],
      ['\\d{3}-[a-z]{2,4}', '123-abcd', true, true],
      ['^(yes|no)$', 'no', true, true],
      [choicePattern(['a', 'ab']), 'a', true, false],
      [choicePattern(['a', 'ab']), 'ab', true, true],
      ['[a-z ]+', 'hello world', true, false],
      ['.{2}', '😀😀', true, true],
    ];
    for (const [pattern, text, canEnd, complete] of cases) {
      const state = new RegexPrefix(compileRegex(pattern));
      expect(state.push(text), `${pattern} ${text}`).toBe(true);
      expect([state.canEnd, state.complete], `${pattern} ${text}`).toEqual([canEnd, complete]);
    }
  });

  it('a choice is matched literally: characters regexes treat specially are escaped', () => {
    const choices = ['a.b', '(x)', 'c|d', '$1^', 'back\\slash', 'x{2}', '/path/', '[ok]'];
    const regex = compileRegex(choicePattern(choices));
    for (const c of choices) {
      const state = new RegexPrefix(regex);
      expect(state.push(c), c).toBe(true);
      expect(state.complete, c).toBe(true);
    }
    for (const not of ['axb', 'x', 'c', 'xx', 'd', '$1', 'backslash']) {
      const state = new RegexPrefix(regex);
      expect(state.push(not) && state.canEnd, not).toBe(false);
    }
  });

  it('where a character beyond ASCII may come (a token ending in part of one is judged by it)', () => {
    expect(new RegexPrefix(compileRegex('[a-z]+')).inString).toBe(false);
    expect(new RegexPrefix(compileRegex('.+')).inString).toBe(true);
    expect(new RegexPrefix(compileRegex('a[éè]')).inString).toBe(false);
    const after = new RegexPrefix(compileRegex('a[éè]'));
    after.push('a');
    expect(after.inString).toBe(true);
  });

  it('Python’s syntax that JavaScript reads otherwise: (?P<name>…) groups, \\- outside a class, \\A and \\Z', () => {
    const accepts = (pattern: string, text: string) => {
      const state = new RegexPrefix(compileRegex(pattern));
      return state.push(text) && state.canEnd;
    };
    expect(accepts('(?P<word>ab)+', 'abab')).toBe(true);
    expect(accepts('\\d\\-\\d', '1-2')).toBe(true);
    expect(accepts('\\Aab\\Z', 'ab')).toBe(true);
    // an escaped $ at the end stays a dollar sign
    expect(accepts('\\d+\\$', '12$')).toBe(true);
    expect(accepts('\\d+\\$', '12')).toBe(false);
  });

  it('patterns that cannot be followed token by token are refused, saying why', () => {
    const refused: Array<[string, RegExp]> = [
      ['(?<=a)b', /lookbehinds/],
      ['a\\bb', /\\b, which looks behind/],
      ['(?:(?=a)\\w)+', /inside a repetition/],
      ['a^b', /a \^ inside the pattern/],
      // read, and found to leave nothing
      ['(?=a)b', /matches no text/],
      // bounded: each lookahead multiplies the states after it
      ['(?=.*a)(?=.*b)(?=.*c)(?=.*d)(?=.*e).{8}', /5 lookaheads; at most 4/],
      ['(?!.*a.{20}b)(?!.*c.{20}d).{1,300}', /more than 20000 nodes$/],
      // each group with an anchor doubles the ways the rest is followed
      ['(?:a$|b)'.repeat(30) + 'c', /branch into more than 1000 ways/],
      ['(a*)b\\1', /backreference/],
      ['a{1,200000}', /large count/],
      // counted from the parsed pattern, before anything is built (10^9 nodes)
      ['((a{1000}){1000}){1000}', /would have more than 100000 nodes.*large count/],
      ['(ab|cd){30000}', /large count/],
      ['[', /Unterminated character class/],
      ['[^\\s\\S]', /matches no text/],
      ['', /matches only the empty text/],
      ['^$', /matches only the empty text/],
      ['x'.repeat(70_000), /characters long/],
    ];
    for (const [pattern, message] of refused) {
      expect(() => compileRegex(pattern), pattern.slice(0, 20)).toThrow(RegexError);
      expect(() => compileRegex(pattern), pattern.slice(0, 20)).toThrow(message);
    }
    expect(() => choicePattern([])).toThrow(/at least one choice/);
  });

  it('a pattern whose states multiply is followed lazily, in time linear in the text', () => {
    // its full DFA has 2^21 states; a text reaches at most one per character
    const regex = compileRegex('(a|b)*a(a|b){20}');
    const state = new RegexPrefix(regex);
    const text = Array.from({ length: 5000 }, (_, i) => ((i * 7919) % 3 === 0 ? 'a' : 'b')).join('');
    expect(state.push(text)).toBe(true);
    expect(state.canEnd).toBe(new RegExp('^(?:(a|b)*a(a|b){20})$').test(text));
  });
});
