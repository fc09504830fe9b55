/**
 * FP8 checkpoints (DeepSeek-V3's and the Qwen3-FP8 releases' block format, and llm-compressor's
 * per-channel compressed-tensors one) read by rfid-moe give the logits transformers gives on the
 * same weights, and compress to a plain BF16 output that transformers loads.
 *
 * The FP8 checkpoints are written by torch (scripts/hf_reference.py, Fp8Quantize) from the tiny
 * TypeScript fixtures: each 4×8 (or 5×7) block of a linear weight gets a scale, codes in
 * float8_e4m3fn, scales as F32 under NAME_scale_inv, everything else BF16. The truth is:
 * - where the blocks divide the weights, transformers itself loading the FP8 directory (its
 *   dequantising load, in BF16 as on a CPU, then run in f32);
 * - with partial edge blocks (which transformers' dequantising load refuses, and DeepSeek's
 *   releases have: a 576-row weight in 128-row blocks) and with experts fused on disk (whose
 *   scales transformers 5.18 leaves unused), the same weights dequantised by torch into a plain
 *   BF16 checkpoint that transformers loads.
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { compress } from '../../src/compress/pipeline.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromPadded } from '../../src/runtime/index.js';
import { CheckpointWeights } from '../../src/runtime/checkpoint-weights.js';
import { Fp8SwiGlu } from '../../src/runtime/fp8-swiglu.js';
import { makeTransformersCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { syntheticStats, tempDir } from '../compress/helpers.js';
import { expectLoadedWithLogits } from '../helpers/hf-outputs.js';
import { describeWithTransformers, relativeError, runHfJobs, runHfJobsInto, type HfJob, type HfJobResult } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';

const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'golden', 'runtime', 'families.json'), 'utf8')) as { ids: number[][]; mask: number[][] };

interface Case {
  name: string;
  family: FamilyName;
  fixture: TinyCheckpointOptions;
  block: [number, number];
  /** partial edge blocks (no weight left unquantized for want of whole blocks) */
  partialBlocks: boolean;
  /** the logits compared with: transformers loading the FP8 directory, or loading torch's dequantised copy */
  truth: 'transformers-fp8' | 'torch-dequantized';
  /** how the checkpoint stores its scales (default: block FP8's weight_scale_inv) */
  scheme?: 'fp8' | 'compressed-tensors-channel';
  /** weights that must be among the quantized (a pattern each) */
  quantizes: RegExp[];
}

const CASES: Case[] = [
  // DeepSeek-V3, the family whose official weights exist only in this format (q-LoRA, sigmoid routing)
  {
    name: 'deepseek_v3',
    family: 'deepseek_v3',
    fixture: { seed: 7, qLoraRank: 6, topK: 3 },
    block: [4, 8],
    partialBlocks: false,
    truth: 'transformers-fp8',
    quantizes: [/experts\.\d+\.down_proj\.weight$/, /shared_experts\.up_proj\.weight$/, /kv_b_proj\.weight$/, /o_proj\.weight$/],
  },
  // DeepSeek-V3.2, published in this format too: its sparse-attention indexer's weights are read as the others
  {
    name: 'deepseek_v32',
    family: 'deepseek_v32',
    fixture: { seed: 31, topK: 3, qLoraRank: 8 },
    block: [4, 8],
    partialBlocks: false,
    truth: 'transformers-fp8',
    quantizes: [/experts\.\d+\.gate_proj\.weight$/, /indexer\.wq_b\.weight$/, /indexer\.wk\.weight$/, /q_a_proj\.weight$/],
  },
  // MiniMax-M2, published in this format, per-expert on disk (transformers fuses them on load)
  {
    name: 'minimax_m2',
    family: 'minimax_m2',
    fixture: { seed: 13, topK: 3 },
    block: [4, 8],
    partialBlocks: false,
    truth: 'transformers-fp8',
    quantizes: [/experts\.\d+\.w1\.weight$/, /experts\.\d+\.w2\.weight$/, /q_proj\.weight$/],
  },
  // experts fused on disk ([E, rows, cols]): every expert's matrix has its own grid (transformers
  // 5.18's FP8 load leaves the scales of fused on-disk experts unused, reporting them unexpected,
  // so the truth is torch's dequantised copy)
  {
    name: 'mixtral-fused',
    family: 'mixtral',
    fixture: { seed: 4, fusedExperts: true },
    block: [4, 8],
    partialBlocks: false,
    truth: 'torch-dequantized',
    quantizes: [/experts\.gate_up_proj$/, /experts\.down_proj$/, /q_proj\.weight$/],
  },
  // llm-compressor's FP8 (compressed-tensors, float-quantized): one scale per output channel under
  // NAME_scale (transformers needs the compressed-tensors package to load it, so the truth is torch's copy)
  {
    name: 'mixtral-compressed-tensors',
    family: 'mixtral',
    fixture: { seed: 5 },
    block: [1, 1],
    partialBlocks: false,
    truth: 'torch-dequantized',
    scheme: 'compressed-tensors-channel',
    quantizes: [/experts\.\d+\.w1\.weight$/, /experts\.\d+\.w2\.weight$/, /o_proj\.weight$/],
  },
  // partial blocks at every edge (no dimension divides by 5 or 7)
  { name: 'qwen3_moe-partial', family: 'qwen3_moe', fixture: { seed: 6 }, block: [5, 7], partialBlocks: true, truth: 'torch-dequantized', quantizes: [/experts\.\d+\.gate_proj\.weight$/, /q_proj\.weight$/, /o_proj\.weight$/] },
];

describeWithTransformers('block-FP8 checkpoints against transformers', () => {
  let engine: Engine;
  let root: Awaited<ReturnType<typeof tempDir>>;
  const ours = new Map<string, Float32Array>();
  const hf = new Map<string, HfJobResult>();
  const quantized = new Map<string, string[]>();
  const heldAsFp8 = new Map<string, boolean>();
  let versions = '';

  /** With `held`, through a runtime keeping weights as stored: FP8 experts stay codes (Fp8SwiGlu, gemmFp8), the rest BF16. */
  const logitsOf = async (dir: string, held = false) => {
    const ckpt = await openCheckpoint(dir);
    try {
      const weights = new CheckpointWeights(ckpt, { bf16Weights: true });
      const model = held ? weights : ckpt;
      if (held) {
        const layer = await weights.layer(ckpt.layout.layers.findIndex((l) => l.moe));
        heldAsFp8.set(dir, layer.mlp.kind === 'moe' && (await layer.mlp.moe.expert(1)) instanceof Fp8SwiGlu);
      }
      return (await countRouting(model, engine, batchFromPadded(golden.ids, golden.mask), { withLogits: true })).logits!;
    } finally {
      await ckpt.close();
    }
  };

  beforeAll(async () => {
    engine = createTsEngine({ threads: 1 });
    root = await tempDir('hf-fp8');
    const dir = (c: Case, what: string) => path.join(root.dir, `${c.name}-${what}`);
    for (const c of CASES) await makeTransformersCheckpoint(dir(c, 'source'), c.family, c.fixture);
    const made = await runHfJobs(
      CASES.map((c) => ({ op: 'quantize_fp8', model: dir(c, 'source'), out: dir(c, 'fp8'), block: c.block, partialBlocks: c.partialBlocks, dequantizedOut: dir(c, 'dequantized'), scheme: c.scheme ?? 'fp8' })),
    );
    CASES.forEach((c, i) => {
      const r = made.results[i];
      if (!r.ok) throw new Error(`quantize_fp8 ${c.name}: ${r.type}: ${r.error}`);
      quantized.set(c.name, r.quantized!);
    });

    const jobs: Array<{ key: string; job: HfJob }> = [];
    for (const c of CASES) {
      ours.set(c.name, await logitsOf(dir(c, 'fp8')));
      ours.set(`${c.name}/held`, await logitsOf(dir(c, 'fp8'), true));
      jobs.push({
        key: c.name,
        job:
          c.truth === 'torch-dequantized'
            ? { op: 'logits', model: dir(c, 'dequantized'), ids: golden.ids, mask: golden.mask }
          : { op: 'logits', model: dir(c, 'fp8'), ids: golden.ids, mask: golden.mask, loadDtype: 'bfloat16' },
      });
      // the dense output of the FP8 checkpoint: plain BF16, as transformers loads any checkpoint
      const stats = `${dir(c, 'stats')}.json`;
      const ckpt = await openCheckpoint(dir(c, 'fp8'));
      try {
        await writeRoutingStats(stats, syntheticStats(ckpt));
        await compress(ckpt, { retain: 0.5, groupSize: 3, residual: { share: 0.05 } }, { out: dir(c, 'dense'), stats, engine, storage: 'dense', evaluation: false });
      } finally {
        await ckpt.close();
      }
      ours.set(`${c.name}/dense`, await logitsOf(dir(c, 'dense')));
      jobs.push({ key: `${c.name}/dense`, job: { op: 'logits', model: dir(c, 'dense'), ids: golden.ids, mask: golden.mask } });
    }
    versions = await runHfJobsInto(jobs, hf);
  }, 600_000);

  afterAll(async () => {
    engine?.dispose();
    await root?.cleanup();
  });

  for (const c of CASES) {
    it(`${c.name}: the FP8 weights read dequantised give transformers' logits (${c.truth === 'torch-dequantized' ? 'against torch’s dequantised copy' : 'transformers’ own FP8 load'})`, async () => {
      const names = quantized.get(c.name)!;
      for (const pattern of c.quantizes) expect(names.some((n) => pattern.test(n)), `${pattern} among ${names.length} quantized`).toBe(true);
      const ckpt = await openCheckpoint(path.join(root.dir, `${c.name}-fp8`));
      try {
        // the view presents each quantized weight as BF16 and hides its scales
        for (const name of names) expect(ckpt.tensor(name)?.dtype).toBe('BF16');
        expect(ckpt.tensorNames().filter((n) => n.endsWith('_scale_inv') || n.endsWith('_scale'))).toEqual([]);
      } finally {
        await ckpt.close();
      }
      expectLoadedWithLogits(hf.get(c.name), ours.get(c.name), versions);
    });

    it(`${c.name}: with the experts kept as stored (E4M3 codes and scales, gemmFp8), the same logits`, () => {
      expect(heldAsFp8.get(path.join(root.dir, `${c.name}-fp8`))).toBe(true);
      const r = hf.get(c.name)!;
      expect(r.error, versions).toBeUndefined();
      expect(relativeError(ours.get(`${c.name}/held`)!, r.logits!)).toBeLessThan(1e-4);
    });

    it(`${c.name}: the compressed dense output is a plain BF16 checkpoint transformers loads completely`, async () => {
      const out = path.join(root.dir, `${c.name}-dense`);
      const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config.quantization_config).toBeUndefined();
      expectLoadedWithLogits(hf.get(`${c.name}/dense`), ours.get(`${c.name}/dense`), versions);
    });
  }
});
