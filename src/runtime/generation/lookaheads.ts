/**
 * A pattern with lookaheads turned into a plain automaton, for the patterns the constraint holds
 * (regex-prefix.ts): a JSON schema's `pattern` (Pydantic writes `^(?!^[-+.]*$)…` for a Decimal,
 * and password rules are written `(?=.*\d)(?=.*[a-z]).{8,}`) and vLLM's regex.
 *
 * The match is of the whole text, so whatever follows a point in the pattern runs to the text's
 * end, and a lookahead there says something about that whole remainder: `(?=X)` that it begins
 * with a match of X (it is in X·Σ*, or in X where X ends with `$`), `(?!X)` that it does not.
 * So `P (?=X) R` matches what P·(R ∩ X·Σ*) does, and `P (?!X) R` what P·(R \ X·Σ*) does: products
 * and a complement of automata, which refa builds. A group is followed into each of its
 * alternatives with the rest of the pattern after it, so a lookahead inside a group is handled the
 * same way. `^` is taken where nothing can have been read before it (a lookahead's own `^` at the
 * start of the pattern, as Pydantic writes it), `$` anywhere the rest of the pattern can match
 * nothing. A lookahead inside a repetition (`(?:(?=a)\w)+`), lookbehinds and `\b` have no such
 * reading and are refused, as before.
 */
import { DFA, NFA, type CharSet, type Concatenation, type Element, type NoParent } from 'refa';
import { RfidMoeError } from '../../errors.js';

type El = NoParent<Element>;
type Alternatives = readonly NoParent<Concatenation>[];

/** Why a pattern's assertion cannot be followed (regex-prefix.ts turns it into a RegexError). */
export class LookaroundError extends RfidMoeError {
  readonly kind = 'LookaroundError';
  constructor(message: string) {
    super(message);
    this.name = 'LookaroundError';
  }
}

/**
 * Most lookaheads in a pattern, and most nodes of any automaton built on the way. Each lookahead
 * multiplies the states of what follows it: four (a password rule's digit, lower, upper and
 * symbol) took 0.16 s to build here, eight 3.9 s of the event loop every stream waits on.
 */
export const MAX_LOOKAHEADS = 4;
const MAX_NODES = 20_000;
/**
 * Most sequences built: a group with an anchor or lookahead is followed into each alternative with
 * the rest after it, so n such groups in a row build 2^n sequences (`(?:a$|b)` twenty times took
 * 3.5 s before this bound).
 */
const MAX_SEQUENCES = 1_000;

/** The automaton of `alternatives` (a parsed pattern whose match is the whole text) with its lookaheads applied. */
export function nfaWithLookaheads(alternatives: Alternatives, maxCharacter: number): NFA {
  const count = alternatives.reduce((n, a) => n + a.elements.reduce((m, e) => m + lookaheadsIn(e), 0), 0);
  if (count > MAX_LOOKAHEADS) throw new LookaroundError(`the pattern has ${count} lookaheads; at most ${MAX_LOOKAHEADS} are followed`);
  try {
    return new Builder(maxCharacter, MAX_NODES).alternatives(alternatives, true);
  } catch (err) {
    // refa's node factories throw a plain Error past their limit
    if (err instanceof LookaroundError || !/nodes/i.test((err as Error).message)) throw err;
    throw new LookaroundError(`its lookaheads build an automaton of more than ${MAX_NODES} nodes`);
  }
}

/** lookaheads (not `$`, which refa writes as one) in an element */
function lookaheadsIn(e: El): number {
  const inside = e.type === 'CharacterClass' || e.type === 'Unknown' ? 0 : e.alternatives.reduce((n, a) => n + a.elements.reduce((m, x) => m + lookaheadsIn(x), 0), 0);
  return inside + (e.type === 'Assertion' && e.kind === 'ahead' && !isEnd(e) ? 1 : 0);
}

class Builder {
  private sequences = 0;

  constructor(
    private readonly maxCharacter: number,
    private readonly maxNodes: number,
  ) {}

  private factory() {
    return new NFA.LimitedNodeFactory(this.maxNodes);
  }

  alternatives(alternatives: Alternatives, atStart: boolean): NFA {
    const out = NFA.empty({ maxCharacter: this.maxCharacter });
    for (const a of alternatives) out.unionInto(this.sequence(a.elements, atStart), this.factory());
    return out;
  }

  /** the automaton of `elements` followed by the text's end; `atStart`: nothing has been read before them */
  private sequence(elements: readonly El[], atStart: boolean): NFA {
    if (++this.sequences > MAX_SEQUENCES) throw new LookaroundError(`its groups with anchors or lookaheads branch into more than ${MAX_SEQUENCES} ways`);
    const i = elements.findIndex(hasAssertion);
    if (i < 0) return this.plain(elements);
    const here = atStart && i === 0;
    const e = elements[i];
    const rest = elements.slice(i + 1);
    let tail: NFA;
    if (e.type === 'Assertion') {
      if (isStart(e)) {
        if (!here) throw new LookaroundError('a ^ inside the pattern, after text, cannot be followed token by token');
        tail = this.sequence(rest, true);
      } else if (isEnd(e)) {
        // the text ends here: what follows must match nothing
        const nothingAfter = rest.length === 0 || this.sequence(rest, false).test([]);
        tail = nothingAfter ? NFA.emptyWord({ maxCharacter: this.maxCharacter }) : NFA.empty({ maxCharacter: this.maxCharacter });
      } else if (e.kind === 'behind') {
        throw new LookaroundError('lookbehinds (and \\b, which looks behind) cannot be followed token by token');
      } else {
        const body = this.lookahead(e.alternatives, here);
        const remainder = this.sequence(rest, here);
        tail = NFA.fromIntersection(remainder, e.negate ? this.complement(body) : body, this.factory());
      }
    } else if (e.type === 'Alternation') {
      // each alternative with the rest after the group
      tail = NFA.empty({ maxCharacter: this.maxCharacter });
      for (const a of e.alternatives) tail.unionInto(this.sequence([...a.elements, ...rest], here), this.factory());
    } else {
      throw new LookaroundError('a lookahead or an anchor inside a repetition cannot be followed token by token');
    }
    const out = this.plain(elements.slice(0, i));
    out.appendInto(tail, this.factory());
    return out;
  }

  /** what a lookahead's body says of the remainder: its matches followed by anything, or exactly them where they end with `$` */
  private lookahead(alternatives: Alternatives, atStart: boolean): NFA {
    const out = NFA.empty({ maxCharacter: this.maxCharacter });
    for (const a of alternatives) {
      let elements = a.elements;
      if (elements.length > 0 && isStart(elements[0])) {
        if (!atStart) throw new LookaroundError('a ^ inside a lookahead after text cannot be followed token by token');
        elements = elements.slice(1);
      }
      const ended = elements.length > 0 && isEnd(elements[elements.length - 1]);
      if (ended) elements = elements.slice(0, -1);
      if (elements.some(hasAssertion)) throw new LookaroundError('a lookaround or anchor inside a lookahead cannot be followed token by token');
      const body = this.plain(elements);
      if (!ended) body.appendInto(NFA.all({ maxCharacter: this.maxCharacter }), this.factory());
      out.unionInto(body, this.factory());
    }
    return out;
  }

  /** every text that is not a match of `nfa` */
  private complement(nfa: NFA): NFA {
    const dfa = DFA.fromFA(nfa, new DFA.LimitedNodeFactory(this.maxNodes));
    dfa.complement();
    return NFA.fromFA(dfa, this.factory());
  }

  private plain(elements: readonly El[]): NFA {
    return NFA.fromRegex([{ type: 'Concatenation', elements: [...elements] }], { maxCharacter: this.maxCharacter }, { assertions: 'throw' }, this.factory());
  }
}

/** whether a parsed pattern has an assertion (a lookaround, `^`, `$`, `\b`) anywhere */
export function hasLookaround(alternatives: Alternatives): boolean {
  return alternatives.some((a) => a.elements.some(hasAssertion));
}

function hasAssertion(e: El): boolean {
  if (e.type === 'Assertion') return true;
  if (e.type === 'Alternation' || e.type === 'Quantifier') return e.alternatives.some((a) => a.elements.some(hasAssertion));
  return false;
}

const isAll = (alternatives: Alternatives): boolean => {
  if (alternatives.length !== 1 || alternatives[0].elements.length !== 1) return false;
  const only = alternatives[0].elements[0];
  return only.type === 'CharacterClass' && (only.characters as CharSet).isAll;
};
/** `^`, which refa reads as (?<![^]) */
const isStart = (e: El): boolean => e.type === 'Assertion' && e.kind === 'behind' && e.negate && isAll(e.alternatives);
/** `$`, which refa reads as (?![^]) */
const isEnd = (e: El): boolean => e.type === 'Assertion' && e.kind === 'ahead' && e.negate && isAll(e.alternatives);
