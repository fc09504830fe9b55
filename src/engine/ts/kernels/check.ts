/** Size checks of the forward kernels (the native addon makes the same ones in C++). */
import { EngineError } from '../../types.js';
import { checkDims } from '../validate.js';

export { checkDims };

export function checkFloat32(op: string, name: string, array: unknown): asserts array is Float32Array {
  if (!(array instanceof Float32Array)) throw new EngineError(`${op}: ${name} must be a Float32Array`);
}

/** Whether two typed arrays share memory (the kernels refuse an output that overlaps an input). */
export function sharesMemory(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** The array must hold at least `needed` elements. */
export function checkAtLeast(op: string, name: string, array: ArrayLike<number>, needed: number, hint: string): void {
  if (array.length < needed) {
    throw new EngineError(`${op}: ${name} has ${array.length} elements but at least ${needed} are needed (check ${hint})`);
  }
}

/** Every index must name one of `rows` rows. */
export function checkIndices(op: string, index: Int32Array, count: number, rows: number, what: string): void {
  for (let i = 0; i < count; i++) {
    const v = index[i];
    if (v < 0 || v >= rows) throw new EngineError(`${op}: index[${i}] = ${v} is not a row of ${what} (${rows} rows)`);
  }
}

/** An attention window: a positive integer, or null for none. */
export function checkWindow(op: string, window: number | null): void {
  if (window !== null && (!Number.isSafeInteger(window) || window < 1)) throw new EngineError(`${op}: window must be a positive integer or null, got ${String(window)}`);
}

/** The value head width of the attention kernels: a positive integer, or absent / null / 0 for headDim. */
export function checkedValueHeadDim(op: string, valueHeadDim: number | null | undefined, headDim: number): number {
  if (valueHeadDim === null || valueHeadDim === undefined || valueHeadDim === 0) return headDim;
  if (!Number.isSafeInteger(valueHeadDim) || valueHeadDim < 1) throw new EngineError(`${op}: valueHeadDim must be a positive integer or null, got ${String(valueHeadDim)}`);
  return valueHeadDim;
}

/**
 * Attention sinks (ForwardKernels.causalAttention, cachedAttention): absent, or one f32 logit per
 * query head. A shorter array would read past its end (or a longer one hide a head count mixed up
 * with the kv heads'), and one overlapping the output would change as the heads are written.
 */
export function checkSinks(op: string, sinks: Float32Array | null | undefined, numHeads: number, context: Float32Array): void {
  if (sinks === null || sinks === undefined) return;
  checkFloat32(op, 'sinks', sinks);
  if (sinks.length !== numHeads) throw new EngineError(`${op}: sinks has ${sinks.length} elements but numHeads = ${numHeads} (one sink logit per query head)`);
  if (sharesMemory(sinks, context)) throw new EngineError(`${op}: context shares memory with sinks`);
}

/** An element-wise kernel's two f32 operands, each of at least `length` values. */
export function checkElementwisePair(op: string, length: number, aName: string, a: unknown, bName: string, b: unknown): void {
  checkDims(op, { length });
  checkFloat32(op, aName, a);
  checkFloat32(op, bName, b);
  checkAtLeast(op, aName, a, length, 'length');
  checkAtLeast(op, bName, b, length, 'length');
}
