/**
 * The outputs of `compress` in the real client, Hugging Face transformers (AutoModelForCausalLM,
 * through scripts/hf_reference.py), for every family transformers knows:
 *
 * - the dense output loads with nothing missing, unexpected or mismatched, and its logits on a
 *   right-padded batch equal the rfid-moe runtime's on the same directory (f32 tolerance);
 * - the factored output is refused by AutoConfig/AutoModelForCausalLM with a message that names
 *   rfid-moe (before: it loaded with its experts randomly initialised);
 * - `densify` of the factored output loads and gives the same logits.
 *
 * Source checkpoints: the Python-written fixtures under test/golden/runtime (their config.json is
 * what transformers itself accepts, floats as floats). DeepSeek (v1, model_type `deepseek`) is
 * not part of transformers (it needs trust_remote_code); the test records that transformers
 * refuses it, so the day it is supported the test says so. Mixtral in transformers ≥ 5's fused
 * on-disk expert form, DeepSeek-V2 (MLA attention; V2-Lite's shape, and V2's q-LoRA and
 * group-limited routing with YaRN), DeepSeek-V3 (sigmoid routing with its correction bias),
 * Qwen3-MoE with YaRN, GLM-4.5 (partial rotary heads), GraniteMoE (its multipliers), GraniteMoE-shared
 * (its fused shared MLP), GraniteMoE-SWA (windows, sinks, a layer without RoPE, RoPE bases per layer),
 * MiMo-V2-Flash (layers of different kv heads and sinks, value heads narrower than key heads, a
 * RoPE base per layer type) and MiniMax-M2
 * (whole-projection q/k norm, partial rotary heads, sigmoid routing), dots.llm1, GLM-4.7-Flash, Mistral 4
 * (softmax routing in groups scored by their two best, queries scaled by position) and ERNIE-4.5
 * (interleaved RoPE, softmax routing with a choice bias), Hunyuan (q/k norm after an NTK-alpha RoPE), AFMoE
 * (sandwich norms, a sigmoid gate on the attention's output, RoPE only in its windowed layers, muP), Cohere2-MoE
 * (LayerNorms, the parallel block, interleaved RoPE only in its windowed and dense layers, a scaled head), PhiMoE
 * (LayerNorms with biases, a biased head, sparsemixer routing, LongRoPE) and
 * sliding-window attention (dots.llm1's, Qwen3-MoE's and Qwen2-MoE's, windows shorter than the prompt) and
 * linear and Llama 3 RoPE scaling, gpt-oss (sinks, biased experts stored transposed) and Llama 4's
 * text model (chunked attention, a weightless q/k norm, position-scaled queries on its NoPE layers,
 * sigmoid routing that scales the experts' inputs, experts stored transposed) and Qwen3-Next (Gated
 * DeltaNet linear attention beside gated full attention, zero-centred norms) come from the
 * TypeScript fixture generator, their float keys rewritten as floats as transformers writes them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { makeTransformersCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromPadded } from '../../src/runtime/index.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { tempDir } from '../compress/helpers.js';
import { expectLoadedWithLogits, expectRefusedNamingRfidMoe, writeCompressedOutputs } from '../helpers/hf-outputs.js';
import { describeWithTransformers, pythonPath, runHfJobsInto, type HfJob, type HfJobResult } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';

const goldenDir = path.join(repoRoot, 'test', 'golden', 'runtime');
const golden = JSON.parse(readFileSync(path.join(goldenDir, 'families.json'), 'utf8')) as {
  ids: number[][];
  mask: number[][];
  cases: Array<{ name: string; family: string }>;
};

/** model_types transformers 5 does not ship (DeepSeek v1 lives in remote code only) */
const NOT_IN_TRANSFORMERS = new Set(['deepseek']);

interface Case {
  name: string;
  family: string;
  /** an existing fixture directory, or the TypeScript fixture generator's options */
  dir?: string;
  fixture?: TinyCheckpointOptions;
  /** gpt-oss: the fixture's experts rewritten in MXFP4, as gpt-oss is released (scripts/mxfp4_reference.py) */
  mxfp4?: boolean;
}

const CASES: Case[] = [
  ...golden.cases.filter((c) => !NOT_IN_TRANSFORMERS.has(c.family)).map((c) => ({ name: c.name, family: c.family, dir: path.join(goldenDir, c.name) })),
  // transformers ≥ 5's fused on-disk expert form (mlp.experts.gate_up_proj / down_proj)
  { name: 'mixtral-fused', family: 'mixtral', fixture: { seed: 4, fusedExperts: true } },
  // DeepSeek-V2's multi-head latent attention, as V2-Lite has it (one q_proj, greedy top-k) …
  { name: 'deepseek_v2', family: 'deepseek_v2', fixture: { seed: 2 } },
  // … and as V2 has it (q-LoRA, group-limited routing where top-k reaches past the best group, a
  // routed scaling factor), with YaRN whose attention factor is not 1 (mscale ≠ mscale_all_dim)
  // and its softmax mscale²
  {
    name: 'deepseek_v2-lora-groups-yarn',
    family: 'deepseek_v2',
    fixture: {
      seed: 5,
      qLoraRank: 6,
      topK: 3,
      topkMethod: { method: 'group_limited_greedy', nGroup: 4, topkGroup: 2 },
      routedScalingFactor: 1.5,
      ropeScaling: { type: 'yarn', factor: 6.5, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 0.8 },
    },
  },
  // value heads wider than the query/key heads: a prompt runs the absorbed form too (the expanded
  // one pads values to the key width, so it needs v ≤ nope + rope)
  { name: 'deepseek_v2-wide-values', family: 'deepseek_v2', fixture: { seed: 3, mla: { kvLoraRank: 8, nope: 2, rope: 2, v: 8 } } },
  // DeepSeek-V3's sigmoid routing with its correction bias (noaux_tc: top-3 among 2 of 4 groups
  // scored by their two best), q-LoRA, interleaved rope …
  { name: 'deepseek_v3', family: 'deepseek_v3', fixture: { seed: 7, qLoraRank: 6, topK: 3 } },
  // … and as Moonlight-16B-A3B has it (one q_proj, one group), here with rope_interleave false and YaRN
  {
    name: 'deepseek_v3-one-group-yarn',
    family: 'deepseek_v3',
    fixture: {
      seed: 8,
      topK: 3,
      topkMethod: { method: 'greedy', nGroup: 1, topkGroup: 1 },
      ropeInterleave: false,
      ropeScaling: { type: 'yarn', factor: 4.5, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 1.0 },
    },
  },
  // YaRN on a Llama-lineage family (rotate-half RoPE, per-head q/k norm)
  { name: 'qwen3_moe-yarn', family: 'qwen3_moe', fixture: { seed: 6, ropeScaling: { rope_type: 'yarn', factor: 2.5, original_max_position_embeddings: 8 } } },
  // GLM-4.5: q/k/v biases, per-head q/k norm, RoPE over half of each head, V3's routing with one group …
  { name: 'glm4_moe', family: 'glm4_moe', fixture: { seed: 9, topK: 3 } },
  // … and as GLM-4.5-Air has it (no q/k norm), here with a quarter of each head rotated under YaRN
  // and routing among 2 of 4 groups
  {
    name: 'glm4_moe-air-groups-yarn',
    family: 'glm4_moe',
    fixture: {
      seed: 10,
      topK: 3,
      useQkNorm: false,
      partialRotaryFactor: 0.25,
      topkMethod: { method: 'greedy', nGroup: 4, topkGroup: 2 },
      ropeScaling: { rope_type: 'yarn', factor: 2.5, original_max_position_embeddings: 8 },
    },
  },
  // IBM Granite MoE: experts fused on disk under their own names, and its four multipliers
  // (granite-3.0-1b-a400m's values) …
  { name: 'granitemoe', family: 'granitemoe', fixture: { seed: 11 } },
  // … and with tied embeddings (as the 1b-a400m has them), top-3 and other multipliers
  { name: 'granitemoe-tied', family: 'granitemoe', fixture: { seed: 12, topK: 3, tieWordEmbeddings: true, multipliers: { embedding: 8, residual: 0.5, attention: 0.03, logits: 2.5 } } },
  // GraniteMoE-shared: GraniteMoE with a shared MLP stored fused (shared_mlp.input_linear: gate and up), added to the experts' output …
  { name: 'granitemoeshared', family: 'granitemoeshared', fixture: { seed: 39, topK: 3 } },
  // … and without one (shared_intermediate_size 0, transformers' default), tied embeddings, other multipliers
  { name: 'granitemoeshared-none-tied', family: 'granitemoeshared', fixture: { seed: 40, sharedExpertIntermediateSize: 0, tieWordEmbeddings: true, multipliers: { embedding: 8, residual: 0.5, attention: 0.03, logits: 2.5 } } },
  // GraniteMoE-SWA: a window of 4 on layers 1 and 2 (transformers' default layer_types), a sink per head, no RoPE in layer 0 (layer_rope_theta 0) …
  { name: 'granitemoe_swa', family: 'granitemoe_swa', fixture: { seed: 41, topK: 3, configKeys: { sliding_window: 4, layer_rope_theta: [0, 10000, 10000] } } },
  // … and layer_types written out, a shared MLP, tied embeddings, one RoPE base for every layer other than rope_theta
  {
    name: 'granitemoe_swa-types-shared-tied',
    family: 'granitemoe_swa',
    fixture: {
      seed: 42,
      numLayers: 4,
      sharedExpertIntermediateSize: 16,
      tieWordEmbeddings: true,
      configKeys: { sliding_window: 3, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'sliding_attention'], layer_rope_theta: [500000, 500000, 500000, 500000] },
    },
  },
  // … and RoPE bases that differ between layers (layer_rope_theta), each layer rotating with its own, a layer without RoPE among them
  { name: 'granitemoe_swa-bases', family: 'granitemoe_swa', fixture: { seed: 43, numLayers: 4, configKeys: { sliding_window: 4, layer_rope_theta: [10000, 0, 500000, 1000] } } },
  // MiMo-V2-Flash: sliding layers 1 and 2 (window 5) with twice the kv heads and sinks (under the releases' name), keys 12 wide with
  // their first 4 rotated at transformers' default bases per layer type, values 8 wide × attention_value_scale, layer 0 dense …
  { name: 'mimo_v2_flash', family: 'mimo_v2_flash', fixture: { seed: 44, topK: 3 } },
  // … and as transformers saves it (experts fused, self_attn.sinks), layer_types and mlp_layer_types written out, bases of its
  // own per layer type with half of each key head rotated, q/k/v biases, groups, tied embeddings
  {
    name: 'mimo_v2_flash-types-fused',
    family: 'mimo_v2_flash',
    fixture: {
      seed: 45,
      numLayers: 4,
      fusedExperts: true,
      attentionBias: true,
      tieWordEmbeddings: true,
      topkMethod: { method: 'group_limited_greedy', nGroup: 4, topkGroup: 2 },
      configKeys: {
        layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
        mlp_layer_types: ['sparse', 'sparse', 'dense', 'sparse'],
        sliding_window: 3,
        rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 50.5, partial_rotary_factor: 0.5 }, sliding_attention: { rope_type: 'default', rope_theta: 1000.5, partial_rotary_factor: 0.5 } },
      },
    },
  },
  // MiniMax-M2: q/k normalised over the whole projections, RoPE over part of each head
  // (rotary_dim), sigmoid routing with its correction bias among all experts, Mixtral's names …
  { name: 'minimax_m2', family: 'minimax_m2', fixture: { seed: 13, topK: 3 } },
  // … and as transformers ≥ 5 writes it (experts fused, the router and bias under mlp), tied embeddings, a quarter of each head rotated
  { name: 'minimax_m2-fused', family: 'minimax_m2', fixture: { seed: 14, fusedExperts: true, tieWordEmbeddings: true, rotaryDim: 4 } },
  // GLM-4.7-Flash: DeepSeek-V3's MLA (q-LoRA, wider value heads) and routing under GLM's name, its
  // MoE layers from mlp_layer_types's default …
  // rms_norm_eps far from 1e-6: transformers builds MLA's q_a_layernorm and kv_a_layernorm with 1e-6 whatever the config says
  { name: 'glm4_moe_lite', family: 'glm4_moe_lite', fixture: { seed: 17, qLoraRank: 6, topK: 3, mla: { kvLoraRank: 8, nope: 6, rope: 2, v: 8 }, topkMethod: { method: 'greedy', nGroup: 1, topkGroup: 1 }, configKeys: { rms_norm_eps: 0.05 } } },
  // … and written out (two dense layers), groups, fused experts
  { name: 'glm4_moe_lite-types-fused', family: 'glm4_moe_lite', fixture: { seed: 18, topK: 3, firstKDenseReplace: 2, fusedExperts: true, numLayers: 4 } },
  // DeepSeek-V3.2: V3 with DeepSeek Sparse Attention's indexer in every layer, index_topk 8 (the
  // prompt's last positions and most greedy tokens attend to the indexer's choice) …
  { name: 'deepseek_v32', family: 'deepseek_v32', fixture: { seed: 31, topK: 3, indexer: { topK: 8, heads: 8 } } },
  // … with YaRN, two dense layers written out in mlp_layer_types, fused experts
  {
    name: 'deepseek_v32-yarn-types-fused',
    family: 'deepseek_v32',
    fixture: {
      seed: 32,
      topK: 3,
      numLayers: 4,
      fusedExperts: true,
      firstKDenseReplace: 2,
      configKeys: { first_k_dense_replace: 0, mlp_layer_types: ['dense', 'dense', 'sparse', 'sparse'] },
      ropeScaling: { type: 'yarn', factor: 4.5, original_max_position_embeddings: 16, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 1.0 },
    },
  },
  // GLM-5: the same under GLM's name (index_topk 8), where "shared" layers reuse an earlier layer's choice and hold no indexer
  { name: 'glm_moe_dsa', family: 'glm_moe_dsa', fixture: { seed: 33, topK: 3, numLayers: 4, indexerTypes: ['full', 'shared', 'shared', 'full'], indexer: { topK: 8, heads: 8 }, mla: { kvLoraRank: 8, nope: 6, rope: 2, v: 8 } } },
  // EXAONE MoE: per-head q/k norms, a window of 5 on every other layer and no RoPE on the global
  // ones, V3's routing with its correction bias where the releases store it, a shared expert …
  { name: 'exaone_moe', family: 'exaone_moe', fixture: { seed: 34, topK: 3 } },
  // … and as transformers' modules hold it (experts fused, the bias under mlp.gate), the layers listed in layer_types, tied embeddings
  {
    name: 'exaone_moe-fused-types',
    family: 'exaone_moe',
    fixture: { seed: 35, topK: 3, numLayers: 4, fusedExperts: true, tieWordEmbeddings: true, configKeys: { sliding_window: 4, layer_types: ['sliding_attention', 'sliding_attention', 'sliding_attention', 'full_attention'] } },
  },
  // FlexOlmo: OLMoE's attention and routing with its norms after the attention and the MLP (OLMo 2's layout) …
  // HY V3: the releases' names per expert; transformers' own names with fused experts, no shared expert (its intermediate_size fallback), two dense layers written out in mlp_layer_types
  { name: 'hy_v3', family: 'hy_v3', fixture: { seed: 45, topK: 3 } },
  { name: 'hy_v3-fused-unshared', family: 'hy_v3', fixture: { seed: 46, topK: 3, fusedExperts: true, numSharedExperts: 0, firstKDenseReplace: 2, tieWordEmbeddings: true } },
  // AFMoE: four norms a layer, the gated attention output, a window of 5 with RoPE only in the sliding layers, muP, per expert;
  // then fused without muP, listed layer_types (window 4), two dense layers, two shared experts' width, tied embeddings
  { name: 'afmoe', family: 'afmoe', fixture: { seed: 47, topK: 3 } },
  {
    name: 'afmoe-fused-types-nomup',
    family: 'afmoe',
    fixture: {
      seed: 48, topK: 3, numLayers: 4, fusedExperts: true, firstKDenseReplace: 2, numSharedExperts: 2, routedScalingFactor: 1.5, tieWordEmbeddings: true,
      configKeys: { mup_enabled: false, sliding_window: 4, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'sliding_attention'] },
    },
  },
  // A.X K1: DeepSeek-V3 with a norm on each MoE block's output (one group, and 4 groups of 2 with fused experts)
  { name: 'axk1', family: 'axk1', fixture: { seed: 43, topK: 3, topkMethod: { method: 'group_limited_greedy', nGroup: 1, topkGroup: 1 } } },
  { name: 'axk1-groups-fused', family: 'axk1', fixture: { seed: 44, topK: 3, fusedExperts: true, ropeInterleave: false } },
  // PhiMoE (Phi-3.5-MoE's layout): LayerNorms with biases, q/k/v/o and lm_head biases, sparsemixer routing, LongRoPE's short factors and mscale …
  { name: 'phimoe', family: 'phimoe', fixture: { seed: 53 } },
  // … and fused (mlp.router), without biases, tied, a window of 6, a jitter margin wide enough to mask none of the logits near the best
  { name: 'phimoe-fused-unbiased-window', family: 'phimoe', fixture: { seed: 54, fusedExperts: true, attentionBias: false, tieWordEmbeddings: true, configKeys: { sliding_window: 6, router_jitter_noise: 0.3 } } },
  // Cohere2-MoE: its parallel block under one LayerNorm (no bias), interleaved RoPE only in the windowed layers (window 5)
  // and in the dense prefix (force_rope), softmax over the top-3 logits, a shared expert averaged with the routed sum, logit_scale …
  { name: 'cohere2_moe', family: 'cohere2_moe', fixture: { seed: 51, topK: 3 } },
  // … and RMSNorms (rms_norm_eps set), sigmoid routing renormalised, two shared experts' width added, q/k/v/o biases, fused,
  // tied, layer_types and mlp_layer_types written out with a dense full-attention layer that does not rope (prefix pattern 2)
  {
    name: 'cohere2_moe-rms-sigmoid-fused',
    family: 'cohere2_moe',
    fixture: {
      seed: 52, topK: 3, fusedExperts: true, attentionBias: true, tieWordEmbeddings: true, numSharedExperts: 2, firstKDenseReplace: 2,
      configKeys: {
        rms_norm_eps: 1e-5, expert_selection_fn: 'sigmoid', norm_topk_prob: true, shared_expert_combination_strategy: 'sum', prefix_dense_sliding_window_pattern: 2, logit_scale: 0.3,
        layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'], mlp_layer_types: ['dense', 'dense', 'sparse', 'sparse'],
      },
    },
  },
  // Solar Open: GLM-4.5's MoE in every layer, Llama's attention (whole-head RoPE; biases, groups and fused experts in the second)
  { name: 'solar_open', family: 'solar_open', fixture: { seed: 41, topK: 3 } },
  {
    name: 'solar_open-bias-groups-fused',
    family: 'solar_open',
    fixture: { seed: 42, topK: 3, attentionBias: true, numSharedExperts: 2, topkMethod: { method: 'group_limited_greedy', nGroup: 4, topkGroup: 2 }, routedScalingFactor: 2.5, fusedExperts: true, tieWordEmbeddings: true },
  },
  { name: 'flex_olmo', family: 'flex_olmo', fixture: { seed: 37, topK: 3 } },
  // … and as transformers' modules hold its experts (fused), renormalised top-k, tied embeddings
  { name: 'flex_olmo-fused', family: 'flex_olmo', fixture: { seed: 38, topK: 3, fusedExperts: true, normTopkProb: true, tieWordEmbeddings: true, numLayers: 3 } },
  // Mistral Small 4: DeepSeek-V3's MLA (one q_proj here) and layer layout, softmax routing in one
  // group, its queries scaled by position (Llama 4's scaling, stepping every 4 positions: three
  // steps within the prompt, eight by the last greedy token). transformers loads its experts fused only …
  { name: 'mistral4', family: 'mistral4', fixture: { seed: 39, topK: 3, fusedExperts: true } },
  // … and with q-LoRA, top-3 among 2 of 4 groups scored by their two best probabilities, a routed
  // scaling factor, and a steeper scaling stepping every 3 positions
  {
    name: 'mistral4-lora-groups-scaling',
    family: 'mistral4',
    fixture: {
      seed: 40,
      topK: 3,
      fusedExperts: true,
      qLoraRank: 6,
      topkMethod: { method: 'greedy', nGroup: 4, topkGroup: 2 },
      routedScalingFactor: 1.5,
      ropeParameters: { original_max_position_embeddings: 3, llama_4_scaling_beta: 0.3 },
    },
  },
  // ERNIE-4.5: interleaved RoPE pairs, softmax routing that chooses on probability + its [1, E] bias, shared experts …
  { name: 'ernie4_5_moe', family: 'ernie4_5_moe', fixture: { seed: 19, topK: 3 } },
  // … and as transformers ≥ 5 writes it (fused, the bias under mlp.gate), untied, one shared expert
  { name: 'ernie4_5_moe-fused', family: 'ernie4_5_moe', fixture: { seed: 20, topK: 3, fusedExperts: true, numSharedExperts: 1, tieWordEmbeddings: false } },
  // Hunyuan-A13B: per-head q/k norms after RoPE, RoPE "dynamic" with an NTK alpha, an always-on shared MLP …
  { name: 'hunyuan_v1_moe', family: 'hunyuan_v1_moe', fixture: { seed: 21, topK: 3 } },
  // … and as transformers ≥ 5 writes it (fused), head_dim ≠ hidden / heads, tied embeddings
  { name: 'hunyuan_v1_moe-fused', family: 'hunyuan_v1_moe', fixture: { seed: 22, topK: 3, fusedExperts: true, headDim: 12, tieWordEmbeddings: true } },
  // dots.llm1: Qwen3's attention (per-head q/k norm) and DeepSeek-V3's routing (4 groups, 2 kept), a shared expert …
  { name: 'dots1', family: 'dots1', fixture: { seed: 15, topK: 3 } },
  // … and as the released models have it (one group, two shared experts), experts fused on disk
  { name: 'dots1-one-group-fused', family: 'dots1', fixture: { seed: 16, topK: 3, numSharedExperts: 2, fusedExperts: true, topkMethod: { method: 'greedy', nGroup: 1, topkGroup: 1 } } },
  // sliding-window attention (windows shorter than the prompt): dots.llm1's layers from max_window_layers on …
  { name: 'dots1-sliding', family: 'dots1', fixture: { seed: 23, topK: 3, numLayers: 3, configKeys: { sliding_window: 5, max_window_layers: 1 } } },
  // … Qwen3-MoE's in every layer, Qwen2-MoE's every other layer (transformers' defaults from use_sliding_window)
  { name: 'qwen3_moe-sliding', family: 'qwen3_moe', fixture: { seed: 24, configKeys: { use_sliding_window: true, sliding_window: 4 } } },
  { name: 'qwen2_moe-sliding', family: 'qwen2_moe', fixture: { seed: 25, numLayers: 3, configKeys: { use_sliding_window: true, sliding_window: 3, max_window_layers: 3 } } },
  // RoPE scalings besides YaRN: linear (position interpolation) and Llama 3's frequency bands (an
  // original context that puts the fixture's four frequencies in all three bands: kept, blended, divided)
  { name: 'qwen3_moe-linear-rope', family: 'qwen3_moe', fixture: { seed: 26, ropeScaling: { rope_type: 'linear', factor: 3.5 } } },
  { name: 'mixtral-llama3-rope', family: 'mixtral', fixture: { seed: 27, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 400 } } },
  // gpt-oss: biases on every attention projection, sink logits, a window of 5 on even layers,
  // YaRN without truncation, top-k of the biased router logits then a softmax over them, experts
  // stored transposed with gate and up interleaved and biased, the clamped activation …
  { name: 'gpt_oss', family: 'gpt_oss', fixture: { seed: 28 } },
  // … and three layers, top-3, tied embeddings, head_dim ≠ hidden / heads
  { name: 'gpt_oss-top3-tied', family: 'gpt_oss', fixture: { seed: 29, numLayers: 3, topK: 3, tieWordEmbeddings: true, headDim: 12 } },
  // … and as it is released: its experts in MXFP4 (hidden and width multiples of 32), read dequantised on both sides
  { name: 'gpt_oss-mxfp4', family: 'gpt_oss', fixture: { seed: 30, expertIntermediateSize: 32 }, mxfp4: true },
  // Qwen3-Next: Gated DeltaNet layers (two value heads a key head, a conv of 4) beside gated full
  // attention with a quarter of each head rotated, zero-centred norms, Qwen2-MoE's blocks with a
  // gated shared expert and a dense layer …
  { name: 'qwen3_next', family: 'qwen3_next', fixture: { seed: 55, topK: 3 } },
  // … and as transformers ≥ 5 saves it (experts fused), layer_types listed (full attention first), every layer MoE, tied embeddings
  {
    name: 'qwen3_next-fused-types-tied',
    family: 'qwen3_next',
    fixture: { seed: 52, numLayers: 4, fusedExperts: true, mlpOnlyLayers: [], tieWordEmbeddings: true, configKeys: { layer_types: ['full_attention', 'linear_attention', 'linear_attention', 'full_attention'] } },
  },
  // Qwen3.5-MoE's language model: Qwen3-Next's layers with the linear layers' input projections apart, every layer MoE, fused experts
  { name: 'qwen3_5_moe_text', family: 'qwen3_5_moe_text', fixture: { seed: 54, topK: 3, fusedExperts: true } },
  // Llama 4's text model: RoPE layers (0-2) with a weightless q/k norm attending within chunks of 4
  // (the prompt crosses three, the greedy tokens five more), a NoPE layer (3) whose queries scale
  // every 3 positions, MoE layers every other one beside dense MLPs, top-2 sigmoid routing that
  // scales the experts' inputs, a shared expert, the experts fused transposed with the gate's columns first …
  { name: 'llama4_text', family: 'llama4_text', fixture: { seed: 49 } },
  // … and Scout's Llama 3 RoPE scaling (its low and high frequency factors equal), MoE in every
  // layer, top-1, no q/k norm, tied embeddings, no_rope_layers and layer_types written out (layer 2
  // ropes without chunks)
  {
    name: 'llama4_text-llama3-all-moe-tied',
    family: 'llama4_text',
    fixture: {
      seed: 50,
      numLayers: 3,
      interleaveMoeLayerStep: 1,
      topK: 1,
      useQkNorm: false,
      tieWordEmbeddings: true,
      ropeScaling: { rope_type: 'llama3', factor: 16, low_freq_factor: 1, high_freq_factor: 1, original_max_position_embeddings: 16 },
      configKeys: { no_rope_layers: [1, 0, 1], layer_types: ['chunked_attention', 'full_attention', 'full_attention'] },
    },
  },
];
/** cases whose attention or RoPE is new to the runtime's decoding path: greedy generation (KV cache) against transformers' generate() */
const GREEDY = new Set(['deepseek_v2', 'deepseek_v2-lora-groups-yarn', 'deepseek_v3', 'deepseek_v3-one-group-yarn', 'qwen3_moe-yarn', 'glm4_moe', 'glm4_moe-air-groups-yarn', 'granitemoe', 'granitemoe-tied', 'granitemoeshared', 'granitemoeshared-none-tied', 'granitemoe_swa', 'granitemoe_swa-bases', 'granitemoe_swa-types-shared-tied', 'mimo_v2_flash', 'mimo_v2_flash-types-fused', 'minimax_m2', 'minimax_m2-fused', 'dots1', 'dots1-one-group-fused', 'glm4_moe_lite', 'glm4_moe_lite-types-fused', 'deepseek_v32', 'deepseek_v32-yarn-types-fused', 'glm_moe_dsa', 'exaone_moe', 'exaone_moe-fused-types', 'flex_olmo', 'flex_olmo-fused', 'ernie4_5_moe', 'ernie4_5_moe-fused', 'hunyuan_v1_moe', 'hunyuan_v1_moe-fused', 'dots1-sliding', 'qwen3_moe-sliding', 'qwen2_moe-sliding', 'qwen3_moe-linear-rope', 'mixtral-llama3-rope', 'gpt_oss', 'gpt_oss-top3-tied', 'gpt_oss-mxfp4', 'mistral4', 'mistral4-lora-groups-scaling', 'solar_open', 'solar_open-bias-groups-fused', 'axk1', 'axk1-groups-fused', 'cohere2_moe', 'cohere2_moe-rms-sigmoid-fused', 'hy_v3', 'phimoe', 'phimoe-fused-unbiased-window', 'hy_v3-fused-unshared', 'afmoe', 'afmoe-fused-types-nomup', 'llama4_text', 'llama4_text-llama3-all-moe-tied', 'qwen3_next', 'qwen3_next-fused-types-tied', 'qwen3_5_moe_text']);
const GREEDY_TOKENS = 20;

const UNSUPPORTED: Case[] = golden.cases.filter((c) => NOT_IN_TRANSFORMERS.has(c.family)).map((c) => ({ name: c.name, family: c.family, dir: path.join(goldenDir, c.name) }));

describeWithTransformers('compressed outputs in Hugging Face transformers', () => {
  let engine: Engine;
  let root: Awaited<ReturnType<typeof tempDir>>;
  const ours = new Map<string, Float32Array>();
  const oursGreedy = new Map<string, number[]>();
  const hf = new Map<string, HfJobResult>();
  let versions = '';

  /** The case's source directory (a TypeScript fixture is written with its float keys as floats, as transformers writes them). */
  async function source(c: Case): Promise<string> {
    if (c.dir) return c.dir;
    const dir = path.join(root.dir, `${c.name}-model`);
    await makeTransformersCheckpoint(dir, c.family as FamilyName, c.fixture);
    if (!c.mxfp4) return dir;
    const quantized = `${dir}-mxfp4`;
    await runPythonJson(pythonPath, path.join(repoRoot, 'scripts', 'mxfp4_reference.py'), { op: 'quantize', model: dir, out: quantized });
    return quantized;
  }

  beforeAll(async () => {
    engine = createTsEngine({ threads: 1 });
    root = await tempDir('hf-families');
    const jobs: Array<{ key: string; job: HfJob }> = [];
    const logits = (model: string): HfJob => ({ op: 'logits', model, ids: golden.ids, mask: golden.mask });
    for (const c of [...CASES, ...UNSUPPORTED]) {
      const model = await source(c);
      const base = path.join(root.dir, c.name);
      const ckpt = await openCheckpoint(model);
      try {
        await writeCompressedOutputs(ckpt, base, engine);
      } finally {
        await ckpt.close();
      }
      if (UNSUPPORTED.includes(c)) {
        jobs.push({ key: `${c.name}/dense`, job: { op: 'load', model: `${base}-dense` } });
        continue;
      }
      const dense = await openCheckpoint(`${base}-dense`);
      try {
        ours.set(c.name, (await countRouting(dense, engine, batchFromPadded(golden.ids, golden.mask), { withLogits: true })).logits!);
      } finally {
        await dense.close();
      }
      for (const kind of ['dense', 'densified'] as const) jobs.push({ key: `${c.name}/${kind}`, job: logits(`${base}-${kind}`) });
      if (GREEDY.has(c.name)) {
        const prompt = golden.ids[0].filter((_, i) => golden.mask[0][i] === 1);
        const original = await openCheckpoint(model);
        try {
          oursGreedy.set(c.name, (await generateAll(original, engine, prompt, { temperature: 0, maxNewTokens: GREEDY_TOKENS })).tokens);
        } finally {
          await original.close();
        }
        jobs.push({ key: `${c.name}/greedy`, job: { op: 'generate', model, ids: prompt, maxNewTokens: GREEDY_TOKENS } });
      }
      jobs.push({ key: `${c.name}/factored`, job: { op: 'load', model: `${base}-factored` } });
    }
    versions = await runHfJobsInto(jobs, hf);
  }, 600_000);

  afterAll(async () => {
    engine?.dispose();
    await root?.cleanup();
  });

  for (const c of CASES) {
    it(`${c.name} (${c.family}): the dense output loads completely and its logits equal the runtime's`, () => {
      expectLoadedWithLogits(hf.get(`${c.name}/dense`), ours.get(c.name), versions);
    });

    it(`${c.name} (${c.family}): the factored output is refused, naming rfid-moe; densify gives a loadable copy`, () => {
      expectRefusedNamingRfidMoe(hf.get(`${c.name}/factored`), versions);
      expectLoadedWithLogits(hf.get(`${c.name}/densified`), ours.get(c.name), `densified: ${versions}`);
    });
  }

  for (const c of CASES.filter((c) => GREEDY.has(c.name))) {
    it(`${c.name} (${c.family}): greedy generation with the KV cache gives transformers' generate() tokens`, () => {
      const r = hf.get(`${c.name}/greedy`)!;
      expect(r.error, versions).toBeUndefined();
      expect(oursGreedy.get(c.name)).toEqual(r.generated);
    });
  }

  for (const c of UNSUPPORTED) {
    it(`${c.name} (${c.family}): transformers does not know model_type ${c.family} (not a family it ships)`, () => {
      const r = hf.get(`${c.name}/dense`)!;
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(new RegExp(`model type \`${c.family}\` but Transformers does not recognize`));
    });
  }
});
