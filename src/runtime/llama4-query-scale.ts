/**
 * Llama 4's attention scaling as Mistral 4 uses it (ModelConfig.llama4QueryScale): transformers'
 * get_llama_4_attn_scale gives each position s = 1 + beta·ln(1 + ⌊position / original⌋), in f32
 * step by step, and multiplies the position's whole query (every head, after RoPE) by it. A
 * query's scores scale with it and its keys and values do not, so it applies alike to a prompt,
 * a decoding step and a prompt's later chunk: each row by its own position.
 */
import type { Llama4QueryScale } from '../checkpoint/types.js';

/** Multiplies row r of `q` (rows × width) by its position's scale. */
export function scaleQueriesByPosition(scale: Llama4QueryScale, positions: Int32Array, rows: number, width: number, q: Float32Array): void {
  const f = Math.fround;
  const beta = f(scale.beta);
  const original = f(scale.originalMaxPositions);
  for (let r = 0; r < rows; r++) {
    const s = f(1 + f(beta * f(Math.log(f(1 + Math.floor(f(positions[r] / original)))))));
    if (s === 1) continue;
    // one rounding a value, as the f32 product (the double product of two f32 values is exact)
    for (let i = r * width; i < (r + 1) * width; i++) q[i] *= s;
  }
}
