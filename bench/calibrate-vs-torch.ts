/**
 * Calibration-forward throughput, TypeScript (layer by layer, weights read from disk) against
 * the PyTorch reference (bench/torch_forward.py, weights preloaded) on the same checkpoint and
 * the same windows, in the same run; also checks that both count the same routing.
 *
 *   node --import tsx bench/calibrate-vs-torch.ts [--engine native|ts|auto] [--samples 16]
 *        [--seq-len 512] [--hidden 512] [--width 1408] [--layers 4] [--experts 8] [--repeats 3]
 *        [--rounds 1] [--eval] [--dtype f32|bf16] [--resident]
 *
 * Prints one JSON line; the ratio is TS tokens/s ÷ torch tokens/s (forward only on the torch side,
 * so TS also pays for reading and decoding the weights: the comparison is conservative). With
 * `--rounds N` the two sides alternate N times (torch's best of `repeats`, then ours) and the
 * reported ratio is the median of the rounds' ratios, with every round listed: on a shared machine
 * one round's ratio moves by ±15% with the load, so one round is an anecdote. With `--eval` both
 * sides evaluate instead (every layer, the lm_head and the next-token loss over the same windows:
 * `computePerplexity` against the reference's perplexity), and the mean NLLs are compared. With
 * `--dtype bf16` the checkpoint is stored BF16, as real ones are: PyTorch widens it to f32 on load;
 * rfid-moe widens it too, or holds it as stored where the engine multiplies BF16 weights faster
 * (AMX tiles; compare with RFID_MOE_NATIVE_SIMD=avx512, which keeps the tiles off). With
 * `--resident` rfid-moe holds the weights in memory as PyTorch does (held as calibration holds
 * them, and loaded by an untimed pass over one window), so both sides time the forward alone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { computePerplexity } from '../src/eval/index.js';
import { collectRoutingCounts } from '../src/routing-stats/index.js';
import { CheckpointWeights, manyRowsWeights, ResidentWeights } from '../src/runtime/index.js';
import { calibrationWindows } from '../src/tokens/windows.js';
import { makeTinyCheckpoint } from '../test/helpers/fixtures.js';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'native' },
    samples: { type: 'string', default: '16' },
    'seq-len': { type: 'string', default: '512' },
    hidden: { type: 'string', default: '512' },
    width: { type: 'string', default: '1408' },
    layers: { type: 'string', default: '4' },
    experts: { type: 'string', default: '8' },
    repeats: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '1' },
    eval: { type: 'boolean', default: false },
    dtype: { type: 'string', default: 'f32' },
    resident: { type: 'boolean', default: false },
    threads: { type: 'string', default: '2' },
    // the peer: the project's venv (PyTorch 2.x) when present, else the system python
    python: { type: 'string', default: existsSync(path.join(import.meta.dirname, '..', '.venv', 'bin', 'python')) ? path.join(import.meta.dirname, '..', '.venv', 'bin', 'python') : 'python3' },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
for (const k of ['rounds', 'repeats'] as const) {
  if (!Number.isInteger(num(k)) || num(k) < 1) throw new Error(`--${k} must be a whole number ≥ 1 (got ${values[k]})`);
}
if (values.dtype !== 'f32' && values.dtype !== 'bf16') throw new Error(`--dtype must be f32 or bf16 (got ${values.dtype})`);
const work = mkdtempSync(path.join(tmpdir(), 'rfid-bench-calib-'));
try {
  const hidden = num('hidden');
  const model = path.join(work, 'model');
  await makeTinyCheckpoint(model, 'mixtral', {
    seed: 1,
    hiddenSize: hidden,
    numHeads: hidden / 64,
    numKvHeads: Math.max(1, hidden / 256),
    expertIntermediateSize: num('width'),
    numLayers: num('layers'),
    numExperts: num('experts'),
    topK: 2,
    vocabSize: 32000,
    dtype: values.dtype === 'bf16' ? 'BF16' : 'F32',
  });
  const seqLen = num('seq-len');
  const corpus = Int32Array.from({ length: 100_000 }, (_, i) => (i * 7919 + ((i * i) % 104729)) % 32000);
  const windows = calibrationWindows(corpus, num('samples'), seqLen, 0);
  const idsFile = path.join(work, 'ids.i32');
  const flat = new Int32Array(windows.length * seqLen);
  windows.forEach((w, i) => flat.set(w, i * seqLen));
  writeFileSync(idsFile, new Uint8Array(flat.buffer));
  const tokens = flat.length;

  type TorchRun = { loadSeconds: number; forwardSeconds: number; tokens: number; threads: number; torch: string; counts?: Record<string, number[]>; meanNll?: number };
  const evaluate = values.eval!;
  const runTorch = (): TorchRun =>
    JSON.parse(
      execFileSync(values.python!, [path.join(import.meta.dirname, 'torch_forward.py'), '--model', model, '--ids', idsFile, '--seq-len', String(seqLen), '--threads', values.threads!, '--repeats', values.repeats!, ...(evaluate ? ['--eval'] : [])], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      }),
    ) as TorchRun;

  const { engine, notice } = await createEngine(parseEngineChoice(values.engine!), { threads: num('threads') });
  const ckpt = await openCheckpoint(model);
  // --resident: the weights held in memory, as the PyTorch side holds them, loaded by an untimed pass
  const resident = values.resident ? new ResidentWeights(new CheckpointWeights(ckpt, manyRowsWeights(engine))) : undefined;
  if (resident) await collectRoutingCounts(ckpt, engine, windows.slice(0, 1), { provider: resident });
  const rounds: Array<{ tsSeconds: number; torchSeconds: number; ratio: number; loadAverage: number }> = [];
  let torch: TorchRun | undefined;
  let counts: Record<string, number[]> = {};
  let sameCounts = true;
  let meanNll = Number.NaN;
  /** largest |mean NLL − torch's| over the rounds (--eval) */
  let nllGap = 0;
  for (let round = 0; round < num('rounds'); round++) {
    torch = runTorch();
    const times: number[] = [];
    for (let r = 0; r < num('repeats'); r++) {
      const t0 = performance.now();
      if (evaluate) {
        meanNll = (await computePerplexity(resident ?? ckpt, engine, windows)).meanNll;
      } else {
        const result = await collectRoutingCounts(ckpt, engine, windows, resident ? { provider: resident } : {});
        counts = Object.fromEntries(result.layers.map((l) => [String(l.layer), l.counts]));
      }
      times.push((performance.now() - t0) / 1000);
    }
    const tsSeconds = Math.min(...times);
    if (evaluate) nllGap = Math.max(nllGap, Math.abs(meanNll - torch.meanNll!));
    else sameCounts &&= JSON.stringify(counts) === JSON.stringify(torch.counts);
    rounds.push({ tsSeconds, torchSeconds: torch.forwardSeconds, ratio: torch.forwardSeconds / tsSeconds, loadAverage: loadavg()[0] });
    process.stderr.write(`round ${round + 1}/${num('rounds')}: rfid-moe ${tsSeconds.toFixed(2)} s, torch ${torch.forwardSeconds.toFixed(2)} s, ratio ${(torch.forwardSeconds / tsSeconds).toFixed(2)}x (load average ${loadavg()[0].toFixed(1)})\n`);
  }
  await ckpt.close();
  engine.dispose();
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  const tsSeconds = median(rounds.map((r) => r.tsSeconds));
  const torchSeconds = median(rounds.map((r) => r.torchSeconds));
  const report = {
    weights: values.resident ? 'resident' : 'read from disk every pass',
    model: { family: 'mixtral', dtype: values.dtype, hidden, expertWidth: num('width'), layers: num('layers'), experts: num('experts'), topK: 2 },
    tokens,
    engine: notice,
    tsSeconds,
    tsTokensPerSecond: tokens / tsSeconds,
    torchForwardSeconds: torchSeconds,
    torchLoadSeconds: torch!.loadSeconds,
    torchTokensPerSecond: tokens / torchSeconds,
    torchThreads: torch!.threads,
    torchVersion: torch!.torch,
    // the median of the rounds' ratios (one round: its ratio)
    ratio: median(rounds.map((r) => r.ratio)),
    ratioRange: [Math.min(...rounds.map((r) => r.ratio)), Math.max(...rounds.map((r) => r.ratio))],
    rounds,
    ...(evaluate ? { mode: 'eval', meanNll, torchMeanNll: torch!.meanNll, meanNllGap: nllGap } : { mode: 'calibrate', sameRoutingCounts: sameCounts }),
  };
  process.stdout.write(JSON.stringify(report) + '\n');
  if (!evaluate && !sameCounts) process.stderr.write(`routing counts differ:\n ts    ${JSON.stringify(counts)}\n torch ${JSON.stringify(torch!.counts)}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
