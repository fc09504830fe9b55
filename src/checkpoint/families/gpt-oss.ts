/**
 * OpenAI's gpt-oss (`gpt_oss`: gpt-oss-20b and gpt-oss-120b), as transformers' GptOss reads it:
 * - attention: grouped-query heads with biases on all four projections (attention_bias), a
 *   learned sink logit per query head (`self_attn.sinks`) in every softmax's denominator, and a
 *   sliding window (sliding_window, 128) on the layers layer_types marks "sliding_attention"
 *   (by default every even layer); YaRN RoPE (its configs carry rope_scaling; transformers'
 *   default is YaRN too, so a config without one is refused rather than run without).
 * - routing: the router's logits with its bias (`mlp.router.weight`, `mlp.router.bias`) → top-k
 *   → softmax over those k.
 * - experts: stored fused and transposed (`mlp.experts.gate_up_proj` [E, H, 2I] with gate and up
 *   columns interleaved, `down_proj` [E, I, H]) with biases (`gate_up_proj_bias` [E, 2I],
 *   `down_proj_bias` [E, H]); activation (up + 1) · g · sigmoid(1.702 g), g = min(gate, limit),
 *   up clamped to ±limit (swiglu_limit, 7). The released checkpoints store the experts in MXFP4
 *   (quant_method "mxfp4"), which the checkpoint reader dequantises to this BF16 form.
 * Every layer is MoE; no shared expert. Defaults: transformers' GptOssConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { ropeScalingOf } from '../rope-scaling.js';
import { perLayerWindow, windowSize } from '../sliding-window.js';
import { llamaConfigPart, llamaKeys, llamaNames, positiveInt, qkvBiasNames } from './common.js';

const LABEL = 'gpt-oss';
/** the sigmoid's slope in gpt-oss's activation (a constant of the model, not a config key) */
const GPT_OSS_ALPHA = 1.702;

const configSchema = z.looseObject({
  ...llamaKeys({
    vocab_size: 201088,
    hidden_size: 2880,
    num_hidden_layers: 36,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 150000,
    tie_word_embeddings: false,
    pad_token_id: null,
    bos_token_id: null,
    eos_token_id: null,
  }),
  intermediate_size: positiveInt.default(2880),
  num_local_experts: positiveInt.default(128),
  num_experts_per_tok: positiveInt.default(4),
  swiglu_limit: z.number().positive().default(7),
  attention_bias: z.literal(true, { error: 'attention_bias must be true for gpt-oss (its projections all carry biases)' }).default(true),
});

export const gptOss = defineFamily({
  family: 'gpt_oss',
  label: LABEL,
  modelTypes: ['gpt_oss'],
  configSchema,
  normalize: (p, raw) => {
    if (ropeScalingOf(raw).key === null) {
      throw new CheckpointError(
        'InvalidConfig',
        `config.json has no rope_scaling (or rope_parameters); transformers gives gpt-oss YaRN by default (factor 32, original_max_position_embeddings 4096, beta_fast 32, beta_slow 1, truncate false), and so would not run it with the plain RoPE; add that block (${LABEL} config); fix config.json`,
      );
    }
    const base = llamaConfigPart('gpt_oss', p, raw, 150000);
    return {
      ...base,
      numExperts: p.num_local_experts,
      topK: p.num_experts_per_tok,
      expertIntermediateSize: p.intermediate_size,
      denseIntermediateSize: 0,
      // the softmax runs over the chosen k, so their weights sum to 1 already
      normTopkProb: false,
      routedScalingFactor: 1,
      sharedExpertIntermediateSize: 0,
      sharedExpertGated: false,
      qkvBias: true,
      oBias: true,
      attentionSinks: true,
      qkNorm: 'none',
      attention: 'standard',
      routing: 'topk-softmax',
      expertActivation: { kind: 'clamped-swiglu', alpha: GPT_OSS_ALPHA, limit: p.swiglu_limit },
      // transformers' default layer_types: even layers slide
      ...perLayerWindow(raw, p.num_hidden_layers, LABEL, windowSize(raw, LABEL, 128), (l) => l % 2 === 0),
    };
  },
  isMoeLayer: () => true,
  names: {
    ...llamaNames,
    attention: {
      ...llamaNames.attention,
      ...qkvBiasNames,
      oBias: 'model.layers.{l}.self_attn.o_proj.bias',
      sinks: 'model.layers.{l}.self_attn.sinks',
    },
    router: 'model.layers.{l}.mlp.router.weight',
    routerLogitBias: 'model.layers.{l}.mlp.router.bias',
    fused: {
      gateUp: 'model.layers.{l}.mlp.experts.gate_up_proj',
      down: 'model.layers.{l}.mlp.experts.down_proj',
      form: 'transposed-interleaved',
      gateUpBias: 'model.layers.{l}.mlp.experts.gate_up_proj_bias',
      downBias: 'model.layers.{l}.mlp.experts.down_proj_bias',
    },
  },
});
