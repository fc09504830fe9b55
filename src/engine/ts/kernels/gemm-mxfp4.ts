/**
 * ForwardKernels.gemmMxfp4 in TypeScript: c (m×n) = a·bᵀ + beta·c for a (m×k, f32) and b (n×k) a
 * weight matrix kept in MXFP4 as the checkpoint stores it (src/io/mxfp4-matrix.ts). Each row of b
 * is decoded once into a row buffer (mxfp4ValueTable: the exact values) and multiplied with every
 * row of a; sums run in f64 and round to f32 once, as gemmBf16 here sums, so the result equals
 * gemmBf16's on b decoded to BF16, bit for bit.
 */
import { mxfp4ValueTable, MXFP4_GROUP } from '../../../io/mxfp4-matrix.js';
import { EngineError, type MatmulActivations } from '../../types.js';
import { checkDims, checkFloat32, sharesMemory } from './check.js';
import { roundedToBf16, rowsTimesWeightRow } from './gemm-bf16.js';

/** The checks the native addon makes too. */
function checkGemmMxfp4(op: string, m: number, n: number, k: number, a: unknown, blocks: unknown, scales: unknown, c: unknown, beta: number): void {
  checkDims(op, { m, n, k });
  if (k % MXFP4_GROUP !== 0) throw new EngineError(`${op}: k must be a multiple of ${MXFP4_GROUP} (one exponent a group of 32 values), got ${k}`);
  checkFloat32(op, 'a', a);
  if (!(blocks instanceof Uint8Array)) throw new EngineError(`${op}: blocks must be a Uint8Array`);
  if (!(scales instanceof Uint8Array)) throw new EngineError(`${op}: scales must be a Uint8Array`);
  checkFloat32(op, 'c', c);
  if (!Number.isFinite(beta)) throw new EngineError(`${op}: beta must be a finite number, got ${String(beta)}`);
  const shape = (name: string, arr: ArrayLike<number>, want: number, hint: string) => {
    if (arr.length !== want) throw new EngineError(`${op}: ${name} holds ${arr.length} values, expected ${want} (check ${hint})`);
  };
  shape('a', a as Float32Array, m * k, 'm and k: a is m×k');
  shape('blocks', blocks, (n * k) / 2, 'n and k: blocks is n × k/2 bytes');
  shape('scales', scales, (n * k) / MXFP4_GROUP, 'n and k: scales is n × k/32 exponents');
  shape('c', c as Float32Array, m * n, 'm and n: c is m×n');
  if (sharesMemory(c, a)) throw new EngineError(`${op}: c shares memory with a; pass a separate output array`);
  if (sharesMemory(c, blocks) || sharesMemory(c, scales)) throw new EngineError(`${op}: c shares memory with b; pass a separate output array`);
}

export function gemmMxfp4(
  m: number, n: number, k: number, a: Float32Array, blocks: Uint8Array, scales: Uint8Array, c: Float32Array, beta: number, activations: MatmulActivations = 'f32',
): void {
  checkGemmMxfp4('gemmMxfp4', m, n, k, a, blocks, scales, c, beta);
  if (activations === 'bf16') a = roundedToBf16(a);
  const table = mxfp4ValueTable();
  const groups = k / MXFP4_GROUP;
  const row = new Float32Array(k);
  for (let j = 0; j < n; j++) {
    for (let g = 0; g < groups; g++) {
      const base = scales[j * groups + g] * 16;
      let at = (j * k) / 2 + g * 16;
      for (let p = g * MXFP4_GROUP, stop = p + MXFP4_GROUP; p < stop; p += 2, at++) {
        const byte = blocks[at];
        row[p] = table[base + (byte & 15)];
        row[p + 1] = table[base + (byte >>> 4)];
      }
    }
    rowsTimesWeightRow(m, n, k, a, row, j, c, beta);
  }
}
