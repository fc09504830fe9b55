/**
 * CallsOrAnswer: tool_choice "auto" with a response format. A scripted model (rows of logits that
 * favour one token) writes with the shipped model's tokenizer. Truth: the constraints it composes,
 * each already held to its own truth (a digits regex for the answer, a JSON object after the
 * block's opening for the calls): a completion that opens the block is the calls' text, any other
 * the answer's, decided by the first draw that cannot begin the opening.
 */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GrammarConstraint, TokenPieces, type GrammarState } from '../../src/runtime/generation/grammar-constraint.js';
import { CallsOrAnswer } from '../../src/runtime/generation/calls-or-answer.js';
import { JsonPrefix } from '../../src/runtime/generation/json-prefix.js';
import { ReasoningGate } from '../../src/runtime/generation/reasoning-gate.js';
import { compileRegex, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';
import { TriggeredConstraint } from '../../src/runtime/generation/triggered-constraint.js';
import type { TokenConstraint } from '../../src/runtime/generation/grammar-constraint.js';
import { GenerationParamsError, loadTextCodec, type TextCodec } from '../../src/runtime/index.js';
import { viableJsonObject } from '../helpers/json-judge.js';
import { repoRoot } from '../helpers/shared-data.js';
import { chooseFavourites } from '../helpers/scripted-model.js';
import { withShippedDecoder } from '../helpers/shipped-decoder.js';
import { createEngine } from '../../src/engine/index.js';

const MODEL = path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare');
let codec: TextCodec;
let pieces: TokenPieces;
const VOCAB = 4096;
beforeAll(async () => {
  codec = await loadTextCodec(MODEL);
  pieces = new TokenPieces(codec, VOCAB);
});

const hold = (state: GrammarState) => new GrammarConstraint(codec, pieces, new Set(), true, state);
const digits = () => hold(new RegexPrefix(compileRegex('\\d+')));
/** a block opened by CALL, a JSON object after it */
const calls = () => new TriggeredConstraint(codec, 'CALL', new JsonPrefix(), hold, true, true);
const either = (answer: TokenConstraint = digits()) => new CallsOrAnswer(codec, 'CALL', calls(), answer);

/** Feeds `text`'s tokens as the model's favourites (until the constraint is complete); the text chosen. */
const write = (c: TokenConstraint, text: string): string => codec.decode(chooseFavourites(c, VOCAB, codec.encode(text)));

describe('CallsOrAnswer', () => {
  it('a completion that does not open the block is the answer, held from its first token', () => {
    const c = either();
    expect(write(c, 'Romeo')).toMatch(/^\d+$/);
    // a beginning of the opening that turns away is the answer from the draw that turned
    const turned = either();
    expect(write(turned, 'CA')).toBe('CA');
    expect(write(turned, 'Romeo')).toMatch(/^\d+$/);
  });

  it('a completion that opens the block is held as the calls are, after whitespace too', () => {
    for (const lead of ['', '\n ']) {
      const c = either();
      expect(write(c, `${lead}CALL`)).toBe(`${lead}CALL`);
      const after = write(c, ' Romeo and Juliet');
      // the calls' constraint holds what follows the opening to a JSON object
      expect(viableJsonObject(after.trimStart()) || after.trim() === '').toBe(true);
      expect(after).not.toContain('Romeo');
      expect(write(c, '{"a": 1}')).toBe('{"a": 1}');
      expect(c.complete).toBe(true);
    }
  });

  it('text read before the first token (after </think> in its own token) counts as the beginning', () => {
    const opened = either();
    expect(opened.readText('\n\nCALL')).toBe(true);
    expect(write(opened, '{"b": 2}')).toBe('{"b": 2}');
    expect(opened.complete).toBe(true);
    // whitespace, then an answer: the answer's format holds from the next token
    const answered = either();
    expect(answered.readText('\n')).toBe(true);
    expect(write(answered, 'Romeo')).toMatch(/^\d+$/);
  });

  it('behind a reasoning gate: free reasoning, then the calls or the answer', () => {
    const gated = () => new ReasoningGate(codec, { start: '<think>', end: '</think>', state: 'reasoning' }, either());
    const toCalls = gated();
    expect(write(toCalls, 'I shall call. </think>CALL')).toContain('I shall call.');
    expect(write(toCalls, '{"c": 3}')).toBe('{"c": 3}');
    expect(toCalls.complete).toBe(true);
    const toAnswer = gated();
    write(toAnswer, 'No call. </think>');
    expect(write(toAnswer, 'Juliet')).toMatch(/^\d+$/);
  });

  it('through the decoder: callsInstead needs a response format, and its held calls its opening as their trigger', async () => {
    const { engine } = await createEngine('auto', { threads: 1 });
    try {
      await withShippedDecoder(engine, 'mixtral-tiny-shakespeare', async (decoder) => {
        expect(() => decoder.submit([1, 2], { callsInstead: { start: 'CALL' } })).toThrow(GenerationParamsError);
        expect(() => decoder.submit([1, 2], { responseFormat: 'json_object', callsInstead: { start: 'CALL', held: { jsonSchema: {}, trigger: 'OTHER' } } })).toThrow(/triggered at callsInstead.start/);
        expect(() => decoder.submit([1, 2], { responseFormat: 'json_object', callsInstead: { start: '' } })).toThrow(/non-empty/);
      });
    } finally {
      engine.dispose();
    }
  });
});
