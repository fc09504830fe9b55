import { describe, expect, it } from 'vitest';
import { DTYPES, DTYPE_BITS, bigIntToF32, bytesPerElement, decodeToF32, encodeFromF32, f16BitsToNumber, isDType, type DType } from './dtype.js';
import { SafetensorsError } from './errors.js';
import golden from './testdata/dtype-golden.json' with { type: 'json' };

const f32FromBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const bitsFromF32 = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];
const u16s = (bytes: Uint8Array): number[] => Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));
const encodeOne = (dtype: 'F16' | 'BF16', x: number): number => u16s(encodeFromF32(dtype, Float32Array.of(x)))[0];

/**
 * Reference encoder by search, sharing no code with the bit-twiddling one: non-negative codes of
 * F16 / BF16 are ordered like their values, so binary search finds the two neighbours of |x| and
 * the nearer one wins, ties to the even code. The Inf code stands for the next binade step
 * (65536 / 2^128), which is exactly how IEEE rounding decides overflow.
 */
function referenceEncode(x: number, maxFiniteCode: number, valueOf: (code: number) => number, infStep: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const value = (code: number) => (code === maxFiniteCode + 1 ? infStep : valueOf(code));
  let lo = 0;
  let hi = maxFiniteCode + 1;
  if (a >= infStep) return sign | hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (value(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - value(lo);
  const dHi = value(hi) - a;
  const code = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | code;
}
const refF16 = (x: number) => referenceEncode(x, 0x7bff, (c) => (c < 0x400 ? c * 2 ** -24 : (1 + (c & 0x3ff) / 1024) * 2 ** ((c >> 10) - 15)), 65536);
const refBF16 = (x: number) => referenceEncode(x, 0x7f7f, (c) => f32FromBits(c << 16), 2 ** 128);

describe('dtype names and widths', () => {
  it('lists the 22 upstream dtypes in enum order with their bit widths', () => {
    expect(DTYPES).toHaveLength(22);
    expect(DTYPES.indexOf('F32')).toBeGreaterThan(DTYPES.indexOf('BF16'));
    expect(DTYPE_BITS.F4).toBe(4);
    expect(DTYPE_BITS.F6_E2M3).toBe(6);
    expect(DTYPE_BITS.C64).toBe(64);
    expect(bytesPerElement('BF16')).toBe(2);
    expect(bytesPerElement('F4')).toBe(0.5);
    expect(isDType('F8_E4M3')).toBe(true);
    expect(isDType('f32')).toBe(false);
    expect(isDType('__proto__')).toBe(false);
    expect(isDType('toString')).toBe(false);
  });
});

describe('f32 → F16 / BF16 encoding', () => {
  const inputs = golden.f32_bits as number[];

  it('matches torch .to(float16) / .to(bfloat16) bit for bit on specials, ties and 3000 random patterns', () => {
    const x = new Float32Array(new Uint32Array(inputs).buffer);
    expect(u16s(encodeFromF32('F16', x))).toEqual(golden.f16_bits);
    expect(u16s(encodeFromF32('BF16', x))).toEqual(golden.bf16_bits);
  });

  it('matches a nearest-value search reference (ties to even) on every golden input', () => {
    for (const bits of inputs) {
      const x = f32FromBits(bits);
      expect(encodeOne('F16', x), `F16 of 0x${bits.toString(16)}`).toBe(refF16(x));
      expect(encodeOne('BF16', x), `BF16 of 0x${bits.toString(16)}`).toBe(refBF16(x));
    }
  });

  it('rounds BF16 ties to even', () => {
    expect(encodeOne('BF16', f32FromBits(0x3f808000))).toBe(0x3f80); // tie, kept bit even → down
    expect(encodeOne('BF16', f32FromBits(0x3f818000))).toBe(0x3f82); // tie, kept bit odd → up
    expect(encodeOne('BF16', f32FromBits(0x3f808001))).toBe(0x3f81); // above the tie → up
    expect(encodeOne('BF16', f32FromBits(0x7f7fffff))).toBe(0x7f80); // max f32 rounds to +Inf
  });

  it('rounds F16 ties to even, including at the subnormal edge', () => {
    expect(encodeOne('F16', 1 + 2 ** -11)).toBe(0x3c00); // tie → even (1.0)
    expect(encodeOne('F16', 1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (odd kept bit rounds up)
    expect(encodeOne('F16', 2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(encodeOne('F16', 2 ** -25)).toBe(0x0000); // exact tie with zero → zero (even)
    expect(encodeOne('F16', 1.5 * 2 ** -25)).toBe(0x0001);
    expect(encodeOne('F16', 3 * 2 ** -25)).toBe(0x0002); // 1.5 × 2^-24: tie between codes 1 and 2 → 2
    expect(encodeOne('F16', 2 ** -14 - 2 ** -25)).toBe(0x0400); // tie between largest subnormal and smallest normal → normal (even)
    expect(encodeOne('F16', 65504)).toBe(0x7bff);
    expect(encodeOne('F16', 65519)).toBe(0x7bff);
    expect(encodeOne('F16', 65520)).toBe(0x7c00); // tie with the overflow step → Inf
    expect(encodeOne('F16', -1e-10)).toBe(0x8000); // signed zero survives
  });

  it('keeps NaN (with sign) and ±Inf', () => {
    const specials = Float32Array.of(NaN, -NaN, Infinity, -Infinity, f32FromBits(0x7f800001), f32FromBits(0xff800001));
    for (const dtype of ['F16', 'BF16'] as const) {
      const back = decodeToF32(dtype, encodeFromF32(dtype, specials));
      expect(Number.isNaN(back[0]) && Number.isNaN(back[1]) && Number.isNaN(back[4]) && Number.isNaN(back[5])).toBe(true);
      expect([back[2], back[3]]).toEqual([Infinity, -Infinity]);
    }
    // Signalling NaNs whose payload lives only in the low bits must not collapse to Inf.
    expect(encodeOne('BF16', f32FromBits(0x7f800001)) & 0x7f).not.toBe(0);
    expect(encodeOne('F16', f32FromBits(0x7f800001)) & 0x3ff).not.toBe(0);
    expect(encodeOne('BF16', f32FromBits(0xffc00000))).toBe(0xffc0);
  });

  it('F32 encoding is the little-endian bytes of the values', () => {
    const x = Float32Array.of(1.5, -2, 3.25e-20);
    expect(Array.from(encodeFromF32('F32', x))).toEqual(Array.from(Buffer.from(x.buffer)));
  });

  it('refuses dtypes it cannot encode', () => {
    expect(() => encodeFromF32('I32' as 'F32', Float32Array.of(1))).toThrow(SafetensorsError);
  });
});

describe('decoding', () => {
  it('F16 decode matches torch for 500 seeded codes, including subnormals and Inf', () => {
    const codes = golden.half_bits as number[];
    const decoded = decodeToF32('F16', new Uint8Array(new Uint16Array(codes).buffer));
    const expected = golden.half_as_f32_bits as number[];
    codes.forEach((code, i) => {
      // torch carries NaN payloads across; only NaN-ness is part of this contract.
      if (Number.isNaN(f32FromBits(expected[i]))) expect(decoded[i], `code 0x${code.toString(16)}`).toBeNaN();
      else expect(bitsFromF32(decoded[i]), `code 0x${code.toString(16)}`).toBe(expected[i]);
    });
    expect(codes.filter((c, i) => !Number.isNaN(f32FromBits(expected[i])) && c !== 0).length).toBeGreaterThan(400);
  });

  it('F16 subnormals and specials by hand', () => {
    const d = (c: number) => decodeToF32('F16', new Uint8Array(new Uint16Array([c]).buffer))[0];
    expect(d(0x0001)).toBe(2 ** -24);
    expect(d(0x03ff)).toBe(1023 * 2 ** -24);
    expect(d(0x0400)).toBe(2 ** -14);
    expect(d(0x7bff)).toBe(65504);
    expect(d(0xfc00)).toBe(-Infinity);
    expect(d(0x7e00)).toBeNaN();
    expect(Object.is(d(0x8000), -0)).toBe(true);
    expect(f16BitsToNumber(0x3555)).toBeCloseTo(1 / 3, 3);
  });

  it('BF16 decode is the top half of an f32', () => {
    const codes = [0x3f80, 0xc049, 0x7f80, 0x0001, 0x8000];
    expect(Array.from(decodeToF32('BF16', new Uint8Array(new Uint16Array(codes).buffer)))).toEqual(codes.map((c) => f32FromBits(c << 16)));
  });

  const byte = (dtype: DType, b: number) => decodeToF32(dtype, Uint8Array.of(b))[0];

  it('F8_E4M3 (float8_e4m3fn): max 448, NaN only at S.1111.111, subnormals, no Inf', () => {
    expect(byte('F8_E4M3', 0x7e)).toBe(448);
    expect(byte('F8_E4M3', 0xfe)).toBe(-448);
    expect(byte('F8_E4M3', 0x7f)).toBeNaN();
    expect(byte('F8_E4M3', 0xff)).toBeNaN();
    expect(byte('F8_E4M3', 0x78)).toBe(256); // all-ones exponent is still finite
    expect(byte('F8_E4M3', 0x38)).toBe(1);
    expect(byte('F8_E4M3', 0x01)).toBe(2 ** -9); // smallest subnormal: 1/8 × 2^-6
    expect(byte('F8_E4M3', 0x08)).toBe(2 ** -6);
    expect(Object.is(byte('F8_E4M3', 0x80), -0)).toBe(true);
    const all = decodeToF32('F8_E4M3', Uint8Array.from({ length: 256 }, (_, i) => i));
    expect(all.filter(Number.isNaN)).toHaveLength(2);
    expect(all.some((v) => !Number.isFinite(v) && !Number.isNaN(v))).toBe(false);
  });

  it('F8_E5M2: IEEE-like with ±Inf and NaN', () => {
    expect(byte('F8_E5M2', 0x7c)).toBe(Infinity);
    expect(byte('F8_E5M2', 0xfc)).toBe(-Infinity);
    expect(byte('F8_E5M2', 0x7d)).toBeNaN();
    expect(byte('F8_E5M2', 0x7b)).toBe(57344);
    expect(byte('F8_E5M2', 0x3c)).toBe(1);
    expect(byte('F8_E5M2', 0x01)).toBe(2 ** -16);
    // E5M2 is the top byte of F16: decoding must agree with F16 for every code.
    for (let b = 0; b < 256; b++) {
      const viaF16 = decodeToF32('F16', new Uint8Array(new Uint16Array([b << 8]).buffer))[0];
      expect(Object.is(byte('F8_E5M2', b), viaF16) || (Number.isNaN(viaF16) && Number.isNaN(byte('F8_E5M2', b)))).toBe(true);
    }
  });

  it('FNUZ flavours: bias + 1, the only NaN is 0x80, no Inf', () => {
    expect(byte('F8_E4M3FNUZ', 0x80)).toBeNaN();
    expect(byte('F8_E4M3FNUZ', 0x40)).toBe(1);
    expect(byte('F8_E4M3FNUZ', 0x7f)).toBe(240);
    expect(byte('F8_E4M3FNUZ', 0x01)).toBe(2 ** -10);
    expect(byte('F8_E5M2FNUZ', 0x80)).toBeNaN();
    expect(byte('F8_E5M2FNUZ', 0x40)).toBe(1);
    expect(byte('F8_E5M2FNUZ', 0x7f)).toBe(57344);
    expect(byte('F8_E5M2FNUZ', 0x7c)).toBe(32768);
  });

  it('F8_E8M0: powers of two, 0xFF is NaN', () => {
    expect(byte('F8_E8M0', 127)).toBe(1);
    expect(byte('F8_E8M0', 128)).toBe(2);
    expect(byte('F8_E8M0', 0)).toBe(2 ** -127);
    expect(byte('F8_E8M0', 254)).toBe(2 ** 127);
    expect(byte('F8_E8M0', 255)).toBeNaN();
  });

  it('integer dtypes and BOOL', () => {
    const le = (fill: (b: Buffer) => void, size: number) => {
      const b = Buffer.alloc(size);
      fill(b);
      return new Uint8Array(b);
    };
    expect(Array.from(decodeToF32('I8', Uint8Array.of(0x80, 0xff, 0x7f)))).toEqual([-128, -1, 127]);
    expect(Array.from(decodeToF32('U8', Uint8Array.of(0x80, 0xff)))).toEqual([128, 255]);
    expect(Array.from(decodeToF32('BOOL', Uint8Array.of(0, 1, 0)))).toEqual([0, 1, 0]);
    expect(Array.from(decodeToF32('I16', le((b) => (b.writeInt16LE(-32768, 0), b.writeInt16LE(1234, 2)), 4)))).toEqual([-32768, 1234]);
    expect(Array.from(decodeToF32('U16', le((b) => b.writeUInt16LE(65535, 0), 2)))).toEqual([65535]);
    expect(Array.from(decodeToF32('I32', le((b) => (b.writeInt32LE(-2147483648, 0), b.writeInt32LE(16777217, 4)), 8)))).toEqual([-2147483648, 16777216]);
    expect(Array.from(decodeToF32('U32', le((b) => b.writeUInt32LE(4294967295, 0), 4)))).toEqual([4294967296]);
    expect(Array.from(decodeToF32('F64', le((b) => (b.writeDoubleLE(0.1, 0), b.writeDoubleLE(-1e300, 8)), 16)))).toEqual([Math.fround(0.1), -Infinity]);
  });

  it('64-bit integers round once (no int64 → f64 → f32 double rounding)', () => {
    // 2^60 + 2^36 + 1 is just above the midpoint between two f32 neighbours (ulp 2^37). Via f64 the
    // +1 is lost and the tie goes to even (2^60); rounded once it must go up.
    const tricky = 2n ** 60n + 2n ** 36n + 1n;
    const b = Buffer.alloc(32);
    b.writeBigInt64LE(tricky, 0);
    b.writeBigInt64LE(-tricky, 8);
    b.writeBigInt64LE(-5n, 16);
    b.writeBigInt64LE(2n ** 53n + 1n, 24);
    expect(Array.from(decodeToF32('I64', new Uint8Array(b)))).toEqual([2 ** 60 + 2 ** 37, -(2 ** 60 + 2 ** 37), -5, 2 ** 53]);
    const u = Buffer.alloc(16);
    u.writeBigUInt64LE(2n ** 64n - 1n, 0);
    u.writeBigUInt64LE(3000000000n, 8);
    expect(Array.from(decodeToF32('U64', new Uint8Array(u)))).toEqual([2 ** 64, Math.fround(3e9)]);
    expect(bigIntToF32(2n ** 24n + 1n)).toBe(2 ** 24);
    expect(bigIntToF32(2n ** 24n + 3n)).toBe(2 ** 24 + 4);
  });

  it('decodes unaligned views the same as aligned ones', () => {
    const values = Float32Array.of(1.5, -2.25, 3e-5, 65504, -0.125);
    for (const dtype of ['F32', 'F16', 'BF16', 'I64', 'F64', 'I32', 'U16'] as const) {
      const aligned = dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' ? encodeFromF32(dtype, values) : encodeInts(dtype, [1, 2, 300, 7, 65535]);
      for (const shift of [1, 2, 3, 5]) {
        const host = new Uint8Array(aligned.length + shift);
        host.set(aligned, shift);
        expect(Array.from(decodeToF32(dtype, host.subarray(shift))), `${dtype} at +${shift}`).toEqual(Array.from(decodeToF32(dtype, aligned)));
      }
    }
  });

  it('gives clear errors for undecodable dtypes and ragged byte counts', () => {
    for (const dtype of ['C64', 'F4', 'F6_E2M3', 'F6_E3M2'] as const) {
      expect(() => decodeToF32(dtype, new Uint8Array(8))).toThrow(expect.objectContaining({ variant: 'UnsupportedDType', message: expect.stringContaining(dtype) }));
    }
    expect(() => decodeToF32('F32', new Uint8Array(6))).toThrow(expect.objectContaining({ variant: 'InvalidTensorView' }));
  });
});

function encodeInts(dtype: 'I64' | 'F64' | 'I32' | 'U16', values: number[]): Uint8Array {
  const width = DTYPE_BITS[dtype] / 8;
  const b = Buffer.alloc(values.length * width);
  values.forEach((v, i) => {
    if (dtype === 'I64') b.writeBigInt64LE(BigInt(v), i * 8);
    else if (dtype === 'F64') b.writeDoubleLE(v, i * 8);
    else if (dtype === 'I32') b.writeInt32LE(v, i * 4);
    else b.writeUInt16LE(v, i * 2);
  });
  return new Uint8Array(b);
}

// Guard against accidental drift of the reference helpers themselves.
describe('reference helpers', () => {
  it('agree with known codes', () => {
    expect(refF16(1)).toBe(0x3c00);
    expect(refF16(-2)).toBe(0xc000);
    expect(refBF16(1)).toBe(0x3f80);
    expect(bitsFromF32(1)).toBe(0x3f800000);
  });
});
