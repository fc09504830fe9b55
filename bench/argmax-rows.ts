/**
 * npm run bench:argmax [-- --rounds 5] [-- --vocab 32000,151936] [-- --rows 1,8]
 *
 * A decoding step's greedy pick: the engine's argmaxRows kernel against the JavaScript scan
 * (argmaxOf, what the ts engine and Sampler run) on the same rows of logits, alternated per round
 * (the machine is noisy); medians of µs per call and of the ratio JavaScript ÷ kernel.
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine/index.js';
import { argmaxOf } from '../src/engine/ts/kernels/argmax-rows.js';
import { mulberry32 } from '../src/util/prng.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    vocab: { type: 'string', default: '32000,151936' },
    rows: { type: 'string', default: '1,8' },
    engine: { type: 'string', default: 'native' },
  },
});
const list = (s: string, what: string) => s.split(',').map((v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} takes positive integers separated by commas; got "${s}"`);
  return n;
});
const rounds = list(values.rounds, 'rounds')[0];
const { engine, notice } = await createEngine(values.engine as 'native', { threads: 1 });
process.stderr.write(`${notice}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const vocab of list(values.vocab, 'vocab')) {
  for (const rows of list(values.rows, 'rows')) {
    const next = mulberry32(vocab + rows);
    // several blocks, so that a call does not find its rows in L1 from the previous one
    const blocks = Array.from({ length: 8 }, () => Float32Array.from({ length: rows * vocab }, () => (next() - 0.5) * 20));
    const out = new Int32Array(rows);
    const calls = Math.max(20, Math.ceil(4e7 / (rows * vocab)));
    const time = (native: boolean) => {
      const t = performance.now();
      let check = 0;
      for (let i = 0; i < calls; i++) {
        const b = blocks[i % blocks.length];
        if (native) {
          engine.kernels.argmaxRows(rows, vocab, b, out);
          check += out[rows - 1];
        } else {
          for (let r = 0; r < rows; r++) out[r] = argmaxOf(b, r * vocab, vocab);
          check += out[rows - 1];
        }
      }
      return { us: ((performance.now() - t) * 1000) / calls, check };
    };
    time(true), time(false);
    const js: number[] = [], kernel: number[] = [], ratio: number[] = [];
    for (let r = 0; r < rounds; r++) {
      let a, b;
      if (r % 2 === 0) {
        a = time(false);
        b = time(true);
      } else {
        b = time(true);
        a = time(false);
      }
      if (a.check !== b.check) throw new Error('the kernel and the JavaScript scan disagree');
      js.push(a.us), kernel.push(b.us), ratio.push(a.us / b.us);
    }
    process.stdout.write(`${rows} row(s) × ${vocab}: JavaScript ${median(js).toFixed(1)} µs, kernel ${median(kernel).toFixed(1)} µs (${median(ratio).toFixed(1)}× faster)\n`);
  }
}
engine.dispose();
