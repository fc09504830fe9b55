/**
 * Schemas nobody wrote by hand, generated (fast-check, seeded): objects, arrays, strings, numbers,
 * enums, consts, anyOf / oneOf / allOf, type lists, a $ref to a definition (which may refer to
 * itself), nested a few deep, with the keywords clients
 * send (bounds, multipleOf, patterns, formats, lengths, uniqueItems, tuples, propertyNames,
 * patternProperties) and now and then one that is not followed. Whatever comes in, compileSchema
 * must either refuse it with a SchemaError (an RfidMoeError: a 400 on the server) or compile it;
 * and where it compiles, random walks through the constraint must never reach a point where no
 * character fits and the value is not complete (a generation's "no token can continue"), and
 * every value they complete must be valid under Ajv (draft 2020-12, with ajv-formats; oneOf read
 * as anyOf, as the constraint documents it).
 *
 * It found, when first run: an enum beside a `type` its values are not of (allOf's merge of
 * `{"type": "null"}` and an enum) written as the enum's values; an enum and a const together
 * written as the const alone; a held `format` dropped from a merged allOf; integers of a
 * multipleOf past 2^53, which Ajv's doubles find no multiples; a $ref refused in one anyOf option
 * taken as any value in another; a definition that is an anyOf option of itself, and one merged
 * into itself through allOf, each a stack overflow; and a URI with a bare `%`. A failure prints the shrunk schema
 * and the seed; RFID_MOE_FUZZ_SEED and RFID_MOE_FUZZ_RUNS (a multiplier) explore further.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RfidMoeError } from '../../src/errors.js';
import { TokenPieces } from '../../src/runtime/generation/grammar-constraint.js';
import { compileSchema, SchemaError, type SchemaNode } from '../../src/runtime/generation/json-schema.js';
import { SchemaPrefix } from '../../src/runtime/generation/schema-prefix.js';
import { mulberry32 } from '../../src/util/prng.js';
import { walk } from '../helpers/schema-walk.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const SEED = Number(process.env.RFID_MOE_FUZZ_SEED ?? 20261207);
const RUNS = Number(process.env.RFID_MOE_FUZZ_RUNS ?? 1);

const NAMES = ['a', 'b', 'ab', 'x', 'name', 'a"b', 'é'];
const PATTERNS = ['^[a-c]{1,3}$', '^x', 'b$', '^[0-9]+$', '^(ab|cd)*$', 'a.c', '^\\d{2}-\\d{2}$', '^[a-z]+@[a-z]+\\.com$', '^.{0,2}$', '^[ab]$'];
const FORMATS = ['date', 'date-time', 'time', 'uuid', 'email', 'ipv4', 'ipv6', 'duration', 'hostname', 'uri', 'binary'];
const SCALARS = ['a', 'b', 'c', 'a"', '', 0, 1, 2, -1, 2.5, -0.25, true, false, null];

type Schema = Record<string, unknown>;
/** `arb`'s value with probability `p`, else undefined */
const optional = <T,>(arb: fc.Arbitrary<T>, p = 0.3): fc.Arbitrary<T | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 20 - Math.round(p * 20) }, { arbitrary: arb, weight: Math.round(p * 20) });
/** a schema object without its undefined fields */
const clean = (o: Schema): Schema => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

const schemas = fc.letrec<{ schema: Schema; leaf: Schema }>((tie) => ({
  leaf: fc.oneof(
    fc.record({ type: fc.constant('string'), pattern: optional(fc.constantFrom(...PATTERNS)), format: optional(fc.constantFrom(...FORMATS)), minLength: optional(fc.nat(3)), maxLength: optional(fc.nat(8)) }).map(clean),
    fc.record({
      type: fc.constantFrom('integer', 'number'),
      minimum: optional(fc.constantFrom(-3, 0, 1, 2.5, 10, -0.5)),
      maximum: optional(fc.constantFrom(0, 3, 12, 99.5, 1000, 2)),
      exclusiveMinimum: optional(fc.constantFrom(-1, 0, 1.5), 0.15),
      exclusiveMaximum: optional(fc.constantFrom(5, 10, 2.5), 0.15),
      multipleOf: optional(fc.constantFrom(2, 3, 5, 0.5), 0.2),
    }).map(clean),
    fc.constantFrom<Schema>({ type: 'boolean' }, { type: 'null' }),
    fc.record({ enum: fc.array(fc.constantFrom(...SCALARS, { x: 1 }), { minLength: 1, maxLength: 4 }), type: optional(fc.constantFrom('string', 'integer', 'null', ['string', 'null'])) }).map(clean),
    fc.record({ const: fc.constantFrom(...SCALARS) }),
    // the definition beside the top level, which may refer to itself
    fc.constant<Schema>({ $ref: '#/$defs/D' }),
  ),
  schema: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tie('leaf'),
    fc
      .record({
        props: fc.dictionary(fc.constantFrom(...NAMES), tie('schema'), { maxKeys: 3 }),
        required: fc.subarray(NAMES),
        additionalProperties: optional(fc.oneof(fc.boolean(), tie('schema')), 0.5),
        propertyNames: optional(fc.constantFrom<Schema>({ enum: ['p', 'q', 'pq'] }, { pattern: '^[a-c]{1,3}$' }, { maxLength: 2 }, { format: 'uuid' }, { minLength: 1, maxLength: 1 }), 0.15),
        patternProperties: optional(fc.tuple(fc.constantFrom(...PATTERNS), tie('schema')).map(([p, s]) => ({ [p]: s })), 0.1),
      })
      .map(({ props, required, ...rest }) => clean({ type: 'object', properties: props, required: required.filter((r) => r in props), ...rest })),
    fc
      .record({
        items: optional(tie('schema'), 0.85),
        prefixItems: optional(fc.array(tie('schema'), { minLength: 1, maxLength: 2 }), 0.2),
        minItems: optional(fc.nat(3), 0.4),
        maxItems: optional(fc.nat(5), 0.4),
        uniqueItems: optional(fc.boolean(), 0.35),
      })
      .map((r) => clean({ type: 'array', ...r })),
    fc.record({ kind: fc.constantFrom('anyOf', 'oneOf', 'allOf'), parts: fc.array(tie('schema'), { minLength: 1, maxLength: 3 }) }).map(({ kind, parts }) => ({ [kind]: parts })),
    // allOf of object schemas (OpenAPI's inheritance): properties, required names and closed parts merged
    fc
      .array(
        fc.record({ props: fc.dictionary(fc.constantFrom(...NAMES), tie('schema'), { maxKeys: 2 }), required: fc.subarray(NAMES, { maxLength: 2 }), closed: fc.boolean() }),
        { minLength: 2, maxLength: 3 },
      )
      .map((parts) => ({ allOf: parts.map(({ props, required, closed }) => ({ type: 'object', properties: props, required: required.filter((r) => r in props), ...(closed ? { additionalProperties: false } : {}) })) })),
    // draft 7's tuples: items as an array, additionalItems beside it
    fc
      .record({ items: fc.array(tie('schema'), { minLength: 1, maxLength: 2 }), additionalItems: optional(fc.oneof(fc.boolean(), tie('schema')), 0.6), minItems: optional(fc.nat(3), 0.3) })
      .map((r) => clean({ type: 'array', ...r })),
    fc.tuple(fc.constantFrom('string', 'integer'), fc.constantFrom('null', 'boolean', 'number')).map((types) => ({ type: types })),
    fc.constantFrom<Schema>({ not: {} }, { contains: {} }, { type: 'object', minProperties: 1 }),
  ),
})).schema;

/** characters a walk tries: printable ASCII, a letter beyond it, a line break */
const ALPHABET = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)), 'é', '\n'];
/** a walk over all of them, with some whitespace between tokens */
const walkOptions = { max: 300, alphabet: ALPHABET, whitespace: [2, 1] as [number, number], closeAfter: 60 };

describe('generated schemas', () => {
  it('are refused with a SchemaError or compiled; where compiled, walks never reach a dead end and every value they complete is valid under Ajv', () => {
    let compiled = 0;
    let completed = 0;
    fc.assert(
      fc.property(schemas, schemas, fc.integer(), (inner, definition, walkSeed) => {
        const schema = { type: 'object', properties: { v: inner }, required: ['v'], additionalProperties: false, $defs: { D: definition } };
        let node: SchemaNode;
        try {
          node = compileSchema(schema);
        } catch (err) {
          expect(err, (err as Error).stack).toBeInstanceOf(RfidMoeError);
          return;
        }
        compiled++;
        // (oneOf is followed as anyOf: a value valid under two options is accepted, as the constraint documents)
        const truth = JSON.parse(JSON.stringify(schema).replaceAll('"oneOf"', '"anyOf"')) as object;
        let validate: ((v: unknown) => boolean) & { errors?: unknown } = () => true;
        try {
          validate = addFormats(new Ajv2020({ strict: false })).compile(truth);
        } catch {
          // (a schema Ajv cannot compile has no truth to compare with: the walks are still held to no dead end)
        }
        const rand = mulberry32(walkSeed);
        for (let k = 0; k < 6; k++) {
          const text = walk(node, rand, walkOptions);
          expect(text, 'a walk reached a dead end').not.toBe('dead');
          if (text === null) continue;
          completed++;
          let valid: boolean;
          try {
            valid = validate(JSON.parse(text));
          } catch (err) {
            // (Ajv recurses without end into a definition that is an anyOf option of itself, which the constraint refuses and leaves out)
            if (err instanceof RangeError) continue;
            throw err;
          }
          expect(valid, `${text}: ${JSON.stringify(validate.errors)}`).toBe(true);
        }
      }),
      { seed: SEED, numRuns: 300 * RUNS },
    );
    // (the generator must reach both sides: schemas compiled, and values completed under them)
    expect(compiled).toBeGreaterThan(120 * RUNS);
    expect(completed).toBeGreaterThan(500 * RUNS);
  }, 300_000);
});

/**
 * A made-up vocabulary of short pieces: JSON's structure, quotes and backslashes (which a screen
 * shared between states inside keys judges in each state), letters, digits, and runs of them.
 */
const PIECE_CHARS = ['"', '\\', '{', '}', '[', ']', ':', ',', ' ', 'a', 'b', 'c', 'p', 'q', 'x', '0', '1', '5', '-', '.', 'e', 'u', 'n', 'é'];
const vocabularies = fc.uniqueArray(fc.array(fc.constantFrom(...PIECE_CHARS), { minLength: 1, maxLength: 4 }).map((c) => c.join('')), { minLength: 40, maxLength: 120 });

describe('generated schemas, screened', () => {
  it('a screen of the vocabulary in states along walks through them (one set of pieces for all, so states share kept and interior screens) takes each piece exactly where the piece pushed alone fits', () => {
    let screened = 0;
    let interior = 0;
    fc.assert(
      fc.property(schemas, vocabularies, fc.integer(), (inner, vocab, walkSeed) => {
        const schema = { type: 'object', properties: { v: inner }, required: ['v'], additionalProperties: false };
        let node: SchemaNode;
        try {
          node = compileSchema(schema);
        } catch {
          return;
        }
        const pieces = new TokenPieces({ decode: (ids: number[]) => ids.map((i) => vocab[i]).join('') }, vocab.length);
        const rand = mulberry32(walkSeed);
        for (let k = 0; k < 3; k++) {
          // the states along a walk, each screened in turn
          let state = new SchemaPrefix(node, 2, 1);
          for (let step = 0; step < 80 && !state.complete; step++) {
            const screen = pieces.screen(state);
            screened++;
            if (state.interiorKey !== undefined) interior++;
            vocab.forEach((piece, id) => {
              const alone = state.clone().push(piece);
              expect(screen[id], `${JSON.stringify(piece)} after a walk's ${step} characters (interior ${state.interiorKey ?? 'none'})`).toBe(alone ? 1 : 0);
            });
            const next = [...ALPHABET].sort(() => rand() - 0.5).find((c) => state.clone().push(c));
            if (next === undefined) break;
            state.push(next);
          }
        }
      }),
      { seed: SEED + 1, numRuns: 150 * RUNS },
    );
    expect(screened).toBeGreaterThan(2500 * RUNS);
    // (states inside keys and held unique items, where screens are shared by interior key, among them)
    expect(interior).toBeGreaterThan(125 * RUNS);
  }, 300_000);
});

describe('the cases the generated schemas found, kept by hand', () => {
  const object = (v: object, defs?: object) => ({ type: 'object', properties: { v }, required: ['v'], additionalProperties: false, ...(defs ? { $defs: defs } : {}) });
  const takes = (schema: object, text: string) => {
    const p = new SchemaPrefix(compileSchema(schema), 2, 1);
    return p.push(text) && p.complete;
  };

  it('an enum or const beside a type (or a held format) keeps the values of it; an enum and a const, the values equal; none left is a 400', () => {
    expect(takes(object({ type: 'integer', enum: ['a', 1, 2.5] }), '{"v": 1}')).toBe(true);
    expect(takes(object({ type: 'integer', enum: ['a', 1, 2.5] }), '{"v": "a"}')).toBe(false);
    expect(takes(object({ allOf: [{ type: 'null' }, { enum: ['b', null, false] }] }), '{"v": "b"}')).toBe(false);
    expect(takes(object({ allOf: [{ type: 'null' }, { enum: ['b', null, false] }] }), '{"v": null}')).toBe(true);
    expect(takes(object({ type: 'string', format: 'date', enum: ['2024-02-30', '2024-02-29', 'x'] }), '{"v": "2024-02-29"}')).toBe(true);
    expect(takes(object({ type: 'string', format: 'date', enum: ['2024-02-30', '2024-02-29', 'x'] }), '{"v": "x"}')).toBe(false);
    expect(takes(object({ allOf: [{ enum: ['a', 'b'] }, { const: 'b' }] }), '{"v": "b"}')).toBe(true);
    expect(takes(object({ allOf: [{ enum: ['a', 'b'] }, { const: 'b' }] }), '{"v": "a"}')).toBe(false);
    expect(() => compileSchema(object({ allOf: [{ type: 'null' }, { enum: [1, 0] }] }))).toThrow(/no value of "enum" is of the schema's type "null"/);
    expect(() => compileSchema(object({ allOf: [{ enum: ['a'] }, { const: -0.25 }] }))).toThrow(/no value of "enum" equals "const"/);
    expect(() => compileSchema(object({ enum: ['a'], anyOf: [{ type: 'string' }] }))).toThrow(/"anyOf" beside "enum" or "const" is not supported/);
  });

  it('a held format survives the merge of an allOf', () => {
    const uri = object({ allOf: [{ type: 'string', minLength: 0 }, { type: 'string', format: 'uri' }] });
    expect(takes(uri, '{"v": ""}')).toBe(false);
    expect(takes(uri, '{"v": "https://example.com/a"}')).toBe(true);
    expect(takes(object({ allOf: [{ type: 'string' }], format: 'uuid' }), '{"v": "x"}')).toBe(false);
  });

  it('an integer of a multipleOf is written within ±(10^15 − 1), where a double holds it exactly', () => {
    const five = object({ type: 'integer', multipleOf: 5 });
    expect(takes(five, '{"v": 999999999999995}')).toBe(true);
    expect(takes(five, '{"v": 1000000000000000}')).toBe(false);
    expect(takes(five, '{"v": -999999999999995}')).toBe(true);
    expect(() => compileSchema(object({ type: 'integer', multipleOf: 5, minimum: 1e16 }))).toThrow(/no integer of at most 15 digits/);
  });

  it('a $ref refused once is refused wherever it is referred to, with the definitions that hold it; a definition that is an option of itself is refused', () => {
    // D cannot be followed: the anyOf leaves out both references to it (the second was taken as any value)
    expect(takes(object({ anyOf: [{ $ref: '#/$defs/D' }, { $ref: '#/$defs/D' }, { type: 'null' }] }, { D: { not: {} } }), '{"v": 1}')).toBe(false);
    // F, compiled while D was, refers to D: both are left out, not F with D as any value
    const defs = { D: { type: 'array', items: { $ref: '#/$defs/F' }, uniqueItems: true }, F: { type: 'object', properties: { d: { $ref: '#/$defs/D' } }, required: ['d'], additionalProperties: false } };
    const tainted = { type: 'object', properties: { v: { anyOf: [{ $ref: '#/$defs/D' }, { type: 'integer' }] }, w: { anyOf: [{ $ref: '#/$defs/F' }, { type: 'null' }] } }, required: ['v', 'w'], additionalProperties: false, $defs: defs };
    expect(takes(tainted, '{"v": 1, "w": {"d": "anything"}}')).toBe(false);
    expect(takes(tainted, '{"v": 1, "w": null}')).toBe(true);
    expect(() => compileSchema(object({ $ref: '#/$defs/D' }, { D: { anyOf: [{ $ref: '#/$defs/D' }, { enum: ['a'] }] } }))).toThrow(SchemaError);
    expect(() => compileSchema(object({ $ref: '#/$defs/D' }, { D: { anyOf: [{ $ref: '#/$defs/D' }, { enum: ['a'] }] } }))).toThrow(/is an anyOf option of itself/);
    expect(() => compileSchema(object({ $ref: '#/$defs/D' }, { D: { $ref: '#/$defs/D' } }))).toThrow(/refers only to itself/);
    // a definition whose allOf merge holds itself again (a property merged with a $ref back to it) would merge without end
    const merges = { D: { allOf: [{ type: 'object', properties: { name: { type: 'object' } } }, { type: 'object', properties: { name: { $ref: '#/$defs/D' } } }] } };
    expect(() => compileSchema(object({ $ref: '#/$defs/D' }, merges))).toThrow(/"allOf" merges nested more than 24 deep/);
    // and a definition merged into two others (inheritance with siblings) is fine
    const siblings = { Base: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] }, A: { allOf: [{ $ref: '#/$defs/Base' }, { type: 'object', properties: { b: { $ref: '#/$defs/B' } } }] }, B: { allOf: [{ $ref: '#/$defs/Base' }, { type: 'object', properties: { x: { type: 'string' } } }] } };
    expect(takes(object({ $ref: '#/$defs/A' }, siblings), '{"v": {"id": 1, "b": {"id": 2, "x": "y"}}}')).toBe(true);
    expect(takes(object({ $ref: '#/$defs/A' }, siblings), '{"v": {"id": 1, "b": {"x": "y"}}}')).toBe(false);
    // recursion through an object stays fine
    expect(takes(object({ $ref: '#/$defs/T' }, { T: { type: 'object', properties: { next: { anyOf: [{ $ref: '#/$defs/T' }, { type: 'null' }] } }, required: ['next'], additionalProperties: false } }), '{"v": {"next": {"next": null}}}')).toBe(true);
  });
});
