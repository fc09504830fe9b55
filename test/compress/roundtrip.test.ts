/**
 * compress → load → run for every family, factored and dense outputs of the same run:
 * - dense and factored give the same logits (f32 tolerance for F32 checkpoints);
 * - every dense Ŵ equals A·B + P·η recomputed with ml-matrix from the factored tensors on disk;
 * - tensors that were not compressed keep their exact bytes;
 * - config.json keeps the original config plus an rfid_moe block (never quantization_config);
 * - stored/original parameters equal γ to within one rank unit per layer and type.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Matrix } from 'ml-matrix';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint, FamilyName } from '../../src/checkpoint/types.js';
import { compress } from '../../src/compress/pipeline.js';
import type { CompressionReport } from '../../src/compress/report.js';
import { parseRfidBlock } from '../../src/compress/output/block.js';
import { modelConfigOf } from '../../src/compress/output/config-json.js';
import { FACTORED_MODEL_TYPE } from '../../src/checkpoint/registry.js';
import { basisName, coefficientName, moePrefix, residualName } from '../../src/compress/output/names.js';
import { loadCompressed, type CompressedModel } from '../../src/compressed/load.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { evaluateWindows } from '../../src/eval/evaluate.js';
import { TensorStore } from '../../src/io/sharded.js';
import { createProjection } from '../../src/residual/projection.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { batchFromSequences, forwardLogits } from '../../src/runtime/index.js';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { syntheticStats, tempDir } from './helpers.js';

interface Case {
  family: FamilyName;
  opts?: TinyCheckpointOptions;
  label: string;
  /** relative logits tolerance between dense and factored */
  tol: number;
}

const CASES: Case[] = [
  { family: 'mixtral', label: 'mixtral', tol: 1e-5 },
  { family: 'qwen2_moe', label: 'qwen2_moe', tol: 1e-5 },
  { family: 'qwen3_moe', label: 'qwen3_moe', tol: 1e-5 },
  { family: 'olmoe', label: 'olmoe', tol: 1e-5 },
  { family: 'deepseek', label: 'deepseek', tol: 1e-5 },
  { family: 'deepseek_v2', label: 'deepseek_v2 (MLA, q-LoRA)', opts: { qLoraRank: 6 }, tol: 1e-5 },
  { family: 'deepseek_v3', label: 'deepseek_v3 (sigmoid routing with its correction bias)', tol: 1e-5 },
  { family: 'glm4_moe', label: 'glm4_moe (partial rotary heads, biases, V3 routing)', tol: 1e-5 },
  { family: 'granitemoe', label: 'granitemoe (experts fused on disk, multipliers)', tol: 1e-5 },
  { family: 'granitemoeshared', label: 'granitemoeshared (a shared MLP with gate and up fused, beside fused experts)', tol: 1e-5 },
  { family: 'granitemoe_swa', label: 'granitemoe_swa (windows, sinks, experts under their module names)', opts: { sharedExpertIntermediateSize: 8 }, tol: 1e-5 },
  { family: 'minimax_m2', label: 'minimax_m2 (whole-projection q/k norm, partial rotary heads, sigmoid routing)', tol: 1e-5 },
  { family: 'minimax_m2', label: 'minimax_m2 fused experts (router and bias under mlp)', opts: { fusedExperts: true }, tol: 1e-5 },
  { family: 'dots1', label: 'dots1 (per-head q/k norm, V3 routing, shared expert, dense first layer)', tol: 1e-5 },
  { family: 'ernie4_5_moe', label: 'ernie4_5_moe (interleaved RoPE, softmax routing with its [1, E] bias)', tol: 1e-5 },
  { family: 'hunyuan_v1_moe', label: 'hunyuan_v1_moe (q/k norm after RoPE, shared MLP)', tol: 1e-5 },
  { family: 'gpt_oss', label: 'gpt_oss (sinks, experts fused transposed with biases, clamped activation)', tol: 1e-5 },
  { family: 'afmoe', label: 'afmoe (four norms a layer, gated attention, windows with RoPE only there, muP, router under mlp.router)', tol: 1e-5 },
  { family: 'phimoe', label: 'phimoe (LayerNorms with biases, q/k/v/o and lm_head biases, sparsemixer, LongRoPE)', tol: 1e-5 },
  { family: 'cohere2_moe', label: 'cohere2_moe (LayerNorms, the parallel block, interleaved RoPE in windowed and dense layers, averaged shared expert, logit_scale)', tol: 1e-5 },
  { family: 'llama4_text', label: 'llama4_text (chunks, routing weights on the experts\' inputs, experts fused transposed gate first)', tol: 1e-5 },
  { family: 'mixtral', label: 'mixtral fused experts', opts: { fusedExperts: true }, tol: 1e-5 },
  // BF16: factors are stored in BF16, dense Ŵ is rounded once more to BF16
  { family: 'qwen3_moe', label: 'qwen3_moe bf16', opts: { dtype: 'BF16' }, tol: 2e-2 },
];

const RETAIN = 0.5;
const WINDOWS = [Int32Array.from([1, 5, 9, 3, 17, 2, 40, 8]), Int32Array.from([0, 63, 12, 7, 7, 30, 21, 11])];

let engine: Engine;
let root: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  engine = createTsEngine({ threads: 1 });
  root = await tempDir('roundtrip');
});

afterAll(async () => {
  engine.dispose();
  await root.cleanup();
});

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Ŵ = A·B + unvec(P·η) from the factored tensors, in f64 with ml-matrix (independent of the loader). */
async function referenceReconstruction(store: TensorStore, model: CompressedModel, layer: number, expert: number, type: 'gate' | 'up'): Promise<Float64Array> {
  const l = model.block.layers.find((b) => b.layer === layer)!;
  const t = l.types[type]!;
  const g = t.groups.findIndex((gr) => gr.experts.includes(expert));
  const prefix = moePrefix(model.layout.layers[layer].moe!.router);
  const B = await store.readF32(basisName(prefix, type, g));
  const A = await store.readF32(coefficientName(prefix, type, expert));
  const K = t.groups[g].rank;
  const toM = (rows: number, cols: number, a: Float32Array) => new Matrix(Array.from({ length: rows }, (_, i) => Array.from(a.subarray(i * cols, (i + 1) * cols))));
  const W = toM(t.p, K, A).mmul(toM(K, t.d, B));
  const out = Float64Array.from(W.to1DArray());
  const desc = t.groups[g].residual;
  if (desc) {
    const eta = await store.readF32(residualName(prefix, type, expert));
    const r = createProjection(desc).reconstruct(eta);
    for (let i = 0; i < out.length; i++) out[i] += r[i];
  }
  return out;
}

describe.each(CASES)('compress → load → run: $label', ({ family, opts, tol, label }) => {
  let original: Checkpoint;
  let dense: Checkpoint;
  let factored: CompressedModel;
  let report: CompressionReport;
  const dirs = { model: '', factored: '', dense: '', stats: '' };

  beforeAll(async () => {
    const base = path.join(root.dir, label.replace(/\W+/g, '-'));
    dirs.model = path.join(base, 'model');
    dirs.factored = path.join(base, 'factored');
    dirs.dense = path.join(base, 'dense');
    dirs.stats = path.join(base, 'stats.json');
    await makeTinyCheckpoint(dirs.model, family, { seed: 7, ...opts });
    // a tokenizer file is copied unchanged into both outputs
    await writeFile(path.join(dirs.model, 'tokenizer.json'), '{"model": {"type": "test"}}\n');
    original = await openCheckpoint(dirs.model);
    await writeRoutingStats(dirs.stats, syntheticStats(original));
    const recipe = { retain: RETAIN, groupSize: 3, residual: { share: 0.05 } };
    report = await compress(original, recipe, { out: dirs.factored, stats: dirs.stats, engine, evaluation: false });
    await compress(original, recipe, { out: dirs.dense, stats: dirs.stats, engine, storage: 'dense', evaluation: false });
    dense = await openCheckpoint(dirs.dense);
    factored = await loadCompressed(dirs.factored);
  });

  afterAll(async () => {
    await original?.close();
    await dense?.close();
    await factored?.close();
  });

  it('dense and factored outputs give the same logits', async () => {
    const batch = batchFromSequences(WINDOWS);
    const a = await forwardLogits(dense, engine, batch);
    const b = await forwardLogits(factored, engine, batch);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(tol * maxAbs(a));
    // and the compressed model is not the original (the test would pass trivially otherwise)
    const c = await forwardLogits(original, engine, batch);
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-3 * maxAbs(c));
  });

  it('eval runs on the compressed model against the original', async () => {
    const result = await evaluateWindows(factored, engine, WINDOWS, original);
    expect(result.comparison!.meanKl).toBeGreaterThan(0);
    expect(Number.isFinite(result.model.perplexity)).toBe(true);
    const same = await evaluateWindows(factored, engine, WINDOWS, dense);
    expect(same.comparison!.meanKl).toBeLessThan(tol);
  });

  it('dense Ŵ equals A·B + P·η recomputed from the factored tensors', async () => {
    const store = await TensorStore.open(dirs.factored);
    try {
      for (const b of factored.block.layers) {
        for (const type of ['gate', 'up'] as const) {
          for (const e of [0, original.config.numExperts - 1]) {
            const want = await referenceReconstruction(store, factored, b.layer, e, type);
            const got = await dense.readExpert(b.layer, e, type);
            let err = 0;
            let norm = 0;
            for (let i = 0; i < want.length; i++) {
              err = Math.max(err, Math.abs(got[i] - want[i]));
              norm = Math.max(norm, Math.abs(want[i]));
            }
            expect(err).toBeLessThanOrEqual((family && opts?.dtype === 'BF16' ? 8e-3 : 1e-5) * norm);
          }
        }
      }
    } finally {
      await store.close();
    }
  });

  it('keeps every uncompressed tensor byte for byte and drops the compressed originals', async () => {
    const src = await TensorStore.open(dirs.model);
    const out = await TensorStore.open(dirs.factored);
    try {
      const outNames = new Set(out.tensorNames());
      let kept = 0;
      for (const name of src.tensorNames()) {
        const compressedOriginal = /experts\.\d+\.(w1|w3|gate_proj|up_proj)\.weight$|gate_up_proj$|block_sparse_moe\.input_linear\.weight$/.test(name);
        expect(outNames.has(name)).toBe(!compressedOriginal);
        if (compressedOriginal) continue;
        expect(Buffer.compare(Buffer.from(await src.readBytes(name)), Buffer.from(await out.readBytes(name)))).toBe(0);
        kept++;
      }
      expect(kept).toBeGreaterThan(10);
      // factor dtype follows the checkpoint's
      const basis = out.tensorNames().find((n) => n.endsWith('.basis'))!;
      expect(out.tensor(basis)!.dtype).toBe(opts?.dtype ?? 'F32');
      // the dense output keeps the original names and dtypes
      const d = await TensorStore.open(dirs.dense);
      try {
        expect(d.tensorNames().sort()).toEqual(src.tensorNames().sort());
        for (const name of src.tensorNames()) expect(d.tensor(name)!.dtype).toBe(src.tensor(name)!.dtype);
      } finally {
        await d.close();
      }
    } finally {
      await src.close();
      await out.close();
    }
  });

  it('config.json keeps the original keys and adds rfid_moe, not quantization_config; tokenizer copied', async () => {
    const before = JSON.parse(await readFile(path.join(dirs.model, 'config.json'), 'utf8')) as Record<string, unknown>;
    const after = JSON.parse(await readFile(path.join(dirs.factored, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(after.quantization_config).toBeUndefined();
    // factored: model_type/architectures name rfid-moe (Hugging Face loaders refuse it); the block keeps the model's
    expect(after.model_type).toBe(FACTORED_MODEL_TYPE);
    const { rfid_moe: block, ...rest } = modelConfigOf(after, parseRfidBlock(after.rfid_moe, 'factored'), 'factored');
    expect(rest).toEqual(before);
    expect(block).toMatchObject({ format: 'rfid-moe', storage: 'factored', matrixTypes: ['gate', 'up'] });
    const { rfid_moe: denseBlock, ...denseRest } = JSON.parse(await readFile(path.join(dirs.dense, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(denseRest).toEqual(before);
    expect(denseBlock).toMatchObject({ format: 'rfid-moe', storage: 'dense' });
    expect(await readFile(path.join(dirs.factored, 'tokenizer.json'), 'utf8')).toBe(await readFile(path.join(dirs.model, 'tokenizer.json'), 'utf8'));
    await expect(readFile(path.join(dirs.factored, '.rfid-moe-progress.json'))).rejects.toThrow();
    expect(await readFile(path.join(dirs.factored, 'rfid-moe-report.md'), 'utf8')).toContain('| whole model |');
  });

  it('stores γ of each layer and type to within one rank unit, and the reductions add up', async () => {
    for (const l of report.layers) {
      for (const t of Object.values(l.types)) {
        expect(Math.abs(t!.params.stored / t!.params.original - RETAIN)).toBeLessThanOrEqual(t!.rankUnitShare);
      }
    }
    const { gateUp, wholeModel } = report.params.reductions;
    const removed = gateUp.before - gateUp.after;
    expect(wholeModel.before - wholeModel.after).toBe(removed);
    // the factored tensors on disk hold exactly the stored parameter count
    const store = await TensorStore.open(dirs.factored);
    try {
      let factorParams = 0;
      for (const n of store.tensorNames()) if (/\.rfid\./.test(n)) factorParams += store.tensor(n)!.elementCount;
      expect(factorParams).toBe(report.params.compressedTypes.stored);
    } finally {
      await store.close();
    }
  });
});
