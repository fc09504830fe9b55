/**
 * A generated MoE layer at Qwen3-30B-A3B shapes (experts of 768×2048) for the compression
 * benchmarks: per expert a low-rank signal of its own rank (16–96) and decay plus noise of its own
 * level (a head over a noise floor), routing counts Zipf-like (s = 1.1) over a seeded permutation;
 * and, for the activation-aware recipes, each expert's calibration Gram matrix.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Engine } from '../../src/engine/types.js';
import { f32BitsToBf16 } from '../../src/io/dtype.js';
import { mulberry32 } from '../../src/residual/prng.js';

export const P = 768;
export const D = 2048;

export function gaussianFiller(seed: number): (out: Float32Array, scale: number) => void {
  const uniform = mulberry32(seed);
  return (out, scale) => {
    for (let j = 0; j < out.length; j += 2) {
      const r = Math.sqrt(-2 * Math.log(uniform() + 1e-300)) * scale;
      const a = 2 * Math.PI * uniform();
      out[j] = r * Math.cos(a);
      if (j + 1 < out.length) out[j + 1] = r * Math.sin(a);
    }
  };
}

/**
 * Writes n experts (p×d f32) to `file`, one at a time, and returns Zipf-like routing counts.
 * `bf16`: every value rounded to the nearest bf16 number (still written as f32), as the weights of
 * a checkpoint stored in bf16 arrive.
 */
export function generateLayer(engine: Engine, file: string, n: number, seed: number, opts: { bf16?: boolean } = {}): number[] {
  const fill = gaussianFiller(seed);
  const shape = mulberry32(seed ^ 0x5bd1e995);
  const fd = openSync(file, 'w');
  const W = new Float32Array(P * D);
  for (let i = 0; i < n; i++) {
    const r = 16 + Math.floor(shape() * 81);
    const decay = 0.5 + shape();
    const U = new Float32Array(P * r);
    fill(U, 1);
    for (let row = 0; row < P; row++) for (let j = 0; j < r; j++) U[row * r + j] *= 3 / (1 + j) ** decay;
    const V = new Float32Array(r * D);
    fill(V, 1 / Math.sqrt(D));
    fill(W, 0.01 + 0.02 * shape()); // noise floor, then the signal on top
    engine.gemm(P, D, r, U, V, W, { beta: 1 });
    if (opts.bf16) {
      const words = new Uint32Array(W.buffer);
      for (let j = 0; j < words.length; j++) words[j] = f32BitsToBf16(words[j]) << 16;
    }
    writeSync(fd, W);
  }
  closeSync(fd);
  const perm = Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(seed + 17);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const counts = new Array<number>(n);
  perm.forEach((expert, rank) => (counts[expert] = Math.floor(100000 / (1 + rank) ** 1.1)));
  return counts;
}

/**
 * G_e = F_eᵀF_e over 256 synthetic "tokens" scaled by the expert's routing count, plus a small
 * isotropic floor: 128 directions shared by every expert (hidden states have strong common
 * directions) with decaying scales, and 128 of the expert's own. Deterministic per expert.
 */
export function syntheticGram(engine: Engine, e: number, tokens: number, seed: number): Float64Array {
  const half = 128;
  const common = new Float32Array(half * D);
  gaussianFiller(seed)(common, 1);
  const own = new Float32Array(half * D);
  gaussianFiller(seed + 7919 * (e + 1))(own, 0.5);
  const F = new Float64Array(2 * half * D);
  for (let r = 0; r < half; r++) {
    const s = 4 / (1 + r) ** 0.7;
    for (let j = 0; j < D; j++) {
      F[r * D + j] = s * common[r * D + j];
      F[(half + r) * D + j] = own[r * D + j] / (1 + r) ** 0.5;
    }
  }
  const G = new Float64Array(D * D);
  engine.syrk(D, 2 * half, F, G, { trans: true });
  const scale = Math.max(tokens, 0) / (2 * half);
  for (let j = 0; j < G.length; j++) G[j] *= scale;
  for (let i = 0; i < D; i++) G[i * D + i] += 1e-3 * scale;
  return G;
}
