/**
 * A language model inside a multimodal checkpoint (src/checkpoint/wrapped.ts), against the real
 * client: transformers builds and saves a Mistral3ForConditionalGeneration (a tiny Pixtral vision
 * tower and projector) around a Mistral Small 4 fixture's weights (scripts/hf_reference.py
 * wrap_job), once under the releases' names (language_model.model.…, its own lm_head) and once
 * under transformers' module names (model.language_model.…) with tie_word_embeddings left to the
 * wrapper's default, which ties; a Llama4ForConditionalGeneration around a Llama 4 text fixture
 * (its module names are language_model.model.…; its default does not tie); and a
 * Qwen3VLMoeForConditionalGeneration drawn at random by transformers (its language model has no
 * class of its own to load a fixture with), its experts as transformers saves them and as the
 * releases store them, transposed; a Glm4vMoeForConditionalGeneration (GLM-4.5V) and a
 * Qwen3_5MoeForConditionalGeneration (Qwen3.5-MoE: Gated DeltaNet layers beside gated attention)
 * drawn the same way.
 *
 * - rfid-moe opens it as its language model: the logits on text and the greedy tokens equal
 *   transformers' on the multimodal model;
 * - the dense output, and densify of the factored one, load there as the same multimodal model
 *   with nothing missing or unexpected and give the runtime's logits; the factored output is
 *   refused naming rfid-moe;
 * - every tensor outside the language model (vision tower, projector) reaches the outputs with
 *   the same values, and each decoder layer keeps a shard of its own.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openCheckpoint, openTensorSource } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromPadded } from '../../src/runtime/index.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { makeTransformersCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { tempDir } from '../compress/helpers.js';
import { expectLoadedWithLogits, expectRefusedNamingRfidMoe, writeCompressedOutputs } from '../helpers/hf-outputs.js';
import { describeWithTransformers, runHfJobs, runHfJobsInto, type HfJob, type HfJobResult } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';

const golden = JSON.parse(await readFile(path.join(repoRoot, 'test', 'golden', 'runtime', 'families.json'), 'utf8')) as { ids: number[][]; mask: number[][] };

interface WrapCase {
  name: string;
  wrapper: 'mistral3' | 'llama4' | 'qwen3_vl_moe' | 'glm4v_moe' | 'qwen3_5_moe';
  /** the language model's family and its fixture (transformers reads these families' experts fused only), or the config transformers draws it from */
  family: 'mistral4' | 'llama4_text' | 'qwen3_vl_moe_text' | 'glm4v_moe_text' | 'qwen3_5_moe_text';
  fixture: TinyCheckpointOptions | { textConfig: Record<string, unknown>; expertsTransposed: boolean };
  prefix: 'release' | 'module';
  tie: boolean | null;
  /** what tie: null leaves to the wrapper class's default */
  tied: boolean;
  /** where the language model's layers are stored, and its lm_head when not tied */
  layers: string;
  head: string;
  /** the name of a vision tower tensor and of a projector tensor */
  outside: [string, string];
}

const qwen3VlText = {
  model_type: 'qwen3_vl_moe_text', vocab_size: 64, hidden_size: 32, intermediate_size: 24, moe_intermediate_size: 12, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 12,
  num_experts: 8, num_experts_per_tok: 3, decoder_sparse_step: 1, mlp_only_layers: [1], rms_norm_eps: 1e-6, max_position_embeddings: 256,
  rope_parameters: { rope_type: 'default', rope_theta: 10000.0, mrope_section: [2, 2, 2], mrope_interleaved: true },
};

const glm4vText = {
  model_type: 'glm4v_moe_text', vocab_size: 64, hidden_size: 32, intermediate_size: 24, moe_intermediate_size: 12, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
  n_routed_experts: 8, n_shared_experts: 1, num_experts_per_tok: 3, first_k_dense_replace: 1, n_group: 1, topk_group: 1, routed_scaling_factor: 1.5, rms_norm_eps: 1e-5, max_position_embeddings: 256,
  rope_parameters: { rope_type: 'default', rope_theta: 10000.0, partial_rotary_factor: 0.5, mrope_section: [2, 1, 1] },
};

const qwen35Text = {
  model_type: 'qwen3_5_moe_text', vocab_size: 64, hidden_size: 32, moe_intermediate_size: 12, shared_expert_intermediate_size: 20, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
  num_experts: 8, num_experts_per_tok: 3, full_attention_interval: 2, rms_norm_eps: 1e-6, max_position_embeddings: 256,
  linear_num_key_heads: 2, linear_num_value_heads: 4, linear_key_head_dim: 8, linear_value_head_dim: 6, linear_conv_kernel_dim: 4,
  rope_parameters: { rope_type: 'default', rope_theta: 10000.0, partial_rotary_factor: 0.25, mrope_section: [1, 1, 0], mrope_interleaved: true },
};

/**
 * A multimodal model whose language model transformers draws from `textConfig` (its families have
 * no causal-LM class to load a fixture with), saved under its module names with the vision tower
 * at model.visual; `tie` null leaves tying to the wrapper class's default (untied).
 */
function drawnCase(
  name: string,
  wrapper: 'qwen3_vl_moe' | 'glm4v_moe' | 'qwen3_5_moe',
  family: 'qwen3_vl_moe_text' | 'glm4v_moe_text' | 'qwen3_5_moe_text',
  textConfig: Record<string, unknown>,
  opts: { expertsTransposed?: boolean; tie?: boolean | null } = {},
): WrapCase {
  const tie = opts.tie ?? null;
  return {
    name,
    wrapper,
    family,
    fixture: { textConfig, expertsTransposed: opts.expertsTransposed ?? false },
    prefix: 'module',
    tie,
    tied: tie ?? false,
    layers: 'model.language_model.layers.',
    head: 'lm_head.weight',
    outside: ['model.visual.blocks', 'model.visual.merger'],
  };
}

const CASES: WrapCase[] = [
  { name: 'mistral3-release-names', wrapper: 'mistral3', family: 'mistral4', fixture: { seed: 47, topK: 3, fusedExperts: true }, prefix: 'release', tie: false, tied: false, layers: 'language_model.model.layers.', head: 'language_model.lm_head.weight', outside: ['vision_tower', 'multi_modal_projector'] },
  { name: 'mistral3-module-names-tied', wrapper: 'mistral3', family: 'mistral4', fixture: { seed: 47, topK: 3, fusedExperts: true }, prefix: 'module', tie: null, tied: true, layers: 'model.language_model.layers.', head: 'lm_head.weight', outside: ['vision_tower', 'multi_modal_projector'] },
  // 2I ≠ H, so the two expert forms are told apart by shape; 3 layers, the middle one dense
  ...[false, true].map((expertsTransposed) =>
    drawnCase(`qwen3_vl_moe-${expertsTransposed ? 'release-experts' : 'saved-experts'}`, 'qwen3_vl_moe', 'qwen3_vl_moe_text', qwen3VlText, { expertsTransposed, tie: expertsTransposed ? true : null }),
  ),
  // RoPE over half of each head (its mrope sections cover that half), q/k/v biases, a dense first layer; saved per expert
  drawnCase('glm4v_moe', 'glm4v_moe', 'glm4v_moe_text', glm4vText),
  // Gated DeltaNet layers 0 and 2 around gated attention, a quarter of each head rotated (its mrope sections cover it), experts as transformers saves them
  drawnCase('qwen3_5_moe', 'qwen3_5_moe', 'qwen3_5_moe_text', qwen35Text),
  { name: 'llama4-default-untied', wrapper: 'llama4', family: 'llama4_text', fixture: { seed: 48, topK: 1 }, prefix: 'release', tie: null, tied: false, layers: 'language_model.model.layers.', head: 'language_model.lm_head.weight', outside: ['vision_model', 'multi_modal_projector'] },
];
const GREEDY_TOKENS = 16;

describeWithTransformers('a language model inside a multimodal checkpoint, against transformers', () => {
  let engine: Engine;
  let root: Awaited<ReturnType<typeof tempDir>>;
  const ours = new Map<string, Float32Array>();
  const oursGreedy = new Map<string, number[]>();
  const hf = new Map<string, HfJobResult>();
  const sources = new Map<string, string>();
  let versions = '';

  beforeAll(async () => {
    engine = createTsEngine({ threads: 1 });
    root = await tempDir('hf-wrapped');
    const wrapJobs: HfJob[] = [];
    for (const c of CASES) {
      const out = path.join(root.dir, c.name);
      if ('textConfig' in c.fixture) {
        wrapJobs.push({ op: 'wrap', textConfig: c.fixture.textConfig, expertsTransposed: c.fixture.expertsTransposed, out, wrapper: c.wrapper as 'qwen3_vl_moe' | 'glm4v_moe' | 'qwen3_5_moe', tie: c.tie, seed: 3 });
        continue;
      }
      const text = path.join(root.dir, `${c.name}-text`);
      await makeTransformersCheckpoint(text, c.family, c.fixture);
      wrapJobs.push({ op: 'wrap', model: text, out, wrapper: c.wrapper as 'mistral3' | 'llama4', prefix: c.prefix, tie: c.tie, seed: 3 });
    }
    const wrapped = await runHfJobs(wrapJobs);
    wrapped.results.forEach((r, i) => {
      if (!r.ok) throw new Error(`wrapping ${CASES[i].name} failed: ${r.type}: ${r.error}`);
    });
    const jobs: Array<{ key: string; job: HfJob }> = [];
    const prompt = golden.ids[0].filter((_, i) => golden.mask[0][i] === 1);
    for (const c of CASES) {
      const model = path.join(root.dir, c.name);
      sources.set(c.name, model);
      const ckpt = await openCheckpoint(model);
      try {
        ours.set(`${c.name}/source`, (await countRouting(ckpt, engine, batchFromPadded(golden.ids, golden.mask), { withLogits: true })).logits!);
        oursGreedy.set(c.name, (await generateAll(ckpt, engine, prompt, { temperature: 0, maxNewTokens: GREEDY_TOKENS })).tokens);
        await writeCompressedOutputs(ckpt, model, engine);
      } finally {
        await ckpt.close();
      }
      const dense = await openCheckpoint(`${model}-dense`);
      try {
        ours.set(`${c.name}/dense`, (await countRouting(dense, engine, batchFromPadded(golden.ids, golden.mask), { withLogits: true })).logits!);
      } finally {
        await dense.close();
      }
      for (const kind of ['source', 'dense', 'densified'] as const)
        jobs.push({ key: `${c.name}/${kind}`, job: { op: 'logits', model: kind === 'source' ? model : `${model}-${kind}`, ids: golden.ids, mask: golden.mask } });
      jobs.push({ key: `${c.name}/greedy`, job: { op: 'generate', model, ids: prompt, maxNewTokens: GREEDY_TOKENS } });
      jobs.push({ key: `${c.name}/factored`, job: { op: 'load', model: `${model}-factored` } });
    }
    versions = await runHfJobsInto(jobs, hf);
  }, 600_000);

  afterAll(async () => {
    engine?.dispose();
    await root?.cleanup();
  });

  for (const c of CASES) {
    it(`${c.name}: opened as its language model, whose logits and greedy tokens equal transformers' multimodal model's`, async () => {
      const ckpt = await openCheckpoint(sources.get(c.name)!);
      try {
        expect(ckpt.config.multimodalWrapper?.modelType).toBe(c.wrapper);
        expect(ckpt.config.family).toBe(c.family);
        expect(ckpt.layout.embed).toBe(`${c.layers.replace(/layers\.$/, '')}embed_tokens.weight`);
        const moe = ckpt.layout.layers.find((l) => l.moe)!;
        expect(moe.moe!.router.startsWith(`${c.layers}${moe.index}.`)).toBe(true);
        // the wrapper's tie_word_embeddings (its class's default where config.json has none), not text_config's
        expect(ckpt.config.tieWordEmbeddings).toBe(c.tied);
        expect(ckpt.layout.lmHead).toBe(c.tied ? ckpt.layout.embed : c.head);
        if (c.wrapper === 'qwen3_vl_moe') expect(ckpt.layout.layers[0].moe?.fused?.form).toBe('textConfig' in c.fixture && c.fixture.expertsTransposed ? 'transposed' : undefined);
      } finally {
        await ckpt.close();
      }
      expectLoadedWithLogits(hf.get(`${c.name}/source`), ours.get(`${c.name}/source`), versions);
      const greedy = hf.get(`${c.name}/greedy`)!;
      expect(greedy.error, versions).toBeUndefined();
      expect(oursGreedy.get(c.name)).toEqual(greedy.generated);
    });

    it(`${c.name}: the dense and densified outputs load there as the multimodal model with the runtime's logits; the factored one is refused`, () => {
      for (const kind of ['dense', 'densified'] as const) expectLoadedWithLogits(hf.get(`${c.name}/${kind}`), ours.get(`${c.name}/dense`), `${kind}: ${versions}`);
      expectRefusedNamingRfidMoe(hf.get(`${c.name}/factored`), versions);
    });

    it(`${c.name}: the vision tower and projector reach the outputs unchanged, and each decoder layer has a shard of its own`, async () => {
      const source = await openCheckpoint(sources.get(c.name)!);
      try {
        const outside = source.tensorNames().filter((n) => !n.includes('language_model'));
        for (const part of c.outside) expect(outside.some((n) => n.includes(part)), part).toBe(true);
        for (const kind of ['dense', 'factored', 'densified'] as const) {
          const dir = `${sources.get(c.name)!}-${kind}`;
          const out = await openTensorSource(dir);
          try {
            for (const name of outside) expect(Array.from(await out.readF32(name)), `${kind} ${name}`).toEqual(Array.from(await source.readF32(name)));
          } finally {
            await out.close();
          }
          const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
          const shardOf = (prefix: string) => new Set(Object.entries(index.weight_map).filter(([n]) => n.startsWith(prefix)).map(([, f]) => f));
          const layer0 = shardOf(`${c.layers}0.`);
          const layer1 = shardOf(`${c.layers}1.`);
          expect(layer0.size).toBe(1);
          expect(layer1.size).toBe(1);
          expect([...layer0][0]).not.toBe([...layer1][0]);
          expect(shardOf(outside.find((n) => n.includes(c.outside[0]))!).has([...layer1][0])).toBe(false);
        }
      } finally {
        await source.close();
      }
    });
  }
});
