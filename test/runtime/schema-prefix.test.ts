/**
 * Schema-held JSON (json-schema.ts, schema-prefix.ts) against independent judges: Ajv, the
 * JSON-schema validator most of npm uses, for whole documents, and V8's JSON.parse for prefixes
 * (test/helpers/json-judge.ts). On schemas of the shapes structured-output clients send
 * (Pydantic-style $defs with recursion, enums, anyOf with null, bounded arrays, integers, extra
 * keys allowed or not):
 * - every prefix of instances generated from the schema and valid under Ajv is viable, and the
 *   text is complete exactly at its end;
 * - on mutated instances, wherever the matcher says complete, Ajv says valid, and wherever it
 *   says viable, JSON.parse says the JSON can still be completed; and for a sample of the viable
 *   prefixes, the shortest completion the matcher finds is valid under Ajv (no dead ends);
 * - schemas it cannot hold a generation to are refused, naming the keyword.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { compileSchema, SchemaError } from '../../src/runtime/generation/json-schema.js';
import { MAX_PATHS, SchemaPrefix } from '../../src/runtime/generation/schema-prefix.js';
import { startingState } from '../../src/runtime/generation/grammar-constraint.js';
import { mulberry32 } from '../../src/util/prng.js';
import { viableJsonObject } from '../helpers/json-judge.js';

const SCHEMAS: Record<string, object> = {
  person: {
    type: 'object',
    properties: {
      name: { type: 'string' },
      age: { type: 'integer' },
      height: { type: 'number' },
      tags: { type: 'array', items: { type: 'string', enum: ['red', 'green', 'blue "dark"'] }, minItems: 1, maxItems: 3 },
      employed: { type: 'boolean' },
      spouse: { anyOf: [{ type: 'null' }, { type: 'string' }] },
    },
    required: ['name', 'age', 'tags'],
    additionalProperties: false,
  },
  strict: {
    // OpenAI strict mode: every property required, no others
    type: 'object',
    properties: { answer: { type: 'string' }, confidence: { type: 'number' }, sources: { type: 'array', items: { $ref: '#/$defs/Source' } } },
    required: ['answer', 'confidence', 'sources'],
    additionalProperties: false,
    $defs: { Source: { type: 'object', properties: { url: { type: 'string' }, page: { type: ['integer', 'null'] } }, required: ['url', 'page'], additionalProperties: false } },
  },
  tree: {
    // Pydantic-style recursion through $defs
    $ref: '#/$defs/Node',
    $defs: {
      Node: {
        title: 'Node',
        type: 'object',
        properties: { label: { type: 'string' }, weight: { const: 1.5 }, children: { type: 'array', items: { $ref: '#/$defs/Node' }, maxItems: 2 } },
        required: ['label'],
      },
    },
  },
  open: {
    // other keys allowed, with a schema of their own; an enum of mixed kinds
    type: 'object',
    properties: { kind: { enum: ['a', 'b', 3, null, true] }, any: {} },
    additionalProperties: { type: 'integer' },
  },
};

/** An instance of a compiled-from schema, drawn at random (it aims at validity; Ajv checks it). */
function instance(schema: Record<string, unknown>, defs: Record<string, unknown>, rand: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  if (typeof schema.$ref === 'string') return instance(defs[schema.$ref.split('/').pop()!] as Record<string, unknown>, defs, rand, depth + 1);
  if (schema.const !== undefined) return schema.const;
  if (Array.isArray(schema.enum)) return pick(schema.enum);
  if (Array.isArray(schema.anyOf)) return instance(pick(schema.anyOf) as Record<string, unknown>, defs, rand, depth);
  const type = Array.isArray(schema.type) ? pick(schema.type as string[]) : (schema.type as string | undefined);
  switch (type) {
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      const required = (schema.required ?? []) as string[];
      const out: Record<string, unknown> = {};
      for (const [k, sub] of Object.entries(props)) if (required.includes(k) || (depth < 3 && rand() < 0.5)) out[k] = instance(sub, defs, rand, depth + 1);
      if (typeof schema.additionalProperties === 'object' && rand() < 0.5) out[pick(['x', 'extra key', 'ü'])] = instance(schema.additionalProperties as Record<string, unknown>, defs, rand, depth + 1);
      return out;
    }
    case 'array': {
      const min = (schema.minItems as number | undefined) ?? 0;
      const max = Math.min((schema.maxItems as number | undefined) ?? 3, depth < 3 ? 3 : min);
      return Array.from({ length: min + Math.floor(rand() * (max - min + 1)) }, () => instance(schema.items as Record<string, unknown>, defs, rand, depth + 1));
    }
    case 'string':
      return pick(['', 'x', 'Dr. "Who"', 'é😀', 'line\nbreak', 'back\\slash']);
    case 'integer':
      return pick([0, -7, 42, 123456]);
    case 'number':
      return pick([0, -2.5, 3.25e10, 1e-7, 17]);
    case 'boolean':
      return rand() < 0.5;
    case 'null':
      return null;
    default:
      return pick([1, 'any', null, [1, { a: true }], { nested: [] }]);
  }
}

/** JSON text of a value with random whitespace between its tokens */
function spaced(value: unknown, rand: () => number): string {
  const ws = () => ['', '', ' ', '\n  '][Math.floor(rand() * 4)];
  if (Array.isArray(value)) return `[${ws()}${value.map((v) => spaced(v, rand)).join(`${ws()},${ws()}`)}${ws()}]`;
  if (value !== null && typeof value === 'object') return `{${ws()}${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}${ws()}:${ws()}${spaced(v, rand)}`).join(`,${ws()}`)}${ws()}}`;
  return JSON.stringify(value);
}

function answers(node: ReturnType<typeof compileSchema>, text: string): Array<'viable' | 'complete' | 'refused'> {
  const p = new SchemaPrefix(node, Infinity, Infinity);
  const out: Array<'viable' | 'complete' | 'refused'> = [];
  for (const ch of text) {
    // a character outside the BMP is two code units: read both before judging
    if (!p.push(ch)) {
      out.push('refused');
      break;
    }
    out.push(p.complete ? 'complete' : 'viable');
  }
  return out;
}

/**
 * A short text that completes `prefix` under the matcher, or null: what Ajv then checks, so that a
 * state the matcher calls viable but nothing completes (a dead end) shows. A beam search over the
 * matcher's states (at each length the 500 with the fewest open frames), in steps of `units`; a
 * lone quote only as the first step, to close a string the prefix left open (else the search
 * wanders off into keys made of brackets).
 */
function completion(node: ReturnType<typeof compileSchema>, prefix: string, units: string[]): string | null {
  const start = new SchemaPrefix(node, Infinity, Infinity);
  if (!start.push(prefix)) return null;
  if (start.complete) return '';
  let frontier: Array<{ state: SchemaPrefix; text: string }> = [{ state: start, text: '' }];
  const visited = new Set([start.key]);
  const frames = (s: SchemaPrefix) => s.key.split('/').length;
  for (let depth = 0; depth < 60 && frontier.length > 0; depth++) {
    const next: typeof frontier = [];
    for (const { state, text } of frontier) {
      for (const unit of text === '' ? [...units, '"'] : units) {
        const s = state.clone();
        if (!s.push(unit)) continue;
        if (s.complete) return text + unit;
        // nothing is gained by writing inside a string, only by closing it: stay in one only to
        // finish the prefix's own (an escape takes up to 6 steps)
        if (s.inString && !(start.inString && depth < 6)) continue;
        if (visited.has(s.key)) continue;
        visited.add(s.key);
        next.push({ state: s, text: text + unit });
      }
    }
    frontier = next.sort((a, b) => frames(a.state) - frames(b.state) || a.state.key.length - b.state.key.length).slice(0, 500);
  }
  return null;
}

/**
 * What a completion is built from: JSON's structure, a number's characters, the literals, the
 * empty string, each property name and enum string of the schema written whole and every ending
 * of them (to finish one the prefix began), and what ends an escape.
 */
function unitsOf(schema: object): string[] {
  const words = new Set<string>(['""', 'true', 'false', 'null']);
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x !== null && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      if (o.properties && typeof o.properties === 'object') for (const k of Object.keys(o.properties)) words.add(JSON.stringify(k));
      for (const v of [...(Array.isArray(o.enum) ? o.enum : []), ...(o.const !== undefined ? [o.const] : [])]) words.add(JSON.stringify(v));
      Object.values(o).forEach(walk);
    }
  };
  walk(schema);
  // (a lone quote, the ending of "", is completion()'s to give)
  const endings = [...words].flatMap((w) => Array.from({ length: w.length - 1 }, (_, i) => w.slice(i + 1))).filter((e) => e !== '"');
  return [...new Set(['{', '}', '[', ']', ':', ',', '0', '5', '.', 'e', '-', '+', 'n', 'u', ...words, ...endings])];
}

describe('schema-held JSON', () => {
  const ajv = new Ajv({ strict: false });

  it('accepts every prefix of 200 valid instances per schema, complete exactly at the end', () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const node = compileSchema(schema);
      const validate = ajv.compile(schema);
      const rand = mulberry32(name.length * 101);
      const defs = ((schema as Record<string, unknown>).$defs ?? {}) as Record<string, unknown>;
      for (let k = 0; k < 200; k++) {
        const value = instance(schema as Record<string, unknown>, defs, rand);
        expect(validate(value), `${name}: the generator made ${JSON.stringify(value)}: ${JSON.stringify(validate.errors)}`).toBe(true);
        const text = spaced(value, rand);
        const a = answers(node, text);
        expect(a.slice(0, -1).every((x) => x === 'viable'), `${name}: ${text} → ${a.join(',')}`).toBe(true);
        expect(a.at(-1), `${name}: ${text}`).toBe('complete');
      }
    }
  });

  it('on 2000 mutated instances per schema: complete only where Ajv says valid, viable only where JSON can still be completed', () => {
    const mutations = '{}[]:,"\\ -.e0179tfnrulax';
    let refused = 0;
    let completeChecked = 0;
    let completed = 0;
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const node = compileSchema(schema);
      const validate = ajv.compile(schema);
      const units = unitsOf(schema);
      const rand = mulberry32(name.length * 7 + 1);
      const defs = ((schema as Record<string, unknown>).$defs ?? {}) as Record<string, unknown>;
      for (let k = 0; k < 2000; k++) {
        let text = spaced(instance(schema as Record<string, unknown>, defs, rand), rand);
        const at = Math.floor(rand() * text.length);
        const ch = mutations[Math.floor(rand() * mutations.length)];
        const op = rand();
        text = op < 0.4 ? text.slice(0, at) + ch + text.slice(at) : op < 0.7 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ch + text.slice(at + 1);
        const a = answers(node, text);
        let consumed = '';
        const chars = [...text];
        a.forEach((x, i) => {
          consumed += chars[i];
          if (x === 'refused') {
            refused++;
            return;
          }
          expect(viableJsonObject(consumed), `${name}: ${JSON.stringify(consumed)}`).toBe(true);
          if (x === 'complete') {
            completeChecked++;
            expect(validate(JSON.parse(consumed)), `${name}: ${consumed} was complete but ${JSON.stringify(validate.errors)}`).toBe(true);
          }
        });
        // one viable prefix in 25: some completion of it is valid under Ajv (no dead end)
        const viable = a.lastIndexOf('viable');
        if (viable >= 0 && k % 25 === 0) {
          const prefix = chars.slice(0, viable + 1).join('');
          const rest = completion(node, prefix, units);
          expect(rest, `${name}: nothing completes ${JSON.stringify(prefix)}`).not.toBeNull();
          expect(validate(JSON.parse(prefix + rest)), `${name}: ${prefix + rest}: ${JSON.stringify(validate.errors)}`).toBe(true);
          completed++;
        }
      }
    }
    expect(refused).toBeGreaterThan(2000);
    expect(completeChecked).toBeGreaterThan(1000);
    expect(completed).toBeGreaterThan(250);
  });

  it('refuses what it cannot hold a generation to, naming the keyword and where', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ type: 'object', properties: { a: { type: 'string', pattern: '(?<=x)' } } }, /schema \/properties\/a\/pattern: the pattern "\(\?<=x\)" cannot be held/],
      [{ type: 'object', properties: { a: { not: { type: 'string' } } } }, /"not" is not supported/],
      [{ allOf: [{ type: 'object' }, { type: 'string' }] }, /"allOf" of object schemas is supported where each is one of properties/],
      [{ type: 'array', items: {} }, /the top level must be an object/],
      [{ type: 'string' }, /the top level must be an object/],
      [{ $ref: '#/$defs/Missing' }, /names no definition/],
      [{ $ref: 'http://example.com/s.json' }, /only "#\/\$defs\/NAME"/],
      [{ type: 'object', required: ['x'], additionalProperties: false }, /required property "x" is not in "properties"/],
      [{ type: 'object', properties: { a: { enum: [] } } }, /"enum" must be a non-empty array/],
      [{ type: 'object', properties: { a: { type: 'date' } } }, /unknown type "date"/],
      ['not a schema', /a schema must be an object/],
      [{ type: 'object', properties: { a: { enum: Array.from({ length: 1025 }, (_, i) => `v${i}`) } } }, /"enum" has 1025 values, more than the 1024 followed/],
      [{ type: 'object', properties: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`p${i}`, {}])) }, /1025 properties, more than the 1024 followed in one object/],
      [{ type: 'object', properties: { a: { anyOf: Array.from({ length: 129 }, () => ({ type: 'string' })) } } }, /"anyOf" has 129 options, more than the 128 followed/],
      // and a schema of too many parts in all
      [{ type: 'object', properties: { a: { anyOf: Array.from({ length: 100 }, () => ({ type: 'object', properties: Object.fromEntries(Array.from({ length: 120 }, (_, i) => [`k${i}`, {}])) })) } } }, /more than 10000 parts/],
    ];
    for (const [schema, message] of bad) {
      expect(() => compileSchema(schema), JSON.stringify(schema)).toThrow(SchemaError);
      expect(() => compileSchema(schema), JSON.stringify(schema)).toThrow(message);
    }
    // documentation keywords pass, and nullable adds null
    const node = compileSchema({ title: 'T', description: 'd', type: 'object', properties: { a: { type: 'string', format: 'email', nullable: true } }, required: ['a'] });
    expect(answers(node, '{"a": null}').at(-1)).toBe('complete');
  });

  it('an anyOf option it cannot follow is left out where others remain (a number, or a string of a pattern with a lookbehind)', () => {
    const price = { type: 'object', properties: { price: { anyOf: [{ type: 'number' }, { type: 'string', pattern: '(?<=\\$)\\d+' }] } }, required: ['price'] };
    const take = (text: string) => {
      const state = startingState(price);
      return state.push(text) && state.complete;
    };
    expect(take('{"price": 12.5}')).toBe(true);
    expect(startingState(price).push('{"price": "')).toBe(false);
    // where no option can be followed, the first one's error stands
    expect(() => startingState({ type: 'object', properties: { a: { anyOf: [{ type: 'string', pattern: '(?<=a)' }, { not: { type: 'string' } }] } } })).toThrow(/pattern/);
  });

  it('keywords a schema generator writes at their defaults, which constrain nothing, are taken and change nothing; the same keywords constraining are a 400', () => {
    const base = { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' } }, one: { type: 'array', items: { type: 'integer' }, maxItems: 1 } }, required: ['tags'], additionalProperties: false };
    const noisy = {
      ...base,
      minProperties: 0,
      dependentRequired: {},
      patternProperties: {},
      properties: { tags: { ...base.properties.tags, uniqueItems: false, minContains: 0 }, one: { ...base.properties.one, uniqueItems: true } },
    };
    for (const text of ['{"tags": ["a", "a"]}', '{"tags": [], "one": [3]}', '{"tags": [], "one": [3, 4]}', '{"one": []}', '{"tags": ["x"], "other": 1}']) {
      expect(answers(compileSchema(noisy), text), text).toEqual(answers(compileSchema(base), text));
    }
    expect(() => compileSchema({ type: 'array', items: { type: 'object' }, uniqueItems: true }, 'any')).toThrow(/"uniqueItems" is supported on arrays of strings.*; not of objects/);
    expect(() => compileSchema({ type: 'object', minProperties: 1 })).toThrow(/"minProperties" is not supported/);
    expect(() => compileSchema({ type: 'object', patternProperties: { '^x': { type: 'string' }, '^y': {} } })).toThrow(/"patternProperties" of 2 patterns is not supported/);
  });

  it('Pydantic’s Decimal, a number or a string of a pattern with lookaheads: both options are followed, the string to its pattern', () => {
    const pattern = '^(?!^[-+.]*$)[+-]?0*\\d*\\.?\\d*$';
    const decimal = { type: 'object', properties: { price: { anyOf: [{ type: 'number' }, { type: 'string', pattern }] } }, required: ['price'] };
    const take = (text: string) => {
      const state = startingState(decimal);
      return state.push(text) && state.complete;
    };
    expect(take('{"price": 12.5}')).toBe(true);
    for (const value of ['12.50', '-0.5', '+7', '.5', '3.']) expect(take(`{"price": ${JSON.stringify(value)}}`), value).toBe(new RegExp(pattern).test(value));
    // signs and dots alone are what the lookahead refuses
    for (const value of ['-', '.', '+.', '']) expect(take(`{"price": ${JSON.stringify(value)}}`), value).toBe(false);
  });

  it('follows at most MAX_PATHS alternatives at once: anyOf inside anyOf is refused past it, not followed without bound', () => {
    // n × n objects alike up to their innermost value: n² alternatives after '{"a": {"b": {'
    const nested = (n: number) =>
      compileSchema({
        type: 'object',
        properties: { a: { anyOf: Array.from({ length: n }, (_, i) => ({ type: 'object', properties: { b: { anyOf: Array.from({ length: n }, (_, j) => ({ type: 'object', properties: { [`v${i}_${j}`]: { type: 'integer' } } })) } } })) } },
      });
    expect(MAX_PATHS).toBe(1024);
    expect(answers(nested(30), '{"a": {"b": {"v4_7": 1}}}').at(-1)).toBe('complete'); // 900 alternatives: followed
    expect(answers(nested(33), '{"a": {"b": {').at(-1)).toBe('refused'); // 1089
  });

  it('between two tokens, at most 32 whitespace characters and one line break (by default): pretty-printed text passes', () => {
    const node = compileSchema(SCHEMAS.strict);
    const value = { answer: 'a\n\nb', confidence: 0.5, sources: [{ url: 'u', page: null }, { url: 'v', page: 3 }] };
    const p = new SchemaPrefix(node);
    expect(p.push(JSON.stringify(value, null, 4))).toBe(true);
    expect(p.complete).toBe(true);
    const q = new SchemaPrefix(node);
    expect(q.push('{\n   ')).toBe(true);
    expect(q.clone().push('\n')).toBe(false);
    expect(q.clone().push(' '.repeat(28))).toBe(true);
    expect(q.clone().push(' '.repeat(29))).toBe(false);
  });

  it('properties come in the schema’s order, optional ones possibly left out, other keys (where allowed) anywhere', () => {
    const node = compileSchema(SCHEMAS.person);
    // name, age, height?, tags, employed?, spouse?
    expect(answers(node, '{"name": "x", "age": 1, "tags": ["red"]}').at(-1)).toBe('complete');
    expect(answers(node, '{"name": "x", "age": 1, "height": 1.5, "tags": ["red"], "spouse": null}').at(-1)).toBe('complete');
    for (const t of ['{"age"', '{"name": "x", "tags"', '{"name": "x", "age": 1, "tags": ["red"], "height"', '{"name": "x", "age": 1, "tags": ["red"], "spouse": null, "employed"']) {
      expect(answers(node, t).at(-1), t).toBe('refused');
    }
    // a required property cannot be skipped: after "name" only "age" can begin
    expect(answers(node, '{"name": "x", "h').at(-1)).toBe('refused');
    expect(answers(node, '{"name": "x", "a').at(-1)).toBe('viable');
    // where other keys are allowed, they may come between the declared ones, which keep their order
    const open = compileSchema({ type: 'object', properties: { reasoning: { type: 'string' }, answer: { type: 'string' } }, required: ['reasoning', 'answer'] });
    expect(answers(open, '{"note": 1, "reasoning": "r", "extra": true, "answer": "a"}').at(-1)).toBe('complete');
    expect(answers(open, '{"answer"').at(-1)).toBe('refused');
  });

  it('never lets the text reach a point nothing completes: no comma without another key or item to follow', () => {
    const node = compileSchema(SCHEMAS.person);
    expect(answers(node, '{"name": "x", "age": 1, "height": 2, "tags": ["red"], "employed": true, "spouse": null').at(-1)).toBe('viable');
    expect(answers(node, '{"name": "x", "age": 1, "height": 2, "tags": ["red"], "employed": true, "spouse": null,').at(-1)).toBe('refused');
    expect(answers(node, '{"name": "x", "age": 1, "tags": ["red", "green", "blue \\"dark\\""').at(-1)).toBe('viable');
    expect(answers(node, '{"name": "x", "age": 1, "tags": ["red", "green", "blue \\"dark\\"",').at(-1)).toBe('refused');
    expect(answers(node, '{"name": "x", "age": 1, "tags": []').at(-1)).toBe('refused'); // minItems 1
    expect(answers(node, '{"name": "x", "age": 1}').at(-1)).toBe('refused'); // tags is required
    // an integer takes no fraction or exponent (it could never end); a number does
    for (const t of ['{"name": "", "age": 1.', '{"name": "", "age": 1e', '{"name": "", "age": 1E']) expect(answers(node, t).at(-1), t).toBe('refused');
    for (const t of ['{"name": "", "age": 0, "height": 1.5e', '{"name": "", "age": 0, "height": -0.25E+']) expect(answers(node, t).at(-1), t).toBe('viable');
    // every prefix of a few hand-picked texts that end in the middle of things completes validly
    const validate = new Ajv({ strict: false }).compile(SCHEMAS.person);
    for (const t of ['{"name": "", "age": 0, "tags": ["blue \\"da', '{"name": "a\\u00', '{"name": "", "age": -', '{"name": "", "age": 0, "tags": ["red"], "employed": fa', '{"name": "", "age": 0, "tags": ["red"], "spouse": n', '{"name": "", "age": 0, "tags": ["red"], "em']) {
      for (let i = 1; i <= t.length; i++) {
        const rest = completion(node, t.slice(0, i), unitsOf(SCHEMAS.person));
        expect(rest, JSON.stringify(t.slice(0, i))).not.toBeNull();
        expect(validate(JSON.parse(t.slice(0, i) + rest)), t.slice(0, i) + rest).toBe(true);
      }
    }
  });
});
