/**
 * Non-finite values (NaN, ±Inf) are errors, never numbers to compute with: a NaN weight turns every
 * routing count, factor and perplexity it touches into NaN without any other sign. The checks
 * here name the decoder layer and the tensor so the user can find the damaged shard.
 *
 * `withFiniteChecks(ckpt)` returns the same checkpoint with every read checked (one extra pass
 * over each tensor read, negligible next to the arithmetic done on it).
 */
import { expertLocation } from './expert-location.js';
import type { Checkpoint } from './types.js';
import { RfidMoeError } from '../errors.js';

export class NonFiniteError extends RfidMoeError {
  readonly kind = 'NonFiniteError';
}

/** Index of the first NaN or ±Inf, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v - v is NaN exactly for NaN and ±Inf
    if (v - v !== 0) return i;
  }
  return -1;
}

/** "layer 3" for tensors of `model.layers.3.…`, else "outside the decoder layers". */
export function layerOfTensor(name: string): string {
  const m = /(?:^|\.)layers\.(\d+)\./.exec(name);
  return m ? `layer ${m[1]}` : 'outside the decoder layers';
}

function describeValue(v: number): string {
  return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf';
}

/**
 * Throws NonFiniteError when `values` holds NaN/Inf. `what` names the tensor; `offset` is the
 * element index of values[0] within it (for chunked checks).
 */
export function assertFinite(values: ArrayLike<number>, what: string, fix: string, offset = 0): void {
  const i = firstNonFinite(values);
  if (i < 0) return;
  throw new NonFiniteError(`${what} holds ${describeValue(values[i])} (element ${offset + i}); ${fix}`);
}

export const DAMAGED_WEIGHTS_FIX = 'the checkpoint is damaged or was saved from a diverged model: restore the original weights';

/** Checks one tensor's values read from a checkpoint, naming its layer and tensor. */
export function assertFiniteTensor(values: ArrayLike<number>, tensor: string, offset = 0): void {
  const i = firstNonFinite(values);
  if (i < 0) return;
  throw new NonFiniteError(`${layerOfTensor(tensor)}, tensor ${tensor}: holds ${describeValue(values[i])} (element ${offset + i}); ${DAMAGED_WEIGHTS_FIX}`);
}

/** Index of the first BF16 pattern that is NaN or ±Inf (all 8 exponent bits set), or -1. */
export function firstNonFiniteBf16(bits: Uint16Array): number {
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7f80) === 0x7f80) return i;
  return -1;
}

function bf16Value(bits: number): number {
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
}

/** assertFiniteTensor for BF16 bit patterns as stored. */
function assertFiniteBf16Tensor(bits: Uint16Array, tensor: string, offset = 0): void {
  const i = firstNonFiniteBf16(bits);
  if (i >= 0) assertFiniteTensor([bf16Value(bits[i])], tensor, offset + i);
}

function expertNonFinite(ckpt: Checkpoint, layer: number, expert: number, type: 'gate' | 'up' | 'down', value: number, index: number): NonFiniteError {
  const moe = ckpt.layout.layers[layer]?.moe;
  const tensor = moe ? expertLocation(moe, ckpt.config, expert, type)?.tensor : undefined;
  return new NonFiniteError(`layer ${layer}, expert ${expert} ${type} (tensor ${tensor ?? '?'}): holds ${describeValue(value)} (element ${index} of the expert's matrix); ${DAMAGED_WEIGHTS_FIX}`);
}

/**
 * The checkpoint with every read (f32, and BF16 as stored) checked for NaN/Inf. A Proxy, so everything else (config,
 * layout, close, instanceof) is the original's.
 */
export function withFiniteChecks<T extends Checkpoint>(ckpt: T): T {
  return new Proxy(ckpt, {
    get(target, prop, receiver) {
      if (prop === 'readF32') {
        return async (name: string) => {
          const v = await target.readF32(name);
          assertFiniteTensor(v, name);
          return v;
        };
      }
      if (prop === 'readRowsF32') {
        return async (name: string, start: number, end: number) => {
          const v = await target.readRowsF32(name, start, end);
          const cols = target.tensor(name)?.shape.at(-1) ?? 0;
          assertFiniteTensor(v, name, start * cols);
          return v;
        };
      }
      if (prop === 'readExpert') {
        return async (layer: number, expert: number, type: 'gate' | 'up' | 'down') => {
          const v = await target.readExpert(layer, expert, type);
          const i = firstNonFinite(v);
          if (i >= 0) throw expertNonFinite(target, layer, expert, type, v[i], i);
          return v;
        };
      }
      // MXFP4 or FP8 kept as stored is not decoded, so not checked: a checked read decodes it (readExpertBf16)
      if (prop === 'readExpertMxfp4' || prop === 'readExpertFp8') return undefined;
      if (prop === 'readExpertBf16' && target.readExpertBf16) {
        const read = target.readExpertBf16.bind(target);
        return async (layer: number, expert: number, type: 'gate' | 'up' | 'down') => {
          const v = await read(layer, expert, type);
          const i = v === null ? -1 : firstNonFiniteBf16(v);
          if (i >= 0) throw expertNonFinite(target, layer, expert, type, bf16Value(v![i]), i);
          return v;
        };
      }
      if (prop === 'readBf16' && target.readBf16) {
        const read = target.readBf16.bind(target);
        return async (name: string) => {
          const v = await read(name);
          if (v !== null) assertFiniteBf16Tensor(v, name);
          return v;
        };
      }
      if (prop === 'readRowsBf16' && target.readRowsBf16) {
        const read = target.readRowsBf16.bind(target);
        return async (name: string, start: number, end: number) => {
          const v = await read(name, start, end);
          if (v !== null) assertFiniteBf16Tensor(v, name, start * (target.tensor(name)?.shape.at(-1) ?? 0));
          return v;
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
