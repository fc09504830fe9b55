/**
 * FlexOlmo (`flex_olmo`, allenai/FlexOlmo-7x7B-1T): OLMoE's attention (q/k RMSNorm over the whole
 * projections) and top-k routing, in OLMo 2's layer layout: no norm before the attention or the
 * MLP, each one's output RMS-normalised (post_attention_layernorm, post_feedforward_layernorm)
 * before it joins the residual stream (ModelConfig.norms). Every layer is MoE;
 * `intermediate_size` is the expert width. Defaults: transformers' FlexOlmoConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import { llamaConfigPart, llamaKeys, noAttentionBias, positiveInt } from './common.js';
import { olmoeMoePart, olmoeNames } from './olmoe.js';

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 100352,
    hidden_size: 4096,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: null,
    rms_norm_eps: 1e-6,
    rope_theta: 500000,
    tie_word_embeddings: false,
    pad_token_id: 100277,
    bos_token_id: null,
    eos_token_id: 100257,
  }),
  intermediate_size: positiveInt.default(11008),
  num_experts: positiveInt.default(7),
  num_experts_per_tok: positiveInt.default(5),
  norm_topk_prob: z.boolean().default(false),
  attention_bias: noAttentionBias.default(false),
});

export const flexOlmo = defineFamily({
  family: 'flex_olmo',
  label: 'FlexOlmo',
  modelTypes: ['flex_olmo'],
  configSchema,
  normalize: (p, raw) => ({
    ...llamaConfigPart('flex_olmo', p, raw, 500000),
    ...olmoeMoePart(p),
    norms: { attentionInput: false, attentionOutput: true, mlpInput: false, mlpOutput: true },
  }),
  isMoeLayer: () => true,
  names: {
    ...olmoeNames,
    norms: { attentionOutput: 'model.layers.{l}.post_attention_layernorm.weight', mlpOutput: 'model.layers.{l}.post_feedforward_layernorm.weight' },
  },
});
