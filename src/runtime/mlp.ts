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

/**
 * A SwiGLU MLP whose three matrices stay in BF16 as the checkpoint stores them: half the memory
 * of DenseSwiGlu, and its products (ForwardKernels.gemmBf16) read half the bytes, which is what
 * bounds a decoding step. BF16 → f32 is exact, so it computes what DenseSwiGlu computes on the
 * widened matrices, to the engine's summation order.
 */
export class Bf16SwiGlu implements ExpertWeights {
  /** as DenseSwiGlu's, each value a BF16 bit pattern */
  constructor(
    readonly gate: Uint16Array,
    readonly up: Uint16Array,
    readonly down: Uint16Array,
    readonly hidden: number,
    readonly width: number,
  ) {
    if (gate.length !== width * hidden || up.length !== width * hidden || down.length !== hidden * width) {
      throw new Error(`SwiGLU weights do not match hidden ${hidden} × width ${width} (gate ${gate.length}, up ${up.length}, down ${down.length} values)`);
    }
  }

  /** bytes held */
  get byteLength(): number {
    return this.gate.byteLength + this.up.byteLength + this.down.byteLength;
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    const { hidden, width } = this;
    const k = engine.kernels;
    const g = scratch('swiglu-gate', rows * width);
    const u = scratch('swiglu-up', rows * width);
    // synchronous from here to the end: the shared scratch buffers cannot be reused meanwhile
    k.gemmBf16(rows, width, hidden, x, this.gate, g, 0);
    k.gemmBf16(rows, width, hidden, x, this.up, u, 0);
    k.siluMul(rows * width, g, u);
    k.gemmBf16(rows, hidden, width, g, this.down, out, 0);
  }
}
