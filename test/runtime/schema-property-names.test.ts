/**
 * Objects whose keys are held to a rule: `propertyNames` (Pydantic's dict[Literal[…], …],
 * dict[UUID, …] and keys of a maximum length; zod's record of an enum or a pattern) and
 * `patternProperties` of one pattern (Pydantic's dict of a str of a pattern). Truth: Ajv (with its
 * formats) on every value the constraint completes, random walks through the constraint that must
 * never reach a point nothing completes, and Pydantic's own parse of values generated under the
 * schemas Pydantic itself writes (scripts/pydantic_collections_check.py).
 */
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileSchema, SchemaError, type SchemaNode } from '../../src/runtime/generation/json-schema.js';
import { SchemaPrefix } from '../../src/runtime/generation/schema-prefix.js';
import { mulberry32 } from '../../src/util/prng.js';
import { forWalks, walk } from '../helpers/schema-walk.js';
import { describeWithPydantic, pythonPath } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false }));

/** As Pydantic and zod write them (Pydantic 2.13, zod 4's toJSONSchema). */
const SCHEMAS: Record<string, object> = {
  pydanticPattern: { type: 'object', properties: { counts: { type: 'object', patternProperties: { '^[a-z]{1,8}$': { type: 'integer' } } } }, required: ['counts'] },
  pydanticLiteral: { type: 'object', properties: { stock: { type: 'object', additionalProperties: { type: 'integer' }, propertyNames: { enum: ['apples', 'pears', 'plums'] } } }, required: ['stock'] },
  pydanticUuid: { type: 'object', properties: { owners: { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { format: 'uuid' } } }, required: ['owners'] },
  zodEnumRequired: { type: 'object', propertyNames: { type: 'string', enum: ['x', 'y'] }, additionalProperties: { type: 'number' }, required: ['x', 'y'] },
  zodPattern: { type: 'object', propertyNames: { type: 'string', pattern: '^[a-z]+$' }, additionalProperties: { type: 'boolean' } },
  // a declared property whose name the rule refuses ("long") can never be written
  declared: { type: 'object', properties: { id: { type: 'integer' }, long: { type: 'string' } }, additionalProperties: { type: 'boolean' }, propertyNames: { maxLength: 3 } },
};

const UUID = '123e4567-e89b-12d3-a456-426614174000';

const accepts = (node: SchemaNode, text: string) => {
  const p = new SchemaPrefix(node, Infinity, Infinity);
  return p.push(text) && p.complete;
};

describe('keys held to propertyNames and patternProperties', () => {
  it('takes objects whose keys meet the rule and refuses those whose keys do not', () => {
    const cases: Array<[string, object, object]> = [
      ['pydanticPattern', { counts: { abc: 1, z: 2 } }, { counts: { Abc: 1 } }],
      ['pydanticPattern', { counts: {} }, { counts: { abcdefghi: 1 } }],
      ['pydanticLiteral', { stock: { pears: 3 } }, { stock: { peaches: 3 } }],
      ['pydanticLiteral', { stock: { apples: 1, plums: 2 } }, { stock: { apples: 1, apples_: 2 } }],
      ['pydanticUuid', { owners: { [UUID]: 'ann' } }, { owners: { '123e4567': 'ann' } }],
      ['zodEnumRequired', { x: 1, y: 2.5 }, { x: 1, y: 2, z: 3 }],
      ['zodPattern', { ab: true }, { a1: true }],
      ['declared', { id: 1, abc: false }, { id: 1, long: 'x' }],
      ['declared', { id: 7 }, { id: 7, abcd: true }],
    ];
    for (const [name, good, bad] of cases) {
      const schema = SCHEMAS[name];
      const node = compileSchema(schema);
      const validate = ajv.compile(schema);
      expect(validate(good), `${name}: ${JSON.stringify(good)} ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(accepts(node, JSON.stringify(good)), `${name}: ${JSON.stringify(good)}`).toBe(true);
      expect(accepts(node, JSON.stringify(bad)), `${name}: ${JSON.stringify(bad)}`).toBe(false);
    }
    // a key the rule takes in part is refused at the character that leaves it, not at the quote
    const p = new SchemaPrefix(compileSchema(SCHEMAS.pydanticPattern));
    expect(p.push('{"counts":{"ab')).toBe(true);
    expect(p.clone().push('C')).toBe(false);
    expect(p.clone().push('"')).toBe(true);
    // a rule of few names: one given is not written again, and once all are given no comma follows
    const few = compileSchema({ type: 'object', additionalProperties: { type: 'boolean' }, propertyNames: { pattern: '^[ab]c?$' } });
    const one = new SchemaPrefix(few);
    expect(one.push('{"a":true,')).toBe(true);
    expect(one.clone().push('"a"')).toBe(false);
    expect(one.clone().push('"a')).toBe(true); // "ac" is left
    expect(one.clone().push('"ac":true,"b":true,"bc":false}')).toBe(true);
    const full = new SchemaPrefix(few);
    expect(full.push('{"a":true,"ac":true,"b":true,')).toBe(true);
    expect(full.clone().push('"a')).toBe(false);
    expect(full.clone().push('"b"')).toBe(false);
    expect(full.push('"bc":true')).toBe(true);
    expect(full.clone().push(',')).toBe(false);
    expect(full.clone().push('}')).toBe(true);
    // every name of an enum given: no comma, since no key could follow it
    const all = new SchemaPrefix(compileSchema(SCHEMAS.pydanticLiteral));
    expect(all.push('{"stock":{"apples":1,"pears":2,"plums":3')).toBe(true);
    expect(all.clone().push(',')).toBe(false);
    expect(all.clone().push('}}')).toBe(true);
  });

  it('random walks complete only to values Ajv takes, and never reach a point nothing completes', () => {
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const node = compileSchema(forWalks(schema));
      const validate = ajv.compile(schema);
      const rand = mulberry32(name.length * 977);
      let completed = 0;
      let withKeys = 0;
      for (let k = 0; k < 60; k++) {
        const text = walk(node, rand);
        expect(text, `${name}: walk ${k} reached a dead end`).not.toBe('dead');
        if (text === null) continue;
        completed++;
        const value = JSON.parse(text);
        expect(validate(value), `${name}: ${text} ${JSON.stringify(validate.errors)}`).toBe(true);
        const inner = Object.values(value).find((v) => v !== null && typeof v === 'object') ?? value;
        if (Object.keys(inner as object).length > 0) withKeys++;
      }
      expect(completed, name).toBeGreaterThan(40);
      expect(withKeys, `${name}: walks that wrote a key of the rule`).toBeGreaterThan(5);
    }
  });

  it('refuses what it cannot hold, naming the keyword', () => {
    const bad: Array<[object, RegExp]> = [
      [{ type: 'object', patternProperties: { '^a': {}, '^b': {} } }, /"patternProperties" of 2 patterns is not supported/],
      [{ type: 'object', patternProperties: { '^a': {} }, additionalProperties: { type: 'string' } }, /"patternProperties" beside additionalProperties other than false/],
      [{ type: 'object', properties: { abc: {} }, patternProperties: { '^a': {} } }, /property "abc" also matches patternProperties' pattern/],
      [{ type: 'object', required: ['Z'], additionalProperties: {}, propertyNames: { pattern: '^[a-z]+$' } }, /required property "Z" is not a name "propertyNames" allows/],
      [{ type: 'object', required: ['Z'], patternProperties: { '^[a-z]+$': {} } }, /required property "Z" is not a name the pattern of "patternProperties" allows/],
      [{ type: 'object', properties: { Z: {} }, required: ['Z'], propertyNames: { enum: ['x'] } }, /required property "Z" is not a name "propertyNames" allows/],
      [{ type: 'object', propertyNames: { type: 'integer' } }, /schema \/propertyNames: "propertyNames" must describe strings/],
      [{ type: 'object', propertyNames: { pattern: '(?<=a)b' } }, /schema \/propertyNames\/pattern/],
      [{ type: 'object', patternProperties: { '^[a-z]+$': { type: 'string', pattern: '(?<=a)b' } } }, /patternProperties/],
    ];
    for (const [schema, message] of bad) {
      expect(() => compileSchema(schema), JSON.stringify(schema)).toThrow(SchemaError);
      expect(() => compileSchema(schema), JSON.stringify(schema)).toThrow(message);
    }
    // what constrains nothing changes nothing
    for (const names of [true, {}, { description: 'any key' }]) {
      const node = compileSchema({ type: 'object', additionalProperties: { type: 'integer' }, propertyNames: names });
      expect(accepts(node, '{"Any Key!":1}')).toBe(true);
    }
    // no name at all: only the empty object
    const none = compileSchema({ type: 'object', propertyNames: false });
    expect(accepts(none, '{}')).toBe(true);
    expect(new SchemaPrefix(none).push('{"')).toBe(false);
  });
});

interface Verdicts {
  pydantic: string;
  schemas: Record<string, object>;
  valid: Record<string, Array<true | string>>;
}

describeWithPydantic('dict keys against Pydantic', () => {
  const SCRIPT = path.join(repoRoot, 'scripts', 'pydantic_collections_check.py');
  let schemas: Record<string, object>;
  let texts: Record<string, string[]>;
  let verdicts: Verdicts;

  beforeAll(async () => {
    // the schemas Pydantic writes, then its verdict on values generated under them
    schemas = (await runPythonJson<Verdicts>(pythonPath, SCRIPT, { texts: {} })).schemas;
    texts = {};
    for (const [name, schema] of Object.entries(schemas)) {
      if (name === 'sets' || name === 'held_sets') continue; // (schema-unique-items.test.ts)
      const node = compileSchema(forWalks(schema));
      const rand = mulberry32(name.length * 31 + 7);
      texts[name] = [];
      for (let k = 0; k < 40; k++) {
        const text = walk(node, rand);
        if (text === 'dead') throw new Error(`${name}: a walk reached a dead end`);
        if (text !== null) texts[name].push(text);
      }
    }
    verdicts = await runPythonJson<Verdicts>(pythonPath, SCRIPT, { texts });
  }, 120_000);

  it('compiles the schemas Pydantic writes for dicts of constrained keys (propertyNames and patternProperties among them)', () => {
    expect(Object.keys(schemas).sort()).toEqual(['counts', 'held_sets', 'owners', 'sets', 'short', 'stock']);
    const written = JSON.stringify(schemas);
    expect(written).toContain('"propertyNames"');
    expect(written).toContain('"patternProperties"');
  });

  it('every value generated under them is one Pydantic’s parse takes', () => {
    for (const [name, list] of Object.entries(texts)) {
      expect(list.length, name).toBeGreaterThan(25);
      list.forEach((text, i) => expect(verdicts.valid[name][i], `${name}: ${text}`).toBe(true));
      // and the walks wrote keys, not only empty dicts
      const keyed = list.filter((t) => /\{[^{}]*\{"/.test(t)).length;
      expect(keyed, `${name}: values with a key in their dict`).toBeGreaterThan(5);
    }
  });
});
