/**
 * npm run bench:regex-mode [-- --tokenizer DIR] [-- --model DIR] [-- --rounds 5]
 *
 * What a regex or choice constraint (vLLM's structured_outputs regex / choice) costs.
 *
 * 1. Compiling a pattern (refa's automaton; the deterministic states come later, lazily): a date,
 *    a list of 1,024 choices, and a pattern whose full DFA has 2^21 states.
 * 2. The token choice on rows of made-up logits (normal, σ = 3) over the tokenizer's vocabulary,
 *    in states of those patterns: a state's first screen (every token's text pushed through the
 *    automaton), and a step with the screen kept, greedy and top-p 0.9, against the plain sampler.
 * 3. Whole greedy decodes of a model (default: the shipped Mixtral-shaped one), tokens/s free
 *    against held to a regex and to a choice, alternated per round (the machine is noisy).
 */
import path from 'node:path';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createEngine } from '../src/engine/index.js';
import { BatchDecoder, loadTextCodec, Sampler, weightProviderOf, type GenerationParams } from '../src/runtime/index.js';
import type { TokenPieces } from '../src/runtime/generation/grammar-constraint.js';
import { allPieces, argmax, constraintAt as constraintAtState, constraintBenchFlags, firstScreenMs, freshPieces, madeUpRows, median, tokenizerVocabSize } from './lib/constraint-bench.js';
import { choicePattern, compileRegex, RegexPrefix } from '../src/runtime/generation/regex-prefix.js';

const flags = constraintBenchFlags(32);
const { rounds } = flags;
const log = (s: string) => process.stderr.write(`${s}\n`);

const DATE = '(19|20)\\d\\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])';
const CHOICES = Array.from({ length: 1024 }, (_, i) => `category ${i}: ${['north', 'south', 'east', 'west'][i % 4]} ${Math.floor(i / 4)}`);
const EXPLODING = '(a|b)*a(a|b){20}';
const SENTENCE = '[A-Z][a-z]+( [a-z]+){2,12}[.!?]';
/** lookaheads: Pydantic's condecimal(max_digits=5, decimal_places=2), and a password rule of four */
const DECIMAL = '^(?!^[-+.]*$)[+-]?0*(?:\\d{0,3}|(?=[\\d.]{1,6}0*$)\\d{0,3}\\.\\d{0,2}0*$)';
const PASSWORD = '(?=.*\\d)(?=.*[a-z])(?=.*[A-Z])(?=.*[!@#$%^&*]).{8,64}';

// ---- 1. compiling ----------------------------------------------------------------------------
const compileMs: Array<{ pattern: string; ms: number }> = [];
for (const [name, pattern] of [['date', DATE], ['1,024 choices', choicePattern(CHOICES)], ['(a|b)*a(a|b){20}', EXPLODING], ['sentence', SENTENCE], ['condecimal (lookaheads)', DECIMAL], ['password rule (4 lookaheads)', PASSWORD]] as const) {
  const t0 = performance.now();
  compileRegex(pattern);
  compileMs.push({ pattern: name, ms: performance.now() - t0 });
}

// ---- 2. the choice alone ---------------------------------------------------------------------
const codec = await loadTextCodec(flags.tokenizer ?? flags.model);
const vocab = tokenizerVocabSize(flags.tokenizer ?? flags.model);
const rows = madeUpRows(vocab, 16, 7);

/** a constraint of `pattern` after the text `after` (fed as the tokenizer encodes it) */
const constraintAt = (pieces: TokenPieces, pattern: string, after: string) => constraintAtState(codec, pieces, new RegexPrefix(compileRegex(pattern)), after);

const states: Array<[string, string, string]> = [
  ['date, at the start', DATE, ''],
  ['date, after "19"', DATE, '19'],
  ['1,024 choices, at the start', choicePattern(CHOICES), ''],
  ['1,024 choices, after "category 1"', choicePattern(CHOICES), 'category 1'],
  ['(a|b)*a(a|b){20}, after "ab"', EXPLODING, 'ab'],
  ['sentence, after "The king"', SENTENCE, 'The king'],
];
log(`tokenizer: ${flags.tokenizer ?? flags.model} (${vocab} tokens)`);
const { pieces, ms: piecesMs } = allPieces(codec, vocab);
const fresh = freshPieces(codec, vocab, 5);
let t0: number;
const choice: Array<{ state: string; firstScreenMs: number; plainGreedyUs: number; greedyUs: number; plainTopPUs: number; topPUs: number }> = [];
for (const [name, pattern, after] of states) {
  const firstScreen = firstScreenMs(fresh, (p) => constraintAt(p, pattern, after), rows[0]);
  firstScreenMs([pieces], (p) => constraintAt(p, pattern, after), rows[0]); // the step timings below run with the screen kept
  const per = { greedy: { temperature: 0 }, topP: { temperature: 1, topP: 0.9 } };
  const us: Record<string, number[]> = { plainGreedy: [], greedy: [], plainTopP: [], topP: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [k, params] of Object.entries(per)) {
      const plain = new Sampler({ ...params, seed: r });
      t0 = performance.now();
      for (const row of rows) plain.next(Float32Array.from(row), argmax);
      us[k === 'greedy' ? 'plainGreedy' : 'plainTopP'].push(((performance.now() - t0) * 1000) / rows.length);
      const held = new Sampler({ ...params, seed: r });
      const c = constraintAt(pieces, pattern, after);
      t0 = performance.now();
      for (const row of rows) c.choose(Float32Array.from(row), held, argmax);
      us[k].push(((performance.now() - t0) * 1000) / rows.length);
    }
  }
  choice.push({ state: name, firstScreenMs: firstScreen, plainGreedyUs: median(us.plainGreedy), greedyUs: median(us.greedy), plainTopPUs: median(us.plainTopP), topPUs: median(us.topP) });
}

// ---- 3. whole decodes ------------------------------------------------------------------------
const ckpt = await openCheckpoint(flags.model);
const modelCodec = await loadTextCodec(flags.model);
const { engine } = await createEngine('auto', { threads: 1 });
const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1, tokenizer: modelCodec });
const { newTokens } = flags;
const prompts = ['ROMEO:\n', 'First Citizen:\nBefore we proceed any further, hear me speak.\n', 'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n'].map((p) => Array.from(modelCodec.encode(p)));
const formats: Record<string, GenerationParams['responseFormat']> = { free: 'text', 'regex (sentence)': { regex: SENTENCE }, 'regex ([a-z ,.]+)': { regex: '[a-z ,.]+' }, '1,024 choices': { choice: CHOICES } };
const decodes: Record<string, Array<{ tokens: number; seconds: number }>> = Object.fromEntries(Object.keys(formats).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, responseFormat] of Object.entries(formats)) {
    let tokens = 0;
    t0 = performance.now();
    for (const prompt of prompts) {
      for await (const e of decoder.submit(prompt, { temperature: 0, maxNewTokens: newTokens, responseFormat })) if (e.type === 'token') tokens++;
    }
    decodes[name].push({ tokens, seconds: (performance.now() - t0) / 1000 });
  }
}
await decoder.close();
await ckpt.close();
engine.dispose();

// ---- report ----------------------------------------------------------------------------------
console.log(`\ncompiling (ms): ${compileMs.map((c) => `${c.pattern} ${c.ms.toFixed(1)}`).join(', ')}`);
console.log(`every token's piece, decoded and sorted, once per tokenizer: ${piecesMs.toFixed(0)} ms (${vocab} tokens)\n`);
console.log('| state | first screen | greedy: plain | held | top-p 0.9: plain | held |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const c of choice) console.log(`| ${c.state} | ${c.firstScreenMs.toFixed(1)} ms | ${c.plainGreedyUs.toFixed(0)} µs | ${c.greedyUs.toFixed(0)} µs | ${c.plainTopPUs.toFixed(0)} µs | ${c.topPUs.toFixed(0)} µs |`);
console.log(`\nwhole greedy decodes, ${path.basename(flags.model)}, ${prompts.length} prompts × up to ${newTokens} tokens, medians of ${rounds} rounds:\n`);
console.log('| format | tokens | tokens/s | ÷ free |');
console.log('|---|---:|---:|---:|');
const rate = (xs: Array<{ tokens: number; seconds: number }>) => median(xs.map((x) => x.tokens / x.seconds));
for (const [name, xs] of Object.entries(decodes)) console.log(`| ${name} | ${median(xs.map((x) => x.tokens))} | ${rate(xs).toFixed(0)} | ${(rate(xs) / rate(decodes.free)).toFixed(2)} |`);
