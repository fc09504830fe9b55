/**
 * Decode throughput: rfid-moe's greedy generation (BatchDecoder, KV cache, native engine) against
 * Hugging Face transformers on PyTorch (bench/torch_decode.py, f32, KV cache, argmax loop) on the
 * same model, the same prompt ids and the same number of new tokens, in the same run; then the
 * aggregate throughput of 8 concurrent streams decoded together by one continuous-batching decoder.
 *
 *   node --import tsx bench/decode-vs-torch.ts [--model DIR | --synthetic] [--prompt-tokens 32]
 *        [--new-tokens 128] [--streams 8] [--threads 1] [--repeats 3] [--python .venv/bin/python]
 *
 * --synthetic generates a larger Mixtral-layout checkpoint (hidden 512, expert width 1408, 4
 * layers, 8 experts, top-2, vocabulary 32000, the shape of bench:calibrate) instead of the shipped
 * model. Both sides use the same thread count (default 1: decoding a small model is latency-bound,
 * and on a shared machine a second thread mostly waits for a busy core; torch suffers most).
 *
 * Prints one JSON line. Both sides time prefill + decode with the weights already loaded (best of
 * the repeats). `sameTokens` checks that both produced the same greedy ids.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openModel } from '../src/compressed/open-model.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { BatchDecoder, weightProviderOf, type GenerationStream } from '../src/runtime/index.js';
import { mulberry32 } from '../src/util/prng.js';
import { makeTinyCheckpoint } from '../test/helpers/fixtures.js';

const root = path.join(import.meta.dirname, '..');
const venv = path.join(root, '.venv', 'bin', 'python');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(root, 'examples', 'models', 'mixtral-tiny-shakespeare') },
    engine: { type: 'string', default: 'native' },
    'prompt-tokens': { type: 'string', default: '32' },
    'new-tokens': { type: 'string', default: '128' },
    streams: { type: 'string', default: '8' },
    threads: { type: 'string', default: '1' },
    synthetic: { type: 'boolean', default: false },
    repeats: { type: 'string', default: '3' },
    python: { type: 'string', default: existsSync(venv) ? venv : 'python3' },
    'skip-torch': { type: 'boolean', default: false },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
const newTokens = num('new-tokens');
const streams = num('streams');
const repeats = num('repeats');

const work = mkdtempSync(path.join(tmpdir(), 'rfid-bench-decode-'));
if (values.synthetic) {
  values.model = path.join(work, 'synthetic-mixtral');
  await makeTinyCheckpoint(values.model, 'mixtral', { seed: 1, hiddenSize: 512, numHeads: 8, numKvHeads: 2, expertIntermediateSize: 1408, numLayers: 4, numExperts: 8, topK: 2, vocabSize: 32000, dtype: 'BF16' });
}
const ckpt = await openModel(values.model!);
const vocab = ckpt.config.vocabSize;
const promptOf = (seed: number) => {
  const next = mulberry32(seed);
  return Int32Array.from({ length: num('prompt-tokens') }, () => Math.floor(next() * vocab));
};
const prompt = promptOf(1);
try {
  const { engine, notice } = await createEngine(parseEngineChoice(values.engine!), { threads: num('threads') });
  const provider = weightProviderOf(ckpt);
  const params = { temperature: 0, maxNewTokens: newTokens, stopTokenIds: [] as number[] };
  const drain = async (s: GenerationStream) => {
    const tokens: number[] = [];
    for await (const e of s) if (e.type === 'token') tokens.push(e.token);
    return tokens;
  };

  // single stream (one decoder kept across repeats, as a server keeps it; weights resident after the warm-up)
  const single = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
  await drain(single.submit(prompt, { ...params, maxNewTokens: 4 }));
  let singleSeconds = Infinity;
  let tsTokens: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    tsTokens = await drain(single.submit(prompt, params));
    singleSeconds = Math.min(singleSeconds, (performance.now() - t0) / 1000);
  }
  await single.close();

  // `streams` concurrent requests with different prompts, decoded together
  const batched = new BatchDecoder(provider, engine, { maxBatchSize: streams });
  await drain(batched.submit(prompt, { ...params, maxNewTokens: 4 }));
  let batchSeconds = Infinity;
  let steps = 0;
  for (let r = 0; r < repeats; r++) {
    const before = batched.stats.steps;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: streams }, (_, i) => drain(batched.submit(i === 0 ? prompt : promptOf(100 + i), params))));
    batchSeconds = Math.min(batchSeconds, (performance.now() - t0) / 1000);
    steps = batched.stats.steps - before;
  }
  await batched.close();
  engine.dispose();

  const singleTps = newTokens / singleSeconds;
  const aggregateTps = (streams * newTokens) / batchSeconds;
  const report: Record<string, unknown> = {
    model: values.synthetic ? 'synthetic mixtral (hidden 512, expert width 1408, 4 layers, 8 experts, vocab 32000)' : path.relative(root, path.resolve(values.model!)),
    family: ckpt.config.family,
    hidden: ckpt.config.hiddenSize,
    layers: ckpt.config.numLayers,
    promptTokens: prompt.length,
    newTokens,
    engine: notice,
    tsSingleSeconds: singleSeconds,
    tsSingleTokensPerSecond: singleTps,
    streams,
    tsAggregateSeconds: batchSeconds,
    tsAggregateTokensPerSecond: aggregateTps,
    aggregateOverSingle: aggregateTps / singleTps,
    batchedForwardPasses: steps,
  };
  if (!values['skip-torch']) {
    const idsFile = path.join(work, 'prompt.i32');
    writeFileSync(idsFile, new Uint8Array(prompt.buffer));
    const torch = JSON.parse(
      execFileSync(values.python!, [path.join(import.meta.dirname, 'torch_decode.py'), '--model', path.resolve(values.model!), '--ids', idsFile, '--new-tokens', String(newTokens), '--threads', values.threads!, '--repeats', String(repeats)], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    ) as { seconds: number; tokens: number[]; threads: number; torch: string; transformers: string };
    Object.assign(report, {
      torchSeconds: torch.seconds,
      torchTokensPerSecond: newTokens / torch.seconds,
      torchVersion: `torch ${torch.torch}, transformers ${torch.transformers}, ${torch.threads} threads`,
      singleRatio: torch.seconds / singleSeconds,
      sameTokens: JSON.stringify(torch.tokens) === JSON.stringify(tsTokens),
    });
  }
  process.stdout.write(JSON.stringify(report) + '\n');
} finally {
  await ckpt.close();
  rmSync(work, { recursive: true, force: true });
}
