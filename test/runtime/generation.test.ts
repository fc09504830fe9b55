/**
 * The generation module against independent truth: sampling distributions against a direct
 * computation of HF's warpers (temperature → top-k → top-p) in f64, seeded reproducibility,
 * stop-string streaming, and the continuous-batching decoder against decoding each sequence
 * alone (KV-slot reuse, batched steps, aborts that free their slot, context limits).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import {
  argmax,
  batchFromSequences,
  BatchDecoder,
  CheckpointWeights,
  ContextLengthError,
  DecoderClosedError,
  generateAll,
  GenerationParamsError,
  KvCache,
  loadTextCodec,
  runDecoder,
  Sampler,
  samplingDistribution,
  StopTextStream,
  type GenerationEvent,
  type GenerationStream,
} from '../../src/runtime/index.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';

const work = mkdtempSync(path.join(tmpdir(), 'rfid-gen-'));
const engine = createTsEngine({ threads: 1 });
const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
  engine.dispose();
  rmSync(work, { recursive: true, force: true });
});

async function tinyModel(family: 'mixtral' | 'qwen3_moe' = 'mixtral', seed = 4) {
  const dir = path.join(work, `${family}-${seed}`);
  await makeTinyCheckpoint(dir, family, { seed, vocabSize: 96 });
  const ckpt = await openCheckpoint(dir);
  closers.push(() => ckpt.close());
  return new CheckpointWeights(ckpt);
}

/** The tiny Mixtral with a sliding window of `window` on every layer: its KV cache drops what no row can attend to. */
async function windowedModel(window: number, seed = 4) {
  const dir = path.join(work, `mixtral-w${window}-${seed}`);
  await makeTinyCheckpoint(dir, 'mixtral', { seed, vocabSize: 96 });
  const configPath = path.join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), sliding_window: window }));
  const ckpt = await openCheckpoint(dir);
  closers.push(() => ckpt.close());
  return new CheckpointWeights(ckpt);
}

/** A stream's tokens and its prompt's log-probabilities. */
async function tokensAndPromptLogprobs(stream: GenerationStream): Promise<{ tokens: number[]; promptLogprobs: unknown }> {
  const tokens: number[] = [];
  let promptLogprobs: unknown;
  for await (const e of stream) if (e.type === 'token') (tokens.push(e.token), (promptLogprobs ??= e.promptLogprobs));
  return { tokens, promptLogprobs };
}

/** Each prompt decoded alone, a decoder of its own. */
async function eachAlone(provider: CheckpointWeights, prompts: number[][], params: Parameters<BatchDecoder['submit']>[1]) {
  const alone = [];
  for (const p of prompts) {
    const d = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
    alone.push(await tokensAndPromptLogprobs(d.submit(p, params)));
    await d.close();
  }
  return alone;
}

async function collect(stream: GenerationStream): Promise<{ tokens: number[]; end: Extract<GenerationEvent, { type: 'end' }> }> {
  const tokens: number[] = [];
  for await (const e of stream) {
    if (e.type === 'token') tokens.push(e.token);
    else return { tokens, end: e };
  }
  throw new Error('no end event');
}

/** HF's warpers written out directly: softmax(l/T), keep ≥ k-th largest, keep while mass before < p. */
function referenceDistribution(logits: number[], t: number, k: number, p: number): Map<number, number> {
  const max = Math.max(...logits);
  let probs = logits.map((l) => Math.exp((l - max) / t));
  if (k > 0) {
    const kth = [...probs].sort((a, b) => b - a)[k - 1];
    probs = probs.map((v) => (v >= kth ? v : 0));
  }
  const total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((v) => v / total);
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  const kept = new Map<number, number>();
  let before = 0;
  for (const i of order) {
    if (probs[i] === 0 || (kept.size > 0 && before >= p)) break;
    kept.set(i, probs[i]);
    before += probs[i];
  }
  const mass = [...kept.values()].reduce((a, b) => a + b, 0);
  for (const [i, v] of kept) kept.set(i, v / mass);
  return kept;
}

describe('sampling', () => {
  const logits = Float32Array.from({ length: 200 }, (_, i) => Math.sin(i * 1.7) * 3 + (i % 7) * 0.2);

  it.each([
    [1, 0, 1],
    [0.7, 10, 1],
    [1.3, 0, 0.9],
    [0.5, 25, 0.5],
    [2, 1, 1],
    [1, 0, 0.05],
  ])('temperature %s, top-k %s, top-p %s: renormalised like HF warpers', (t, k, p) => {
    const dist = samplingDistribution(logits, { temperature: t, topK: k, topP: p });
    const want = referenceDistribution(Array.from(logits), t, k, p);
    expect(new Set(dist.ids)).toEqual(new Set(want.keys()));
    let sum = 0;
    dist.ids.forEach((id, i) => {
      expect(dist.probs[i]).toBeCloseTo(want.get(id)!, 10);
      sum += dist.probs[i];
    });
    expect(sum).toBeCloseTo(1, 12);
  });

  it('temperature 0 is the arg-max, lowest id on ties, and draws nothing', () => {
    const tied = Float32Array.from([1, 5, 2, 5, 0]);
    expect(argmax(tied)).toBe(1);
    const s = new Sampler({ temperature: 0, seed: 1 });
    expect(s.next(tied)).toBe(1);
    expect(s.next(logits)).toBe(argmax(logits));
  });

  it('the same seed gives the same tokens; another seed does not', () => {
    const draw = (seed: number) => {
      const s = new Sampler({ temperature: 1, seed });
      return Array.from({ length: 50 }, () => s.next(logits));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('draw frequencies follow the distribution (top-k 3)', () => {
    const small = Float32Array.from([2, 1, 0.5, 3, -1]);
    const s = new Sampler({ temperature: 1, topK: 3, seed: 11 });
    const counts = new Map<number, number>();
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const t = s.next(small);
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    const want = referenceDistribution(Array.from(small), 1, 3, 1);
    expect(new Set(counts.keys())).toEqual(new Set(want.keys()));
    for (const [id, p] of want) expect(Math.abs(counts.get(id)! / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n));
  });

  it('without top-p the draw needs no order: plain temperature, min-p and top-k draws follow the distribution (HF’s warpers), NaN logits never drawn', () => {
    const row = Float32Array.from({ length: 60 }, (_, i) => Math.sin(i * 2.3) * 2.5);
    row[7] = Number.NaN;
    const n = 30000;
    for (const params of [{ temperature: 1 }, { temperature: 0.6 }, { temperature: 1.4, minP: 0.2 }, { temperature: 0.8, topK: 5 }, { temperature: 1, topK: 8, minP: 0.3 }]) {
      const s = new Sampler({ ...params, seed: 21 });
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const t = s.next(row);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      // HF's MinPLogitsWarper keeps a token whose probability is at least min-p times the largest
      const finite = Array.from(row, (v) => (v === v ? v : -Infinity));
      let want = referenceDistribution(finite, params.temperature, params.topK ?? 0, 1);
      const minP = params.minP ?? 0;
      if (minP > 0) {
        const top = Math.max(...want.values());
        const kept = [...want].filter(([, p]) => p >= minP * top);
        const mass = kept.reduce((a, [, p]) => a + p, 0);
        want = new Map(kept.map(([i, p]) => [i, p / mass]));
      }
      expect(counts.has(7)).toBe(false);
      for (const id of counts.keys()) expect(want.has(id), `${JSON.stringify(params)} drew ${id}`).toBe(true);
      for (const [id, p] of want) expect(Math.abs((counts.get(id) ?? 0) / n - p), `${JSON.stringify(params)} token ${id}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n) + 1e-9);
    }
    // +∞ logits share all the mass there too
    const s = new Sampler({ temperature: 1, seed: 3 });
    const drawn = new Set(Array.from({ length: 200 }, () => s.next(Float32Array.from([0, Infinity, 2, Infinity]))));
    expect(drawn).toEqual(new Set([1, 3]));
  });

  it('logits that are not finite: +∞ ones share all the mass, NaN ones weigh nothing, none finite is an error', () => {
    // the limit of softmax as those logits grow: exp((l − max)/T) alone would give NaN everywhere
    const inf = samplingDistribution(Float32Array.from([1, Infinity, 3, Infinity, Number.NaN]), { temperature: 0.7, topK: 0, topP: 1 });
    expect(Array.from(inf.ids)).toEqual([1, 3]);
    expect(Array.from(inf.probs)).toEqual([0.5, 0.5]);
    const nan = samplingDistribution(Float32Array.from([0, Number.NaN, Math.log(3)]), { temperature: 1, topK: 0, topP: 1 });
    expect(Array.from(nan.ids)).toEqual([2, 0]);
    expect(nan.probs[0]).toBeCloseTo(0.75, 6);
    expect(nan.probs[1]).toBeCloseTo(0.25, 6);
    for (const row of [[-Infinity, -Infinity], [Number.NaN, -Infinity]]) {
      expect(() => samplingDistribution(Float32Array.from(row), { temperature: 1, topK: 0, topP: 1 })).toThrow(/no token can be sampled: every logit is -∞ or NaN/);
    }
  });

  it('rejects bad parameters with a typed error', () => {
    expect(() => new Sampler({ temperature: -0.1 })).toThrow(GenerationParamsError);
    expect(() => new Sampler({ topP: 0 })).toThrow(/top-p/);
    expect(() => new Sampler({ topK: 1.5 })).toThrow(/top-k/);
    expect(() => new Sampler({ temperature: Number.NaN })).toThrow(/temperature/);
  });
});

describe('stop strings', () => {
  // a toy detokeniser: id → one character of this alphabet
  const alphabet = 'abcdefgh \n';
  const decoder = { decode: (ids: number[]) => ids.map((i) => alphabet[i]).join('') };
  const ids = (s: string) => Array.from(s, (c) => alphabet.indexOf(c));

  it('cuts the text before a stop string split across tokens and never emits part of it', () => {
    const stream = new StopTextStream(decoder, ['\n\n', 'dead']);
    let out = '';
    let stopped = false;
    for (const id of ids('abc dea\nfgh dead beef')) {
      const r = stream.push(id);
      out += r.text;
      if (r.stop) {
        stopped = true;
        break;
      }
    }
    expect(stopped).toBe(true);
    expect(out).toBe('abc dea\nfgh ');
    expect(stream.completion).toBe('abc dea\nfgh ');
  });

  it('streams a real byte-level tokenizer\'s text piece by piece, multi-byte characters whole', async () => {
    const codec = await loadTextCodec(path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare'));
    const text = 'Café ☕ naïve — ROMEO: “Ay, me!” 日本語 and so on.\nThe end';
    const ids = Array.from(codec.encode(text));
    expect(codec.decode(ids)).toBe(text);
    const stream = new StopTextStream(codec, []);
    const pieces: string[] = [];
    for (const id of ids) pieces.push(stream.push(id).text);
    pieces.push(stream.flush());
    expect(pieces.join('')).toBe(text);
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
    // with a stop string the text ends right before it
    const cut = new StopTextStream(codec, ['日本']);
    let out = '';
    for (const id of ids) {
      const r = cut.push(id);
      out += r.text;
      if (r.stop) break;
    }
    expect(out).toBe(text.slice(0, text.indexOf('日本')));
  });

  const run = (stream: StopTextStream, text: string, checkFrom = 0) => {
    let out = '';
    let n = 0;
    for (const id of ids(text)) {
      const r = stream.push(id, ++n > checkFrom);
      out += r.text;
      if (r.stop) return { out, stopped: true };
    }
    return { out: out + stream.flush(), stopped: false };
  };

  it('keeps the stop string when asked (vLLM’s include_stop_str_in_output), and still the earliest match', () => {
    expect(run(new StopTextStream(decoder, ['dead', 'fgh'], { includeStop: true }), 'abc dea\nfgh dead beef')).toEqual({ out: 'abc dea\nfgh', stopped: true });
    expect(run(new StopTextStream(decoder, ['\n\n', 'dead'], { includeStop: true }), 'abc dea\nfgh dead beef')).toEqual({ out: 'abc dea\nfgh dead', stopped: true });
  });

  it('no stop string ends within the first tokens of a minimum length; one that ends after them stops, even if it starts within', () => {
    // 'ab' ends at the 2nd token (inside the first 4): ignored; the next 'ab' ends at the 7th
    expect(run(new StopTextStream(decoder, ['ab']), 'abcdeabfg', 4)).toEqual({ out: 'abcde', stopped: true });
    // 'de' starts at the 4th token and ends at the 5th: found
    expect(run(new StopTextStream(decoder, ['de']), 'abcdeabfg', 4)).toEqual({ out: 'abc', stopped: true });
    // 'cd' ends at the 4th: ignored, and never again
    expect(run(new StopTextStream(decoder, ['cd']), 'abcdeabfg', 4)).toEqual({ out: 'abcdeabfg', stopped: false });
    expect(run(new StopTextStream(decoder, ['cd']), 'abcdeabfg', 3)).toEqual({ out: 'ab', stopped: true });
  });

  it('decodes special tokens only when skipSpecialTokens is false', () => {
    const calls: Array<boolean | undefined> = [];
    const spy = { decode: (i: number[], o?: { skipSpecialTokens?: boolean }) => (calls.push(o?.skipSpecialTokens), decoder.decode(i)) };
    new StopTextStream(spy, []).push(1);
    new StopTextStream(spy, [], { skipSpecialTokens: false }).push(1);
    expect(calls.every((c, i) => c === (i < calls.length / 2))).toBe(true);
  });

  it('releases held-back text at the end when no stop string completes', () => {
    const stream = new StopTextStream(decoder, ['dead']);
    let out = '';
    for (const id of ids('bad dea')) out += stream.push(id).text;
    expect(out).toBe('bad ');
    expect(out + stream.flush()).toBe('bad dea');
  });
});

describe('BatchDecoder', () => {
  it('decodes several sequences in one batch as each would be decoded alone (hidden states)', async () => {
    const provider = await tinyModel('qwen3_moe');
    const { numLayers, numKvHeads, headDim, hiddenSize: h } = provider.config;
    const seqs = [
      [5, 9, 13, 2, 44, 7],
      [1, 2, 3],
      [60, 61, 62, 63, 64, 65, 66, 67],
    ];
    // alone: full-prefix forward of each sequence
    const alone = await Promise.all(seqs.map((s) => runDecoder(provider, engine, batchFromSequences([s]))));
    // together: slots 2, 0, 1 of a 3-slot cache, prefill all but the last token, then one step for all
    const cache = new KvCache(numLayers, 3, 16, numKvHeads * headDim, headDim);
    const slots = [2, 0, 1];
    await runDecoder(provider, engine, batchFromSequences(seqs.map((s) => s.slice(0, -1))), { kvCache: cache, kvSlots: slots });
    const last = await runDecoder(provider, engine, batchFromSequences(seqs.map((s) => s.slice(-1))), { kvCache: cache, kvSlots: slots });
    let worst = 0;
    seqs.forEach((s, i) => {
      const want = alone[i].subarray((s.length - 1) * h, s.length * h);
      for (let j = 0; j < h; j++) worst = Math.max(worst, Math.abs(last[i * h + j] - want[j]) / (1 + Math.abs(want[j])));
    });
    expect(worst).toBeLessThan(1e-5);
    expect(Array.from(cache.lengths)).toEqual([3, 8, 6]);
  });

  it('greedy tokens of concurrent requests equal those of each request alone', async () => {
    const provider = await tinyModel('mixtral', 9);
    const prompts = [[3, 17, 5], [11, 4, 60, 7, 19, 25], [42], [8, 8, 8, 8]];
    const alone = [];
    for (const p of prompts) alone.push((await generateAll(provider, engine, p, { temperature: 0, maxNewTokens: 12, stopTokenIds: [] })).tokens);
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 3, maxPrefillTokens: 4 });
    const together = await Promise.all(prompts.map((p) => collect(decoder.submit(p, { temperature: 0, maxNewTokens: 12, stopTokenIds: [] }))));
    expect(together.map((r) => r.tokens)).toEqual(alone);
    expect(together.every((r) => r.end.usage.finishReason === 'length' && r.end.usage.completionTokens === 12)).toBe(true);
    // 4 requests through 3 slots: one waited and reused a freed slot; nothing is left allocated
    expect(decoder.kvCacheBytes).toBe(0);
    await decoder.close();
  });

  it('requests with the same prompt compute it once: the others copy its cache and decode as each would alone', async () => {
    const provider = await tinyModel('mixtral', 9);
    const prompt = [5, 9, 13, 2, 40, 41, 7, 7, 30, 12, 3];
    const L = prompt.length;
    const params = (seed: number) => ({ temperature: 0.8, seed, maxNewTokens: 10, stopTokenIds: [], promptLogprobs: 2 });
    const alone = [];
    for (const seed of [1, 2, 3, 4]) {
      const d = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
      const tokens: number[] = [];
      let promptLogprobs: unknown;
      for await (const e of d.submit(prompt, params(seed))) if (e.type === 'token') (tokens.push(e.token), (promptLogprobs ??= e.promptLogprobs));
      await d.close();
      alone.push({ tokens, promptLogprobs });
    }
    // four sequences of one prompt (a request's n choices), with a different prompt between them
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 5, maxPrefillTokens: 4 });
    const run = async (st: GenerationStream) => {
      const tokens: number[] = [];
      let promptLogprobs: unknown;
      for await (const e of st) if (e.type === 'token') (tokens.push(e.token), (promptLogprobs ??= e.promptLogprobs));
      return { tokens, promptLogprobs };
    };
    const streams = [decoder.submit(prompt, params(1)), decoder.submit([8, 8, 1], { temperature: 0, maxNewTokens: 3 }), ...[2, 3, 4].map((seed) => decoder.submit(prompt, params(seed)))];
    const together = await Promise.all(streams.map(run));
    expect([together[0], ...together.slice(2)]).toEqual(alone);
    // the prompt ran once, in chunks of 4; each copy ran only its last token
    expect(decoder.stats.prefillTokens).toBe(L + 3 + 3 * 1);
    expect(decoder.stats.sharedPrefixTokens).toBe(3 * (L - 1));
    expect(decoder.kvCacheBytes).toBe(0);
    await decoder.close();
  });

  it('prompts with a common beginning of at least 16 tokens compute it once; each decodes as it would alone', async () => {
    const provider = await tinyModel('mixtral', 9);
    const context = Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % 96);
    const prompts = [
      [...context, 50, 51, 52],
      [...context, 60, 61],
      [...context.slice(0, 12), 70, 71, 72], // only 12 in common: computed in full
    ];
    const params = { temperature: 0, maxNewTokens: 6, stopTokenIds: [], promptLogprobs: 1 };
    const alone = await eachAlone(provider, prompts, params);
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 3 });
    const together = await Promise.all(prompts.map((p) => tokensAndPromptLogprobs(decoder.submit(p, params))));
    expect(together).toEqual(alone);
    // the second copies the 19 positions before the last common token, the third nothing
    expect(decoder.stats.sharedPrefixTokens).toBe(19);
    expect(decoder.stats.prefillTokens).toBe(23 + (22 - 19) + 15);
    await decoder.close();
  });

  it('with a sliding window: copies of a prompt share it; a beginning the leader\'s windowed layers have moved past is computed; each decodes as alone', async () => {
    const provider = await windowedModel(4);
    const context = Array.from({ length: 20 }, (_, i) => (i * 5 + 2) % 96);
    const prompts = [
      [...context, ...Array.from({ length: 30 }, (_, i) => (i * 3 + 1) % 96)], // the leader: 50 tokens, its windowed layers keep its last 16
      [...context, ...Array.from({ length: 30 }, (_, i) => (i * 3 + 1) % 96)], // the same prompt: copies 49 positions
      [...context, 60, 61], // 20 in common, but the leader dropped them: computed in full
    ];
    const params = { temperature: 0, maxNewTokens: 24, stopTokenIds: [], promptLogprobs: 1 };
    const alone = await eachAlone(provider, prompts, params);
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 3 });
    const together = await Promise.all(prompts.map((p) => tokensAndPromptLogprobs(decoder.submit(p, params))));
    expect(together).toEqual(alone);
    expect(decoder.stats.sharedPrefixTokens).toBe(49);
    expect(decoder.stats.prefillTokens).toBe(50 + 1 + 22);
    await decoder.close();
  });

  it('a leader that ends in the step that caches its prompt keeps its slot until its copies have it; with no slot to spare, they compute it', async () => {
    const provider = await tinyModel('mixtral', 9);
    const prompt = [5, 9, 13, 2, 40, 41, 7, 7, 30, 12, 3, 17, 19, 23, 29, 31, 37, 41];
    const want = (await generateAll(provider, engine, prompt, { temperature: 0, maxNewTokens: 3, stopTokenIds: [] })).tokens;
    for (const maxBatchSize of [3, 1]) {
      const decoder = new BatchDecoder(provider, engine, { maxBatchSize });
      // one token for the leader (a prompt scored with max_tokens 0 ends so); its copies arrive while its prefill runs
      const leader = collect(decoder.submit(prompt, { temperature: 0, maxNewTokens: 1, stopTokenIds: [] }));
      const copies = [collect(decoder.submit(prompt, { temperature: 0, maxNewTokens: 3, stopTokenIds: [] })), collect(decoder.submit(prompt, { temperature: 0, maxNewTokens: 3, stopTokenIds: [] }))];
      expect((await leader).tokens).toEqual(want.slice(0, 1));
      for (const c of await Promise.all(copies)) expect(c.tokens).toEqual(want);
      // with 3 slots both copies took the leader's positions; with 1 the lingering leader gave its slot up
      expect(decoder.stats.sharedPrefixTokens).toBe(maxBatchSize === 3 ? 2 * (prompt.length - 1) : 0);
      expect(decoder.kvCacheBytes).toBe(0);
      await decoder.close();
    }
  });

  it('a copy whose leader is aborted before its prompt is cached computes the prompt itself', async () => {
    const provider = await tinyModel('mixtral', 9);
    const prompt = [5, 9, 13, 2, 40, 41, 7, 7];
    const want = (await generateAll(provider, engine, prompt, { temperature: 0, maxNewTokens: 6, stopTokenIds: [] })).tokens;
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 2, maxPrefillTokens: 2 });
    const controller = new AbortController();
    const leader = decoder.submit(prompt, { temperature: 0, maxNewTokens: 6, stopTokenIds: [], signal: controller.signal });
    const copy = decoder.submit(prompt, { temperature: 0, maxNewTokens: 6, stopTokenIds: [] });
    controller.abort();
    const [l, c] = await Promise.all([collect(leader), collect(copy)]);
    expect(l.end.usage.finishReason).toBe('abort');
    expect(c.tokens).toEqual(want);
    expect(decoder.stats.sharedPrefixTokens).toBe(0);
    await decoder.close();
  });

  it('a reused KV slot decodes exactly like a fresh one', async () => {
    const provider = await tinyModel('mixtral', 9);
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
    const params = { temperature: 0.9, seed: 5, maxNewTokens: 10, stopTokenIds: [] };
    const first = await collect(decoder.submit([1, 2, 3, 4, 5, 6, 7, 8, 9], params));
    const reused = await collect(decoder.submit([20, 21], params));
    await decoder.close();
    const fresh = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
    const clean = await collect(fresh.submit([20, 21], params));
    await fresh.close();
    expect(first.tokens).toHaveLength(10);
    expect(reused.tokens).toEqual(clean.tokens);
  });

  it('an aborted request ends with finishReason abort and frees its slot for the next', async () => {
    const provider = await tinyModel('mixtral', 9);
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
    const controller = new AbortController();
    const long = decoder.submit([1, 2, 3], { temperature: 0, maxNewTokens: 1000, stopTokenIds: [], signal: controller.signal });
    const waiting = decoder.submit([4, 5], { temperature: 0, maxNewTokens: 3, stopTokenIds: [] });
    expect(decoder.waitingCount).toBe(1);
    let seen = 0;
    let end: Extract<GenerationEvent, { type: 'end' }> | undefined;
    for await (const e of long) {
      if (e.type === 'token' && ++seen === 3) controller.abort();
      if (e.type === 'end') end = e;
    }
    expect(end!.usage.finishReason).toBe('abort');
    expect(end!.usage.completionTokens).toBeGreaterThanOrEqual(3);
    expect(end!.usage.completionTokens).toBeLessThan(10);
    const next = await collect(waiting);
    expect(next.end.usage).toMatchObject({ finishReason: 'length', completionTokens: 3 });
    expect(decoder.kvCacheBytes).toBe(0);
    await decoder.close();
  });

  it('breaking out of the iteration aborts the request (a client that disconnects)', async () => {
    const provider = await tinyModel('mixtral', 9);
    const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
    const stream = decoder.submit([1, 2, 3], { temperature: 0, maxNewTokens: 1000, stopTokenIds: [] });
    for await (const e of stream) if (e.type === 'token') break;
    const { usage } = await stream.result;
    expect(usage.finishReason).toBe('abort');
    expect(usage.completionTokens).toBeLessThan(10);
    expect(decoder.activeCount + decoder.waitingCount).toBe(0);
    expect(decoder.kvCacheBytes).toBe(0);
    await decoder.close();
  });

  it('refuses a prompt longer than the context and stops at the context with finishReason length', async () => {
    const provider = await tinyModel('mixtral', 9);
    const decoder = new BatchDecoder(provider, engine, { contextLength: 8 });
    expect(() => decoder.submit([1, 2, 3, 4, 5, 6, 7, 8], {})).toThrow(ContextLengthError);
    expect(() => decoder.submit([1, 2], { maxNewTokens: 0 })).toThrow(GenerationParamsError);
    expect(() => decoder.submit([1, 999], {})).toThrow(/outside the vocabulary/);
    // checked before the Int32 conversion, which would turn 2³² + 1 into token 1
    expect(() => decoder.submit([2 ** 32 + 1], {})).toThrow(/4294967297 \(position 0\) is outside the vocabulary/);
    expect(() => decoder.submit([1, -1], {})).toThrow(expect.objectContaining({ param: 'prompt' }));
    expect(() => decoder.submit([1, 2], { maxNewTokens: 0 })).toThrow(expect.objectContaining({ param: 'maxNewTokens' }));
    expect(() => decoder.submit([1], { stop: ['x'] })).toThrow(/tokenizer/);
    const r = await collect(decoder.submit([1, 2, 3, 4, 5], { temperature: 0, maxNewTokens: 100, stopTokenIds: [] }));
    expect(r.end.usage).toMatchObject({ promptTokens: 5, completionTokens: 3, finishReason: 'length' });
    await decoder.close();
    expect(() => decoder.submit([1], {})).toThrow(DecoderClosedError);
  });

  it('ends at a stop token id with finishReason stop', async () => {
    const provider = await tinyModel('mixtral', 9);
    const free = await generateAll(provider, engine, [3, 17, 5], { temperature: 0, maxNewTokens: 8, stopTokenIds: [] });
    const stopAt = free.tokens[4];
    const first = free.tokens.indexOf(stopAt);
    const r = await generateAll(provider, engine, [3, 17, 5], { temperature: 0, maxNewTokens: 8, stopTokenIds: [stopAt] });
    expect(r.tokens).toEqual(free.tokens.slice(0, first + 1));
    expect(r.usage.finishReason).toBe('stop');
  });
});
