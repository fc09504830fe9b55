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
 * (or Python's `\Z`) at the end are accepted and change nothing; any other assertion (lookaround,
 * `\b`, an anchor inside the pattern) is refused with a RegexError, as are backreferences that
 * refa cannot resolve. Python's `(?P<name>…)` groups are read as JavaScript's `(?<name>…)`. The
 * pattern is read with the `u` flag (characters are code points) and, where that refuses it
 * (Python accepts escapes such as `\-` that the `u` flag does not), without it (UTF-16 units).
 */
import { JS, NFA, type CharSet, type Element, type NoParent } from 'refa';
import { RfidMoeError } from '../../errors.js';
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

/** A pattern turned into its automaton, with its deterministic states as they are reached. */
export class CompiledRegex {
  private static nextId = 1;
  readonly id = CompiledRegex.nextId++;
  /** per node, its transitions: the characters of each and where they lead */
  private readonly sets: CharSet[][];
  private readonly targets: Int32Array[];
  private readonly finals: Uint8Array;
  private readonly states = new Map<string, DfaState>();
  /** transitions memoised, over all states */
  private transitions = 0;
  readonly start: DfaState;

  constructor(
    readonly pattern: string,
    /** characters are code points (the `u` flag), else UTF-16 units */
    readonly codePoints: boolean,
    nfa: NFA,
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
    this.start = this.state(Int32Array.of(index.get(nfa.initial)!));
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
      for (let t = 0; t < sets.length; t++) if (sets[t].has(c)) reached.add(this.targets[node][t]);
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
      for (const set of this.sets[node]) {
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

function compile(pattern: string): CompiledRegex {
  const source = wholeMatchSource(pattern.replace(/\(\?P</g, '(?<'));
  let firstError: Error | null = null;
  for (const flags of ['u', ''] as const) {
    let nfa: NFA;
    try {
      const parser = JS.Parser.fromLiteral({ source, flags });
      const { expression, maxCharacter } = parser.parse({ backreferences: 'throw', assertions: 'throw', maxNodes: MAX_NFA_NODES });
      // refused before it is built: building up to the limit and then failing took 0.1-0.4 s of
      // the event loop that every other stream waits on, per distinct pattern
      if (automatonSize(expression.alternatives) > MAX_NFA_NODES) throw new Error(`The NFA would have more than ${MAX_NFA_NODES} nodes`);
      nfa = NFA.fromRegex(expression, { maxCharacter }, { assertions: 'throw' }, new NFA.LimitedNodeFactory(MAX_NFA_NODES));
    } catch (err) {
      firstError ??= err as Error;
      continue;
    }
    if (nfa.isEmpty) throw new RegexError(`the pattern ${quoted(pattern)} matches no text`);
    const compiled = new CompiledRegex(pattern, flags === 'u', nfa);
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
  const message = err.message.replace(/^Invalid regular expression: \/.*\/u?: /s, '');
  if (/assertion/i.test(message)) return `${message} (lookarounds, \\b and anchors inside the pattern cannot be followed token by token; a ^ at the start and a $ at the end are accepted)`;
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
