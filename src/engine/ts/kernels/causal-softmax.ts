/** ForwardKernels.causalSoftmax in TypeScript (see src/engine/types.ts). */
import { EngineError } from '../../types.js';
import { checkDims, checkFloat32 } from './check.js';
import { softmaxInPlace } from './softmax.js';

export function causalSoftmax(blocks: number, rows: number, cols: number, past: number, window: number | null, scores: Float32Array): void {
  const op = 'causalSoftmax';
  checkDims(op, { blocks, rows, cols, past });
  if (window !== null) checkDims(op, { window });
  checkFloat32(op, 'scores', scores);
  if (past + rows > cols) throw new EngineError(`${op}: past + rows = ${past + rows} exceeds cols = ${cols} (the last query must see its own key)`);
  if (scores.length !== blocks * rows * cols) throw new EngineError(`${op}: scores has ${scores.length} elements but ${blocks}·${rows}×${cols} blocks need ${blocks * rows * cols}`);
  const w = window === null || window === 0 ? null : window;
  for (let r = 0; r < blocks * rows; r++) {
    const last = past + (r % rows);
    const first = w === null ? 0 : Math.max(0, last - w + 1);
    const row = r * cols;
    scores.fill(0, row, row + first);
    softmaxInPlace(scores, row + first, last + 1 - first);
    scores.fill(0, row + last + 1, row + cols);
  }
}
