/**
 * Constrained decoding: each token is chosen among those that keep the completion a viable
 * prefix of what a grammar state accepts, and the generation ends when the state is complete.
 * The states: one JSON object (json-prefix.ts; OpenAI's `response_format: {"type":
 * "json_object"}`), a value valid under a JSON schema (schema-prefix.ts; `"json_schema"`), a full
 * match of a regular expression or one of some strings (regex-prefix.ts; vLLM's regex and
 * choice). Where a state may end though more could follow (a regex's match), the stop tokens are
 * allowed too; elsewhere they are not.
 *
 * A token is judged by the text it adds in context, decoded as the completion's text is
 * (stop.ts's window: the ids since the last settled character, so SentencePiece's leading space
 * and bytes of a character split across tokens come out as in the response). A token that ends
 * in part of a character (U+FFFD until its last byte arrives) is allowed only inside a string.
 *
 * Masking the whole vocabulary every step would cost a check per token (151,936 for Qwen); the
 * model's own choice is usually valid, so the choice is lazy where that is exact: for greedy
 * decoding and for plain temperature sampling the sampler picks, and a token that breaks the
 * JSON is masked (-∞) and the sampler picks again. (Rejecting a draw and drawing again from the
 * rest is sampling from the distribution restricted to valid tokens.) Under top-k the k best valid
 * tokens are found in descending order of logit, and top-p and min-p act on them alone. After
 * LAZY_TRIES rejections, and from the start under top-p or min-p without top-k (whose cut-offs
 * must be taken over all the valid tokens), the vocabulary is screened once by each token's text
 * in isolation (its "piece", cached per tokenizer and state), and every choice is still checked in
 * context before it is taken.
 */
import { isPlain } from './json-chars.js';
import { JsonPrefix } from './json-prefix.js';
import { compileSchema, type SchemaNode, type TopLevel } from './json-schema.js';
import { SchemaPrefix } from './schema-prefix.js';
import type { Sampler } from './sampling.js';
import type { TextDecoderLike } from './stop.js';

/** Draws checked in context before the vocabulary is screened. */
const LAZY_TRIES = 16;
/**
 * Steps in a row whose lazy draws all failed, after which steps screen at once: the model is not
 * writing what the JSON needs (a model that does not know JSON spent ~15 full-vocabulary draws a
 * step there: 23 ms a token on the shipped demo model), and the screen is as exact. Every LAZY_RETRY-th step
 * still tries the lazy draws, to notice when the model writes JSON again.
 */
const LAZY_MISSES = 2;
const LAZY_RETRY = 8;
/** Draws checked in context after the screening before giving up (the screening misjudged them all). */
const SCREENED_TRIES = 256;
/** what a character still waiting for its last bytes decodes to */
const PARTIAL = '\uFFFD';
const PARTIAL_CODE = 0xfffd;
/**
 * Screens kept per tokenizer, by state: states recur (inside a string value, after a comma),
 * and screening a 50,257-token vocabulary took ~25 ms a step before they were kept (~0.1 MB each
 * at that size, 0.15 MB at 151,936).
 */
const MAX_SCREENS = 128;

/** What the constraint reads the text with: JsonPrefix (any object), SchemaPrefix (a schema's) or RegexPrefix (a pattern's). */
export interface GrammarState {
  /** reads text; false where it can no longer be completed (the state is then unspecified) */
  push(text: string): boolean;
  clone(): GrammarState;
  /** this state made equal to `other`, a state of the same grammar */
  copyFrom(other: GrammarState): GrammarState;
  /** equal keys (of any grammar) accept the same texts */
  readonly key: string;
  readonly complete: boolean;
  /**
   * the text may end here though more could follow (a regex's match, which the model's
   * end-of-sequence token may close); absent: only where `complete`
   */
  readonly canEnd?: boolean;
  /** where any character may come next (a character still being decoded may go there) */
  readonly inString: boolean;
  /**
   * inside a JSON string (a value or a key), whose characters are text: no special token goes
   * there, though its text would fit. Absent: nowhere (a regex's text may hold a tag that is a
   * special token, as a Qwen3-Coder or GLM-4.5 block's tags are)
   */
  readonly inValueString?: boolean;
  /**
   * inside a JSON string that takes any character but `"`, `\` and the controls (a free string,
   * or an object's key of any name; no escape begun): a piece of only such characters fits
   * without being read.
   * Absent: nowhere (a wrapper that watches the text for a tag must read every character).
   */
  readonly plainRun?: boolean;
  /**
   * A key, coarser than `key`, under which a piece with no `"` and no `\\` fits exactly where it
   * fits this state: a screen made in one state of that key serves the others for all but the few
   * pieces with those characters (inside an object's key held to a rule, the key carries the text
   * typed so far, since the name decides which later keys may repeat it; the text matters to such
   * pieces only through the names it may still become). Absent: none is known.
   */
  readonly interiorKey?: string;
}

/** What the decoder asks of a constraint on a sequence's tokens (GrammarConstraint, TriggeredConstraint). */
export interface TokenConstraint {
  /** the next token from this row of (processed) logits, among those the constraint allows; -1 when none is */
  choose(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number): number;
  /** records the token `choose` returned */
  commit(token: number): void;
  /** the constrained text is complete: the generation ends */
  readonly complete: boolean;
  /**
   * Reads text the constrained text starts with that came in a token a wrapper read (what follows
   * `</think>` in the end tag's own token): before any token is committed. False where the text
   * breaks the constraint (then nothing is read).
   */
  readText?(text: string): boolean;
}

/** whether a piece holds a quote or backslash: judged in each state where a screen is shared (GrammarState.interiorKey) */
const hasQuote = (piece: string): boolean => piece.includes('"') || piece.includes('\\');

/** where a screen of a state's interior key (GrammarState.interiorKey) is kept: apart from the states' own keys */
function interiorScreenKey(state: GrammarState): string | undefined {
  const interior = state.interiorKey;
  return interior === undefined ? undefined : `\u0000interior:${interior}`;
}

/** Compiled schemas by their JSON text: a schema sent again finds its node, and so its kept screens. */
const compiledSchemas = new Map<string, SchemaNode>();
const MAX_COMPILED_SCHEMAS = 64;

/**
 * The grammar state a request starts from: any object, or a value valid under `schema` (an object
 * unless `topLevel` is 'any'; SchemaError where the schema is not supported); `compact`: without
 * whitespace outside strings.
 */
export function startingState(schema?: unknown, topLevel: TopLevel = 'object', compact = false): GrammarState {
  // compact: no whitespace outside strings (vLLM's disable_any_whitespace)
  const [maxWhitespace, maxNewlines] = compact ? [0, 0] : [32, 1];
  if (schema === undefined) return new JsonPrefix({ maxWhitespace, maxNewlines });
  const text = `${topLevel}:${JSON.stringify(schema)}`;
  let root = compiledSchemas.get(text);
  if (root === undefined) {
    root = compileSchema(schema, topLevel);
    if (compiledSchemas.size >= MAX_COMPILED_SCHEMAS) compiledSchemas.delete(compiledSchemas.keys().next().value!);
    compiledSchemas.set(text, root);
  }
  return new SchemaPrefix(root, maxWhitespace, maxNewlines);
}

/**
 * Each token's text on its own, decoded on first use, and which of them can follow a state;
 * kept for every request of the tokenizer.
 *
 * `keepSpecial`: the pieces of the tokenizer's special tokens are their text (`<|message|>`), for a
 * constraint that reads the completion with them kept (gpt-oss's call headers are made of them);
 * otherwise they have none and fit nowhere. A special token is a marker, never a character of a
 * value: it fits only where the state is not inside a JSON string (GrammarState.inValueString), so a held
 * JSON string cannot take one whose text it would accept.
 */
export class TokenPieces {
  private readonly pieces: Array<string | undefined>;
  /** per token: 1 special (no text without the special tokens, text with them), 0 not, 2 not yet known */
  private readonly specials: Uint8Array;
  /** state key → 1 for each token whose piece fits, least recently used first */
  private readonly screens = new Map<string, Uint8Array>();
  /** the screen's walk over the pieces (walkOrder), and the pieces it leaves to be judged alone */
  private walk: { order: Int32Array; shared: Int32Array; plain: Uint8Array; quoted: Uint8Array } | undefined;
  private partialPieces = new Int32Array(0);
  /** the ids of the pieces with a `"` or `\\` (GrammarState.interiorKey), found with the walk's order */
  private quoted = new Int32Array(0);
  /** a plain word the pieces are decoded after, so a leading space survives (SentencePiece strips it at the start) */
  private anchor: { ids: number[]; text: string } | null | undefined;

  constructor(
    private readonly decoder: TextDecoderLike,
    readonly vocabSize: number,
    readonly keepSpecial = false,
  ) {
    this.pieces = new Array<string | undefined>(vocabSize);
    this.specials = new Uint8Array(vocabSize).fill(2);
  }

  get(id: number): string {
    let piece = this.pieces[id];
    if (piece === undefined) {
      const anchor = this.findAnchor();
      piece = anchor === null ? this.decode([id], !this.keepSpecial) : this.decode([...anchor.ids, id], !this.keepSpecial).slice(anchor.text.length);
      this.pieces[id] = piece;
    }
    return piece;
  }

  /** whether `id` is a special token: text only where special tokens are kept */
  isSpecial(id: number): boolean {
    if (id < 0 || id >= this.vocabSize) return false;
    if (this.specials[id] === 2) this.specials[id] = this.decode([id], true) === '' && this.decode([id], false) !== '' ? 1 : 0;
    return this.specials[id] === 1;
  }

  /**
   * 1 for each token whose piece can follow `state`, else 0 (do not modify it: it is kept for the
   * next request in this state).
   *
   * The pieces are walked in sorted order, as a trie of their text would be: a piece starts from
   * the state its predecessor reached after the characters they share, so a shared beginning is
   * read once, and a beginning the state refuses refuses at once every piece that starts with it
   * (after a comma in an object, the ~25,000 GPT-2 pieces that open with a space and a letter are
   * judged by a few hundred distinct beginnings). GrammarState.push is incremental (text pushed in
   * parts reads as pushed whole), which is what makes the walk exact. Pieces that end in part of a
   * character (U+FFFD) are judged alone, as textFits reads them.
   */
  screen(state: GrammarState): Uint8Array {
    const key = state.key;
    const known = this.kept(key);
    if (known !== undefined) return known;
    // a special token is a marker, never a character of a value: none fits inside a JSON string
    const noSpecials = this.keepSpecial && state.inValueString === true;
    const admits = (id: number) => !noSpecials || !this.isSpecial(id);
    const interior = interiorScreenKey(state);
    if (interior === undefined) return this.keep(key, this.walkScreen(state, admits, false));
    // the screen of the state's interior key, made once, and the pieces with a quote or backslash judged in this state
    const base = this.kept(interior) ?? this.keep(interior, this.walkScreen(state, admits, true));
    // (not kept: made again from the base in a few hundred reads, where keeping each would push other screens out)
    const fits = base.slice();
    const scratch = state.clone();
    for (const id of this.quoted) if (admits(id) && textFits(scratch.copyFrom(state), this.pieces[id]!)) fits[id] = 1;
    return fits;
  }

  /** a kept screen, now the most recently used; undefined where none is kept under `key` */
  private kept(key: string): Uint8Array | undefined {
    const fits = this.screens.get(key);
    if (fits !== undefined) {
      this.screens.delete(key);
      this.screens.set(key, fits);
    }
    return fits;
  }

  /** `fits` kept under `key`, the least recently used screen dropped past MAX_SCREENS */
  private keep(key: string, fits: Uint8Array): Uint8Array {
    if (this.screens.size >= MAX_SCREENS) this.screens.delete(this.screens.keys().next().value!);
    this.screens.set(key, fits);
    return fits;
  }

  /** The screen by the walk described at screen(); with `unquoted`, the pieces with a `"` or `\\` are left at 0. */
  private walkScreen(state: GrammarState, admits: (id: number) => boolean, unquoted: boolean): Uint8Array {
    const fits = new Uint8Array(this.vocabSize);
    const { order, shared, plain, quoted } = this.walkOrder();
    const plainRun = state.plainRun === true;
    // path[d]: the state after the current piece's first d code units (at code point boundaries)
    const path: GrammarState[] = [state];
    let reached = 0; // code units of the last walked piece whose states in `path` hold
    let refused = Infinity; // code units of the last walked piece's beginning the state refused
    let common = 0; // code units the piece shares with the last walked piece (the least shared since)
    for (let i = 0; i < order.length; i++) {
      const id = order[i];
      const piece = this.pieces[id]!;
      common = Math.min(common, shared[i]);
      if (common >= refused) continue; // begins with a refused beginning
      if (unquoted && quoted[i] === 1) continue;
      if (plainRun && plain[i] === 1) {
        if (admits(id)) fits[id] = 1;
        continue;
      }
      refused = Infinity;
      let d = Math.min(common, reached);
      let ok = true;
      while (d < piece.length) {
        const step = isHighSurrogate(piece.charCodeAt(d)) && d + 1 < piece.length ? 2 : 1;
        const next = (path[d + step] ??= state.clone()).copyFrom(path[d]);
        if (!next.push(piece.slice(d, d + step))) {
          refused = d + step;
          ok = false;
          break;
        }
        d += step;
      }
      reached = d;
      common = Infinity;
      if (ok && admits(id)) fits[id] = 1;
    }
    // the pieces the walk leaves out: those with part of a character, judged as textFits reads them
    const scratch = state.clone();
    for (const id of this.partialPieces) {
      const piece = this.pieces[id]!;
      if (unquoted && hasQuote(piece)) continue;
      if (admits(id) && textFits(scratch.copyFrom(state), piece)) fits[id] = 1;
    }
    return fits;
  }

  /** Decodes every piece and sorts them for the screens' walk now, rather than at the first screen (once per tokenizer). */
  prepare(): void {
    this.walkOrder();
  }

  /**
   * The walk's order, computed once per tokenizer: the ids of the non-empty pieces without U+FFFD,
   * sorted by their text, and for each the code units it shares with the one before (never half a
   * surrogate pair); the pieces with U+FFFD apart.
   */
  private walkOrder(): { order: Int32Array; shared: Int32Array; plain: Uint8Array; quoted: Uint8Array } {
    if (this.walk !== undefined) return this.walk;
    const ids: number[] = [];
    const partial: number[] = [];
    for (let id = 0; id < this.vocabSize; id++) {
      const piece = this.get(id);
      if (piece.length === 0) continue; // no text: fits nowhere (textFits)
      (piece.includes(PARTIAL) ? partial : ids).push(id);
    }
    const pieces = this.pieces as string[];
    ids.sort((a, b) => (pieces[a] < pieces[b] ? -1 : pieces[a] > pieces[b] ? 1 : 0));
    const shared = new Int32Array(ids.length);
    for (let i = 1; i < ids.length; i++) {
      const a = pieces[ids[i - 1]];
      const b = pieces[ids[i]];
      let n = 0;
      while (n < a.length && n < b.length && a.charCodeAt(n) === b.charCodeAt(n)) n++;
      if (n > 0 && isHighSurrogate(b.charCodeAt(n - 1))) n--;
      shared[i] = n;
    }
    // pieces of only the characters a free JSON string takes as they are (GrammarState.plainRun)
    const plain = Uint8Array.from(ids, (id) => {
      const piece = pieces[id];
      for (let c = 0; c < piece.length; c++) if (!isPlain(piece.charCodeAt(c))) return 0;
      return 1;
    });
    // pieces with a quote or backslash, judged in each state where a screen is shared (GrammarState.interiorKey)
    const quoted = Uint8Array.from(ids, (id) => (hasQuote(pieces[id]) ? 1 : 0));
    this.quoted = Int32Array.from([...ids, ...partial].filter((id) => hasQuote(pieces[id])));
    this.partialPieces = Int32Array.from(partial);
    this.walk = { order: Int32Array.from(ids), shared, plain, quoted };
    return this.walk;
  }

  /** whether the screen of this state is kept, or that of its interior key (a choice that has it needs no other search) */
  hasScreen(state: GrammarState): boolean {
    const interior = interiorScreenKey(state);
    return this.screens.has(state.key) || (interior !== undefined && this.screens.has(interior));
  }

  private decode(ids: number[], skipSpecialTokens = true): string {
    try {
      return this.decoder.decode(ids, { skipSpecialTokens });
    } catch {
      // an id beyond the tokenizer's own vocabulary (an embedding padded past it) has no text
      return '';
    }
  }

  private findAnchor(): { ids: number[]; text: string } | null {
    if (this.anchor !== undefined) return this.anchor;
    this.anchor = null;
    for (let id = 0; id < Math.min(this.vocabSize, 10_000); id++) {
      const text = this.decode([id]);
      if (/^[A-Za-z]{2,8}$/.test(text)) {
        this.anchor = { ids: [id], text };
        break;
      }
    }
    return this.anchor;
  }
}

const piecesByTokenizer = [new WeakMap<TextDecoderLike, TokenPieces>(), new WeakMap<TextDecoderLike, TokenPieces>()];

/** The tokenizer's pieces (with its special tokens' text, or without), shared by every request that uses it. */
export function tokenPieces(decoder: TextDecoderLike, vocabSize: number, keepSpecial = false): TokenPieces {
  const byTokenizer = piecesByTokenizer[keepSpecial ? 1 : 0];
  let pieces = byTokenizer.get(decoder);
  if (pieces === undefined || pieces.vocabSize !== vocabSize) {
    pieces = new TokenPieces(decoder, vocabSize, keepSpecial);
    byTokenizer.set(decoder, pieces);
  }
  return pieces;
}

/** A token's effect: the grammar state after it, and whether its text is settled (no character still partial). */
interface Judged {
  token: number;
  state: GrammarState;
  settled: boolean;
}

export class GrammarConstraint implements TokenConstraint {
  private readonly ids: number[] = [];
  /** ids [prefixOffset, readOffset) decode to `windowText`, the end of the settled text; later ids are partial */
  private prefixOffset = 0;
  private readOffset = 0;
  private windowText = '';
  /** the state of the text read so far (the settled text) */
  private state: GrammarState;
  /** the state before any token's text (after readText's), for a rereading */
  private start: GrammarState;
  /** the judgement of the token `choose` returned, for `commit` */
  private chosen: Judged | null = null;
  /** steps in a row whose lazy draws all failed, and steps since the last lazy try */
  private lazyMisses = 0;
  private sinceLazy = 0;

  constructor(
    private readonly decoder: TextDecoderLike,
    private readonly pieces: TokenPieces,
    /** tokens that would end the generation: allowed only where the state `canEnd` (JSON's closing brace ends it) */
    private readonly stopIds: ReadonlySet<number>,
    private readonly skipSpecialTokens = true,
    /** what the text must become (default: any JSON object; startingState(schema) for a schema's) */
    start: GrammarState = new JsonPrefix(),
  ) {
    this.start = start;
    this.state = start.clone();
  }

  /** the constrained text is complete (the object closed, the match cannot go on): the generation ends */
  get complete(): boolean {
    return this.state.complete;
  }

  /**
   * The next token from this row of (processed) logits, chosen by the sampler among those that
   * keep the text viable; -1 when no token can. Masks rejected tokens in `row` (-∞).
   */
  choose(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number): number {
    if (!this.canEnd) for (const id of this.stopIds) if (id < row.length) row[id] = -Infinity;
    let left = countFinite(row);
    const { temperature, topK, topP, minP, typicalP } = sampler.params;
    // (a draw judged alone is exact only where no cut depends on which other tokens fit)
    const exactWhenLazy = temperature === 0 || (topK === 0 && topP === 1 && minP === 0 && typicalP === 1);
    if (exactWhenLazy && (this.lazyMisses < LAZY_MISSES || ++this.sinceLazy >= LAZY_RETRY)) {
      this.sinceLazy = 0;
      const drawn = this.drawFitting(row, sampler, pickGreedy, LAZY_TRIES, left);
      if (drawn.token >= 0) {
        this.lazyMisses = 0;
        return drawn.token;
      }
      this.lazyMisses++;
      left = drawn.left;
    } else if (topK > 0 && !this.pieces.hasScreen(this.state)) {
      // top-k is exact without a screen: the k most likely tokens that fit, found in descending
      // order; top-p, min-p and typical then act on those alone, as they would after a screen
      const kept = this.bestFitting(row, topK);
      if (kept !== null) {
        for (let id = 0; id < row.length; id++) if (!kept.has(id)) row[id] = -Infinity;
        return this.take(kept.get(sampler.next(row, pickGreedy))!);
      }
    }
    left -= this.screen(row);
    return this.drawFitting(row, sampler, pickGreedy, SCREENED_TRIES, left).token;
  }

  /**
   * Up to `tries` draws from `row`, each judged in context and masked when it does not fit: the
   * first that fits (token -1: none did), and how many tokens are left unmasked (`left` before).
   */
  private drawFitting(row: Float32Array, sampler: Sampler, pickGreedy: (row: Float32Array) => number, tries: number, left: number): { token: number; left: number } {
    for (let t = 0; t < tries && left > 0; t++) {
      const token = sampler.next(row, pickGreedy);
      const judged = this.judge(token);
      if (judged !== null) return { token: this.take(judged), left };
      row[token] = -Infinity;
      left--;
    }
    return { token: -1, left };
  }

  readText(text: string): boolean {
    if (this.ids.length > 0) return false;
    const state = this.start.clone();
    if (text.endsWith(PARTIAL) || !state.push(text)) return false;
    this.start = state;
    this.state = state.clone();
    return true;
  }

  /** Records the token `choose` returned (it must be that token). */
  commit(token: number): void {
    const judged = this.chosen !== null && this.chosen.token === token ? this.chosen : this.judge(token);
    this.chosen = null;
    if (judged === null) throw new Error(`token ${token} does not continue the constrained text`);
    this.ids.push(token);
    if (judged.settled) {
      this.state = judged.state;
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      this.windowText = this.decode(this.prefixOffset, this.readOffset);
    }
  }

  /**
   * The k most likely tokens that continue the text, and those tied with the k-th (top-k keeps
   * ties), each judged in context; null when the most likely few hundred hold fewer than k of
   * them (the caller screens the vocabulary instead).
   */
  private bestFitting(row: Float32Array, k: number): Map<number, Judged> | null {
    const want = Math.max(8 * k, 256);
    let max = -Infinity;
    let finite = 0;
    for (let i = 0; i < row.length; i++) {
      if (row[i] > -Infinity) finite++;
      if (row[i] > max) max = row[i];
    }
    if (finite === 0) return null;
    // the candidates: every token within `span` of the largest logit, the span doubled until there are enough
    let candidates: number[] = [];
    for (let span = 4; ; span *= 2) {
      candidates = [];
      for (let i = 0; i < row.length; i++) if (row[i] >= max - span) candidates.push(i);
      if (candidates.length >= Math.min(want, finite) || span > 1e6) break;
    }
    candidates.sort((a, b) => row[b] - row[a] || a - b);
    const kept = new Map<number, Judged>();
    let kth = -Infinity;
    for (const id of candidates) {
      if (kept.size >= k && row[id] < kth) return kept;
      const judged = this.judge(id);
      if (judged === null) continue;
      kept.set(id, judged);
      if (kept.size === k) kth = row[id];
    }
    // every finite token was a candidate: the ones that fit are all there are
    return candidates.length >= finite && kept.size > 0 ? kept : null;
  }

  private take(judged: Judged): number {
    this.chosen = judged;
    return judged.token;
  }

  private decode(from: number, to: number, extra?: number): string {
    const ids = this.ids.slice(from, to);
    if (extra !== undefined) ids.push(extra);
    return ids.length === 0 ? '' : this.decoder.decode(ids, { skipSpecialTokens: this.skipSpecialTokens });
  }

  /** decode() for a candidate: an id the tokenizer cannot decode (an embedding padded past its vocabulary) is no text, not a failed step */
  private decodeCandidate(from: number, to: number, extra: number): string | null {
    try {
      return this.decode(from, to, extra);
    } catch {
      return null;
    }
  }

  /** a stop token may end the text here: the state allows it and no character is still being decoded */
  private get canEnd(): boolean {
    return this.state.canEnd === true && this.readOffset === this.ids.length;
  }

  /** The state after `token` in context, or null where it breaks the text (or adds nothing). */
  private judge(token: number): Judged | null {
    if (this.stopIds.has(token)) return this.canEnd ? { token, state: this.state, settled: true } : null;
    // a marker is no character of a value (TokenPieces): not inside a string, nor inside a character being decoded
    if (!this.skipSpecialTokens && (this.state.inValueString === true || this.readOffset !== this.ids.length) && this.pieces.isSpecial(token)) return null;
    const after = this.decodeCandidate(this.prefixOffset, this.ids.length, token);
    if (after === null) return null;
    let state: GrammarState;
    let added: string;
    if (after.startsWith(this.windowText)) {
      state = this.state.clone();
      added = after.slice(this.windowText.length);
    } else {
      // the tokenizer rewrote text it had produced (a clean-up rule): read the whole completion again
      state = this.start.clone();
      added = this.decode(0, this.ids.length, token);
    }
    if (!textFits(state, added)) return null;
    return { token, state, settled: !added.endsWith(PARTIAL) };
  }

  /** Masks every token whose piece cannot follow the text so far; returns how many it masked. */
  private screen(row: Float32Array): number {
    const fits = this.pieces.screen(this.state);
    const stops = this.canEnd ? this.stopIds : null;
    let masked = 0;
    for (let id = 0; id < row.length; id++) {
      if (row[id] !== -Infinity && (id >= fits.length || fits[id] === 0) && !(stops?.has(id) ?? false)) {
        row[id] = -Infinity;
        masked++;
      }
    }
    return masked;
  }
}

/**
 * Whether `text`, a token's piece or what it adds in context, can be read from `state` (which it
 * changes): it must add something, and a character still being completed (a trailing U+FFFD) can
 * only go in a string.
 */
const isHighSurrogate = (u: number) => u >= 0xd800 && u <= 0xdbff;

function textFits(state: GrammarState, text: string): boolean {
  const partial = text.endsWith(PARTIAL);
  // a character still being decoded is the one U+FFFD at the end; any before it are bytes that made
  // no character (the decoder writes one each), characters of the text as the grammar will read them
  const settled = partial ? text.slice(0, -1) : text;
  if (settled.length === 0 && !partial) return false; // no text: a special token, or nothing yet
  return state.push(settled) && (!partial || state.inString);
}

function countFinite(row: Float32Array): number {
  let n = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > -Infinity) n++;
  return n;
}
