/**
 * ReasoningGate: a response format holds the answer, not the reasoning before it. A scripted
 * model (rows of logits that favour one token) writes with the shipped model's tokenizer; the
 * inner constraint is a regex of digits. While the model reasons its favourite is taken even
 * where the regex refuses it; from the first token after `</think>` the regex holds (the
 * favourite, a letter, is refused and a digit chosen instead).
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GrammarConstraint, TokenPieces, type GrammarState } from '../../src/runtime/generation/grammar-constraint.js';
import type { AddressedCalls } from '../../src/runtime/generation/addressed-call-prefix.js';
import { ReasoningGate, type ReasoningStart } from '../../src/runtime/generation/reasoning-gate.js';
import { JsonPrefix } from '../../src/runtime/generation/json-prefix.js';
import { compileRegex, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';
import { TriggeredConstraint } from '../../src/runtime/generation/triggered-constraint.js';
import type { TokenConstraint } from '../../src/runtime/generation/grammar-constraint.js';
import { loadTextCodec, Sampler, type TextCodec } from '../../src/runtime/index.js';
import { repoRoot } from '../helpers/shared-data.js';

let codec: TextCodec;
let vocab: number;
let pieces: TokenPieces;
beforeAll(async () => {
  codec = await loadTextCodec(path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare'));
  vocab = 4096;
  pieces = new TokenPieces(codec, vocab);
});

const argmax = (r: Float32Array) => {
  let b = 0;
  for (let i = 1; i < r.length; i++) if (r[i] > r[b]) b = i;
  return b;
};

/** a gate over a digits regex, starting in `state` */
const gate = (state: ReasoningStart) => new ReasoningGate(codec, { start: '<think>', end: '</think>', state }, new GrammarConstraint(codec, pieces, new Set(), true, new RegexPrefix(compileRegex('\\d+'))));

/** Feeds `text`'s tokens as the model's favourites, one step each; the tokens the gate chose. */
function write(g: ReasoningGate, text: string): number[] {
  const chosen: number[] = [];
  for (const t of codec.encode(text)) {
    const row = new Float32Array(vocab).fill(0);
    row[t] = 10;
    const token = g.choose(row, new Sampler({ temperature: 0 }), argmax);
    g.commit(token);
    chosen.push(token);
  }
  return chosen;
}

describe('ReasoningGate', () => {
  it('open reasoning (the prompt opened it): free until the end tag, the format from the next token', () => {
    const g = gate('reasoning');
    const thinking = 'The answer is plain words </think>';
    expect(codec.decode(write(g, thinking))).toBe(codec.decode(Array.from(codec.encode(thinking))));
    // the model now favours a letter; the regex refuses it, so the choice is a digit
    const answer = write(g, 'Juliet');
    expect(codec.decode(answer)).toMatch(/^\d+$/);
  });

  it('maybe: the model opens the block itself, or answers at once under the format', () => {
    const opened = gate('maybe');
    expect(codec.decode(write(opened, '  <think> words, not digits </think>'))).toContain('words, not digits');
    expect(codec.decode(write(opened, 'Romeo'))).toMatch(/^\d+$/);
    // a first favourite that cannot begin the start tag: the format holds from that very token
    const direct = gate('maybe');
    expect(codec.decode(write(direct, 'Romeo'))).toMatch(/^\d+$/);
    // a block opened and closed in one go
    const both = gate('maybe');
    write(both, '<think></think>');
    expect(codec.decode(write(both, 'x'))).toMatch(/^\d+$/);
  });

  it('addressedCalls: a call addressed while reasoning is held from its address, and ends the generation when it closes', () => {
    const calls: AddressedCalls = { trigger: 'CALL ', functions: [{ name: 'count', schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } }], bodyOpens: ':', refuses: ['</think>'] };
    const hold = (state: GrammarState) => new GrammarConstraint(codec, pieces, new Set(), true, state);
    const digits = () => new GrammarConstraint(codec, pieces, new Set(), true, new RegexPrefix(compileRegex('\\d+')));
    const addressing = (state: ReasoningStart, inner: TokenConstraint | null = digits()) => new ReasoningGate(codec, { start: '<think>', end: '</think>', addressedCalls: calls, state }, inner, hold);
    const g = addressing('reasoning');
    const before = 'Plain words, then CALL ';
    expect(codec.decode(write(g, before))).toBe(codec.decode(Array.from(codec.encode(before))));
    // the model favours a name not offered: the name is held to count's
    expect(codec.decode(write(g, 'Juliet'))).toMatch(/^c/);
    expect(g.complete).toBe(false);
    // the model's own header and arguments, where they fit, are kept; the call's close ends it
    const g2 = addressing('reasoning');
    write(g2, before);
    expect(codec.decode(write(g2, 'count :{"n": 12}'))).toBe('count :{"n": 12}');
    expect(g2.complete).toBe(true);
    // maybe: the block opened and a call addressed in the first tokens
    const m = addressing('maybe');
    write(m, '<think> so CALL count');
    expect(codec.decode(write(m, ':{"n": 5}'))).toBe(':{"n": 5}');
    expect(m.complete).toBe(true);
    // the end tag first: the answer is the inner constraint's, and an address there is not held as a call
    const ended = addressing('reasoning');
    write(ended, 'words </think>');
    expect(codec.decode(write(ended, 'CALL Juliet'))).toMatch(/^\d+$/);
    // without an inner constraint the answer is free
    const free = addressing('reasoning', null);
    write(free, 'words </think>');
    expect(codec.decode(write(free, 'CALL Juliet'))).toContain('Juliet');
    expect(free.complete).toBe(false);
    // without a way to hold it (no hold given), the same text is still reasoning
    const unheld = new ReasoningGate(codec, { start: '<think>', end: '</think>', addressedCalls: calls, state: 'reasoning' }, digits());
    expect(codec.decode(write(unheld, 'CALL Juliet'))).toContain('Juliet');
  });

  it('answer: the format holds from the first token', () => {
    const g = gate('answer');
    expect(codec.decode(write(g, '<think>'))).toMatch(/^\d+$/);
  });
});

/**
 * A vocabulary that splits the tags and runs a piece on past them (as GPT-2-style BPE can): the
 * end tag's last token `>x` carries the answer's first character.
 */
const PIECES = ['</', 'think', '>', '>x', 'x', '1', '2', 'a', '>T', '{', '}', '<', 'T'];
const pieceCodec = { decode: (ids: number[]) => ids.map((id) => PIECES[id]).join('') };

/** the tokens of `pieces` as the model's favourites, one step each; the text the gate chose */
function writePieces(g: TokenConstraint, pieces: string[]): string {
  let text = '';
  for (const piece of pieces) {
    const row = new Float32Array(PIECES.length).fill(0);
    row[PIECES.indexOf(piece)] = 10;
    const token = g.choose(row, new Sampler({ temperature: 0 }), argmax);
    g.commit(token);
    text += PIECES[token];
  }
  return text;
}

describe('ReasoningGate: the answer begun in the end tag\'s own token', () => {
  const regexGate = (state: ReasoningStart) =>
    new ReasoningGate(pieceCodec, { start: '<think>', end: '</think>', state }, new GrammarConstraint(pieceCodec, new TokenPieces(pieceCodec, PIECES.length), new Set(), true, new RegexPrefix(compileRegex('x\\d'))));

  it('the text after the tag is read by the format: `>x` then a digit, not a second x', () => {
    const g = regexGate('reasoning');
    expect(writePieces(g, ['a', '</', 'think', '>x'])).toBe('a</think>x');
    // the format x\d has read the x: the model's favourite x is refused, a digit is chosen
    expect(writePieces(g, ['x'])).toMatch(/^\d$/);
    expect(g.complete).toBe(true);
  });

  it('the same where the model opened and closed the block itself (maybe)', () => {
    const g = regexGate('maybe');
    writePieces(g, ['<', 'think', '>', 'a', '</', 'think', '>x']);
    expect(writePieces(g, ['x'])).toMatch(/^\d$/);
  });

  it('text that breaks the format: the format holds from the next token', () => {
    const g = regexGate('reasoning');
    writePieces(g, ['</', 'think', '>T']);
    expect(writePieces(g, ['a', '1'])).toBe('x1');
  });

  it('a tool call trigger in the end tag\'s token starts the call grammar', () => {
    const triggered = () => new TriggeredConstraint(pieceCodec, 'T', new JsonPrefix(), (state) => new GrammarConstraint(pieceCodec, new TokenPieces(pieceCodec, PIECES.length), new Set(), true, state));
    const g = new ReasoningGate(pieceCodec, { start: '<think>', end: '</think>', state: 'reasoning' }, triggered());
    writePieces(g, ['</', 'think', '>T']);
    // held to JSON: the favourite `a` is refused and the object opens
    expect(writePieces(g, ['a'])).toBe('{');
    // a trigger split between the end tag's token and the next
    const split = new ReasoningGate(pieceCodec, { start: '<think>', end: '</think>', state: 'reasoning' }, new TriggeredConstraint(pieceCodec, 'xT', new JsonPrefix(), (state) => new GrammarConstraint(pieceCodec, new TokenPieces(pieceCodec, PIECES.length), new Set(), true, state)));
    writePieces(split, ['</', 'think', '>x', 'T']);
    expect(writePieces(split, ['a'])).toBe('{');
  });
});
