/**
 * The decoder's norms as the config's kind has them (ModelConfig.normKind): RMSNorm through the
 * engine's kernel, or torch's LayerNorm (mean-centred, biased variance) with its weight and
 * optional bias, which is cheap beside the projections and so written here over the rows.
 */
import type { Engine } from '../engine/types.js';
import type { ModelConfig } from '../checkpoint/types.js';
import type { NormWeights } from './weights.js';

/** `out` = each of the rows of x (rows × hidden) normed as the config's kind says; out may be x. */
export function applyNorm(engine: Engine, config: Pick<ModelConfig, 'hiddenSize' | 'rmsNormEps' | 'normKind'>, rows: number, x: Float32Array, norm: NormWeights, out: Float32Array): void {
  const h = config.hiddenSize;
  if (config.normKind?.kind !== 'layer') {
    engine.kernels.rmsNorm(rows, h, x, norm.weight, config.rmsNormEps, out);
    return;
  }
  if (config.normKind.bias && !norm.bias) throw new Error('the config asks for LayerNorms with a bias but a norm came without one');
  layerNormRows(x, rows, h, norm.weight, config.normKind.bias ? (norm.bias ?? null) : null, config.rmsNormEps, out);
}

/**
 * torch's LayerNorm over each row (biased variance), × weight, + bias where given; out may be x.
 * Sums in f64: transformers' norms (Cohere's upcast, nn.LayerNorm) reduce in f32 or better.
 */
export function layerNormRows(x: Float32Array, rows: number, width: number, weight: Float32Array, bias: Float32Array | null, eps: number, out: Float32Array = x): void {
  for (let r = 0; r < rows; r++) {
    const at = r * width;
    let mean = 0;
    for (let i = 0; i < width; i++) mean += x[at + i];
    mean /= width;
    let variance = 0;
    for (let i = 0; i < width; i++) variance += (x[at + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / width + eps);
    if (bias) for (let i = 0; i < width; i++) out[at + i] = (x[at + i] - mean) * inv * weight[i] + bias[i];
    else for (let i = 0; i < width; i++) out[at + i] = (x[at + i] - mean) * inv * weight[i];
  }
}
