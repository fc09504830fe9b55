/**
 * Arrays of unique items (`uniqueItems`, Pydantic’s set[str], set[Literal[…]], frozenset[int], set[UUID], set[conint(…)]):
 * an item is taken only where it is not one given already, and only where some value not given
 * yet can still be written (an enum of three with three given takes no comma; an integer's 0,
 * which nothing may follow, is not begun where 0 is given; an integer of 15 digits, the most, not
 * where it is given; a string held to a rule, or a bounded integer, not where every value it can
 * still become is given). Truth: Ajv, whose uniqueItems compares values deeply, on every value the
 * constraint completes and on random walks that must never reach a dead end (some made to fill
 * each array until no value is left); and Pydantic's parse of values generated under the schemas
 * Pydantic writes (scripts/pydantic_collections_check.py).
 */
import { Ajv } from 'ajv';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileSchema, SchemaError, type SchemaNode } from '../../src/runtime/generation/json-schema.js';
import { SchemaPrefix } from '../../src/runtime/generation/schema-prefix.js';
import { mulberry32 } from '../../src/util/prng.js';
import { describeWithPydantic, pythonPath } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';
import { forWalks, walk } from '../helpers/schema-walk.js';

const ajv = new Ajv({ strict: false });

const SCHEMAS: Record<string, object> = {
  strings: { type: 'array', items: { type: 'string' }, uniqueItems: true },
  enum: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, uniqueItems: true },
  integers: { type: 'array', items: { type: 'integer' }, uniqueItems: true, maxItems: 8 },
  booleans: { type: 'array', items: { type: 'boolean' }, uniqueItems: true },
  mixed: { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'null' }, { const: 7 }] }, uniqueItems: true },
  atLeast: { type: 'array', items: { enum: ['a', 'b', 'c'] }, uniqueItems: true, minItems: 2 },
  // strings held to a rule: six values in all, so walks use them up
  ruled: { type: 'array', items: { type: 'string', pattern: '^[ab]{1,2}$' }, uniqueItems: true },
  uuids: { type: 'array', items: { type: 'string', format: 'uuid' }, uniqueItems: true, minItems: 2, maxItems: 4 },
  // one character of any kind: escapes are values too
  oneChar: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 1 }, uniqueItems: true, maxItems: 6 },
  // bounded integers: 13 values; multiples of 3 between -10 and 10: 7 values
  bounded: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 12 }, uniqueItems: true },
  multiples: { type: 'array', items: { type: 'integer', minimum: -10, maximum: 10, multipleOf: 3 }, uniqueItems: true },
  ruledAtLeast: { type: 'array', items: { type: 'string', pattern: '^[xyz]$' }, uniqueItems: true, minItems: 3 },
  mixedRuled: { type: 'array', items: { anyOf: [{ type: 'string', pattern: '^[ab]$' }, { type: 'integer', minimum: 1, maximum: 2 }, { const: 'c' }] }, uniqueItems: true },
};

const state = (node: SchemaNode, text: string): 'complete' | 'viable' | 'refused' => {
  const p = new SchemaPrefix(node, Infinity, Infinity);
  return !p.push(text) ? 'refused' : p.complete ? 'complete' : 'viable';
};

describe('arrays of unique items', () => {
  it('takes arrays whose items differ and refuses the item that repeats one, where it is written', () => {
    const cases: Array<[string, string, 'complete' | 'viable' | 'refused']> = [
      ['strings', '["a", "b", "ab"]', 'complete'],
      ['strings', '["a", "a"', 'refused'],
      ['strings', '["a", "\\u0061"', 'refused'], // the same value, escaped
      ['strings', '["a", "a', 'viable'], // may still become "ab"
      ['enum', '["red", "blue"]', 'complete'],
      ['enum', '["red", "r', 'refused'], // only "red" begins so
      ['enum', '["red", "green", "blue"', 'viable'],
      ['enum', '["red", "green", "blue",', 'refused'], // no value is left
      ['integers', '[1, 2, 10]', 'complete'],
      ['integers', '[1, 1]', 'refused'],
      ['integers', '[1, 1', 'viable'], // may still become 10
      ['integers', '[0, 0', 'refused'], // an integer's 0 takes nothing more
      ['integers', '[0, -0', 'refused'],
      ['integers', '[-12, -1, -12', 'viable'], // may still become -120
      ['integers', '[-12, -12]', 'refused'],
      ['integers', '[123456789012345, 12345678901234', 'viable'], // 15 digits at most: …340 to …349 left
      ['integers', '[1, 1234567890123456', 'refused'], // a 16th digit
      ['integers', '[123456789012345, 123456789012345', 'refused'], // 15 digits, given: nothing left
      ['booleans', '[true, false]', 'complete'],
      ['booleans', '[true, t', 'refused'],
      ['booleans', '[true, false,', 'refused'],
      ['mixed', '["x", null, 7, "7"]', 'complete'],
      ['mixed', '[null, null', 'refused'],
      ['mixed', '[7, 7', 'refused'],
      ['atLeast', '["a"]', 'refused'],
      ['atLeast', '["a", "b"]', 'complete'],
      ['ruled', '["a", "ab", "b"]', 'complete'],
      ['ruled', '["a", "a"', 'refused'],
      ['ruled', '["a", "a', 'viable'], // may still become "aa" or "ab"
      ['ruled', '["a", "aa", "ab", "a', 'refused'], // every value "a" begins is given
      ['ruled', '["b", "ba", "bb", "aa', 'viable'],
      ['ruled', '["a", "aa", "ab", "b", "ba", "bb"', 'viable'],
      ['ruled', '["a", "aa", "ab", "b", "ba", "bb",', 'refused'], // no value is left
      ['ruled', '["ab", "c"', 'refused'], // the pattern still holds
      ['uuids', '["00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"', 'refused'],
      ['uuids', '["00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-00000000000', 'viable'],
      ['uuids', '["00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-00000000000A"]', 'complete'],
      ['uuids', '["00000000-0000-0000-0000-000000000000"]', 'refused'], // minItems 2
      ['oneChar', '["\\n", "\\n"', 'refused'],
      ['oneChar', '["\\n", "\\u000', 'viable'], // \u0000 … \u000f: \u000a alone is given
      ['oneChar', '["\\n", "\\u000a"', 'refused'], // the same value
      ['oneChar', '["\\n", "\\u000b"]', 'complete'],
      ['oneChar', '["\\"", "\\""', 'refused'],
      ['bounded', '[12, 1', 'viable'], // may be 1, 10 or 11
      ['bounded', '[1, 10, 11, 12, 1', 'refused'], // every integer of 0–12 that "1" begins is given
      ['bounded', '[5, 5]', 'refused'],
      ['bounded', '[13', 'refused'],
      ['bounded', '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]', 'complete'],
      ['bounded', '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,', 'refused'],
      ['multiples', '[3, -9, 0, 9, -3, 6, -6]', 'complete'],
      ['multiples', '[3, -9, 0, 9, -3, 6, -6,', 'refused'],
      ['multiples', '[0, -3, -6, -9, -', 'refused'], // -0 is 0, given
      ['multiples', '[0, -3, -6, -', 'viable'], // -9 is left
      ['multiples', '[4', 'refused'],
      ['ruledAtLeast', '["x", "y"]', 'refused'],
      ['ruledAtLeast', '["x", "y", "z"]', 'complete'],
      ['mixedRuled', '["a", 1, "b", 2, "c"]', 'complete'],
      ['mixedRuled', '["a", 1, "b", 2, "c",', 'refused'],
      ['mixedRuled', '[2, "c", 2', 'refused'],
    ];
    for (const [name, text, want] of cases) {
      expect(state(compileSchema(SCHEMAS[name], 'any'), text), `${name}: ${text}`).toBe(want);
      if (want === 'complete') expect(ajv.validate(SCHEMAS[name], JSON.parse(text)), `${name}: ${text}`).toBe(true);
    }
  });

  it('random walks complete only to arrays Ajv takes, never reach a dead end, and repeat no item', () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const node = compileSchema(schema, 'any');
      const validate = ajv.compile(schema);
      const rand = mulberry32(name.length * 613 + 5);
      let completed = 0;
      let long = 0;
      for (let k = 0; k < 80; k++) {
        const text = walk(node, rand);
        expect(text, `${name}: walk ${k} reached a dead end`).not.toBe('dead');
        if (text === null) continue;
        completed++;
        const value = JSON.parse(text) as unknown[];
        expect(validate(value), `${name}: ${text} ${JSON.stringify(validate.errors)}`).toBe(true);
        if (value.length >= 2) long++;
      }
      expect(completed, name).toBeGreaterThan(50);
      expect(long, `${name}: walks with two items or more`).toBeGreaterThan(5);
    }
  });

  it('walks that close an array only where nothing else fits write every distinct value the items can take, and then close it', () => {
    // (values in all: "a" "b" and their pairs; 0–12; the multiples of 3 in -10…10; a, b, 1, 2 and "c")
    const all: Record<string, number> = { ruled: 6, bounded: 13, multiples: 7, mixedRuled: 5, oneChar: 6 };
    for (const [name, count] of Object.entries(all)) {
      const node = compileSchema(SCHEMAS[name], 'any');
      const validate = ajv.compile(SCHEMAS[name]);
      const rand = mulberry32(name.length * 31 + 7);
      for (let k = 0; k < 12; k++) {
        const text = walk(node, rand, { closeLast: true });
        expect(text, `${name}: walk ${k} reached a dead end`).not.toBe('dead');
        expect(text, `${name}: walk ${k} did not end`).not.toBe(null);
        const value = JSON.parse(text!) as unknown[];
        expect(validate(value), `${name}: ${text} ${JSON.stringify(validate.errors)}`).toBe(true);
        expect(value.length, `${name}: ${text}`).toBe(count);
      }
    }
  });

  it('refuses what it cannot tell apart as it is written, naming uniqueItems; takes what constrains nothing', () => {
    const bad: Array<[object, RegExp]> = [
      [{ type: 'array', items: { type: 'object' }, uniqueItems: true }, /schema \/uniqueItems: .*not of objects/],
      [{ type: 'array', items: { type: 'array' }, uniqueItems: true }, /not of arrays/],
      [{ type: 'array', uniqueItems: true }, /not of items of any type/],
      [{ type: 'array', items: { type: 'integer', minimum: 0, maximum: 2 }, uniqueItems: true, minItems: 4 }, /minItems 4 unique items, but the items can take only 3 distinct values/],
      [{ type: 'array', items: { type: 'string', pattern: '^[ab]$' }, uniqueItems: true, minItems: 3 }, /minItems 3 unique items, but the items can take only 2 distinct values \(of the characters a generation looks for\)/],
      [{ type: 'array', items: { type: 'string', maxLength: 0 }, uniqueItems: true, minItems: 2 }, /only 1 distinct values/],
      // 1 is among the range's integers: summed, the count would say 4 where there are 3
      [{ type: 'array', items: { anyOf: [{ const: 1 }, { type: 'integer', minimum: 0, maximum: 2 }] }, uniqueItems: true, minItems: 4 }, /minItems 4 unique items of anyOf options that may share values \(numbers of two options\) is not supported/],
      [{ type: 'array', items: { type: 'number' }, uniqueItems: true }, /not of numbers other than integers/],
      [{ type: 'array', prefixItems: [{ type: 'string' }], uniqueItems: true }, /beside tuple items/],
      [{ type: 'array', items: { enum: ['a', 'b'] }, uniqueItems: true, minItems: 3 }, /minItems 3 unique items, but the items can take only 2 distinct values/],
      [{ type: 'array', items: { type: 'boolean' }, uniqueItems: true, minItems: 3 }, /only 2 distinct values/],
    ];
    for (const [schema, message] of bad) {
      expect(() => compileSchema(schema, 'any'), JSON.stringify(schema)).toThrow(SchemaError);
      expect(() => compileSchema(schema, 'any'), JSON.stringify(schema)).toThrow(message);
    }
    // at most one item: nothing to repeat, whatever the items are
    expect(state(compileSchema({ type: 'array', items: { type: 'object' }, uniqueItems: true, maxItems: 1 }, 'any'), '[{}]')).toBe('complete');
  });
});

interface Verdicts {
  schemas: Record<string, Record<string, unknown>>;
  valid: Record<string, Array<true | string>>;
}

describeWithPydantic('sets against Pydantic', () => {
  const SCRIPT = path.join(repoRoot, 'scripts', 'pydantic_collections_check.py');
  // sets of free strings, enums and integers; sets of UUIDs, dates, a pattern's strings and bounded integers
  const MODELS = ['sets', 'held_sets'];
  let schemas: Record<string, Record<string, unknown>>;
  const texts: Record<string, string[]> = {};
  let verdicts: Verdicts;

  beforeAll(async () => {
    schemas = (await runPythonJson<Verdicts>(pythonPath, SCRIPT, { texts: {} })).schemas;
    for (const model of MODELS) {
      const node = compileSchema(forWalks(schemas[model]));
      const rand = mulberry32(99);
      texts[model] = [];
      for (let k = 0; k < 60; k++) {
        const text = walk(node, rand, { max: 1200 });
        if (text === 'dead') throw new Error(`${model}: a walk reached a dead end`);
        if (text !== null) texts[model].push(text);
      }
    }
    verdicts = await runPythonJson<Verdicts>(pythonPath, SCRIPT, { texts });
  }, 120_000);

  it.each(MODELS)('the schema Pydantic writes for %s compiles (uniqueItems on each field), and every value generated under it is one Pydantic takes and Ajv finds unique', (model) => {
    const schema = schemas[model];
    const props = schema.properties as Record<string, Record<string, unknown>>;
    expect(Object.values(props).every((p) => p.uniqueItems === true)).toBe(true);
    expect(texts[model].length).toBeGreaterThan(20);
    const validate = ajv.compile(schema);
    texts[model].forEach((text, i) => {
      expect(verdicts.valid[model][i], text).toBe(true);
      expect(validate(JSON.parse(text)), `${text} ${JSON.stringify(validate.errors)}`).toBe(true);
    });
    // and the walks wrote sets of several items
    const several = texts[model].filter((t) => Object.values(JSON.parse(t) as Record<string, unknown[]>).some((v) => v.length >= 2)).length;
    expect(several).toBeGreaterThan(5);
  });
});
