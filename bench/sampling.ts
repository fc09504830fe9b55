/**
 * npm run bench:sampling [-- --rounds 5] [-- --vocab 4096,32000,151936]
 *
 * One sampled token's draw: the Sampler (what every sampled decoding step runs) against the
 * sorted draw it replaced where no top-p cut needs the tokens in order, `drawFrom(
 * samplingDistribution(row))` (the whole kept vocabulary sorted by weight), on the same rows of
 * logits, alternated per round (the machine is noisy). Both draw from the same distribution (the
 * tests check it against HF's warpers). Top-p still sorts its candidates; its row is the same
 * code on both sides, as a control. Rows: normal logits (σ = 3), flatter than a trained model's,
 * so top-p's candidates are many. Medians of µs per draw and of sorted ÷ Sampler.
 */
import { parseArgs } from 'node:util';
import { drawFrom, Sampler, samplingDistribution, type SamplingParams } from '../src/runtime/generation/sampling.js';
import { mulberry32 } from '../src/util/prng.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    vocab: { type: 'string', default: '4096,32000,151936' },
  },
});
const rounds = Number(values.rounds);
const vocabs = values.vocab.split(',').map(Number);
if (!(rounds >= 1) || vocabs.some((v) => !Number.isInteger(v) || v < 2)) throw new Error('--rounds takes a positive integer, --vocab sizes of at least 2 separated by commas');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const SETTINGS: Array<[string, SamplingParams]> = [
  ['temperature 1', { temperature: 1 }],
  ['temperature 0.8, min-p 0.05', { temperature: 0.8, minP: 0.05 }],
  ['temperature 1, top-k 50', { temperature: 1, topK: 50 }],
  ['temperature 0.7, top-p 0.9 (control)', { temperature: 0.7, topP: 0.9 }],
];
const ROWS = 8;

const lines = ['| vocabulary | setting | sorted (µs) | Sampler (µs) | sorted ÷ Sampler |', '|---:|---|---:|---:|---:|'];
for (const vocab of vocabs) {
  const next = mulberry32(vocab);
  const gauss = () => 3 * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const rows = Array.from({ length: ROWS }, () => Float32Array.from({ length: vocab }, gauss));
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
