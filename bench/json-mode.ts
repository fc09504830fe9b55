/**
 * npm run bench:json-mode [-- --tokenizer DIR] [-- --model DIR] [-- --rounds 5]
 *
 * What JSON mode (response_format json_object) costs a decoding step.
 *
 * 1. The token choice alone, on rows of made-up logits (normal, σ = 3) over the tokenizer's
 *    vocabulary: the plain sampler against JSON mode's choice, in two states: inside a string
 *    (the model's own pick nearly always fits, so the choice stays lazy) and after a comma in an
 *    object (only a key may follow, so the lazy tries fail and the vocabulary is screened; the
 *    screen of a state is kept, and its first use is reported apart); and two of a schema's
 *    field rules, inside a date-time and inside a bounded integer (few tokens fit). Greedy, top-p 0.9, and
 *    top-k 20 with top-p 0.8 (Qwen3's defaults; top-k finds its tokens without a screen).
 * 2. Whole decodes of a model (default: the shipped Mixtral-shaped one): tokens/s with and without
 *    JSON mode on the same prompts, greedy and sampled (temperature 1), alternated per round (the
 *    machine is noisy). The shipped models do not write JSON, so in JSON mode most of their draws
 *    miss: the case where the choice costs most.
 *
 * `--tokenizer` takes any model directory or tokenizer.json (default: the model's), e.g. one with
 * a large vocabulary, where the screen costs most.
 */
import path from 'node:path';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createEngine } from '../src/engine/index.js';
import { BatchDecoder, loadTextCodec, Sampler, weightProviderOf, type TextCodec } from '../src/runtime/index.js';
import { startingState, type GrammarState, type TokenPieces } from '../src/runtime/generation/grammar-constraint.js';
import { allPieces, argmax, constraintAt as constraintAtState, constraintBenchFlags, firstScreenMs, freshPieces, madeUpRows, median, tokenizerVocabSize } from './lib/constraint-bench.js';

const flags = constraintBenchFlags(64);
const { rounds } = flags;
const log = (s: string) => process.stderr.write(`${s}\n`);

// ---- 1. the choice alone -------------------------------------------------------------------
const codec = await loadTextCodec(flags.tokenizer ?? flags.model);
const vocab = tokenizerVocabSize(flags.tokenizer ?? flags.model);
const rows = madeUpRows(vocab, 16, 7);

/** a schema of the kind structured-output clients send, whose fields the states below are in */
const SCHEMA = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer' }, house: { enum: ['Montague', 'Capulet'] }, friends: { type: 'array', items: { type: 'string' } } },
  required: ['name', 'age', 'house', 'friends'],
  additionalProperties: false,
};

/**
 * A schema with the field rules Pydantic writes (string-rules.ts, number-range.ts): a format and a
 * bounded integer, whose states are keyed by what was written of them, so a screened choice screens
 * afresh at most steps; set beside the free string of SCHEMA.
 */
const RULED = {
  type: 'object',
  properties: { when: { type: 'string', format: 'date-time' }, age: { type: 'integer', minimum: 13, maximum: 120 }, code: { type: 'string', pattern: '^[A-Z]{3}-\\d{2}$' } },
  required: ['when', 'age', 'code'],
  additionalProperties: false,
};

/** dictionaries as Pydantic writes them, of constrained keys (a str of a pattern; UUIDs) and of any str: keys held to a rule or free, screened as they are written */
const DICTS = {
  type: 'object',
  properties: {
    counts: { type: 'object', patternProperties: { '^[a-z]{1,8}$': { type: 'integer' } } },
    owners: { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { format: 'uuid' } },
    scores: { type: 'object', additionalProperties: { type: 'number' } },
  },
  required: ['counts', 'owners'],
  additionalProperties: false,
};

const constraintAt = (pieces: TokenPieces, text: string, schema?: object) => constraintAtState(codec, pieces, startingState(schema), text);

/** each state's text and schema: json_object's (undefined) unless given */
const states: Record<string, [string, object?]> = {
  'inside a string': ['{"name": "Ro'],
  'after a comma': ['{"name": "Romeo", '],
  'inside a date-time (format)': ['{"when": "2024-0', RULED],
  'inside a bounded integer': ['{"when": "2024-01-01T00:00:00Z", "age": 1', RULED],
  'inside a key of a pattern (patternProperties)': ['{"counts": {"ab', DICTS],
  'after a comma among keys of a pattern': ['{"counts": {"ab": 1, ', DICTS],
  'inside a key of a format (propertyNames)': ['{"counts": {}, "owners": {"123e', DICTS],
  'inside a key of any name (additionalProperties)': ['{"counts": {}, "owners": {}, "scores": {"Rom', DICTS],
};
const samplers = { greedy: { temperature: 0 }, 'top-p 0.9': { temperature: 1, topP: 0.9 }, 'top-k 20, top-p 0.8': { temperature: 0.7, topK: 20, topP: 0.8 } };
log(`tokenizer: ${flags.tokenizer ?? flags.model} (${vocab} tokens)`);
const { pieces, ms: piecesMs } = allPieces(codec, vocab);
let t0: number;
const firstScreen: Record<string, number> = {};
{
  const fresh = freshPieces(codec, vocab, 5);
  for (const [name, text] of Object.entries({ 'inside a string': states['inside a string'][0], 'after a comma': states['after a comma'][0], 'an integer': '{"name": "Romeo", "age": 1' })) {
    for (const [grammar, schema] of [['json_object', undefined], ['schema', SCHEMA]] as const) firstScreen[`${name}, ${grammar}`] = firstScreenMs(fresh, (p) => constraintAt(p, text, schema), rows[0]);
  }
  for (const name of ['inside a date-time (format)', 'inside a bounded integer', 'inside a key of a pattern (patternProperties)', 'after a comma among keys of a pattern', 'inside a key of a format (propertyNames)', 'inside a key of any name (additionalProperties)']) firstScreen[name] = firstScreenMs(fresh, (p) => constraintAt(p, states[name][0], states[name][1]), rows[0]);
}
/**
 * Dictionaries written character by character, every state inside a key screened in turn (as a
 * top-p decode screens each step), on fresh pieces: the screens a request's keys cost, where each
 * step inside a key is a state of its own (its text so far). Total ms per dictionary; the median
 * over 3 fresh sets of pieces.
 */
const KEYED = {
  'keys of a pattern (8 keys)': '{"counts": {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4, "omega": 5, "sigma": 6, "kappa": 7, "theta": 8}',
  'UUID keys (3 keys)': '{"counts": {}, "owners": {"123e4567-e89b-12d3-a456-426614174000": "a", "00000000-0000-0000-0000-000000000001": "b", "c0ffee00-1234-4abc-8def-000000000002": "c"}',
  'keys of any name (8 keys)': '{"counts": {}, "owners": {}, "scores": {"Romeo": 1, "Juliet": 2, "Mercutio": 3, "Tybalt": 4, "Benvolio": 5, "Paris": 6, "Capulet": 7, "Montague": 8}',
};
const keyed: Record<string, { steps: number; ms: number }> = {};
for (const [name, text] of Object.entries(KEYED)) {
  // the states from a key's opening quote up to its last character (every "…": of the text is a key)
  const inside = new Set<number>();
  for (const m of text.matchAll(/"([^"]*)":/g)) for (let i = m.index; i < m.index + 1 + m[1].length; i++) inside.add(i);
  const keyStates: GrammarState[] = [];
  const walk = startingState(DICTS);
  for (let i = 0; i < text.length; i++) {
    if (!walk.push(text[i])) throw new Error(`${name}: the text leaves the schema at ${i}`);
    if (inside.has(i)) keyStates.push(walk.clone());
  }
  const times = freshPieces(codec, vocab, 3).map((fresh) => {
    const t = performance.now();
    for (const state of keyStates) fresh.screen(state);
    return performance.now() - t;
  });
  keyed[name] = { steps: keyStates.length, ms: median(times) };
}

// the step timings below run with each state's screen kept, as a served tokenizer's are
for (const [text, schema] of Object.values(states)) firstScreenMs([pieces], (p) => constraintAt(p, text, schema), rows[0]);
const { pieces: unscreened } = allPieces(codec, vocab);
const choice: Array<{ state: string; sampler: string; plainUs: number; jsonUs: number }> = [];
for (const [state, [text, schema]] of Object.entries(states)) {
  for (const [sName, params] of Object.entries(samplers)) {
    const plain: number[] = [];
    const json: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const s1 = new Sampler({ ...params, seed: r });
      t0 = performance.now();
      for (const row of rows) s1.next(Float32Array.from(row), argmax);
      plain.push(((performance.now() - t0) * 1000) / rows.length);
      const s2 = new Sampler({ ...params, seed: r });
      // top-k needs no screen, so it gets pieces without the screens the other rows kept
      const c = constraintAt(params === samplers['top-k 20, top-p 0.8'] ? unscreened : pieces, text, schema);
      t0 = performance.now();
      for (const row of rows) c.choose(Float32Array.from(row), s2, argmax);
      json.push(((performance.now() - t0) * 1000) / rows.length);
    }
    choice.push({ state, sampler: sName, plainUs: median(plain), jsonUs: median(json) });
  }
}

// ---- 2. whole decodes ------------------------------------------------------------------------
const { engine, notice } = await createEngine('auto', { threads: 1 });
log(notice);
const ckpt = await openCheckpoint(flags.model);
const modelCodec: TextCodec = await loadTextCodec(flags.model);
const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1, tokenizer: modelCodec });
const prompts = ['ROMEO:', 'First Citizen:\n', 'Describe the king as JSON.', 'JULIET:\nO Romeo'].map((p) => Array.from(modelCodec.encode(p)));
const { newTokens } = flags;
async function decodeAll(json: boolean, temperature: number, seed: number): Promise<{ tokens: number; seconds: number }> {
  let tokens = 0;
  const t = performance.now();
  for (const p of prompts) {
    for await (const e of decoder.submit(p, { temperature, seed, maxNewTokens: newTokens, ...(json ? { responseFormat: 'json_object' as const } : {}) })) if (e.type === 'token') tokens++;
  }
  return { tokens, seconds: (performance.now() - t) / 1000 };
}
await decodeAll(false, 0, 0);
await decodeAll(true, 0, 0);
const rates = { greedy: { plain: [] as number[], json: [] as number[] }, 'temperature 1': { plain: [] as number[], json: [] as number[] } };
for (let r = 0; r < rounds; r++) {
  for (const [name, temperature] of [['greedy', 0], ['temperature 1', 1]] as const) {
    const a = await decodeAll(false, temperature, r);
    rates[name].plain.push(a.tokens / a.seconds);
    const b = await decodeAll(true, temperature, r);
    rates[name].json.push(b.tokens / b.seconds);
  }
}
await decoder.close();
await ckpt.close();
engine.dispose();

const lines = [
  `Token choice, ${vocab}-token vocabulary (µs a step, medians of ${rounds} rounds of 16 rows):`,
  '',
  '| state | sampler | plain | held | held ÷ plain |',
  '|---|---|---:|---:|---:|',
  ...choice.map((c) => `| ${c.state} | ${c.sampler} | ${c.plainUs.toFixed(0)} | ${c.jsonUs.toFixed(0)} | ${(c.jsonUs / c.plainUs).toFixed(2)} |`),
  '',
  `Keys screened at every step inside them (fresh pieces, medians of 3): ${Object.entries(keyed)
    .map(([k, v]) => `${k}: ${v.steps} steps, ${v.ms.toFixed(0)} ms (${(v.ms / v.steps).toFixed(1)} ms a step)`)
    .join('; ')}.`,
  '',
  `Once per tokenizer: every token's piece, decoded and sorted, ${piecesMs.toFixed(0)} ms. A state's first screen (kept for the next time; medians of 5 fresh sets of pieces): ${Object.entries(firstScreen)
    .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
    .join(', ')}.`,
  '',
  ...Object.entries(rates).map(
    ([name, r]) =>
      `${name[0].toUpperCase()}${name.slice(1)} decodes of ${path.basename(flags.model)} (${prompts.length} prompts × up to ${newTokens} tokens, tokens/s, medians of ${rounds} rounds): plain ${median(r.plain).toFixed(0)}, JSON mode ${median(r.json).toFixed(0)}, JSON ÷ plain ${(median(r.json) / median(r.plain)).toFixed(2)}.`,
  ),
];
process.stdout.write(lines.join('\n') + '\n');
