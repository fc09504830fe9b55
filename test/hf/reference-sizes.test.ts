/**
 * Every family at the size transformers itself configures it: its config class's defaults, which
 * transformers takes from the family's reference release (Mixtral-8x7B's 46.7B parameters,
 * DeepSeek-V3's 671B, gpt-oss-120b's 117B, …), where the fixtures of the other tests are tiny. The
 * checkpoints carry no weights: scripts/hf_reference.py's `meta_checkpoint` builds the model on the
 * meta device and writes what save_pretrained would (config.json; the state dict's names and shapes
 * with tied weights once and transformers' conversions reverted to the releases' forms) into
 * sparse BF16 shards whose data is a hole. What needs no weights is checked at full size:
 * config.json resolves to the family, every tensor transformers saves is one the layout names with
 * the shape config.json implies, and the parameter count equals transformers' own, tensor for
 * tensor (a multimodal model's vision tower and projector being the only tensors outside it), and
 * compress's plan (what it refuses before reading a weight) takes the named recipes.
 *
 * Where transformers' defaults leave something a release always sets unset (a top-k, an expert
 * count, head_dim), the case sets it, and says so.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeCheckpoint } from '../../src/checkpoint/describe.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { supportedModelTypes } from '../../src/checkpoint/registry.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { parseRecipe } from '../../src/compress/recipe.js';
import { validateBeforeWork } from '../../src/compress/stages/plan.js';
import { tempDir } from '../compress/helpers.js';
import { describeWithTransformers, runHfJobs, type HfJobResult } from '../helpers/python.js';

interface Case {
  /** the model_type transformers builds (a multimodal wrapper's, for the families released inside one) */
  modelType: string;
  /** the family rfid-moe reads it as */
  family: FamilyName;
  /** on top of the config class's defaults */
  config?: Record<string, unknown>;
  /** the whole multimodal model, where transformers' causal-LM class would build the text model alone */
  multimodal?: boolean;
}

const CASES: Case[] = [
  { modelType: 'afmoe', family: 'afmoe' },
  { modelType: 'axk1', family: 'axk1' },
  { modelType: 'cohere2_moe', family: 'cohere2_moe' },
  // transformers' DeepSeek-V2 config leaves the top-k unset (its model cannot route without one); V2's is 6
  { modelType: 'deepseek_v2', family: 'deepseek_v2', config: { num_experts_per_tok: 6 } },
  { modelType: 'deepseek_v3', family: 'deepseek_v3' },
  { modelType: 'deepseek_v32', family: 'deepseek_v32' },
  // transformers' dots.llm1 config leaves the experts unset (its model cannot be built); dots.llm1's
  { modelType: 'dots1', family: 'dots1', config: { n_routed_experts: 128, num_experts_per_tok: 6, n_shared_experts: 2, first_k_dense_replace: 1 } },
  { modelType: 'ernie4_5_moe', family: 'ernie4_5_moe' },
  { modelType: 'exaone_moe', family: 'exaone_moe' },
  { modelType: 'flex_olmo', family: 'flex_olmo' },
  { modelType: 'glm4_moe', family: 'glm4_moe' },
  { modelType: 'glm4_moe_lite', family: 'glm4_moe_lite' },
  { modelType: 'glm4v_moe', family: 'glm4v_moe_text' },
  { modelType: 'glm_moe_dsa', family: 'glm_moe_dsa' },
  { modelType: 'gpt_oss', family: 'gpt_oss' },
  { modelType: 'granitemoe', family: 'granitemoe' },
  { modelType: 'granitemoe_swa', family: 'granitemoe_swa' },
  { modelType: 'granitemoeshared', family: 'granitemoeshared' },
  // transformers' Hunyuan config is one expert without a head_dim (its model cannot be built); an A13B-like release's
  { modelType: 'hunyuan_v1_moe', family: 'hunyuan_v1_moe', config: { head_dim: 128, num_experts: 64, moe_topk: 8 } },
  { modelType: 'hy_v3', family: 'hy_v3' },
  { modelType: 'llama4', family: 'llama4_text', multimodal: true },
  { modelType: 'llama4_text', family: 'llama4_text' },
  { modelType: 'mimo_v2_flash', family: 'mimo_v2_flash' },
  { modelType: 'minimax_m2', family: 'minimax_m2' },
  // Mistral Small 4 as released: Mistral 3's multimodal model around a Mistral 4 language model
  { modelType: 'mistral3', family: 'mistral4', config: { text_config: { model_type: 'mistral4' } } },
  { modelType: 'mixtral', family: 'mixtral' },
  { modelType: 'olmoe', family: 'olmoe' },
  { modelType: 'phimoe', family: 'phimoe' },
  { modelType: 'qwen2_moe', family: 'qwen2_moe' },
  { modelType: 'qwen3_moe', family: 'qwen3_moe' },
  { modelType: 'qwen3_next', family: 'qwen3_next' },
  { modelType: 'qwen3_5_moe', family: 'qwen3_5_moe_text', multimodal: true },
  { modelType: 'qwen3_5_moe_text', family: 'qwen3_5_moe_text' },
  { modelType: 'qwen3_vl_moe', family: 'qwen3_vl_moe_text' },
  { modelType: 'solar_open', family: 'solar_open' },
];

/** model_types transformers 5 does not ship (DeepSeek v1 lives in remote code only) */
const NOT_IN_TRANSFORMERS = new Set(['deepseek']);

it('every family transformers ships has a case here', () => {
  const covered = new Set(CASES.map((c) => c.family));
  expect(supportedModelTypes().filter((t) => !NOT_IN_TRANSFORMERS.has(t) && !covered.has(t as FamilyName))).toEqual([]);
});

describeWithTransformers('every family at transformers’ own size, without weights', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  const hf = new Map<string, HfJobResult>();
  let versions = '';
  const dirOf = (c: Case) => path.join(root.dir, c.modelType);

  beforeAll(async () => {
    root = await tempDir('hf-reference-sizes');
    const run = await runHfJobs(CASES.map((c) => ({ op: 'meta_checkpoint', modelType: c.modelType, config: c.config, multimodal: c.multimodal, out: dirOf(c) })));
    versions = `transformers ${run.transformers}, torch ${run.torch}`;
    CASES.forEach((c, i) => hf.set(c.modelType, run.results[i]));
  }, 300_000);

  afterAll(async () => {
    await root?.cleanup();
  });

  for (const c of CASES) {
    it(`${c.modelType}${c.multimodal ? ' (the multimodal model)' : ''}: read as ${c.family}, every tensor of the layout config.json implies, transformers' parameter count, a plan for compress`, async () => {
      const r = hf.get(c.modelType)!;
      expect(r.error, versions).toBeUndefined();
      const ckpt = await openCheckpoint(dirOf(c));
      try {
        expect(ckpt.config.family).toBe(c.family);
        const d = describeCheckpoint(ckpt);
        expect(d.validation.ok).toBe(true);
        expect(d.parameters.total, `${r.modelClass}, ${versions}`).toBe(r.parameters);
        // the vision tower and projector of a multimodal model are carried, and nothing else is outside the layout
        expect(d.parameters.other).toBe(r.outsideLanguageModel);
        if (r.outsideLanguageModel === 0) expect(d.validation.unusedTensors).toEqual([]);
        else expect(d.validation.unusedTensors.filter((n) => n.includes('language_model'))).toEqual([]);
        expect(d.parameters.experts).toBeGreaterThan(d.parameters.total / 2);
        // compress's plan, everything it can refuse before reading a weight, takes the named recipes at this size
        for (const preset of ['default', 'paper']) for (const retain of [0.3, 0.6, 0.9]) validateBeforeWork(ckpt, parseRecipe({ preset, retain }), 'factored', { out: path.join(root.dir, 'unwritten') });
      } finally {
        await ckpt.close();
      }
    });
  }
});
