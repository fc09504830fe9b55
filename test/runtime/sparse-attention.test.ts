/**
 * DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5; src/runtime/sparse-attention.ts): past
 * index_topk positions each query attends only to the positions its layer's indexer keeps. The
 * truth is transformers itself on the same weights: the logits of every position of a prompt twice
 * index_topk long (no KV cache), and greedy generation that crosses index_topk while decoding
 * (the index keys cached beside the latent rows), on both engines; and, beside them, transformers
 * with an index_topk that keeps every position, whose logits past index_topk differ, so the choice
 * is exercised. GLM-5's fixture has "shared" layers, which reuse an earlier layer's choice.
 *
 * The fixtures give the indexer 8 heads: a position scores exactly 0 only when every head's dot
 * product is negative (relu), and among equal scores torch.topk's choice is unspecified (the
 * runtime keeps the earlier position), so few heads make ties at the k-th place, and a choice
 * that differs from transformers' for no fault of either, likely.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromSequences } from '../../src/runtime/batch.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { bf16HeldTensorNames } from '../../src/runtime/checkpoint-weights.js';
import { kvCacheShape } from '../../src/runtime/kv-cache.js';
import { makeTinyCheckpoint, makeTransformersCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { describeWithTransformers, relativeError, runHfJobsInto, type HfJobResult } from '../helpers/python.js';
import { expectBatchedGreedyEqualsAlone } from '../helpers/batched-greedy-check.js';
import { useTestEngines } from '../helpers/test-engines.js';

const TOP_K = 8;
const PROMPT = [3, 17, 41, 5, 29, 11, 60, 2, 33, 47, 19, 8, 50, 7, 22, 39];
const GREEDY_PROMPT = PROMPT.slice(0, 5);
const NEW_TOKENS = 20;

const CASES: Array<{ name: string; family: 'deepseek_v32' | 'glm_moe_dsa'; fixture: TinyCheckpointOptions }> = [
  { name: 'deepseek_v32', family: 'deepseek_v32', fixture: { seed: 42, topK: 3, indexer: { topK: TOP_K, heads: 8 } } },
  { name: 'glm_moe_dsa', family: 'glm_moe_dsa', fixture: { seed: 44, topK: 3, numLayers: 4, indexerTypes: ['full', 'shared', 'full', 'shared'], indexer: { topK: TOP_K, heads: 8 } } },
];

const { engines, dir: rootDir } = useTestEngines('sparse-attention');

describe('the index keys and the indexer tensors', () => {
  it('a cached position holds its index key after its latent row', async () => {
    const dir = path.join(rootDir(), 'v32-shape');
    await makeTinyCheckpoint(dir, 'deepseek_v32', { seed: 41, indexer: { topK: TOP_K, headDim: 12 } });
    const ckpt = await openCheckpoint(dir);
    try {
      // kv_lora_rank 8 + qk_rope_head_dim 4 + index_head_dim 12
      expect(kvCacheShape(ckpt.config)).toEqual({ width: 24, headDim: 24, valuesAreKeys: true });
    } finally {
      await ckpt.close();
    }
  });

  it.each(['deepseek_v32', 'deepseek_v3'] as const)('%s: a BF16 checkpoint’s indexer and MLA projections are held as stored; kv_b_proj stays f32', async (family) => {
    const dir = path.join(rootDir(), `${family}-bf16`);
    await makeTinyCheckpoint(dir, family, { seed: 41, dtype: 'BF16', qLoraRank: 6 });
    const ckpt = await openCheckpoint(dir);
    try {
      const held = bf16HeldTensorNames(ckpt);
      const indexer = family === 'deepseek_v32' ? ['indexer.wq_b.weight', 'indexer.wk.weight', 'indexer.weights_proj.weight'] : [];
      for (const name of [...indexer, 'q_a_proj.weight', 'q_b_proj.weight', 'kv_a_proj_with_mqa.weight', 'o_proj.weight']) expect(held.has(`model.layers.1.self_attn.${name}`), name).toBe(true);
      expect(held.has('model.layers.1.self_attn.kv_b_proj.weight')).toBe(false);
    } finally {
      await ckpt.close();
    }
  });

  it('a checkpoint without an indexer tensor its config implies is refused, naming it', async () => {
    const dir = path.join(rootDir(), 'glm-shared-layer-1');
    await makeTinyCheckpoint(dir, 'glm_moe_dsa', { seed: 41, indexer: { topK: TOP_K }, indexerTypes: ['full', 'shared', 'full'] });
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    // layer 1 said to run an indexer of its own: its tensors are missing
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, indexer_types: ['full', 'full', 'full'] }));
    await expect(openCheckpoint(dir)).rejects.toThrow(CheckpointError);
    await expect(openCheckpoint(dir)).rejects.toThrow(/missing tensor model\.layers\.1\.self_attn\.indexer\.wq_b\.weight/);
    // a wider index head than the tensors have
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, index_head_dim: 12 }));
    await expect(openCheckpoint(dir)).rejects.toThrow(/model\.layers\.0\.self_attn\.indexer\.wq_b\.weight .*\[24, 6\]/);
  });
});

describe('decoded together', () => {
  it.each(CASES)('$name: prompts of different lengths decoded in one batch (rows on both sides of index_topk in one step) give each its own greedy tokens', async (c) => {
    const dir = path.join(rootDir(), `${c.name}-batch`);
    await makeTinyCheckpoint(dir, c.family, c.fixture);
    const prompts = [PROMPT.slice(0, 2), PROMPT.slice(0, 11), PROMPT.slice(0, 6)];
    for (const { name, engine } of engines) {
      const ckpt = await openCheckpoint(dir);
      try {
        // prefill chunks of 3 hold rows on both sides of index_topk after a cached past
        await expectBatchedGreedyEqualsAlone(ckpt, engine, prompts, `${name} engine`);
      } finally {
        await ckpt.close();
      }
    }
  });
});

describeWithTransformers('sparse attention past index_topk against transformers', () => {
  const ours = new Map<string, { logits: Float32Array; greedy: number[] }>();
  const hf = new Map<string, HfJobResult>();
  let versions = '';

  beforeAll(async () => {
    const jobs = [];
    for (const c of CASES) {
      const dir = path.join(rootDir(), c.name);
      // the same weights with an index_topk that keeps every position: dense attention
      const dense = `${dir}-dense`;
      await makeTransformersCheckpoint(dir, c.family, c.fixture);
      await makeTransformersCheckpoint(dense, c.family, { ...c.fixture, indexer: { ...c.fixture.indexer, topK: 64 } });
      for (const { name, engine } of engines) {
        const ckpt = await openCheckpoint(dir);
        try {
          const logits = (await countRouting(ckpt, engine, batchFromSequences([PROMPT]), { withLogits: true })).logits!;
          const greedy = (await generateAll(ckpt, engine, GREEDY_PROMPT, { temperature: 0, maxNewTokens: NEW_TOKENS })).tokens;
          ours.set(`${c.name}/${name}`, { logits, greedy });
        } finally {
          await ckpt.close();
        }
      }
      const mask = [PROMPT.map(() => 1)];
      jobs.push({ key: `${c.name}/logits`, job: { op: 'logits' as const, model: dir, ids: [PROMPT], mask } });
      jobs.push({ key: `${c.name}/dense`, job: { op: 'logits' as const, model: dense, ids: [PROMPT], mask } });
      jobs.push({ key: `${c.name}/greedy`, job: { op: 'generate' as const, model: dir, ids: GREEDY_PROMPT, maxNewTokens: NEW_TOKENS } });
    }
    versions = await runHfJobsInto(jobs, hf);
  }, 300_000);

  for (const c of CASES) {
    it(`${c.name}: every position's logits, ${PROMPT.length - TOP_K} of them past index_topk, equal transformers' on each engine`, () => {
      const r = hf.get(`${c.name}/logits`)!;
      expect(r.error, versions).toBeUndefined();
      expect(r.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
      for (const { name } of engines) expect(relativeError(ours.get(`${c.name}/${name}`)!.logits, r.logits!), `${name} engine, ${versions}`).toBeLessThan(1e-4);
    });

    it(`${c.name}: past index_topk the indexer's choice matters (transformers' dense logits differ there, and agree before)`, () => {
      const sparse = hf.get(`${c.name}/logits`)!.logits!;
      const dense = hf.get(`${c.name}/dense`)!.logits!;
      expect(relativeError(new Float32Array(sparse.slice(0, TOP_K).flat()), dense.slice(0, TOP_K))).toBeLessThan(1e-6);
      for (let p = TOP_K; p < PROMPT.length; p++) expect(relativeError(new Float32Array(sparse[p]), [dense[p]]), `position ${p}`).toBeGreaterThan(1e-3);
    });

    it(`${c.name}: greedy decoding through index_topk with the KV cache gives transformers' generate() tokens on each engine`, () => {
      const r = hf.get(`${c.name}/greedy`)!;
      expect(r.error, versions).toBeUndefined();
      expect(GREEDY_PROMPT.length + NEW_TOKENS).toBeGreaterThan(2 * TOP_K);
      for (const { name } of engines) expect(ours.get(`${c.name}/${name}`)!.greedy, `${name} engine`).toEqual(r.generated);
    });
  }
});
