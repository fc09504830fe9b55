/**
 * A routed expert whose three matrices are kept in MXFP4 as the checkpoint stores them (gpt-oss's
 * releases): a quarter of the memory of the BF16 form the checkpoint presents, and a decoding step
 * reads a quarter of the bytes. Its products go through ForwardKernels.gemmMxfp4, whose values are
 * exactly the BF16 form's, so it computes what Bf16SwiGlu computes on the decoded matrices, to
 * the engine's summation order.
 */
import type { Engine } from '../engine/types.js';
import { MXFP4_GROUP, type Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import { StoredSwiGlu } from './stored-swiglu.js';

export class Mxfp4SwiGlu extends StoredSwiGlu<Mxfp4Matrix> {
  protected format(): string {
    return 'MXFP4';
  }

  protected holds(m: Mxfp4Matrix, rows: number, cols: number): boolean {
    return m.rows === rows && m.cols === cols && m.blocks.length === (rows * cols) / 2 && m.scales.length === (rows * cols) / MXFP4_GROUP;
  }

  protected bytesOf(m: Mxfp4Matrix): number {
    return m.blocks.byteLength + m.scales.byteLength;
  }

  protected multiply(engine: Engine, m: Mxfp4Matrix, x: Float32Array, rows: number, out: Float32Array): void {
    engine.kernels.gemmMxfp4(rows, m.rows, m.cols, x, m.blocks, m.scales, out, 0);
  }
}
