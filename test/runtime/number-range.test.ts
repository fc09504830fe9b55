/**
 * A number schema's bounds (minimum, maximum, exclusiveMinimum, exclusiveMaximum, and a whole multipleOf) as the schema
 * constraint holds them (number-range.ts, schema-prefix.ts). Independent truth: Ajv on the value
 * a whole text writes, and a brute-force search of completions for viability: on random bounds and
 * random number texts, a text ends a valid number exactly where Ajv finds the value valid, every
 * prefix of one is viable, and every viable prefix has a completion (no dead end).
 */
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startingState } from '../../src/runtime/generation/grammar-constraint.js';
import { SchemaError } from '../../src/runtime/generation/json-schema.js';
import { parseDecimal } from '../../src/runtime/generation/number-range.js';

const ajv = new Ajv({ strict: false });

/**
 * The constraint's view of `text` as the one item of an array (a number at the top level never
 * ends): a text followed by a space ends the number, and is 'complete' where the number may end there.
 */
function held(schema: unknown, text: string): 'refused' | 'viable' | 'complete' {
  const state = startingState({ type: 'array', items: schema }, 'any');
  if (!state.push(`[${text.trimEnd()}`)) return 'refused';
  if (!text.endsWith(' ')) return 'viable';
  return state.push(']') && state.complete ? 'complete' : 'refused';
}

/** whether some completion of `prefix` (up to `depth` more characters) ends a valid number */
function completable(schema: unknown, prefix: string, depth: number): boolean {
  if (held(schema, `${prefix} `) === 'complete') return true;
  if (depth === 0) return false;
  for (const c of '0123456789.') {
    const next = prefix + c;
    if (held(schema, next) !== 'refused' && completable(schema, next, depth - 1)) return true;
  }
  return false;
}

const bound = fc.oneof(fc.integer({ min: -300, max: 300 }), fc.integer({ min: -3000, max: 3000 }).map((n) => n / 10), fc.integer({ min: -30000, max: 30000 }).map((n) => n / 100));
const schemaArb = fc
  .record({
    type: fc.constantFrom('integer', 'number'),
    lo: fc.option(bound, { nil: undefined }),
    hi: fc.option(bound, { nil: undefined }),
    loX: fc.boolean(),
    hiX: fc.boolean(),
    // a whole multipleOf (a number's makes it an integer)
    step: fc.option(fc.constantFrom(2, 3, 5, 7, 10, 25), { nil: undefined }),
  })
  .filter(({ lo, hi, step }) => lo !== undefined || hi !== undefined || step !== undefined)
  .map(({ type, lo, hi, loX, hiX, step }) => {
    const [a, b] = lo !== undefined && hi !== undefined && lo > hi ? [hi, lo] : [lo, hi];
    return {
      type,
      ...(a === undefined ? {} : { [loX ? 'exclusiveMinimum' : 'minimum']: a }),
      ...(b === undefined ? {} : { [hiX ? 'exclusiveMaximum' : 'maximum']: b }),
      ...(step === undefined ? {} : { multipleOf: step }),
    } as Record<string, unknown>;
  })
  .filter((schema) => Object.keys(schema).length > 1);
const numberText = fc.oneof(
  fc.integer({ min: -5000, max: 5000 }).map(String),
  fc.tuple(fc.integer({ min: -400, max: 400 }), fc.integer({ min: 0, max: 999 })).map(([i, f]) => `${i < 0 ? '-' : ''}${Math.abs(i)}.${String(f).padStart(3, '0')}`),
  fc.constantFrom('0', '-0', '0.5', '-0.5', '1e2'),
);

/** whether the schema compiles (bounds that leave no value are a SchemaError, also checked below) */
function compiles(schema: unknown): boolean {
  try {
    startingState(schema, 'any');
    return true;
  } catch (err) {
    if (err instanceof SchemaError) return false;
    throw err;
  }
}

describe('number bounds', () => {
  it('a text ends a valid number exactly where Ajv finds its value valid; every prefix of a valid one is viable', () => {
    fc.assert(
      fc.property(schemaArb, numberText, (schema, text) => {
        if (!compiles(schema)) return;
        // the constraint writes a bounded number in plain digits, and an integer (a multiple of a
        // whole number is one) without a fraction (1.0 is one to Ajv)
        const valid = !/e/i.test(text) && !((schema.type === 'integer' || schema.multipleOf !== undefined) && text.includes('.')) && ajv.validate(schema, Number(text));
        expect(held(schema, `${text} `) === 'complete', `${JSON.stringify(schema)} ${text}`).toBe(valid);
        if (valid) for (let i = 1; i <= text.length; i++) expect(held(schema, text.slice(0, i)), `${JSON.stringify(schema)} ${text.slice(0, i)}`).not.toBe('refused');
      }),
      { numRuns: 3000, seed: 5 },
    );
  });

  it('every viable prefix has a completion (the text never reaches a number nothing completes)', () => {
    fc.assert(
      fc.property(schemaArb, numberText, fc.nat(), (schema, text, cut) => {
        if (!compiles(schema) || /e/i.test(text)) return;
        const prefix = text.slice(0, 1 + (cut % text.length));
        if (held(schema, prefix) === 'refused') return;
        expect(completable(schema, prefix, 6), `${JSON.stringify(schema)} ${prefix}`).toBe(true);
      }),
      { numRuns: 800, seed: 9 },
    );
  });

  it('a bounded number is written without an exponent; exact decimals, not floats, decide the edges', () => {
    expect(held({ type: 'number', maximum: 1000 }, '1e')).toBe('refused');
    expect(held({ type: 'number' }, '1e3 ')).toBe('complete');
    // 0.3 is not above 0.1 + 0.2 in floats, but the bound is the decimal 0.3
    expect(held({ type: 'number', exclusiveMaximum: 0.3 }, '0.3 ')).toBe('refused');
    expect(held({ type: 'number', maximum: 0.3 }, '0.30000000000000001 ')).toBe('refused');
    expect(held({ type: 'number', maximum: 0.3 }, '0.300000 ')).toBe('complete');
    expect(parseDecimal('-12.50e1')).toEqual({ int: -1250n, scale: 1 });
    // more zeros after a point keep the value: 1.0 is within [1, 1]
    expect(held({ type: 'number', minimum: 1, maximum: 1 }, '1.')).toBe('viable');
    expect(held({ type: 'number', minimum: 1, maximum: 1 }, '1.00 ')).toBe('complete');
    expect(held({ type: 'number', minimum: 1, maximum: 1 }, '1.01')).toBe('refused');
  });

  it('bounds that leave no value, and bounds of the wrong kind, are SchemaErrors', () => {
    expect(() => startingState({ type: 'number', minimum: 2, maximum: 1 })).toThrow(/no number/);
    expect(() => startingState({ type: 'integer', exclusiveMinimum: 1, exclusiveMaximum: 2 })).toThrow(/no integer/);
    expect(() => startingState({ type: 'integer', minimum: 1.2, maximum: 1.8 })).toThrow(/no integer/);
    expect(() => startingState({ type: 'number', exclusiveMinimum: true })).toThrow(/finite number/);
    expect(() => startingState({ enum: [1, 2], minimum: 1 })).toThrow(/beside "enum"/);
    // an integer's multipleOf: a positive integer, and some multiple within the bounds
    expect(() => startingState({ type: 'integer', multipleOf: 5, minimum: 1, maximum: 4 })).toThrow(/no integer/);
    expect(() => startingState({ type: 'number', multipleOf: 0.5 })).toThrow(/only as a whole number/);
    // a number's whole multipleOf makes it an integer
    expect(held({ type: 'number', multipleOf: 5 }, '15 ')).toBe('complete');
    expect(held({ type: 'number', multipleOf: 5 }, '15.')).toBe('refused');
    expect(held({ type: 'number', multipleOf: 5 }, '16 ')).toBe('refused');
    expect(() => startingState({ type: 'integer', multipleOf: 0 })).toThrow(/positive integer/);
  });
});
