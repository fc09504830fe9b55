/**
 * safetensors dtypes: names, widths, and conversion to / from f32.
 *
 * Decoders are exact: every representable value of a narrow float type maps to the f32 with the
 * same value (all of F16, BF16 and the F8 flavours are subsets of f32), and integers / F64 are
 * rounded once, to nearest-even, as a hardware conversion would. Encoders round to nearest even
 * and keep NaN and ±Inf.
 */
import { SafetensorsError } from './errors.js';

/** Every upstream dtype, in the declaration order of the Rust `enum Dtype` (the writer's sort key). */
export const DTYPES = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

export type DType = (typeof DTYPES)[number];

/** Dtypes the writer can produce from f32 values. */
export type EncodableDType = 'F32' | 'F16' | 'BF16';

export const DTYPE_BITS: Record<DType, number> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

const DTYPE_RANK: ReadonlyMap<string, number> = new Map(DTYPES.map((d, i) => [d, i]));

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && DTYPE_RANK.has(s);
}

/** Position in the upstream enum; the canonical writer puts higher ranks first. */
export function dtypeRank(dtype: DType): number {
  return DTYPE_RANK.get(dtype)!;
}

/** Bytes per element; fractional (0.5, 0.75) for the packed sub-byte types F4 / F6_*. */
export function bytesPerElement(dtype: DType): number {
  return DTYPE_BITS[dtype] / 8;
}

export function isEncodableDType(dtype: DType): dtype is EncodableDType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

// ---------------------------------------------------------------------------------------------
// Byte order and alignment

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A copy or view of `bytes` whose start is aligned for `width`-byte elements and whose element
 * order is the host's. safetensors is little-endian and old files put tensors at any offset, so a
 * view is only possible when both already hold.
 */
function hostOrderBuffer(bytes: Uint8Array, width: number): { buffer: ArrayBufferLike; offset: number } {
  if (HOST_LITTLE_ENDIAN && bytes.byteOffset % width === 0) return { buffer: bytes.buffer, offset: bytes.byteOffset };
  const copy = bytes.slice();
  if (!HOST_LITTLE_ENDIAN && width > 1) {
    for (let i = 0; i < copy.length; i += width) copy.subarray(i, i + width).reverse();
  }
  return { buffer: copy.buffer, offset: 0 };
}

function toLittleEndianBytes(view: Uint8Array, width: number): Uint8Array {
  if (!HOST_LITTLE_ENDIAN && width > 1) {
    for (let i = 0; i < view.length; i += width) view.subarray(i, i + width).reverse();
  }
  return view;
}

// ---------------------------------------------------------------------------------------------
// Tables for narrow floats

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = f16BitsToNumber(h);
  return table;
}

/** IEEE binary16 → value, by the definition (used to build the table and by tests). */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

interface MiniFloatFormat {
  expBits: number;
  mantBits: number;
  bias: number;
  /** IEEE-like: all-ones exponent is Inf (mantissa 0) or NaN. */
  ieeeSpecials: boolean;
  /** NaN encodings beyond the IEEE ones. */
  isNaN: (byte: number) => boolean;
}

function miniFloatTable(format: MiniFloatFormat): Float32Array {
  const table = new Float32Array(256);
  const expMax = (1 << format.expBits) - 1;
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const exp = (b >>> format.mantBits) & expMax;
    const mant = b & ((1 << format.mantBits) - 1);
    const scale = 1 << format.mantBits;
    if (format.isNaN(b)) table[b] = NaN;
    else if (format.ieeeSpecials && exp === expMax) table[b] = mant === 0 ? sign * Infinity : NaN;
    else if (exp === 0) table[b] = sign * (mant / scale) * 2 ** (1 - format.bias);
    else table[b] = sign * (1 + mant / scale) * 2 ** (exp - format.bias);
  }
  return table;
}

export type ByteTableDType = 'F8_E4M3' | 'F8_E5M2' | 'F8_E4M3FNUZ' | 'F8_E5M2FNUZ' | 'F8_E8M0';

const byteTableBuilders: Record<ByteTableDType, () => Float32Array> = {
  // torch float8_e4m3fn: no infinities, only S.1111.111 is NaN, max 448.
  F8_E4M3: () => miniFloatTable({ expBits: 4, mantBits: 3, bias: 7, ieeeSpecials: false, isNaN: (b) => (b & 0x7f) === 0x7f }),
  // IEEE-like E5M2: Inf and NaN in the all-ones exponent.
  F8_E5M2: () => miniFloatTable({ expBits: 5, mantBits: 2, bias: 15, ieeeSpecials: true, isNaN: () => false }),
  // FNUZ: bias one larger, no negative zero, the single NaN is 0x80.
  F8_E4M3FNUZ: () => miniFloatTable({ expBits: 4, mantBits: 3, bias: 8, ieeeSpecials: false, isNaN: (b) => b === 0x80 }),
  F8_E5M2FNUZ: () => miniFloatTable({ expBits: 5, mantBits: 2, bias: 16, ieeeSpecials: false, isNaN: (b) => b === 0x80 }),
  // E8M0 (MX scale): a pure power of two 2^(e-127); 0xFF is NaN.
  F8_E8M0: () => {
    const table = new Float32Array(256);
    for (let b = 0; b < 256; b++) table[b] = b === 0xff ? NaN : 2 ** (b - 127);
    return table;
  },
};

/**
 * The f32 value of each of the 256 codes of an 8-bit float dtype (cached, shared: read it, do not
 * write it). Readers that map codes themselves use it (src/checkpoint/fp8-blocks.ts).
 */
export function byteFloatValues(dtype: ByteTableDType): Float32Array {
  return cachedTable(dtype, byteTableBuilders[dtype]);
}

const tableCache = new Map<string, Float32Array>();
function cachedTable(key: string, build: () => Float32Array): Float32Array {
  let table = tableCache.get(key);
  if (table === undefined) {
    table = build();
    tableCache.set(key, table);
  }
  return table;
}

// ---------------------------------------------------------------------------------------------
// 64-bit integers

/** Round an integer to the nearest f32 (ties to even) in one step, avoiding int64 → f64 → f32 double rounding. */
export function bigIntToF32(value: bigint): number {
  const negative = value < 0n;
  const magnitude = negative ? -value : value;
  if (magnitude < 2n ** 53n) return Math.fround(Number(value));
  const bitLength = magnitude.toString(2).length;
  const shift = BigInt(bitLength - 24);
  let mantissa = magnitude >> shift;
  const remainder = magnitude & ((1n << shift) - 1n);
  const half = 1n << (shift - 1n);
  if (remainder > half || (remainder === half && (mantissa & 1n) === 1n)) mantissa += 1n;
  const result = Number(mantissa) * 2 ** Number(shift);
  return negative ? -result : result;
}

function decodeInt64(bytes: Uint8Array, signed: boolean): Float32Array {
  const count = bytes.length / 8;
  const out = new Float32Array(count);
  const { buffer, offset } = hostOrderBuffer(bytes, 8);
  const words = new Uint32Array(buffer, offset, count * 2);
  const signedWords = new Int32Array(buffer, offset, count * 2);
  for (let i = 0; i < count; i++) {
    const lo = words[2 * i];
    const hi = signed ? signedWords[2 * i + 1] : words[2 * i + 1];
    // |hi| < 2^21 keeps hi·2^32 + lo below 2^53, where the double is exact and one fround rounds correctly.
    if (hi > -0x200000 && hi < 0x200000) out[i] = hi * 4294967296 + lo;
    else out[i] = bigIntToF32((BigInt(hi) << 32n) | BigInt(lo));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Public conversions

function cannotDecode(dtype: DType): SafetensorsError {
  const why = dtype === 'C64' ? 'complex values have no f32 form' : 'packed sub-byte floats (F4, F6_*) are not implemented';
  return new SafetensorsError('UnsupportedDType', `cannot decode dtype ${dtype} to f32: ${why}; read the raw bytes with readBytes() instead`);
}

/** Decode little-endian `bytes` of `dtype` to f32 values. `bytes` may sit at any offset. */
export function decodeToF32(dtype: DType, bytes: Uint8Array): Float32Array {
  const bits = DTYPE_BITS[dtype];
  if (bits % 8 !== 0 || dtype === 'C64') throw cannotDecode(dtype);
  const width = bits / 8;
  if (bytes.length % width !== 0) {
    throw new SafetensorsError(
      'InvalidTensorView',
      `${bytes.length} bytes is not a whole number of ${dtype} elements (${width} bytes each)`,
    );
  }
  const count = bytes.length / width;
  switch (dtype) {
    case 'F32': {
      const { buffer, offset } = hostOrderBuffer(bytes, 4);
      return new Float32Array(new Float32Array(buffer, offset, count));
    }
    case 'F64': {
      const { buffer, offset } = hostOrderBuffer(bytes, 8);
      return Float32Array.from(new Float64Array(buffer, offset, count));
    }
    case 'BF16': {
      const { buffer, offset } = hostOrderBuffer(bytes, 2);
      const src = new Uint16Array(buffer, offset, count);
      const out = new Float32Array(count);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) outBits[i] = src[i] << 16;
      return out;
    }
    case 'F16': {
      const table = cachedTable('F16', buildF16Table);
      const { buffer, offset } = hostOrderBuffer(bytes, 2);
      const src = new Uint16Array(buffer, offset, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[src[i]];
      return out;
    }
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E4M3FNUZ':
    case 'F8_E5M2FNUZ':
    case 'F8_E8M0': {
      const table = cachedTable(dtype, byteTableBuilders[dtype]);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[bytes[i]];
      return out;
    }
    case 'BOOL': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = bytes[i] === 0 ? 0 : 1;
      return out;
    }
    case 'U8':
      return Float32Array.from(bytes);
    case 'I8':
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, count));
    case 'I16':
    case 'U16': {
      const { buffer, offset } = hostOrderBuffer(bytes, 2);
      return Float32Array.from(dtype === 'I16' ? new Int16Array(buffer, offset, count) : new Uint16Array(buffer, offset, count));
    }
    case 'I32':
    case 'U32': {
      // Float32Array.from converts each (exact) double with one correctly rounded step.
      const { buffer, offset } = hostOrderBuffer(bytes, 4);
      return Float32Array.from(dtype === 'I32' ? new Int32Array(buffer, offset, count) : new Uint32Array(buffer, offset, count));
    }
    case 'I64':
    case 'U64':
      return decodeInt64(bytes, dtype === 'I64');
    default:
      throw cannotDecode(dtype);
  }
}

let fastBf16Widener: ((out: Float32Array) => void) | undefined;

/**
 * Installs a faster BF16 widening for widenHalvesInPlace (same contract, same bits: a BF16 value
 * is the top half of its f32), or removes it (undefined). The native engine installs its
 * vectorised loop when it loads, so the io layer gets it without depending on the engine; this
 * JavaScript loop runs at about 0.5-1 GB/s of BF16, which is most of a model's load.
 */
export function setFastBf16Widener(widen: ((out: Float32Array) => void) | undefined): void {
  fastBf16Widener = widen;
}

/**
 * Widens `count` = out.length 16-bit floats (BF16 or F16, little-endian on a little-endian host)
 * that sit in the upper half of `out`'s bytes to f32, in place, front to back: element i's 4 bytes
 * end at or before the 16-bit values not yet read (4i + 4 ≤ 2·count + 2i + 2 while i < count), so
 * nothing is overwritten before it is read. This lets a reader put the file's bytes straight into
 * the result and decode without a second buffer of the tensor's size (and its page faults and
 * garbage). Two values are read per 32-bit word when the count is even (half the loads of a
 * 16-bit loop); F16 goes through the same 65,536-entry table as decodeToF32.
 */
export function widenHalvesInPlace(dtype: 'BF16' | 'F16', out: Float32Array): void {
  if (!HOST_LITTLE_ENDIAN) throw new Error('widenHalvesInPlace needs a little-endian host (use decodeToF32)');
  if (dtype === 'BF16' && fastBf16Widener) {
    fastBf16Widener(out);
    return;
  }
  const count = out.length;
  const halvesAt = out.byteOffset + 2 * count;
  const bits = new Uint32Array(out.buffer, out.byteOffset, count);
  const table = dtype === 'F16' ? cachedTable('F16', buildF16Table) : undefined;
  // out starts 4-aligned, so the halves are 4-aligned (readable as 32-bit words) when count is even
  if (count % 2 === 0) {
    const words = new Uint32Array(out.buffer, halvesAt, count / 2);
    if (table) {
      for (let p = 0, i = 0; i < count; p++, i += 2) {
        const w = words[p];
        out[i] = table[w & 0xffff];
        out[i + 1] = table[w >>> 16];
      }
    } else {
      for (let p = 0, i = 0; i < count; p++, i += 2) {
        const w = words[p];
        bits[i] = w << 16;
        bits[i + 1] = w & 0xffff0000;
      }
    }
    return;
  }
  const halves = new Uint16Array(out.buffer, halvesAt, count);
  if (table) for (let i = 0; i < count; i++) out[i] = table[halves[i]];
  else for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
}

/** f32 bit pattern → bf16 bit pattern, round to nearest even; NaN stays a (quiet) NaN with its sign. */
export function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

let fastBf16Rounder: ((src: Float32Array, dst: Uint16Array) => void) | undefined;

/**
 * Installs a faster roundToBf16 (same bits), or removes it (undefined): the native engine installs
 * its vectorised loop when it loads, as with setFastBf16Widener.
 */
export function setFastBf16Rounder(round: ((src: Float32Array, dst: Uint16Array) => void) | undefined): void {
  fastBf16Rounder = round;
}

/** BF16 bit patterns of f32 values, each rounded to nearest even (f32BitsToBf16). */
export function roundToBf16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  if (fastBf16Rounder) {
    fastBf16Rounder(data, out);
    return out;
  }
  const srcBits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32BitsToBf16(srcBits[i]);
  return out;
}

/** f32 bit pattern → IEEE binary16 bit pattern, round to nearest even, with subnormals, overflow to ±Inf. */
export function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const halfExp = exp - 127 + 15;
  if (halfExp >= 0x1f) return sign | 0x7c00;
  if (halfExp <= 0) {
    // Below 2^-25 everything rounds to zero (2^-25 itself is a tie with zero, which is even).
    if (halfExp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - halfExp;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry out of the subnormal range lands exactly on the smallest normal
  }
  let half = (halfExp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++; // a carry may reach Inf: correct
  return sign | half;
}

/** Encode f32 values as little-endian `dtype` bytes. */
export function encodeFromF32(dtype: EncodableDType, data: Float32Array): Uint8Array {
  switch (dtype) {
    case 'F32': {
      const out = new Uint8Array(data.length * 4);
      new Float32Array(out.buffer).set(data);
      return toLittleEndianBytes(out, 4);
    }
    case 'BF16':
    case 'F16': {
      let out: Uint16Array;
      if (dtype === 'BF16') {
        out = roundToBf16(data);
      } else {
        const srcBits = new Uint32Array(data.buffer, data.byteOffset, data.length);
        out = new Uint16Array(data.length);
        for (let i = 0; i < data.length; i++) out[i] = f32BitsToF16(srcBits[i]);
      }
      return toLittleEndianBytes(new Uint8Array(out.buffer), 2);
    }
    default:
      throw new SafetensorsError(
        'UnsupportedDType',
        `cannot encode f32 values as ${String(dtype)}: only F32, F16 and BF16 are supported; pass already-encoded raw bytes instead`,
      );
  }
}
