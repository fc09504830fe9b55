/**
 * The MXFP4-weight product check shared by test/engine/gemm-mxfp4.test.ts and the child processes
 * it starts with RFID_MOE_NATIVE_SIMD set. Two truths:
 * - an f64 sum of products over b decoded here from the format's definition (code × 2^(s − 127),
 *   FP4 values as transformers lists them), within the bound of f32 accumulation of k terms in any
 *   order plus the rounding of the final add;
 * - with f32 activations, the engine's own gemmBf16 on b decoded to BF16 (exact), bit for bit: the
 *   kernel is meant to be that product, from a quarter of the bytes.
 */
import type { Engine } from '../../src/engine/types.js';
import { checkDecodedProduct } from './decoded-product-check.js';
import { uniform } from './small-rows-check.js';

const FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/**
 * (m, n, k): the native paths. 1-8 rows: B decoded a panel at a time (256 KiB of BF16: 45 rows at
 * k = 2880, so n = 100 takes three panels) into the small-rows kernel; more rows: B decoded whole
 * into gemmBf16's own many-rows product. k from one group (32) to gpt-oss's 2880.
 */
export const MXFP4_SHAPES: Array<[number, number, number]> = [];
for (const m of [1, 2, 3, 8, 9, 40]) for (const [n, k] of [[1, 32], [5, 64], [33, 96], [100, 2880]]) MXFP4_SHAPES.push([m, n, k]);
MXFP4_SHAPES.push([130, 70, 512], [2, 1500, 160]);

/** Random blocks (every code) and scales around 2^0 (118-136: products of ordinary size). */
export function randomMxfp4(n: number, k: number, seed: number): { blocks: Uint8Array; scales: Uint8Array } {
  const u = uniform(n * k / 2 + n * k / 32, seed);
  const blocks = Uint8Array.from(u.subarray(0, n * k / 2), (x) => Math.floor((x + 1) * 128) & 255);
  const scales = Uint8Array.from(u.subarray(n * k / 2), (x) => 118 + (Math.floor((x + 1) * 9) % 19));
  return { blocks, scales };
}

/** b's values from the definition (f64, each exact in f32 or ±infinity), n × k. */
export function decodeMxfp4(blocks: Uint8Array, scales: Uint8Array, n: number, k: number): Float64Array {
  const out = new Float64Array(n * k);
  for (let j = 0; j < n; j++) {
    for (let p = 0; p < k; p++) {
      const byte = blocks[(j * k + p) >> 1];
      const code = p % 2 === 0 ? byte & 15 : byte >> 4;
      out[j * k + p] = Math.fround(FP4[code] * 2 ** (scales[(j * k + p) >> 5] - 127));
    }
  }
  return out;
}

/** The failures (empty when none) of `kernels.gemmMxfp4` on one shape, for beta 0 (c full of NaN), 1 and −0.5 (checkDecodedProduct). */
export function checkGemmMxfp4(engine: Engine, m: number, n: number, k: number): string[] {
  const given = uniform(m * k, 21 + m * 1000 + n);
  const { blocks, scales } = randomMxfp4(n, k, 22 + k);
  return checkDecodedProduct(engine, m, n, k, given, decodeMxfp4(blocks, scales, n, k), `m=${m} n=${n} k=${k}`, (c, beta) => engine.kernels.gemmMxfp4(m, n, k, given, blocks, scales, c, beta));
}
