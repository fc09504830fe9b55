/**
 * npm run bench:logprobs [-- --rounds 5] [-- --vocab 32000,151936] [-- --top 0,5,20]
 *
 * What a token's log-probabilities cost a request that asks for them (the decoder runs this per
 * generated token, and per prompt token with echo): tokenLogprobs with its log-sum-exp taken by
 * the engine's logitStats kernel, as the decoder does, against the same with the JavaScript
 * log-sum-exp (Math.exp over the vocabulary), alternated per round on the same rows (the machine
 * is noisy); medians of µs per token and of the ratio. Beside them, the greedy pick alone
 * (argmaxRows), what every token costs anyway.
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine/index.js';
import { logSumExpOf, tokenLogprobs } from '../src/runtime/generation/logprobs.js';
import { mulberry32 } from '../src/util/prng.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    vocab: { type: 'string', default: '32000,151936' },
    top: { type: 'string', default: '0,5,20' },
  },
});
const list = (s: string, what: string, min: number) =>
  s.split(',').map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${what} takes integers ≥ ${min} separated by commas; got "${s}"`);
    return n;
  });
const rounds = list(values.rounds, 'rounds', 1)[0];
const { engine, notice } = await createEngine('native', { threads: 1 });
process.stderr.write(`${notice}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const stats = { max: new Float64Array(1), sumExp: new Float64Array(1), argmax: new Int32Array(1) };
for (const vocab of list(values.vocab, 'vocab', 2)) {
  const next = mulberry32(vocab);
  // several rows, so that a call does not find its row in cache from the previous one
  const rows = Array.from({ length: 8 }, () => Float32Array.from({ length: vocab }, () => (next() - 0.5) * 20));
  const calls = Math.max(20, Math.ceil(2e7 / vocab));
  const pick = new Int32Array(1);
  const time = (mode: 'kernel' | 'js' | 'argmax', top: number) => {
    const t = performance.now();
    let check = 0;
    for (let i = 0; i < calls; i++) {
      const row = rows[i % rows.length];
      if (mode === 'argmax') {
        engine.kernels.argmaxRows(1, vocab, row, pick);
        check += pick[0];
        continue;
      }
      let lse: number;
      if (mode === 'kernel') {
        engine.kernels.logitStats(1, vocab, row, stats);
        lse = stats.max[0] + Math.log(stats.sumExp[0]);
      } else lse = logSumExpOf(row);
      check += tokenLogprobs(row, i % vocab, top, lse).logprob;
    }
    return { us: ((performance.now() - t) * 1000) / calls, check };
  };
  const greedy: number[] = [];
  for (let r = 0; r < rounds; r++) greedy.push(time('argmax', 0).us);
  for (const top of list(values.top, 'top', 0)) {
    time('kernel', top), time('js', top);
    const kernel: number[] = [], js: number[] = [], ratio: number[] = [];
    for (let r = 0; r < rounds; r++) {
      let jsRun, kernelRun;
      if (r % 2 === 0) {
        jsRun = time('js', top);
        kernelRun = time('kernel', top);
      } else {
        kernelRun = time('kernel', top);
        jsRun = time('js', top);
      }
      if (Math.abs(jsRun.check - kernelRun.check) > 1e-3 * calls) throw new Error('the two log-sum-exps disagree');
      js.push(jsRun.us), kernel.push(kernelRun.us), ratio.push(jsRun.us / kernelRun.us);
    }
    process.stdout.write(
      `vocabulary ${vocab}, top ${top}: kernel log-sum-exp ${median(kernel).toFixed(0)} µs/token, JavaScript ${median(js).toFixed(0)} µs (${median(ratio).toFixed(1)}×); greedy pick alone ${median(greedy).toFixed(0)} µs\n`,
    );
  }
}
engine.dispose();
