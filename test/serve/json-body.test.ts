/** Request bodies: one JSON parser for every content type, "__proto__" keys dropped, clear 400s. */
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/serve/errors.js';
import { MAX_BODY_CONTAINERS, MAX_BODY_DEPTH, MAX_BODY_STRINGS, parseJsonBody } from '../../src/serve/json-body.js';

/** The ApiError parseJsonBody throws on `text`. */
function refusal(text: string): ApiError {
  try {
    parseJsonBody(text);
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('parseJsonBody accepted the body');
}

describe('parseJsonBody', () => {
  it('parses JSON as JSON.parse does when no "__proto__" key can be in it', () => {
    const text = JSON.stringify({ model: 'm', prompt: [1, 2, 3], nested: { a: [null, true, 1.5, 'é'] } });
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
  });

  it('drops "__proto__" keys at any depth, spelled out or escaped, and keeps everything else', () => {
    const text = '{"model":"m","__proto__":{"polluted":1},"logit_bias":{"__proto__":5,"7":1},"messages":[{"role":"user","\\u005f_proto__":{"x":1},"content":"\\u0068i"}]}';
    const body = parseJsonBody(text) as Record<string, any>;
    expect(body).toEqual({ model: 'm', logit_bias: { '7': 1 }, messages: [{ role: 'user', content: 'hi' }] });
    for (const o of [body, body.logit_bias, body.messages[0]]) expect(Object.hasOwn(o, '__proto__')).toBe(false);
    // what a copy would have turned into the prototype (JSON.parse alone keeps the key as an own property)
    const unsafe = JSON.parse(text) as object;
    expect((Object.assign({}, unsafe) as Record<string, unknown>).polluted).toBe(1);
    expect((Object.assign({}, body) as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('drops the key with any one of its letters escaped, in either case of hex digit', () => {
    for (const spelled of ['\\u005F_proto__', '__\\u0070roto__', '__p\\u0072oto__', '__pr\\u006Fto__', '__pro\\u0074o__', '__prot\\u006f__']) {
      const body = parseJsonBody(`{"model":"m","x":[1,{"${spelled}":{"polluted":1}}]}`) as { x: [number, object] };
      expect(Object.hasOwn(body.x[1], '__proto__'), spelled).toBe(false);
      expect((Object.assign({}, body.x[1]) as Record<string, unknown>).polluted, spelled).toBeUndefined();
    }
  });

  it('invalid JSON is a 400 that quotes where the text stops being JSON', () => {
    const err = (() => {
      try {
        parseJsonBody('{"model": "m", "prompt": }');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, type: 'invalid_request_error', param: null, code: 'invalid_json' });
    expect((err as Error).message).toMatch(/^the request body is not valid JSON: Unexpected token '}'/);
  });

  it('an empty body is a 400 that says so', () => {
    expect(() => parseJsonBody('  \n')).toThrow(/the request body is empty/);
  });

  it(`nesting up to ${MAX_BODY_DEPTH} levels is read; one more is a 400 that says so, before any parsing`, () => {
    const nested = (levels: number) => `{"model":"m","x":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    expect(parseJsonBody(nested(MAX_BODY_DEPTH))).toMatchObject({ model: 'm' });
    for (const levels of [MAX_BODY_DEPTH + 1, 8_000_000]) {
      const err = refusal(nested(levels));
      expect(err).toMatchObject({ status: 400, type: 'invalid_request_error', code: 'body_too_deep' });
      expect(err.message).toBe(`the request body nests objects and arrays more than ${MAX_BODY_DEPTH} levels deep; no request field needs more than a few`);
    }
    // objects count as levels as arrays do
    expect(refusal(`${'{"a":'.repeat(MAX_BODY_DEPTH + 1)}1${'}'.repeat(MAX_BODY_DEPTH + 1)}`).code).toBe('body_too_deep');
  });

  it(`up to ${MAX_BODY_CONTAINERS} objects and arrays are read; more is a 400 that says how to split the request`, () => {
    const many = (count: number) => `{"model":"m","prompt":[${new Array(count - 3).fill('[1]').join(',')}],"logit_bias":{}}`;
    expect((parseJsonBody(many(MAX_BODY_CONTAINERS)) as { prompt: unknown[] }).prompt).toHaveLength(MAX_BODY_CONTAINERS - 3);
    const err = refusal(many(MAX_BODY_CONTAINERS + 1));
    expect(err).toMatchObject({ status: 400, code: 'body_too_complex' });
    expect(err.message).toMatch(/holds more than 100000 objects and arrays; send fewer prompts or messages per request/);
    // 16 MiB of "{}," (seconds to parse, into hundreds of MB) is refused the same way
    expect(refusal(`[${new Array(5_000_000).fill('{}').join(',')}]`).code).toBe('body_too_complex');
  });

  it(`up to ${MAX_BODY_STRINGS} strings, object keys included, are read; more is a 400 that says how to split the request`, () => {
    // "model", "m", "prompt", "logit_bias" and the keys: four strings besides the prompt's
    const body = (prompts: number, keys: number) =>
      `{"model":"m","prompt":[${Array.from({ length: prompts }, (_, i) => `"p${i}"`).join(',')}],"logit_bias":{${Array.from({ length: keys }, (_, i) => `"${i}":1`).join(',')}}}`;
    expect((parseJsonBody(body(MAX_BODY_STRINGS - 4 - 10, 10)) as { prompt: unknown[] }).prompt).toHaveLength(MAX_BODY_STRINGS - 14);
    for (const [prompts, keys] of [[MAX_BODY_STRINGS - 4 - 10, 11], [0, MAX_BODY_STRINGS]]) {
      const err = refusal(body(prompts, keys));
      expect(err).toMatchObject({ status: 400, code: 'body_too_complex' });
      expect(err.message).toMatch(/holds more than 100000 strings \(object keys included\); send fewer prompts or messages per request/);
    }
  });

  it('brackets and quotes inside strings are text, not structure', () => {
    const text = JSON.stringify({ model: 'm', prompt: `${'['.repeat(MAX_BODY_DEPTH + 5)} "quoted" \\" {{{ \\`, stop: ['\\', '"', '[{'] });
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
    // escaped quotes (a run of backslashes before a quote) end a string only where the run is even
    const brackets = '['.repeat(MAX_BODY_DEPTH + 5);
    const escapes = `{"a":"\\\\","b":"\\"${brackets}","c":"\\\\\\"${brackets}","d":[1]}`;
    expect(parseJsonBody(escapes)).toEqual(JSON.parse(escapes));
    // and a string that ends in an even run is over: the structure after it counts
    expect(refusal(`{"a":"\\\\\\\\","x":${brackets}${']'.repeat(MAX_BODY_DEPTH + 5)},"z":"q"}`).code).toBe('body_too_deep');
  });

  it('an unterminated string or unbalanced brackets are still JSON.parse\'s 400', () => {
    expect(refusal('{"model":"m","prompt":"abc').message).toMatch(/^the request body is not valid JSON: Unterminated string/);
    expect(refusal('{"model":"m"]]]]').code).toBe('invalid_json');
  });

  it('escapes that cannot spell "__proto__" (a client writing ASCII only) leave the body as JSON.parse reads it', () => {
    const text = '{"model":"m","prompt":"caf\\u00e9 \\u4e2d","__prot\\u00e9__":1}';
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
  });
});
