/**
 * ForwardKernels.gemmFp8 in TypeScript: c (m×n) = a·bᵀ + beta·c for a (m×k, f32) and b (n×k) a
 * weight matrix kept in FP8 as the checkpoint stores it (src/io/fp8-matrix.ts). Each row of b is
 * decoded once into a row buffer, every value code × scale in f32 rounded to BF16 (what the
 * checkpoint presents decoded), and multiplied with every row of a; sums run in f64 and round to
 * f32 once, as gemmBf16 here sums, so the result equals gemmBf16's on b decoded, bit for bit.
 */
import { byteFloatValues, f32BitsToBf16 } from '../../../io/dtype.js';
import { fp8Groups } from '../../../io/fp8-matrix.js';
import { EngineError, type MatmulActivations } from '../../types.js';
import { checkDims, checkFloat32, sharesMemory } from './check.js';
import { roundedToBf16, rowsTimesWeightRow } from './gemm-bf16.js';

/** The checks the native addon makes too. */
function checkGemmFp8(op: string, m: number, n: number, k: number, a: unknown, codes: unknown, scales: unknown, group: number, c: unknown, beta: number): void {
  checkDims(op, { m, n, k });
  if (!Number.isSafeInteger(group) || group < 1) throw new EngineError(`${op}: group must be a positive integer (values a scale covers along a row), got ${String(group)}`);
  checkFloat32(op, 'a', a);
  if (!(codes instanceof Uint8Array)) throw new EngineError(`${op}: codes must be a Uint8Array`);
  checkFloat32(op, 'scales', scales);
  checkFloat32(op, 'c', c);
  if (!Number.isFinite(beta)) throw new EngineError(`${op}: beta must be a finite number, got ${String(beta)}`);
  const shape = (name: string, arr: ArrayLike<number>, want: number, hint: string) => {
    if (arr.length !== want) throw new EngineError(`${op}: ${name} holds ${arr.length} values, expected ${want} (check ${hint})`);
  };
  shape('a', a as Float32Array, m * k, 'm and k: a is m×k');
  shape('codes', codes, n * k, 'n and k: codes is n×k');
  shape('scales', scales as Float32Array, n * fp8Groups(k, group), 'n, k and group: scales is n × ⌈k / group⌉');
  shape('c', c as Float32Array, m * n, 'm and n: c is m×n');
  if (sharesMemory(c, a)) throw new EngineError(`${op}: c shares memory with a; pass a separate output array`);
  if (sharesMemory(c, codes) || sharesMemory(c, scales)) throw new EngineError(`${op}: c shares memory with b; pass a separate output array`);
}

export function gemmFp8(
  m: number, n: number, k: number, a: Float32Array, codes: Uint8Array, scales: Float32Array, group: number, c: Float32Array, beta: number,
  activations: MatmulActivations = 'f32',
): void {
  checkGemmFp8('gemmFp8', m, n, k, a, codes, scales, group, c, beta);
  if (activations === 'bf16') a = roundedToBf16(a);
  const values = byteFloatValues('F8_E4M3');
  const groups = fp8Groups(k, group);
  const row = new Float32Array(k);
  const bits = new Uint32Array(row.buffer);
  for (let j = 0; j < n; j++) {
    for (let g = 0; g < groups; g++) {
      const scale = scales[j * groups + g];
      // the f64 product of two f32 values is exact, so storing it rounds once, as an f32 multiply
      for (let p = g * group, stop = Math.min(k, p + group); p < stop; p++) row[p] = values[codes[j * k + p]] * scale;
    }
    for (let p = 0; p < k; p++) bits[p] = f32BitsToBf16(bits[p]) << 16;
    rowsTimesWeightRow(m, n, k, a, row, j, c, beta);
  }
}
