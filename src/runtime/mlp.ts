/** The dense SwiGLU MLP: the uncompressed form of every expert, shared expert and dense layer. */
import type { Engine } from '../engine/types.js';
import { scratch } from './numerics.js';
import { productTransB, type Weights } from './weight-matrix.js';
import type { ExpertWeights, SwiGluMatrices, SwiGluOperands } from './weights.js';

/**
 * out = down(silu(gate(x)) ⊙ up(x)), each matrix in the form it is held in (f32, or BF16 as stored;
 * a BF16 checkpoint with one matrix stored otherwise keeps the others BF16 and that one f32).
 */
export class SwiGlu<W extends Weights = Weights> implements ExpertWeights {
  /**
   * @param gate [width, hidden]  @param up [width, hidden]  @param down [hidden, width]
   * (nn.Linear layout: y = x·Wᵀ)
   */
  constructor(
    readonly gate: W,
    readonly up: W,
    readonly down: W,
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

  swiGluMatrices(): SwiGluMatrices {
    return this;
  }

  swiGluOperands(): SwiGluOperands {
    return this;
  }

  project(engine: Engine, which: 'gate' | 'up' | 'down', x: Float32Array, rows: number, out: Float32Array): void {
    const [n, k] = which === 'down' ? [this.hidden, this.width] : [this.width, this.hidden];
    productTransB(engine, rows, n, k, x, this[which], out);
  }

  forward(engine: Engine, x: Float32Array, rows: number, out: Float32Array): void {
    swiGluForward(this, engine, x, rows, out);
  }
}

/**
 * out = down(silu(gate(x)) ⊙ up(x)) through an expert's own projections, whatever form it holds
 * its matrices in (SwiGlu, Mxfp4SwiGlu).
 */
export function swiGluForward(
  expert: { readonly width: number; project(engine: Engine, which: 'gate' | 'up' | 'down', x: Float32Array, rows: number, out: Float32Array): void },
  engine: Engine, x: Float32Array, rows: number, out: Float32Array,
): void {
  const { width } = expert;
  // synchronous from here to the end: the shared scratch buffers cannot be reused meanwhile
  const g = scratch('swiglu-gate', rows * width);
  const u = scratch('swiglu-up', rows * width);
  expert.project(engine, 'gate', x, rows, g);
  expert.project(engine, 'up', x, rows, u);
  engine.kernels.siluMul(rows * width, g, u);
  expert.project(engine, 'down', g, rows, out);
}

/** The three matrices in f32. */
export class DenseSwiGlu extends SwiGlu<Float32Array> {}

/**
 * The three matrices kept in BF16 as the checkpoint stores them: half the memory of DenseSwiGlu,
 * and its products (ForwardKernels.gemmBf16) read half the bytes, which is what bounds a decoding
 * step. BF16 → f32 is exact, so it computes what DenseSwiGlu computes on the widened matrices, to
 * the engine's summation order.
 */
export class Bf16SwiGlu extends SwiGlu<Uint16Array> {}

/** The SwiGLU over these matrices, as DenseSwiGlu or Bf16SwiGlu when all three share a form. */
export function swiGlu(gate: Weights, up: Weights, down: Weights, hidden: number, width: number): SwiGlu {
  if (gate instanceof Uint16Array && up instanceof Uint16Array && down instanceof Uint16Array) return new Bf16SwiGlu(gate, up, down, hidden, width);
  if (gate instanceof Float32Array && up instanceof Float32Array && down instanceof Float32Array) return new DenseSwiGlu(gate, up, down, hidden, width);
  return new SwiGlu(gate, up, down, hidden, width);
}
