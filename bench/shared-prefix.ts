/**
 * npm run bench:shared-prefix [-- --model DIR] [-- --prompt-tokens 512] [-- --suffix-tokens 0] [-- --n 8] [-- --new-tokens 16] [-- --rounds 3] [-- --threads 2]
 *
 * What sharing a prompt's cache saves a request for n choices: n sequences of one prompt submitted
 * together to one BatchDecoder (as the server submits a request's n choices), with the prompt
 * computed once and copied (the default) against computed by every sequence
 * (sharePrefixes: false), alternated per round on the same model (the machine is noisy). With
 * --suffix-tokens S, n prompts that share the first prompt-tokens and end in S tokens of their
 * own (a multiple-choice question's context and its endings, as a batch of prompts). Reports
 * per setting the median time until every choice has its first token and until all are done,
 * and the prompt tokens the forward passes ran. Greedy, so both settings must give the same
 * tokens (checked). Default model: the Mixtral-shaped synthetic checkpoint of bench:decode in
 * .bench-tmp/synth-mixtral when present, else the shipped demo model.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openModel } from '../src/compressed/open-model.js';
import { createEngine } from '../src/engine/index.js';
import { BatchDecoder, ResidentWeights, weightProviderOf, type GenerationStream } from '../src/runtime/index.js';
import { mulberry32 } from '../src/util/prng.js';
import { streamTokens } from './lib/stream-tokens.js';

const root = path.join(import.meta.dirname, '..');
const synthetic = path.join(root, '.bench-tmp', 'synth-mixtral');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: existsSync(synthetic) ? synthetic : path.join(root, 'examples', 'models', 'mixtral-tiny-shakespeare') },
    'prompt-tokens': { type: 'string', default: '512' },
    'suffix-tokens': { type: 'string', default: '0' },
    n: { type: 'string', default: '8' },
    'new-tokens': { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
  },
});
const int = (name: keyof typeof values, min: number) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} must be an integer ≥ ${min}; got "${values[name]}"`);
  return v;
};
const [promptTokens, suffixTokens, n, newTokens, rounds, threads] = [int('prompt-tokens', 2), int('suffix-tokens', 0), int('n', 2), int('new-tokens', 1), int('rounds', 1), int('threads', 1)];

const ckpt = await openModel(values.model!);
const { engine, notice } = await createEngine('native', { threads });
process.stderr.write(`${notice}\n`);
// weights decoded once and kept, as the server's decoder keeps them (a decoder given a plain
// provider would decode them again at its first step)
const provider = new ResidentWeights(weightProviderOf(ckpt));
const next = mulberry32(7);
const randomIds = (length: number) => Array.from({ length }, () => Math.floor(next() * ckpt.config.vocabSize));
const context = randomIds(promptTokens);
const prompts = Array.from({ length: n }, () => Int32Array.from([...context, ...randomIds(suffixTokens)]));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function once(share: boolean): Promise<{ firstMs: number; totalMs: number; prefill: number; tokens: string }> {
  const decoder = new BatchDecoder(provider, engine, { maxBatchSize: n, sharePrefixes: share, contextLength: promptTokens + suffixTokens + newTokens + 1 });
  const t0 = performance.now();
  let firsts = 0;
  let firstMs = 0;
  const drain = (s: GenerationStream) =>
    streamTokens(s, () => {
      if (++firsts === n) firstMs = performance.now() - t0;
    });
  const all = await Promise.all(prompts.map((prompt) => drain(decoder.submit(prompt, { temperature: 0, maxNewTokens: newTokens, stopTokenIds: [] }))));
  const totalMs = performance.now() - t0;
  const prefill = decoder.stats.prefillTokens;
  await decoder.close();
  return { firstMs, totalMs, prefill, tokens: JSON.stringify(all) };
}

// warm-up: weights resident, kernels and pages touched
await once(true);
const results = { shared: [] as Array<Awaited<ReturnType<typeof once>>>, separate: [] as Array<Awaited<ReturnType<typeof once>>> };
for (let r = 0; r < rounds; r++) {
  for (const share of r % 2 === 0 ? [true, false] : [false, true]) results[share ? 'shared' : 'separate'].push(await once(share));
}
const same = results.shared.every((x) => x.tokens === results.separate[0].tokens) && results.separate.every((x) => x.tokens === results.separate[0].tokens);
const summary = Object.fromEntries(
  Object.entries(results).map(([k, xs]) => [k, { firstTokenMs: median(xs.map((x) => x.firstMs)), totalMs: median(xs.map((x) => x.totalMs)), prefillTokens: xs[0].prefill }]),
);
process.stdout.write(
  JSON.stringify({
    model: path.relative(root, values.model!),
    promptTokens,
    suffixTokens,
    n,
    newTokens,
    rounds,
    threads,
    ...summary,
    firstTokenSpeedup: summary.separate.firstTokenMs / summary.shared.firstTokenMs,
    totalSpeedup: summary.separate.totalMs / summary.shared.totalMs,
    sameTokens: same,
  }) + '\n',
);
engine.dispose();
await ckpt.close();
