/**
 * Tuples (`prefixItems`, JSON Schema 2020-12 as Pydantic writes tuple[...]; draft 7's items array
 * with `additionalItems`) and `allOf` (of one schema, and of several merged: OpenAPI's
 * inheritance), as the schema constraint holds them.
 * Independent truth: Ajv (its 2020-12 build for prefixItems, its draft-7 default for the rest) on
 * random arrays: a text is complete exactly where Ajv finds it valid, and every prefix of a valid
 * one is viable.
 */
import { Ajv } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startingState } from '../../src/runtime/generation/grammar-constraint.js';
import { SchemaError } from '../../src/runtime/generation/json-schema.js';

function held(schema: unknown, text: string): 'refused' | 'viable' | 'complete' {
  const state = startingState(schema, 'any');
  if (!state.push(text)) return 'refused';
  return state.complete ? 'complete' : 'viable';
}

const item = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom('a', 'b', ''), fc.boolean(), fc.constant(null));
const arrays = fc.array(item, { maxLength: 5 });

/** agreement with `validate` on random arrays, every prefix of a valid one viable */
function agrees(schema: object, validate: (v: unknown) => boolean): void {
  fc.assert(
    fc.property(arrays, (value) => {
      const text = JSON.stringify(value);
      const valid = validate(value);
      expect(held(schema, text), `${JSON.stringify(schema)} on ${text}`).toBe(valid ? 'complete' : 'refused');
      if (valid) for (let i = 1; i < text.length; i++) expect(held(schema, text.slice(0, i)), text.slice(0, i)).toBe('viable');
    }),
    { numRuns: 400, seed: 21 },
  );
}

describe('tuples and allOf', () => {
  it('prefixItems, with items after them or none (Pydantic’s tuple[int, str] and tuple[int, ...]), as Ajv 2020-12 judges', () => {
    const ajv = new Ajv2020({ strict: false });
    for (const schema of [
      { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string' }], minItems: 2, maxItems: 2 },
      { type: 'array', prefixItems: [{ type: 'integer' }], items: { type: 'boolean' } },
      { type: 'array', prefixItems: [{ type: 'string' }, { type: 'null' }], items: false },
      { type: 'array', prefixItems: [{ enum: ['a', 'b'] }], minItems: 1 },
    ]) {
      const validate = ajv.compile(schema);
      agrees(schema, (v) => validate(v));
    }
    expect(held({ type: 'array', prefixItems: [{ type: 'integer' }, { type: 'string' }], minItems: 2, maxItems: 2 }, '[3, "a"]')).toBe('complete');
    expect(held({ type: 'array', prefixItems: [{ type: 'integer' }], items: { type: 'boolean' } }, '[3, true, false]')).toBe('complete');
  });

  it('draft 7’s items array with additionalItems, and allOf of one schema, as Ajv judges', () => {
    const ajv = new Ajv({ strict: false });
    for (const schema of [
      { type: 'array', items: [{ type: 'integer' }, { type: 'boolean' }], additionalItems: false },
      { type: 'array', items: [{ type: 'string' }], additionalItems: { type: 'integer' }, maxItems: 3 },
      { allOf: [{ type: 'array', items: { type: 'integer' } }], description: 'a $ref with a description, as some generators write it' },
    ]) {
      const validate = ajv.compile(schema);
      agrees(schema, (v) => validate(v));
    }
  });

  it('allOf of several object schemas ($refs, nested allOf, closed parts) and of scalar keywords, merged, as Ajv judges', () => {
    const ajv = new Ajv({ strict: false });
    const A = { type: 'object', properties: { a: { type: 'string', maxLength: 1 } } };
    const schemas = [
      { allOf: [{ type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, required: ['a'] }, { type: 'object', properties: { b: { type: 'integer', minimum: 0 }, c: { type: 'boolean' } }, required: ['c'] }] },
      { allOf: [{ type: 'object', properties: { a: { type: 'string' }, b: { type: 'integer' } }, additionalProperties: false }, { type: 'object', properties: { a: { type: 'string' }, c: { type: 'boolean' } } }] },
      { $defs: { A }, allOf: [{ $ref: '#/$defs/A' }, { type: 'object', properties: { d: { enum: [1, 2] } }, required: ['d'] }] },
      { allOf: [{ allOf: [{ properties: { a: { type: 'string' } } }, { properties: { b: { type: 'integer' } } }] }, { properties: { c: { type: 'boolean' } }, required: ['a'] }] },
      // the object's own keywords beside the allOf are a part too
      { allOf: [{ properties: { a: { type: 'string' } } }], properties: { d: { type: 'integer' } }, required: ['d'] },
    ];
    // keys in the merged order (each part's, by first appearance: alphabetical here), e undeclared
    const objects = fc
      .record(
        { a: fc.constantFrom('x', 'xy', 1), b: fc.constantFrom(-1, 0, 2, 's'), c: fc.constantFrom(true, 't'), d: fc.constantFrom(1, 3), e: fc.constant(null) },
        { requiredKeys: [] },
      )
      .map((o) => Object.fromEntries(Object.entries(o).sort(([x], [y]) => (x < y ? -1 : 1))));
    for (const schema of schemas) {
      const validate = ajv.compile(schema);
      fc.assert(
        fc.property(objects, (value) => {
          const text = JSON.stringify(value);
          expect(held(schema, text), `${JSON.stringify(schema)} on ${text}`).toBe(validate(value) ? 'complete' : 'refused');
        }),
        { numRuns: 300, seed: 29 },
      );
    }
    const strings = { allOf: [{ type: 'string' }, { maxLength: 2 }, { pattern: '^a' }] };
    const validate = ajv.compile(strings);
    for (const v of ['', 'a', 'ab', 'abc', 'b']) expect(held(strings, JSON.stringify(v)), v).toBe(validate(v) ? 'complete' : 'refused');
  });

  it('what cannot be followed is a SchemaError', () => {
    expect(() => startingState({ allOf: [{ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false }, { required: ['b'] }] })).toThrow(/required property "b" is outside a part whose additionalProperties is false/);
    expect(() => startingState({ allOf: [{ type: 'object' }, { anyOf: [{ required: ['a'] }, { required: ['b'] }] }] })).toThrow(/"allOf" of object schemas is supported where each is one of properties, required and additionalProperties \(this one has "anyOf"\)/);
    expect(() => startingState({ allOf: [{ type: 'string', maxLength: 2 }, { type: 'string', maxLength: 3 }] }, 'any')).toThrow(/"maxLength" differs/);
    expect(() => startingState({ allOf: [{ type: 'object', additionalProperties: { type: 'string' } }, { type: 'object' }] })).toThrow(/additionalProperties true or false only/);
    // $refs whose allOf refer twice to the one before double the parts at each step: bounded
    const $defs: Record<string, unknown> = { L0: { type: 'object', properties: { a: { type: 'string' } } } };
    for (let i = 1; i <= 7; i++) $defs[`L${i}`] = { allOf: [{ $ref: `#/$defs/L${i - 1}` }, { $ref: `#/$defs/L${i - 1}` }] };
    expect(() => startingState({ $defs, allOf: [{ $ref: '#/$defs/L7' }, { required: ['a'] }] })).toThrow(/more than 64 parts/);
    expect(() => startingState({ type: 'array', prefixItems: [{ type: 'integer' }], items: false, minItems: 2 }, 'any')).toThrow(SchemaError);
    expect(() => startingState({ type: 'array', prefixItems: { type: 'integer' } }, 'any')).toThrow(/must be an array/);
  });
});
