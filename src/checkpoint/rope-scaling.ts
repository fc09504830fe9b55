/**
 * A config's RoPE scaling as written: the block (`rope_scaling`, as a model's authors write
 * config.json, else `rope_parameters`, where transformers ≥ 5 writes it with rope_theta) and its
 * type. The runtime implements the default RoPE, YaRN, linear and Llama 3 scaling
 * (src/runtime/rope.ts) and refuses the others; `describe` reports the same.
 */
import type { ModelConfig } from './types.js';

export interface RopeScaling {
  /** where it was read: 'rope_scaling' or 'rope_parameters' (null: neither, the default RoPE) */
  key: 'rope_scaling' | 'rope_parameters' | null;
  /** rope_type (or the older `type`); 'default' when absent */
  type: string;
  params: Record<string, unknown> | null;
}

/**
 * partial_rotary_factor as written: the scaling block's first (transformers moves a top-level one
 * into the block only where the block has none, and saves a family's default at the top level
 * beside the block's), else the top level's; undefined when absent.
 */
export function partialRotaryFactor(raw: Record<string, unknown>): unknown {
  return ropeScalingOf(raw).params?.partial_rotary_factor ?? raw.partial_rotary_factor ?? undefined;
}

/**
 * What the runtime cannot run of this config's RoPE (a type it does not implement, a partial
 * rotary width its family does not read), said for the user; null: it runs it. A family that
 * rotates part of each head sets `rotaryDim` (GLM-4.5); the others rotate whole heads.
 */
export function ropeProblem(config: Pick<ModelConfig, 'raw' | 'rotaryDim' | 'ropeAlpha' | 'longRope'>): string | null {
  const raw = config.raw;
  const partial = partialRotaryFactor(raw);
  if (config.rotaryDim === undefined && partial !== undefined && partial !== null && partial !== 1)
    return `partial_rotary_factor ${JSON.stringify(partial)} is not implemented for this family (RoPE over whole heads is)`;
  const { key, type } = ropeScalingOf(raw);
  // Hunyuan's "dynamic" with an NTK alpha is a raised base within max_position_embeddings (ropeAlpha)
  if (type === 'dynamic' && config.ropeAlpha !== undefined) return null;
  // PhiMoE's "longrope" as transformers runs it: its short factors and one mscale (ModelConfig.longRope)
  if (type === 'longrope' && config.longRope !== undefined) {
    const { mscale, longMscale } = config.longRope;
    return mscale === longMscale ? null : `${key ?? 'rope_scaling'}'s long_mscale (${longMscale}) differs from its short_mscale (${mscale}), and transformers switches between them with a batch's longest position, which the runtime does not do`;
  }
  if (!RUNNABLE_ROPE_TYPES.includes(type)) return `${key ?? 'rope_scaling'} of type "${type}" is not implemented (the default RoPE, "yarn", "linear" and "llama3" are)`;
  return null;
}

/** RoPE types the runtime runs. */
export const RUNNABLE_ROPE_TYPES: readonly string[] = ['default', 'yarn', 'linear', 'llama3'];

export function ropeScalingOf(raw: Record<string, unknown>): RopeScaling {
  for (const key of ['rope_scaling', 'rope_parameters'] as const) {
    const block = raw[key];
    if (block !== undefined && block !== null && typeof block === 'object' && !Array.isArray(block)) {
      const params = block as Record<string, unknown>;
      return { key, type: String(params.rope_type ?? params.type ?? 'default'), params };
    }
  }
  return { key: null, type: 'default', params: null };
}
