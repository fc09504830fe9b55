/**
 * One expert's p×d weights as the layer compressor holds them: f32, or packed bf16 bits when every
 * value is a bf16 number (the case for a checkpoint stored in bf16, as most MoE releases are).
 *
 * Why: a layer compression holds every expert of one matrix type from the start (the spectra of
 * all groups come before any factor) until its group's factors replace it. In f32 that is 768 MiB
 * for one type of a Qwen3-30B-A3B layer and 1.8 GiB for Mixtral-8x7B; packed it is half. Packing is
 * lossless by construction (only values whose low 16 bits are zero are packed), so results are
 * bit-identical to the f32 path; each use decodes the expert afresh (≈ 1 ms per million values),
 * and only the group being worked on is ever in f32.
 */

/** bf16 bit patterns of an f32 matrix whose values are all bf16 numbers. */
export class PackedBf16 {
  constructor(readonly bits: Uint16Array) {}
  get length(): number {
    return this.bits.length;
  }
}

export type ExpertWeights = Float32Array | PackedBf16;

/** `x` packed to bf16 when that loses nothing (every value's low 16 bits are zero), else `x`. */
export function packLossless(x: Float32Array): ExpertWeights {
  const words = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < words.length; i++) if ((words[i] & 0xffff) !== 0) return x;
  const bits = new Uint16Array(x.length);
  for (let i = 0; i < words.length; i++) bits[i] = words[i] >>> 16;
  return new PackedBf16(bits);
}

/**
 * The matrix in f32. An f32 matrix is returned as is (the caller's array: read only); a packed one
 * is decoded into a fresh array that the caller owns.
 */
export function toF32(w: ExpertWeights): Float32Array {
  if (w instanceof Float32Array) return w;
  const out = new Float32Array(w.bits.length);
  copyInto(w, out, 0);
  return out;
}

/** True when toF32 hands back a fresh array (the caller may write into it). */
export function decodesFresh(w: ExpertWeights): boolean {
  return !(w instanceof Float32Array);
}

/** Index of the first NaN or ±Inf value, or −1. */
export function firstNonFinite(w: ExpertWeights): number {
  if (w instanceof Float32Array) {
    for (let j = 0; j < w.length; j++) if (!Number.isFinite(w[j])) return j;
    return -1;
  }
  // bf16: exponent bits all ones is Inf or NaN
  const bits = w.bits;
  for (let j = 0; j < bits.length; j++) if ((bits[j] & 0x7f80) === 0x7f80) return j;
  return -1;
}

/** The value at index j, as a number (for error messages). */
export function valueAt(w: ExpertWeights, j: number): number {
  if (w instanceof Float32Array) return w[j];
  return new Float32Array(new Uint32Array([w.bits[j] << 16]).buffer)[0];
}

/** Write the matrix's f32 values into `out` at `offset` (no intermediate copy for a packed one). */
export function copyInto(w: ExpertWeights, out: Float32Array, offset: number): void {
  if (w instanceof Float32Array) {
    out.set(w, offset);
    return;
  }
  const words = new Uint32Array(out.buffer, out.byteOffset + offset * 4, w.bits.length);
  const bits = w.bits;
  for (let i = 0; i < bits.length; i++) words[i] = bits[i] << 16;
}
