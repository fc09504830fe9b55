/** ForwardKernels.addInto in TypeScript: target[i] += source[i]. */
import { checkAtLeast, checkDims, checkFloat32 } from './check.js';

export function addInto(length: number, target: Float32Array, source: Float32Array): void {
  const op = 'addInto';
  checkDims(op, { length });
  checkFloat32(op, 'target', target);
  checkFloat32(op, 'source', source);
  checkAtLeast(op, 'target', target, length, 'length');
  checkAtLeast(op, 'source', source, length, 'length');
  for (let i = 0; i < length; i++) target[i] += source[i];
}
