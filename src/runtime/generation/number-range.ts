/**
 * A JSON schema's bounds on a number (`minimum`, `maximum`, `exclusiveMinimum`,
 * `exclusiveMaximum`: Pydantic's ge, le, gt and lt; and a whole `multipleOf`, its multiple_of, on
 * an integer or on a number, which it makes one), followed as the number is written: a prefix
 * of a number is viable only where some number it can still become lies within the bounds, so the
 * text never reaches a number that nothing completes.
 *
 * The arithmetic is exact: the bounds and the prefixes are decimals, compared as BigInt integers
 * scaled to a common power of ten (a float would misjudge 0.1 + 0.2 against 0.3). What a prefix
 * can become is a union of intervals: more integer digits (each count k gives
 * [v·10^k, (v+1)·10^k), or the integers there), then a fraction; after the point, the fraction so
 * far and anything after it. A bounded number takes no exponent (`1e3`): the model writes it in
 * plain digits, which every JSON reader takes alike.
 */
import { SchemaError } from './json-schema.js';

/** Bounds as exact decimals: value = int / 10^scale. */
export interface NumberRange {
  min: Decimal | null;
  max: Decimal | null;
  minExclusive: boolean;
  maxExclusive: boolean;
  /** an integer's multipleOf (null: none) */
  step: bigint | null;
}

interface Decimal {
  int: bigint;
  scale: number;
}

/** Most digits of an integer with a multipleOf (numberRange): within them a double holds every integer exactly. */
export const MAX_STEPPED_DIGITS = 15;

/** The bounds of a number schema `o` (`integer`: of an integer one, which may also have a multipleOf); null where it has none. */
export function numberRange(o: Record<string, unknown>, at: string, integer = false): NumberRange | null {
  const bound = (key: string): Decimal | null => {
    const v = o[key];
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(`"${key}" must be a finite number`, at);
    return decimalOf(v);
  };
  const min = bound('minimum');
  const max = bound('maximum');
  const xmin = bound('exclusiveMinimum');
  const xmax = bound('exclusiveMaximum');
  let step: bigint | null = null;
  if (o.multipleOf !== undefined) {
    const m = o.multipleOf;
    // a number's multiples of a fraction are exact in decimals, but validators judge them in floats
    // (Ajv finds 0.3 no multiple of 0.1): whole multipleOf only, which makes the number an integer
    if (!integer) throw new SchemaError('"multipleOf" is supported only as a whole number (a fraction\'s multiples are judged in floats by validators, which would refuse some of the decimals written)', at);
    if (typeof m !== 'number' || !Number.isSafeInteger(m) || m <= 0) throw new SchemaError('"multipleOf" must be a positive integer', at);
    step = BigInt(m);
  }
  if (min === null && max === null && xmin === null && xmax === null && step === null) return null;
  // where both kinds bound one side, the tighter one holds
  let [lo, loX] = tighter(min, xmin, 1);
  let [hi, hiX] = tighter(max, xmax, -1);
  if (lo !== null && hi !== null && (compare(lo, hi) > 0 || (compare(lo, hi) === 0 && (loX || hiX)))) throw new SchemaError('the bounds leave no number', at);
  if (step !== null) {
    // JavaScript's validators (Ajv) judge multipleOf in doubles, which hold integers exactly only
    // within ±2^53: a multiple of 5 of 23 digits reads there as one that is not. So an integer with
    // a multipleOf is written within ±(10^15 − 1), where text, double and value agree.
    const safe = 10n ** BigInt(MAX_STEPPED_DIGITS) - 1n;
    if (lo === null || compare(lo, { int: -safe, scale: 0 }) < 0) [lo, loX] = [{ int: -safe, scale: 0 }, false];
    if (hi === null || compare(hi, { int: safe, scale: 0 }) > 0) [hi, hiX] = [{ int: safe, scale: 0 }, false];
    if (compare(lo, hi) > 0) throw new SchemaError(`the bounds leave no integer of at most ${MAX_STEPPED_DIGITS} digits, the most written with a multipleOf`, at);
  }
  return { min: lo, max: hi, minExclusive: loX, maxExclusive: hiX, step };
}

/** of an inclusive and an exclusive bound on one side, the one that holds (`dir` 1: lower bounds, −1: upper) */
function tighter(inclusive: Decimal | null, exclusive: Decimal | null, dir: number): [Decimal | null, boolean] {
  if (exclusive === null) return [inclusive, false];
  if (inclusive === null) return [exclusive, true];
  const c = compare(exclusive, inclusive) * dir;
  return c >= 0 ? [exclusive, true] : [inclusive, false];
}

/** A JavaScript number as the exact decimal of its shortest representation. */
export function decimalOf(n: number): Decimal {
  return parseDecimal(String(n))!;
}

/** `text` (JSON's number syntax, an exponent allowed) as an exact decimal; null where it is none. */
export function parseDecimal(text: string): Decimal | null {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (m === null) return null;
  const [, sign, whole, fraction = '', exponent = '0'] = m;
  let int = BigInt(whole + fraction);
  let scale = fraction.length - Number(exponent);
  if (scale < 0) {
    int *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { int: sign === '-' ? -int : int, scale };
}

function compare(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const x = a.int * 10n ** BigInt(scale - a.scale);
  const y = b.int * 10n ** BigInt(scale - b.scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** whether the value `v` lies within the range (and is a multiple of its step) */
export function inRange(range: NumberRange, v: Decimal): boolean {
  if (range.step !== null && (v.int % 10n ** BigInt(v.scale) !== 0n || (v.int / 10n ** BigInt(v.scale)) % range.step !== 0n)) return false;
  if (range.min !== null) {
    const c = compare(v, range.min);
    if (c < 0 || (c === 0 && range.minExclusive)) return false;
  }
  if (range.max !== null) {
    const c = compare(v, range.max);
    if (c > 0 || (c === 0 && range.maxExclusive)) return false;
  }
  return true;
}

/** whether some value of the interval from `a` to `b` (`a` < `b`; `a` included where `aIn`, `b` where `bIn`) lies within the range */
function meets(range: NumberRange, a: Decimal, b: Decimal, aIn: boolean, bIn: boolean): boolean {
  if (range.step !== null) return meetsStep(range, a, b);
  if (range.max !== null) {
    // the interval must start at or below the top
    const c = compare(a, range.max);
    if (c > 0 || (c === 0 && (!aIn || range.maxExclusive))) return false;
  }
  if (range.min !== null) {
    // and end at or above the bottom
    const c = compare(b, range.min);
    if (c < 0 || (c === 0 && (!bIn || range.minExclusive))) return false;
  }
  return true;
}

/**
 * Whether the number prefix `text` (JSON's syntax, no exponent: what numberStep admits before it)
 * can still become a number within the range. `integer`: no fraction may follow.
 */
export function numberPrefixViable(given: NumberRange, text: string, integer: boolean): boolean {
  // an integer's bounds, made inclusive integers, so that intervals of integers are judged exactly
  const range = integer ? integerBounds(given) : given;
  const negative = text.startsWith('-');
  const body = negative ? text.slice(1) : text;
  if (body === '') return meets(range, ...wholeLine(negative));
  const point = body.indexOf('.');
  const whole = point < 0 ? body : body.slice(0, point);
  const fraction = point < 0 ? null : body.slice(point + 1);
  const signed = (int: bigint, scale: number): Decimal => ({ int: negative ? -int : int, scale });
  /** the values from |lo| to |hi| (magnitudes, lo below hi) as a signed interval, ends included as given */
  const span = (lo: Decimal, hi: Decimal, loIn: boolean, hiIn: boolean): boolean => (negative ? meets(range, signed(hi.int, hi.scale), signed(lo.int, lo.scale), hiIn, loIn) : meets(range, lo, hi, loIn, hiIn));
  if (fraction !== null) {
    // after the point: the fraction so far and any digits after it, from the value itself (more zeros) up to the next step of its last digit
    const scale = fraction.length;
    const v = BigInt(whole + fraction);
    return span({ int: v, scale }, { int: v + 1n, scale }, true, false);
  }
  const v = BigInt(whole);
  // the number as it is
  if (span({ int: v, scale: 0 }, { int: v, scale: 0 }, true, true)) return true;
  // a fraction after it: (v, v + 1)
  if (!integer && span({ int: v, scale: 0 }, { int: v + 1n, scale: 0 }, false, false)) return true;
  if (whole === '0') return false; // JSON allows no digit after a leading 0
  // more integer digits: k of them give the values from v·10^k to (v+1)·10^k (exclusive), integers only where `integer`
  const limit = magnitudeLimit(negative ? range.min : range.max);
  for (let k = 1n, p = 10n; ; k++, p *= 10n) {
    const lo = v * p;
    if (limit !== null && lo > limit) return false;
    const hi = integer ? (v + 1n) * p - 1n : (v + 1n) * p;
    if (span({ int: lo, scale: 0 }, { int: hi, scale: 0 }, true, integer)) return true;
    if (k > 400n) return false;
  }
}

/**
 * The magnitude past which more integer digits cannot come back within the range: that of the
 * bound the values grow towards (the maximum for a positive number, the minimum for a negative
 * one); null where the range is open that way (more digits then reach it).
 */
function magnitudeLimit(bound: Decimal | null): bigint | null {
  if (bound === null) return null;
  const p = 10n ** BigInt(bound.scale);
  const a = bound.int < 0n ? -bound.int : bound.int;
  return (a + p - 1n) / p;
}

/** what a number with only its sign written can become: any value of that sign (−0 is 0) */
function wholeLine(negative: boolean): [Decimal, Decimal, boolean, boolean] {
  const far = { int: 10n ** 400n, scale: 0 };
  return negative ? [{ int: -far.int, scale: 0 }, { int: 0n, scale: 0 }, true, true] : [{ int: 0n, scale: 0 }, far, true, true];
}

const integerForms = new WeakMap<NumberRange, NumberRange>();

/** the range's integers as an inclusive range of integers (min rounded up, max down; exclusive ends stepped past) */
function integerBounds(range: NumberRange): NumberRange {
  let r = integerForms.get(range);
  if (r === undefined) {
    const floor = (d: Decimal): bigint => {
      const p = 10n ** BigInt(d.scale);
      const q = d.int / p;
      return d.int < 0n && q * p !== d.int ? q - 1n : q;
    };
    const isInt = (d: Decimal) => d.int % 10n ** BigInt(d.scale) === 0n;
    const lo = range.min === null ? null : isInt(range.min) ? floor(range.min) + (range.minExclusive ? 1n : 0n) : floor(range.min) + 1n;
    const hi = range.max === null ? null : isInt(range.max) ? floor(range.max) - (range.maxExclusive ? 1n : 0n) : floor(range.max);
    r = { min: lo === null ? null : { int: lo, scale: 0 }, max: hi === null ? null : { int: hi, scale: 0 }, minExclusive: false, maxExclusive: false, step: range.step };
    integerForms.set(range, r);
  }
  return r;
}

/** whether an integer schema's bounds leave any integer (a multiple of its step) */
export function hasInteger(range: NumberRange): boolean {
  const r = integerBounds(range);
  const far = 10n ** 400n;
  return meetsStep({ ...r, step: r.step ?? 1n }, { int: -far, scale: 0 }, { int: far, scale: 0 });
}

/**
 * For an integer range with a step (its bounds inclusive integers, integerBounds): whether the
 * integers from `a` to `b` (both included) hold a multiple of the step within the bounds.
 */
function meetsStep(range: NumberRange, a: Decimal, b: Decimal): boolean {
  const lo = range.min !== null && range.min.int > a.int ? range.min.int : a.int;
  const hi = range.max !== null && range.max.int < b.int ? range.max.int : b.int;
  if (lo > hi) return false;
  const k = range.step!;
  // the first multiple of k at or above lo
  const r = ((lo % k) + k) % k;
  const first = r === 0n ? lo : lo + (k - r);
  return first <= hi;
}

/**
 * How many integers from `a` to `b` (both included) an integer schema's bounds and multipleOf
 * take (`range` null: every one): what an item of unique integers (schema-prefix.ts) counts to
 * know whether a value not given yet is left.
 */
export function countIntegers(range: NumberRange | null, a: bigint, b: bigint): bigint {
  let lo = a;
  let hi = b;
  let k = 1n;
  if (range !== null) {
    const r = integerBounds(range);
    if (r.min !== null && r.min.int > lo) lo = r.min.int;
    if (r.max !== null && r.max.int < hi) hi = r.max.int;
    k = r.step ?? 1n;
  }
  if (lo > hi) return 0n;
  // multiples of k in [lo, hi]: floor(hi / k) − ceil(lo / k) + 1
  const floorDiv = (x: bigint) => (x >= 0n ? x / k : -((-x + k - 1n) / k));
  const ceilDiv = (x: bigint) => -floorDiv(-x);
  const count = floorDiv(hi) - ceilDiv(lo) + 1n;
  return count > 0n ? count : 0n;
}
