/**
 * Request bodies as JSON, whatever their content type (curl -d sends form-urlencoded; every body
 * here is JSON). One parser for all of them, so that every body gets the same rules:
 * - a "__proto__" key, at any depth, is dropped like any other unknown field. Fastify's own JSON
 *   parser refuses such a body with "Body is not valid JSON", which is false (the JSON is valid)
 *   and names neither the key nor the fix; JSON.parse alone would keep it as an own property,
 *   which Object.assign or a for-in copy would turn into the prototype of the copy.
 * - invalid JSON is a 400 whose message says where the text stops being JSON (JSON.parse's own
 *   message), and nesting too deep to walk is a 400 that says so, not a stack overflow.
 */

import { badRequest } from './errors.js';

const invalid = (message: string) => badRequest(message, null, 'invalid_json');

/** Drops "__proto__" keys: returning undefined from a reviver deletes the property. */
function dropProtoKeys(key: string, value: unknown): unknown {
  return key === '__proto__' ? undefined : value;
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw invalid('the request body is empty; send a JSON object');
  try {
    // the reviver only runs when the text can hold such a key, spelled out or through \u escapes:
    // it visits every value, which a body of a million token ids need not pay for
    return text.includes('__proto__') || text.includes('\\u') ? JSON.parse(text, dropProtoKeys) : JSON.parse(text);
  } catch (err) {
    if (err instanceof RangeError) throw invalid('the request body is nested too deeply to read; send a JSON object of request fields');
    throw invalid(`the request body is not valid JSON: ${(err as Error).message}`);
  }
}
