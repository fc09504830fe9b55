/**
 * Benchmark: reading gpt-oss's routed experts, as the runtime holds them (BF16 matrices in
 * nn.Linear layout), from an MXFP4 checkpoint (as gpt-oss is released) and from the BF16 release
 * of the same values.
 *
 *   npx tsx bench/mxfp4-load.ts [--layers 1] [--experts 32] [--hidden 2880] [--width 2880] [--rounds 3] [--steps 20] [--engine auto] [--json]
 *
 * The engine is created first, as the runtime does before it reads weights: the native addon, when
 * it loads, installs the io layer's hooks (large buffers, the BF16 release's transposes).
 *
 * 1. Writes (once; reused while its `.complete` marker matches the arguments) under
 *    .bench-tmp/mxfp4-load/ a gpt-oss checkpoint of that shape (default: gpt-oss-20b's layer, 32
 *    experts of 2880 × 2880; small attention and vocabulary, which this does not read) whose
 *    experts are random MXFP4 blocks and scales, and its BF16 copy (every tensor as the MXFP4 view
 *    presents it: the BF16 release's form, gate_up [E, H, 2I] and down [E, I, H]).
 * 2. Reads every expert's gate, up and down as BF16 (Checkpoint.readExpertBf16), alternating three
 *    ways, `rounds` times after one warm-up each, all from the page cache:
 *    - mxfp4: the MXFP4 checkpoint, each matrix decoded straight from its stored rows
 *      (Mxfp4Store.readColumnsBf16: the gate is the even rows of gate_up, the up the odd ones);
 *    - mxfp4 via slab: the same files through the presented [H, 2I] slab, transposed back (what
 *      reads did before readColumnsBf16);
 *    - bf16 release: the BF16 copy, its slab read and transposed;
 *    and, fourth, as a runtime that keeps weights as stored reads them: MXFP4 as stored, each
 *    matrix's stored rows copied out (Checkpoint.readExpertMxfp4), nothing decoded.
 * 3. Prints the median seconds of each and the ratios, per layer.
 * 4. Products, as a runtime that keeps weights as stored holds the experts (CheckpointWeights with
 *    bf16Weights): every expert of the first layer held in MXFP4 as the checkpoint stores it
 *    (Mxfp4SwiGlu) and, from the BF16 release, in BF16 (Bf16SwiGlu); their bytes; then, alternating
 *    the two, `steps` decoding steps (4 experts drawn at random a step, one row each, gpt-oss's
 *    top-4) and `steps` prompts (64 rows through each of 4 experts). Prints the median milliseconds
 *    a step and a prompt, and the ratios. The outputs of the two are compared too: equal bit for
 *    bit (gemmMxfp4 is gemmBf16 on the decoded matrix). Last, greedy generation from each
 *    checkpoint with every weight read beforehand (bench/lib/steady-decode.ts): tokens a second
 *    after the first token, two runs each, and whether the two give the same tokens.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expertLocation, readExpertBf16, readExpertMxfp4, type ExpertTensorReader } from '../src/checkpoint/expert-location.js';
import { openCheckpoint } from '../src/checkpoint/open.js';
import type { Checkpoint, ExpertMatrixType } from '../src/checkpoint/types.js';
import { createEngine, parseEngineChoice, type EngineChoice } from '../src/engine/index.js';
import type { Engine } from '../src/engine/types.js';
import { CheckpointWeights } from '../src/runtime/checkpoint-weights.js';
import { Bf16SwiGlu } from '../src/runtime/mlp.js';
import { Mxfp4SwiGlu } from '../src/runtime/mxfp4-swiglu.js';
import { ShardedWriter } from '../src/io/sharded.js';
import { Rng } from '../test/helpers/rng.js';
import { steadyGreedyDecode } from './lib/steady-decode.js';
import { timeExpertForward } from './lib/expert-forward.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  layers: number;
  experts: number;
  hidden: number;
  width: number;
  rounds: number;
  steps: number;
  engine: EngineChoice;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { layers: 1, experts: 32, hidden: 2880, width: 2880, rounds: 3, steps: 20, engine: 'auto', json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const int = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--layers') args.layers = int();
    else if (a === '--experts') args.experts = int();
    else if (a === '--hidden') args.hidden = int();
    else if (a === '--width') args.width = int();
    else if (a === '--rounds') args.rounds = int();
    else if (a === '--steps') args.steps = int();
    else if (a === '--engine') args.engine = parseEngineChoice(argv[++i] ?? '');
    else if (a === '--json') args.json = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (args.hidden % 32 !== 0 || args.width % 32 !== 0) throw new Error('--hidden and --width must be multiples of 32 (MXFP4 groups)');
  return args;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** config.json of a gpt-oss checkpoint of this shape (8 heads of 64 and a vocabulary of 1024: not what is timed). */
function configOf(a: Args, mxfp4: boolean): Record<string, unknown> {
  return {
    architectures: ['GptOssForCausalLM'],
    model_type: 'gpt_oss',
    hidden_size: a.hidden,
    intermediate_size: a.width,
    num_local_experts: a.experts,
    num_experts_per_tok: 4,
    num_hidden_layers: a.layers,
    num_attention_heads: 8,
    num_key_value_heads: 1,
    head_dim: 64,
    vocab_size: 1024,
    sliding_window: 128,
    layer_types: Array.from({ length: a.layers }, (_, l) => (l % 2 === 0 ? 'sliding_attention' : 'full_attention')),
    rope_scaling: { rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, original_max_position_embeddings: 4096, truncate: false },
    rope_theta: 150000,
    ...(mxfp4 ? { quantization_config: { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'] } } : {}),
  };
}

/** Writes the MXFP4 checkpoint (random blocks, scales as gpt-oss's experts use: 110…135), then its BF16 copy. */
async function prepare(a: Args, dir: string): Promise<{ mxfp4: string; bf16: string }> {
  const mxfp4 = path.join(dir, 'mxfp4');
  const bf16 = path.join(dir, 'bf16');
  const marker = path.join(dir, '.complete');
  const key = JSON.stringify({ layers: a.layers, experts: a.experts, hidden: a.hidden, width: a.width });
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === key) return { mxfp4, bf16 };
  const { layers: L, experts: E, hidden: H, width: I } = a;
  const rng = new Rng(1);
  const small = (name: string, shape: number[]) => ({ name, dtype: 'BF16' as const, shape, values: () => Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rng.normal() * 0.02) });
  const bytes = (name: string, shape: number[], lo: number, hi: number) => ({ name, dtype: 'U8' as const, shape, values: () => Uint8Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => lo + Math.floor(rng.next() * (hi - lo))) });
  const tensors: Array<{ name: string; dtype: 'BF16' | 'U8'; shape: number[]; values: () => Float32Array | Uint8Array }> = [small('model.embed_tokens.weight', [1024, H])];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    tensors.push(small(`${p}.input_layernorm.weight`, [H]), small(`${p}.post_attention_layernorm.weight`, [H]));
    for (const [n, rows, cols] of [['q', 512, H], ['k', 64, H], ['v', 64, H], ['o', H, 512]] as const) tensors.push(small(`${p}.self_attn.${n}_proj.weight`, [rows, cols]), small(`${p}.self_attn.${n}_proj.bias`, [rows]));
    tensors.push(small(`${p}.self_attn.sinks`, [8]), small(`${p}.mlp.router.weight`, [E, H]), small(`${p}.mlp.router.bias`, [E]));
    tensors.push(bytes(`${p}.mlp.experts.gate_up_proj_blocks`, [E, 2 * I, H / 32, 16], 0, 256), bytes(`${p}.mlp.experts.gate_up_proj_scales`, [E, 2 * I, H / 32], 110, 136));
    tensors.push(bytes(`${p}.mlp.experts.down_proj_blocks`, [E, H, I / 32, 16], 0, 256), bytes(`${p}.mlp.experts.down_proj_scales`, [E, H, I / 32], 110, 136));
    tensors.push(small(`${p}.mlp.experts.gate_up_proj_bias`, [E, 2 * I]), small(`${p}.mlp.experts.down_proj_bias`, [E, H]));
  }
  tensors.push(small('model.norm.weight', [H]), small('lm_head.weight', [1024, H]));
  await mkdir(mxfp4, { recursive: true });
  await writeFile(path.join(mxfp4, 'config.json'), JSON.stringify(configOf(a, true), null, 2));
  const writer = await ShardedWriter.create(mxfp4, tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), { metadata: { format: 'pt' } });
  for (const t of tensors) {
    const v = t.values();
    await writer.write(t.name, v);
  }
  await writer.finish();
  // the BF16 release of the same values: every tensor as the MXFP4 view presents it
  const source = await openCheckpoint(mxfp4);
  try {
    await mkdir(bf16, { recursive: true });
    await writeFile(path.join(bf16, 'config.json'), JSON.stringify(configOf(a, false), null, 2));
    const names = source.tensorNames();
    const copy = await ShardedWriter.create(bf16, names.map((n) => ({ name: n, dtype: 'BF16' as const, shape: source.tensor(n)!.shape })), { metadata: { format: 'pt' } });
    for (const n of names) {
      const bits = (await source.readBf16!(n))!;
      await copy.write(n, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
    }
    await copy.finish();
  } finally {
    await source.close();
  }
  await writeFile(marker, key);
  return { mxfp4, bf16 };
}

/**
 * Every expert matrix of the checkpoint as BF16, through `reader` (a checkpoint, or one without its
 * direct column reads), or with `asStored` kept in MXFP4 (Checkpoint.readExpertMxfp4).
 */
async function readAll(ckpt: Checkpoint, reader: ExpertTensorReader, asStored = false): Promise<number> {
  const started = performance.now();
  let values = 0;
  for (const layer of ckpt.layout.layers) {
    for (let e = 0; e < ckpt.config.numExperts; e++) {
      for (const type of ['gate', 'up', 'down'] as ExpertMatrixType[]) {
        const location = expertLocation(layer.moe!, ckpt.config, e, type)!;
        if (!asStored) values += (await readExpertBf16(reader, location))!.length;
        else {
          const m = (await readExpertMxfp4(reader, location))!;
          values += m.rows * m.cols;
        }
      }
    }
  }
  if (values !== ckpt.layout.layers.length * ckpt.config.numExperts * 3 * ckpt.config.hiddenSize * ckpt.config.expertIntermediateSize) throw new Error('an expert read came back short');
  return (performance.now() - started) / 1000;
}

/** Part 4 of the file comment: layer 0's experts held both ways, timed alternately. */
async function timeProducts(a: Args, engine: Engine, mx: Checkpoint, bf: Checkpoint) {
  const layerOf = async (ckpt: Checkpoint) => {
    const layer = await new CheckpointWeights(ckpt, { bf16Weights: true }).layer(0);
    if (layer.mlp.kind !== 'moe') throw new Error('layer 0 is not an MoE layer');
    const moe = layer.mlp.moe;
    return Promise.all(Array.from({ length: a.experts }, (_, e) => moe.expert(e)));
  };
  const held = { mxfp4: await layerOf(mx), bf16: await layerOf(bf) };
  if (!held.mxfp4.every((x) => x instanceof Mxfp4SwiGlu) || !held.bf16.every((x) => x instanceof Bf16SwiGlu)) throw new Error('the experts are not held as this part compares them');
  const bytes = { mxfp4: held.mxfp4.reduce((n, x) => n + (x as Mxfp4SwiGlu).byteLength, 0), bf16: held.bf16.reduce((n, x) => n + (x as Bf16SwiGlu).byteLength, 0) };
  const { stepMs, promptMs, identical } = timeExpertForward(engine, held, ['mxfp4', 'bf16'], a.hidden, 4, a.steps);
  // greedy generation with every weight read beforehand (steadyGreedyDecode): tokens a second
  // between the first token and the last, so neither the reads nor the prompt count
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 37 + 5) % 1024);
  const decode = (ckpt: Checkpoint) => steadyGreedyDecode(ckpt, engine, prompt, a.steps);
  const gen = { mxfp4: [] as number[], bf16: [] as number[] };
  let sameTokens = true;
  for (let r = 0; r < 2; r++) {
    const [m, b] = [await decode(mx), await decode(bf)];
    gen.mxfp4.push(m.perSecond);
    gen.bf16.push(b.perSecond);
    if (m.tokens.join() !== b.tokens.join()) sameTokens = false;
  }
  return { bytes, stepMs, promptMs, identical, generateTokensPerSecond: gen, sameTokens };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const { engine, notice } = await createEngine(a.engine);
  const dirs = await prepare(a, path.join(ROOT, '.bench-tmp', 'mxfp4-load'));
  const mx = await openCheckpoint(dirs.mxfp4);
  const bf = await openCheckpoint(dirs.bf16);
  try {
    // the checkpoint's readers without readColumnsBf16: each matrix through the presented slab
    const viaSlab: ExpertTensorReader = { readF32: (n) => mx.readF32(n), readRowsF32: (n, s, e) => mx.readRowsF32(n, s, e), readBf16: (n) => mx.readBf16!(n), readRowsBf16: (n, s, e) => mx.readRowsBf16!(n, s, e) };
    const ways: Array<[string, Checkpoint, ExpertTensorReader, boolean]> = [
      ['mxfp4', mx, mx as unknown as ExpertTensorReader, false],
      ['mxfp4 via slab', mx, viaSlab, false],
      ['bf16 release', bf, bf as unknown as ExpertTensorReader, false],
      ['mxfp4 as stored', mx, mx as unknown as ExpertTensorReader, true],
    ];
    for (const [, ckpt, reader, asStored] of ways) await readAll(ckpt, reader, asStored);
    const times = new Map<string, number[]>(ways.map(([name]) => [name, []]));
    for (let r = 0; r < a.rounds; r++) for (const [name, ckpt, reader, asStored] of ways) times.get(name)!.push(await readAll(ckpt, reader, asStored));
    const med = Object.fromEntries([...times].map(([name, t]) => [name, median(t) / a.layers]));
    const products = await timeProducts(a, engine, mx, bf);
    const result = {
      engine: notice,
      shape: { layers: a.layers, experts: a.experts, hidden: a.hidden, width: a.width },
      rounds: a.rounds,
      secondsPerLayer: med,
      all: Object.fromEntries(times),
      mxfp4OverSlab: med['mxfp4'] / med['mxfp4 via slab'],
      mxfp4OverBf16: med['mxfp4'] / med['bf16 release'],
      products,
    };
    if (a.json) console.log(JSON.stringify(result));
    else {
      console.log(notice);
      console.log(`experts of ${a.layers} layer(s) of ${a.experts} × ${a.hidden}×${a.width}, read as BF16 (median of ${a.rounds}, seconds a layer):`);
      for (const [name, s] of Object.entries(med)) console.log(`  ${name.padEnd(16)} ${s.toFixed(2)} s`);
      console.log(`  mxfp4 ÷ via slab ${result.mxfp4OverSlab.toFixed(2)}, mxfp4 ÷ bf16 release ${result.mxfp4OverBf16.toFixed(2)}`);
      const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
      console.log(`layer 0's experts held: MXFP4 ${mb(products.bytes.mxfp4)}, BF16 ${mb(products.bytes.bf16)} (${(products.bytes.mxfp4 / products.bytes.bf16).toFixed(3)}×)`);
      console.log(`  decoding step (4 experts × 1 row, median of ${a.steps}): MXFP4 ${products.stepMs.mxfp4.toFixed(1)} ms, BF16 ${products.stepMs.bf16.toFixed(1)} ms (MXFP4 ÷ BF16 ${(products.stepMs.mxfp4 / products.stepMs.bf16).toFixed(2)})`);
      console.log(`  prompt (4 experts × 64 rows, median of ${a.steps}): MXFP4 ${products.promptMs.mxfp4.toFixed(1)} ms, BF16 ${products.promptMs.bf16.toFixed(1)} ms (MXFP4 ÷ BF16 ${(products.promptMs.mxfp4 / products.promptMs.bf16).toFixed(2)})`);
      console.log(`  outputs equal bit for bit: ${products.identical}`);
      const g = products.generateTokensPerSecond;
      console.log(`  greedy generation (${a.steps} steps, 2 runs each): MXFP4 ${g.mxfp4.map((x) => x.toFixed(2)).join(', ')} tokens/s, BF16 ${g.bf16.map((x) => x.toFixed(2)).join(', ')} tokens/s; same tokens: ${products.sameTokens}`);
    }
  } finally {
    await Promise.all([mx.close(), bf.close()]);
    engine.dispose();
  }
}

await main();
