/**
 * IBM GraniteMoE-shared (`granitemoeshared`, GraniteMoeSharedForCausalLM): GraniteMoE
 * (granitemoe.ts) with an always-on shared MLP of width `shared_intermediate_size` beside the
 * routed experts, none where that is 0 (transformers' default). The shared MLP is stored as the experts are, gate and up in
 * one tensor: `shared_mlp.input_linear.weight` [2S, H] (gate rows first) and
 * `shared_mlp.output_linear.weight` [H, S]; its output is added to the experts' ungated, and the
 * sum is scaled by residual_multiplier. Defaults: transformers' GraniteMoeSharedConfig.
 */
import { z } from 'zod';
import { defineFamily } from '../family.js';
import type { ModelConfig } from '../types.js';
import { nonNegativeInt } from './common.js';
import { graniteMoeKeys, graniteMoeNames, graniteMoePart } from './granitemoe.js';

/** the shared MLP's width; 0: none */
export const sharedMlpKeys = { shared_intermediate_size: nonNegativeInt.default(0) };

export function sharedMlpPart(p: { shared_intermediate_size: number }): Pick<ModelConfig, 'sharedExpertIntermediateSize' | 'sharedExpertGated'> {
  return { sharedExpertIntermediateSize: p.shared_intermediate_size, sharedExpertGated: false };
}

/** GraniteMoE's names and the shared MLP's (read where shared_intermediate_size > 0) */
export const graniteMoeSharedNames = {
  ...graniteMoeNames,
  shared: {
    gateUp: 'model.layers.{l}.shared_mlp.input_linear.weight',
    down: 'model.layers.{l}.shared_mlp.output_linear.weight',
  },
};

const configSchema = z.looseObject({ ...graniteMoeKeys, ...sharedMlpKeys });

export const graniteMoeShared = defineFamily({
  family: 'granitemoeshared',
  label: 'GraniteMoE-shared',
  modelTypes: ['granitemoeshared'],
  configSchema,
  normalize: (p, raw) => ({ ...graniteMoePart('granitemoeshared', p, raw), ...sharedMlpPart(p) }),
  isMoeLayer: () => true,
  names: graniteMoeSharedNames,
});
