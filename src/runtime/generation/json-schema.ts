/**
 * A JSON schema (OpenAI's `response_format: {"type": "json_schema", "json_schema": {"schema": …}}`)
 * compiled into the nodes that schema-prefix.ts matches text against, character by character.
 *
 * The subset is the one structured-output clients generate (OpenAI's strict mode, Pydantic's
 * model_json_schema, zod-to-json-schema): `type` (one or a list), `properties`, `required`,
 * `additionalProperties` (false, true or a schema; absent = true), `propertyNames` and
 * `patternProperties` of one pattern (the other keys' names held to a string rule: otherKeys),
 * `uniqueItems` on arrays of scalars (uniqueItems: strings, integers, literals), `items`, `prefixItems` (and
 * draft 7's items array with `additionalItems`), `allOf` (of one schema, or of several merged:
 * object schemas' properties united, other schemas' keywords united; mergedObjects), `minItems`,
 * `maxItems`, `enum`, `const`, `anyOf`, `oneOf` (matched as anyOf: a value valid under two of
 * its options is accepted), `$ref` to `#/$defs/…` or `#/definitions/…` (recursion included), and
 * `nullable`, a string's `pattern`, `format`, `minLength` and `maxLength` (string-rules.ts;
 * formats other than those it holds only annotate), and a number's `minimum`, `maximum`,
 * `exclusiveMinimum` and `exclusiveMaximum`, and a whole `multipleOf` (number-range.ts; on a
 * number it makes the number an integer).
 * Keywords that only document (`title`, `description`, `default`, `examples`, `$schema`, `$id`,
 * `$comment`, `strict`, OpenAPI's `discriminator`, vendor `x-…` keys) are ignored. Any other
 * keyword that would constrain a value (`not`, `allOf` of parts that cannot be merged, `uniqueItems` on objects, …) is refused with a
 * SchemaError naming it, rather than silently not enforced. The top level must be an object
 * (OpenAI's rule for response_format), unless the caller allows any value (vLLM's guided_json, and
 * the server's forced tool calls, which are an array of calls).
 */
import { RfidMoeError } from '../../errors.js';
import { distinctValues, FORMAT_PATTERNS, ruleAccepts, stringRule, type StringRule } from './string-rules.js';
import { countIntegers, hasInteger, numberRange, type NumberRange } from './number-range.js';

export class SchemaError extends RfidMoeError {
  readonly kind = 'SchemaError';
  constructor(
    message: string,
    /** where in the schema, as a JSON pointer */
    readonly at: string,
  ) {
    super(`${at === '' ? 'the schema' : `schema ${at}`}: ${message}`);
    this.name = 'SchemaError';
  }
}

export type SchemaNode =
  | { kind: 'any' }
  | {
      kind: 'object';
      /** property name → its node */
      props: Map<string, SchemaNode>;
      /** each property's name as it is written between the quotes (JSON.stringify without them) */
      written: Map<string, string>;
      required: ReadonlySet<string>;
      /** the node of any other key; null: no other key */
      additional: SchemaNode | null;
      /** what any other key must be (propertyNames, or patternProperties' pattern); null: any string */
      keys: KeyRule | null;
      /**
       * the properties in the schema's order, and each one's place in it: properties are written
       * in that order, each optional one possibly left out (as OpenAI's structured outputs and
       * vLLM's write them); other keys, where allowed, at any point
       */
      declared: readonly string[];
      order: ReadonlyMap<string, number>;
    }
  /**
   * an array: item i is `prefix[i]` (a tuple's), later ones `items`; `min`, `max` its length
   * (within the prefix where `items` is null); `unique`: uniqueItems, null where items may repeat
   */
  | { kind: 'array'; prefix: readonly SchemaNode[]; items: SchemaNode | null; min: number; max: number; unique: UniqueItems | null }
  /** a string; `allowed`: the strings as written between the quotes, null: any; `rule`: its pattern, format and length (string-rules.ts), null: none */
  | { kind: 'string'; allowed: readonly string[] | null; rule: StringRule | null }
  /** a number; `range`: its bounds (number-range.ts), null: none */
  | { kind: 'number'; integer: boolean; range: NumberRange | null }
  /** exactly this JSON text (true, false, null, or a number from enum/const) */
  | { kind: 'literal'; text: string }
  | { kind: 'anyOf'; options: readonly SchemaNode[] };

export const ANY: SchemaNode = { kind: 'any' };

/**
 * uniqueItems on an array of scalars: `finite`, every value an item may be (their canonical
 * forms, uniqueValue), where they are few (an enum, booleans, constants); null where they are
 * too many to list (a string, free or held to a rule; an integer), and so are judged as they are
 * written (schema-prefix.ts: newItemPossible).
 */
export interface UniqueItems {
  finite: readonly string[] | null;
}

/** Most digits of an integer item of unique items: every such integer is exact in a double, so texts and values agree. */
export const MAX_UNIQUE_DIGITS = 15;

/** A scalar JSON value's canonical form, equal for values JSON Schema calls equal (1 and 1.0; a string by its value, however escaped). */
export function uniqueValue(json: string): string {
  const v: unknown = JSON.parse(json);
  return typeof v === 'string' ? `s${v}` : typeof v === 'number' ? `n${String(v === 0 ? 0 : v)}` : String(v);
}

/** A property name's rule: one of the names (as written between the quotes), or a string rule (string-rules.ts). */
export interface KeyRule {
  allowed: readonly string[] | null;
  rule: StringRule | null;
}

const DOCUMENTATION = new Set([
  ...['title', 'description', 'default', 'examples', '$schema', '$id', '$anchor', 'format', '$comment', 'strict', 'readOnly', 'writeOnly', 'deprecated', '$defs', 'definitions'],
  // OpenAPI's (Pydantic writes it beside a discriminated union's oneOf), and content annotations: the options themselves hold the value
  ...['discriminator', 'contentEncoding', 'contentMediaType'],
]);
/** keywords that only document: the set above, and vendor extensions (`x-…`) */
const documents = (k: string) => DOCUMENTATION.has(k) || k.startsWith('x-');

/**
 * A keyword the server does not hold, given a value that constrains nothing: schema generators
 * that write every keyword's default (`"uniqueItems": false`, `"minProperties": 0`) send these,
 * and refusing them would refuse a schema the generation is held to in full. `uniqueItems` is
 * also nothing where the array holds at most one item.
 */
function constrainsNothing(k: string, o: Record<string, unknown>): boolean {
  const v = o[k];
  switch (k) {
    case 'uniqueItems':
      return v === false || (v === true && typeof o.maxItems === 'number' && o.maxItems <= 1);
    case 'minProperties':
    case 'minContains':
      return v === 0;
    case 'dependentRequired':
    case 'dependentSchemas':
    case 'patternProperties':
      return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0;
    default:
      return false;
  }
}

/** a keyword that says nothing the generation must follow: documentation, or a value that constrains nothing */
const ignorable = (k: string, o: Record<string, unknown>) => documents(k) || constrainsNothing(k, o);
const HANDLED = new Set(['type', 'properties', 'required', 'additionalProperties', 'propertyNames', 'patternProperties', 'uniqueItems', 'items', 'minItems', 'maxItems', 'enum', 'const', 'anyOf', 'oneOf', '$ref', 'nullable', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'prefixItems', 'additionalItems', 'allOf', 'multipleOf']);
/** what a string's rule (string-rules.ts) and a number's range (number-range.ts) read */
const VALUE_RULES = ['pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'];
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'];

/** whether `k` is a `format` the generation holds (string-rules.ts), which a merge must keep though formats otherwise only document */
const heldFormat = (k: string, o: Record<string, unknown>): boolean => k === 'format' && typeof o.format === 'string' && FORMAT_PATTERNS.has(o.format);

/** whether an anyOf node reaches itself through anyOf options alone */
function optionOfItself(node: SchemaNode): boolean {
  if (node.kind !== 'anyOf') return false;
  const seen = new Set<SchemaNode>();
  const stack = [...node.options];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n === node) return true;
    if (n.kind !== 'anyOf' || seen.has(n)) continue;
    seen.add(n);
    stack.push(...n.options);
  }
  return false;
}

/** whether a JSON value is of a JSON Schema type */
function ofType(v: unknown, type: string): boolean {
  switch (type) {
    case 'null':
      return v === null;
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    default:
      return typeof v === type;
  }
}
/** allOf merges compiled one inside another at most (json-schema.ts compile) */
const MAX_MERGE_DEPTH = 24;
/** nodes a schema may compile to, against a schema crafted to expand without end */
const MAX_NODES = 10_000;
/**
 * Most values of one enum and properties of one object: every character of an enum string or a
 * key is checked against each, for every token of the vocabulary when a state is screened, so a
 * request could otherwise hold the decoding thread for minutes.
 */
export const MAX_ENUM_VALUES = 1024;
export const MAX_PROPERTIES = 1024;
/** most options of one anyOf (the matcher follows them side by side) */
export const MAX_ANY_OF = 128;

/** written form of a string between its quotes */
const written = (s: string) => JSON.stringify(s).slice(1, -1);

/** whether a property name meets a key rule */
export const keyAccepts = (keys: KeyRule | null, name: string): boolean => keys === null || (keys.allowed !== null ? keys.allowed.includes(written(name)) : keys.rule === null || ruleAccepts(keys.rule, name));

/** What the top level of a schema may be: an object (response_format), or any JSON value. */
export type TopLevel = 'object' | 'any';

/** Compiles `schema`; throws SchemaError naming the first part it cannot hold a generation to. */
export function compileSchema(schema: unknown, topLevel: TopLevel = 'object'): SchemaNode {
  const refs = new Map<string, SchemaNode>();
  /** definitions that could not be compiled: a later $ref to one fails as the first did */
  const refused = new Map<string, SchemaError>();
  /** allOf merges whose results are being compiled, one inside another */
  let merging = 0;
  let nodes = 0;
  const root = schema;

  function resolve(ref: string, at: string): unknown {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
    if (!m) throw new SchemaError(`$ref "${ref}" is not supported (only "#/$defs/NAME" and "#/definitions/NAME" in the same schema)`, at);
    const defs = (root as Record<string, unknown>)[m[1]];
    const name = m[2].replace(/~1/g, '/').replace(/~0/g, '~');
    const target = defs !== null && typeof defs === 'object' && Object.hasOwn(defs, name) ? (defs as Record<string, unknown>)[name] : undefined;
    if (target === undefined) throw new SchemaError(`$ref "${ref}" names no definition`, at);
    return target;
  }

  function compile(s: unknown, at: string): SchemaNode {
    if (++nodes > MAX_NODES) throw new SchemaError(`more than ${MAX_NODES} parts: too large to follow`, at);
    if (s === true) return ANY;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new SchemaError('a schema must be an object (or true)', at);
    const o = s as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!HANDLED.has(k) && !ignorable(k, o)) throw new SchemaError(`the keyword "${k}" is not supported (generation could not be held to it)`, at);
    }
    if (typeof o.$ref === 'string') {
      const others = Object.keys(o).filter((k) => k !== '$ref' && !ignorable(k, o));
      if (others.length > 0) throw new SchemaError(`"$ref" beside ${others.map((k) => `"${k}"`).join(', ')} is not supported`, at);
      const ref = o.$ref;
      const failed = refused.get(ref);
      if (failed !== undefined) throw failed;
      let node = refs.get(ref);
      if (node === undefined) {
        // a placeholder first, filled in place, so that a recursive definition refers to itself
        node = { kind: 'any' };
        refs.set(ref, node);
        try {
          const target = compile(resolve(ref, at), ref.slice(1));
          // a definition that is only a $ref back to itself (directly or through others) describes no value
          if (target === node) throw new SchemaError(`$ref "${ref}" refers only to itself, through $refs alone`, at);
          Object.assign(node, target);
          // one that is an option of itself (D = anyOf[D, …]) would be begun by beginning itself, without end
          if (optionOfItself(node)) throw new SchemaError(`$ref "${ref}" is an anyOf option of itself (through anyOf, oneOf or $refs alone, with no object or array between)`, at);
        } catch (err) {
          // not left as the placeholder, which would stand for any value where an anyOf drops this
          // option and another refers to it again; nor the definitions compiled meanwhile, which may
          // hold it (compiled again where they are referred to, they meet this refusal instead)
          let since = false;
          for (const k of [...refs.keys()]) {
            since ||= k === ref;
            if (since) refs.delete(k);
          }
          if (err instanceof SchemaError) refused.set(ref, err);
          throw err;
        }
      }
      return node;
    }
    if (o.$ref !== undefined) throw new SchemaError('"$ref" must be a string', at);
    const nullable = o.nullable === true;
    const withNull = (n: SchemaNode): SchemaNode => (nullable ? { kind: 'anyOf', options: [n, { kind: 'literal', text: 'null' }] } : n);

    // (first: the allOf's parts and the keywords beside it, an enum among them, are merged into one schema)
    if (o.allOf !== undefined) {
      const list = o.allOf;
      if (!Array.isArray(list) || list.length === 0) throw new SchemaError('"allOf" must be a non-empty array of schemas', at);
      const rest = Object.keys(o).filter((k) => k !== 'allOf' && k !== 'nullable' && (!ignorable(k, o) || heldFormat(k, o)));
      // one schema in allOf (how some generators attach a description to a $ref) is that schema
      if (list.length === 1 && rest.length === 0) return withNull(compile(list[0], `${at}/allOf/0`));
      // several: object schemas (OpenAPI's inheritance, zod's .and()) merged into one
      // a merge reads its $refs' schemas in place, so one that refers back to itself through allOf
      // would be merged again inside its own merge without end: merges nest to a bound
      if (merging >= MAX_MERGE_DEPTH) throw new SchemaError(`"allOf" merges nested more than ${MAX_MERGE_DEPTH} deep (a $ref that refers back to itself through allOf is not supported)`, at);
      merging++;
      try {
        return withNull(compile(mergedObjects(o, at), `${at}/allOf`));
      } finally {
        merging--;
      }
    }
    if (o.const !== undefined || o.enum !== undefined) {
      const rules = [...VALUE_RULES, 'anyOf', 'oneOf'].filter((k) => o[k] !== undefined);
      if (rules.length > 0) throw new SchemaError(`${rules.map((k) => `"${k}"`).join(', ')} beside "enum" or "const" is not supported (give the values that match)`, at);
      if (o.enum !== undefined && (!Array.isArray(o.enum) || o.enum.length === 0)) throw new SchemaError('"enum" must be a non-empty array', at);
      if (Array.isArray(o.enum) && o.enum.length > MAX_ENUM_VALUES) throw new SchemaError(`"enum" has ${o.enum.length} values, more than the ${MAX_ENUM_VALUES} followed`, at);
      const values = enumValues(o, at);
      const strings: string[] = [];
      const options: SchemaNode[] = [];
      for (const v of values) {
        if (typeof v === 'string') strings.push(written(v));
        else if (v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) options.push({ kind: 'literal', text: JSON.stringify(v) });
        else throw new SchemaError('"enum" and "const" values must be strings, numbers, booleans or null', at);
      }
      if (strings.length > 0) options.push({ kind: 'string', allowed: strings, rule: null });
      return withNull(options.length === 1 ? options[0] : { kind: 'anyOf', options });
    }
    for (const key of ['anyOf', 'oneOf'] as const) {
      if (o[key] === undefined) continue;
      const list = o[key];
      if (!Array.isArray(list) || list.length === 0) throw new SchemaError(`"${key}" must be a non-empty array of schemas`, at);
      if (list.length > MAX_ANY_OF) throw new SchemaError(`"${key}" has ${list.length} options, more than the ${MAX_ANY_OF} followed`, at);
      const rest = Object.keys(o).filter((k) => k !== key && k !== 'nullable' && !ignorable(k, o));
      if (rest.length > 0) throw new SchemaError(`"${key}" beside ${rest.map((k) => `"${k}"`).join(', ')} is not supported`, at);
      // an option the constraint cannot follow is left out where others remain: what the rest
      // accept is valid under the anyOf (a number, or a string of a pattern with a lookbehind);
      // where none can be followed, the first one's error stands
      const options: SchemaNode[] = [];
      let refused: SchemaError | null = null;
      for (const [i, x] of list.entries()) {
        try {
          options.push(compile(x, `${at}/${key}/${i}`));
        } catch (err) {
          // (the schema's size bound is the whole schema's, never an option's to drop)
          if (!(err instanceof SchemaError) || nodes > MAX_NODES) throw err;
          refused ??= err;
        }
      }
      if (options.length === 0) throw refused!;
      return withNull(options.length === 1 ? options[0] : { kind: 'anyOf', options });
    }
    let types: string[];
    if (o.type === undefined) {
      // a string's or a number's rules bind only values of that type: without one, any other value would pass unheld
      const rules = VALUE_RULES.filter((k) => o[k] !== undefined);
      if (rules.length > 0) throw new SchemaError(`${rules.map((k) => `"${k}"`).join(', ')} without a "type" is not supported (give "type": "string", "number" or "integer")`, at);
      // no type: what the other keywords describe, else any value
      if (o.properties !== undefined || o.required !== undefined || o.additionalProperties !== undefined) types = ['object'];
      else if (o.items !== undefined || o.prefixItems !== undefined || o.minItems !== undefined || o.maxItems !== undefined) types = ['array'];
      else return ANY;
    } else types = Array.isArray(o.type) ? (o.type as unknown[]).map(String) : [String(o.type)];
    for (const t of types) if (!TYPES.includes(t)) throw new SchemaError(`unknown type "${t}"`, at);
    const options = types.map((t) => typed(t, o, at));
    return withNull(options.length === 1 ? options[0] : { kind: 'anyOf', options });
  }

  /**
   * One schema that accepts what every part of `o`'s allOf accepts (its own keywords beside the
   * allOf are a part too; a part may be a $ref or an allOf itself). Object schemas (OpenAPI's
   * inheritance, zod's .and()) of `properties`, `required` and `additionalProperties` (true,
   * false or absent): properties are united (one in several parts held to all of them, by an
   * allOf of its schemas unless they are equal), required names too; a part with
   * additionalProperties false allows no key outside its own properties, so the merged object has
   * only the keys every such part names. Other schemas (`{"type": "string"}` and
   * `{"maxLength": 8}`): their keywords united, where the same keyword has the same value in
   * each. Anything else is refused, naming the part.
   */
  function mergedObjects(o: Record<string, unknown>, at: string): Record<string, unknown> {
    const parts: Array<{ part: Record<string, unknown>; at: string }> = [];
    const collect = (x: unknown, where: string, depth: number): void => {
      if (depth > 16) throw new SchemaError('"allOf" nested more than 16 deep', where);
      if (x === true) return;
      if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new SchemaError('a schema must be an object (or true)', where);
      let part = x as Record<string, unknown>;
      if (typeof part.$ref === 'string' && Object.keys(part).every((k) => k === '$ref' || documents(k))) {
        collect(resolve(part.$ref, where), part.$ref.slice(1), depth + 1);
        return;
      }
      if (Array.isArray(part.allOf)) {
        part.allOf.forEach((y, i) => collect(y, `${where}/allOf/${i}`, depth + 1));
        part = Object.fromEntries(Object.entries(part).filter(([k]) => k !== 'allOf'));
      }
      // (a $ref to a schema whose allOf refers twice to another, and so on, doubles the parts at each step)
      if (parts.length >= 64) throw new SchemaError('"allOf" has more than 64 parts, counting those of its $refs and nested allOf', where);
      // (a format held is a rule here, not documentation: the merged schema must keep it)
      parts.push({ part: Object.fromEntries(Object.entries(part).filter(([k]) => heldFormat(k, part) || !ignorable(k, part))), at: where });
    };
    (o.allOf as unknown[]).forEach((x, i) => collect(x, `${at}/allOf/${i}`, 0));
    collect(Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'allOf' && k !== 'nullable')), at, 0);
    const OBJECT_KEYS = ['type', 'properties', 'required', 'additionalProperties'];
    const objectish = parts.some(({ part }) => part.type === 'object' || OBJECT_KEYS.slice(1).some((k) => part[k] !== undefined));
    if (!objectish) return unitedKeywords(parts);
    const properties = new Map<string, unknown[]>();
    const required = new Set<string>();
    const closed: Array<Set<string>> = []; // the keys of each part with additionalProperties false
    for (const { part, at: where } of parts) {
      const other = Object.keys(part).filter((k) => !OBJECT_KEYS.includes(k));
      if (other.length > 0 || (part.type !== undefined && part.type !== 'object')) {
        throw new SchemaError(`"allOf" of object schemas is supported where each is one of properties, required and additionalProperties (this one has ${other.length > 0 ? other.map((k) => `"${k}"`).join(', ') : `type ${JSON.stringify(part.type)}`})`, where);
      }
      if (part.additionalProperties !== undefined && typeof part.additionalProperties !== 'boolean') throw new SchemaError('"allOf" of object schemas is supported with additionalProperties true or false only', where);
      const given = part.properties ?? {};
      if (given === null || typeof given !== 'object' || Array.isArray(given)) throw new SchemaError('"properties" must be an object', where);
      for (const [name, sub] of Object.entries(given)) properties.set(name, [...(properties.get(name) ?? []), sub]);
      const req = part.required ?? [];
      if (!Array.isArray(req) || req.some((r) => typeof r !== 'string')) throw new SchemaError('"required" must be an array of property names', where);
      for (const r of req as string[]) required.add(r);
      if (part.additionalProperties === false) closed.push(new Set(Object.keys(given)));
    }
    // the keys every closed part names (null: no part is closed)
    const allowed = closed.length === 0 ? null : new Set([...closed[0]].filter((n) => closed.every((c) => c.has(n))));
    const merged: Record<string, unknown> = {};
    for (const [name, subs] of properties) {
      if (allowed !== null && !allowed.has(name)) continue;
      const texts = subs.map((x) => JSON.stringify(x));
      const distinct = subs.filter((x, i) => x !== true && texts.indexOf(texts[i]) === i);
      merged[name] = distinct.length === 0 ? true : distinct.length === 1 ? distinct[0] : { allOf: distinct };
    }
    for (const r of required) {
      if (allowed !== null && !allowed.has(r)) throw new SchemaError(`required property "${r}" is outside a part whose additionalProperties is false: no object could be valid`, at);
    }
    return { type: 'object', properties: merged, required: [...required], ...(allowed === null ? {} : { additionalProperties: false }) };
  }

  /**
   * The values an enum or a const allows: both given, those of the enum equal to the const; and of
   * those, the ones of the schema's `type` and of a `format` it holds (allOf merges a part's
   * `{"type": "null"}` with another's enum this way). None left is a SchemaError.
   */
  function enumValues(o: Record<string, unknown>, at: string): unknown[] {
    let values = o.const !== undefined ? [o.const] : (o.enum as unknown[]);
    if (o.const !== undefined && Array.isArray(o.enum)) values = o.enum.filter((v) => JSON.stringify(v) === JSON.stringify(o.const));
    if (values.length === 0) throw new SchemaError('no value of "enum" equals "const"', at);
    const beside: string[] = [];
    if (o.type !== undefined) {
      const types = Array.isArray(o.type) ? (o.type as unknown[]).map(String) : [String(o.type)];
      for (const t of types) if (!TYPES.includes(t)) throw new SchemaError(`unknown type "${t}"`, at);
      values = values.filter((v) => types.some((t) => ofType(v, t)));
      beside.push(`type ${JSON.stringify(o.type)}`);
    }
    if (typeof o.format === 'string' && FORMAT_PATTERNS.has(o.format)) {
      const rule = stringRule({ format: o.format }, at)!;
      values = values.filter((v) => typeof v !== 'string' || ruleAccepts(rule, v));
      beside.push(`format "${o.format}"`);
    }
    if (values.length === 0) throw new SchemaError(`no value of ${o.const !== undefined ? '"const"' : '"enum"'} is of the schema's ${beside.join(' and ')}`, at);
    return values;
  }

  /** parts that are not objects, as one schema: their keywords united, each keyword's value the same wherever it is given */
  function unitedKeywords(parts: ReadonlyArray<{ part: Record<string, unknown>; at: string }>): Record<string, unknown> {
    const united: Record<string, unknown> = {};
    for (const { part, at: where } of parts) {
      for (const [k, v] of Object.entries(part)) {
        if (k === 'anyOf' || k === 'oneOf' || k === '$ref') throw new SchemaError(`"allOf" of several schemas is supported where none has "${k}"`, where);
        if (k in united && JSON.stringify(united[k]) !== JSON.stringify(v)) throw new SchemaError(`"allOf" of several schemas is supported where a keyword has one value in all of them ("${k}" differs)`, where);
        united[k] = v;
      }
    }
    return united;
  }

  /**
   * The keys of an object outside its properties: the node of their values (null: none allowed),
   * the rule their names meet (null: any string), and which declared names the rules allow.
   * `propertyNames` (Pydantic's dict[Literal[…], …], dict[UUID, …]; zod's record of a pattern or
   * an enum) holds every name; `patternProperties` of one pattern (Pydantic's dict of a
   * constrained str) holds the other keys to its pattern and their values to its schema. A key
   * matching no pattern is then not written even where additionalProperties is absent (which JSON
   * Schema allows with any value): the keys written are a subset of those allowed, and the ones
   * Pydantic accepts.
   */
  function otherKeys(o: Record<string, unknown>, at: string): { keys: KeyRule | null; additional: SchemaNode | null; namesAllowed: (name: string) => boolean } {
    const extra = o.additionalProperties;
    const pattern = o.patternProperties;
    if (pattern !== undefined && !constrainsNothing('patternProperties', o)) {
      if (pattern === null || typeof pattern !== 'object' || Array.isArray(pattern)) throw new SchemaError('"patternProperties" must be an object of patterns and schemas', at);
      const entries = Object.entries(pattern);
      if (entries.length > 1) throw new SchemaError(`"patternProperties" of ${entries.length} patterns is not supported (one pattern is)`, at);
      if (extra !== undefined && extra !== false) throw new SchemaError('"patternProperties" beside additionalProperties other than false is not supported (keys matching no pattern would need another schema)', at);
      if (o.propertyNames !== undefined) throw new SchemaError('"patternProperties" beside "propertyNames" is not supported', at);
      const [source, sub] = entries[0];
      const where = `${at}/patternProperties/${source.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      const keys = keyRule({ type: 'string', pattern: source }, where);
      // a declared property whose name matches the pattern would be held to both schemas
      const clash = Object.keys((o.properties ?? {}) as object).find((name) => keyAccepts(keys, name));
      if (clash !== undefined) throw new SchemaError(`property "${clash}" also matches patternProperties' pattern; a property held to both schemas is not supported`, at);
      return { keys, additional: compile(sub, where), namesAllowed: () => true };
    }
    const additional = extra === false ? null : extra === undefined || extra === true ? ANY : compile(extra, `${at}/additionalProperties`);
    const names = o.propertyNames;
    if (names === undefined || names === true) return { keys: null, additional, namesAllowed: () => true };
    // no name at all: only the empty object
    if (names === false) return { keys: null, additional: null, namesAllowed: () => false };
    const keys = keyRule(names, `${at}/propertyNames`);
    return { keys, additional, namesAllowed: (name) => keyAccepts(keys, name) };
  }

  /** A property-name schema as the rule of a key: a string schema (its type may be left out: names are strings) of an enum, a pattern, a format or lengths. */
  function keyRule(s: unknown, at: string): KeyRule | null {
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new SchemaError('"propertyNames" must be a schema (an object, or true or false)', at);
    const o = s as Record<string, unknown>;
    if (Object.keys(o).every((k) => k !== 'format' && ignorable(k, o))) return null;
    if (o.type !== undefined && o.type !== 'string') throw new SchemaError('"propertyNames" must describe strings (property names are strings)', at);
    // the string keywords alone (Pydantic writes {"maxLength": 5}, {"format": "uuid"}) are a string's
    const bare = o.type === undefined && ['pattern', 'format', 'minLength', 'maxLength'].some((k) => o[k] !== undefined) && !['enum', 'const', '$ref', 'anyOf', 'oneOf', 'allOf'].some((k) => o[k] !== undefined);
    const node = compile(bare ? { ...o, type: 'string' } : o, at);
    if (node.kind !== 'string') throw new SchemaError('"propertyNames" is supported as a string schema: an enum of strings, or a pattern, format and lengths', at);
    return node.allowed === null && node.rule === null ? null : { allowed: node.allowed, rule: node.rule };
  }

  /**
   * uniqueItems of an array whose items are scalars a generation can tell apart as they are
   * written (Pydantic's set[str], set[UUID], set[conint(…)], set[Literal[…]]): strings (any, of an
   * enum, or held to a pattern, format or lengths); integers (bounded or not, multipleOf too);
   * true, false, null and constants; and anyOf of these. Others (objects, arrays, fractions,
   * tuples) are refused, naming the keyword. Where minItems asks for more distinct values than
   * the items can take, that is refused too (a string rule's values are counted as
   * distinctValues finds them).
   */
  function uniqueItems(prefix: readonly SchemaNode[], items: SchemaNode | null, min: number, at: string): UniqueItems {
    if (prefix.length > 0) throw new SchemaError('"uniqueItems" beside tuple items ("prefixItems") is not supported', at);
    const finite: string[] = [];
    /** any string: values without end */
    let endless = false;
    /** distinct values counted beyond the finite ones, up to `min` (strings held to a rule, integers), and whether there are such items */
    let counted = 0;
    let countable = false;
    /** the value types of the options, a countable one marked (its values may be among another's of that type) */
    const types: Array<{ type: string; countable: boolean }> = [];
    const refuse = (what: string) => new SchemaError(`"uniqueItems" is supported on arrays of strings, integers, booleans, null and constants; not of ${what}`, `${at}/uniqueItems`);
    const add = (n: SchemaNode): void => {
      switch (n.kind) {
        case 'anyOf':
          n.options.forEach(add);
          return;
        case 'literal':
          finite.push(uniqueValue(n.text));
          types.push({ type: typeof JSON.parse(n.text), countable: false });
          return;
        case 'string':
          types.push({ type: 'string', countable: n.allowed === null && n.rule !== null });
          if (n.allowed !== null) finite.push(...n.allowed.map((w) => uniqueValue(`"${w}"`)));
          else if (n.rule === null) endless = true;
          else {
            countable = true;
            if (min <= 1) counted += 1;
            else {
              const { found, complete } = distinctValues(n.rule, min);
              if (!complete) throw new SchemaError(`minItems ${min} unique items: the items' string rule is too large to count ${min} distinct values of within the search's limits (found ${found})`, at);
              counted += found;
            }
          }
          return;
        case 'number': {
          // (a fraction has other texts of one value, 1.5 and 1.50, and a long one a double's
          // rounding: not told apart as written; integers are, up to MAX_UNIQUE_DIGITS digits)
          if (!n.integer) throw refuse('numbers other than integers');
          const widest = 10n ** BigInt(MAX_UNIQUE_DIGITS) - 1n;
          const all = countIntegers(n.range, -widest, widest);
          types.push({ type: 'number', countable: true });
          countable = true;
          counted += all > BigInt(min) ? min : Number(all);
          return;
        }
        default:
          throw refuse(n.kind === 'any' ? 'items of any type' : `${n.kind}s`);
      }
    };
    if (items === null) throw refuse('no items');
    add(items);
    const distinct = [...new Set(finite)];
    // counted options' values may be among another option's of their type (a pattern's strings and an enum's, two
    // ranges of integers): the sum would count them twice, and an array that cannot reach minItems would be begun
    const shared = types.find((t) => t.countable && types.filter((u) => u.type === t.type).length > 1);
    if (!endless && min > 1 && shared !== undefined) throw new SchemaError(`minItems ${min} unique items of anyOf options that may share values (${shared.type}s of two options) is not supported: the distinct values cannot be counted`, at);
    if (!endless && min > distinct.length + counted) {
      throw new SchemaError(`minItems ${min} unique items, but the items can take only ${distinct.length + counted} distinct values${counted > 0 ? ' (of the characters a generation looks for)' : ''}`, at);
    }
    return { finite: endless || countable ? null : distinct };
  }

  function typed(type: string, o: Record<string, unknown>, at: string): SchemaNode {
    switch (type) {
      case 'object': {
        const props = new Map<string, SchemaNode>();
        const names = new Map<string, string>();
        const given = o.properties ?? {};
        if (given === null || typeof given !== 'object' || Array.isArray(given)) throw new SchemaError('"properties" must be an object', at);
        if (Object.keys(given).length > MAX_PROPERTIES) throw new SchemaError(`${Object.keys(given).length} properties, more than the ${MAX_PROPERTIES} followed in one object`, at);
        const required = o.required ?? [];
        if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new SchemaError('"required" must be an array of property names', at);
        const { keys, additional, namesAllowed } = otherKeys(o, at);
        for (const [name, sub] of Object.entries(given)) {
          // a property no name rule admits can never be written (or, required, no object is valid)
          if (!namesAllowed(name)) {
            if ((required as string[]).includes(name)) throw new SchemaError(`required property "${name}" is not a name "propertyNames" allows: no object could be valid`, at);
            continue;
          }
          props.set(name, compile(sub, `${at}/properties/${name}`));
          names.set(name, written(name));
        }
        for (const r of required as string[]) {
          if (props.has(r)) continue;
          if (additional === null) throw new SchemaError(`required property "${r}" is not in "properties" and additionalProperties is false: no object could be valid`, at);
          if (!keyAccepts(keys, r)) throw new SchemaError(`required property "${r}" is not a name ${keys!.allowed !== null || o.propertyNames !== undefined ? '"propertyNames"' : 'the pattern of "patternProperties"'} allows: no object could be valid`, at);
        }
        return { kind: 'object', props, written: names, required: new Set(required as string[]), additional, keys, declared: [...props.keys()], order: new Map([...props.keys()].map((name, i) => [name, i])) };
      }
      case 'array': {
        const min = o.minItems ?? 0;
        const max = o.maxItems ?? Infinity;
        if (!Number.isSafeInteger(min) || (min as number) < 0) throw new SchemaError('"minItems" must be an integer ≥ 0', at);
        if (max !== Infinity && (!Number.isSafeInteger(max) || (max as number) < (min as number))) throw new SchemaError('"maxItems" must be an integer ≥ minItems', at);
        // a tuple: prefixItems, then items for the rest (JSON Schema 2020-12, Pydantic's tuples); or
        // items as an array, then additionalItems (draft 7)
        const [prefixKey, restKey] = o.prefixItems !== undefined ? ['prefixItems', 'items'] : Array.isArray(o.items) ? ['items', 'additionalItems'] : [null, 'items'];
        const given = prefixKey === null ? [] : o[prefixKey];
        if (!Array.isArray(given)) throw new SchemaError(`"${prefixKey}" must be an array of schemas`, at);
        const prefix = given.map((x, i) => compile(x, `${at}/${prefixKey}/${i}`));
        const restGiven = o[restKey];
        const items = restGiven === false ? null : restGiven === undefined || restGiven === true ? ANY : compile(restGiven, `${at}/${restKey}`);
        const upTo = items === null ? Math.min(max as number, prefix.length) : (max as number);
        if ((min as number) > upTo) throw new SchemaError(`minItems ${min as number} is more than the ${upTo} items the array may have`, at);
        const unique = o.uniqueItems === true && !constrainsNothing('uniqueItems', o) ? uniqueItems(prefix, items, min as number, at) : null;
        return { kind: 'array', prefix, items, min: min as number, max: upTo, unique };
      }
      case 'string':
        return { kind: 'string', allowed: null, rule: stringRule(o, at) };
      case 'number':
      case 'integer': {
        // a number that is a multiple of a whole number is an integer: held to integers' digits
        const integer = type === 'integer' || (typeof o.multipleOf === 'number' && Number.isSafeInteger(o.multipleOf) && o.multipleOf > 0);
        const range = numberRange(o, at, integer);
        if (range !== null && integer && !hasInteger(range)) throw new SchemaError('the bounds leave no integer', at);
        return { kind: 'number', integer, range };
      }
      case 'boolean':
        return { kind: 'anyOf', options: [{ kind: 'literal', text: 'true' }, { kind: 'literal', text: 'false' }] };
      default:
        return { kind: 'literal', text: 'null' };
    }
  }

  const node = compile(schema, '');
  const top = node.kind === 'anyOf' ? node.options : [node];
  if (topLevel === 'object' && !top.every((n) => n.kind === 'object')) throw new SchemaError('the top level must be an object ("type": "object")', '');
  return node;
}
