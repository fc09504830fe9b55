/**
 * ForwardKernels.swiGluExperts in TypeScript: the routed experts of one MoE block, expert by
 * expert, with the kernels the block's loop runs (gather, gate and up products, SwiGLU, down
 * product, weighted scatter-add), in the loop's order; packed matrices (FP8, MXFP4) through
 * gemmFp8 and gemmMxfp4. With `clamped`, gpt-oss's activation and
 * biases in SwiGLU's place, computed as the block's expert-by-expert reference computes them.
 */
import { EngineError, type ClampedSwiGluExperts, type ExpertOperand, type FactoredOperand, type MatmulActivations } from '../../types.js';
import { checkDims, checkFloat32, sharesMemory } from './check.js';
import { gemmBf16 } from './gemm-bf16.js';
import { gemmBlock } from '../gemm-kernel.js';
import { gatherRows, scatterAddRows } from './rows.js';
import { siluMul } from './silu-mul.js';
import { clampedSwiGluInPlace } from './clamped-swiglu.js';
import { addTileResidual } from './tile-residual.js';
import { gemmFp8 } from './gemm-fp8.js';
import { gemmMxfp4 } from './gemm-mxfp4.js';
import { fp8Groups, type Fp8Matrix } from '../../../io/fp8-matrix.js';
import { MXFP4_GROUP, type Mxfp4Matrix } from '../../../io/mxfp4-matrix.js';

/**
 * Most rows a routed expert with an f32 matrix (a factored one's factors included) may have in a
 * call (the native kernel's small-rows limit: beyond it the per-expert loop's f32 products go
 * through sgemm, whose sums the kernel does not reproduce). An expert whose matrices are all BF16
 * may have any number.
 */
export const SWIGLU_EXPERTS_MAX_ROWS = 8;

/** A weight matrix in either form: BF16 as stored (Uint16Array) or f32. */
export type ExpertMatrix = Uint16Array | Float32Array;

function isMatrix(m: unknown): m is ExpertMatrix {
  return m instanceof Uint16Array || m instanceof Float32Array;
}

function isFp8(o: ExpertOperand): o is Fp8Matrix {
  return 'codes' in o;
}

function isMxfp4(o: ExpertOperand): o is Mxfp4Matrix {
  return 'blocks' in o;
}

/** Every matrix of an operand is BF16, as stored or decoded (packed), a factored one's factors and base included. */
export function allBf16(o: ExpertOperand): boolean {
  if (isMatrix(o)) return o instanceof Uint16Array;
  if (isFp8(o) || isMxfp4(o)) return true;
  return o.basis instanceof Uint16Array && o.coefficients instanceof Uint16Array && (o.base == null || o.base instanceof Uint16Array);
}

/** Checks the arguments as the native kernel does. */
export function checkSwiGluExperts(
  hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
  gates: ExpertOperand[], ups: ExpertOperand[], downs: ExpertOperand[], work: Float32Array, out: Float32Array,
  clamped?: ClampedSwiGluExperts | null,
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
  const matrix = (label: string, m: unknown, values: number, check: string) => {
    if (!isMatrix(m)) throw new EngineError(`${op}: ${label} must be a Uint16Array (BF16) or a Float32Array`);
    if (m.length !== values) throw new EngineError(`${op}: ${label} holds ${m.length} values, expected ${values} (check ${check})`);
  };
  const part = (label: string, m: unknown, type: typeof Uint8Array | typeof Float32Array, values: number, check: string) => {
    if (!(m instanceof type)) throw new EngineError(`${op}: ${label} must be a ${type.name}`);
    if (m.length !== values) throw new EngineError(`${op}: ${label} holds ${m.length} values, expected ${values} (check ${check})`);
  };
  // as the native kernel checks them (PackedValue)
  const packed = (label: string, o: Partial<Fp8Matrix & Mxfp4Matrix>, p: number, d: number) => {
    if ('codes' in o) {
      const g = o.group;
      if (typeof g !== 'number' || !Number.isInteger(g) || g < 1 || g > 0x7fffffff) throw new EngineError(`${op}: ${label}.group must be a whole number ≥ 1 (values a scale covers along a row)`);
      part(`${label}.codes`, o.codes, Uint8Array, p * d, 'hidden and width: codes is rows × columns');
      part(`${label}.scales`, o.scales, Float32Array, p * fp8Groups(d, g), 'group: scales is rows × ⌈columns / group⌉');
      return;
    }
    if (d % MXFP4_GROUP !== 0) throw new EngineError(`${op}: ${label} is MXFP4 with ${d} columns: MXFP4 needs a multiple of 32 (one exponent a group of 32 values)`);
    part(`${label}.blocks`, o.blocks, Uint8Array, (p * d) / 2, 'hidden and width: blocks is rows × columns/2 bytes');
    part(`${label}.scales`, o.scales, Uint8Array, (p * d) / MXFP4_GROUP, 'hidden and width: scales is rows × columns/32 exponents');
  };
  const operand = (name: string, list: ExpertOperand[], i: number, p: number, d: number) => {
    const o: unknown = list[i];
    const label = `${name}[${i}]`;
    if (ArrayBuffer.isView(o) || typeof o !== 'object' || o === null) {
      if (!ArrayBuffer.isView(o)) {
        throw new EngineError(`${op}: ${label} must be a Uint16Array (BF16), a Float32Array, a packed matrix (FP8 { codes, scales, group }, MXFP4 { blocks, scales }) or a factored matrix { basis, coefficients, rank }`);
      }
      matrix(label, o, p * d, 'hidden and width');
      return;
    }
    if ('codes' in o || 'blocks' in o) {
      packed(label, o as Partial<Fp8Matrix & Mxfp4Matrix>, p, d);
      return;
    }
    const f = o as Partial<FactoredOperand>;
    if (typeof f.rank !== 'number' || !Number.isInteger(f.rank) || f.rank < 0 || f.rank > 0x7fffffff) throw new EngineError(`${op}: ${label}.rank must be a whole number ≥ 0`);
    matrix(`${label}.basis`, f.basis, f.rank * d, "rank and the matrix's columns: basis is rank × columns");
    matrix(`${label}.coefficients`, f.coefficients, p * f.rank, "rank and the matrix's rows: coefficients is rows × rank");
    if (f.base !== undefined && f.base !== null) matrix(`${label}.base`, f.base, p * d, 'hidden and width');
    if (f.residualQ !== undefined && f.residualQ !== null) {
      const q = f.residualQ;
      if (typeof q !== 'number' || !Number.isInteger(q) || q < 1 || q > p * d || q > 0x7fffffff) {
        throw new EngineError(`${op}: ${label}.residualQ must be a whole number of buckets from 1 to the matrix's entries (${p * d})`);
      }
      if (!(f.residualEta instanceof Float32Array)) throw new EngineError(`${op}: ${label}.residualEta must be a Float32Array`);
      if (f.residualEta.length < q) throw new EngineError(`${op}: ${label}.residualEta holds fewer values than residualQ buckets`);
    }
  };
  for (let i = 0; i < experts; i++) {
    operand('gates', gates, i, width, hidden);
    operand('ups', ups, i, width, hidden);
    operand('downs', downs, i, hidden, width);
    const rows = first[i + 1] - first[i];
    if (rows > SWIGLU_EXPERTS_MAX_ROWS && !(allBf16(gates[i]) && allBf16(ups[i]) && allBf16(downs[i]))) {
      throw new EngineError(`${op}: routed expert ${i} has ${rows} rows and f32 matrices: at most ${SWIGLU_EXPERTS_MAX_ROWS} rows with f32 (run larger groups of f32 experts expert by expert)`);
    }
  }
  if (clamped !== undefined && clamped !== null) checkClamped(op, clamped, experts, hidden, width);
}

/** The checks of swiGluExperts's `clamped` argument (the native kernel makes the same). */
function checkClamped(op: string, clamped: ClampedSwiGluExperts, experts: number, hidden: number, width: number): void {
  if (typeof clamped !== 'object') throw new EngineError(`${op}: clamped must be { alpha, limit, gateBiases, upBiases, downBiases } or null`);
  const { alpha, limit } = clamped;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new EngineError(`${op}: clamped.alpha must be a finite number`);
  if (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0) throw new EngineError(`${op}: clamped.limit must be a finite number ≥ 0`);
  const biases = (name: 'gateBiases' | 'upBiases' | 'downBiases', values: number, check: string) => {
    const list: unknown = clamped[name];
    if (!Array.isArray(list)) throw new EngineError(`${op}: clamped.${name} must be an array of Float32Array (one per routed expert)`);
    if (list.length !== experts) throw new EngineError(`${op}: clamped.${name} has ${list.length} entries, expected one per routed expert (${experts})`);
    for (let i = 0; i < experts; i++) {
      const b: unknown = list[i];
      if (!(b instanceof Float32Array)) throw new EngineError(`${op}: clamped.${name}[${i}] must be a Float32Array`);
      if (b.length !== values) throw new EngineError(`${op}: clamped.${name}[${i}] holds ${b.length} values, expected ${values} (check ${check})`);
    }
  };
  biases('gateBiases', width, 'width');
  biases('upBiases', width, 'width');
  biases('downBiases', hidden, 'hidden');
}

function product(rows: number, n: number, k: number, a: Float32Array, b: ExpertMatrix, c: Float32Array, beta: number, activations: MatmulActivations): void {
  if (b instanceof Uint16Array) gemmBf16(rows, n, k, a, b, c, beta, activations);
  else gemmBlock(rows, n, k, a, false, b, true, c, 1, beta, 0, rows, 0, n);
}

/** y (rows × p) = x (rows × d) · Wᵀ for one projection, as the runtime's DenseLinear / FactoredLinear apply it. */
function apply(rows: number, p: number, d: number, x: Float32Array, o: ExpertOperand, y: Float32Array, activations: MatmulActivations): void {
  if (isMatrix(o)) {
    product(rows, p, d, x, o, y, 0, activations);
    return;
  }
  if (isFp8(o)) {
    gemmFp8(rows, p, d, x, o.codes, o.scales, o.group, y, 0, activations);
    return;
  }
  if (isMxfp4(o)) {
    gemmMxfp4(rows, p, d, x, o.blocks, o.scales, y, 0, activations);
    return;
  }
  const t = new Float32Array(rows * o.rank);
  product(rows, o.rank, d, x, o.basis, t, 0, activations);
  if (o.base) product(rows, p, d, x, o.base, y, 0, activations);
  product(rows, p, o.rank, t, o.coefficients, y, o.base ? 1 : 0, activations);
  if (o.residualQ != null && o.residualEta) addTileResidual(d, p, o.residualQ, o.residualEta, x, rows, y);
}

export function swiGluExperts(
  hidden: number, width: number, x: Float32Array, first: Int32Array, order: Int32Array, weights: Float32Array,
  gates: ExpertOperand[], ups: ExpertOperand[], downs: ExpertOperand[], work: Float32Array, out: Float32Array,
  clamped?: ClampedSwiGluExperts | null,
  activations: MatmulActivations = 'f32',
): void {
  checkSwiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, out, clamped);
  for (let i = 0; i + 1 < first.length; i++) {
    const rows = first[i + 1] - first[i];
    if (rows === 0) continue;
    const idx = order.subarray(first[i], first[i + 1]);
    const xe = work.subarray(0, rows * hidden);
    const g = work.subarray(rows * hidden, rows * (hidden + width));
    const u = work.subarray(rows * (hidden + width), rows * (hidden + 2 * width));
    const y = work.subarray(rows * (hidden + 2 * width), rows * (2 * hidden + 2 * width));
    gatherRows(hidden, idx, rows, x, xe);
    apply(rows, width, hidden, xe, gates[i], g, activations);
    apply(rows, width, hidden, xe, ups[i], u, activations);
    if (clamped) clampedSwiGluInPlace(rows, width, g, u, clamped.gateBiases[i], clamped.upBiases[i], clamped.alpha, clamped.limit);
    else siluMul(rows * width, g, u);
    apply(rows, hidden, width, g, downs[i], y, activations);
    // the down bias row by row, as the reference adds it (addRowBias)
    if (clamped) {
      const bias = clamped.downBiases[i];
      for (let r = 0; r < rows; r++) for (let c = 0, o = r * hidden; c < hidden; c++) y[o + c] += bias[c];
    }
    scatterAddRows(hidden, idx, weights.subarray(first[i], first[i + 1]), rows, y, out);
  }
}
