/** The dense SwiGLU MLP: the uncompressed form of every expert, shared expert and dense layer. */
import type { Engine } from '../engine/types.js';
import { scratch } from './numerics.js';
import type { ExpertWeights } from './weights.js';

export class DenseSwiGlu implements ExpertWeights {
  /**
   * @param gate [width, hidden]  @param up [width, hidden]  @param down [hidden, width]
   * (nn.Linear layout: y = x·Wᵀ)
   */
  constructor(
    readonly gate: Float32Array,
    readonly up: Float32Array,
    readonly down: Float32Array,
    readonly hidden: number,
    readonly width: number,
  ) {
    if (gate.length !== width * hidden || up.length !== width * hidden || down.length !== hidden * width) {
      throw new Error(`SwiGLU weights do not match hidden ${hidden} × width ${width} (gate ${gate.length}, up ${up.length}, down ${down.length} values)`);
    }
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    const { hidden, width } = this;
    // synchronous from here to the end: the shared scratch buffers cannot be reused meanwhile
    const g = scratch('swiglu-gate', rows * width);
    const u = scratch('swiglu-up', rows * width);
    engine.gemm(rows, width, hidden, x, this.gate, g, { transB: true });
    engine.gemm(rows, width, hidden, x, this.up, u, { transB: true });
    engine.kernels.siluMul(rows * width, g, u);
    engine.gemm(rows, hidden, width, g, this.down, out, { transB: true });
  }
}
