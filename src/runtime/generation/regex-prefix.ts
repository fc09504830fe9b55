/**
 * Whether a text can still become a full match of a regular expression, read one character at a
 * time: what the grammar constraint (grammar-constraint.ts) asks of every candidate token when a
 * request gives vLLM's `guided_regex` or `guided_choice`.
 *
 * The pattern is parsed and turned into a nondeterministic automaton by refa (a maintained
 * library of finite automata for JavaScript regular expressions; parsing a regex correctly, with
 * its Unicode classes, escapes and quantifiers, is not something to hand-write). The
 * deterministic states are built lazily, as the text reaches them: a set of the automaton's
 * nodes per state, its transitions memoised by character. Building the whole DFA up front can
 * take exponentially many states (`(a|b)*a(a|b){20}`), and a generation visits few of them.
 *
 * The match is of the whole text, as vLLM's guided decoding has it: a `^` at the start and a `$`
 * (or Python's `\Z`) at the end are accepted and change nothing; lookaheads are followed
 * (lookaheads.ts); any other assertion (a lookbehind, `\b`, a lookahead inside a repetition, an
 * anchor inside the pattern) is refused with a RegexError, as are backreferences that refa cannot
 * resolve. Python's `(?P<name>…)` groups are read as JavaScript's `(?<name>…)`. The
 * pattern is read with the `u` flag (characters are code points) and, where that refuses it
 * (Python accepts escapes such as `\-` that the `u` flag does not), without it (UTF-16 units).
 */
import { JS, NFA, type CharSet, type Element, type NoParent } from 'refa';
import { RfidMoeError } from '../../errors.js';
import { hasLookaround, LookaroundError, nfaWithLookaheads } from './lookaheads.js';
import type { GrammarState } from './grammar-constraint.js';

export class RegexError extends RfidMoeError {
  readonly kind = 'RegexError';
  constructor(message: string) {
    super(message);
    this.name = 'RegexError';
  }
}

/** Longest pattern accepted (characters). */
export const MAX_PATTERN_LENGTH = 65_536;
/** Most nodes of the automaton: `a{1,100000}` would build one per repetition. */
const MAX_NFA_NODES = 100_000;
/**
 * Deterministic states and transitions memoised per pattern. Past these (a pattern whose states
 * multiply as the text grows, screened against a large vocabulary), states are still followed,
 * each step computed from the automaton's nodes, but no longer kept: memory stays bounded (a few
 * MB a pattern: `[^]*a[^]{20}` screened in 40 states against GPT-2's 50,257 tokens added 2.5 MB
 * of heap) at the cost of speed on such patterns only.
 */
const MAX_DFA_STATES = 10_000;
const MAX_TRANSITIONS = 100_000;
/**
 * How far the lengths a state can still complete with are followed (CompiledRegex.completes):
 * layers of text, and nodes visited over them. Past either, longer completions are assumed
 * possible (for those lengths the pattern and the length are then held apart), so that a counted
 * pattern such as `.{0,5000}` costs bounded work per state.
 */
const MAX_REACH_LAYERS = 4096;
const MAX_REACH_WORK = 100_000;
/**
 * What the walks of one pattern may cost in all: nodes visited, and layers kept (a byte and four
 * a layer). A screen steps into many states; past these, longer completions are assumed possible
 * for the states not yet walked. A password rule of three lookaheads with a maxLength, screened
 * against GPT-2's 50,257 tokens, reached the cap: its first screen took 0.29 s, 0.17 s of it the
 * automaton's own steps (0.70 s with five times the cap).
 */
const MAX_REACH_TOTAL_WORK = 4_000_000;
const MAX_REACH_TOTAL_LAYERS = 2_000_000;

const isHighUnit = (c: number) => c >= 0xd800 && c <= 0xdbff;
/** whether a set holds a character that is not a surrogate (text can hold no lone one) */
const hasPlain = (set: CharSet) => set.ranges.some((r) => r.min < 0xd800 || r.max > 0xdfff);
const overlaps = (set: CharSet, min: number, max: number) => set.ranges.some((r) => r.min <= max && r.max >= min);

export interface DfaState {
  /** the automaton's nodes, ascending */
  readonly nodes: Int32Array;
  readonly key: string;
  /** the text read so far is a full match */
  readonly accepting: boolean;
  /** some character can still be read */
  readonly open: boolean;
  /** some character beyond ASCII can be read (a character still being decoded may be one) */
  readonly nonAscii: boolean;
  readonly next: Map<number, DfaState | null>;
}

/**
 * The lengths (in code points) of the texts that complete a state, as a breadth-first walk over
 * its nodes finds them: `accepts[k]` where some completion has k code points, for k below
 * `accepts.length`; past that, the layers repeat from `cycleFrom` with `period` (> 0), end
 * (`period` 0: no longer completion) or were not followed (`period` −1: assumed possible).
 */
interface Reach {
  accepts: Uint8Array;
  /** per k, the least accepting length ≥ k among those followed (−1: none) */
  nextAccept: Int32Array;
  cycleFrom: number;
  period: number;
}

/** A pattern turned into its automaton, with its deterministic states as they are reached. */
export class CompiledRegex {
  private static nextId = 1;
  readonly id = CompiledRegex.nextId++;
  /** per node, its transitions: the characters of each and where they lead */
  private readonly sets: CharSet[][];
  private readonly targets: Int32Array[];
  private readonly finals: Uint8Array;
  /** per node, the nodes one code point of text leads to (a surrogate pair is two steps where the pattern reads UTF-16 units) */
  private readonly cpNext: Int32Array[];
  /** nodes from which some text reaches a match, at a character's boundary and after a high surrogate */
  private readonly liveAtBoundary: Uint8Array;
  private readonly liveAfterHigh: Uint8Array;
  /** by state key, as many as the states kept: past them, longer completions are assumed possible */
  private readonly reaches = new Map<string, Reach>();
  /** what the walks have cost so far (MAX_REACH_TOTAL_WORK, MAX_REACH_TOTAL_LAYERS) */
  private reachWork = 0;
  private reachLayers = 0;
  private readonly states = new Map<string, DfaState>();
  /** transitions memoised, over all states */
  private transitions = 0;
  readonly start: DfaState;
  /** no text can be a match (the pattern's matches, if any, need lone surrogates) */
  readonly empty: boolean;

  constructor(
    readonly pattern: string,
    /** characters are code points (the `u` flag), else UTF-16 units */
    readonly codePoints: boolean,
    /** kept to intersect it with another pattern (intersectRegexes) */
    readonly nfa: NFA,
  ) {
    const index = new Map<NFA.Node, number>();
    for (const node of nfa.nodes()) index.set(node, index.size);
    this.sets = [];
    this.targets = [];
    this.finals = new Uint8Array(index.size);
    for (const [node, i] of index) {
      const sets: CharSet[] = [];
      const targets: number[] = [];
      for (const [to, via] of node.out) {
        if (via.isEmpty) continue;
        sets.push(via);
        targets.push(index.get(to)!);
      }
      this.sets[i] = sets;
      this.targets[i] = Int32Array.from(targets);
      if (nfa.finals.has(node)) this.finals[i] = 1;
    }
    this.cpNext = this.sets.map((sets, node) => {
      const out = new Set<number>();
      for (let t = 0; t < sets.length; t++) {
        if (hasPlain(sets[t])) out.add(this.targets[node][t]);
        if (this.codePoints || !overlaps(sets[t], 0xd800, 0xdbff)) continue;
        const mid = this.targets[node][t];
        for (let u = 0; u < this.sets[mid].length; u++) if (overlaps(this.sets[mid][u], 0xdc00, 0xdfff)) out.add(this.targets[mid][u]);
      }
      return Int32Array.from(out);
    });
    this.liveAtBoundary = this.reachingFinals();
    this.liveAfterHigh = new Uint8Array(this.sets.length);
    if (!this.codePoints) {
      for (let node = 0; node < this.sets.length; node++) {
        for (let u = 0; u < this.sets[node].length; u++) {
          if (overlaps(this.sets[node][u], 0xdc00, 0xdfff) && this.liveAtBoundary[this.targets[node][u]] === 1) this.liveAfterHigh[node] = 1;
        }
      }
    }
    const initial = index.get(nfa.initial)!;
    this.empty = this.liveAtBoundary[initial] === 0;
    this.start = this.state(Int32Array.of(initial));
  }

  /** per node, whether some text of whole code points leads from it to a final node (backwards from the finals) */
  private reachingFinals(): Uint8Array {
    const into: number[][] = this.sets.map(() => []);
    this.cpNext.forEach((next, from) => next.forEach((to) => into[to].push(from)));
    const live = Uint8Array.from(this.finals);
    const queue: number[] = [];
    live.forEach((f, node) => f === 1 && queue.push(node));
    while (queue.length > 0) {
      for (const from of into[queue.pop()!]) {
        if (live[from] === 0) {
          live[from] = 1;
          queue.push(from);
        }
      }
    }
    return live;
  }

  /** whether the node reached by `c` can still lead to a match: after a high surrogate, by a low one */
  private leadsOn(c: number, node: number): boolean {
    return (!this.codePoints && isHighUnit(c) ? this.liveAfterHigh : this.liveAtBoundary)[node] === 1;
  }

  /**
   * Whether some text of between `lo` and `hi` code points (`hi` may be Infinity) completes a match
   * from `state`, a state at a character's boundary: what a string held to a pattern and a length
   * asks of each prefix, so that no prefix it takes is one nothing completes.
   */
  completes(state: DfaState, lo: number, hi: number): boolean {
    lo = Math.max(0, lo);
    if (hi < lo) return false;
    // every state step() returns has a completion (its dead nodes are dropped)
    if (lo === 0 && hi === Infinity) return true;
    let reach = this.reaches.get(state.key);
    if (reach === undefined) {
      // (a walk for every state of a pattern whose states multiply past the cap would cost each character a walk)
      if (this.reaches.size >= MAX_DFA_STATES || this.reachWork > MAX_REACH_TOTAL_WORK || this.reachLayers > MAX_REACH_TOTAL_LAYERS) return true;
      reach = this.reach(state);
      this.reaches.set(state.key, reach);
    }
    const { accepts, nextAccept, cycleFrom, period } = reach;
    const followed = accepts.length;
    if (lo < followed) {
      const k = nextAccept[lo];
      if (k >= 0 && k <= hi) return true;
    }
    if (hi < followed || period === 0) return false;
    if (period < 0) return true;
    const from = Math.max(lo, followed);
    for (let a = cycleFrom; a < followed; a++) {
      if (accepts[a] === 1 && a + Math.ceil((from - a) / period) * period <= hi) return true;
    }
    return false;
  }

  private reach(state: DfaState): Reach {
    const seen = new Map<string, number>();
    const accepts: number[] = [];
    let layer: Int32Array = state.nodes;
    let work = 0;
    let cycleFrom = 0;
    let period = -1;
    for (;;) {
      if (layer.length === 0) {
        period = 0;
        break;
      }
      const key = layer.join(',');
      const before = seen.get(key);
      if (before !== undefined) {
        cycleFrom = before;
        period = accepts.length - before;
        break;
      }
      if (accepts.length >= MAX_REACH_LAYERS || work > MAX_REACH_WORK) break;
      seen.set(key, accepts.length);
      accepts.push(layer.some((node) => this.finals[node] === 1) ? 1 : 0);
      const next = new Set<number>();
      for (const node of layer) {
        for (const to of this.cpNext[node]) if (this.liveAtBoundary[to] === 1) next.add(to);
        work += this.cpNext[node].length + 1;
      }
      layer = Int32Array.from(next).sort();
    }
    this.reachWork += work;
    this.reachLayers += accepts.length;
    const nextAccept = new Int32Array(accepts.length + 1).fill(-1);
    for (let k = accepts.length - 1; k >= 0; k--) nextAccept[k] = accepts[k] === 1 ? k : nextAccept[k + 1];
    return { accepts: Uint8Array.from(accepts), nextAccept, cycleFrom, period };
  }

  /** The state after character `c` from `from`; null where no match can follow. */
  /** the state after one character of code point `cp`: one step where the pattern reads code points, its UTF-16 units' otherwise */
  stepCodePoint(from: DfaState, cp: number): DfaState | null {
    if (this.codePoints || cp <= 0xffff) return this.step(from, cp);
    const high = this.step(from, 0xd800 + ((cp - 0x10000) >> 10));
    return high === null ? null : this.step(high, 0xdc00 + ((cp - 0x10000) & 0x3ff));
  }

  step(from: DfaState, c: number): DfaState | null {
    const known = from.next.get(c);
    if (known !== undefined) return known;
    const reached = new Set<number>();
    for (const node of from.nodes) {
      const sets = this.sets[node];
      for (let t = 0; t < sets.length; t++) if (sets[t].has(c) && this.leadsOn(c, this.targets[node][t])) reached.add(this.targets[node][t]);
    }
    const to = reached.size === 0 ? null : this.state(Int32Array.from(reached).sort());
    if (this.transitions < MAX_TRANSITIONS) {
      from.next.set(c, to);
      this.transitions++;
    }
    return to;
  }

  private state(nodes: Int32Array): DfaState {
    const key = `re${this.id}:${nodes.join(',')}`;
    const known = this.states.get(key);
    if (known !== undefined) return known;
    let accepting = false;
    let open = false;
    let nonAscii = false;
    for (const node of nodes) {
      if (this.finals[node] === 1) accepting = true;
      const sets = this.sets[node];
      for (let t = 0; t < sets.length; t++) {
        // only transitions some match still follows count: a dead end is not a way on
        const to = this.targets[node][t];
        const set = sets[t];
        const units = !this.codePoints;
        const usable =
          ((hasPlain(set) || (units && overlaps(set, 0xdc00, 0xdfff))) && this.liveAtBoundary[to] === 1) ||
          (units && overlaps(set, 0xd800, 0xdbff) && this.liveAfterHigh[to] === 1);
        if (!usable) continue;
        open = true;
        if (set.ranges.some((r) => r.max >= 0x80)) nonAscii = true;
      }
    }
    const state: DfaState = { nodes, key, accepting, open, nonAscii, next: new Map() };
    if (this.states.size < MAX_DFA_STATES) this.states.set(key, state);
    return state;
  }
}

/**
 * Compiled patterns by their text: a pattern sent again finds its states, and so its kept screens;
 * a refused one finds its error (building a large automaton before giving up takes a while).
 */
const compiledPatterns = new Map<string, CompiledRegex | RegexError>();
const MAX_COMPILED_PATTERNS = 32;

/** The pattern compiled (and kept); RegexError where it is not a regex this supports. */
export function compileRegex(pattern: string): CompiledRegex {
  if (typeof pattern !== 'string') throw new RegexError('the pattern must be a string');
  // (checked before the cache, whose keys are the patterns)
  if (pattern.length > MAX_PATTERN_LENGTH) throw new RegexError(`the pattern is ${pattern.length} characters long; at most ${MAX_PATTERN_LENGTH} are accepted`);
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    try {
      compiled = compile(pattern);
    } catch (err) {
      if (!(err instanceof RegexError)) throw err;
      compiled = err;
    }
    if (compiledPatterns.size >= MAX_COMPILED_PATTERNS) compiledPatterns.delete(compiledPatterns.keys().next().value!);
    compiledPatterns.set(pattern, compiled);
  }
  if (compiled instanceof RegexError) throw compiled;
  return compiled;
}

/** Intersections by their patterns' ids: a schema sent again finds its states. */
const intersections = new Map<string, CompiledRegex | null>();

/**
 * One automaton matching exactly what both patterns match (a string's `pattern` and its `format`),
 * so that a prefix is taken only where some value meets both at once: held separately, each could
 * be met by a different completion and the text reach a point no value continues. Null where the
 * two read characters differently (code points and UTF-16 units) or the product passes the node
 * limit: the caller then holds them separately.
 */
export function intersectRegexes(a: CompiledRegex, b: CompiledRegex): CompiledRegex | null {
  if (a.codePoints !== b.codePoints) return null;
  const key = `${a.id}&${b.id}`;
  let joint = intersections.get(key);
  if (joint === undefined) {
    try {
      joint = new CompiledRegex(`(?:${a.pattern})&(?:${b.pattern})`, a.codePoints, NFA.fromIntersection(a.nfa, b.nfa, new NFA.LimitedNodeFactory(MAX_NFA_NODES)));
    } catch {
      joint = null;
    }
    if (intersections.size >= MAX_COMPILED_PATTERNS) intersections.delete(intersections.keys().next().value!);
    intersections.set(key, joint);
  }
  return joint;
}

function compile(pattern: string): CompiledRegex {
  const source = wholeMatchSource(pattern.replace(/\(\?P</g, '(?<'));
  let firstError: Error | null = null;
  for (const flags of ['u', ''] as const) {
    let nfa: NFA;
    try {
      const parser = JS.Parser.fromLiteral({ source, flags });
      const { expression, maxCharacter } = parser.parse({ backreferences: 'throw', assertions: 'parse', maxNodes: MAX_NFA_NODES });
      // refused before it is built: building up to the limit and then failing took 0.1-0.4 s of
      // the event loop that every other stream waits on, per distinct pattern
      if (automatonSize(expression.alternatives) > MAX_NFA_NODES) throw new Error(`The NFA would have more than ${MAX_NFA_NODES} nodes`);
      nfa = hasLookaround(expression.alternatives)
        ? nfaWithLookaheads(expression.alternatives, maxCharacter)
        : NFA.fromRegex(expression, { maxCharacter }, { assertions: 'throw' }, new NFA.LimitedNodeFactory(MAX_NFA_NODES));
    } catch (err) {
      firstError ??= err as Error;
      continue;
    }
    if (nfa.isEmpty) throw new RegexError(`the pattern ${quoted(pattern)} matches no text`);
    const compiled = new CompiledRegex(pattern, flags === 'u', nfa);
    if (compiled.empty) throw new RegexError(`the pattern ${quoted(pattern)} matches only lone surrogates, which no text can hold`);
    if (!compiled.start.open) throw new RegexError(`the pattern ${quoted(pattern)} matches only the empty text: there is nothing to generate`);
    return compiled;
  }
  throw new RegexError(`the pattern ${quoted(pattern)} is not supported: ${describe(firstError!)}`);
}

/**
 * About how many nodes the automaton of these alternatives has (within one of refa's count on the
 * patterns tried: a node per character class, repeated as its quantifiers repeat it), computed
 * from the parsed pattern without building anything. Stops counting once past the limit.
 */
function automatonSize(alternatives: readonly NoParent<{ type: 'Concatenation'; elements: Element[] }>[]): number {
  let size = 0;
  for (const { elements } of alternatives) {
    for (const element of elements) {
      if (element.type === 'Alternation') size += automatonSize(element.alternatives);
      else if (element.type === 'Quantifier') {
        const repeats = Number.isFinite(element.max) ? element.max : element.min + 1;
        size += automatonSize(element.alternatives) * Math.max(1, repeats);
      } else size += 1;
      if (size > MAX_NFA_NODES) return size;
    }
  }
  return size;
}

/** A pattern as a message quotes it: whole up to 200 characters, else its beginning (a message need not echo 64 KB back). */
function quoted(pattern: string): string {
  return pattern.length <= 200 ? JSON.stringify(pattern) : `${JSON.stringify(pattern.slice(0, 160))}… (${pattern.length} characters)`;
}

/** refa's and regexpp's messages, said for a request's author */
function describe(err: Error): string {
  if (err instanceof LookaroundError) return err.message;
  const message = err.message.replace(/^Invalid regular expression: \/.*\/u?: /s, '');
  if (/assertion/i.test(message)) return `${message} (lookbehinds, \\b, lookaheads inside a repetition and anchors inside the pattern cannot be followed token by token; lookaheads elsewhere, a ^ at the start and a $ at the end are)`;
  if (/backreference/i.test(message)) return `${message} (a backreference to text of variable content cannot be followed token by token)`;
  if (/nodes/i.test(message)) return `${message} (a quantifier with a large count, such as a{1,100000}, builds that many states)`;
  return message;
}

/**
 * A pattern's leading `^` (or `\A`) and trailing `$` (or `\Z`, `\z`), and what lies between them.
 * Escaped ones stay (an odd run of backslashes before the `$` escapes it).
 */
export function anchorsOf(pattern: string): { start: boolean; end: boolean; core: string } {
  let core = pattern;
  const start = core.startsWith('^') || core.startsWith('\\A');
  if (start) core = core.slice(core.startsWith('^') ? 1 : 2);
  const m = /(\$|\\[Zz])$/.exec(core);
  const end = m !== null && /\\*$/.exec(core.slice(0, m.index))![0].length % 2 === 0;
  if (end) core = core.slice(0, m!.index);
  return { start, end, core };
}

/** The pattern without its anchors: the match is of the whole text anyway. */
function wholeMatchSource(pattern: string): string {
  return anchorsOf(pattern).core;
}

/** A pattern matching exactly one of `choices` (vLLM's guided_choice). */
export function choicePattern(choices: readonly string[]): string {
  if (choices.length === 0) throw new RegexError('give at least one choice');
  return choices.map((c) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')).join('|');
}

/** Where a regex's match stands after some text: the constraint's state for guided_regex and guided_choice. */
export class RegexPrefix implements GrammarState {
  private state: DfaState;

  constructor(private readonly regex: CompiledRegex) {
    this.state = regex.start;
  }

  clone(): RegexPrefix {
    return new RegexPrefix(this.regex).copyFrom(this);
  }

  copyFrom(other: GrammarState): this {
    this.state = (other as RegexPrefix).state;
    return this;
  }

  push(text: string): boolean {
    const regex = this.regex;
    let state: DfaState | null = this.state;
    for (let i = 0; i < text.length; i++) {
      let c = text.charCodeAt(i);
      if (regex.codePoints && c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          c = ((c - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
          i++;
        }
      }
      state = regex.step(state, c);
      if (state === null) return false;
    }
    this.state = state;
    return true;
  }

  get key(): string {
    return this.state.key;
  }

  /** a full match that nothing can extend: the generation ends */
  get complete(): boolean {
    return this.state.accepting && !this.state.open;
  }

  /** a full match: the generation may end here (the model's end-of-sequence token is allowed) */
  get canEnd(): boolean {
    return this.state.accepting;
  }

  get inString(): boolean {
    return this.state.nonAscii;
  }
}
