/**
 * Argument checks shared by every pure-TS op. Each check throws an EngineError that names the
 * argument, what was expected and how to fix it, so a wrong call never reads or writes out of
 * bounds (typed arrays would silently return undefined / drop writes instead).
 */
import { EngineError, type FloatArray } from '../types.js';

/** A matrix dimension must be a non-negative safe integer. */
export function checkDim(op: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new EngineError(`${op}: ${name} must be a non-negative integer, got ${String(value)}`);
  }
}

export function checkDims(op: string, dims: Record<string, number>): void {
  for (const [name, value] of Object.entries(dims)) checkDim(op, name, value);
}

/** The array must hold exactly rows×cols elements (row-major, no padding). */
export function checkLength(op: string, name: string, array: ArrayLike<number>, rows: number, cols: number): void {
  if (!(array instanceof Float32Array || array instanceof Float64Array)) {
    throw new EngineError(`${op}: ${name} must be a Float32Array or Float64Array`);
  }
  const expected = rows * cols;
  if (array.length !== expected) {
    throw new EngineError(
      `${op}: ${name} has length ${array.length} but a ${rows}×${cols} row-major matrix needs ${expected}; ` +
        'pass an array of exactly that length (use subarray() to view part of a larger buffer)',
    );
  }
}

export function checkFloat64(op: string, name: string, array: unknown): asserts array is Float64Array {
  if (!(array instanceof Float64Array)) {
    throw new EngineError(`${op}: ${name} must be a Float64Array (this operation works in double precision)`);
  }
}

/** Inputs and output of one call share a dtype; mixing them is almost always a caller bug. */
export function checkSameDtype(op: string, arrays: Record<string, FloatArray>): void {
  const entries = Object.entries(arrays);
  const first = entries[0];
  if (!first) return;
  const ctor = first[1].constructor;
  for (const [name, array] of entries) {
    if (!(array instanceof Float32Array || array instanceof Float64Array)) {
      throw new EngineError(`${op}: ${name} must be a Float32Array or Float64Array`);
    }
    if (array.constructor !== ctor) {
      throw new EngineError(
        `${op}: ${first[0]} is a ${ctor.name} but ${name} is a ${array.constructor.name}; all arrays of one call must share a dtype`,
      );
    }
  }
}

/** The output must not share memory with an input: inputs are read while the output is written. */
export function checkNoOverlap(op: string, outName: string, out: FloatArray, inName: string, input: FloatArray): void {
  if (out.buffer !== input.buffer) return;
  const outStart = out.byteOffset;
  const outEnd = outStart + out.byteLength;
  const inStart = input.byteOffset;
  const inEnd = inStart + input.byteLength;
  if (outStart < inEnd && inStart < outEnd && out.length > 0 && input.length > 0) {
    throw new EngineError(`${op}: ${outName} overlaps ${inName} in memory; pass a separate output array`);
  }
}

export function checkFiniteNumber(op: string, name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new EngineError(`${op}: ${name} must be a finite number, got ${String(value)}`);
  }
}

export function checkRank(op: string, r: number, m: number, n: number): void {
  if (!Number.isSafeInteger(r) || r < 1 || r > Math.min(m, n)) {
    throw new EngineError(`${op}: rank r must be an integer in [1, min(m, n) = ${Math.min(m, n)}], got ${String(r)}`);
  }
}
