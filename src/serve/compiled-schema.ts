/** A JSON schema a request holds generation to, checked before any load. */
import { startingState } from '../runtime/generation/grammar-constraint.js';
import { SchemaError, type TopLevel } from '../runtime/generation/json-schema.js';
import { badRequest } from './errors.js';

/** `schema`, once compiled (and kept) without a SchemaError; else a 400 naming `field`. */
export function compiled(schema: unknown, field: string, topLevel: TopLevel = 'object'): unknown {
  try {
    startingState(schema, topLevel);
  } catch (err) {
    if (err instanceof SchemaError) throw badRequest(`${field}: ${err.message}`, field, 'invalid_value');
    throw err;
  }
  return schema;
}
