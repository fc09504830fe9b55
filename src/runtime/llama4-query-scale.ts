/**
 * Llama 4's attention temperature tuning, and Mistral 4's use of it (ModelConfig.llama4QueryScale):
 * each position's scale s = 1 + beta·ln(1 + ⌊(position + offset) / original⌋), in f32 step by step
 * as transformers computes it (Llama 4: log1p(floor((position + 1) / floor_scale)) · attn_scale + 1;
 * Mistral 4's get_llama_4_attn_scale: offset 0), multiplies the position's whole query (every
 * head, after RoPE and any q/k norm). A query's scores scale with it and its keys and values do
 * not, so it applies alike to a prompt, a decoding step and a prompt's later chunk: each row by its
 * own position.
 */
import type { Llama4QueryScale, ModelConfig } from '../checkpoint/types.js';

/** The query scaling of decoder layer `layer`, null: its queries are not scaled. */
export function queryScaleOf(config: Pick<ModelConfig, 'llama4QueryScale'>, layer: number): Llama4QueryScale | null {
  const scale = config.llama4QueryScale;
  return scale !== undefined && (scale.layers?.[layer] ?? true) ? scale : null;
}

/** Multiplies row r of `q` (rows × width) by its position's scale. */
export function scaleQueriesByPosition(scale: Llama4QueryScale, positions: Int32Array, rows: number, width: number, q: Float32Array): void {
  const f = Math.fround;
  const beta = f(scale.beta);
  const original = f(scale.originalMaxPositions);
  const offset = scale.positionOffset ?? 0;
  for (let r = 0; r < rows; r++) {
    // position + offset is a whole number, exact in f32 up to 2^24
    const s = f(1 + f(beta * f(Math.log(f(1 + Math.floor(f((positions[r] + offset) / original)))))));
    if (s === 1) continue;
    // one rounding a value, as the f32 product (the double product of two f32 values is exact)
    for (let i = r * width; i < (r + 1) * width; i++) q[i] *= s;
  }
}
