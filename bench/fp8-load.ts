/**
 * Benchmark: loading a block-FP8 checkpoint (read dequantised to BF16) against the same model
 * stored in BF16.
 *
 *   npx tsx bench/fp8-load.ts --model DIR [--block 128] [--rounds 3] [--steps 20] [--fp8-dir DIR] [--engine native|ts] [--cold] [--json]
 *
 * 1. Writes (once; reused while its `.complete` marker matches) the FP8 copy of the BF16
 *    checkpoint DIR as the FP8 releases store it, with torch (scripts/hf_reference.py
 *    quantize_fp8: 128×128 blocks by default, codes in float8_e4m3fn, F32 scales; embeddings,
 *    norms, routers and the head stay BF16). Needs the venv (.venv, or RFID_MOE_PYTHON).
 * 2. With the engine loaded as `serve` or `compress` loads it (the native addon's table lookup;
 *    `--engine ts`: the JavaScript loop), reads every tensor of each checkpoint as the runtime
 *    holds it with BF16 weights (BF16 kept as 16-bit patterns, anything else as f32), alternating
 *    the two, `rounds` times after one warm-up read of each, so both come from the page cache:
 *    this compares the software cost, the dequantisation against plain BF16 reads. With `--cold`
 *    (root: it writes /proc/sys/vm/drop_caches) the page cache is dropped before each read
 *    instead, so each comes from the disk, where the FP8 file is half the bytes.
 * 3. Reports bytes on disk and held, the median load time of each and their ratio, and how far
 *    the dequantised weights are from the BF16 originals (the FP8 quantization's own error).
 * 4. The FP8 experts as a runtime that keeps weights as stored holds them (CheckpointWeights with
 *    bf16Weights), on the engine's default threads: E4M3 codes and scales (Fp8SwiGlu, gemmFp8)
 *    against the same checkpoint's experts read decoded to BF16 (Bf16SwiGlu; a view without
 *    readExpertFp8), the only choice before. The whole model's resident bytes each way; the
 *    median seconds to read every expert as held (page cache); layer 0's experts' bytes; then,
 *    alternating the two, `steps` decoding steps (the model's top-k experts drawn at random, one
 *    row each) and `steps` prompts (64 rows through each), median milliseconds, outputs compared
 *    bit for bit; last, greedy generation from each with every weight read beforehand
 *    (bench/lib/steady-decode.ts): tokens a second after the first token, two runs each, one
 *    stream and 8 decoded together, and whether they give the same tokens; and from the BF16
 *    checkpoint DIR the same way, one stream (other values, so other tokens), for scale.
 */
import { execSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../src/checkpoint/open.js';
import type { Checkpoint } from '../src/checkpoint/types.js';
import { createEngine } from '../src/engine/index.js';
import type { Engine } from '../src/engine/types.js';
import { TensorStore } from '../src/io/sharded.js';
import { CheckpointWeights } from '../src/runtime/checkpoint-weights.js';
import { Fp8SwiGlu } from '../src/runtime/fp8-swiglu.js';
import { Bf16SwiGlu } from '../src/runtime/mlp.js';
import { residentWeightBytes } from '../src/runtime/resident-weights.js';
import type { ExpertWeights } from '../src/runtime/weights.js';
import { steadyGreedyDecode } from './lib/steady-decode.js';
import { timeExpertForward } from './lib/expert-forward.js';
import { withExpertsDecoded } from '../test/helpers/fp8-fixture.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

interface Args {
  model: string;
  block: number;
  rounds: number;
  steps: number;
  fp8Dir?: string;
  engine: 'native' | 'ts';
  cold: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Partial<Args> = { block: 128, rounds: 3, steps: 20, engine: 'native', cold: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const int = (name: string) => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${name} needs a positive integer`);
      return v;
    };
    if (a === '--model') args.model = argv[++i];
    else if (a === '--block') args.block = int(a);
    else if (a === '--rounds') args.rounds = int(a);
    else if (a === '--steps') args.steps = int(a);
    else if (a === '--fp8-dir') args.fp8Dir = argv[++i];
    else if (a === '--json') args.json = true;
    else if (a === '--cold') args.cold = true;
    else if (a === '--engine') {
      const e = argv[++i];
      if (e !== 'native' && e !== 'ts') throw new Error('--engine takes native or ts');
      args.engine = e;
    } else throw new Error(`unknown argument ${a} (expected --model DIR, --block N, --rounds N, --steps N, --fp8-dir DIR, --engine native|ts, --cold, --json)`);
  }
  if (!args.model) throw new Error('--model DIR (a BF16 checkpoint) is required');
  return args as Args;
}

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir)) if (f.endsWith('.safetensors')) total += (await stat(path.join(dir, f))).size;
  return total;
}

/** The FP8 copy of `model`, written by torch unless a complete one with the same block is there. */
async function ensureFp8(model: string, dir: string, block: number, log: (s: string) => void): Promise<void> {
  const marker = path.join(dir, '.complete');
  const signature = JSON.stringify({ model: path.resolve(model), block });
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === signature) return;
  const python = process.env.RFID_MOE_PYTHON ?? path.join(ROOT, '.venv', 'bin', 'python');
  log(`writing the FP8 copy (${block}×${block} blocks) to ${dir} with torch …`);
  const job = { jobs: [{ op: 'quantize_fp8', model: path.resolve(model), out: dir, block: [block, block], partialBlocks: true }] };
  const run = spawnSync(python, [path.join(ROOT, 'scripts', 'hf_reference.py')], { input: JSON.stringify(job), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`quantize_fp8 failed (${python}): ${run.stderr.slice(-2000)}`);
  const result = (JSON.parse(run.stdout) as { results: Array<{ ok: boolean; error?: string; quantized?: string[] }> }).results[0];
  if (!result.ok) throw new Error(`quantize_fp8: ${result.error}`);
  log(`  ${result.quantized!.length} weights quantized`);
  await writeFile(marker, signature);
}

/** Every tensor read as the runtime holds it with BF16 weights; returns the bytes held. */
async function readAll(ckpt: Checkpoint): Promise<number> {
  let held = 0;
  for (const name of ckpt.tensorNames()) {
    const bits = ckpt.tensor(name)!.dtype === 'BF16' ? await ckpt.readBf16!(name) : null;
    held += bits ? bits.byteLength : (await ckpt.readF32(name)).byteLength;
  }
  return held;
}

/** Drops the page cache (root only), so the next read comes from the disk. */
function dropPageCache(): void {
  try {
    execSync('sync; echo 3 > /proc/sys/vm/drop_caches', { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`--cold needs to drop the page cache (as root, through /proc/sys/vm/drop_caches): ${(err as Error).message}`);
  }
}

async function timedLoad(dir: string, cold = false): Promise<{ seconds: number; held: number }> {
  if (cold) dropPageCache();
  const t0 = performance.now();
  const ckpt = await openCheckpoint(dir);
  try {
    const held = await readAll(ckpt);
    return { seconds: (performance.now() - t0) / 1000, held };
  } finally {
    await ckpt.close();
  }
}

/** max |fp8 − bf16| / max |bf16| over the quantized weights (the quantization's error, not the reader's) */
async function quantizationError(bf16Dir: string, fp8Dir: string): Promise<number> {
  const a = await openCheckpoint(bf16Dir);
  const b = await openCheckpoint(fp8Dir);
  let worst = 0;
  try {
    const stored = await TensorStore.open(fp8Dir);
    const names = stored.tensorNames().filter((n) => n.endsWith('_scale_inv')).map((n) => n.slice(0, -'_scale_inv'.length));
    await stored.close();
    // a sample spread over the model
    const sample = names.filter((_, i) => i % Math.max(1, Math.floor(names.length / 16)) === 0);
    for (const name of sample) {
      const x = await a.readF32(name);
      const y = await b.readF32(name);
      let diff = 0;
      let ref = 0;
      for (let i = 0; i < x.length; i++) {
        diff = Math.max(diff, Math.abs(x[i] - y[i]));
        ref = Math.max(ref, Math.abs(x[i]));
      }
      worst = Math.max(worst, diff / ref);
    }
  } finally {
    await a.close();
    await b.close();
  }
  return worst;
}

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];


type Way = 'codes' | 'decoded';

/** Part 4 of the file comment. */
async function heldExperts(engine: Engine, fp8Dir: string, bf16Dir: string, rounds: number, steps: number) {
  const ckpt = await openCheckpoint(fp8Dir);
  try {
    const views: Record<Way, Checkpoint> = { codes: ckpt, decoded: withExpertsDecoded(ckpt) };
    const resident = { codes: residentWeightBytes(views.codes, { bf16Weights: true }), decoded: residentWeightBytes(views.decoded, { bf16Weights: true }) };
    const { numExperts, topK, hiddenSize: H } = ckpt.config;
    const moeLayers = ckpt.layout.layers.filter((l) => l.moe).map((l) => l.index);
    const layerExperts = async (way: Way, layer: number): Promise<ExpertWeights[]> => {
      const l = await new CheckpointWeights(views[way], { bf16Weights: true }).layer(layer);
      if (l.mlp.kind !== 'moe') throw new Error(`layer ${layer} is not an MoE layer`);
      const moe = l.mlp.moe;
      return Promise.all(Array.from({ length: numExperts }, (_, e) => moe.expert(e)));
    };
    // every expert read as held, alternating, after one warm-up each
    const readAll = async (way: Way) => {
      const t0 = performance.now();
      for (const layer of moeLayers) await layerExperts(way, layer);
      return (performance.now() - t0) / 1000;
    };
    await readAll('codes');
    await readAll('decoded');
    const loads: Record<Way, number[]> = { codes: [], decoded: [] };
    for (let r = 0; r < rounds; r++) for (const way of r % 2 === 0 ? (['codes', 'decoded'] as const) : (['decoded', 'codes'] as const)) loads[way].push(await readAll(way));
    const held = { codes: await layerExperts('codes', moeLayers[0]), decoded: await layerExperts('decoded', moeLayers[0]) };
    if (!held.codes.every((x) => x instanceof Fp8SwiGlu) || !held.decoded.every((x) => x instanceof Bf16SwiGlu)) throw new Error('the experts are not held as this part compares them');
    const bytes = { codes: held.codes.reduce((n, x) => n + (x as Fp8SwiGlu).byteLength, 0), decoded: held.decoded.reduce((n, x) => n + (x as Bf16SwiGlu).byteLength, 0) };
    const { stepMs, promptMs, identical } = timeExpertForward(engine, held, ['codes', 'decoded'], H, topK, steps);
    // greedy generation with every weight read beforehand (steadyGreedyDecode): tokens a second between the first token and the last
    const prompt = Array.from({ length: 16 }, (_, i) => (i * 37 + 5) % Math.min(ckpt.config.vocabSize, 1024));
    const decode = (c: Checkpoint, streams = 1) => steadyGreedyDecode(c, engine, prompt, steps, streams);
    // and the BF16 checkpoint the FP8 copy was made from (other weights, so other tokens), its BF16 weights held as stored
    const release = await openCheckpoint(bf16Dir);
    const gen: Record<Way | 'release', number[]> = { codes: [], decoded: [], release: [] };
    const gen8: Record<Way, number[]> = { codes: [], decoded: [] };
    let sameTokens = true;
    try {
      for (let r = 0; r < 2; r++) {
        const [c, d, b] = [await decode(views.codes), await decode(views.decoded), await decode(release)];
        gen.codes.push(c.perSecond);
        gen.decoded.push(d.perSecond);
        gen.release.push(b.perSecond);
        if (c.tokens.join() !== d.tokens.join()) sameTokens = false;
        const [c8, d8] = [await decode(views.codes, 8), await decode(views.decoded, 8)];
        gen8.codes.push(c8.perSecond);
        gen8.decoded.push(d8.perSecond);
        if (c8.tokens.join() !== d8.tokens.join()) sameTokens = false;
      }
    } finally {
      await release.close();
    }
    return {
      engine: engine.describe(),
      residentBytes: resident,
      expertLoadSeconds: { codes: median(loads.codes), decoded: median(loads.decoded) },
      layer0ExpertBytes: bytes,
      topK,
      stepMs,
      promptMs,
      identical,
      generateTokensPerSecond: gen,
      generate8TokensPerSecond: gen8,
      sameTokens,
    };
  } finally {
    await ckpt.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string) => process.stderr.write(s + '\n');
  const fp8Dir = args.fp8Dir ?? path.join(ROOT, '.bench-tmp', `fp8-${path.basename(path.resolve(args.model))}-b${args.block}`);
  await ensureFp8(args.model, fp8Dir, args.block, log);
  const { engine } = await createEngine(args.engine, { threads: 1 });
  log(`engine: ${engine.describe()}`);
  const dirs = { bf16: path.resolve(args.model), fp8: fp8Dir };
  if (!args.cold) {
    log('warm-up reads (page cache) …');
    for (const dir of Object.values(dirs)) await timedLoad(dir);
  }
  const times: Record<'bf16' | 'fp8', number[]> = { bf16: [], fp8: [] };
  const held: Record<'bf16' | 'fp8', number> = { bf16: 0, fp8: 0 };
  for (let r = 0; r < args.rounds; r++) {
    for (const kind of r % 2 === 0 ? (['bf16', 'fp8'] as const) : (['fp8', 'bf16'] as const)) {
      const t = await timedLoad(dirs[kind], args.cold);
      times[kind].push(t.seconds);
      held[kind] = t.held;
      log(`  round ${r + 1}: ${kind} ${t.seconds.toFixed(2)} s`);
    }
  }
  const result = {
    model: dirs.bf16,
    engine: engine.describe(),
    cache: args.cold ? 'cold: page cache dropped before each read' : 'warm: page cache',
    block: args.block,
    rounds: args.rounds,
    diskBytes: { bf16: await diskBytes(dirs.bf16), fp8: await diskBytes(dirs.fp8) },
    heldBytes: held,
    loadSeconds: { bf16: median(times.bf16), fp8: median(times.fp8) },
    allSeconds: times,
    fp8OverBf16: median(times.fp8) / median(times.bf16),
    quantizationError: await quantizationError(dirs.bf16, dirs.fp8),
    heldAsStored: await (async () => {
      log('FP8 experts held as stored against decoded …');
      const { engine: threaded } = await createEngine(args.engine);
      try {
        return await heldExperts(threaded, dirs.fp8, dirs.bf16, args.rounds, args.steps);
      } finally {
        threaded.dispose();
      }
    })(),
  };
  if (args.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  process.stdout.write(
    [
      `| checkpoint | on disk | held | load (median of ${args.rounds}; ${result.cache}) |`,
      '|---|---:|---:|---:|',
      `| BF16 | ${gb(result.diskBytes.bf16)} | ${gb(held.bf16)} | ${result.loadSeconds.bf16.toFixed(2)} s |`,
      `| block FP8 (${args.block}×${args.block}), dequantised as read | ${gb(result.diskBytes.fp8)} | ${gb(held.fp8)} | ${result.loadSeconds.fp8.toFixed(2)} s |`,
      '',
      `Engine: ${result.engine}. FP8 ÷ BF16 load time: ${result.fp8OverBf16.toFixed(2)}×; the FP8 weights differ from the BF16 ones by at most ${(result.quantizationError * 100).toFixed(2)}% of the largest weight (the quantization's error).`,
      '',
      ...heldLines(result.heldAsStored, args.rounds, args.steps),
      '',
    ].join('\n'),
  );
}

function heldLines(h: Awaited<ReturnType<typeof heldExperts>>, rounds: number, steps: number): string[] {
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  const ratio = (x: Record<Way, number>) => (x.codes / x.decoded).toFixed(2);
  return [
    `FP8 experts held as a runtime keeping weights as stored holds them (engine: ${h.engine}):`,
    '',
    '| | codes kept (gemmFp8) | decoded to BF16 | codes ÷ decoded |',
    '|---|---:|---:|---:|',
    `| resident bytes, whole model | ${gb(h.residentBytes.codes)} | ${gb(h.residentBytes.decoded)} | ${ratio(h.residentBytes)} |`,
    `| every expert read as held (median of ${rounds}) | ${h.expertLoadSeconds.codes.toFixed(2)} s | ${h.expertLoadSeconds.decoded.toFixed(2)} s | ${ratio(h.expertLoadSeconds)} |`,
    `| layer 0's experts | ${gb(h.layer0ExpertBytes.codes)} | ${gb(h.layer0ExpertBytes.decoded)} | ${ratio(h.layer0ExpertBytes)} |`,
    `| decoding step, ${h.topK} experts × 1 row (median of ${steps}) | ${h.stepMs.codes.toFixed(2)} ms | ${h.stepMs.decoded.toFixed(2)} ms | ${ratio(h.stepMs)} |`,
    `| prompt, ${h.topK} experts × 64 rows (median of ${steps}) | ${h.promptMs.codes.toFixed(1)} ms | ${h.promptMs.decoded.toFixed(1)} ms | ${ratio(h.promptMs)} |`,
    `| greedy generation, tokens/s (2 runs) | ${h.generateTokensPerSecond.codes.map((x) => x.toFixed(2)).join(', ')} | ${h.generateTokensPerSecond.decoded.map((x) => x.toFixed(2)).join(', ')} | |`,
    `| greedy generation, 8 streams, tokens/s (2 runs) | ${h.generate8TokensPerSecond.codes.map((x) => x.toFixed(2)).join(', ')} | ${h.generate8TokensPerSecond.decoded.map((x) => x.toFixed(2)).join(', ')} | |`,
    '',
    `The BF16 checkpoint the FP8 copy was made from, generating the same way: ${h.generateTokensPerSecond.release.map((x) => x.toFixed(2)).join(', ')} tokens/s.`,
    `Outputs equal bit for bit: ${h.identical}; same generated tokens: ${h.sameTokens}.`,
  ];
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
