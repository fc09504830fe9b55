/** ForwardKernels.gatherRows / scatterAddRows / copyBlock in TypeScript (see src/engine/types.ts). */
import { EngineError } from '../../types.js';
import { checkAtLeast, checkDims, checkFloat32, checkIndices } from './check.js';

export function gatherRows(width: number, index: Int32Array, count: number, src: Float32Array, dst: Float32Array): void {
  const op = 'gatherRows';
  checkDims(op, { width, count });
  checkFloat32(op, 'src', src);
  checkFloat32(op, 'dst', dst);
  checkAtLeast(op, 'index', index, count, 'count');
  checkAtLeast(op, 'dst', dst, count * width, 'count and width: dst is count×width');
  if (width === 0) return;
  checkIndices(op, index, count, Math.floor(src.length / width), 'src');
  for (let i = 0; i < count; i++) dst.set(src.subarray(index[i] * width, (index[i] + 1) * width), i * width);
}

export function scatterAddRows(width: number, index: Int32Array, weights: Float32Array, count: number, src: Float32Array, dst: Float32Array): void {
  const op = 'scatterAddRows';
  checkDims(op, { width, count });
  checkFloat32(op, 'src', src);
  checkFloat32(op, 'dst', dst);
  checkAtLeast(op, 'index', index, count, 'count');
  checkAtLeast(op, 'weights', weights, count, 'count');
  checkAtLeast(op, 'src', src, count * width, 'count and width: src is count×width');
  if (width === 0) return;
  checkIndices(op, index, count, Math.floor(dst.length / width), 'dst');
  for (let i = 0; i < count; i++) {
    const to = index[i] * width;
    const from = i * width;
    const wt = weights[i];
    for (let j = 0; j < width; j++) dst[to + j] += wt * src[from + j];
  }
}

export function copyBlock(rows: number, cols: number, src: Float32Array, srcOffset: number, srcStride: number, dst: Float32Array, dstOffset: number, dstStride: number): void {
  const op = 'copyBlock';
  checkDims(op, { rows, cols, srcOffset, srcStride, dstOffset, dstStride });
  checkFloat32(op, 'src', src);
  checkFloat32(op, 'dst', dst);
  if (rows === 0 || cols === 0) return;
  if (srcStride < cols || dstStride < cols) throw new EngineError(`${op}: strides must be at least cols (rows of a block do not overlap)`);
  checkAtLeast(op, 'src', src, srcOffset + (rows - 1) * srcStride + cols, 'rows, cols, srcOffset and srcStride');
  checkAtLeast(op, 'dst', dst, dstOffset + (rows - 1) * dstStride + cols, 'rows, cols, dstOffset and dstStride');
  // a plain loop: rows are short (one attention head), where subarray()+set() per row costs an allocation each
  for (let i = 0; i < rows; i++) {
    const from = srcOffset + i * srcStride;
    const to = dstOffset + i * dstStride;
    for (let j = 0; j < cols; j++) dst[to + j] = src[from + j];
  }
}
