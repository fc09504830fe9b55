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

/** An element-wise kernel's two f32 operands, each of at least `length` values. */
export function checkElementwisePair(op: string, length: number, aName: string, a: unknown, bName: string, b: unknown): void {
  checkDims(op, { length });
  checkFloat32(op, aName, a);
  checkFloat32(op, bName, b);
  checkAtLeast(op, aName, a, length, 'length');
  checkAtLeast(op, bName, b, length, 'length');
}
