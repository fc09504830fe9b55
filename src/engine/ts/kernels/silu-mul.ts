/** SwiGLU's activation: gate[i] = silu(gate[i]) · up[i], in place (f64 arithmetic, one rounding). */
import { checkElementwisePair } from './check.js';

export function siluMulInPlace(gate: Float32Array, up: Float32Array, length: number): void {
  for (let i = 0; i < length; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** ForwardKernels.siluMul. */
export function siluMul(length: number, gate: Float32Array, up: Float32Array): void {
  checkElementwisePair('siluMul', length, 'gate', gate, 'up', up);
  siluMulInPlace(gate, up, length);
}
