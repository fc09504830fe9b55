/**
 * Element-wise helpers of the forward pass; the heavy kernels (softmaxes, norms, silu·mul, RoPE,
 * the residual add, gathers) are `engine.kernels`. They mirror Hugging Face's f32 arithmetic where
 * the result feeds a decision (RoPE angles are formed in f32 exactly as `LlamaRotaryEmbedding` does,
 * because at long positions an f64 angle differs from torch's by more than 1e-4).
 */
// The softmax kernel lives with the ts engine's forward kernels (src/engine/ts/kernels); routing
// runs it directly (a few experts per token: not worth a native call).
export { softmaxInPlace } from '../engine/ts/kernels/softmax.js';
import type { ForwardKernels } from '../engine/types.js';

/**
 * Adds a bias vector to every row, a row at a time through the engine's addInto (the native
 * engine's is vectorised: GLM-4.5's q/k/v biases took 3.9% of an 8-stream decoding step as a
 * JavaScript loop).
 */
export function addRowBias(x: Float32Array, rows: number, width: number, bias: Float32Array, kernels: Pick<ForwardKernels, 'addInto'>): void {
  for (let r = 0; r < rows; r++) kernels.addInto(width, x.subarray(r * width, (r + 1) * width), bias);
}

/** x[i] ×= factor in f32 (the factor rounded to f32 first, as torch multiplies an f32 tensor by a Python float); a factor of 1 or none leaves x as it is. */
export function scaleInPlace(x: Float32Array, factor: number | undefined, length = x.length): void {
  if (factor === undefined || factor === 1) return;
  const f = Math.fround(factor);
  for (let i = 0; i < length; i++) x[i] *= f;
}

export function clampInPlace(x: Float32Array, limit: number): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v > limit) x[i] = limit;
    else if (v < -limit) x[i] = -limit;
  }
}

/**
 * Indices of the k largest values of row[offset..offset+length), largest first; equal values
 * keep the lower index first (what torch.topk returns for ties in practice on CPU).
 */
export function topK(row: Float32Array, offset: number, length: number, k: number, outIndex: Int32Array, outOffset: number): void {
  for (let slot = 0; slot < k; slot++) outIndex[outOffset + slot] = -1;
  for (let j = 0; j < length; j++) {
    const v = row[offset + j];
    // insertion into the sorted top-k list; strict > keeps earlier (lower) indices ahead on ties
    let pos = k;
    while (pos > 0) {
      const prev = outIndex[outOffset + pos - 1];
      if (prev !== -1 && !(v > row[offset + prev])) break;
      pos--;
    }
    if (pos >= k) continue;
    for (let s = k - 1; s > pos; s--) outIndex[outOffset + s] = outIndex[outOffset + s - 1];
    outIndex[outOffset + pos] = j;
  }
}

/**
 * Reusable scratch buffers for intermediate products inside one synchronous kernel (the SwiGLU
 * gate/up activations): allocating fresh zero-filled arrays of rows × width for every expert
 * call showed up as page faults and GC in profiles. A buffer is only valid until the next call
 * asking for the same `name`, so never return it or keep it across an await.
 */
const scratchBuffers = new Map<string, Float32Array>();

export function scratch(name: string, length: number): Float32Array {
  let buf = scratchBuffers.get(name);
  if (!buf || buf.length < length) {
    buf = new Float32Array(Math.max(length, Math.ceil((buf?.length ?? 0) * 1.5)));
    scratchBuffers.set(name, buf);
  }
  return buf.subarray(0, length);
}

const onesByLength = new Map<number, Float32Array>();

/** `length` ones, shared (never write to it): the weight of a norm that has none (Llama 4's q/k norm). */
export function ones(length: number): Float32Array {
  let buf = onesByLength.get(length);
  if (!buf) onesByLength.set(length, (buf = new Float32Array(length).fill(1)));
  return buf;
}

/** src[from…from+width) as interleaved pairs (a0 b0 a1 b1 …) written to dst[to…] as halves (a0 a1 … b0 b1 …). */
export function deinterleave(src: Float32Array, from: number, width: number, dst: Float32Array, to: number): void {
  const half = width / 2;
  for (let i = 0; i < half; i++) {
    dst[to + i] = src[from + 2 * i];
    dst[to + half + i] = src[from + 2 * i + 1];
  }
}

/**
 * The first `width` values of each of `count` heads of `headDim` in `x`, interleaved pairs made
 * halves in place (deinterleave), so that the engine's rotate-half RoPE rotates the pairs an
 * interleaved RoPE rotates. Done to the queries and the keys alike, it leaves every q·k as it is.
 */
export function deinterleaveHeads(x: Float32Array, count: number, headDim: number, width: number): void {
  const head = scratch('deinterleave-head', width);
  for (let h = 0; h < count; h++) {
    const at = h * headDim;
    head.set(x.subarray(at, at + width));
    deinterleave(head, 0, width, x, at);
  }
}
