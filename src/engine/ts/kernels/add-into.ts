/** ForwardKernels.addInto in TypeScript: target[i] += source[i]. */
import { checkElementwisePair } from './check.js';

export function addInto(length: number, target: Float32Array, source: Float32Array): void {
  checkElementwisePair('addInto', length, 'target', target, 'source', source);
  for (let i = 0; i < length; i++) target[i] += source[i];
}
