/**
 * Whether a text can still become a JSON value valid under a compiled schema (json-schema.ts),
 * read one character at a time: what JSON mode's constraint (grammar-constraint.ts) asks of every
 * candidate token when the request gives `response_format: {"type": "json_schema", …}`.
 *
 * The state is a set of alternatives (anyOf's options are followed side by side until the text
 * tells them apart), each a stack of frames kept as a linked list of immutable frames, so a copy
 * costs nothing and a character replaces only the frames it changes. An object's properties come
 * in the schema's order, optional ones possibly left out (OpenAI's and vLLM's structured outputs
 * write them so; other keys, where allowed, at any point), and it only closes once its required
 * properties are there; a comma is only taken where another key or item can follow,
 * so the text never reaches a point where nothing could complete it. Keys of objects without
 * additionalProperties, and strings of an enum, must be written as JSON.stringify writes them.
 * Between two tokens of the JSON at most `maxWhitespace` whitespace characters, of which at most
 * `maxNewlines` line breaks, as JsonPrefix.
 */
import { isDigit, isPlain, isSpace, nextEscape, numberComplete, numberStep, type Escape } from './json-chars.js';
import { MAX_UNIQUE_DIGITS, uniqueValue, type SchemaNode } from './json-schema.js';
import type { DfaState } from './regex-prefix.js';
import { PROBE_CHARACTERS, type StringRule } from './string-rules.js';
import { countIntegers, inRange, numberPrefixViable, parseDecimal, type NumberRange } from './number-range.js';

type ObjectNode = Extract<SchemaNode, { kind: 'object' }>;
type ArrayNode = Extract<SchemaNode, { kind: 'array' }>;

type Frame =
  /** a value of `node` comes next */
  | { t: 'value'; node: SchemaNode }
  /** inside an object: phase 0 after '{' (a key or '}'), 1 after ',' (a key), 2 after a key (':'), 3 after a value (',' or '}') */
  | { t: 'object'; node: ObjectNode; seen: readonly string[]; phase: 0 | 1 | 2 | 3; key: string }
  /**
   * a key being written (`typed`: its text so far, between the quotes); `ruled`: where the
   * object's other keys are held to a string rule (node.keys.rule), that rule's state on the same
   * text (null once the text can be no such key, or where there is no rule)
   */
  | { t: 'key'; node: ObjectNode; seen: readonly string[]; typed: string; esc: Escape; ruled: RuledString | null }
  /**
   * inside an array: phase 0 after '[' (a value or ']'), 1 after ',' (a value), 2 after a value
   * (',' or ']'); `seen`: with uniqueItems, the items so far (uniqueValue), else empty
   */
  | { t: 'array'; node: ArrayNode; count: number; phase: 0 | 1 | 2; seen: readonly string[] }
  /** a string being written; `allowed` as in the node (null: any), `typed` kept only then or where `keep` (an item of unique items) */
  | { t: 'string'; allowed: readonly string[] | null; typed: string; esc: Escape; rule: null; keep: boolean }
  /**
   * a string held to a rule (string-rules.ts), read as its decoded value: each regex's state,
   * the code points so far, a \u escape's value so far, a high surrogate waiting for its low one
   * (0: none); `kept`: the value so far where it is an item of unique items, else null
   */
  | { t: 'string'; allowed: null; typed: ''; esc: Escape; rule: StringRule; dfas: readonly DfaState[]; len: number; hex: number; high: number; kept: string | null }
  /** a number, in json-chars.ts's numberStep phases; with bounds (`range`) or where `keep` (an item of unique items), its text so far */
  | { t: 'number'; integer: boolean; phase: number; range: NumberRange | null; text: string; keep: boolean }
  /** a literal being written, `pos` characters of `text` read */
  | { t: 'literal'; text: string; pos: number };

interface Stack {
  frame: Frame;
  below: Stack | null;
}

/** One alternative: its frames (null: the value is complete) and the whitespace run outside strings (characters, line breaks). */
interface Path {
  stack: Stack | null;
  spaces: number;
  newlines: number;
}

/** the whitespace run a path carries */
type Run = Pick<Path, 'spaces' | 'newlines'>;

/** most alternatives followed at once (anyOf's options still told apart) */
export const MAX_PATHS = 1024;

const on = (frame: Frame, below: Stack | null): Stack => ({ frame, below });

/** frame ids in keys: objects and nodes are named by first appearance */
const nodeIds = new WeakMap<object, number>();
let nextNodeId = 1;
const idOf = (node: object) => {
  let id = nodeIds.get(node);
  if (id === undefined) nodeIds.set(node, (id = nextNodeId++));
  return id;
};

export class SchemaPrefix {
  private paths: Path[];

  constructor(
    private readonly root: SchemaNode,
    private readonly maxWhitespace = 32,
    private readonly maxNewlines = 1,
  ) {
    this.paths = [{ stack: on({ t: 'value', node: root }, null), spaces: 0, newlines: 0 }];
  }

  clone(): SchemaPrefix {
    return new SchemaPrefix(this.root, this.maxWhitespace, this.maxNewlines).copyFrom(this);
  }

  /** Makes this state equal to `other` (made from the same schema and options). */
  copyFrom(other: SchemaPrefix): this {
    this.paths = other.paths; // paths are never changed in place
    return this;
  }

  /** the value is complete (the top-level object has closed) */
  get complete(): boolean {
    return this.paths.some((p) => p.stack === null);
  }

  /** inside a string any character may come next (not an enum's or a fixed key's) */
  get inString(): boolean {
    return this.paths.some((p) => p.stack !== null && ((p.stack.frame.t === 'string' && p.stack.frame.allowed === null && freeNext(p.stack.frame)) || (p.stack.frame.t === 'key' && keyTakesAnyNext(p.stack.frame))));
  }

  /**
   * every alternative inside a free string (no enum, no rule, no escape begun), or a key of any name
   * (additionalProperties without a name rule): a character a string takes as it is always fits
   * (GrammarState.plainRun), so a screen takes a piece of only such characters without reading it
   */
  get plainRun(): boolean {
    return this.paths.every((p) => {
      const f = p.stack?.frame;
      if (f === undefined) return false;
      if (f.t === 'string') return f.allowed === null && f.rule === null && f.esc === 0;
      return f.t === 'key' && f.esc === 0 && f.node.additional !== null && f.node.keys === null;
    });
  }

  /**
   * Where every alternative is inside an object's key or inside an item of unique items held to a
   * rule (set[UUID]'s), no escape begun: what a piece without `"` or `\\` meets there
   * (GrammarState.interiorKey), which is the frame without its text. The text matters to such a
   * piece only through the values it may still become or must not (a key: the declared names that
   * may come next, an enum's names not given, the names a rule's key may not repeat; an item: the
   * items given), so their remainders after it stand for it; the rule's state and the node stand
   * for themselves.
   */
  get interiorKey(): string | undefined {
    const parts: string[] = [];
    for (const p of this.paths) {
      const f = p.stack?.frame;
      if (f !== undefined && f.t === 'key' && f.esc === 0) parts.push(keyInterior(f));
      else if (f !== undefined && f.t === 'string' && f.rule !== null && f.kept !== null && f.esc === 0 && f.high === 0) {
        const given = remaindersAfter(givenStrings(uniqueSeen(p.stack!.below)!), f.kept);
        parts.push(`U${frameKey({ ...f, kept: null })}:${JSON.stringify(given)}`);
      } else return undefined;
    }
    return `${parts.sort().join('|')}#${idOf(this.root)}`;
  }

  /** inside a string, a key's or a value's (enum strings and held ones too) */
  get inValueString(): boolean {
    return this.paths.some((p) => p.stack !== null && (p.stack.frame.t === 'string' || p.stack.frame.t === 'key'));
  }

  /** The whole state as a string: equal keys accept the same texts. */
  get key(): string {
    return this.paths.map(pathKey).sort().join('|') + `#${idOf(this.root)},${this.maxWhitespace},${this.maxNewlines}`;
  }

  /** Reads `text`; false as soon as no alternative can be completed (the state is then unspecified). */
  push(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
      // inside one free string, a run of plain characters changes nothing: skip it without a step
      // (a screen reads most of a vocabulary this way, inside a string value); inside a string that
      // keeps its text (an item of unique items) or a key of any name, the run is appended in one
      if (this.paths.length === 1) {
        const stack = this.paths[0].stack;
        const top = stack?.frame;
        if (top !== undefined && top.t === 'string' && top.allowed === null && top.rule === null && top.esc === 0 && !top.keep) {
          while (i < text.length && isPlain(text.charCodeAt(i))) i++;
          if (i === text.length) break;
        } else if (top !== undefined && ((top.t === 'string' && top.esc === 0 && top.allowed === null && top.rule === null) || (top.t === 'key' && top.esc === 0 && top.node.additional !== null && top.node.keys === null))) {
          let j = i;
          while (j < text.length && isPlain(text.charCodeAt(j))) j++;
          if (j > i + 1) {
            this.paths = [{ ...this.paths[0], stack: on({ ...top, typed: top.typed + text.slice(i, j) }, stack!.below) }];
            i = j - 1;
            continue;
          }
        }
      }
      const c = text.charCodeAt(i);
      const next: Path[] = [];
      for (const p of this.paths) this.step(p, c, next);
      if (next.length === 0) return false;
      this.paths = next.length > 1 ? dedupe(next) : next;
      // anyOf inside anyOf multiplies the alternatives; past this many the text is not followed
      // (the request then ends with "no token can continue"), rather than the thread held
      if (this.paths.length > MAX_PATHS) return false;
    }
    return true;
  }

  private step(p: Path, c: number, out: Path[]): void {
    if (p.stack === null) return; // nothing follows a complete value
    const f = p.stack.frame;
    const below = p.stack.below;
    const inText = f.t === 'string' || f.t === 'key';
    if (!inText && isSpace(c)) {
      // whitespace ends a number; elsewhere (between tokens) it is only counted
      if (f.t === 'number') {
        if (numberEnds(f)) {
          const after = f.keep ? itemDone(below, f.text) : below;
          if (after !== false) this.step({ stack: after, spaces: p.spaces, newlines: p.newlines }, c, out);
        }
        return;
      }
      if (f.t === 'literal') return;
      const newlines = p.newlines + (c === 0x0a ? 1 : 0);
      if (p.spaces + 1 <= this.maxWhitespace && newlines <= this.maxNewlines) out.push({ stack: p.stack, spaces: p.spaces + 1, newlines });
      return;
    }
    const run: Run = inText ? p : { spaces: 0, newlines: 0 };
    const push = (stack: Stack | null) => out.push({ stack, spaces: run.spaces, newlines: run.newlines });
    switch (f.t) {
      case 'value':
        this.start(f.node, below, c, run, out);
        return;
      case 'object': {
        const n = f.node;
        if (f.phase === 2) {
          if (c === 0x3a) push(on({ t: 'value', node: n.props.get(f.key) ?? n.additional! }, on({ ...f, phase: 3, seen: [...f.seen, f.key] }, below)));
          return;
        }
        if (c === 0x7d && (f.phase === 0 || f.phase === 3)) {
          if ([...n.required].every((r) => f.seen.includes(r))) push(below);
          return;
        }
        if (c === 0x2c && f.phase === 3) {
          if (keyCanFollow(n, f.seen)) push(on({ ...f, phase: 1 }, below));
          return;
        }
        if (c === 0x22 && (f.phase === 0 || f.phase === 1) && keyCanFollow(n, f.seen)) {
          const ruled = n.additional !== null && n.keys?.rule ? ruledStart(n.keys.rule) : null;
          push(on({ t: 'key', node: n, seen: f.seen, typed: '', esc: 0, ruled }, below));
        }
        return;
      }
      case 'key': {
        const n = f.node;
        if (f.esc === 0 && c === 0x22) {
          // the key is complete: a property not yet given, or any other key where others are allowed (and its name rule takes it)
          const name = nameOf(n, f.typed);
          if (name !== null && mayFollow(n, f.seen, name) && (n.order.has(name) || otherKeyCloses(f))) push(on({ t: 'object', node: n, seen: f.seen, phase: 2, key: name }, below));
          return;
        }
        const esc = nextEscape(f.esc, c);
        if (esc < 0) return;
        const typed = f.typed + String.fromCharCode(c);
        let ruled = f.ruled === null ? null : ruledKeyStep(f.ruled, c);
        // a key the rule can only complete to names already given (or declared) is no other key
        if (ruled !== null && esc === 0 && ruled.high === 0 && !otherKeyViable(n, f.seen, typed, ruled)) ruled = null;
        if (!declaredKeyCanBegin(n, f.seen, typed) && !otherKeyCanBegin(n, f.seen, typed, ruled)) return;
        push(on({ ...f, typed, esc, ruled }, below));
        return;
      }
      case 'array': {
        const n = f.node;
        if (c === 0x5d && (f.phase === 0 || f.phase === 2)) {
          if (f.count >= n.min) push(below);
          return;
        }
        if (c === 0x2c && f.phase === 2) {
          // with uniqueItems, another item only while a value not given yet is left
          if (f.count < n.max && (n.unique === null || newItemPossible(n, f.seen))) push(on({ ...f, phase: 1 }, below));
          return;
        }
        if (f.phase === 2 || f.count >= n.max) return;
        this.start(n.prefix[f.count] ?? n.items!, on({ ...f, phase: 2, count: f.count + 1 }, below), c, run, out);
        return;
      }
      case 'string': {
        if (f.rule !== null) {
          if (f.kept === null) ruledStringStep(f, c, below, push);
          else uniqueRuledStep(f, c, below, push);
          return;
        }
        if (f.esc === 0 && c === 0x22) {
          // (an item of unique items: one not given yet)
          if (f.allowed === null || f.allowed.includes(f.typed)) {
            if (f.keep || f.allowed !== null) pushItem(below, `"${f.typed}"`, push);
            else push(below);
          }
          return;
        }
        const esc = nextEscape(f.esc, c);
        if (esc < 0) return;
        if (f.allowed === null) {
          if (f.keep) push(on({ ...f, typed: f.typed + String.fromCharCode(c), esc }, below));
          else push(esc === f.esc && esc === 0 ? p.stack : on({ ...f, esc }, below));
          return;
        }
        const typed = f.typed + String.fromCharCode(c);
        const seen = uniqueSeen(below);
        if (f.allowed.some((a) => a.startsWith(typed) && (seen === null || !seen.includes(uniqueValue(`"${a}"`))))) push(on({ ...f, typed, esc }, below));
        return;
      }
      case 'number': {
        const phase = numberStep(f.phase, c, f.integer);
        if (phase > 0) {
          if (f.keep) {
            // an item of unique items (an integer): its text kept, and never one that can only be an integer given already
            const text = f.text + String.fromCharCode(c);
            if (uniqueIntegerViable(text, f.range, uniqueSeen(below)!)) push(on({ ...f, phase, text }, below));
          } else if (f.range === null) push(on({ ...f, phase }, below));
          else if (phase < EXPONENT) {
            const text = f.text + String.fromCharCode(c);
            if (numberPrefixViable(f.range, text, f.integer)) push(on({ ...f, phase, text }, below));
          }
        } else if (numberEnds(f)) {
          // the number ended: c belongs to what holds it (an array of unique items takes it only as a new value)
          const after = f.keep ? itemDone(below, f.text) : below;
          if (after !== false) this.step({ stack: after, ...run }, c, out);
        }
        return;
      }
      case 'literal': {
        if (c !== f.text.charCodeAt(f.pos)) return;
        if (f.pos + 1 === f.text.length) pushItem(below, f.text, push);
        else push(on({ ...f, pos: f.pos + 1 }, below));
        return;
      }
    }
  }

  /** a value of `node` beginning with c, above `below` */
  private start(node: SchemaNode, below: Stack | null, c: number, run: Run, out: Path[]): void {
    const push = (stack: Stack | null) => out.push({ stack, spaces: run.spaces, newlines: run.newlines });
    switch (node.kind) {
      case 'anyOf':
        for (const option of node.options) this.start(option, below, c, run, out);
        return;
      case 'any':
        if (c === 0x7b) push(on({ t: 'object', node: ANY_OBJECT, seen: [], phase: 0, key: '' }, below));
        else if (c === 0x5b) push(on({ t: 'array', node: ANY_ARRAY, count: 0, phase: 0, seen: [] }, below));
        else if (c === 0x22) push(on({ t: 'string', allowed: null, typed: '', esc: 0, rule: null, keep: false }, below));
        else if (c === 0x2d || isDigit(c)) this.start(ANY_NUMBER, below, c, run, out);
        else for (const text of ['true', 'false', 'null']) this.start({ kind: 'literal', text }, below, c, run, out);
        return;
      case 'object':
        if (c === 0x7b) push(on({ t: 'object', node, seen: [], phase: 0, key: '' }, below));
        return;
      case 'array':
        if (c === 0x5b) push(on({ t: 'array', node, count: 0, phase: 0, seen: [] }, below));
        return;
      case 'string': {
        if (c !== 0x22) return;
        const seen = uniqueSeen(below);
        // an item of unique items: a string of an enum only where some value of it is not given yet
        if (seen !== null && node.allowed !== null && !valueLeft(node, seen)) return;
        if (node.rule === null || node.allowed !== null) push(on({ t: 'string', allowed: node.allowed, typed: '', esc: 0, rule: null, keep: seen !== null && node.allowed === null }, below));
        else if (seen === null) push(on(ruledStart(node.rule), below));
        else {
          // an item of unique items held to a rule: begun only where a value not given yet can be written
          const first = ruledStart(node.rule, '');
          if (awayFrom(givenStrings(seen), '', first)) push(on(first, below));
        }
        return;
      }
      case 'number': {
        const phase = numberStep(0, c, node.integer);
        if (phase === 0) return;
        const seen = uniqueSeen(below);
        const keep = seen !== null;
        const text = node.range === null && !keep ? '' : String.fromCharCode(c);
        if (keep && !uniqueIntegerViable(text, node.range, seen)) return;
        if (node.range === null || numberPrefixViable(node.range, text, node.integer)) push(on({ t: 'number', integer: node.integer, phase, range: node.range, text, keep }, below));
        return;
      }
      case 'literal': {
        if (c !== node.text.charCodeAt(0)) return;
        // an item of unique items: a value not given yet
        if (uniqueSeen(below)?.includes(uniqueValue(node.text))) return;
        if (node.text.length > 1) push(on({ t: 'literal', text: node.text, pos: 1 }, below));
        else pushItem(below, node.text, push);
        return;
      }
    }
  }
}

const ANY_OBJECT: ObjectNode = { kind: 'object', props: new Map(), written: new Map(), required: new Set(), additional: { kind: 'any' }, keys: null, declared: [], order: new Map() };
const ANY_ARRAY: ArrayNode = { kind: 'array', prefix: [], items: { kind: 'any' }, min: 0, max: Infinity, unique: null };
const ANY_NUMBER: SchemaNode = { kind: 'number', integer: false, range: null };

/** the items given so far of the array of unique items `below` holds a value of; null where it is no such array */
function uniqueSeen(below: Stack | null): readonly string[] | null {
  const f = below?.frame;
  return f !== undefined && f.t === 'array' && f.node.unique !== null ? f.seen : null;
}

/**
 * The stack after an item `json` of the array below is complete: with uniqueItems the item joins
 * the array's given ones, or false where it is one of them (the text is refused there).
 */
function itemDone(below: Stack | null, json: string): Stack | null | false {
  const seen = uniqueSeen(below);
  if (seen === null) return below;
  const value = uniqueValue(json);
  if (seen.includes(value)) return false;
  const f = below!.frame as Extract<Frame, { t: 'array' }>;
  return on({ ...f, seen: [...seen, value] }, below!.below);
}

/** itemDone's stack pushed, unless the item was given already */
function pushItem(below: Stack | null, json: string, push: (stack: Stack | null) => void): void {
  const after = itemDone(below, json);
  if (after !== false) push(after);
}

/**
 * The integers (as inclusive intervals) an integer's text so far, an item of unique items, can
 * still become, of at most MAX_UNIQUE_DIGITS digits: each count of further digits gives one
 * interval; 0 and -0 take nothing more (and are one value); '' and '-' may become any of them.
 */
function integerCompletions(text: string): Array<[bigint, bigint]> {
  const negative = text.startsWith('-');
  const body = negative ? text.slice(1) : text;
  const widest = 10n ** BigInt(MAX_UNIQUE_DIGITS) - 1n;
  if (body === '') return [negative ? [-widest, 0n] : [-widest, widest]];
  if (body.length > MAX_UNIQUE_DIGITS) return [];
  if (body === '0') return [[0n, 0n]];
  const v = BigInt(body);
  const spans: Array<[bigint, bigint]> = [];
  for (let digits = body.length, p = 1n; digits <= MAX_UNIQUE_DIGITS; digits++, p *= 10n) {
    const lo = v * p;
    const hi = (v + 1n) * p - 1n;
    spans.push(negative ? [-hi, -lo] : [lo, hi]);
  }
  return spans;
}

/**
 * Whether an integer's text so far, an item of unique items (bounded by `range`, or not), can
 * still become an integer not given yet. Its completions within the range are distinct values, so
 * it can exactly where the given ones among them are fewer than all of them (countIntegers).
 */
function uniqueIntegerViable(text: string, range: NumberRange | null, seen: readonly string[]): boolean {
  const spans = integerCompletions(text);
  let given = 0n;
  for (const v of seen) {
    // (an integer of at most MAX_UNIQUE_DIGITS digits has its plain text as its canonical form; an anyOf's other numbers are not among the completions)
    if (!/^n-?\d+$/.test(v)) continue;
    const x = BigInt(v.slice(1));
    if (spans.some(([a, b]) => a <= x && x <= b) && countIntegers(range, x, x) === 1n) given++;
  }
  let all = 0n;
  for (const [a, b] of spans) {
    all += countIntegers(range, a, b);
    if (all > given) return true;
  }
  return false;
}

/** the strings among an array's given items (uniqueValue's forms) */
const givenStrings = (seen: readonly string[]): string[] => seen.filter((v) => v.startsWith('s')).map((v) => v.slice(1));

/** whether an item of `node` not among the given ones (uniqueValue's forms) can still be written */
function valueLeft(node: SchemaNode, seen: readonly string[]): boolean {
  switch (node.kind) {
    case 'anyOf':
      return node.options.some((o) => valueLeft(o, seen));
    case 'literal':
      return !seen.includes(uniqueValue(node.text));
    case 'string':
      if (node.allowed !== null) return node.allowed.some((a) => !seen.includes(uniqueValue(`"${a}"`)));
      return node.rule === null || awayFrom(givenStrings(seen), '', ruledStart(node.rule, ''));
    case 'number':
      return uniqueIntegerViable('', node.range, seen);
    default:
      return true;
  }
}

/** whether an array of unique items can take another item: one not given yet is left */
function newItemPossible(n: ArrayNode, seen: readonly string[]): boolean {
  const finite = n.unique!.finite;
  return finite !== null ? finite.some((v) => !seen.includes(v)) : valueLeft(n.items!, seen);
}

/**
 * One character of an item of unique items held to a rule: as ruledStringStep, but the closing
 * quote takes the value only where it is not given yet, and any other character only where the
 * value can still become one not given yet (awayFrom); a character of an escape, only where some
 * character the escape can still write leads to one.
 */
function uniqueRuledStep(f: RuledString, c: number, below: Stack | null, push: (stack: Stack | null) => void): void {
  ruledStringStep(f, c, below, (stack) => {
    if (stack === below) {
      // closed: the value, with a high surrogate still waiting as a character of its own
      pushItem(below, JSON.stringify(f.kept! + (f.high === 0 ? '' : String.fromCharCode(f.high))), push);
      return;
    }
    const next = stack!.frame as RuledString;
    // (a high surrogate is judged with its low one)
    if (next.high !== 0 || uniqueLeftAfter(next, givenStrings(uniqueSeen(below)!))) push(stack);
  });
}

/** whether a held item's value so far (an escape perhaps under way) can still become a value not among `given` */
function uniqueLeftAfter(f: RuledString, given: readonly string[]): boolean {
  if (f.esc === 0) return awayFrom(given, f.kept!, f);
  // the characters the escape can still write: after the backslash, those of the simple escapes and
  // the controls; after \u00 and a digit, that digit's sixteen controls; after \u or \u0, the controls
  const units = f.esc === 1 ? ESCAPABLE : f.esc === 5 ? CONTROLS.slice(f.hex * 16, f.hex * 16 + 16) : CONTROLS;
  return units.some((u) => {
    const after = codeUnit({ ...f, esc: 0, hex: 0 }, u);
    return after !== null && awayFrom(given, after.kept!, after);
  });
}

/** whether another key can be written in this object */
function keyCanFollow(n: ObjectNode, seen: readonly string[]): boolean {
  if (n.additional !== null) {
    // any name; or one of an enum's, or of a rule's, not given yet (a rule of few names may have them all given)
    if (n.keys === null) return true;
    if (n.keys.allowed !== null ? n.keys.allowed.some((w) => !seenWritten(n, seen, w)) : n.keys.rule === null || otherKeyViable(n, seen, '', ruledStart(n.keys.rule))) return true;
  }
  const [from] = nextDeclared(n, seen);
  return from < n.declared.length;
}

/**
 * The places (in the schema's order) of the declared properties that may be written next,
 * [from, to): those after the last one written, up to and including the first required one among
 * them (a required property cannot be skipped).
 */
function nextDeclared(n: ObjectNode, seen: readonly string[]): [number, number] {
  let from = 0;
  for (const name of seen) {
    const at = n.order.get(name);
    if (at !== undefined && at >= from) from = at + 1;
  }
  let to = from;
  const names = n.declared;
  while (to < names.length) if (n.required.has(names[to++])) break;
  return [from, to];
}

/** what is left of each of `names` that begins with `prefix`, after it */
const remaindersAfter = (names: readonly string[], prefix: string): string[] => names.filter((w) => w.startsWith(prefix)).map((w) => w.slice(prefix.length));

/** a key's frame as interiorKey sees it: the names the text may still become, by what is left of each after it */
function keyInterior(f: Extract<Frame, { t: 'key' }>): string {
  const n = f.node;
  const [from, to] = nextDeclared(n, f.seen);
  // (declaredKeyCanBegin's names, as written)
  const declared = remaindersAfter(n.declared.slice(from, to).map((name) => n.written.get(name)!), f.typed);
  let other: string[] = [];
  if (n.additional !== null && n.keys !== null) {
    // otherKeyCanBegin's enum names not given, as written; or otherKeyViable's forbidden names, by value
    if (n.keys.allowed !== null) other = remaindersAfter(n.keys.allowed.filter((w) => !seenWritten(n, f.seen, w)), f.typed);
    else if (f.ruled !== null) other = remaindersAfter([...f.seen, ...n.declared], f.typed.includes('\\') ? (JSON.parse(`"${f.typed}"`) as string) : f.typed);
  }
  return `K${idOf(n)}:${f.ruled === null ? '-' : frameKey(f.ruled)}:${JSON.stringify(declared)}:${JSON.stringify(other)}`;
}

/** whether `typed` begins the key of a declared property that may be written next */
function declaredKeyCanBegin(n: ObjectNode, seen: readonly string[], typed: string): boolean {
  const [from, to] = nextDeclared(n, seen);
  const names = n.declared;
  for (let i = from; i < to; i++) if (n.written.get(names[i])!.startsWith(typed)) return true;
  return false;
}

/** whether property `name` may be written next (a declared one in its place, any other where others are allowed) */
function mayFollow(n: ObjectNode, seen: readonly string[], name: string): boolean {
  if (seen.includes(name)) return false;
  const at = n.order.get(name);
  if (at === undefined) return true;
  const [from, to] = nextDeclared(n, seen);
  return at >= from && at < to;
}

/** whether a name, as written between the quotes, is among those the object has seen */
function seenWritten(n: ObjectNode, seen: readonly string[], w: string): boolean {
  return seen.some((name) => (n.written.get(name) ?? JSON.stringify(name).slice(1, -1)) === w);
}

/** whether `typed` (with the key rule's state after it, where there is one) begins a key outside the declared properties */
function otherKeyCanBegin(n: ObjectNode, seen: readonly string[], typed: string, ruled: RuledString | null): boolean {
  if (n.additional === null) return false;
  if (n.keys === null) return true;
  if (n.keys.allowed !== null) return n.keys.allowed.some((w) => w.startsWith(typed) && !seenWritten(n, seen, w));
  return ruled !== null;
}

/** whether the key's text is, whole, a name the object's key rule takes (any name without one) */
function otherKeyCloses(f: Extract<Frame, { t: 'key' }>): boolean {
  const keys = f.node.keys;
  if (keys === null) return true;
  if (keys.allowed !== null) return keys.allowed.includes(f.typed);
  return f.ruled !== null && otherKeyClosesAt(f.ruled);
}

/** the key rule's state after one more character of the key's text; null where no such key goes on */
function ruledKeyStep(f: RuledString, c: number): RuledString | null {
  let next: RuledString | null = null;
  ruledStringStep(f, c, null, (stack) => (next = stack === null ? null : (stack.frame as RuledString)));
  return next;
}

/**
 * Whether a key outside the declared properties, its text so far `typed` and its rule's state
 * `ruled`, can still be completed to a name the object does not forbid: one not given already and
 * not a declared property's (which is written as that property, in its place). Where no forbidden
 * name begins with the key so far, the rule's own lookahead (CompiledRegex.completes) says it can
 * be. Else it can end here, or some character leads away from every forbidden name, or one of the
 * forbidden names' next characters leads to a key that can (followed down those names only, so
 * the search is bounded by their length). A rule of few names (a maximum length of 3, a pattern
 * of a few alternatives) would otherwise let a model write a name already given, and then find no
 * way on.
 */
function otherKeyViable(n: ObjectNode, seen: readonly string[], typed: string, ruled: RuledString): boolean {
  // (checked for every character of every candidate token in a key: the common cases first)
  if (seen.length === 0 && n.declared.length === 0) return true;
  let prefix = typed;
  if (typed.includes('\\')) {
    try {
      prefix = JSON.parse(`"${typed}"`) as string;
    } catch {
      return true; // (an escape not yet whole: judged at the next character)
    }
  }
  return awayFrom(n.declared.length === 0 ? seen : [...seen, ...n.declared], prefix, ruled);
}

/**
 * Whether a string held to a rule, its value so far `prefix` and the rule's state `state` after
 * it, can be completed to a value none of `forbidden` (a key to a name not given, an item of
 * unique items to a value not given): where no forbidden value begins with the prefix, the rule's
 * own lookahead (CompiledRegex.completes) says it can be. Else it can end here, or some character
 * (PROBE_CHARACTERS) leads away from every forbidden value, or one of the forbidden values' next
 * characters leads to a string that can (followed down those values only, so the search is
 * bounded by their length). Characters are stepped as the value's, not as JSON's text: a
 * forbidden value's quote or backslash is the character itself.
 */
function awayFrom(forbidden: readonly string[], prefix: string, state: RuledString): boolean {
  const hits = forbidden.filter((name) => name.startsWith(prefix));
  if (hits.length === 0) return true;
  if (!hits.includes(prefix) && otherKeyClosesAt(state)) return true;
  const onward = new Set(hits.filter((name) => name.length > prefix.length).map((name) => String.fromCodePoint(name.codePointAt(prefix.length)!)));
  for (const probe of PROBE_CHARACTERS) if (!onward.has(probe) && codeUnit(state, probe.charCodeAt(0)) !== null) return true;
  for (const ch of onward) {
    let next: RuledString | null = state;
    for (let i = 0; i < ch.length && next !== null; i++) next = codeUnit(next, ch.charCodeAt(i));
    if (next !== null && awayFrom(hits, prefix + ch, next)) return true;
  }
  return false;
}

/** whether a key rule's state takes the closing quote */
function otherKeyClosesAt(state: RuledString): boolean {
  let closes = false;
  ruledStringStep(state, 0x22, null, () => (closes = true));
  return closes;
}

/** a string held to `rule`, before its first character */
const ruledStart = (rule: StringRule, kept: string | null = null): RuledString => ({ t: 'string', allowed: null, typed: '', esc: 0, rule, dfas: rule.regexes.map((r) => r.start), len: 0, hex: 0, high: 0, kept });

/** the property a key's text names; null where it names none this object allows */
function nameOf(n: ObjectNode, typed: string): string | null {
  for (const [name, w] of n.written) if (w === typed) return name;
  if (n.additional === null) return null;
  try {
    return JSON.parse(`"${typed}"`) as string;
  } catch {
    return null;
  }
}

function frameKey(f: Frame): string {
  switch (f.t) {
    case 'value':
      return `v${idOf(f.node)}`;
    case 'object':
      return `o${idOf(f.node)}:${f.phase}:${f.key}:${f.seen.join('\u0000')}`;
    case 'key':
      return `k${idOf(f.node)}:${f.esc}:${f.typed}:${f.seen.join('\u0000')}`;
    case 'array':
      return `a${idOf(f.node)}:${f.phase}:${f.count}:${f.seen.join('\u0000')}`;
    case 'string':
      if (f.rule !== null) {
        // the length matters up to minLength where there is no maxLength, exactly where there is one
        const len = f.rule.max === Infinity ? Math.min(f.len, f.rule.min) : f.len;
        return `r${idOf(f.rule)}:${f.esc}:${f.hex}:${f.high}:${len}:${f.dfas.map((d) => d.key).join(',')}${f.kept === null ? '' : `:k${f.kept}`}`;
      }
      return `s${f.allowed === null ? '' : idOf(f.allowed)}:${f.esc}:${f.allowed === null && !f.keep ? '' : `${f.keep ? 'k' : ''}${f.typed}`}`;
    case 'number':
      return f.range === null && !f.keep ? `n${f.integer ? 1 : 0}${f.phase}` : `N${f.range === null ? '' : idOf(f.range)}:${f.integer ? 1 : 0}${f.phase}:${f.text}`;
    case 'literal':
      return `l${f.text}:${f.pos}`;
  }
}

function pathKey(p: Path): string {
  let key = `${p.spaces}.${p.newlines}`;
  for (let s = p.stack; s !== null; s = s.below) key += `/${frameKey(s.frame)}`;
  return key;
}

function dedupe(paths: Path[]): Path[] {
  const seen = new Set<string>();
  return paths.filter((p) => {
    const k = pathKey(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

type RuledString = Extract<Frame, { t: 'string'; rule: StringRule }>;

/** what a simple escape (after a backslash) stands for */
const SIMPLE_ESCAPES = new Map([
  [0x22, 0x22],
  [0x5c, 0x5c],
  [0x2f, 0x2f],
  [0x62, 0x08],
  [0x66, 0x0c],
  [0x6e, 0x0a],
  [0x72, 0x0d],
  [0x74, 0x09],
]);

const hexValue = (c: number): number => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);
const isHigh = (u: number) => u >= 0xd800 && u <= 0xdbff;
const isLow = (u: number) => u >= 0xdc00 && u <= 0xdfff;

/** whether a character still being decoded may come next in a key: one of any name, or one its key rule takes beyond ASCII */
function keyTakesAnyNext(f: Extract<Frame, { t: 'key' }>): boolean {
  if (f.node.additional === null) return false;
  if (f.node.keys === null) return true;
  return f.ruled !== null && freeNext(f.ruled);
}

/** whether a character still being decoded may come next in a string: any may in a free one; in a ruled one, one beyond ASCII within its length */
function freeNext(f: Extract<Frame, { t: 'string' }>): boolean {
  return f.rule === null || (f.len + (f.high === 0 ? 0 : 1) < f.rule.max && f.dfas.every((d) => d.nonAscii));
}

/** the characters JSON must escape: the controls, written \u00XX (or as a simple escape) */
const CONTROLS = Array.from({ length: 0x20 }, (_, i) => i);
/** what may follow a backslash in a ruled string: the simple escapes' characters and the controls */
const ESCAPABLE = [...new Set([...SIMPLE_ESCAPES.values(), ...CONTROLS])];

/**
 * One character of a string held to a rule, read as the value it writes: a plain character is
 * itself, an escape its character once complete; each character of the value steps the regexes
 * (by code point where the pattern reads code points) and counts towards the length. The closing
 * quote needs every regex at a match and the length at least minLength.
 *
 * An escape is only begun where the character it can write is one the rule takes, so the text
 * never reaches a point nothing completes; and `\u` escapes are kept to the control characters,
 * which JSON requires escaped (any other character is written as itself): a \u escape of any
 * character would otherwise need each of its 65,536 completions judged before its first digit.
 */
function ruledStringStep(f: RuledString, c: number, below: Stack | null, push: (stack: Stack | null) => void): void {
  if (f.esc === 0 && c === 0x22) {
    const closed = f.high === 0 ? f : codePoint(f, f.high);
    if (closed !== null && closed.len >= f.rule.min && closed.dfas.every((d) => d.accepting)) push(below);
    return;
  }
  const esc = nextEscape(f.esc, c);
  if (esc < 0) return;
  let unit = -1;
  let hex = 0;
  if (f.esc === 0 && esc === 0) unit = c;
  else if (f.esc === 0) {
    // a backslash: some escaped character must be one the rule takes
    if (!ESCAPABLE.some((u) => takes(f, u))) return;
  } else if (f.esc === 1 && esc === 0) unit = SIMPLE_ESCAPES.get(c)!;
  else if (f.esc === 1) {
    if (!CONTROLS.some((u) => takes(f, u))) return; // \u: a control character must be taken
  } else {
    // \u00XX: the first two digits 0, the third 0 or 1, and some character of what they leave taken
    hex = f.hex * 16 + hexValue(c);
    if ((f.esc === 2 || f.esc === 3) && hex !== 0) return;
    if (f.esc === 4 && (hex > 1 || !CONTROLS.slice(hex * 16, hex * 16 + 16).some((u) => takes(f, u)))) return;
    if (esc === 0) {
      unit = hex;
      hex = 0;
    }
  }
  if (unit < 0) {
    push(on({ ...f, esc, hex }, below));
    return;
  }
  const next = codeUnit(f, unit);
  if (next !== null) push(on({ ...next, esc: 0, hex: 0 }, below));
}

/** whether the rule takes `unit` (a character of the Basic Multilingual Plane, no surrogate) next: codeUnit's answer, without building the frame */
function takes(f: RuledString, unit: number): boolean {
  if (f.high !== 0) return codeUnit(f, unit) !== null;
  return f.len < f.rule.max && f.dfas.every((d, i) => completesAfter(f, i, f.rule.regexes[i].step(d, unit)));
}

/** whether regex `i`'s state after one more code point (null: refused) can still end within the string's length */
function completesAfter(f: RuledString, i: number, next: DfaState | null): boolean {
  return next !== null && f.rule.regexes[i].completes(next, f.rule.min - f.len - 1, f.rule.max - f.len - 1);
}

/** the string after one UTF-16 unit of its value: a high surrogate waits for its low one; null where the rule refuses it */
function codeUnit(f: RuledString, unit: number): RuledString | null {
  if (f.high !== 0) {
    if (isLow(unit)) return codePoint({ ...f, high: 0 }, ((f.high - 0xd800) << 10) + (unit - 0xdc00) + 0x10000);
    // a lone high surrogate (text that is not well-formed UTF-16) is a character of its own
    const lone = codePoint({ ...f, high: 0 }, f.high);
    return lone === null ? null : codeUnit(lone, unit);
  }
  if (isHigh(unit)) return { ...f, high: unit };
  return codePoint(f, unit);
}

/** the string after one code point of its value; null where the rule refuses it */
function codePoint(f: RuledString, cp: number): RuledString | null {
  if (f.len + 1 > f.rule.max) return null;
  const dfas: DfaState[] = [];
  for (const [i, d] of f.dfas.entries()) {
    const state = f.rule.regexes[i].stepCodePoint(d, cp);
    // a value must still be able to end within the length from here, not only to go on
    if (!completesAfter(f, i, state)) return null;
    dfas.push(state!);
  }
  return { ...f, dfas, len: f.len + 1, high: 0, kept: f.kept === null ? null : f.kept + String.fromCodePoint(cp) };
}

/** numberStep's first exponent phase: a bounded number is written without one */
const EXPONENT = 6;

/** whether a number may end here: complete, and within its bounds */
function numberEnds(f: Extract<Frame, { t: 'number' }>): boolean {
  if (!numberComplete(f.phase, f.integer)) return false;
  return f.range === null || inRange(f.range, parseDecimal(f.text)!);
}
