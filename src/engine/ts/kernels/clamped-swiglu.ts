/**
 * gpt-oss's expert activation in place of g (rows × width):
 *   g' = min(g + gateBias, limit),  u' = clamp(u + upBias, −limit, limit),
 *   g ← (u' + 1) · g' · sigmoid(alpha · g'),
 * each step rounded to f32 and the sigmoid's exp taken in f64, as the native kernel computes it
 * too (native/moe_experts.cc), so the one-call experts and the expert-by-expert path agree bit for
 * bit. The biases are one expert's, de-interleaved (gpt-oss stores gate and up alternating).
 */
export function clampedSwiGluInPlace(rows: number, width: number, g: Float32Array, u: Float32Array, gateBias: Float32Array, upBias: Float32Array, alpha: number, limit: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    for (let i = 0; i < width; i++) {
      const gate = Math.min(Math.fround(g[o + i] + gateBias[i]), limit);
      const up = Math.min(Math.max(Math.fround(u[o + i] + upBias[i]), -limit), limit);
      const glu = Math.fround(gate * Math.fround(1 / (1 + Math.exp(-Math.fround(gate * alpha)))));
      g[o + i] = Math.fround(Math.fround(up + 1) * glu);
    }
  }
}
