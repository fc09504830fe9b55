/**
 * IBM Granite MoE (`granitemoe`: granite-3.0 / 3.1 1b-a400m and 3b-a800m, base and instruct).
 * Llama attention and Mixtral routing (top-k of the router's logits, softmax over those k, which
 * is the top-k of the softmax renormalised) with four scalar multipliers: the embeddings are
 * multiplied by embedding_multiplier, each attention and MoE output by residual_multiplier before
 * it is added, the softmax is scaled by attention_multiplier (in place of 1/√head_dim; 1 when the
 * config does not say, as transformers has it), and the logits are divided by logits_scaling.
 * Every layer is MoE. The experts are stored fused only, under their own names:
 * `block_sparse_moe.input_linear.weight` [E, 2I, H] (gate rows first) and `output_linear.weight`
 * [E, H, I], the router as `block_sparse_moe.router.layer.weight`; `intermediate_size` is the
 * expert width. Defaults: transformers' GraniteMoeConfig, which GraniteMoE-shared and
 * GraniteMoE-SWA (granitemoe-shared.ts, granitemoe-swa.ts) share.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import type { FamilyName, ModelConfig } from '../types.js';
import { llamaConfigPart, llamaKeys, llamaNames, noAttentionBias, positiveInt } from './common.js';

const multiplier = z.number().positive();

/** The config keys of GraniteMoE, and of the Granite MoE families built on it. */
export const graniteMoeKeys = {
  ...llamaKeys({
    vocab_size: 32000,
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: null,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  intermediate_size: positiveInt.default(11008),
  num_local_experts: positiveInt.default(8),
  num_experts_per_tok: positiveInt.default(2),
  embedding_multiplier: multiplier.default(1),
  residual_multiplier: multiplier.default(1),
  attention_multiplier: multiplier.default(1),
  logits_scaling: multiplier.default(1),
  attention_bias: noAttentionBias.default(false),
};

const configSchema = z.looseObject(graniteMoeKeys);

type GraniteMoeParsed = z.infer<typeof configSchema>;

/** GraniteMoE's ModelConfig: Llama attention with its multipliers, fused top-k experts, no shared expert. */
export function graniteMoePart(family: FamilyName, p: GraniteMoeParsed, raw: Record<string, unknown>): ModelConfig {
  return {
    ...llamaConfigPart(family, p, raw, 10000),
    numExperts: p.num_local_experts,
    topK: p.num_experts_per_tok,
    expertIntermediateSize: p.intermediate_size,
    denseIntermediateSize: 0,
    normTopkProb: true,
    routedScalingFactor: 1,
    sharedExpertIntermediateSize: 0,
    sharedExpertGated: false,
    qkvBias: false,
    qkNorm: 'none',
    attention: 'standard',
    multipliers: { embedding: p.embedding_multiplier, residual: p.residual_multiplier, attention: p.attention_multiplier, logits: p.logits_scaling },
  };
}

export const graniteMoeNames = {
  ...llamaNames,
  router: 'model.layers.{l}.block_sparse_moe.router.layer.weight',
  fused: {
    gateUp: 'model.layers.{l}.block_sparse_moe.input_linear.weight',
    down: 'model.layers.{l}.block_sparse_moe.output_linear.weight',
  },
};

export const graniteMoe = defineFamily({
  family: 'granitemoe',
  label: 'GraniteMoE',
  modelTypes: ['granitemoe'],
  configSchema,
  normalize: (p, raw) => graniteMoePart('granitemoe', p, raw),
  isMoeLayer: () => true,
  names: graniteMoeNames,
});
