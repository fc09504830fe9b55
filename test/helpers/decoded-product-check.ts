/**
 * What the checks of products against packed weights (MXFP4: mxfp4-gemm-check.ts, FP8:
 * fp8-gemm-check.ts) share, once b is decoded from the format's definition: two truths for
 * `product(c, beta)` (c m×n = a·bᵀ + beta·c), for beta 0 (c full of NaN), 1 and −0.5:
 * - with f32 activations, the engine's own gemmBf16 on b decoded to BF16, bit for bit;
 * - an f64 sum of products, within the bound of f32 accumulation of k terms in any order plus the
 *   rounding of the final add.
 */
import { roundedToBf16 } from '../../src/engine/ts/kernels/gemm-bf16.js';
import type { Engine } from '../../src/engine/types.js';
import { uniform } from './small-rows-check.js';

const U = 2 ** -24;

/** The BF16 patterns of values exact in BF16 (b decoded). */
export function toBf16(values: Float64Array): Uint16Array {
  const bits = new Uint32Array(new Float32Array(values).buffer);
  return Uint16Array.from(bits, (b) => b >>> 16);
}

/**
 * The failures (empty when none) of `product` for a (m×k, the given activations; rounded to BF16
 * first at the engine's 'bf16' matmul activations) and b (n×k, decoded in f64, each value exact in
 * BF16); `label` starts each failure's message.
 */
export function checkDecodedProduct(
  engine: Engine, m: number, n: number, k: number, given: Float32Array, w: Float64Array, label: string,
  product: (c: Float32Array, beta: number) => void,
): string[] {
  const failures: string[] = [];
  const bf16Activations = engine.matmulActivations === 'bf16';
  const a = bf16Activations ? roundedToBf16(given) : given;
  const wBf16 = toBf16(w);
  for (const beta of [0, 1, -0.5]) {
    const c0 = uniform(m * n, 23);
    const c = beta === 0 ? new Float32Array(m * n).fill(Number.NaN) : Float32Array.from(c0);
    product(c, beta);
    if (!bf16Activations) {
      const same = beta === 0 ? new Float32Array(m * n) : Float32Array.from(c0);
      engine.kernels.gemmBf16(m, n, k, given, wBf16, same, beta);
      for (let i = 0; i < m * n; i++) {
        if (!Object.is(c[i], same[i])) {
          failures.push(`${label} beta=${beta} C[${i}] = ${c[i]}, gemmBf16 on the decoded matrix gives ${same[i]}`);
          break;
        }
      }
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        let abs = 0;
        for (let p = 0; p < k; p++) {
          const t = a[i * k + p] * w[j * k + p];
          sum += t;
          abs += Math.abs(t);
        }
        const want = sum + (beta === 0 ? 0 : beta * c0[i * n + j]);
        const bound = 1.01 * (k + 2) * U * (abs + Math.abs(beta * c0[i * n + j])) + 1e-30;
        const got = c[i * n + j];
        if (!(Math.abs(got - want) <= bound)) failures.push(`${label} beta=${beta} C[${i},${j}] = ${got}, want ${want} ± ${bound}`);
      }
    }
  }
  return failures;
}
