/**
 * ForwardKernels.causalAttention in TypeScript (see src/engine/types.ts): the per-head loop, one
 * product pair per sequence, kv head, group of query heads and causal tile of query rows. The
 * native engine runs the same units, with the same tiling, on its threads (native/attention.cc);
 * `causalAttentionUnits` with the native engine's own products is what that kernel is tested
 * against, bit for bit.
 */
import { EngineError } from '../../types.js';
import { checkDims, checkedValueHeadDim, checkFloat32, checkSinks, checkWindow, sharesMemory } from './check.js';
import { cachedAttentionUnits, tsProducts, type AttentionProducts } from './cached-attention.js';

/** Checks the arguments as the native kernel does. */
export function checkCausalAttention(
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array, sinks?: Float32Array | null,
  valueHeadDim?: number | null,
): void {
  const op = 'causalAttention';
  checkDims(op, { numHeads, numKvHeads, headDim });
  const vDim = checkedValueHeadDim(op, valueHeadDim, headDim);
  checkWindow(op, window);
  if (numHeads === 0 || numKvHeads === 0 || headDim === 0) throw new EngineError(`${op}: numHeads, numKvHeads and headDim must be at least 1`);
  if (numHeads % numKvHeads !== 0) throw new EngineError(`${op}: numHeads = ${numHeads} is not a multiple of numKvHeads = ${numKvHeads}`);
  if (!Number.isFinite(scale)) throw new EngineError(`${op}: scale must be finite`);
  if (!(offsets instanceof Int32Array)) throw new EngineError(`${op}: offsets must be an Int32Array`);
  if (offsets.length < 1 || offsets[0] !== 0) throw new EngineError(`${op}: offsets must start at 0 (one more entry than sequences)`);
  for (let s = 0; s + 1 < offsets.length; s++) {
    if (offsets[s + 1] < offsets[s]) throw new EngineError(`${op}: offsets must not decrease (sequence ${s})`);
  }
  const rows = offsets[offsets.length - 1];
  const sizes: Array<[string, Float32Array, number]> = [
    ['q', q, numHeads * headDim],
    ['k', k, numKvHeads * headDim],
    ['v', v, numKvHeads * vDim],
    ['context', context, numHeads * vDim],
  ];
  for (const [name, array, width] of sizes) {
    checkFloat32(op, name, array);
    if (array.length !== rows * width) {
      throw new EngineError(`${op}: ${name} has ${array.length} elements but is ${rows}×${width} (check offsets, heads, headDim and valueHeadDim)`);
    }
  }
  for (const [name, array] of [['q', q], ['k', k], ['v', v]] as const) {
    if (sharesMemory(array, context)) {
      throw new EngineError(`${op}: context shares memory with ${name}`);
    }
  }
  checkSinks(op, sinks, numHeads, context);
}

/**
 * The per-head loop on the given products (arguments already checked): the cached loop's, each
 * sequence with no past and its own rows of k and v as its keys and values.
 */
export function causalAttentionUnits(
  products: AttentionProducts,
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array, sinks: Float32Array | null = null,
  valueHeadDim: number = headDim,
): void {
  const sequences = offsets.length - 1;
  const own = (a: Float32Array, width: number) => Array.from({ length: sequences }, (_, s) => a.subarray(offsets[s] * width, offsets[s + 1] * width));
  const none = new Int32Array(sequences);
  const cache = { past: none, keys: own(k, numKvHeads * headDim), values: own(v, numKvHeads * valueHeadDim), headStride: none };
  cachedAttentionUnits(products, numHeads, numKvHeads, headDim, offsets, cache, q, scale, window, context, sinks, valueHeadDim);
}

export function causalAttention(
  numHeads: number, numKvHeads: number, headDim: number, offsets: Int32Array,
  q: Float32Array, k: Float32Array, v: Float32Array, scale: number, window: number | null, context: Float32Array, sinks?: Float32Array | null,
  valueHeadDim?: number | null,
): void {
  checkCausalAttention(numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, context, sinks, valueHeadDim);
  causalAttentionUnits(tsProducts, numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, context, sinks ?? null, valueHeadDim ?? headDim);
}
