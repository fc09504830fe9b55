/**
 * Request bodies as JSON, whatever their content type (curl -d sends form-urlencoded; every body
 * here is JSON). One parser for all of them, so that every body gets the same rules:
 * - a "__proto__" key, at any depth, is dropped like any other unknown field. Fastify's own JSON
 *   parser refuses such a body with "Body is not valid JSON", which is false (the JSON is valid)
 *   and names neither the key nor the fix; JSON.parse alone would keep it as an own property,
 *   which Object.assign or a for-in copy would turn into the prototype of the copy.
 * - invalid JSON is a 400 whose message says where the text stops being JSON (JSON.parse's own
 *   message).
 * - a body is measured before it is parsed, and one that nests deeper than MAX_BODY_DEPTH, or
 *   holds more than MAX_BODY_CONTAINERS objects and arrays or MAX_BODY_STRINGS strings, is a
 *   400 that says which. JSON.parse
 *   runs on the event loop, which every stream's decoding shares: within the 16 MiB body limit,
 *   "{}," repeated took 2.6-2.9 s to parse into 358 MB of heap (5.6 M empty objects), an object
 *   of 1.4 M keys 1.5 s, and 8 M nested brackets 4.8-5.4 s into 470 MB (npm run
 *   bench:json-body). A flat array of 2.8 M token ids, which the limits let through, takes
 *   ~0.2 s.
 */

import { badRequest } from './errors.js';

/**
 * Levels of nesting a body may have. No request field needs more than a few (a tool's or a
 * response format's JSON schema a few tens), and code that walks a value recursively (the chat
 * template's renderer, a schema check) would overflow its stack long before 8 M levels.
 */
export const MAX_BODY_DEPTH = 512;

/**
 * Objects and arrays a body may hold. A batch of thousands of prompts or chat messages takes a
 * few each; at ~64 bytes each once parsed (an empty object), this many hold ~6 MB.
 */
export const MAX_BODY_CONTAINERS = 100_000;

/**
 * Strings a body may hold, object keys included. A request's strings are its prompts (at most
 * 64), its messages' roles and contents, stop strings (16), logit_bias keys (1024) and field
 * names; 16 MiB of distinct short strings took 0.7-1.3 s to parse, and an object of 1.4 M keys
 * 1.4-2.3 s.
 */
export const MAX_BODY_STRINGS = 100_000;

const invalid = (message: string, code = 'invalid_json') => badRequest(message, null, code);

/** What a body of too many objects, arrays or strings is to do instead. */
const SPLIT_THE_BATCH = 'send fewer prompts or messages per request (split a large batch into several requests)';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

/**
 * Refuses a body that nests too deeply or holds too many objects and arrays or strings, in one pass over the
 * text that skips strings whole (a long prompt costs an indexOf, not a loop per character). Only
 * valid JSON needs counting right: JSON.parse refuses the rest afterwards.
 */
function checkStructure(text: string): void {
  let depth = 0;
  let containers = 0;
  let strings = 0;
  // the regular expression skips digits, commas and spaces in native code: on a body of 2.8 M
  // token ids this adds ~15 ms to JSON.parse's ~170, where a loop over every character added ~40
  const structure = /[[\]{}"]/g;
  for (let found = structure.exec(text); found !== null; found = structure.exec(text)) {
    const i = found.index;
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      if (++strings > MAX_BODY_STRINGS) {
        throw invalid(
          `the request body holds more than ${MAX_BODY_STRINGS} strings (object keys included); ${SPLIT_THE_BATCH}`,
          'body_too_complex',
        );
      }
      // the closing quote is the first one not escaped by an odd run of backslashes
      let end = text.indexOf('"', i + 1);
      while (end > 0) {
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end < 0) return; // an unterminated string: JSON.parse says where
      structure.lastIndex = end + 1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > MAX_BODY_DEPTH) {
        throw invalid(`the request body nests objects and arrays more than ${MAX_BODY_DEPTH} levels deep; no request field needs more than a few`, 'body_too_deep');
      }
      if (++containers > MAX_BODY_CONTAINERS) {
        throw invalid(
          `the request body holds more than ${MAX_BODY_CONTAINERS} objects and arrays; ${SPLIT_THE_BATCH}`,
          'body_too_complex',
        );
      }
    } else {
      depth--;
    }
  }
}

/**
 * Whether the text can hold a "__proto__" key: spelled out, or with one of its letters as a
 * \u escape. (Other escapes, such as the \u00e9 of a client that writes ASCII only, cannot spell
 * it, and need no walk.)
 */
function mayHoldProtoKey(text: string): boolean {
  return text.includes('__proto__') || /\\u00(?:5[fF]|6[fF]|7[024])/.test(text);
}

/**
 * Deletes every own "__proto__" key of the parsed value, at any depth, with a stack rather than
 * recursion; primitives in arrays (a million token ids) cost a typeof each.
 */
function dropProtoKeys(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object' && item !== null) stack.push(item);
    } else if (typeof value === 'object' && value !== null) {
      const record = value as Record<string, unknown>;
      if (Object.hasOwn(record, '__proto__')) delete record['__proto__'];
      for (const key of Object.keys(record)) {
        const item = record[key];
        if (typeof item === 'object' && item !== null) stack.push(item);
      }
    }
  }
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw invalid('the request body is empty; send a JSON object');
  checkStructure(text);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw invalid(`the request body is not valid JSON: ${(err as Error).message}`);
  }
  if (mayHoldProtoKey(text)) dropProtoKeys(body);
  return body;
}
