/**
 * ForwardKernels.swiGluExperts in TypeScript: the routed experts of one MoE block, expert by
 * expert, with the kernels the block's loop runs (gather, gate and up products, SwiGLU, down
 * product, weighted scatter-add), in the loop's order.
 */
import { EngineError } from '../../types.js';
import { checkDims, checkFloat32, sharesMemory } from './check.js';
import { gemmBf16 } from './gemm-bf16.js';
import { gemmBlock } from '../gemm-kernel.js';
import { gatherRows, scatterAddRows } from './rows.js';
import { siluMul } from './silu-mul.js';

/**
 * Most rows a routed expert with an f32 matrix may have in a call (the native kernel's small-rows
 * limit: beyond it the per-expert loop's f32 products go through sgemm, whose sums the kernel does
 * not reproduce). An expert whose three matrices are BF16 may have any number.
 */
export const SWIGLU_EXPERTS_MAX_ROWS = 8;

/** A weight matrix in either form: BF16 as stored (Uint16Array) or f32. */
export type ExpertMatrix = Uint16Array | Float32Array;


/** Checks the arguments as the native kernel does. */
export function checkSwiGluExperts(
  hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
  gates: ExpertMatrix[], ups: ExpertMatrix[], downs: ExpertMatrix[], work: Float32Array, out: Float32Array,
): void {
  const op = 'swiGluExperts';
  checkDims(op, { hidden, width });
  if (hidden === 0 || width === 0) throw new EngineError(`${op}: hidden and width must be at least 1`);
  checkFloat32(op, 'x', x);
  checkFloat32(op, 'weights', weights);
  checkFloat32(op, 'work', work);
  checkFloat32(op, 'out', out);
  if (!(first instanceof Int32Array)) throw new EngineError(`${op}: first must be an Int32Array`);
  if (!(order instanceof Int32Array)) throw new EngineError(`${op}: order must be an Int32Array`);
  if (first.length < 1) throw new EngineError(`${op}: first must hold one more entry than routed experts`);
  const experts = first.length - 1;
  if (!Array.isArray(gates) || !Array.isArray(ups) || !Array.isArray(downs)) throw new EngineError(`${op}: gates, ups and downs must be arrays of weight matrices (one per routed expert)`);
  if (gates.length !== experts || ups.length !== experts || downs.length !== experts) {
    throw new EngineError(`${op}: gates, ups and downs must have one entry per routed expert (${experts})`);
  }
  if (x.length % hidden !== 0) throw new EngineError(`${op}: x has ${x.length} values, not a multiple of hidden = ${hidden}`);
  const tokens = x.length / hidden;
  if (out.length !== tokens * hidden) throw new EngineError(`${op}: out has ${out.length} elements but a ${tokens}×${hidden} matrix needs ${tokens * hidden} (check hidden and x: out is tokens × hidden, as x is)`);
  if (sharesMemory(out, x)) throw new EngineError(`${op}: out shares memory with x`);
  if (sharesMemory(work, x)) throw new EngineError(`${op}: work shares memory with x`);
  if (sharesMemory(work, out)) throw new EngineError(`${op}: work shares memory with out`);
  if (first[0] < 0) throw new EngineError(`${op}: first[0] must not be negative`);
  for (let i = 0; i < experts; i++) {
    const rows = first[i + 1] - first[i];
    if (rows < 0) throw new EngineError(`${op}: first must not decrease (expert ${i})`);
  }
  const end = first[experts];
  if (order.length < end) throw new EngineError(`${op}: order has ${order.length} elements but at least ${end} are needed (check first: order holds every routed row)`);
  if (weights.length < end) throw new EngineError(`${op}: weights has ${weights.length} elements but at least ${end} are needed (check first: weights holds every routed row)`);
  for (let j = first[0]; j < end; j++) {
    if (order[j] < 0 || order[j] >= tokens) throw new EngineError(`${op}: order[${j}] = ${order[j]} is not a row of x (${tokens} rows)`);
  }
  const needed = (end - first[0]) * (2 * hidden + 2 * width);
  if (work.length < needed) throw new EngineError(`${op}: work has ${work.length} elements but at least ${needed} are needed (check first, hidden and width: work holds routed rows × (2·hidden + 2·width))`);
  const matrix = (name: string, list: ExpertMatrix[], i: number, values: number) => {
    const m = list[i];
    if (!(m instanceof Uint16Array) && !(m instanceof Float32Array)) throw new EngineError(`${op}: ${name}[${i}] must be a Uint16Array (BF16) or a Float32Array`);
    if (m.length !== values) throw new EngineError(`${op}: ${name}[${i}] holds ${m.length} values, expected ${values} (check hidden and width)`);
  };
  for (let i = 0; i < experts; i++) {
    matrix('gates', gates, i, width * hidden);
    matrix('ups', ups, i, width * hidden);
    matrix('downs', downs, i, hidden * width);
    const rows = first[i + 1] - first[i];
    const allBf16 = gates[i] instanceof Uint16Array && ups[i] instanceof Uint16Array && downs[i] instanceof Uint16Array;
    if (rows > SWIGLU_EXPERTS_MAX_ROWS && !allBf16) {
      throw new EngineError(`${op}: routed expert ${i} has ${rows} rows and f32 matrices: at most ${SWIGLU_EXPERTS_MAX_ROWS} rows with f32 (run larger groups of f32 experts expert by expert)`);
    }
  }
}

function product(rows: number, n: number, k: number, a: Float32Array, b: ExpertMatrix, c: Float32Array): void {
  if (b instanceof Uint16Array) gemmBf16(rows, n, k, a, b, c, 0);
  else gemmBlock(rows, n, k, a, false, b, true, c, 1, 0, 0, rows, 0, n);
}

export function swiGluExperts(
  hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
  gates: ExpertMatrix[], ups: ExpertMatrix[], downs: ExpertMatrix[], work: Float32Array, out: Float32Array,
): void {
  checkSwiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, out);
  for (let i = 0; i + 1 < first.length; i++) {
    const rows = first[i + 1] - first[i];
    if (rows === 0) continue;
    const idx = order.subarray(first[i], first[i + 1]);
    const xe = work.subarray(0, rows * hidden);
    const g = work.subarray(rows * hidden, rows * (hidden + width));
    const u = work.subarray(rows * (hidden + width), rows * (hidden + 2 * width));
    const y = work.subarray(rows * (hidden + 2 * width), rows * (2 * hidden + 2 * width));
    gatherRows(hidden, idx, rows, x, xe);
    product(rows, width, hidden, xe, gates[i], g);
    product(rows, width, hidden, xe, ups[i], u);
    siluMul(rows * width, g, u);
    product(rows, hidden, width, g, downs[i], y);
    scatterAddRows(hidden, idx, weights.subarray(first[i], first[i + 1]), rows, y, out);
  }
}
