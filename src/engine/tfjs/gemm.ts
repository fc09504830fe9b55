/**
 * GEMM on a tfjs backend: C (m×n) = alpha · op(A) · op(B) + beta · C, row-major Float32Arrays.
 *
 * The product runs as one `tf.matMul` with tfjs's own transpose flags (no explicit transposed
 * copies); alpha and beta are applied in JS on the downloaded result, an O(m·n) pass that is small
 * next to the O(m·n·k) product and keeps beta = 0 exact (C's old content, possibly NaN, is never read).
 */
import { EngineError, type FloatArray, type GemmOptions } from '../types.js';
import type { TfModule } from './backends.js';

function checkDim(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new EngineError(`gemm: ${name} must be a non-negative integer, got ${value}`);
}

function checkLength(name: string, array: FloatArray, rows: number, cols: number): void {
  if (array.length !== rows * cols) {
    throw new EngineError(`gemm: ${name} has ${array.length} elements but its dimensions say ${rows}×${cols} = ${rows * cols}; pass the matching m, n, k and transpose flags`);
  }
}

function checkScalar(name: string, value: number): void {
  if (!Number.isFinite(value)) throw new EngineError(`gemm: ${name} must be a finite number, got ${value}`);
}

/** Shapes of A and B as stored (before op), after validating everything against the arrays. */
export function validateGemm(
  m: number,
  n: number,
  k: number,
  a: FloatArray,
  b: FloatArray,
  c: FloatArray,
  opts: GemmOptions,
): { aShape: [number, number]; bShape: [number, number] } {
  checkDim('m', m);
  checkDim('n', n);
  checkDim('k', k);
  const sameType = (a instanceof Float32Array && b instanceof Float32Array && c instanceof Float32Array) ||
    (a instanceof Float64Array && b instanceof Float64Array && c instanceof Float64Array);
  if (!sameType) throw new EngineError('gemm: a, b and c must all be Float32Array or all be Float64Array');
  const aShape: [number, number] = opts.transA ? [k, m] : [m, k];
  const bShape: [number, number] = opts.transB ? [n, k] : [k, n];
  checkLength(opts.transA ? 'a (k×m, transA)' : 'a (m×k)', a, aShape[0], aShape[1]);
  checkLength(opts.transB ? 'b (n×k, transB)' : 'b (k×n)', b, bShape[0], bShape[1]);
  checkLength('c (m×n)', c, m, n);
  checkScalar('alpha', opts.alpha ?? 1);
  checkScalar('beta', opts.beta ?? 0);
  return { aShape, bShape };
}

/** c ← alpha·product + beta·c (BLAS convention: with beta = 0 the old c is not read). */
function combine(c: Float32Array, product: ArrayLike<number> | null, alpha: number, beta: number): void {
  const count = c.length;
  if (product === null) {
    // alpha = 0 or k = 0: the product contributes nothing.
    if (beta === 0) c.fill(0);
    else if (beta !== 1) for (let i = 0; i < count; i++) c[i] *= beta;
    return;
  }
  if (beta === 0) {
    if (alpha === 1) c.set(product);
    else for (let i = 0; i < count; i++) c[i] = alpha * product[i];
  } else {
    for (let i = 0; i < count; i++) c[i] = alpha * product[i] + beta * c[i];
  }
}

/** Float32 GEMM through `tf.matMul`; arguments must already be validated by {@link validateGemm}. */
export function tfjsGemmF32(
  tf: TfModule,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  opts: GemmOptions,
  shapes: { aShape: [number, number]; bShape: [number, number] },
): void {
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  if (m === 0 || n === 0) return;
  if (k === 0 || alpha === 0) {
    combine(c, null, alpha, beta);
    return;
  }
  // tidy frees the two uploaded inputs and the product even if the backend throws midway.
  tf.tidy(() => {
    const ta = tf.tensor2d(a, shapes.aShape, 'float32');
    const tb = tf.tensor2d(b, shapes.bShape, 'float32');
    const product = tf.matMul(ta, tb, opts.transA ?? false, opts.transB ?? false);
    combine(c, product.dataSync() as Float32Array, alpha, beta);
  });
}
