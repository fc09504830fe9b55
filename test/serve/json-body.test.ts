/** Request bodies: one JSON parser for every content type, "__proto__" keys dropped, clear 400s. */
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/serve/errors.js';
import { parseJsonBody } from '../../src/serve/json-body.js';

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

  it('an empty body, and one nested too deeply to walk, are 400s that say so', () => {
    expect(() => parseJsonBody('  \n')).toThrow(/the request body is empty/);
    const deep = `{"a":"\\u0041","b":${'['.repeat(300_000)}${']'.repeat(300_000)}}`;
    expect(() => parseJsonBody(deep)).toThrow(/nested too deeply/);
  });
});
