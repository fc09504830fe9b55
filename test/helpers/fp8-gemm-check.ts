/**
 * The FP8-weight product check shared by test/engine/gemm-fp8.test.ts and the child processes it
 * starts with RFID_MOE_NATIVE_SIMD set. Two truths:
 * - an f64 sum of products over b decoded here from the format's definition (E4M3 "fn": sign,
 *   4 exponent bits of bias 7, 3 mantissa bits, subnormals at exponent 0, 0x7f and 0xff NaN; each
 *   code × its scale rounded to f32 and then to BF16), within the bound of f32 accumulation of k
 *   terms in any order plus the rounding of the final add;
 * - with f32 activations, the engine's own gemmBf16 on b decoded, bit for bit: the kernel is meant
 *   to be that product, from half the bytes.
 */
import { f32BitsToBf16 } from '../../src/io/dtype.js';
import type { Engine } from '../../src/engine/types.js';
import { checkDecodedProduct, toBf16 } from './decoded-product-check.js';
import { uniform } from './small-rows-check.js';


/**
 * (m, n, k, group): the native paths (1-8 rows: B decoded a panel at a time, 256 KiB of BF16, so
 * 64 rows at k = 2048 and n = 150 takes three panels; more rows: B decoded whole into gemmBf16's
 * product); groups of DeepSeek's 128-wide blocks, one a row (per channel), smaller ones, and ones
 * that end mid-vector or leave a short last group (k = 200 at 128, k = 37 at 16).
 */
export const FP8_SHAPES: Array<[number, number, number, number]> = [];
for (const m of [1, 2, 3, 8, 9, 40]) {
  for (const [n, k, group] of [[1, 16, 16], [5, 37, 16], [33, 200, 128], [7, 96, 96], [150, 2048, 128], [12, 768, 32]]) FP8_SHAPES.push([m, n, k, group]);
}
FP8_SHAPES.push([130, 70, 512, 128], [2, 1500, 160, 160]);

/** The value of an E4M3 ("fn") code from the format's definition. */
export function e4m3Value(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 15;
  const mantissa = code & 7;
  if (e === 15 && mantissa === 7) return Number.NaN;
  return sign * (e === 0 ? (mantissa / 8) * 2 ** -6 : (1 + mantissa / 8) * 2 ** (e - 7));
}

/** Random codes (every code but NaN's) and scales of a real checkpoint's size (around 2^-8). */
export function randomFp8(n: number, k: number, group: number, seed: number): { codes: Uint8Array; scales: Float32Array } {
  const groups = Math.ceil(k / group);
  const u = uniform(n * k + n * groups, seed);
  const codes = Uint8Array.from(u.subarray(0, n * k), (x) => {
    const c = Math.floor((x + 1) * 128) & 255;
    return (c & 0x7f) === 0x7f ? c - 1 : c;
  });
  const scales = Float32Array.from(u.subarray(n * k), (x) => Math.fround(2 ** -8 * (1.5 + x)));
  return { codes, scales };
}

/** b's values from the definition: code × scale rounded to f32, then to BF16 (f64, each exact in BF16), n × k. */
export function decodeFp8(codes: Uint8Array, scales: Float32Array, n: number, k: number, group: number): Float64Array {
  const groups = Math.ceil(k / group);
  const out = new Float64Array(n * k);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let j = 0; j < n; j++) {
    for (let p = 0; p < k; p++) {
      f[0] = e4m3Value(codes[j * k + p]) * scales[j * groups + Math.floor(p / group)];
      bits[0] = f32BitsToBf16(bits[0]) << 16;
      out[j * k + p] = f[0];
    }
  }
  return out;
}

/** The failures (empty when none) of `kernels.gemmFp8` on one shape, for beta 0 (c full of NaN), 1 and −0.5 (checkDecodedProduct). */
export function checkGemmFp8(engine: Engine, m: number, n: number, k: number, group: number): string[] {
  const given = uniform(m * k, 31 + m * 1000 + n);
  const { codes, scales } = randomFp8(n, k, group, 32 + k);
  const w = decodeFp8(codes, scales, n, k, group);
  return checkDecodedProduct(engine, m, n, k, given, w, `m=${m} n=${n} k=${k} group=${group}`, (c, beta) => engine.kernels.gemmFp8(m, n, k, given, codes, scales, group, c, beta));
}

/** Rows of A for checkFp8Codes: a decoding step's (B a panel at a time) and a prompt's (B decoded whole). */
export const FP8_CODE_ROWS: Array<[number]> = [[1], [3], [20]];

/**
 * The failures (the first 5) of `kernels.gemmFp8` on every code under scales that take its value to
 * f32 infinity, to f32 subnormals and to ordinary sizes, for m rows of ones: each must give the
 * code's value × scale rounded to f32 and to BF16, exactly (NaN for 0x7f and 0xff). Above 8 rows
 * the product is gemmBf16's on B decoded, which on AMX tiles reads values below 2^−126 as zero and
 * gives NaN for an infinite weight (the zero parts of a split activation times it): there those
 * values are skipped and the whole result must equal gemmBf16's bit for bit instead.
 */
export function checkFp8Codes(engine: Engine, m: number): string[] {
  // b: a row for each scale and code, holding the code at one place (it moves along the row, so
  // every lane of a vector is used) and zero codes elsewhere
  const k = 32;
  const scaleList = [1, 0.0037, 2 ** -20, 3.3e-3 * 7, 2 ** 121, 2 ** -140, 1e-45];
  const n = scaleList.length * 256;
  const codes = new Uint8Array(n * k);
  const scales = new Float32Array(n);
  for (let s = 0; s < scaleList.length; s++) {
    for (let q = 0; q < 256; q++) {
      const row = s * 256 + q;
      codes[row * k + ((s + q) % k)] = q;
      scales[row] = scaleList[s];
    }
  }
  const want = decodeFp8(codes, scales, n, k, k);
  const wantAt = (row: number) => want[row * k + ((Math.floor(row / 256) + (row % 256)) % k)];
  const wrong: string[] = [];
  // the reference reaches infinity (2^121 × codes of 2^7 and up), f32 subnormals, and NaN
  const values = Array.from({ length: n }, (_, row) => wantAt(row));
  if (!values.includes(Number.POSITIVE_INFINITY) || !values.some((v) => v !== 0 && Math.abs(v) < 2 ** -126) || values.filter(Number.isNaN).length !== 2 * scaleList.length)
    wrong.push('the reference does not reach infinity, subnormals and NaN');
  const a = new Float32Array(m * k).fill(1);
  const c = new Float32Array(m * n).fill(Number.NaN);
  engine.kernels.gemmFp8(m, n, k, a, codes, scales, k, c, 0);
  const extremes = m <= 8;
  for (let i = 0; i < m; i++) {
    for (let row = 0; row < n; row++) {
      const w = wantAt(row);
      if (!extremes && (!Number.isFinite(w) || (w !== 0 && Math.abs(w) < 2 ** -126))) continue;
      // a −0 value sums to +0 with the zeros around it
      if (!Object.is(c[i * n + row], w === 0 ? 0 : w)) wrong.push(`rows ${m}: scale ${scales[row]} code ${row % 256}: ${c[i * n + row]}, want ${w}`);
    }
  }
  if (!extremes) {
    const viaBf16 = new Float32Array(m * n);
    engine.kernels.gemmBf16(m, n, k, a, toBf16(want), viaBf16, 0);
    for (let i = 0; i < m * n; i++) if (!Object.is(c[i], viaBf16[i])) wrong.push(`rows ${m}: C[${i}] = ${c[i]}, gemmBf16 on B decoded gives ${viaBf16[i]}`);
  }
  return wrong.slice(0, 5);
}
