/**
 * npm run bench:sampling [-- --rounds 5] [-- --vocab 4096,32000,151936] [-- --model DIR [--threads 2]]
 *
 * One sampled token's draw: the Sampler (what every sampled decoding step runs) against the
 * sorted draw it replaced where no top-p cut needs the tokens in order, `drawFrom(
 * samplingDistribution(row))` (the whole kept vocabulary sorted by weight), on the same rows of
 * logits, alternated per round (the machine is noisy). Both draw from the same distribution (the
 * tests check it against HF's warpers). Top-p still sorts its candidates; its row is the same
 * code on both sides, as a control. Rows: normal logits (σ = 3), flatter than a trained model's,
 * so top-p's candidates are many. Medians of µs per draw and of sorted ÷ Sampler.
 *
 * With `--model DIR`: whole single-stream decodes of that checkpoint (a 32-token random prompt, 128
 * new tokens, `--threads` (2), BF16 weights kept as stored), greedy, temperature 1 with the Sampler, and temperature 1 with the sorted draw
 * patched in for comparison, alternated per round: what the draw is worth in a decoding step.
 */
import { parseArgs } from 'node:util';
import { openModel } from '../src/compressed/open-model.js';
import { createEngine } from '../src/engine/index.js';
import { drawFrom, Sampler, samplingDistribution, type SamplingParams } from '../src/runtime/generation/sampling.js';
import { BatchDecoder, weightProviderOf } from '../src/runtime/index.js';
import { mulberry32 } from '../src/util/prng.js';
import { madeUpRows, median } from './lib/constraint-bench.js';
import { randomPrompt } from './lib/random-prompt.js';
import { streamTokens } from './lib/stream-tokens.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    vocab: { type: 'string', default: '4096,32000,151936' },
    model: { type: 'string' },
    threads: { type: 'string', default: '2' },
  },
});
const rounds = Number(values.rounds);
const vocabs = values.vocab.split(',').map(Number);
if (!(rounds >= 1) || vocabs.some((v) => !Number.isInteger(v) || v < 2)) throw new Error('--rounds takes a positive integer, --vocab sizes of at least 2 separated by commas');
const SETTINGS: Array<[string, SamplingParams]> = [
  ['temperature 1', { temperature: 1 }],
  ['temperature 0.8, min-p 0.05', { temperature: 0.8, minP: 0.05 }],
  ['temperature 1, top-k 50', { temperature: 1, topK: 50 }],
  ['temperature 0.7, top-p 0.9 (control)', { temperature: 0.7, topP: 0.9 }],
  // typical sampling sorts the kept tokens by their distance from the entropy: both columns run it
  ['temperature 0.8, typical-p 0.95', { temperature: 0.8, typicalP: 0.95 }],
  ["LangChain's HuggingFaceEndpoint: temperature 0.8, top-p 0.95, typical-p 0.95", { temperature: 0.8, topP: 0.95, typicalP: 0.95 }],
];
const ROWS = 8;

const lines = ['| vocabulary | setting | sorted (µs) | Sampler (µs) | sorted ÷ Sampler |', '|---:|---|---:|---:|---:|'];
for (const vocab of vocabs) {
  const rows = madeUpRows(vocab, ROWS, vocab);
  for (const [name, params] of SETTINGS) {
    const sortedUs: number[] = [];
    const samplerUs: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const sampler = new Sampler({ ...params, seed: r });
      const resolved = sampler.params;
      const u = mulberry32(r);
      let t = performance.now();
      for (const row of rows) drawFrom(samplingDistribution(row, resolved), u());
      const sorted = ((performance.now() - t) * 1000) / ROWS;
      t = performance.now();
      for (const row of rows) sampler.next(row);
      const drawn = ((performance.now() - t) * 1000) / ROWS;
      sortedUs.push(sorted);
      samplerUs.push(drawn);
      ratios.push(sorted / drawn);
    }
    lines.push(`| ${vocab.toLocaleString('en-US')} | ${name} | ${median(sortedUs).toFixed(0)} | ${median(samplerUs).toFixed(0)} | ${median(ratios).toFixed(2)} |`);
    process.stderr.write(`${lines.at(-1)}\n`);
  }
}
process.stdout.write(`${lines.join('\n')}\n`);

if (values.model) {
  const ckpt = await openModel(values.model);
  const { engine, notice } = await createEngine('native', { threads: Number(values.threads) });
  process.stderr.write(`${notice}\n`);
  // as the decode bench and the server run it: BF16 weights kept as stored
  const decoder = new BatchDecoder(weightProviderOf(ckpt, { bf16Weights: true }), engine, { maxBatchSize: 1 });
  const prompt = randomPrompt(ckpt.config.vocabSize, 32, 1);
  const NEW = 128;
  const current = Sampler.prototype.next;
  // the draw before: every kept token sorted by weight (samplingDistribution), then the inverse CDF
  const sorted = function (this: Sampler, logits: Float32Array, pickGreedy?: (l: Float32Array) => number): number {
    if (this.params.temperature === 0) return current.call(this, logits, pickGreedy);
    return drawFrom(samplingDistribution(logits, this.params), (this as unknown as { random: () => number }).random());
  };
  const rate = async (temperature: number, seed: number) => {
    const t0 = performance.now();
    const tokens = await streamTokens(decoder.submit(prompt, { temperature, seed, maxNewTokens: NEW, stopTokenIds: [] }));
    return tokens.length / ((performance.now() - t0) / 1000);
  };
  await rate(0, 0);
  const runs = { greedy: [] as number[], sampler: [] as number[], sorted: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    runs.greedy.push(await rate(0, r));
    runs.sampler.push(await rate(1, r));
    Sampler.prototype.next = sorted;
    try {
      runs.sorted.push(await rate(1, r));
    } finally {
      Sampler.prototype.next = current;
    }
  }
  await decoder.close();
  await ckpt.close();
  engine.dispose();
  const m = (xs: number[]) => median(xs).toFixed(0);
  process.stdout.write(
    `\nWhole decodes of ${values.model} (${ckpt.config.vocabSize}-token vocabulary, 1 stream, ${NEW} new tokens, tokens/s, medians of ${rounds} rounds): greedy ${m(runs.greedy)}, temperature 1 with the Sampler ${m(runs.sampler)}, with the sorted draw ${m(runs.sorted)}.\n`,
  );
}
