/**
 * A routed expert whose three matrices are kept in FP8 as the checkpoint stores them (E4M3 codes
 * with a scale a group of a row: DeepSeek-V3's, the Qwen3 "-FP8" releases'): half the memory of
 * the BF16 form the checkpoint presents, and a decoding step reads half the bytes. Its products go
 * through ForwardKernels.gemmFp8, whose values are exactly the BF16 form's, so it computes what
 * Bf16SwiGlu computes on the decoded matrices, to the engine's summation order.
 */
import type { Engine } from '../engine/types.js';
import { fp8Groups, type Fp8Matrix } from '../io/fp8-matrix.js';
import { StoredSwiGlu } from './stored-swiglu.js';

export class Fp8SwiGlu extends StoredSwiGlu<Fp8Matrix> {
  protected format(): string {
    return 'FP8';
  }

  protected holds(m: Fp8Matrix, rows: number, cols: number): boolean {
    return m.rows === rows && m.cols === cols && m.codes.length === rows * cols && m.scales.length === rows * fp8Groups(cols, m.group);
  }

  protected bytesOf(m: Fp8Matrix): number {
    return m.codes.byteLength + m.scales.byteLength;
  }

  protected multiply(engine: Engine, m: Fp8Matrix, x: Float32Array, rows: number, out: Float32Array): void {
    engine.kernels.gemmFp8(rows, m.rows, m.cols, x, m.codes, m.scales, m.group, out, 0);
  }
}
