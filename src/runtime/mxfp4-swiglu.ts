/**
 * A routed expert whose three matrices are kept in MXFP4 as the checkpoint stores them (gpt-oss's
 * releases): a quarter of the memory of the BF16 form the checkpoint presents, and a decoding step
 * reads a quarter of the bytes. Its products go through ForwardKernels.gemmMxfp4, whose values are
 * exactly the BF16 form's, so it computes what Bf16SwiGlu computes on the decoded matrices, to
 * the engine's summation order. It offers no operands for the one-call experts kernel: the MoE
 * block runs it through `forward` or, for gpt-oss's activation, `project`.
 */
import type { Engine } from '../engine/types.js';
import { MXFP4_GROUP, type Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import { swiGluForward } from './mlp.js';
import type { ExpertWeights } from './weights.js';

export class Mxfp4SwiGlu implements ExpertWeights {
  /**
   * @param gate [width, hidden]  @param up [width, hidden]  @param down [hidden, width]
   * (nn.Linear layout: y = x·Wᵀ; each row's groups of 32 run along its inputs)
   */
  constructor(
    readonly gate: Mxfp4Matrix,
    readonly up: Mxfp4Matrix,
    readonly down: Mxfp4Matrix,
    readonly hidden: number,
    readonly width: number,
  ) {
    const fits = (m: Mxfp4Matrix, rows: number, cols: number) =>
      m.rows === rows && m.cols === cols && m.blocks.length === (rows * cols) / 2 && m.scales.length === (rows * cols) / MXFP4_GROUP;
    if (!fits(gate, width, hidden) || !fits(up, width, hidden) || !fits(down, hidden, width)) {
      throw new Error(
        `MXFP4 SwiGLU weights do not match hidden ${hidden} × width ${width} (gate ${gate.rows}×${gate.cols}, up ${up.rows}×${up.cols}, down ${down.rows}×${down.cols})`,
      );
    }
  }

  /** bytes held */
  get byteLength(): number {
    return [this.gate, this.up, this.down].reduce((n, m) => n + m.blocks.byteLength + m.scales.byteLength, 0);
  }

  project(engine: Engine, which: 'gate' | 'up' | 'down', x: Float32Array, rows: number, out: Float32Array): void {
    const m = this[which];
    engine.kernels.gemmMxfp4(rows, m.rows, m.cols, x, m.blocks, m.scales, out, 0);
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    swiGluForward(this, engine, x, rows, out);
  }
}
