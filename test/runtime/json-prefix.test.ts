/**
 * JsonPrefix against an independent judge, V8's own JSON.parse (test/helpers/json-judge.ts), on
 * random objects written with every form the grammar has and on mutations of them.
 */
import { describe, expect, it } from 'vitest';
import { JsonPrefix } from '../../src/runtime/generation/json-prefix.js';
import { mulberry32 } from '../../src/util/prng.js';
import { viableJsonObject as viable } from '../helpers/json-judge.js';

/** JsonPrefix's answer for each prefix of `text`: 'viable', 'complete' or 'refused' (then it stops). */
function prefixes(text: string, maxWhitespace = Infinity): Array<'viable' | 'complete' | 'refused'> {
  const json = new JsonPrefix({ maxWhitespace, maxNewlines: maxWhitespace });
  const out: Array<'viable' | 'complete' | 'refused'> = [];
  for (const ch of text.split('')) {
    if (!json.push(ch)) {
      out.push('refused');
      break;
    }
    out.push(json.complete ? 'complete' : 'viable');
  }
  return out;
}

/** A random JSON object written out by hand: whitespace, escapes, every number form, nesting. */
function randomObject(rand: () => number, depth = 0): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const ws = () => pick(['', '', '', ' ', '\n  ', '\t', '\r\n']);
  const str = () => {
    const parts = ['a', 'key', 'é', '😀', '\\"', '\\\\', '\\/', '\\n', '\\t', '\\b\\f\\r', '\\u00e9', '\\uD83D\\uDE00', ' ', '{', ']', ':', ','];
    let s = '"';
    for (let i = Math.floor(rand() * 4); i > 0; i--) s += pick(parts);
    return s + '"';
  };
  const num = () => pick(['0', '-0', '7', '-12', '3.25', '0.5', '1e5', '2E-3', '-4.5e+10', '10', '123456789', '0e0']);
  const value = (d: number): string => {
    const r = rand();
    if (d < 3 && r < 0.15) return randomObject(rand, d + 1);
    if (d < 3 && r < 0.3) {
      const items = Array.from({ length: Math.floor(rand() * 4) }, () => ws() + value(d + 1) + ws());
      return `[${items.join(',') || ws()}]`;
    }
    if (r < 0.55) return str();
    if (r < 0.85) return num();
    return pick(['true', 'false', 'null']);
  };
  const members = Array.from({ length: Math.floor(rand() * 5) }, () => `${ws()}${str()}${ws()}:${ws()}${value(depth)}${ws()}`);
  return `{${members.join(',') || ws()}}`;
}

describe('JsonPrefix', () => {
  it('the judge itself: every proper prefix of a valid object is viable, and a wrong character is not', () => {
    const text = '{"a": [1, -2.5e+3, true, null], "b": {"c": "x\\u00e9\\n"}}';
    for (let i = 0; i <= text.length; i++) expect(viable(text.slice(0, i)), text.slice(0, i)).toBe(true);
    for (const bad of ['{"a": 1x', '{"a": 01', '{,', '{"a": [1,]', '{"a": tx', '{"a": "\n', '[1]', '"x"', '{"a": 1}x', '{"a": 1e+x', '{"a": "\\x"', '{"a": "\\u12g4"}']) {
      expect(viable(bad), bad).toBe(false);
    }
  });

  it('accepts every prefix of 500 random objects and is complete exactly at the closing brace', () => {
    const rand = mulberry32(11);
    for (let k = 0; k < 500; k++) {
      const text = randomObject(rand);
      expect(() => JSON.parse(text), text).not.toThrow();
      const answers = prefixes(text);
      expect(answers.slice(0, -1).every((a) => a === 'viable'), text).toBe(true);
      expect(answers[answers.length - 1], text).toBe('complete');
    }
  });

  it('agrees with JSON.parse on every prefix of 3000 mutated objects (a character inserted, deleted or replaced)', () => {
    const rand = mulberry32(23);
    const alphabet = '{}[]:,"\\ \n\t-+.eE0123456789tfnrulasxé\u0001\u001f';
    let refusedSeen = 0;
    for (let k = 0; k < 3000; k++) {
      let text = randomObject(rand);
      for (let m = 1 + Math.floor(rand() * 2); m > 0; m--) {
        const at = Math.floor(rand() * (text.length + 1));
        const ch = alphabet[Math.floor(rand() * alphabet.length)];
        const op = rand();
        text = op < 0.4 ? text.slice(0, at) + ch + text.slice(at) : op < 0.7 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ch + text.slice(at + 1);
      }
      const answers = prefixes(text);
      for (let i = 0; i < answers.length; i++) {
        const prefix = text.slice(0, i + 1);
        const a = answers[i];
        if (i > 0 && answers[i - 1] === 'complete') {
          // by design nothing follows the closed object, not even whitespace (generation ends there)
          expect(a).toBe('refused');
          continue;
        }
        if (a === 'refused') {
          refusedSeen++;
          // refused where the judge says no completion exists
          expect(viable(prefix), JSON.stringify(prefix)).toBe(false);
        } else {
          expect(viable(prefix), JSON.stringify(prefix)).toBe(true);
          // complete exactly where JSON.parse accepts the text as it stands
          let parses = true;
          try {
            JSON.parse(prefix);
          } catch {
            parses = false;
          }
          expect(a === 'complete', JSON.stringify(prefix)).toBe(parses);
        }
      }
    }
    expect(refusedSeen).toBeGreaterThan(1000);
  });

  it('refuses anything after the object closes, and a top level that is not an object', () => {
    for (const text of ['{} ', '{}{}', '{}x', '[]', '"s"', '1', 'true', ' [']) {
      expect(prefixes(text).at(-1), text).toBe('refused');
    }
    expect(prefixes('  \n{ }').at(-1)).toBe('complete');
  });

  it('limits whitespace outside strings to maxWhitespace characters and maxNewlines line breaks in a row, and not inside them', () => {
    const json = new JsonPrefix({ maxWhitespace: 4, maxNewlines: 4 });
    expect(json.push('{    ')).toBe(true);
    expect(json.clone().push(' ')).toBe(false);
    expect(json.push('"a":\n\n\n\n"   many    spaces   "  ,  "b" : 1    }')).toBe(true);
    // by default one line break between two tokens, with indentation after it, as pretty-printers write
    const pretty = new JsonPrefix();
    expect(pretty.push(JSON.stringify({ a: [1, { b: 'x\n\ny' }], c: null }, null, 2))).toBe(true);
    expect(pretty.complete).toBe(true);
    const twice = new JsonPrefix();
    expect(twice.push('{\n  \r')).toBe(true);
    expect(twice.clone().push('\n')).toBe(false);
    expect(twice.push(' "a": "\\n\\n"\n}')).toBe(true);
    expect(json.complete).toBe(true);
    // a number ends at whitespace, which counts from there
    const n = new JsonPrefix({ maxWhitespace: 2 });
    expect(n.push('{"a":12  ')).toBe(true);
    expect(n.clone().push(' ')).toBe(false);
  });

  it('clone() is independent of the original', () => {
    const a = new JsonPrefix();
    a.push('{"k": [1, {"x": "y');
    const b = a.clone();
    expect(b.push('"}]}')).toBe(true);
    expect(b.complete).toBe(true);
    expect(a.complete).toBe(false);
    expect(a.inString).toBe(true);
    expect(a.push('z"}]}')).toBe(true);
    expect(a.complete).toBe(true);
  });
});
