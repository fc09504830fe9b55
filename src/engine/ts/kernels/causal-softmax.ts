/** ForwardKernels.causalSoftmax in TypeScript (see src/engine/types.ts). */
import { EngineError } from '../../types.js';
import { checkDims, checkFloat32 } from './check.js';
import { softmaxInPlace } from './softmax.js';

/**
 * With `sinks` (the attention loop's, one per block: softmaxInPlace's sink for every row of block
 * b), each row's normaliser takes its block's sink; without, the plain causal softmax.
 */
export function causalSoftmax(blocks: number, rows: number, cols: number, past: number, window: number | null, scores: Float32Array, sinks?: Float32Array): void {
  const op = 'causalSoftmax';
  checkDims(op, { blocks, rows, cols, past });
  if (window !== null) checkDims(op, { window });
  checkFloat32(op, 'scores', scores);
  if (past + rows > cols) throw new EngineError(`${op}: past + rows = ${past + rows} exceeds cols = ${cols} (the last query must see its own key)`);
  if (scores.length !== blocks * rows * cols) throw new EngineError(`${op}: scores has ${scores.length} elements but ${blocks}·${rows}×${cols} blocks need ${blocks * rows * cols}`);
  if (sinks && sinks.length !== blocks) throw new EngineError(`${op}: sinks has ${sinks.length} elements for ${blocks} blocks (one a block)`);
  const w = window === null || window === 0 ? null : window;
  for (let r = 0; r < blocks * rows; r++) {
    const last = past + (r % rows);
    const first = w === null ? 0 : Math.max(0, last - w + 1);
    const row = r * cols;
    scores.fill(0, row, row + first);
    softmaxInPlace(scores, row + first, last + 1 - first, sinks?.[Math.floor(r / rows)]);
    scores.fill(0, row + last + 1, row + cols);
  }
}
