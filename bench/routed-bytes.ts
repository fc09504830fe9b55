/**
 * How many of its experts' weights a compressed model's decoding step reads, against its original,
 * weighted by how often each expert is routed to.
 *
 *   npm run bench:routed-bytes -- <compressed-dir> [--against <original-dir>] [--streams 1,8]
 *     [--new-tokens 64] [--threads 2] [--json]
 *
 * Two figures, which need not agree:
 * - **by the calibration's routing counts**, from the output's config.json alone (below);
 * - **measured in a greedy decode** of the compressed model (32-token prompts drawn from the
 *   vocabulary, as bench/decode-vs-torch.ts draws them, at each stream count; `--streams ''`
 *   skips it): every decoding step's routed experts, counted where the runtime hands them to the
 *   engine's one call, against the original's parameters for the same routed experts, with the
 *   call's mean time and bytes per second. `--against` runs the original the same way,
 *   alternated with the compressed model. A model's decode routes where its text takes it, which
 *   need not be where its calibration text went.
 *
 * A decoding step reads only the routed experts, and the rank allocation gives the most rank to
 * the experts routed most often, so the bytes a step reads can shrink less than the checkpoint
 * does. The first figure reads the output's rfid_moe block: each group's rank and structure, and each layer's
 * calibration routing counts (the frequencies the allocation used). Per expert and matrix type it
 * counts the parameters one routed token's product reads:
 * - a type left dense: p·d;
 * - one input-side basis per group (Ŵ_e = A_e·B_g) or an output-side one (Ŵ_e = U_g·C_e): the
 *   expert's coefficients and the group's whole basis, p·r + r·d. The runtime multiplies each
 *   routed expert's rows by its group's basis on their own, so a basis is read once for each
 *   routed member (from cache when two members share a step);
 * - base-delta (Ŵ_e = W̄_g + A_e·B_e): p·d + K_e·(p + d);
 * - a tile residual: its q values of η.
 * The original reads p·d per type. Both are parameter counts: with factors in the checkpoint's
 * own dtype (the usual case) the byte ratio is the same.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseRfidBlock, type GroupBlock, type TypeBlock } from '../src/compress/output/block.js';
import { openModel } from '../src/compressed/open-model.js';
import { createEngine } from '../src/engine/index.js';
import type { Engine, ExpertOperand, ForwardKernels } from '../src/engine/types.js';
import { BatchDecoder, weightProviderOf } from '../src/runtime/index.js';
import { randomPrompt } from './lib/random-prompt.js';
import { streamTokens } from './lib/stream-tokens.js';

/** Parameters one routed token's product with expert `e` of this type reads. */
function perExpert(type: TypeBlock, group: GroupBlock, e: number): number {
  const { p, d } = type;
  const residual = group.residual ? group.residual.q : 0;
  if (group.structure === 'base-delta') {
    const k = group.expertRanks![group.experts.indexOf(e)];
    return p * d + k * (p + d) + residual;
  }
  return group.rank * (p + d) + residual;
}

/** Parameters and bytes one routed row's product with this operand reads (a factored one's factors, base and η). */
function operandReads(o: ExpertOperand): { params: number; bytes: number } {
  if (o instanceof Uint16Array || o instanceof Float32Array) return { params: o.length, bytes: o.byteLength };
  if ('codes' in o) return { params: o.codes.length, bytes: o.codes.byteLength + o.scales.byteLength };
  if ('blocks' in o) return { params: 2 * o.blocks.length, bytes: o.blocks.byteLength + o.scales.byteLength };
  const q = o.residualQ ?? 0;
  const matrices = [o.basis, o.coefficients, ...(o.base ? [o.base] : [])];
  return {
    params: matrices.reduce((n, m) => n + m.length, q),
    bytes: matrices.reduce((n, m) => n + m.byteLength, o.residualEta ? 4 * q : 0),
  };
}

interface DecodeReads {
  streams: number;
  /** decoding steps × MoE layers: the one calls of at most 8 rows, counted in the measured run */
  calls: number;
  /** the routed experts' parameters read ÷ the original's for the same experts */
  ratio: number;
  /** mean time of the experts' one call, and the bytes it read ÷ that time */
  microsPerCall: number;
  gbPerSecond: number;
}

/**
 * Greedy decode of `streams` concurrent 32-token prompts, `newTokens` each, on the native engine:
 * the routed experts' parameters its decoding steps (calls of at most 8 rows) read, ÷ the
 * original's for the same experts (3·p·d each).
 */
async function measuredInDecode(dir: string, streams: number, newTokens: number, threads: number): Promise<DecodeReads> {
  const model = await openModel(dir);
  const { engine } = await createEngine('auto', { threads });
  let counting = false;
  let read = 0, original = 0, bytes = 0, calls = 0, nanos = 0n;
  const kernels: ForwardKernels = Object.create(engine.kernels) as ForwardKernels;
  kernels.swiGluExperts = (hidden, width, x, first, order, weights, gates, ups, downs, work, out) => {
    const t0 = process.hrtime.bigint();
    engine.kernels.swiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, out);
    if (!counting || x.length / hidden > 8) return;
    nanos += process.hrtime.bigint() - t0;
    calls++;
    for (let i = 0; i + 1 < first.length; i++) {
      if (first[i + 1] === first[i]) continue;
      for (const o of [gates[i], ups[i], downs[i]]) {
        const r = operandReads(o);
        read += r.params;
        bytes += r.bytes;
      }
      original += 3 * hidden * width;
    }
  };
  // the engine as the decoder sees it, with the one call counted
  const counted: Engine = Object.create(engine, { kernels: { value: kernels } }) as Engine;
  const decoder = new BatchDecoder(weightProviderOf(model, { bf16Weights: true }), counted, { maxBatchSize: streams });
  const promptOf = (seed: number) => randomPrompt(model.config.vocabSize, 32, seed);
  const params = { temperature: 0, maxNewTokens: newTokens, stopTokenIds: [] as number[] };
  const run = () => Promise.all(Array.from({ length: streams }, (_, i) => streamTokens(decoder.submit(promptOf(i === 0 ? 1 : 100 + i), params))));
  await run(); // warm-up: weights resident, buffers grown
  counting = true;
  await run();
  await decoder.close();
  await model.close();
  engine.dispose();
  const micros = Number(nanos) / 1e3;
  return { streams, calls, ratio: read / original, microsPerCall: micros / calls, gbPerSecond: bytes / micros / 1e3 };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      streams: { type: 'string', default: '1,8' },
      'new-tokens': { type: 'string', default: '64' },
      threads: { type: 'string', default: '2' },
      against: { type: 'string' },
    },
  });
  const json = values.json;
  const dir = positionals[0];
  if (!dir) throw new Error('usage: npm run bench:routed-bytes -- <compressed-dir> [--against <original-dir>] [--streams 1,8] [--new-tokens 64] [--threads 2] [--json]');
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error('--threads takes a whole number of at least 1');
  const streamCounts = values.streams.split(',').filter(Boolean).map(Number);
  const newTokens = Number(values['new-tokens']);
  if (streamCounts.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(newTokens) || newTokens < 2) {
    throw new Error('--streams takes stream counts of at least 1 separated by commas (0 of them: no decode), --new-tokens a whole number of at least 2');
  }
  const file = path.join(dir, 'config.json');
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(`cannot read ${file}: give the directory of a compressed output (rfid-moe compress --out)`);
  });
  const config = JSON.parse(text) as { rfid_moe?: unknown };
  if (config.rfid_moe === undefined) throw new Error(`${file} has no rfid_moe block: ${dir} is not an rfid-moe output; give a compressed one`);
  const block = parseRfidBlock(config.rfid_moe, file);
  if (block.storage === 'dense') {
    throw new Error(`${dir} is a dense output: its experts are stored at their original size, so a step reads what the original's reads; give the factored output`);
  }
  const rows: Array<{ layer: number; routedRatio: number; unweightedRatio: number }> = [];
  let routed = 0, routedOriginal = 0, all = 0, allOriginal = 0;
  for (const layer of block.layers) {
    const counts = layer.routingCounts;
    const types = Object.values(layer.types);
    if (types.length === 0) continue;
    // the dense size of one expert (every type), from the factored types' shapes; a type left
    // dense has the shape of its sibling (gate and up p × d, down d × p)
    const [{ p, d }] = types;
    const densePerType = p * d;
    let lr = 0, lro = 0, la = 0, lao = 0;
    for (let e = 0; e < counts.length; e++) {
      let reads = 0;
      for (const t of ['gate', 'up', 'down'] as const) {
        const type = layer.types[t];
        const group = type?.groups.find((g) => g.experts.includes(e));
        reads += type && group ? perExpert(type, group, e) : densePerType;
      }
      lr += counts[e] * reads; lro += counts[e] * 3 * densePerType;
      la += reads; lao += 3 * densePerType;
    }
    rows.push({ layer: layer.layer, routedRatio: lr / lro, unweightedRatio: la / lao });
    routed += lr; routedOriginal += lro; all += la; allOriginal += lao;
  }
  // the compressed model and its original alternated at each stream count (the machine's load drifts)
  const decode: Array<DecodeReads & { model: 'compressed' | 'original' }> = [];
  for (const n of streamCounts) {
    for (const [which, at] of [['compressed', dir], ['original', values.against]] as const) {
      if (!at) continue;
      process.stderr.write(`greedy decode of the ${which} model, ${n} stream(s) × ${newTokens} tokens, twice …\n`);
      decode.push({ model: which, ...(await measuredInDecode(at, n, newTokens, threads)) });
    }
  }
  const summary = { dir, routedRatio: routed / routedOriginal, unweightedRatio: all / allOriginal, layers: rows, decode };
  if (json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  console.log(`${dir}: the routed experts' parameters a decoding step reads, ÷ the original's for the same experts`);
  console.log('');
  console.log('| layer | by calibration routing counts | every expert alike |');
  console.log('|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.layer} | ${r.routedRatio.toFixed(3)} | ${r.unweightedRatio.toFixed(3)} |`);
  console.log(`| all | ${summary.routedRatio.toFixed(3)} | ${summary.unweightedRatio.toFixed(3)} |`);
  if (decode.length === 0) return;
  console.log('');
  console.log(`Measured in a greedy decode (32-token prompts, ${newTokens} new tokens a stream, ${threads} threads; the second of two runs):`);
  console.log('');
  console.log('| model | streams | one calls (steps × layers) | parameters read ÷ original | µs a call | GB/s |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const d of decode) console.log(`| ${d.model} | ${d.streams} | ${d.calls} | ${d.ratio.toFixed(3)} | ${d.microsPerCall.toFixed(0)} | ${d.gbPerSecond.toFixed(1)} |`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
