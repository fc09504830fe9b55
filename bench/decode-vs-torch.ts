/**
 * Decode throughput: rfid-moe's greedy generation (BatchDecoder, KV cache, native engine) against
 * Hugging Face transformers on PyTorch (bench/torch_decode.py, f32, KV cache, argmax loop) on the
 * same model, the same prompt ids and the same number of new tokens, in the same run; then the
 * aggregate throughput of 8 concurrent streams decoded together by one continuous-batching decoder.
 *
 *   node --import tsx bench/decode-vs-torch.ts [--model DIR | --synthetic [--shape mixtral|qwen3-30b-a3b|deepseek-v2-lite|glm-4.5-air|granite-3.0-1b-a400m|gpt-oss-20b]]
 *        [--prompt-tokens 32] [--new-tokens 128] [--streams 8] [--threads 1] [--repeats 3]
 *        [--python .venv/bin/python] [--weights bf16|f32] [--native-coretype auto|NAME] [--matmul-activations f32|bf16]
 *
 * --weights: weight matrices stored as BF16 (experts, attention, dense and shared MLPs, embedding,
 * lm_head) stay BF16 in memory (bf16, the default of generate and serve) or are widened to f32
 * (f32); both compute on the same values, so the tokens are the same.
 *
 * --matmul-activations bf16: rfid-moe rounds the activations of its products against BF16 weights
 * to BF16 (MatmulActivations; BF16 dot products where the CPU has them), and PyTorch loads the
 * model in BF16, as transformers runs a BF16 checkpoint by default. The two sides' tokens then
 * follow different BF16 arithmetic: `sameTokens` may be false, and `agreeingTokens` says how many
 * of the first tokens agree.
 *
 * --native-coretype (this run only): `auto` ignores an OPENBLAS_CORETYPE set in the environment and
 * lets the engine choose OpenBLAS's kernels from the CPU flags, as it does wherever the variable is
 * unset (SkylakeX on an AVX-512 CPU); a name forces those kernels. OpenBLAS runs the products of a
 * prompt's prefill (more rows than the decoding kernels take), so the kernels it uses move the
 * time of the 8 streams' prefills; the decoding steps run the engine's own kernels either way.
 *
 * --synthetic generates a larger checkpoint instead of the shipped model: --shape mixtral (the
 * default; hidden 512, expert width 1408, 4 layers, 8 experts, top-2, vocabulary 32000, the shape
 * of bench:calibrate) or --shape qwen3-30b-a3b, Qwen3-30B-A3B's proportions at a size this machine
 * decodes: many small experts (64, top-4, the same 1/16 active; expert width 384 < hidden 512),
 * grouped-query attention with head_dim 128 (8 query heads, 1 kv head), and per-token weight
 * shares like the real model's (attention : active experts ≈ 1 : 2 per layer, lm_head ≈ 13% of a
 * token's weights; see BENCHMARKS.md, "Decode", for its weight-read bound), or --shape
 * deepseek-v2-lite: DeepSeek-V2-Lite's multi-head latent attention at its real widths (kv_lora 512,
 * nope 128, rope 64, v 128) over 4 heads, 64 experts of width 352, top-6, 2 shared experts and a
 * dense first layer, or --shape glm-4.5-air: GLM-4.5-Air's attention (12 query heads of 128 per kv
 * head, RoPE over half of each head, q/k/v biases) and 64 experts of width 176, top-4, one shared
 * expert and a dense first layer, or --shape granite-3.0-1b-a400m: that model at its full size
 * (1.3 B parameters, 2.7 GB in BF16), or --shape gpt-oss-20b: its attention (8 query heads of 64
 * per kv head, sinks, biases, a window of 128 on every other layer, YaRN) and 32 experts of the
 * hidden width with biases and its clamped activation, top-4; random weights. Both sides use the same thread count (default 1: decoding a small model is latency-bound,
 * and on a shared machine a second thread mostly waits for a busy core; torch suffers most).
 *
 * Prints one JSON line. Both sides time prefill + decode with the weights already loaded (best of
 * the repeats), in wall seconds and in CPU seconds of the whole process (…CpuMsPerToken: what a
 * token costs in CPU, which a loaded machine inflates less than wall time; …DecodeCpuMsPerToken:
 * the same for the decoding steps alone, after the first token). `sameTokens` checks that both produced the same greedy ids.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openModel } from '../src/compressed/open-model.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { checkMatmulActivations } from '../src/engine/types.js';
import { BatchDecoder, weightProviderOf, type GenerationStream } from '../src/runtime/index.js';
import { randomPrompt } from './lib/random-prompt.js';
import { streamTokens } from './lib/stream-tokens.js';
import { shapeNamed } from './lib/synthetic-shapes.js';

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
    shape: { type: 'string', default: 'mixtral' },
    repeats: { type: 'string', default: '3' },
    python: { type: 'string', default: existsSync(venv) ? venv : 'python3' },
    'skip-torch': { type: 'boolean', default: false },
    weights: { type: 'string', default: 'bf16' },
    'native-coretype': { type: 'string' },
    'matmul-activations': { type: 'string', default: 'f32' },
  },
});
const matmulActivations = checkMatmulActivations('--matmul-activations', values['matmul-activations']);
if (values.weights !== 'bf16' && values.weights !== 'f32') throw new Error(`--weights must be bf16 or f32; got "${values.weights}"`);
const num = (k: keyof typeof values) => Number(values[k]);
const newTokens = num('new-tokens');
const streams = num('streams');
const repeats = num('repeats');

const work = mkdtempSync(path.join(tmpdir(), 'rfid-bench-decode-'));
const shape = shapeNamed(values.shape);
if (values.synthetic) {
  values.model = path.join(work, `synthetic-${values.shape}`);
  await shape.make(values.model);
}
const ckpt = await openModel(values.model!);
const vocab = ckpt.config.vocabSize;
const promptOf = (seed: number) => randomPrompt(vocab, num('prompt-tokens'), seed);
const prompt = promptOf(1);
try {
  // before the native addon loads: OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded
  if (values['native-coretype'] === 'auto') delete process.env.OPENBLAS_CORETYPE;
  else if (values['native-coretype']) process.env.OPENBLAS_CORETYPE = values['native-coretype'];
  const { engine, notice } = await createEngine(parseEngineChoice(values.engine!), { threads: num('threads'), matmulActivations });
  const provider = weightProviderOf(ckpt, { bf16Weights: values.weights === 'bf16' });
  const params = { temperature: 0, maxNewTokens: newTokens, stopTokenIds: [] as number[] };
  // CPU time once every stream has its first token: what follows is decoding steps only (the
  // prefills, which batch very differently, come before it)
  let firstTokenCpu: NodeJS.CpuUsage | null = null;
  let started = 0;
  let expected = 1;
  const drain = (s: GenerationStream) =>
    streamTokens(s, () => {
      if (++started === expected) firstTokenCpu = process.cpuUsage();
    });

  // single stream (one decoder kept across repeats, as a server keeps it; weights resident after the warm-up)
  const single = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
  await drain(single.submit(prompt, { ...params, maxNewTokens: 4 }));
  const cpuSeconds = (since: NodeJS.CpuUsage) => {
    const u = process.cpuUsage(since);
    return (u.user + u.system) / 1e6;
  };
  let singleSeconds = Infinity;
  let singleCpu = Infinity;
  let singleDecodeCpu = Infinity;
  let tsTokens: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    [firstTokenCpu, started, expected] = [null, 0, 1];
    tsTokens = await drain(single.submit(prompt, params));
    singleSeconds = Math.min(singleSeconds, (performance.now() - t0) / 1000);
    singleCpu = Math.min(singleCpu, cpuSeconds(c0));
    singleDecodeCpu = Math.min(singleDecodeCpu, cpuSeconds(firstTokenCpu!));
  }
  await single.close();

  // `streams` concurrent requests with different prompts, decoded together
  const batched = new BatchDecoder(provider, engine, { maxBatchSize: streams });
  await drain(batched.submit(prompt, { ...params, maxNewTokens: 4 }));
  let batchSeconds = Infinity;
  let batchCpu = Infinity;
  let batchDecodeCpu = Infinity;
  let steps = 0;
  for (let r = 0; r < repeats; r++) {
    const before = batched.stats.steps;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    [firstTokenCpu, started, expected] = [null, 0, streams];
    await Promise.all(Array.from({ length: streams }, (_, i) => drain(batched.submit(i === 0 ? prompt : promptOf(100 + i), params))));
    batchSeconds = Math.min(batchSeconds, (performance.now() - t0) / 1000);
    batchCpu = Math.min(batchCpu, cpuSeconds(c0));
    batchDecodeCpu = Math.min(batchDecodeCpu, cpuSeconds(firstTokenCpu!));
    steps = batched.stats.steps - before;
  }
  await batched.close();
  engine.dispose();

  const singleTps = newTokens / singleSeconds;
  const aggregateTps = (streams * newTokens) / batchSeconds;
  const report: Record<string, unknown> = {
    model: values.synthetic ? shape.label : path.relative(root, path.resolve(values.model!)),
    family: ckpt.config.family,
    hidden: ckpt.config.hiddenSize,
    layers: ckpt.config.numLayers,
    promptTokens: prompt.length,
    newTokens,
    engine: notice,
    weights: values.weights,
    matmulActivations,
    tsSingleSeconds: singleSeconds,
    tsSingleTokensPerSecond: singleTps,
    streams,
    tsAggregateSeconds: batchSeconds,
    tsAggregateTokensPerSecond: aggregateTps,
    aggregateOverSingle: aggregateTps / singleTps,
    tsSingleCpuMsPerToken: (1000 * singleCpu) / newTokens,
    tsAggregateCpuMsPerToken: (1000 * batchCpu) / (streams * newTokens),
    cpuPerTokenSingleOverAggregate: singleCpu / newTokens / (batchCpu / (streams * newTokens)),
    // decoding steps only (after the first token): CPU ms per token, and the batching gain on it
    tsSingleDecodeCpuMsPerToken: (1000 * singleDecodeCpu) / (newTokens - 1),
    tsAggregateDecodeCpuMsPerToken: (1000 * batchDecodeCpu) / (streams * (newTokens - 1)),
    decodeCpuPerTokenSingleOverAggregate: singleDecodeCpu / (newTokens - 1) / (batchDecodeCpu / (streams * (newTokens - 1))),
    batchedForwardPasses: steps,
  };
  if (!values['skip-torch']) {
    const idsFile = path.join(work, 'prompt.i32');
    writeFileSync(idsFile, new Uint8Array(prompt.buffer));
    // the same prompts as the concurrent streams, for PyTorch's batch of rows
    const batchFile = path.join(work, 'prompts.i32');
    const rows = Array.from({ length: streams }, (_, i) => (i === 0 ? prompt : promptOf(100 + i)));
    const flat = new Int32Array(streams * prompt.length);
    rows.forEach((r, i) => flat.set(r, i * prompt.length));
    writeFileSync(batchFile, new Uint8Array(flat.buffer));
    const torch = JSON.parse(
      execFileSync(values.python!, [path.join(import.meta.dirname, 'torch_decode.py'), '--model', path.resolve(values.model!), '--ids', idsFile, '--new-tokens', String(newTokens), '--threads', values.threads!, '--repeats', String(repeats), '--batch-ids', batchFile, '--streams', String(streams), '--dtype', matmulActivations === 'bf16' ? 'bfloat16' : 'float32'], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    ) as { seconds: number; cpuSeconds: number; tokens: number[]; threads: number; torch: string; transformers: string; batchSeconds: number; batchFirstRow: number[] };
    const torchAggregate = (streams * newTokens) / torch.batchSeconds;
    Object.assign(report, {
      // PyTorch's own batch of `streams` rows: its aggregate against its single stream, and ours against it
      torchAggregateTokensPerSecond: torchAggregate,
      torchAggregateOverSingle: torchAggregate / (newTokens / torch.seconds),
      aggregateRatio: aggregateTps / torchAggregate,
      // the batch loop decodes row 0 as the single loop does (same tokens, up to f32 summation order)
      torchBatchFirstRowSame: JSON.stringify(torch.batchFirstRow) === JSON.stringify(torch.tokens),
      torchSeconds: torch.seconds,
      torchTokensPerSecond: newTokens / torch.seconds,
      torchCpuMsPerToken: (1000 * torch.cpuSeconds) / newTokens,
      torchVersion: `torch ${torch.torch}, transformers ${torch.transformers}, ${torch.threads} threads`,
      singleRatio: torch.seconds / singleSeconds,
      sameTokens: JSON.stringify(torch.tokens) === JSON.stringify(tsTokens),
      agreeingTokens: agreeingPrefix(torch.tokens, tsTokens),
    });
  }
  process.stdout.write(JSON.stringify(report) + '\n');
} finally {
  await ckpt.close();
  rmSync(work, { recursive: true, force: true });
}

/** How many leading tokens two sequences share. */
function agreeingPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
