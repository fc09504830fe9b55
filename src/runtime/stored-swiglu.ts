/**
 * A routed expert whose three matrices are kept in a packed form as the checkpoint stores them
 * (MXFP4: Mxfp4SwiGlu; FP8: Fp8SwiGlu), multiplied by a kernel that gives what the BF16 form the
 * checkpoint presents would give (to the engine's summation order). What they share: the shape
 * check, the bytes held, the SwiGLU through their own projections, and the matrices as they are
 * for the one-call experts kernel (swiGluOperands), which multiplies them as their own kernels do.
 */
import type { Engine } from '../engine/types.js';
import type { Fp8Matrix } from '../io/fp8-matrix.js';
import type { Mxfp4Matrix } from '../io/mxfp4-matrix.js';
import { swiGluForward } from './mlp.js';
import type { ExpertWeights, SwiGluOperands } from './weights.js';

export abstract class StoredSwiGlu<M extends Fp8Matrix | Mxfp4Matrix> implements ExpertWeights {
  /**
   * @param gate [width, hidden]  @param up [width, hidden]  @param down [hidden, width]
   * (nn.Linear layout: y = x·Wᵀ)
   */
  constructor(
    readonly gate: M,
    readonly up: M,
    readonly down: M,
    readonly hidden: number,
    readonly width: number,
  ) {
    if (!this.holds(gate, width, hidden) || !this.holds(up, width, hidden) || !this.holds(down, hidden, width)) {
      throw new Error(
        `${this.format()} SwiGLU weights do not match hidden ${hidden} × width ${width} (gate ${gate.rows}×${gate.cols}, up ${up.rows}×${up.cols}, down ${down.rows}×${down.cols})`,
      );
    }
  }

  /** the format's name, for messages */
  protected abstract format(): string;
  /** whether m is a rows × cols matrix whose parts have their lengths */
  protected abstract holds(m: M, rows: number, cols: number): boolean;
  /** bytes m holds */
  protected abstract bytesOf(m: M): number;
  /** out (rows × m.rows) = x (rows × m.cols) · mᵀ, overwriting out */
  protected abstract multiply(engine: Engine, m: M, x: Float32Array, rows: number, out: Float32Array): void;

  /** bytes held */
  get byteLength(): number {
    return this.bytesOf(this.gate) + this.bytesOf(this.up) + this.bytesOf(this.down);
  }

  project(engine: Engine, which: 'gate' | 'up' | 'down', x: Float32Array, rows: number, out: Float32Array): void {
    this.multiply(engine, this[which], x, rows, out);
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    swiGluForward(this, engine, x, rows, out);
  }

  /** The matrices as stored: ForwardKernels.swiGluExperts multiplies them as `multiply` does, for any number of rows. */
  swiGluOperands(): SwiGluOperands {
    return { width: this.width, gate: this.gate, up: this.up, down: this.down };
  }
}
