/**
 * DeepSeek Sparse Attention (DeepSeek-V3.2, GLM-5): the runtime attends densely, which is DSA's
 * computation only while a sequence holds at most index_topk positions. These tests hold the
 * runtime to that limit everywhere a sequence enters (the forward pass, generation's context,
 * serving's), check that the indexer's tensors are required as transformers requires them, and,
 * in transformers itself, that the limit is where the two computations part: the same weights give
 * the same logits up to index_topk positions and different ones past it.
 */
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromSequences } from '../../src/runtime/batch.js';
import { ModelInputError } from '../../src/runtime/errors.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { GenerationParamsError } from '../../src/runtime/generation/errors.js';
import { inspectServedModel } from '../../src/serve/models.js';
import { makeTinyCheckpoint, makeTransformersCheckpoint } from '../helpers/fixtures.js';
import { describeWithTransformers, relativeError, runHfJobs } from '../helpers/python.js';
import { tempDir } from '../compress/helpers.js';
import { TINY_DIR } from '../serve/helpers.js';

const TOP_K = 8;
const PROMPT = [3, 17, 41, 5, 29, 11, 60, 2, 33, 47, 19, 8];

let root: Awaited<ReturnType<typeof tempDir>>;
let engine: Engine;
beforeAll(async () => {
  root = await tempDir('sparse-attention');
  engine = createTsEngine({ threads: 1 });
});
afterAll(async () => {
  engine?.dispose();
  await root?.cleanup();
});

describe.each(['deepseek_v32', 'glm_moe_dsa'] as const)('%s in the runtime', (family) => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(root.dir, `${family}-runtime`);
    await makeTinyCheckpoint(dir, family, { seed: 41, indexer: { topK: TOP_K }, ...(family === 'glm_moe_dsa' ? { indexerTypes: ['full', 'shared', 'full'] } : {}) });
  });

  it('a forward pass over index_topk positions runs; one position more is refused, naming index_topk', async () => {
    const ckpt = await openCheckpoint(dir);
    try {
      const within = await countRouting(ckpt, engine, batchFromSequences([PROMPT.slice(0, TOP_K)]), { withLogits: true });
      expect(within.logits!.every(Number.isFinite)).toBe(true);
      const past = countRouting(ckpt, engine, batchFromSequences([PROMPT.slice(0, TOP_K + 1)]));
      await expect(past).rejects.toThrow(ModelInputError);
      await expect(countRouting(ckpt, engine, batchFromSequences([PROMPT.slice(0, TOP_K + 1)]))).rejects.toThrow(
        /reaches position 9, past the 8 positions rfid-moe can compute for this model: index_topk \(8\).*use sequences of at most 8 tokens/,
      );
    } finally {
      await ckpt.close();
    }
  });

  it('generation’s context is index_topk: a completion stops there, and a longer context is refused', async () => {
    const ckpt = await openCheckpoint(dir);
    try {
      const done = await generateAll(ckpt, engine, PROMPT.slice(0, 5), { temperature: 0, maxNewTokens: 20 });
      expect(done.tokens.length).toBe(TOP_K - 5);
      expect(done.usage.finishReason).toBe('length');
      await expect(generateAll(ckpt, engine, PROMPT.slice(0, 5), { temperature: 0, maxNewTokens: 2, contextLength: TOP_K + 1 })).rejects.toThrow(GenerationParamsError);
      await expect(generateAll(ckpt, engine, PROMPT.slice(0, 5), { temperature: 0, maxNewTokens: 2, contextLength: TOP_K + 1 })).rejects.toThrow(/contextLength 9 is more than the 8 positions/);
    } finally {
      await ckpt.close();
    }
  });

  it('serve gives the model a context of index_topk, below its max_position_embeddings', async () => {
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(dir, f));
    expect((await inspectServedModel({ id: family, dir }, 2 ** 30)).contextLength).toBe(TOP_K);
    expect((await inspectServedModel({ id: family, dir }, 2 ** 30, { maxModelLen: 6 })).contextLength).toBe(6);
  });

  it('a checkpoint without an indexer tensor its config implies is refused, naming it', async () => {
    const broken = path.join(root.dir, `${family}-no-indexer`);
    const made = await makeTinyCheckpoint(broken, family, { seed: 41, indexer: { topK: TOP_K } });
    const config = JSON.parse(await readFile(path.join(broken, 'config.json'), 'utf8')) as Record<string, unknown>;
    // the same tensors under a config whose layer 1 runs an indexer of its own: GLM-5's fixture
    // above left it out ("shared"); V3.2's gets a layer more than its tensors hold
    if (family === 'glm_moe_dsa') {
      const shared = path.join(root.dir, 'glm-shared-layer-1');
      await makeTinyCheckpoint(shared, family, { seed: 41, indexer: { topK: TOP_K }, indexerTypes: ['full', 'shared', 'full'] });
      await writeFile(path.join(shared, 'config.json'), JSON.stringify({ ...config, indexer_types: ['full', 'full', 'full'] }));
      await expect(openCheckpoint(shared)).rejects.toThrow(/missing tensor model\.layers\.1\.self_attn\.indexer\.wq_b\.weight/);
    }
    expect(made.tensors.some((t) => t.name === 'model.layers.0.self_attn.indexer.wk.weight')).toBe(true);
    await writeFile(path.join(broken, 'config.json'), JSON.stringify({ ...config, index_head_dim: 12 }));
    await expect(openCheckpoint(broken)).rejects.toThrow(CheckpointError);
    await expect(openCheckpoint(broken)).rejects.toThrow(/model\.layers\.0\.self_attn\.indexer\.wq_b\.weight .*\[24, 6\]/);
    await rm(broken, { recursive: true, force: true });
  });
});

describeWithTransformers('DeepSeek-V3.2 in transformers: dense attention is DSA up to index_topk positions, and not past it', () => {
  const logits = new Map<string, number[][]>();
  let ours: Float32Array;
  let versions = '';

  beforeAll(async () => {
    const sparse = path.join(root.dir, 'v32-topk8');
    const wide = path.join(root.dir, 'v32-topk64');
    await makeTransformersCheckpoint(sparse, 'deepseek_v32', { seed: 42, topK: 3, indexer: { topK: TOP_K } });
    // the same weights, with an indexer that keeps every position of the prompt
    await makeTransformersCheckpoint(wide, 'deepseek_v32', { seed: 42, topK: 3, indexer: { topK: 64 } });
    const ckpt = await openCheckpoint(sparse);
    try {
      ours = (await countRouting(ckpt, engine, batchFromSequences([PROMPT.slice(0, TOP_K)]), { withLogits: true })).logits!;
    } finally {
      await ckpt.close();
    }
    const mask = [PROMPT.map(() => 1)];
    const run = await runHfJobs([
      { op: 'logits', model: sparse, ids: [PROMPT], mask },
      { op: 'logits', model: wide, ids: [PROMPT], mask },
    ]);
    versions = `transformers ${run.transformers}, torch ${run.torch}`;
    for (const [i, key] of ['sparse', 'wide'].entries()) {
      expect(run.results[i].error, versions).toBeUndefined();
      logits.set(key, run.results[i].logits!);
    }
  }, 300_000);

  it('the first index_topk positions: the same logits with either index_topk, and the runtime’s', () => {
    const sparse = logits.get('sparse')!;
    const wide = logits.get('wide')!;
    expect(relativeError(new Float32Array(sparse.slice(0, TOP_K).flat()), wide.slice(0, TOP_K))).toBeLessThan(1e-6);
    expect(relativeError(ours, sparse.slice(0, TOP_K)), versions).toBeLessThan(1e-4);
  });

  it('past index_topk the indexer drops positions, and the logits part from dense attention’s', () => {
    const sparse = logits.get('sparse')!;
    const wide = logits.get('wide')!;
    for (let p = TOP_K; p < PROMPT.length; p++) expect(relativeError(new Float32Array(sparse[p]), [wide[p]]), `position ${p}`).toBeGreaterThan(1e-3);
  });
});
