/**
 * config.json → ModelConfig per family: real key names, transformers defaults, the MoE-layer rules
 * (decoder_sparse_step, mlp_only_layers, first_k_dense_replace, moe_layer_freq), tied embeddings,
 * storage dtypes and DeepSeek-V2's MLA variants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCheckpoint } from '../../src/checkpoint/describe.js';
import { parameterCounts } from '../../src/checkpoint/counts.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { unrunnableReason } from '../../src/checkpoint/runnable.js';
import { familyByName, familyForConfig, resolveLanguageModel, supportedModelTypes } from '../../src/checkpoint/registry.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import type { MlpNames } from '../../src/checkpoint/types.js';
import { ropeSpecOf } from '../../src/runtime/rope.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { independentCounts } from './expected-counts.js';
import { makeScratch } from './tmp-dirs.js';

let scratch: Awaited<ReturnType<typeof makeScratch>>;
let counter = 0;
beforeAll(async () => {
  scratch = await makeScratch('config');
});
afterAll(async () => {
  await scratch.cleanup();
});

async function openFixture(...args: [Parameters<typeof makeTinyCheckpoint>[1], Parameters<typeof makeTinyCheckpoint>[2]?]) {
  const fixture = await makeTinyCheckpoint(scratch.sub(`c${counter++}`), args[0], args[1] ?? {});
  const ckpt = await openCheckpoint(fixture.dir);
  return { fixture, ckpt };
}

describe('registry', () => {
  it('maps every supported model_type to its family', () => {
    expect(supportedModelTypes()).toEqual(['afmoe', 'axk1', 'cohere2_moe', 'deepseek', 'deepseek_v2', 'deepseek_v3', 'deepseek_v32', 'dots1', 'ernie4_5_moe', 'exaone_moe', 'flex_olmo', 'glm4_moe', 'glm4_moe_lite', 'glm4v_moe_text', 'glm_moe_dsa', 'gpt_oss', 'granitemoe', 'granitemoe_swa', 'granitemoeshared', 'hunyuan_v1_moe', 'hy_v3', 'llama4_text', 'mimo_v2_flash', 'minimax_m2', 'mistral4', 'mixtral', 'olmoe', 'phimoe', 'qwen2_moe', 'qwen3_5_moe_text', 'qwen3_moe', 'qwen3_next', 'qwen3_vl_moe_text', 'solar_open']);
    for (const t of supportedModelTypes()) expect(familyForConfig({ model_type: t }).modelTypes).toContain(t);
  });

  it('refuses non-string model_type', () => {
    expect(() => familyForConfig({ model_type: 3 })).toThrow(CheckpointError);
  });

  it('sends a multimodal wrapper it reads (mistral3) to resolveLanguageModel', () => {
    const wrapped = { model_type: 'mistral3', architectures: ['Mistral3ForConditionalGeneration'], text_config: { model_type: 'mistral4' } };
    expect(() => familyForConfig(wrapped)).toThrow(CheckpointError);
    expect(() => familyForConfig(wrapped)).toThrow(/'mistral3' is a multimodal checkpoint: .* resolveLanguageModel/);
  });

  it('sends Llama 4’s multimodal wrapper (llama4) to resolveLanguageModel too, which gives its text model (llama4_text)', () => {
    const wrapped = { model_type: 'llama4', architectures: ['Llama4ForConditionalGeneration'], text_config: { model_type: 'llama4_text', num_hidden_layers: 4 } };
    expect(() => familyForConfig(wrapped)).toThrow(/'llama4' is a multimodal checkpoint: .* resolveLanguageModel/);
    const { family, resolved } = resolveLanguageModel(wrapped);
    expect(family.family).toBe('llama4_text');
    // Llama4Config's tie_word_embeddings default is false
    expect(resolved.config.tieWordEmbeddings).toBe(false);
  });
});

describe('normalisation from the real key names', () => {
  it('Mixtral: intermediate_size is the expert width, top-k always renormalised', () => {
    const { config, moeLayers } = familyByName('mixtral').resolveConfig({
      model_type: 'mixtral',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      num_local_experts: 8,
      num_experts_per_tok: 2,
      vocab_size: 32000,
    });
    expect(config).toMatchObject({ expertIntermediateSize: 14336, denseIntermediateSize: 0, numExperts: 8, topK: 2, headDim: 128, normTopkProb: true, ropeTheta: 1e6, rmsNormEps: 1e-5, bosTokenId: 1, eosTokenId: 2 });
    expect(moeLayers.every(Boolean)).toBe(true);
  });

  it('Qwen2-MoE defaults: qkv biases on, shared expert gated, norm_topk_prob false', () => {
    const { config } = familyByName('qwen2_moe').resolveConfig({ model_type: 'qwen2_moe' });
    expect(config).toMatchObject({ qkvBias: true, sharedExpertGated: true, normTopkProb: false, numExperts: 60, topK: 4, expertIntermediateSize: 1408, sharedExpertIntermediateSize: 5632, denseIntermediateSize: 5632 });
  });

  it('Qwen3-Next defaults (Qwen3NextConfig): linear attention but every 4th layer, a quarter of head_dim 256 rotated, gated queries, zero-centred norms, a gated shared expert', () => {
    const { config, moeLayers } = familyByName('qwen3_next').resolveConfig({ model_type: 'qwen3_next' });
    expect(config).toMatchObject({
      hiddenSize: 2048, numLayers: 48, numHeads: 16, numKvHeads: 2, headDim: 256, rotaryDim: 64, ropeTheta: 10000, rmsNormEps: 1e-6, vocabSize: 151936,
      numExperts: 512, topK: 10, expertIntermediateSize: 512, sharedExpertIntermediateSize: 512, denseIntermediateSize: 5632, normTopkProb: true, sharedExpertGated: true,
      qkvBias: false, qkNorm: 'per-head', queryGate: true, zeroCentredNorms: true, tieWordEmbeddings: false,
    });
    expect(config.linearAttention).toMatchObject({ numKeyHeads: 16, numValueHeads: 32, keyHeadDim: 128, valueHeadDim: 128, convKernel: 4 });
    expect(config.linearAttention!.layers).toEqual(Array.from({ length: 48 }, (_, l) => (l + 1) % 4 !== 0));
    expect(moeLayers.every(Boolean)).toBe(true);
    // full_attention_interval, listed layer_types, partial_rotary_factor in rope_parameters
    const family = familyByName('qwen3_next');
    expect(family.resolveConfig({ model_type: 'qwen3_next', num_hidden_layers: 4, full_attention_interval: 2 }).config.linearAttention!.layers).toEqual([true, false, true, false]);
    const listed = ['full_attention', 'linear_attention', 'linear_attention'];
    expect(family.resolveConfig({ model_type: 'qwen3_next', num_hidden_layers: 3, layer_types: listed }).config.linearAttention!.layers).toEqual([false, true, true]);
    expect(family.resolveConfig({ model_type: 'qwen3_next', head_dim: 64, rope_parameters: { rope_type: 'default', rope_theta: 1e7, partial_rotary_factor: 0.5 } }).config).toMatchObject({ rotaryDim: 32, ropeTheta: 1e7 });
    expect(() => family.resolveConfig({ model_type: 'qwen3_next', num_hidden_layers: 2, layer_types: listed })).toThrow(/'layer_types': 3 entries for num_hidden_layers 2/);
    expect(() => family.resolveConfig({ model_type: 'qwen3_next', linear_num_key_heads: 3, linear_num_value_heads: 4 })).toThrow(/linear_num_value_heads \(4\) is not a multiple of linear_num_key_heads \(3\)/);
  });

  it('Qwen3.5-MoE’s language model defaults (Qwen3_5MoeTextConfig): Qwen3-Next’s layers, every one MoE and always renormalised, its own sizes', () => {
    const { config, moeLayers } = familyByName('qwen3_5_moe_text').resolveConfig({ model_type: 'qwen3_5_moe_text' });
    expect(config).toMatchObject({
      hiddenSize: 2048, numLayers: 40, numHeads: 16, numKvHeads: 2, headDim: 256, rotaryDim: 64, vocabSize: 248320, rmsNormEps: 1e-6,
      numExperts: 256, topK: 8, expertIntermediateSize: 512, sharedExpertIntermediateSize: 512, denseIntermediateSize: 0, normTopkProb: true, sharedExpertGated: true,
      queryGate: true, zeroCentredNorms: true, qkNorm: 'per-head',
    });
    expect(config.linearAttention).toMatchObject({ numKeyHeads: 16, numValueHeads: 32, keyHeadDim: 128, valueHeadDim: 128, convKernel: 4 });
    expect(config.linearAttention!.layers).toEqual(Array.from({ length: 40 }, (_, l) => (l + 1) % 4 !== 0));
    expect(moeLayers).toEqual(Array.from({ length: 40 }, () => true));
    // transformers' router renormalises whatever norm_topk_prob says, and every layer is MoE whatever mlp_only_layers says
    expect(familyByName('qwen3_5_moe_text').resolveConfig({ model_type: 'qwen3_5_moe_text', norm_topk_prob: false, mlp_only_layers: [0] })).toMatchObject({ config: { normTopkProb: true }, moeLayers: Array.from({ length: 40 }, () => true) });
  });

  it('OLMoE: null num_key_value_heads means one kv head per head; clip_qkv carried', () => {
    const { config } = familyByName('olmoe').resolveConfig({ model_type: 'olmoe', num_key_value_heads: null, clip_qkv: 8 });
    expect(config.numKvHeads).toBe(config.numHeads);
    expect(config.clipQkv).toBe(8);
    expect(config.qkNorm).toBe('whole');
  });

  it('Qwen3-MoE and Qwen3-VL-MoE’s language model: the expert count as the releases write it (num_experts) or as transformers 5 saves it (num_local_experts)', () => {
    for (const [type, fallback] of [['qwen3_moe', 128], ['qwen3_vl_moe_text', 60]] as const) {
      const family = familyByName(type);
      expect(family.resolveConfig({ model_type: type }).config.numExperts).toBe(fallback);
      expect(family.resolveConfig({ model_type: type, num_experts: 16 }).config.numExperts).toBe(16);
      expect(family.resolveConfig({ model_type: type, num_local_experts: 16 }).config.numExperts).toBe(16);
      expect(() => family.resolveConfig({ model_type: type, num_experts: 16, num_local_experts: 8 })).toThrow(/sets both 'num_local_experts' \(8\) and 'num_experts' \(16\)/);
    }
  });

  it('transformers 5 rope_parameters and list-valued eos ids', () => {
    const { config } = familyByName('qwen3_moe').resolveConfig({ model_type: 'qwen3_moe', rope_parameters: { rope_type: 'default', rope_theta: 5e5 }, eos_token_id: [7, 9] });
    expect(config.ropeTheta).toBe(5e5);
    expect(config.eosTokenId).toBe(7);
  });

  it('DeepSeek-V2 group-limited routing needs n_group and topk_group', () => {
    const family = familyByName('deepseek_v2');
    expect(() => family.resolveConfig({ model_type: 'deepseek_v2', n_routed_experts: 8, num_experts_per_tok: 2, topk_method: 'group_limited_greedy' })).toThrow(/'topk_method'.*n_group/);
    const { config } = family.resolveConfig({ model_type: 'deepseek_v2', n_routed_experts: 8, num_experts_per_tok: 2, topk_method: 'group_limited_greedy', n_group: 4, topk_group: 2 });
    expect(config).toMatchObject({ topkMethod: 'group_limited_greedy', nGroup: 4, topkGroup: 2 });
    expect(() => family.resolveConfig({ model_type: 'deepseek_v2', n_routed_experts: 8, num_experts_per_tok: 2, topk_method: 'noaux_tc' })).toThrow(/noaux_tc is not supported/);
  });

  it('Hunyuan MoE: per-head q/k norm after RoPE, the NTK alpha raising RoPE\'s base, a shared MLP, per-layer lists of one value', () => {
    const family = familyByName('hunyuan_v1_moe');
    // Hunyuan-A13B's shape
    const raw = {
      model_type: 'hunyuan_v1_moe', hidden_size: 4096, intermediate_size: 3072, num_experts: 64, moe_topk: [8, 8, 8], num_hidden_layers: 3, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128,
      rope_theta: 10000.0, rope_scaling: { alpha: 1000.0, beta_fast: 32, beta_slow: 1, factor: 1.0, mscale: 1.0, mscale_all_dim: 1.0, type: 'dynamic' }, max_position_embeddings: 32768, vocab_size: 128167,
    };
    const { config, moeLayers } = family.resolveConfig(raw);
    expect(config).toMatchObject({ numExperts: 64, topK: 8, expertIntermediateSize: 3072, sharedExpertIntermediateSize: 3072, qkNorm: 'per-head', qkNormAfterRope: true, ropeAlpha: 1000, normTopkProb: true });
    expect(moeLayers.every(Boolean)).toBe(true);
    expect(unrunnableReason(config)).toBeNull();
    expect(() => family.resolveConfig({ ...raw, moe_topk: [8, 4, 8] })).toThrow(/moe_topk': per-layer values that differ/);
    // "dynamic" without an alpha stays refused as unrunnable
    expect(unrunnableReason(family.resolveConfig({ ...raw, rope_scaling: { type: 'dynamic', factor: 2.0 } }).config)).toMatch(/of type "dynamic" is not implemented/);
  });

  it('ERNIE-4.5 MoE: interleaved RoPE, softmax routing with its [1, E] choice bias, shared experts, MoE layers from moe_layer_start/end_index and interval', () => {
    const family = familyByName('ernie4_5_moe');
    // ERNIE-4.5-21B-A3B's shape
    const { config, moeLayers } = family.resolveConfig({
      model_type: 'ernie4_5_moe', hidden_size: 2560, intermediate_size: 12288, moe_intermediate_size: 1536, moe_num_experts: 64, moe_num_shared_experts: 2, moe_k: 6, num_hidden_layers: 28,
      num_attention_heads: 20, num_key_value_heads: 4, moe_layer_start_index: 1, moe_layer_end_index: 27, moe_layer_interval: 1, tie_word_embeddings: true, vocab_size: 103424, rope_theta: 500000, use_bias: false,
    });
    expect(config).toMatchObject({ numExperts: 64, topK: 6, expertIntermediateSize: 1536, sharedExpertIntermediateSize: 3072, ropeInterleave: true, qkNorm: 'none', normTopkProb: true, tieWordEmbeddings: true, ropeTheta: 500000 });
    expect(moeLayers[0]).toBe(false);
    expect(moeLayers.slice(1).every(Boolean)).toBe(true);
    expect(family.resolveConfig({ model_type: 'ernie4_5_moe', num_hidden_layers: 6, moe_layer_start_index: 1, moe_layer_end_index: -1, moe_layer_interval: 2 }).moeLayers).toEqual([false, true, false, true, false, true]);
    expect(() => family.resolveConfig({ model_type: 'ernie4_5_moe', use_bias: true })).toThrow(/use_bias true .* not implemented/);
  });

  it('GLM-4.7-Flash: DeepSeek-V3’s MLA and routing, MoE layers from mlp_layer_types (the first dense without them)', () => {
    const family = familyByName('glm4_moe_lite');
    const { config, moeLayers } = family.resolveConfig({ model_type: 'glm4_moe_lite', num_hidden_layers: 4 });
    expect(config).toMatchObject({ attention: 'mla', numExperts: 64, topK: 4, expertIntermediateSize: 1536, sharedExpertIntermediateSize: 1536, topkMethod: 'noaux_tc', routedScalingFactor: 1.8, mla: { qLoraRank: 768, kvLoraRank: 512, qkNopeHeadDim: 192, qkRopeHeadDim: 64, vHeadDim: 256, ropeInterleave: true } });
    expect(moeLayers).toEqual([false, true, true, true]);
    expect(family.resolveConfig({ model_type: 'glm4_moe_lite', num_hidden_layers: 3, mlp_layer_types: ['dense', 'dense', 'sparse'] }).moeLayers).toEqual([false, false, true]);
    expect(() => family.resolveConfig({ model_type: 'glm4_moe_lite', num_hidden_layers: 3, mlp_layer_types: ['dense', 'sparse'] })).toThrow(/mlp_layer_types': 2 entries for num_hidden_layers 3/);
    expect(() => family.resolveConfig({ model_type: 'glm4_moe_lite', mlp_layer_types: ['dense', 'moe'] })).toThrow(/mlp_layer_types/);
  });

  it('DeepSeek-V3.2: V3’s MLA (q-LoRA, interleaved pairs always) and routing, an indexer in every layer', () => {
    const family = familyByName('deepseek_v32');
    // DeepSeek-V3.2's released config.json, less its quantization block and rope_scaling
    const raw = {
      model_type: 'deepseek_v32', hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048, n_routed_experts: 256, n_shared_experts: 1, num_experts_per_tok: 8,
      first_k_dense_replace: 3, moe_layer_freq: 1, n_group: 8, topk_group: 4, topk_method: 'noaux_tc', scoring_func: 'sigmoid', norm_topk_prob: true, routed_scaling_factor: 2.5,
      num_hidden_layers: 61, num_attention_heads: 128, num_key_value_heads: 128, q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128,
      index_topk: 2048, index_head_dim: 128, index_n_heads: 64, max_position_embeddings: 163840, vocab_size: 129280, rms_norm_eps: 1e-6, num_nextn_predict_layers: 1,
    };
    const { config, moeLayers } = family.resolveConfig(raw);
    expect(config).toMatchObject({ attention: 'mla', numExperts: 256, topK: 8, sharedExpertIntermediateSize: 2048, topkMethod: 'noaux_tc', nGroup: 8, topkGroup: 4, routedScalingFactor: 2.5 });
    expect(config.mla).toEqual({ qLoraRank: 1536, kvLoraRank: 512, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128, ropeInterleave: true });
    expect(config.sparseAttention).toEqual({ indexTopK: 2048, indexHeads: 64, indexHeadDim: 128, layers: Array<boolean>(61).fill(true), ropeInterleave: false });
    expect(moeLayers).toEqual(Array.from({ length: 61 }, (_, l) => l >= 3));
    expect(unrunnableReason(config)).toBeNull();
    // transformers has no rope_interleave switch for V3.2 (its MLA always interleaves)
    expect(family.resolveConfig({ ...raw, rope_interleave: false }).config.mla!.ropeInterleave).toBe(true);
    // the indexer reads the q-LoRA projection and ropes its first qk_rope_head_dim values
    expect(() => family.resolveConfig({ ...raw, q_lora_rank: null })).toThrow(/'q_lora_rank' is null, but DeepSeek-V3.2's sparse-attention indexer reads the q-LoRA projection/);
    expect(() => family.resolveConfig({ ...raw, index_head_dim: 32 })).toThrow(/'index_head_dim' 32 is narrower than qk_rope_head_dim 64/);
    expect(family.resolveConfig({ ...raw, num_hidden_layers: 3, mlp_layer_types: ['dense', 'sparse', 'sparse'] }).moeLayers).toEqual([false, true, true]);
    expect(() => family.resolveConfig({ ...raw, mlp_layer_types: ['dense', 'sparse'] })).toThrow(/'mlp_layer_types': 2 entries for num_hidden_layers 61/);
  });

  it('GLM-5: V3.2’s architecture, indexers where indexer_types (or the pattern, or the schedule) says "full", as transformers derives them', () => {
    const family = familyByName('glm_moe_dsa');
    const layers = (raw: Record<string, unknown>) => family.resolveConfig({ model_type: 'glm_moe_dsa', ...raw }).config.sparseAttention!.layers;
    const { config, moeLayers } = family.resolveConfig({ model_type: 'glm_moe_dsa', num_hidden_layers: 5 });
    expect(config).toMatchObject({ attention: 'mla', numExperts: 256, topK: 8, nGroup: 1, topkGroup: 1, mla: { qLoraRank: 2048, kvLoraRank: 512, qkNopeHeadDim: 192, qkRopeHeadDim: 64, vHeadDim: 256, ropeInterleave: true } });
    // GLM-5's indexer ropes interleaved pairs, V3.2's halves
    expect(config.sparseAttention).toMatchObject({ indexTopK: 2048, indexHeads: 32, indexHeadDim: 128, ropeInterleave: true });
    // the values below are transformers 5's GlmMoeDsaConfig(...).indexer_types and mlp_layer_types for the same keys
    expect(moeLayers).toEqual([false, false, false, true, true]);
    expect(config.sparseAttention!.layers).toEqual([true, true, true, true, true]);
    expect(layers({ num_hidden_layers: 6, index_topk_freq: 2, index_skip_topk_offset: 2 })).toEqual([true, true, false, true, false, true]);
    expect(layers({ num_hidden_layers: 6, index_topk_freq: 3, index_skip_topk_offset: 1 })).toEqual([true, false, false, true, false, false]);
    expect(layers({ num_hidden_layers: 4, index_topk_pattern: 'FSSF' })).toEqual([true, false, false, true]);
    expect(layers({ num_hidden_layers: 4, indexer_types: ['full', 'full', 'shared', 'full'], index_topk_pattern: 'FSSF' })).toEqual([true, true, false, true]);
    expect(() => layers({ num_hidden_layers: 4, index_topk_pattern: 'FSF' })).toThrow(/'index_topk_pattern': 3 entries for num_hidden_layers 4/);
    expect(() => layers({ num_hidden_layers: 2, indexer_types: ['shared', 'full'] })).toThrow(/'indexer_types': layer 0 is "shared", but a shared layer reuses an earlier layer's indexer and there is none before it/);
    expect(() => layers({ num_hidden_layers: 2, index_topk_pattern: 'FX' })).toThrow(/index_topk_pattern/);
  });

  it('EXAONE MoE: per-head q/k norm, sliding layers from sliding_window_pattern or layer_types, no RoPE on the global layers, V3 routing', () => {
    const family = familyByName('exaone_moe');
    // K-EXAONE's proportions: 48 layers, every fourth global, the first dense
    const raw = {
      model_type: 'exaone_moe', hidden_size: 6144, intermediate_size: 18432, moe_intermediate_size: 2048, num_experts: 128, num_shared_experts: 1, num_experts_per_tok: 8, first_k_dense_replace: 1,
      num_hidden_layers: 48, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, sliding_window: 128, sliding_window_pattern: 4, routed_scaling_factor: 2.5, vocab_size: 153600,
    };
    const { config, moeLayers } = family.resolveConfig(raw);
    expect(config).toMatchObject({ numExperts: 128, topK: 8, expertIntermediateSize: 2048, sharedExpertIntermediateSize: 2048, qkNorm: 'per-head', qkvBias: false, topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, headDim: 128, numKvHeads: 8 });
    expect(moeLayers).toEqual(Array.from({ length: 48 }, (_, l) => l >= 1));
    // the values transformers 5's ExaoneMoeConfig derives: layer_types sliding but for each fourth; RoPE only where sliding
    const global = Array.from({ length: 48 }, (_, l) => (l + 1) % 4 === 0);
    expect(config.slidingWindow).toEqual({ size: 128, layers: global.map((g) => !g) });
    expect(config.nopeLayers).toEqual(global);
    expect(unrunnableReason(config)).toBeNull();
    // layer_types as written wins; a window with every layer global ropes none of them
    const typed = family.resolveConfig({ ...raw, num_hidden_layers: 3, layer_types: ['full_attention', 'sliding_attention', 'full_attention'] }).config;
    expect(typed.slidingWindow).toEqual({ size: 128, layers: [false, true, false] });
    expect(typed.nopeLayers).toEqual([true, false, true]);
    expect(family.resolveConfig({ ...raw, num_hidden_layers: 2, layer_types: ['full_attention', 'full_attention'] }).config.nopeLayers).toEqual([true, true]);
    // without a window (which transformers' typed config refuses) every layer ropes and none slides
    const unwindowed = family.resolveConfig({ ...raw, sliding_window: null, layer_types: Array(48).fill('full_attention') }).config;
    expect(unwindowed.slidingWindow).toBeUndefined();
    expect(unwindowed.nopeLayers).toBeUndefined();
    // a pattern written as letters is not read by transformers without layer_types either
    expect(() => family.resolveConfig({ ...raw, sliding_window_pattern: 'LLLG' })).toThrow(/sliding_window_pattern "LLLG" is not a layer count transformers derives them from .* list layer_types/);
    expect(family.resolveConfig({ ...raw, num_hidden_layers: 2, sliding_window_pattern: 'LLLG', layer_types: ['sliding_attention', 'full_attention'] }).config.nopeLayers).toEqual([false, true]);
  });

  it('Mistral 4: V3’s MLA and layout, softmax routing in groups scored by their two best, queries scaled by position; refuses what transformers cannot run', async () => {
    const family = familyByName('mistral4');
    // the rope_parameters block transformers 5's Mistral4Config() writes (its default: the other keys are defaults too)
    const ropeParameters = {
      rope_type: 'yarn', type: 'yarn', rope_theta: 10000.0, factor: 128.0, original_max_position_embeddings: 8192, max_position_embeddings: 1048576, beta_fast: 32.0, beta_slow: 1.0,
      mscale_all_dim: 1.0, mscale: 1.0, llama_4_scaling_beta: 0.1, partial_rotary_factor: 0.5,
    };
    const raw = { model_type: 'mistral4', rope_parameters: ropeParameters };
    const { config, moeLayers } = family.resolveConfig(raw);
    expect(config).toMatchObject({
      attention: 'mla', hiddenSize: 4096, numLayers: 36, numHeads: 32, headDim: 128, vocabSize: 131072, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: false,
      numExperts: 128, topK: 4, expertIntermediateSize: 2048, denseIntermediateSize: 12288, sharedExpertIntermediateSize: 2048, sharedExpertGated: false,
      normTopkProb: true, routedScalingFactor: 1, topkMethod: 'group_limited_top2', nGroup: 1, topkGroup: 1,
      rotaryDim: 64, llama4QueryScale: { beta: 0.1, originalMaxPositions: 8192 }, padTokenId: 11, bosTokenId: 1, eosTokenId: 2,
    });
    expect(config.mla).toEqual({ qLoraRank: 1024, kvLoraRank: 256, qkNopeHeadDim: 64, qkRopeHeadDim: 64, vHeadDim: 128, ropeInterleave: true });
    expect(moeLayers.every(Boolean)).toBe(true);
    expect(unrunnableReason(config)).toBeNull();
    // no moe_layer_freq (transformers' Mistral 4 reads none): every layer from first_k_dense_replace on is MoE; n_shared_experts widens the shared MLP
    const dense2 = family.resolveConfig({ ...raw, num_hidden_layers: 5, first_k_dense_replace: 2, moe_layer_freq: 2, n_shared_experts: 2 });
    expect(dense2.moeLayers).toEqual([false, false, true, true, true]);
    expect(dense2.config.sharedExpertIntermediateSize).toBe(4096);
    // partial_rotary_factor as transformers resolves it: rope_parameters' default is qk_rope / head_dim; a legacy rope_scaling block takes the top-level key
    const { partial_rotary_factor: _p, ...withoutFactor } = ropeParameters;
    expect(family.resolveConfig({ ...raw, qk_nope_head_dim: 128, rope_parameters: withoutFactor }).config.rotaryDim).toBe(64);
    expect(family.resolveConfig({ model_type: 'mistral4', rope_scaling: withoutFactor, partial_rotary_factor: 0.5 }).config.rotaryDim).toBe(64);
    expect(() => family.resolveConfig({ model_type: 'mistral4', rope_scaling: withoutFactor })).toThrow(/'rope_scaling.partial_rotary_factor': 1 does not rotate exactly qk_rope_head_dim 64 of each 128-wide head/);
    expect(() => family.resolveConfig({ ...raw, rope_parameters: { ...ropeParameters, partial_rotary_factor: 0.25 } })).toThrow(/'rope_parameters.partial_rotary_factor': 0.25/);
    // what transformers fails on: no llama_4_scaling_beta (None · tensor) or original context, the default RoPE (all of head_dim against the rope part)
    const { llama_4_scaling_beta: _b, ...withoutBeta } = ropeParameters;
    expect(() => family.resolveConfig({ ...raw, rope_parameters: withoutBeta })).toThrow(/'rope_parameters.llama_4_scaling_beta': absent/);
    expect(() => family.resolveConfig({ ...raw, rope_parameters: { ...ropeParameters, llama_4_scaling_beta: null } })).toThrow(/'rope_parameters.llama_4_scaling_beta': null/);
    const { original_max_position_embeddings: _o, ...withoutOriginal } = ropeParameters;
    expect(() => family.resolveConfig({ ...raw, rope_parameters: withoutOriginal })).toThrow(/'rope_parameters.original_max_position_embeddings': absent/);
    expect(() => family.resolveConfig({ ...raw, rope_parameters: { rope_type: 'default', rope_theta: 10000.0, llama_4_scaling_beta: 0.1, original_max_position_embeddings: 8192 } })).toThrow(/'rope_parameters.rope_type': "default"/);
    // without any block transformers would give it YaRN: refused rather than run with the plain RoPE
    expect(() => family.resolveConfig({ model_type: 'mistral4' })).toThrow(CheckpointError);
    expect(() => family.resolveConfig({ model_type: 'mistral4' })).toThrow(/no rope_parameters .* YaRN by default/);
    // V3's correction bias has no place here; the fixture's layout names the shared experts and no bias, per-expert or fused
    for (const fusedExperts of [false, true]) {
      const { ckpt } = await openFixture('mistral4', { seed: 1, fusedExperts });
      try {
        const moe = ckpt.layout.layers[1].moe!;
        expect(moe.routerBias).toBeUndefined();
        expect(moe.shared).toMatchObject({ gate: 'model.layers.1.mlp.shared_experts.gate_proj.weight' });
        expect(ckpt.layout.layers[0].dense?.gate).toBe('model.layers.0.mlp.gate_proj.weight');
        expect(ckpt.config.llama4QueryScale).toEqual({ beta: 0.1, originalMaxPositions: 4 });
      } finally {
        await ckpt.close();
      }
    }
  });

  it('FlexOlmo: OLMoE’s attention and routing, norms after the sublayers (no input norm, a norm on the MLP output)', async () => {
    const family = familyByName('flex_olmo');
    // FlexOlmo-7x7B-1T's proportions, transformers' defaults
    const { config, moeLayers } = family.resolveConfig({ model_type: 'flex_olmo', num_hidden_layers: 32 });
    expect(config).toMatchObject({ numExperts: 7, topK: 5, expertIntermediateSize: 11008, qkNorm: 'whole', norms: { attentionInput: false, attentionOutput: true, mlpInput: false, mlpOutput: true }, normTopkProb: false, ropeTheta: 500000, eosTokenId: 100257 });
    expect(moeLayers.every(Boolean)).toBe(true);
    const { ckpt } = await openFixture('flex_olmo', { seed: 1 });
    try {
      const layer = ckpt.layout.layers[1];
      expect(layer.norms).toEqual({ attentionOutput: 'model.layers.1.post_attention_layernorm.weight', mlpOutput: 'model.layers.1.post_feedforward_layernorm.weight' });
    } finally {
      await ckpt.close();
    }
  });

  it('HY V3: per-head q/k norm, sigmoid routing with a choice bias and router_scaling_factor, mlp_layer_types; the releases’ names or transformers’', async () => {
    const family = familyByName('hy_v3');
    const { config, moeLayers } = family.resolveConfig({ model_type: 'hy_v3' });
    expect(config).toMatchObject({
      hiddenSize: 4096, numLayers: 80, numHeads: 64, numKvHeads: 8, headDim: 128, vocabSize: 120832, ropeTheta: 11_158_840, qkNorm: 'per-head', qkvBias: false,
      numExperts: 192, topK: 8, expertIntermediateSize: 1536, denseIntermediateSize: 13312, sharedExpertIntermediateSize: 1536, sharedExpertGated: false,
      topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, normTopkProb: true, routedScalingFactor: 2.826,
    });
    expect(moeLayers[0]).toBe(false);
    expect(moeLayers.slice(1).every(Boolean)).toBe(true);
    // transformers' HYV3MLP(intermediate_size=0) falls back to intermediate_size
    expect(family.resolveConfig({ model_type: 'hy_v3', num_shared_experts: 0 }).config.sharedExpertIntermediateSize).toBe(13312);
    expect(family.resolveConfig({ model_type: 'hy_v3', num_hidden_layers: 3, mlp_layer_types: ['sparse', 'dense', 'sparse'] }).moeLayers).toEqual([true, false, true]);
    expect(() => family.resolveConfig({ model_type: 'hy_v3', num_hidden_layers: 3, mlp_layer_types: ['sparse'] })).toThrow(/'mlp_layer_types': 1 entries for num_hidden_layers 3/);
    expect(() => family.resolveConfig({ model_type: 'hy_v3', mlp_bias: true })).toThrow(/mlp_bias/);
    for (const fusedExperts of [false, true]) {
      const { ckpt } = await openFixture('hy_v3', { seed: 1, fusedExperts });
      try {
        const moe = ckpt.layout.layers[1].moe!;
        expect(moe.router).toBe(fusedExperts ? 'model.layers.1.mlp.gate.weight' : 'model.layers.1.mlp.router.gate.weight');
        expect(moe.routerBias).toBe(fusedExperts ? 'model.layers.1.mlp.e_score_correction_bias' : 'model.layers.1.mlp.expert_bias');
        expect(moe.shared!.down).toBe(fusedExperts ? 'model.layers.1.mlp.shared_experts.down_proj.weight' : 'model.layers.1.mlp.shared_mlp.down_proj.weight');
      } finally {
        await ckpt.close();
      }
    }
  });

  it('A.X K1: DeepSeek-V3 with q-LoRA always and a norm on each MoE block’s output', async () => {
    const family = familyByName('axk1');
    // transformers' AXK1Config defaults are A.X-K1's shape
    const { config, moeLayers } = family.resolveConfig({ model_type: 'axk1' });
    expect(config).toMatchObject({
      hiddenSize: 7168, numLayers: 61, numHeads: 64, vocabSize: 163840, attention: 'mla',
      numExperts: 192, topK: 8, expertIntermediateSize: 2048, denseIntermediateSize: 18432, sharedExpertIntermediateSize: 2048,
      topkMethod: 'noaux_tc', nGroup: 8, topkGroup: 4, routedScalingFactor: 2.5, norms: { attentionInput: true, attentionOutput: false, mlpInput: true, mlpOutput: 'moe' }, bosTokenId: 163691, eosTokenId: 163691,
    });
    expect(config.mla).toMatchObject({ qLoraRank: 1536, kvLoraRank: 512, ropeInterleave: true });
    expect(moeLayers[0]).toBe(false);
    expect(moeLayers.slice(1).every(Boolean)).toBe(true);
    // transformers builds q_a_proj whatever q_lora_rank says
    expect(() => family.resolveConfig({ model_type: 'axk1', q_lora_rank: null })).toThrow(/'q_lora_rank'/);
    const { ckpt } = await openFixture('axk1', { seed: 1 });
    try {
      expect(ckpt.layout.layers[0].norms).toEqual({ attentionInput: 'model.layers.0.input_layernorm.weight', mlpInput: 'model.layers.0.post_attention_layernorm.weight' });
      expect(ckpt.layout.layers[1].norms.mlpOutput).toBe('model.layers.1.post_mlp_layernorm.weight');
    } finally {
      await ckpt.close();
    }
  });

  it('a multimodal checkpoint: a listed wrapper gives its text_config’s family with the wrapper’s tying; others are refused naming the wrapper', () => {
    const rope = { rope_type: 'yarn', rope_theta: 10000, factor: 128, original_max_position_embeddings: 8192, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1, llama_4_scaling_beta: 0.1 };
    const text = { model_type: 'mistral4', num_hidden_layers: 2, tie_word_embeddings: false, rope_parameters: rope };
    const { family, resolved, wrapper } = resolveLanguageModel({ model_type: 'mistral3', architectures: ['Mistral3ForConditionalGeneration'], text_config: text });
    expect(family.family).toBe('mistral4');
    expect(wrapper?.modelType).toBe('mistral3');
    expect(resolved.config.multimodalWrapper).toMatchObject({ modelType: 'mistral3', raw: { architectures: ['Mistral3ForConditionalGeneration'] } });
    // transformers ties by the wrapper's tie_word_embeddings, whose Mistral3Config default is true, not by text_config's
    expect(resolved.config.tieWordEmbeddings).toBe(true);
    expect(resolveLanguageModel({ model_type: 'mistral3', text_config: text, tie_word_embeddings: false }).resolved.config.tieWordEmbeddings).toBe(false);
    // an ordinary config is its own language model
    expect(resolveLanguageModel(text).wrapper).toBeNull();
    expect(() => resolveLanguageModel({ model_type: 'mistral3' })).toThrow(/'text_config': a Mistral 3 vision-language .* needs its language model's config there/);
    expect(() => resolveLanguageModel({ model_type: 'mistral3', text_config: { model_type: 'ministral3' } })).toThrow(/text_config has model_type "ministral3"; rfid-moe reads .* whose language model is mistral4/);
    expect(() => resolveLanguageModel({ model_type: 'llava', text_config: { model_type: 'mixtral' } })).toThrow(/unsupported model_type 'llava': a multimodal model around a language model of model_type 'mixtral', which rfid-moe reads, but this wrapper has not been checked against transformers; supported wrappers: glm4v_moe, llama4, mistral3, qwen3_5_moe, qwen3_vl_moe/);
    expect(() => resolveLanguageModel({ model_type: 'llava', text_config: { model_type: 'llama' } })).toThrow(/unsupported model_type 'llava'; supported model types:/);
  });

  it('Solar Open: GLM-4.5’s routing and shared expert in every layer, Llama’s attention over whole heads', () => {
    const family = familyByName('solar_open');
    // transformers' SolarOpenConfig defaults are Solar-Open-100B's shape
    const { config, moeLayers } = family.resolveConfig({ model_type: 'solar_open' });
    expect(config).toMatchObject({
      hiddenSize: 4096, numLayers: 48, numHeads: 64, numKvHeads: 8, headDim: 128, vocabSize: 196608, ropeTheta: 1_000_000, rmsNormEps: 1e-5,
      numExperts: 128, topK: 8, expertIntermediateSize: 1280, sharedExpertIntermediateSize: 1280, sharedExpertGated: false,
      topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, normTopkProb: true, routedScalingFactor: 1, qkvBias: false, qkNorm: 'none',
    });
    expect(moeLayers).toHaveLength(48);
    expect(moeLayers.every(Boolean)).toBe(true);
    expect(unrunnableReason(config)).toBeNull();
    expect(config.rotaryDim).toBeUndefined();
    // transformers' SolarOpen rotates whole heads whatever partial_rotary_factor says (and fails where it is below 1): not run
    const partial = family.resolveConfig({ model_type: 'solar_open', rope_parameters: { rope_type: 'default', rope_theta: 1e6, partial_rotary_factor: 0.5 } }).config;
    expect(unrunnableReason(partial)).toMatch(/partial_rotary_factor 0.5 is not implemented for this family/);
    expect(family.resolveConfig({ model_type: 'solar_open', attention_bias: true, n_shared_experts: 2 }).config).toMatchObject({ qkvBias: true, sharedExpertIntermediateSize: 2560 });
  });

  it('dots.llm1: per-head q/k norm, V3 routing with groups, shared experts, dense layers before first_k_dense_replace; sliding layers as transformers derives them', () => {
    const family = familyByName('dots1');
    // dots.llm1.inst's shape
    const raw = {
      model_type: 'dots1', hidden_size: 4096, intermediate_size: 10944, moe_intermediate_size: 1408, n_routed_experts: 128, n_shared_experts: 2, num_experts_per_tok: 6, first_k_dense_replace: 1,
      num_hidden_layers: 62, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, norm_topk_prob: true, routed_scaling_factor: 2.5, n_group: 1, topk_group: 1, sliding_window: null, max_window_layers: 62, vocab_size: 152064,
    };
    const { config, moeLayers } = family.resolveConfig(raw);
    expect(config).toMatchObject({ numExperts: 128, topK: 6, expertIntermediateSize: 1408, sharedExpertIntermediateSize: 2816, qkNorm: 'per-head', qkvBias: false, topkMethod: 'noaux_tc', normTopkProb: true, routedScalingFactor: 2.5 });
    expect(config.rotaryDim).toBeUndefined();
    expect(moeLayers[0]).toBe(false);
    expect(moeLayers.slice(1).every(Boolean)).toBe(true);
    expect(unrunnableReason(config)).toBeNull();
    expect(config.slidingWindow).toBeUndefined();
    // transformers' defaults make no layer of 62 sliding; layers from max_window_layers on, or layer_types that say so, are
    expect(family.resolveConfig({ ...raw, sliding_window: undefined }).config.slidingWindow).toBeUndefined();
    const from30 = family.resolveConfig({ ...raw, sliding_window: 4096, max_window_layers: 30 }).config;
    expect(from30.slidingWindow).toEqual({ size: 4096, layers: Array.from({ length: 62 }, (_, l) => l >= 30) });
    expect(unrunnableReason(from30)).toBeNull();
    const typed = family.resolveConfig({ ...raw, num_hidden_layers: 2, sliding_window: 8, layer_types: ['full_attention', 'sliding_attention'] }).config;
    expect(typed.slidingWindow).toEqual({ size: 8, layers: [false, true] });
    // layer_types that do not list each layer, or sliding layers without a window, are refused naming the key
    expect(() => family.resolveConfig({ ...raw, layer_types: ['full_attention', 'sliding_attention'] })).toThrow(/'layer_types': must list .* for each of the 62 layers/);
    expect(() => family.resolveConfig({ ...raw, num_hidden_layers: 2, layer_types: ['sliding_attention', 'sliding_attention'] })).toThrow(/marks sliding-window layers but sets no window/);
    expect(() => family.resolveConfig({ ...raw, sliding_window: 'wide' })).toThrow(/'sliding_window': must be a positive integer or null/);
  });

  it('sliding windows as transformers reads them: Mixtral’s and Qwen3-MoE’s for every layer, Qwen2-MoE’s every other layer below max_window_layers', () => {
    const mixtral = familyByName('mixtral').resolveConfig({ model_type: 'mixtral', num_hidden_layers: 4, sliding_window: 4096 }).config;
    expect(mixtral.slidingWindow).toEqual({ size: 4096 });
    expect(familyByName('mixtral').resolveConfig({ model_type: 'mixtral', num_hidden_layers: 4, sliding_window: null }).config.slidingWindow).toBeUndefined();
    const qwen3 = familyByName('qwen3_moe');
    expect(qwen3.resolveConfig({ model_type: 'qwen3_moe', num_hidden_layers: 4, sliding_window: 64 }).config.slidingWindow).toBeUndefined();
    expect(qwen3.resolveConfig({ model_type: 'qwen3_moe', num_hidden_layers: 4, use_sliding_window: true, sliding_window: 64, max_window_layers: 1 }).config.slidingWindow).toEqual({ size: 64 });
    const qwen2 = familyByName('qwen2_moe');
    expect(qwen2.resolveConfig({ model_type: 'qwen2_moe', num_hidden_layers: 6, use_sliding_window: true, sliding_window: 64, max_window_layers: 4 }).config.slidingWindow).toEqual({ size: 64, layers: [true, false, true, false, false, false] });
    expect(qwen2.resolveConfig({ model_type: 'qwen2_moe', num_hidden_layers: 6, sliding_window: 64 }).config.slidingWindow).toBeUndefined();
  });

  it('MiniMax-M2: whole-projection q/k norm, rotary_dim as the rotated width, sigmoid routing with its correction bias among all experts, renormalised', () => {
    const family = familyByName('minimax_m2');
    // MiniMax-M2's own config.json keys
    const { config, moeLayers } = family.resolveConfig({
      model_type: 'minimax_m2', hidden_size: 3072, intermediate_size: 1536, num_local_experts: 256, num_experts_per_tok: 8, num_hidden_layers: 62, num_attention_heads: 48, num_key_value_heads: 8,
      head_dim: 128, rotary_dim: 64, use_qk_norm: true, qk_norm_type: 'per_layer', scoring_func: 'sigmoid', use_routing_bias: true, rope_theta: 5000000, vocab_size: 200064, shared_intermediate_size: 0,
    });
    expect(config).toMatchObject({ numExperts: 256, topK: 8, expertIntermediateSize: 1536, headDim: 128, rotaryDim: 64, qkNorm: 'whole', topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, normTopkProb: true, routedScalingFactor: 1, ropeTheta: 5e6 });
    expect(moeLayers.every(Boolean)).toBe(true);
    // transformers 5 writes rotary_dim as rope_parameters.partial_rotary_factor
    expect(family.resolveConfig({ model_type: 'minimax_m2', head_dim: 128, rope_parameters: { rope_type: 'default', rope_theta: 5e6, partial_rotary_factor: 0.5 } }).config.rotaryDim).toBe(64);
    expect(() => family.resolveConfig({ model_type: 'minimax_m2', scoring_func: 'softmax' })).toThrow(/scoring_func/);
    expect(() => family.resolveConfig({ model_type: 'minimax_m2', head_dim: 128, rotary_dim: 130 })).toThrow(/rotary_dim': 130 must be even and at most head_dim 128/);
  });

  it('GraniteMoE: its multipliers, 1 when absent (the softmax scale too, as transformers has it, not 1/√head_dim)', () => {
    const family = familyByName('granitemoe');
    // granite-3.0-1b-a400m's shape
    const { config, moeLayers } = family.resolveConfig({
      model_type: 'granitemoe', hidden_size: 1024, intermediate_size: 512, num_local_experts: 32, num_experts_per_tok: 8, num_hidden_layers: 24, num_attention_heads: 16, num_key_value_heads: 8,
      embedding_multiplier: 12.0, residual_multiplier: 0.22, attention_multiplier: 0.015625, logits_scaling: 6.0, tie_word_embeddings: true, vocab_size: 49155,
    });
    expect(config).toMatchObject({ numExperts: 32, topK: 8, expertIntermediateSize: 512, normTopkProb: true, tieWordEmbeddings: true, multipliers: { embedding: 12, residual: 0.22, attention: 0.015625, logits: 6 } });
    expect(moeLayers.every(Boolean)).toBe(true);
    expect(family.resolveConfig({ model_type: 'granitemoe' }).config.multipliers).toEqual({ embedding: 1, residual: 1, attention: 1, logits: 1 });
    expect(() => family.resolveConfig({ model_type: 'granitemoe', logits_scaling: 0 })).toThrow(/logits_scaling/);
  });

  it('GraniteMoE-shared: GraniteMoE with an ungated shared MLP of shared_intermediate_size, none at 0 (transformers’ default)', async () => {
    const family = familyByName('granitemoeshared');
    const defaults = family.resolveConfig({ model_type: 'granitemoeshared' }).config;
    expect(defaults).toMatchObject({ numExperts: 8, topK: 2, expertIntermediateSize: 11008, sharedExpertIntermediateSize: 0, normTopkProb: true, ropeTheta: 10000, bosTokenId: 1, eosTokenId: 2 });
    expect(defaults.multipliers).toEqual({ embedding: 1, residual: 1, attention: 1, logits: 1 });
    expect(family.resolveConfig({ model_type: 'granitemoeshared', shared_intermediate_size: 1024 }).config).toMatchObject({ sharedExpertIntermediateSize: 1024, sharedExpertGated: false });
    expect(() => family.resolveConfig({ model_type: 'granitemoeshared', shared_intermediate_size: -1 })).toThrow(/shared_intermediate_size/);
    const { ckpt } = await openFixture('granitemoeshared', { seed: 1 });
    const none = await openFixture('granitemoeshared', { seed: 1, sharedExpertIntermediateSize: 0 });
    try {
      // gate and up in one tensor, as the experts are
      expect(ckpt.layout.layers[1].moe?.shared).toEqual({ gateUp: 'model.layers.1.shared_mlp.input_linear.weight', down: 'model.layers.1.shared_mlp.output_linear.weight' });
      expect(ckpt.tensor('model.layers.1.shared_mlp.input_linear.weight')?.shape).toEqual([48, 32]);
      expect(describeCheckpoint(ckpt).layers[1].sharedExpert).toBe(true);
      expect(none.ckpt.layout.layers[1].moe?.shared).toBeUndefined();
      expect(describeCheckpoint(none.ckpt).layers[1].sharedExpert).toBe(false);
    } finally {
      await Promise.all([ckpt.close(), none.ckpt.close()]);
    }
  });

  it('GraniteMoE-SWA: a window on all but every fourth layer, a sink per head, layer_rope_theta (0: no RoPE; bases that differ are not run)', async () => {
    const family = familyByName('granitemoe_swa');
    const { config } = family.resolveConfig({ model_type: 'granitemoe_swa', num_hidden_layers: 8 });
    expect(config).toMatchObject({ attentionSinks: true, sharedExpertIntermediateSize: 0, ropeTheta: 10000, slidingWindow: { size: 128, layers: [false, true, true, true, false, true, true, true] } });
    expect(config.nopeLayers).toBeUndefined();
    expect(unrunnableReason(config)).toBeNull();
    const types = { num_hidden_layers: 4, sliding_window: 64, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'] };
    expect(family.resolveConfig({ model_type: 'granitemoe_swa', ...types }).config.slidingWindow).toEqual({ size: 64, layers: [true, false, true, false] });
    // the rotating layers' one base replaces rope_theta; 0 marks a layer without RoPE
    const nope = family.resolveConfig({ model_type: 'granitemoe_swa', ...types, rope_theta: 10000, layer_rope_theta: [500000, 0, 500000, 0] }).config;
    expect(nope).toMatchObject({ ropeTheta: 500000, nopeLayers: [false, true, false, true] });
    expect(nope.layerRopeThetas).toBeUndefined();
    expect(unrunnableReason(nope)).toBeNull();
    const mixed = family.resolveConfig({ model_type: 'granitemoe_swa', ...types, layer_rope_theta: [10000, 0, 10000, 500000] }).config;
    expect(mixed.layerRopeThetas).toEqual([10000, 0, 10000, 500000]);
    // each layer rotates with its own base (runtime/rope.ts)
    expect(unrunnableReason(mixed)).toBeNull();
    expect(() => family.resolveConfig({ model_type: 'granitemoe_swa', ...types, layer_rope_theta: [10000] })).toThrow(/layer_rope_theta': 1 entries for num_hidden_layers 4/);
    const { ckpt } = await openFixture('granitemoe_swa', { seed: 1, sharedExpertIntermediateSize: 8 });
    const bases = await openFixture('granitemoe_swa', { seed: 1, configKeys: { layer_rope_theta: [10000, 0, 500000] } });
    try {
      expect(ckpt.config.slidingWindow).toEqual({ size: 5, layers: [false, true, true] });
      expect(ckpt.layout.layers[2].attention.sinks).toBe('model.layers.2.self_attn.sinks');
      expect(ckpt.layout.layers[2].moe?.shared).toEqual({ gateUp: 'model.layers.2.shared_mlp.input_linear.weight', down: 'model.layers.2.shared_mlp.output_linear.weight' });
      expect(describeCheckpoint(ckpt).runnable).toBe(true);
      expect(describeCheckpoint(bases.ckpt)).toMatchObject({ runnable: true, layerRopeThetas: [10000, 0, 500000], nopeLayers: [1], attentionSinks: true });
    } finally {
      await Promise.all([ckpt.close(), bases.ckpt.close()]);
    }
  });

  it('MiMo-V2-Flash: sliding layers with twice the kv heads and sinks, value heads narrower than keys, a RoPE base per layer type, dense layer 0, sigmoid routing without shared experts', async () => {
    const family = familyByName('mimo_v2_flash');
    // transformers' MiMoV2FlashConfig defaults: layer 0 and every sixth full, the rest sliding over 128
    const { config, moeLayers } = family.resolveConfig({ model_type: 'mimo_v2_flash', num_hidden_layers: 7 });
    const sliding = [false, true, true, true, true, false, true];
    expect(config).toMatchObject({
      hiddenSize: 4096, numHeads: 64, numKvHeads: 4, headDim: 192, valueHeadDim: 128, attentionValueScale: 0.707, vocabSize: 152576, rmsNormEps: 1e-5, tieWordEmbeddings: false, qkNorm: 'none', qkvBias: false,
      bosTokenId: 1, eosTokenId: null,
      numExperts: 256, topK: 8, expertIntermediateSize: 2048, denseIntermediateSize: 16384, sharedExpertIntermediateSize: 0,
      topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, normTopkProb: true, routedScalingFactor: 1,
      slidingWindow: { size: 128, layers: sliding },
      layerKvHeads: sliding.map((s) => (s ? 8 : 4)),
      attentionSinks: true,
      sinkLayers: sliding,
      // int(192 × 0.334) of each head; the full layers' base 5e6, the sliding ones' 1e4
      rotaryDim: 64,
      ropeTheta: 5_000_000,
      layerRopeThetas: sliding.map((s) => (s ? 10_000 : 5_000_000)),
    });
    expect(moeLayers).toEqual([false, true, true, true, true, true, true]);
    expect(ropeSpecOf(config, 1).theta).toBe(10_000);
    expect(ropeSpecOf(config, 5).theta).toBe(5_000_000);
    // a top-level rope_theta is not read (transformers keeps its per-type defaults); null routed_scaling_factor and attention_value_scale mean 1
    const written = family.resolveConfig({
      model_type: 'mimo_v2_flash', num_hidden_layers: 3, rope_theta: 7, routed_scaling_factor: null, attention_value_scale: null, v_head_dim: 192, num_local_experts: 16,
      layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], mlp_layer_types: ['sparse', 'dense', 'sparse'],
      rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 100, partial_rotary_factor: 0.5 }, sliding_attention: { rope_type: 'default', rope_theta: 100, partial_rotary_factor: 0.5 } },
    });
    expect(written.config).toMatchObject({ routedScalingFactor: 1, numExperts: 16, rotaryDim: 96, ropeTheta: 100, layerKvHeads: [8, 4, 8], sinkLayers: [true, false, true] });
    expect(written.config.attentionValueScale).toBeUndefined();
    expect(written.config.valueHeadDim).toBeUndefined();
    expect(written.config.layerRopeThetas).toBeUndefined();
    expect(written.moeLayers).toEqual([true, false, true]);
    // every layer full: one kv-head count, no sinks
    const full = family.resolveConfig({ model_type: 'mimo_v2_flash', num_hidden_layers: 2, layer_types: ['full_attention', 'full_attention'] }).config;
    expect(full.layerKvHeads).toBeUndefined();
    expect(full.attentionSinks).toBeUndefined();
    expect(() => family.resolveConfig({ model_type: 'mimo_v2_flash', rope_parameters: { full_attention: { rope_type: 'yarn', rope_theta: 1, factor: 2 }, sliding_attention: { rope_theta: 1 } } })).toThrow(/rope_type "yarn" is not implemented/);
    expect(() => family.resolveConfig({ model_type: 'mimo_v2_flash', rope_parameters: { full_attention: { rope_theta: 1 } } })).toThrow(/no block for the layer type "sliding_attention"/);
    expect(() => family.resolveConfig({ model_type: 'mimo_v2_flash', rope_parameters: { full_attention: { rope_theta: 1, partial_rotary_factor: 0.5 }, sliding_attention: { rope_theta: 1 } } })).toThrow(/rotate 96 and 64 values/);
    expect(() => family.resolveConfig({ model_type: 'mimo_v2_flash', num_attention_heads: 12 })).toThrow(/not a multiple of a layer's 8 kv heads/);
    expect(() => family.resolveConfig({ model_type: 'mimo_v2_flash', num_hidden_layers: 2, mlp_layer_types: ['dense'] })).toThrow(/'mlp_layer_types'/);
    const { ckpt } = await openFixture('mimo_v2_flash', { seed: 1 });
    const fused = await openFixture('mimo_v2_flash', { seed: 1, fusedExperts: true });
    try {
      // the releases' sink name, and transformers' own
      expect(ckpt.layout.layers[1].attention.sinks).toBe('model.layers.1.self_attn.attention_sink_bias');
      expect(fused.ckpt.layout.layers[1].attention.sinks).toBe('model.layers.1.self_attn.sinks');
      expect(ckpt.layout.layers[0].attention.sinks).toBeUndefined();
      expect(describeCheckpoint(ckpt)).toMatchObject({ layerKvHeads: [2, 4, 4], valueHeadDim: 8, attentionValueScale: 0.6, sinkLayers: [1, 2], rotaryDim: 4, layerRopeThetas: [5_000_000, 10_000, 10_000] });
    } finally {
      await Promise.all([ckpt.close(), fused.ckpt.close()]);
    }
  });

  it('AFMoE: sandwich norms, gated attention, windows with RoPE only in the sliding layers, sigmoid routing with route_scale, muP; routing transformers ignores is refused', async () => {
    const family = familyByName('afmoe');
    // transformers' AfmoeConfig defaults
    const { config, moeLayers } = family.resolveConfig({ model_type: 'afmoe', num_hidden_layers: 8 });
    expect(config).toMatchObject({
      hiddenSize: 2048, numHeads: 16, numKvHeads: 16, headDim: 128, vocabSize: 200192, ropeTheta: 10000, rmsNormEps: 1e-5, tieWordEmbeddings: false, qkNorm: 'per-head', qkvBias: false,
      numExperts: 64, topK: 6, expertIntermediateSize: 1408, denseIntermediateSize: 6144, sharedExpertIntermediateSize: 2 * 1408, sharedExpertGated: false,
      topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, normTopkProb: true, routedScalingFactor: 1, attentionOutputGate: true,
      norms: { attentionInput: true, attentionOutput: true, mlpInput: true, mlpOutput: true },
      // every fourth layer global (3, 7), the others sliding; the global ones apply no RoPE
      slidingWindow: { size: 1024, layers: [true, true, true, false, true, true, true, false] },
      nopeLayers: [false, false, false, true, false, false, false, true],
    });
    expect(config.multipliers).toBeUndefined();
    expect(moeLayers).toEqual([false, true, true, true, true, true, true, true]);
    // muP: embeddings × √hidden_size; no other multiplier
    expect(family.resolveConfig({ model_type: 'afmoe', mup_enabled: true, hidden_size: 64 }).config.multipliers).toEqual({ embedding: 8 });
    // listed layer_types rule; a global layer applies no RoPE whatever the window
    const listed = family.resolveConfig({ model_type: 'afmoe', num_hidden_layers: 3, sliding_window: 16, layer_types: ['full_attention', 'sliding_attention', 'full_attention'], num_dense_layers: 2 });
    expect(listed.config).toMatchObject({ slidingWindow: { size: 16, layers: [false, true, false] }, nopeLayers: [true, false, true] });
    expect(listed.moeLayers).toEqual([false, false, true]);
    const global = family.resolveConfig({ model_type: 'afmoe', num_hidden_layers: 2, sliding_window: null, layer_types: ['full_attention', 'full_attention'] }).config;
    expect(global.slidingWindow).toBeUndefined();
    expect(global.nopeLayers).toEqual([true, true]);
    // the releases' routing keys, as they write them, are what transformers computes anyway
    expect(family.resolveConfig({ model_type: 'afmoe', score_func: 'sigmoid', route_norm: true, n_group: 1, topk_group: 1, route_scale: 2.826 }).config.routedScalingFactor).toBe(2.826);
    expect(() => family.resolveConfig({ model_type: 'afmoe', route_norm: false })).toThrow(/'route_norm': transformers' AfmoeForCausalLM always routes with the chosen scores renormalised/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', score_func: 'softmax' })).toThrow(/score_func/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', n_group: 8, topk_group: 4 })).toThrow(/'topk_group'.*in no groups/);
    // transformers fails on these
    expect(() => family.resolveConfig({ model_type: 'afmoe', sliding_window: null })).toThrow(/sliding_window to null while layers are sliding/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', head_dim: null })).toThrow(/'head_dim'/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', num_dense_layers: null })).toThrow(/'num_dense_layers'/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', global_attn_every_n_layers: null })).toThrow(/list layer_types/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', num_hidden_layers: 2, layer_types: ['sliding_attention'] })).toThrow(/'layer_types'/);
    expect(() => family.resolveConfig({ model_type: 'afmoe', attention_bias: true })).toThrow(/attention_bias/);
    for (const fusedExperts of [false, true]) {
      const { ckpt } = await openFixture('afmoe', { seed: 1, fusedExperts });
      try {
        const [dense, moe] = [ckpt.layout.layers[0], ckpt.layout.layers[1]];
        expect(moe.norms).toEqual({
          attentionInput: 'model.layers.1.input_layernorm.weight',
          attentionOutput: 'model.layers.1.post_attention_layernorm.weight',
          mlpInput: 'model.layers.1.pre_mlp_layernorm.weight',
          mlpOutput: 'model.layers.1.post_mlp_layernorm.weight',
        });
        expect(dense.kind).toBe('dense');
        expect(dense.norms.mlpOutput).toBe('model.layers.0.post_mlp_layernorm.weight');
        expect(moe.attention).toMatchObject({ outputGate: 'model.layers.1.self_attn.gate_proj.weight', qNorm: 'model.layers.1.self_attn.q_norm.weight' });
        expect(moe.moe).toMatchObject({ router: 'model.layers.1.mlp.router.gate.weight', routerBias: 'model.layers.1.mlp.expert_bias', shared: { down: 'model.layers.1.mlp.shared_experts.down_proj.weight' } });
        expect(moe.moe!.fused?.gateUp).toBe(fusedExperts ? 'model.layers.1.mlp.experts.gate_up_proj' : undefined);
        expect(describeCheckpoint(ckpt)).toMatchObject({ runnable: true, attentionOutputGate: true, multipliers: { embedding: Math.sqrt(32) }, nopeLayers: [1], slidingWindow: { size: 5, layers: [0, 2] } });
        expect(describeCheckpoint(ckpt).validation.unusedTensors).toEqual([]);
      } finally {
        await ckpt.close();
      }
    }
  });

  it('Cohere2-MoE: LayerNorms unless rms_norm_eps, the parallel block, RoPE in the sliding and forced dense layers, top-k softmax or sigmoid routing, shared experts averaged or added, logit_scale', async () => {
    const family = familyByName('cohere2_moe');
    // transformers' Cohere2MoeConfig defaults: every fourth layer full (3, 7), all MoE, LayerNorms (rms_norm_eps null) with layer_norm_eps
    const { config, moeLayers } = family.resolveConfig({ model_type: 'cohere2_moe', num_hidden_layers: 8 });
    expect(config).toMatchObject({
      hiddenSize: 8192, numHeads: 64, numKvHeads: 64, headDim: 128, vocabSize: 256000, ropeTheta: 10000, rmsNormEps: 1e-5, tieWordEmbeddings: true, qkNorm: 'none', qkvBias: false,
      numExperts: 8, topK: 2, expertIntermediateSize: 22528, denseIntermediateSize: 22528, sharedExpertIntermediateSize: 0, sharedExpertGated: false,
      routing: 'topk-softmax', normTopkProb: false, routedScalingFactor: 1, ropeInterleave: true, parallelBlock: true,
      norms: { attentionInput: true, attentionOutput: false, mlpInput: false, mlpOutput: false },
      normKind: { kind: 'layer', bias: false },
      multipliers: { logits: 16 },
      slidingWindow: { size: 4096, layers: [true, true, true, false, true, true, true, false] },
      nopeLayers: [false, false, false, true, false, false, false, true],
      padTokenId: 0, bosTokenId: 5, eosTokenId: 255001,
    });
    expect(config.oBias).toBeUndefined();
    expect(config.sharedExpertCombination).toBeUndefined();
    expect(moeLayers).toEqual(Array(8).fill(true));
    // first_k_dense_replace: the prefix full (prefix_dense_sliding_window_pattern 1) and dense, roping all the same
    // (force_rope), the rest counted again from 1; the dense layers prefix_dense_intermediate_size wide
    const prefixed = family.resolveConfig({ model_type: 'cohere2_moe', num_hidden_layers: 6, first_k_dense_replace: 2, prefix_dense_intermediate_size: 100, num_shared_experts: 2, intermediate_size: 30 });
    expect(prefixed.moeLayers).toEqual([false, false, true, true, true, true]);
    expect(prefixed.config).toMatchObject({
      slidingWindow: { size: 4096, layers: [false, false, true, true, true, false] },
      nopeLayers: [false, false, false, false, false, true],
      denseIntermediateSize: 100, expertIntermediateSize: 30, sharedExpertIntermediateSize: 60, sharedExpertCombination: 'average',
    });
    // another prefix pattern: no force_rope, so the prefix's full layers apply none
    expect(family.resolveConfig({ model_type: 'cohere2_moe', num_hidden_layers: 8, first_k_dense_replace: 3, prefix_dense_sliding_window_pattern: 2 }).config).toMatchObject({
      slidingWindow: { size: 4096, layers: [true, false, true, true, true, true, false, true] },
      nopeLayers: [false, true, false, false, false, false, true, false],
    });
    // RMSNorms where rms_norm_eps is set, with it; sigmoid routing renormalised where norm_topk_prob; shared experts added; biases on all four projections
    const rms = family.resolveConfig({ model_type: 'cohere2_moe', rms_norm_eps: 1e-6, expert_selection_fn: 'sigmoid', num_shared_experts: 1, shared_expert_combination_strategy: 'sum', attention_bias: true, logit_scale: 0.5 }).config;
    expect(rms).toMatchObject({ normKind: { kind: 'rms' }, rmsNormEps: 1e-6, routing: 'topk-sigmoid', normTopkProb: true, qkvBias: true, oBias: true, multipliers: { logits: 2 } });
    expect(rms.sharedExpertCombination).toBeUndefined();
    expect(family.resolveConfig({ model_type: 'cohere2_moe', expert_selection_fn: 'sigmoid', norm_topk_prob: false }).config.normTopkProb).toBe(false);
    // listed layer_types and mlp_layer_types rule
    const listed = family.resolveConfig({ model_type: 'cohere2_moe', num_hidden_layers: 3, layer_types: ['full_attention', 'sliding_attention', 'full_attention'], mlp_layer_types: ['sparse', 'dense', 'sparse'], sliding_window: 16 });
    expect(listed.moeLayers).toEqual([true, false, true]);
    expect(listed.config).toMatchObject({ slidingWindow: { size: 16, layers: [false, true, false] }, nopeLayers: [true, false, true] });
    // transformers fails on these
    expect(() => family.resolveConfig({ model_type: 'cohere2_moe', expert_selection_fn: 'relu' })).toThrow(/expert_selection_fn/);
    expect(() => family.resolveConfig({ model_type: 'cohere2_moe', shared_expert_combination_strategy: 'max' })).toThrow(/shared_expert_combination_strategy/);
    expect(() => family.resolveConfig({ model_type: 'cohere2_moe', sliding_window: null })).toThrow(/sliding_window to null while layers are sliding/);
    expect(() => family.resolveConfig({ model_type: 'cohere2_moe', num_hidden_layers: 2, layer_types: ['sliding_attention'] })).toThrow(/'layer_types'/);
    expect(() => family.resolveConfig({ model_type: 'cohere2_moe', num_hidden_layers: 2, mlp_layer_types: ['sparse'] })).toThrow(/'mlp_layer_types'/);
    expect(() => family.resolveConfig({ model_type: 'cohere2_moe', head_dim: null })).toThrow(/'head_dim'/);
    for (const fusedExperts of [false, true]) {
      const { ckpt } = await openFixture('cohere2_moe', { seed: 1, fusedExperts, attentionBias: fusedExperts });
      try {
        const [dense, moe] = [ckpt.layout.layers[0], ckpt.layout.layers[1]];
        expect(moe.norms).toEqual({ attentionInput: 'model.layers.1.input_layernorm.weight' });
        expect(moe.normBiases).toBeUndefined();
        expect(dense.kind).toBe('dense');
        expect(dense.dense!.gate).toBe('model.layers.0.mlp.gate_proj.weight');
        expect(moe.attention.oBias).toBe(fusedExperts ? 'model.layers.1.self_attn.o_proj.bias' : undefined);
        expect(moe.moe).toMatchObject({ router: 'model.layers.1.mlp.gate.weight', shared: { down: 'model.layers.1.mlp.shared_experts.down_proj.weight' } });
        expect(moe.moe!.fused?.gateUp).toBe(fusedExperts ? 'model.layers.1.mlp.experts.gate_up_proj' : undefined);
        expect(describeCheckpoint(ckpt)).toMatchObject({
          runnable: true, parallelBlock: true, normKind: { kind: 'layer', bias: false }, sharedExpertCombination: 'average', routing: 'topk-softmax',
          multipliers: { logits: 4 }, nopeLayers: [2], slidingWindow: { size: 5, layers: [1, 3] }, moeLayers: [1, 2, 3], denseLayers: [0],
        });
        expect(describeCheckpoint(ckpt).validation.unusedTensors).toEqual([]);
      } finally {
        await ckpt.close();
      }
    }
  });

  it('PhiMoE: LayerNorms with biases, q/k/v/o and lm_head biases, sparsemixer routing, LongRoPE as transformers runs it', async () => {
    const family = familyByName('phimoe');
    // transformers' PhimoeConfig defaults
    const { config, moeLayers } = family.resolveConfig({ model_type: 'phimoe', num_hidden_layers: 2 });
    expect(config).toMatchObject({
      hiddenSize: 4096, numHeads: 32, numKvHeads: 8, headDim: 128, vocabSize: 32064, ropeTheta: 1e6, rmsNormEps: 1e-5, tieWordEmbeddings: false, qkNorm: 'none', qkvBias: false,
      numExperts: 16, topK: 2, expertIntermediateSize: 6400, sharedExpertIntermediateSize: 0, routing: 'sparsemixer', routerJitterEps: 0.01, normTopkProb: false,
      normKind: { kind: 'layer', bias: true }, bosTokenId: 1, eosTokenId: 2, padTokenId: null,
    });
    expect(config.oBias).toBeUndefined();
    expect(config.lmHeadBias).toBeUndefined();
    expect(config.longRope).toBeUndefined();
    expect(config.slidingWindow).toBeUndefined();
    expect(moeLayers).toEqual([true, true]);
    // Phi-3.5-MoE's: biases everywhere, a window, LongRoPE with equal mscales
    const rope = { rope_type: 'longrope', short_factor: [1, 1.5], long_factor: [2, 3], short_mscale: 1.25, long_mscale: 1.25, original_max_position_embeddings: 4096 };
    const released = family.resolveConfig({ model_type: 'phimoe', hidden_size: 64, num_attention_heads: 16, attention_bias: true, lm_head_bias: true, sliding_window: 131072, rope_scaling: rope }).config;
    expect(released).toMatchObject({ qkvBias: true, oBias: true, lmHeadBias: true, slidingWindow: { size: 131072 }, longRope: { shortFactor: [1, 1.5], mscale: 1.25, longMscale: 1.25 } });
    expect(unrunnableReason(released)).toBeNull();
    // mscales that differ switch with a batch's longest position in transformers: not run
    const switching = family.resolveConfig({ model_type: 'phimoe', rope_scaling: { ...rope, long_mscale: 1.5 } }).config;
    expect(unrunnableReason(switching)).toMatch(/rope_scaling's long_mscale \(1.5\) differs from its short_mscale \(1.25\), and transformers switches between them with a batch's longest position/);
    expect(() => ropeSpecOf(switching)).toThrow(/long_mscale/);
    // transformers fails on (or ignores) these
    expect(() => family.resolveConfig({ model_type: 'phimoe', num_experts_per_tok: 3 })).toThrow(/num_experts_per_tok must be 2/);
    expect(() => family.resolveConfig({ model_type: 'phimoe', rope_scaling: { ...rope, short_mscale: undefined } })).toThrow(/short_mscale and long_mscale/);
    expect(() => family.resolveConfig({ model_type: 'phimoe', rope_scaling: { rope_type: 'yarn', factor: 2, original_max_position_embeddings: 16 } })).toThrow(/default RoPE or "longrope"/);
    for (const fusedExperts of [false, true]) {
      const { ckpt } = await openFixture('phimoe', { seed: 1, fusedExperts });
      try {
        const layer = ckpt.layout.layers[1];
        expect(layer.norms).toEqual({ attentionInput: 'model.layers.1.input_layernorm.weight', mlpInput: 'model.layers.1.post_attention_layernorm.weight' });
        expect(layer.normBiases).toEqual({ attentionInput: 'model.layers.1.input_layernorm.bias', mlpInput: 'model.layers.1.post_attention_layernorm.bias' });
        expect(ckpt.layout).toMatchObject({ finalNormBias: 'model.norm.bias', lmHeadBias: 'lm_head.bias' });
        expect(layer.attention.oBias).toBe('model.layers.1.self_attn.o_proj.bias');
        expect(layer.moe!.router).toBe(fusedExperts ? 'model.layers.1.mlp.router.weight' : 'model.layers.1.block_sparse_moe.gate.weight');
        expect(describeCheckpoint(ckpt)).toMatchObject({ runnable: true, normKind: { kind: 'layer', bias: true }, routing: 'sparsemixer', routerJitterEps: 0.01, lmHeadBias: true });
        expect(describeCheckpoint(ckpt).validation.unusedTensors).toEqual([]);
      } finally {
        await ckpt.close();
      }
    }
  });

  it('Llama 4 (text): RoPE and NoPE layers from no_rope_layers (1: RoPE), chunks and a weightless q/k norm on the former, scaled queries on the latter, sigmoid routing on the experts’ inputs', async () => {
    const family = familyByName('llama4_text');
    const L = 48;
    const ropes = Array.from({ length: L }, (_, l) => (l + 1) % 4 !== 0);
    const nope = ropes.map((r) => !r);
    // transformers' Llama4TextConfig() defaults: Scout's shape, every fourth layer NoPE, every layer MoE
    const { config, moeLayers } = family.resolveConfig({ model_type: 'llama4_text' });
    expect(config).toMatchObject({
      attention: 'standard', hiddenSize: 5120, numLayers: L, numHeads: 40, numKvHeads: 8, headDim: 128, vocabSize: 202048, rmsNormEps: 1e-5, ropeTheta: 500000, tieWordEmbeddings: false,
      numExperts: 16, topK: 1, expertIntermediateSize: 8192, denseIntermediateSize: 16384, sharedExpertIntermediateSize: 8192, sharedExpertGated: false,
      normTopkProb: false, routedScalingFactor: 1, routing: 'topk-sigmoid', routingWeightsScaleInputs: true, qkNorm: 'none', qkvBias: false, ropeInterleave: true,
      nopeLayers: nope, weightlessQkNormLayers: ropes, attentionChunk: { size: 8192, layers: ropes },
      llama4QueryScale: { beta: 0.1, originalMaxPositions: 8192, positionOffset: 1, layers: nope },
      padTokenId: null, bosTokenId: 1, eosTokenId: 2,
    });
    expect(config.slidingWindow).toBeUndefined();
    expect(moeLayers.every(Boolean)).toBe(true);
    expect(unrunnableReason(config)).toBeNull();
    // Scout's Llama 3 RoPE scaling has low_freq_factor = high_freq_factor (no band to blend), which transformers runs
    const scout = family.resolveConfig({ model_type: 'llama4_text', rope_scaling: { rope_type: 'llama3', factor: 16.0, low_freq_factor: 1.0, high_freq_factor: 1.0, original_max_position_embeddings: 8192 } }).config;
    expect(unrunnableReason(scout)).toBeNull();
    expect(ropeSpecOf(scout).llama3).toEqual({ factor: 16, lowFreqFactor: 1, highFreqFactor: 1, originalMaxPositions: 8192 });
    // Maverick's: MoE every other layer (from layer 1) beside dense MLPs, no q/k norm
    const maverick = family.resolveConfig({ model_type: 'llama4_text', num_hidden_layers: 6, interleave_moe_layer_step: 2, num_local_experts: 128, use_qk_norm: false });
    expect(maverick.moeLayers).toEqual([false, true, false, true, false, true]);
    expect(maverick.config.weightlessQkNormLayers).toBeUndefined();
    expect(family.resolveConfig({ model_type: 'llama4_text', num_hidden_layers: 6, interleave_moe_layer_step: 2, moe_layers: [0, 5] }).moeLayers).toEqual([true, false, false, false, false, true]);
    // no_rope_layers' 1 is a RoPE layer; an empty list is transformers' default too; layer_types decides the chunks
    const four = { model_type: 'llama4_text', num_hidden_layers: 4 };
    expect(family.resolveConfig({ ...four, no_rope_layers: [0, 1, 1, 0] }).config).toMatchObject({ nopeLayers: [true, false, false, true], attentionChunk: { size: 8192, layers: [false, true, true, false] } });
    expect(family.resolveConfig({ ...four, no_rope_layers: [] }).config.nopeLayers).toEqual([false, false, false, true]);
    expect(family.resolveConfig({ ...four, no_rope_layer_interval: 2 }).config.nopeLayers).toEqual([false, true, false, true]);
    const allRope = family.resolveConfig({ ...four, no_rope_layers: [1, 1, 1, 1], attention_chunk_size: 16 }).config;
    expect(allRope).toMatchObject({ attentionChunk: { size: 16 }, weightlessQkNormLayers: [true, true, true, true] });
    expect(allRope.attentionChunk?.layers).toBeUndefined();
    expect(allRope.nopeLayers).toBeUndefined();
    expect(allRope.llama4QueryScale).toBeUndefined();
    expect(family.resolveConfig({ ...four, layer_types: ['chunked_attention', 'full_attention', 'full_attention', 'full_attention'] }).config.attentionChunk).toEqual({ size: 8192, layers: [true, false, false, false] });
    expect(family.resolveConfig({ ...four, attn_temperature_tuning: false }).config.llama4QueryScale).toBeUndefined();
    // what transformers cannot run or refuses
    expect(() => family.resolveConfig({ ...four, no_rope_layers: [1, 1, 0] })).toThrow(/'no_rope_layers': 3 entries for num_hidden_layers 4/);
    expect(() => family.resolveConfig({ ...four, layer_types: ['sliding_attention', 'full_attention', 'full_attention', 'full_attention'] })).toThrow(/'layer_types': must list "chunked_attention" or "full_attention"/);
    expect(() => family.resolveConfig({ ...four, attention_chunk_size: null })).toThrow(/'attention_chunk_size': null, which transformers' Llama 4 fails on/);
    expect(() => family.resolveConfig({ ...four, attention_bias: true })).toThrow(CheckpointError);
    expect(() => family.resolveConfig({ ...four, floor_scale: 0 })).toThrow(/floor_scale/);
    // the layout: feed_forward's router, shared expert and dense MLPs, the experts fused transposed (gate columns first)
    const { ckpt } = await openFixture('llama4_text', { seed: 1 });
    try {
      const moe = ckpt.layout.layers[1].moe!;
      expect(moe.router).toBe('model.layers.1.feed_forward.router.weight');
      expect(moe.fused).toEqual({ gateUp: 'model.layers.1.feed_forward.experts.gate_up_proj', down: 'model.layers.1.feed_forward.experts.down_proj', form: 'transposed' });
      expect(moe.shared).toEqual({ gate: 'model.layers.1.feed_forward.shared_expert.gate_proj.weight', up: 'model.layers.1.feed_forward.shared_expert.up_proj.weight', down: 'model.layers.1.feed_forward.shared_expert.down_proj.weight' });
      expect(ckpt.layout.layers[0].dense?.gate).toBe('model.layers.0.feed_forward.gate_proj.weight');
      expect(ckpt.tensor(moe.fused!.gateUp)?.shape).toEqual([8, 32, 32]);
      expect(describeCheckpoint(ckpt)).toMatchObject({ moeLayers: [1, 3], denseLayers: [0, 2], nopeLayers: [3], attentionChunk: { size: 4, layers: [0, 1, 2] }, weightlessQkNormLayers: [0, 1, 2], llama4QueryScale: { beta: 0.5, originalMaxPositions: 3, positionOffset: 1, layers: [3] }, routing: 'topk-sigmoid', routingWeightsScaleInputs: true });
      // expert e's gate row i is column i of its [H, 2I] slab, its up row i column I + i
      const slab = await ckpt.readRowsF32(moe.fused!.gateUp, 2 * 32, 3 * 32);
      const [gate, up] = [await ckpt.readExpert(1, 2, 'gate'), await ckpt.readExpert(1, 2, 'up')];
      expect([gate[5 * 32 + 7], up[5 * 32 + 7]]).toEqual([slab[7 * 32 + 5], slab[7 * 32 + 16 + 5]]);
    } finally {
      await ckpt.close();
    }
  });

  it('GLM-4.5 MoE: biases, q/k norm, a partial rotary width, V3 routing, dense layers before first_k_dense_replace', () => {
    const family = familyByName('glm4_moe');
    // GLM-4.5-Air's shape
    const air = family.resolveConfig({
      model_type: 'glm4_moe', attention_bias: true, head_dim: 128, hidden_size: 4096, num_attention_heads: 96, num_key_value_heads: 8, partial_rotary_factor: 0.5,
      intermediate_size: 10944, moe_intermediate_size: 1408, n_routed_experts: 128, n_shared_experts: 1, num_experts_per_tok: 8, first_k_dense_replace: 1,
      num_hidden_layers: 46, n_group: 1, topk_group: 1, routed_scaling_factor: 1.0, norm_topk_prob: true, use_qk_norm: false, rope_theta: 1e6, eos_token_id: [151329, 151336, 151338],
    });
    expect(air.config).toMatchObject({
      headDim: 128, rotaryDim: 64, qkvBias: true, qkNorm: 'none', numExperts: 128, topK: 8, expertIntermediateSize: 1408, sharedExpertIntermediateSize: 1408,
      sharedExpertGated: false, denseIntermediateSize: 10944, topkMethod: 'noaux_tc', nGroup: 1, topkGroup: 1, normTopkProb: true, ropeTheta: 1e6, eosTokenIds: [151329, 151336, 151338],
    });
    expect(air.moeLayers.indexOf(true)).toBe(1);
    expect(air.moeLayers.filter(Boolean).length).toBe(45);
    // transformers' defaults: partial_rotary_factor 0.5 when absent, q/k norm per head when use_qk_norm
    expect(family.resolveConfig({ model_type: 'glm4_moe', head_dim: 32, use_qk_norm: true }).config).toMatchObject({ rotaryDim: 16, qkNorm: 'per-head' });
    // transformers 5 saves the family default at the top level beside rope_parameters' own value, which is the one it uses
    const saved = family.resolveConfig({ model_type: 'glm4_moe', head_dim: 32, partial_rotary_factor: 0.5, rope_parameters: { rope_type: 'default', rope_theta: 7, partial_rotary_factor: 0.75 } });
    expect(saved.config).toMatchObject({ rotaryDim: 24, ropeTheta: 7 });
    expect(() => family.resolveConfig({ model_type: 'glm4_moe', partial_rotary_factor: 0 })).toThrow(/partial_rotary_factor/);
    expect(() => family.resolveConfig({ model_type: 'glm4_moe', rope_parameters: { rope_type: 'default', partial_rotary_factor: '1/2' } })).toThrow(/partial_rotary_factor.*must be a number in \(0, 1\]/);
  });
});

describe('which layers are MoE', () => {
  it('Qwen2-MoE decoder_sparse_step 2 with mlp_only_layers', async () => {
    const { fixture, ckpt } = await openFixture('qwen2_moe', { numLayers: 6, decoderSparseStep: 2, mlpOnlyLayers: [3] });
    // (l+1) % 2 == 0 → 1, 3, 5; minus mlp_only 3 → 1, 5
    expect(describeCheckpoint(ckpt).moeLayers).toEqual([1, 5]);
    expect(describeCheckpoint(ckpt).denseLayers).toEqual([0, 2, 3, 4]);
    expect(parameterCounts(ckpt).total).toBe(independentCounts(fixture.config).total);
    await ckpt.close();
  });

  it('DeepSeek first_k_dense_replace 2 and moe_layer_freq 2', async () => {
    const { fixture, ckpt } = await openFixture('deepseek', { numLayers: 7, firstKDenseReplace: 2, moeLayerFreq: 2 });
    expect(describeCheckpoint(ckpt).moeLayers).toEqual([2, 4, 6]);
    const { moeLayers: _m, denseLayers: _d, numExperts: _e, topK: _k, expertWidth: _w, ...truth } = independentCounts(fixture.config);
    expect(parameterCounts(ckpt)).toEqual({ ...truth, other: 0 });
    await ckpt.close();
  });

  it('Qwen3-MoE with a dense layer via mlp_only_layers', async () => {
    const { ckpt } = await openFixture('qwen3_moe', { numLayers: 3, mlpOnlyLayers: [0] });
    expect(ckpt.layout.layers[0].dense).toEqual({
      gate: 'model.layers.0.mlp.gate_proj.weight',
      up: 'model.layers.0.mlp.up_proj.weight',
      down: 'model.layers.0.mlp.down_proj.weight',
    });
    await ckpt.close();
  });
});

describe('family specifics in the layout', () => {
  it('Qwen2-MoE: biases, shared expert and its gate', async () => {
    const { ckpt } = await openFixture('qwen2_moe');
    const l0 = ckpt.layout.layers[0];
    expect(l0.attention.qBias).toBe('model.layers.0.self_attn.q_proj.bias');
    expect(l0.moe?.shared?.down).toBe('model.layers.0.mlp.shared_expert.down_proj.weight');
    expect(l0.moe?.sharedGate).toBe('model.layers.0.mlp.shared_expert_gate.weight');
    expect(ckpt.tensor(l0.moe!.sharedGate!)?.shape).toEqual([1, 32]);
    await ckpt.close();
  });

  it('Qwen3-MoE: head_dim from config, per-head q/k norms', async () => {
    const { ckpt } = await openFixture('qwen3_moe');
    expect(ckpt.config.headDim).toBe(12);
    expect(ckpt.config.qkNorm).toBe('per-head');
    expect(ckpt.tensor(ckpt.layout.layers[1].attention.qNorm!)?.shape).toEqual([12]);
    expect(ckpt.tensor(ckpt.layout.layers[1].attention.q)?.shape).toEqual([48, 32]);
    await ckpt.close();
  });

  it('Mixtral: the fused form takes the renamed router', async () => {
    const { ckpt } = await openFixture('mixtral', { fusedExperts: true });
    expect(ckpt.layout.layers[1].moe?.router).toBe('model.layers.1.mlp.gate.weight');
    await ckpt.close();
    const plain = await openFixture('mixtral');
    expect(plain.ckpt.layout.layers[1].moe?.router).toBe('model.layers.1.block_sparse_moe.gate.weight');
    await plain.ckpt.close();
  });

  it('DeepSeek: ungated shared experts of n_shared_experts × expert width', async () => {
    const { ckpt } = await openFixture('deepseek', { numSharedExperts: 3 });
    expect(ckpt.config.sharedExpertIntermediateSize).toBe(48);
    expect(ckpt.config.sharedExpertGated).toBe(false);
    expect(ckpt.layout.layers[1].moe?.sharedGate).toBeUndefined();
    expect(ckpt.tensor((ckpt.layout.layers[1].moe!.shared as MlpNames).gate)?.shape).toEqual([48, 32]);
    await ckpt.close();
  });

  it('DeepSeek-V2: MLA declared, layout complete, with and without q-LoRA', async () => {
    for (const qLoraRank of [null, 6]) {
      const { fixture, ckpt } = await openFixture('deepseek_v2', { qLoraRank, routedScalingFactor: 2.5 });
      expect(ckpt.config.attention).toBe('mla');
      expect(ckpt.config.mla).toEqual({ qLoraRank, kvLoraRank: 8, qkNopeHeadDim: 8, qkRopeHeadDim: 4, vHeadDim: 8, ropeInterleave: true });
      expect(ckpt.config.routedScalingFactor).toBe(2.5);
      const mla = ckpt.layout.layers[0].attention.mla!;
      expect(mla.kvB).toBe('model.layers.0.self_attn.kv_b_proj.weight');
      expect(Boolean(mla.qProj)).toBe(qLoraRank === null);
      expect(Boolean(mla.qA)).toBe(qLoraRank !== null);
      expect(describeCheckpoint(ckpt)).toMatchObject({ runnable: true, ropeScaling: 'default' });
      expect(parameterCounts(ckpt).attention).toBe(independentCounts(fixture.config).attention);
      await ckpt.close();
    }
  });
});

describe('storage variants', () => {
  it('tied embeddings: lm_head is the embedding and is not stored', async () => {
    const { fixture, ckpt } = await openFixture('olmoe', { tieWordEmbeddings: true });
    expect(ckpt.layout.lmHead).toBe('model.embed_tokens.weight');
    expect(ckpt.tensor('lm_head.weight')).toBeUndefined();
    expect(parameterCounts(ckpt).lmHead).toBe(0);
    expect(parameterCounts(ckpt).total).toBe(independentCounts(fixture.config).total);
    await ckpt.close();
  });

  it('BF16 and F16 fixtures decode to the F32 values rounded to the storage type', async () => {
    const f32 = await openFixture('qwen3_moe', { seed: 3 });
    for (const dtype of ['BF16', 'F16'] as const) {
      const narrow = await openFixture('qwen3_moe', { seed: 3, dtype });
      const fusedNarrow = await openFixture('qwen3_moe', { seed: 3, dtype, fusedExperts: true });
      expect(describeCheckpoint(narrow.ckpt).dtypes).toEqual({ [dtype]: narrow.fixture.tensors.length });
      expect(narrow.fixture.config.torch_dtype).toBe(dtype === 'BF16' ? 'bfloat16' : 'float16');
      const exact = await f32.ckpt.readExpert(1, 4, 'down');
      const rounded = await narrow.ckpt.readExpert(1, 4, 'down');
      expect(await fusedNarrow.ckpt.readExpert(1, 4, 'down')).toEqual(rounded);
      // round to nearest: relative error at most the unit roundoff 2^-p (p = 8 significant bits for
      // bf16, 11 for f16; the values here are far above f16's subnormal range)
      const tol = dtype === 'BF16' ? 2 ** -8 : 2 ** -11;
      let changed = 0;
      for (let i = 0; i < exact.length; i++) {
        expect(Math.abs(rounded[i] - exact[i])).toBeLessThanOrEqual(Math.abs(exact[i]) * tol + 1e-7);
        if (rounded[i] !== exact[i]) changed++;
      }
      expect(changed).toBeGreaterThan(exact.length / 2);
      await narrow.ckpt.close();
      await fusedNarrow.ckpt.close();
    }
    await f32.ckpt.close();
  });

  it('the same seed gives the same bytes; another seed other values', async () => {
    const a = await openFixture('mixtral', { seed: 11 });
    const b = await openFixture('mixtral', { seed: 11 });
    const c = await openFixture('mixtral', { seed: 12 });
    const name = 'model.layers.0.self_attn.q_proj.weight';
    expect(await a.ckpt.readF32(name)).toEqual(await b.ckpt.readF32(name));
    expect(await a.ckpt.readF32(name)).not.toEqual(await c.ckpt.readF32(name));
    await Promise.all([a.ckpt.close(), b.ckpt.close(), c.ckpt.close()]);
  });
});
