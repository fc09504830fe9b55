/**
 * Mixtral (`model_type: "mixtral"`, MixtralForCausalLM). Every layer is MoE; `intermediate_size`
 * is the expert width; experts are named w1 (gate), w3 (up), w2 (down) under block_sparse_moe;
 * routing always renormalises the top-k probabilities. Defaults: transformers MixtralConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { everyLayerWindow, windowSize } from '../sliding-window.js';
import { fusedExpertNames, llamaConfigPart, llamaKeys, llamaNames, mlpRouterName, positiveInt } from './common.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 32000,
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 1e6,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: 1,
    eos_token_id: 2,
  }),
  intermediate_size: positiveInt.default(14336),
  num_local_experts: positiveInt.default(8),
  num_experts_per_tok: positiveInt.default(2),
});

export const mixtral = defineFamily({
  family: 'mixtral',
  label: 'Mixtral',
  modelTypes: ['mixtral'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('mixtral', p, raw, 1e6),
    ...everyLayerWindow(windowSize(raw, 'Mixtral', null)),
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
  }),
  isMoeLayer: () => true,
  names: {
    ...llamaNames,
    router: 'model.layers.{l}.block_sparse_moe.gate.weight',
    expert: {
      gate: 'model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight',
      up: 'model.layers.{l}.block_sparse_moe.experts.{e}.w3.weight',
      down: 'model.layers.{l}.block_sparse_moe.experts.{e}.w2.weight',
    },
    // transformers ≥ 5 renames block_sparse_moe.gate → mlp.gate when it fuses the experts
    fused: { ...fusedExpertNames, router: mlpRouterName },
  },
});
