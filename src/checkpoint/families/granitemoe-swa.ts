/**
 * IBM GraniteMoE-SWA (`granitemoe_swa`, GraniteMoeSWAForCausalLM): GraniteMoE-shared
 * (granitemoe-shared.ts; the shared MLP off by default) with GraniteSWA's attention:
 * - a sliding window (`sliding_window`, 128) on the layers `layer_types` marks
 *   "sliding_attention", by default all but every fourth (layers 0, 4, … attend to everything);
 * - a learned sink logit per query head (`self_attn.sinks`) in every softmax's denominator
 *   (transformers scales each head's output by sigmoid(logsumexp(logits) − sink), the same);
 * - `layer_rope_theta`: a RoPE base per layer, 0 for a layer without RoPE (ModelConfig.nopeLayers).
 *   Rotating layers that share one base run with it as rope_theta; bases that differ between
 *   layers are kept per layer (ModelConfig.layerRopeThetas), each layer rotating with its own.
 * transformers has no renaming for this family's checkpoints, so they hold its modules' own names:
 * the router `block_sparse_moe.router.weight`, the experts `block_sparse_moe.experts.gate_up_proj`
 * [E, 2I, H] (gate rows first) and `experts.down_proj` [E, H, I]. Defaults: transformers'
 * GraniteMoeSWAConfig.
 */
import { z } from 'zod';
import { CheckpointError } from '../errors.js';
import { defineFamily } from '../family.js';
import { perLayerWindow, windowSize } from '../sliding-window.js';
import type { ModelConfig } from '../types.js';
import { graniteMoeKeys, graniteMoePart } from './granitemoe.js';
import { graniteMoeSharedNames, sharedMlpKeys, sharedMlpPart } from './granitemoe-shared.js';

const LABEL = 'GraniteMoE-SWA';

const configSchema = z.looseObject({
  ...graniteMoeKeys,
  ...sharedMlpKeys,
  layer_rope_theta: z.array(z.number().nonnegative()).nullable().default(null),
});

/** The RoPE of each layer from layer_rope_theta (absent: every layer ropes with rope_theta). */
function layerRope(thetas: readonly number[] | null, numLayers: number, ropeTheta: number): Pick<ModelConfig, 'ropeTheta' | 'nopeLayers' | 'layerRopeThetas'> {
  if (thetas === null) return { ropeTheta };
  if (thetas.length !== numLayers)
    throw new CheckpointError('InvalidConfig', `config.json key 'layer_rope_theta': ${thetas.length} entries for num_hidden_layers ${numLayers} (${LABEL} config); list one base per layer (0: no RoPE)`);
  const bases = new Set(thetas.filter((t) => t !== 0));
  const nope = thetas.map((t) => t === 0);
  return {
    // the base every rotating layer shares (rope_theta where none rotates, or where they differ)
    ropeTheta: bases.size === 1 ? [...bases][0] : ropeTheta,
    ...(nope.includes(true) ? { nopeLayers: nope } : {}),
    ...(bases.size > 1 ? { layerRopeThetas: thetas } : {}),
  };
}

export const graniteMoeSwa = defineFamily({
  family: 'granitemoe_swa',
  label: LABEL,
  modelTypes: ['granitemoe_swa'],
  configSchema,
  normalize: (p, raw) => {
    const base = graniteMoePart('granitemoe_swa', p, raw);
    return {
      ...base,
      ...sharedMlpPart(p),
      attentionSinks: true,
      // transformers' default layer_types: every fourth layer full, from layer 0
      ...perLayerWindow(raw, p.num_hidden_layers, LABEL, windowSize(raw, LABEL, 128), (l) => l % 4 !== 0),
      ...layerRope(p.layer_rope_theta, p.num_hidden_layers, base.ropeTheta),
    };
  },
  isMoeLayer: () => true,
  names: {
    ...graniteMoeSharedNames,
    attention: { ...graniteMoeSharedNames.attention, sinks: 'model.layers.{l}.self_attn.sinks' },
    router: 'model.layers.{l}.block_sparse_moe.router.weight',
    fused: {
      gateUp: 'model.layers.{l}.block_sparse_moe.experts.gate_up_proj',
      down: 'model.layers.{l}.block_sparse_moe.experts.down_proj',
    },
  },
});
