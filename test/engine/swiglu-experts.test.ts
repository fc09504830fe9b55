/**
 * The swiGluExperts kernel (every routed expert of one MoE block in one call):
 * - every engine against gather → down(silu(gate·x) ⊙ up·x) → weighted scatter-add computed in
 *   f64 here, with BF16 and f32 matrices (and a mix), an expert with no rows, several rows per
 *   expert, a prompt's tens of rows per BF16 expert, tokens routed to several experts, and `out`
 *   accumulated onto what it held;
 * - the native kernel, which runs the experts on the persistent pool (or, with fewer experts than
 *   threads or under 1 MiB of weights, shares each product's rows out), bit for bit against the
 *   per-expert loop of separate native calls (gatherRows, gemmBf16 / gemm, siluMul,
 *   scatterAddRows: what the MoE block ran before the kernel), on 1 and 2 threads, and a prompt's
 *   experts on 1, 2, 3 and 5 threads, also in child processes with narrower kernels or OpenBLAS's
 *   AVX-512 kernels, where some products take sgemm's panels (test/helpers/swiglu-experts-check.ts);
 * - experts kept packed as their checkpoints store them (FP8 codes with a scale a group of 32,
 *   MXFP4), alone and beside BF16 ones, a decoding step's rows and a prompt's: every engine against
 *   the f64 block over the values decoded from the formats' definitions, and the native kernel bit
 *   for bit against the loop of gemmFp8 / gemmMxfp4 calls that ran them before;
 * - bad arguments: the same errors from every engine.
 * - gpt-oss's experts (`clamped`: biases, clamps, (u' + 1)·g'·sigmoid(alpha·g')): every engine
 *   against the formula in f64 on every case above, with biases drawn so that both clamps bite;
 *   the native kernel bit for bit against the per-expert loop whose activation is the MoE block's
 *   JavaScript reference (on 1 and 2 threads; a prompt's experts on 1, 2, 3 and 5); the
 *   argument absent, undefined or null gives the same bits; its bad values refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { ClampedSwiGluExperts, Engine, ExpertOperand, FactoredOperand } from '../../src/engine/types.js';
import { FactoredLinear } from '../../src/compressed/factored-expert.js';
import { createProjection } from '../../src/residual/projection.js';
import { EngineError } from '../../src/engine/types.js';
import { mulberry32, uniform } from '../helpers/rng.js';
import { onNativeEngines } from '../helpers/native-threads.js';
import { expectClean, runCappedCheck, simdLevelsOf } from '../helpers/simd-levels.js';
import type { Fp8Matrix } from '../../src/io/fp8-matrix.js';
import type { Mxfp4Matrix } from '../../src/io/mxfp4-matrix.js';
import { decodeFp8, randomFp8 } from '../helpers/fp8-gemm-check.js';
import { decodeMxfp4, randomMxfp4 } from '../helpers/mxfp4-gemm-check.js';
import {
  SWIGLU_PROMPT_FACTORED_SHAPES, SWIGLU_PROMPT_PACKED_SHAPES, SWIGLU_PROMPT_SHAPES, checkSwiGluExpertsPrompt, checkSwiGluExpertsPromptClamped, checkSwiGluExpertsPromptFactored,
  checkSwiGluExpertsPromptPacked,
  clampedSwiGluReference,
} from '../helpers/swiglu-experts-check.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

type Matrix = ExpertOperand;

/** The BF16 patterns of f32 values (truncated: any BF16 value will do as a weight). */
function toBf16(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  return Uint16Array.from(bits, (b) => b >>> 16);
}

function widen(m: Uint16Array | Float32Array): Float32Array {
  if (m instanceof Float32Array) return m;
  const out = new Float32Array(m.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < m.length; i++) bits[i] = m[i] << 16;
  return out;
}

/** Values an FP8 scale covers along a row in these tests: 32, so rows of 40 end in a short group. */
const FP8_GROUP = 32;

/**
 * A p × d matrix kept packed as a checkpoint stores it: FP8 codes with a scale a group, or MXFP4;
 * every code drawn, the scales made small enough (FP8's an eighth of randomFp8's, MXFP4's
 * exponents 2^-11 to 2^-7) that the products stay of order 1, as the clamped cases need.
 */
function packedOperand(format: 'fp8' | 'mxfp4', p: number, d: number, seed: number): Matrix {
  if (format === 'fp8') {
    const { codes, scales } = randomFp8(p, d, FP8_GROUP, seed);
    return { rows: p, cols: d, group: FP8_GROUP, codes, scales: scales.map((v) => v / 8) };
  }
  const { blocks, scales } = randomMxfp4(p, d, seed);
  return { rows: p, cols: d, blocks, scales: scales.map((e) => 116 + (e % 5)) };
}

/** The p × d matrix an operand stands for, in f64: its values decoded from the format's definition (packed), or A·B (+ W̄) + unvec(P·η) for a factored one. */
function denseOf(m: Matrix, p: number, d: number): Float64Array {
  if (m instanceof Uint16Array || m instanceof Float32Array) return Float64Array.from(widen(m));
  if ('codes' in m) return decodeFp8(m.codes, m.scales, p, d, m.group);
  if ('blocks' in m) return decodeMxfp4(m.blocks, m.scales, p, d);
  const out = m.base ? Float64Array.from(widen(m.base)) : new Float64Array(p * d);
  const [A, B] = [widen(m.coefficients), widen(m.basis)];
  for (let i = 0; i < p; i++) for (let r = 0; r < m.rank; r++) for (let j = 0; j < d; j++) out[i * d + j] += A[i * m.rank + r] * B[r * d + j];
  if (m.residualQ !== undefined) {
    const residual = createProjection({ scheme: 'tile', q: m.residualQ, length: p * d, seed: 0 }).reconstruct(m.residualEta!);
    for (let i = 0; i < p * d; i++) out[i] += residual[i];
  }
  return out;
}

/**
 * A factored operand of kind 1-4 (a compressed expert's projections): rank half the smaller side
 * with a 'tile' residual; a third with a base and a residual; a quarter in f32 without a residual;
 * rank 0 with a residual alone. Kind 0 is a dense BF16 matrix.
 */
function factoredOperand(kind: number, p: number, d: number, seed: number): Matrix {
  if (kind === 0) return toBf16(uniform(p * d, seed, 0.2));
  const rank = [0, Math.ceil(Math.min(p, d) / 2), Math.ceil(Math.min(p, d) / 3), Math.ceil(Math.min(p, d) / 4), 0][kind];
  const f32 = kind === 3;
  const form = (v: Float32Array) => (f32 ? v : toBf16(v));
  const o: FactoredOperand = { rank, basis: form(uniform(rank * d, seed + 1, 0.5)), coefficients: form(uniform(p * rank, seed + 2, 0.5)) };
  if (kind === 2) o.base = form(uniform(p * d, seed + 3, 0.1));
  if (kind !== 3) {
    o.residualQ = Math.min(p * d, 7 + 4 * kind);
    o.residualEta = uniform(o.residualQ, seed + 4, 2);
  }
  return o;
}

/** The runtime's own application of an operand (DenseLinear's product, a stored expert's gemmFp8 / gemmMxfp4, or FactoredLinear applied factored). */
function applyLikeRuntime(engine: Engine, rows: number, p: number, d: number, a: Float32Array, m: Matrix, y: Float32Array): void {
  if (m instanceof Uint16Array) engine.kernels.gemmBf16(rows, p, d, a, m, y, 0);
  else if (m instanceof Float32Array) engine.gemm(rows, p, d, a, m, y, { transB: true });
  else if ('codes' in m) engine.kernels.gemmFp8(rows, p, d, a, m.codes, m.scales, m.group, y, 0);
  else if ('blocks' in m) engine.kernels.gemmMxfp4(rows, p, d, a, m.blocks, m.scales, y, 0);
  else {
    const residual = m.residualQ === undefined ? undefined : { descriptor: { scheme: 'tile' as const, q: m.residualQ, length: p * d, seed: 0 }, vector: m.residualEta! };
    new FactoredLinear({ p, d, rank: m.rank, basis: m.basis, coefficients: m.coefficients, base: m.base, residual }, 'factored').apply(engine, a, rows, y);
  }
}

interface Case {
  name: string;
  hidden: number;
  width: number;
  tokens: number;
  /** rows per routed expert (0: an expert in the list with no rows) */
  rows: number[];
  /**
   * factored: the five kinds of factoredOperand in turn over the experts' projections;
   * factored-bf16: the four without f32 factors; fp8, mxfp4: packed (an FP8 or MXFP4 checkpoint's
   * experts held as stored); packed: FP8, MXFP4 and BF16 in turn
   */
  form: 'bf16' | 'f32' | 'mixed' | 'factored' | 'factored-bf16' | 'fp8' | 'mxfp4' | 'packed';
}

const CASES: Case[] = [
  { name: 'one row per expert, BF16 (a single-stream decoding step)', hidden: 64, width: 48, tokens: 1, rows: [1, 1, 1, 1], form: 'bf16' },
  { name: 'ragged rows, an empty expert, BF16 (8 streams)', hidden: 96, width: 40, tokens: 8, rows: [2, 0, 1, 5, 3, 8, 1, 4], form: 'bf16' },
  { name: 'f32 matrices', hidden: 32, width: 72, tokens: 6, rows: [3, 6, 1, 2], form: 'f32' },
  { name: 'BF16 and f32 mixed, odd sizes', hidden: 37, width: 19, tokens: 5, rows: [4, 1, 5], form: 'mixed' },
  { name: 'fewer experts than threads: each product shared by rows', hidden: 256, width: 272, tokens: 3, rows: [3], form: 'bf16' },
  { name: 'experts with over 1 MiB of weights: one expert per thread', hidden: 160, width: 192, tokens: 8, rows: [1, 2, 1, 3, 1, 2], form: 'bf16' },
  { name: 'a prompt: 9 to 30 rows an expert, BF16 (the tiled product)', hidden: 48, width: 40, tokens: 30, rows: [30, 9, 0, 17, 2], form: 'bf16' },
  { name: 'a prompt over 1 MiB of BF16 weights: experts on threads, the one with every row on all of them', hidden: 160, width: 192, tokens: 24, rows: [24, 12, 9, 1, 20, 5], form: 'bf16' },
  { name: 'factored matrices (a base, tile residuals, f32 factors, rank 0) beside dense ones: a compressed model decoding', hidden: 40, width: 24, tokens: 8, rows: [2, 8, 0, 1, 5, 3], form: 'factored' },
  { name: 'factored experts over 1 MiB: one expert per thread', hidden: 256, width: 192, tokens: 8, rows: [1, 2, 1, 3, 1, 2, 4, 1], form: 'factored' },
  { name: 'a prompt over BF16 factors: 9 to 30 rows a factored expert', hidden: 40, width: 24, tokens: 30, rows: [30, 9, 0, 17, 2, 12], form: 'factored-bf16' },
  { name: 'FP8 experts as stored, ragged rows and an empty expert (8 streams of an FP8 checkpoint)', hidden: 96, width: 40, tokens: 8, rows: [2, 0, 1, 5, 3, 8, 1, 4], form: 'fp8' },
  { name: 'FP8 experts over 1 MiB: one expert per thread', hidden: 256, width: 512, tokens: 8, rows: [1, 2, 1, 3, 1, 2, 4, 1], form: 'fp8' },
  { name: 'MXFP4 experts as stored (gpt-oss decoding)', hidden: 64, width: 96, tokens: 3, rows: [1, 1, 1, 1], form: 'mxfp4' },
  { name: 'a prompt over FP8, MXFP4 and BF16 experts: 9 to 30 rows an expert', hidden: 64, width: 32, tokens: 30, rows: [30, 9, 0, 17, 2, 12], form: 'packed' },
  { name: 'a prompt over 1 MiB of packed experts: the small ones on threads, those of over 8 rows on all of them', hidden: 256, width: 512, tokens: 24, rows: [24, 12, 9, 1, 20, 5, 2], form: 'packed' },
];

function inputs(c: Case, seed: number) {
  const r = mulberry32(seed);
  const experts = c.rows.length;
  const first = new Int32Array(experts + 1);
  c.rows.forEach((n, i) => (first[i + 1] = first[i] + n));
  // each expert takes distinct tokens in ascending order (as the MoE block groups them); a token may go to several experts
  const order = new Int32Array(first[experts]);
  for (let i = 0; i < experts; i++) {
    const pool = Array.from({ length: c.tokens }, (_, t) => t).sort(() => r() - 0.5).slice(0, c.rows[i]).sort((a, b) => a - b);
    order.set(pool, first[i]);
  }
  const weights = Float32Array.from(order, () => r());
  const matrix = (n: number, s: number, i: number): Matrix => {
    const values = uniform(n, s, 0.2);
    const bf16 = c.form === 'bf16' || (c.form === 'mixed' && i % 2 === 0);
    return bf16 ? toBf16(values) : values;
  };
  const operand = (p: number, d: number, s: number, i: number, slot: number): Matrix =>
    c.form === 'fp8' || c.form === 'mxfp4' ? packedOperand(c.form, p, d, s)
      : c.form === 'packed' ? ([(m: number, n: number, t: number) => packedOperand('fp8', m, n, t), (m: number, n: number, t: number) => packedOperand('mxfp4', m, n, t), (m: number, n: number, t: number) => toBf16(uniform(m * n, t, 0.2))][(3 * i + slot) % 3](p, d, s))
      : c.form === 'factored' ? factoredOperand((3 * i + slot) % 5, p, d, s)
      : c.form === 'factored-bf16' ? factoredOperand([0, 1, 2, 4][(3 * i + slot) % 4], p, d, s)
        : matrix(p * d, s, slot === 1 ? i + 1 : i);
  const gates = c.rows.map((_, i) => operand(c.width, c.hidden, seed + 10 * i + 1, i, 0));
  const ups = c.rows.map((_, i) => operand(c.width, c.hidden, seed + 10 * i + 2, i, 1));
  const downs = c.rows.map((_, i) => operand(c.hidden, c.width, seed + 10 * i + 3, i, 2));
  return { first, order, weights, gates, ups, downs, x: uniform(c.tokens * c.hidden, seed + 7), start: uniform(c.tokens * c.hidden, seed + 8) };
}

/** gpt-oss's constants (transformers' GptOssExperts: alpha 1.702, swiglu_limit 7). */
const ALPHA = 1.702;
const LIMIT = 7;

/**
 * gpt-oss's activation and biases for a case's experts: gate and up biases up to ±12, far beyond
 * the products (|x·Wᵀ| ≲ 1 here), so that a good share of g exceeds the limit and of u lies
 * beyond ±limit, and as many stay inside.
 */
function clampedFor(c: Case, seed: number): ClampedSwiGluExperts {
  const n = c.rows.length;
  return {
    alpha: ALPHA,
    limit: LIMIT,
    gateBiases: Array.from({ length: n }, (_, i) => uniform(c.width, seed + 100 + i, 12)),
    upBiases: Array.from({ length: n }, (_, i) => uniform(c.width, seed + 200 + i, 12)),
    downBiases: Array.from({ length: n }, (_, i) => uniform(c.hidden, seed + 300 + i, 1)),
  };
}

/** How often the clamps bit in `reference`: g above the limit, u above it and below −limit. */
interface Bites {
  gate: number;
  upHigh: number;
  upLow: number;
}

/**
 * The block's routed-expert sum in f64, added to `start`: SwiGLU, or with `clamped` gpt-oss's
 * g = x·Gᵀ + b_g, u = x·Uᵀ + b_u, (min(max(u, −limit), limit) + 1)·min(g, limit)·sigmoid(alpha·min(g, limit)), then ·Dᵀ + b_d.
 */
function reference(c: Case, x: ReturnType<typeof inputs>, clamped?: ClampedSwiGluExperts, bites?: Bites): Float64Array {
  const { hidden: h, width: w } = c;
  const out = Float64Array.from(x.start);
  for (let i = 0; i + 1 < x.first.length; i++) {
    const [G, U, D] = [denseOf(x.gates[i], w, h), denseOf(x.ups[i], w, h), denseOf(x.downs[i], h, w)];
    for (let j = x.first[i]; j < x.first[i + 1]; j++) {
      const t = x.order[j];
      const act = new Float64Array(w);
      for (let a = 0; a < w; a++) {
        let g = clamped ? clamped.gateBiases[i][a] : 0;
        let u = clamped ? clamped.upBiases[i][a] : 0;
        for (let b = 0; b < h; b++) {
          g += G[a * h + b] * x.x[t * h + b];
          u += U[a * h + b] * x.x[t * h + b];
        }
        if (!clamped) {
          act[a] = (g / (1 + Math.exp(-g))) * u;
          continue;
        }
        if (bites) {
          if (g > clamped.limit) bites.gate++;
          if (u > clamped.limit) bites.upHigh++;
          if (u < -clamped.limit) bites.upLow++;
        }
        const gc = Math.min(g, clamped.limit);
        const uc = Math.min(Math.max(u, -clamped.limit), clamped.limit);
        act[a] = (uc + 1) * gc / (1 + Math.exp(-clamped.alpha * gc));
      }
      for (let b = 0; b < h; b++) {
        let y = clamped ? clamped.downBiases[i][b] : 0;
        for (let a = 0; a < w; a++) y += D[b * w + a] * act[a];
        out[t * h + b] += x.weights[j] * y;
      }
    }
  }
  return out;
}

function work(c: Case, x: ReturnType<typeof inputs>): Float32Array {
  return new Float32Array(x.first[x.first.length - 1] * (2 * c.hidden + 2 * c.width)).fill(Number.NaN);
}

/** The kernel's result; `clamped` passed as given (absent: not passed at all). */
function run(engine: Engine, c: Case, x: ReturnType<typeof inputs>, ...clamped: [] | [ClampedSwiGluExperts | null | undefined]): Float32Array {
  const out = Float32Array.from(x.start);
  engine.kernels.swiGluExperts(c.hidden, c.width, x.x, x.first, x.order, x.weights, x.gates, x.ups, x.downs, work(c, x), out, ...clamped);
  return out;
}

/**
 * Expert by expert, one native call per step (the MoE block's loop before the kernel); with
 * `clamped`, the activation of the MoE block's expert-by-expert reference in JavaScript and the
 * down bias added a row at a time (addInto), as it runs gpt-oss's experts.
 */
function loop(engine: Engine, c: Case, x: ReturnType<typeof inputs>, clamped?: ClampedSwiGluExperts): Float32Array {
  const { hidden: h, width: w } = c;
  const out = Float32Array.from(x.start);
  const product = (rows: number, n: number, k: number, a: Float32Array, b: Matrix, y: Float32Array) => applyLikeRuntime(engine, rows, n, k, a, b, y);
  for (let i = 0; i + 1 < x.first.length; i++) {
    const rows = x.first[i + 1] - x.first[i];
    if (rows === 0) continue;
    const idx = x.order.subarray(x.first[i], x.first[i + 1]);
    const xe = new Float32Array(rows * h);
    const g = new Float32Array(rows * w);
    const u = new Float32Array(rows * w);
    const y = new Float32Array(rows * h);
    engine.kernels.gatherRows(h, idx, rows, x.x, xe);
    product(rows, w, h, xe, x.gates[i], g);
    product(rows, w, h, xe, x.ups[i], u);
    if (clamped) clampedSwiGluReference(rows, w, g, u, clamped.gateBiases[i], clamped.upBiases[i], clamped.alpha, clamped.limit);
    else engine.kernels.siluMul(rows * w, g, u);
    product(rows, h, w, g, x.downs[i], y);
    if (clamped) for (let r = 0; r < rows; r++) engine.kernels.addInto(h, y.subarray(r * h, (r + 1) * h), clamped.downBiases[i]);
    engine.kernels.scatterAddRows(h, idx, x.weights.subarray(x.first[i], x.first[i + 1]), rows, y, out);
  }
  return out;
}

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s: equals the f64 block', (_n, c) => {
    const x = inputs(c, 21);
    const got = run(engine, c, x);
    const want = reference(c, x);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    expect(scale).toBeGreaterThan(0.5);
    expect(worst).toBeLessThan(1e-5 * Math.max(1, scale));
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s, clamped (gpt-oss): equals the f64 block, the clamps biting', (_n, c) => {
    const x = inputs(c, 21);
    const clamped = clampedFor(c, 21);
    const got = run(engine, c, x, clamped);
    const bites: Bites = { gate: 0, upHigh: 0, upLow: 0 };
    const want = reference(c, x, clamped, bites);
    const routedValues = x.first[x.first.length - 1] * c.width;
    // both clamps bite, and many values stay inside them
    expect(bites.gate).toBeGreaterThan(0);
    expect(bites.upHigh).toBeGreaterThan(0);
    expect(bites.upLow).toBeGreaterThan(0);
    expect(bites.gate + bites.upHigh + bites.upLow).toBeLessThan(routedValues);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    expect(scale).toBeGreaterThan(0.5);
    expect(worst).toBeLessThan(1e-5 * Math.max(1, scale));
    // far from SwiGLU without biases: the argument is not ignored
    const plain = reference(c, x);
    expect(Math.max(...Array.from(plain, (v, i) => Math.abs(v - want[i])))).toBeGreaterThan(1e-2 * scale);
  });

  it('clamped absent, undefined or null: the same bits', () => {
    for (const c of CASES) {
      const x = inputs(c, 13);
      const absent = Buffer.from(run(engine, c, x).buffer);
      expect(Buffer.from(run(engine, c, x, undefined).buffer).equals(absent), c.name).toBe(true);
      expect(Buffer.from(run(engine, c, x, null).buffer).equals(absent), c.name).toBe(true);
    }
  });

  it('refuses bad clamped arguments with the problem named', () => {
    const c = CASES[1];
    const x = inputs(c, 3);
    const good = clampedFor(c, 3);
    const call = (o: Partial<Record<keyof ClampedSwiGluExperts, unknown>> | string) => () =>
      engine.kernels.swiGluExperts(c.hidden, c.width, x.x, x.first, x.order, x.weights, x.gates, x.ups, x.downs, work(c, x), new Float32Array(x.x.length),
        (typeof o === 'string' ? o : { ...good, ...o }) as ClampedSwiGluExperts);
    expect(call({})).not.toThrow();
    expect(call({ alpha: Number.NaN })).toThrow(EngineError);
    expect(call({ alpha: Number.NaN })).toThrow(/clamped\.alpha must be a finite number/);
    expect(call({ alpha: '1.702' })).toThrow(/clamped\.alpha must be a finite number/);
    expect(call({ limit: -1 })).toThrow(/clamped\.limit must be a finite number ≥ 0/);
    expect(call({ limit: Number.POSITIVE_INFINITY })).toThrow(/clamped\.limit must be a finite number ≥ 0/);
    expect(call({ gateBiases: good.gateBiases.slice(1) })).toThrow(/clamped\.gateBiases has 7 entries, expected one per routed expert \(8\)/);
    expect(call({ downBiases: [...good.downBiases, good.downBiases[0]] })).toThrow(/clamped\.downBiases has 9 entries, expected one per routed expert \(8\)/);
    expect(call({ upBiases: good.upBiases[0] })).toThrow(/clamped\.upBiases must be an array of Float32Array/);
    expect(call({ upBiases: [good.upBiases[0], good.upBiases[1].subarray(1), ...good.upBiases.slice(2)] })).toThrow(/clamped\.upBiases\[1\] holds 39 values, expected 40 \(check width\)/);
    // the down biases are hidden wide, not width
    expect(call({ downBiases: good.gateBiases })).toThrow(/clamped\.downBiases\[0\] holds 40 values, expected 96 \(check hidden\)/);
    expect(call({ gateBiases: good.gateBiases.map((b) => Float64Array.from(b)) })).toThrow(/clamped\.gateBiases\[0\] must be a Float32Array/);
    expect(call('clamped')).toThrow(/clamped must be \{ alpha, limit, gateBiases, upBiases, downBiases \} or null/);
  });

  it('refuses bad arguments with the problem named', () => {
    const c = CASES[1];
    const x = inputs(c, 3);
    const out = new Float32Array(x.x.length);
    type Over = Partial<{ first: Int32Array; order: Int32Array; gates: Matrix[]; ups: Matrix[]; downs: Matrix[]; work: Float32Array; out: Float32Array; hidden: number }>;
    const call = (o: Over) => () =>
      engine.kernels.swiGluExperts(o.hidden ?? c.hidden, c.width, x.x, o.first ?? x.first, o.order ?? x.order, x.weights, o.gates ?? x.gates, o.ups ?? x.ups, o.downs ?? x.downs, o.work ?? work(c, x), o.out ?? out);
    expect(call({})).not.toThrow();
    expect(call({ first: Int32Array.of(0, 9) })).toThrow(EngineError);
    expect(call({ first: Int32Array.of(0, 9) })).toThrow(/one entry per routed expert/);
    // more than 8 rows only where all three matrices are BF16 (f32 ones would go through sgemm)
    const two = { gates: x.gates.slice(0, 2), ups: x.ups.slice(0, 2), downs: x.downs.slice(0, 2) };
    const f32 = [new Float32Array(c.width * c.hidden), new Float32Array(c.width * c.hidden)];
    expect(call({ ...two, first: Int32Array.of(0, 0, 9) })).not.toThrow();
    expect(call({ ...two, first: Int32Array.of(0, 0, 9), gates: f32 })).toThrow(/routed expert 1 has 9 rows and f32 matrices: at most 8 rows with f32/);
    expect(call({ ...two, first: Int32Array.of(0, 1, 9), gates: f32 })).not.toThrow();
    expect(call({ order: Int32Array.from(x.order, (t, j) => (j === 3 ? 8 : t)) })).toThrow(/order\[3\] = 8 is not a row of x \(8 rows\)/);
    expect(call({ gates: [(x.gates[0] as Uint16Array).subarray(1), ...x.gates.slice(1)] })).toThrow(/gates\[0\] holds \d+ values, expected \d+/);
    expect(call({ downs: [new Int32Array(c.hidden * c.width) as unknown as Matrix, ...x.downs.slice(1)] })).toThrow(/downs\[0\] must be a Uint16Array \(BF16\) or a Float32Array/);
    // factored operands: their sizes, rank and residual checked; at most 8 rows
    const f: FactoredOperand = { rank: 2, basis: new Uint16Array(2 * c.hidden), coefficients: new Uint16Array(c.width * 2), residualQ: 3, residualEta: new Float32Array(3) };
    const withGate = (g: unknown) => [g as Matrix, ...x.gates.slice(1)];
    expect(call({ gates: withGate(f) })).not.toThrow();
    expect(call({ gates: withGate({ ...f, rank: 2.5 }) })).toThrow(/gates\[0\]\.rank must be a whole number/);
    expect(call({ gates: withGate({ ...f, basis: new Uint16Array(5) }) })).toThrow(/gates\[0\]\.basis holds 5 values, expected/);
    expect(call({ gates: withGate({ ...f, coefficients: new Int32Array(c.width * 2) }) })).toThrow(/gates\[0\]\.coefficients must be a Uint16Array/);
    expect(call({ gates: withGate({ ...f, residualQ: c.width * c.hidden + 1 }) })).toThrow(/gates\[0\]\.residualQ must be a whole number of buckets/);
    expect(call({ gates: withGate({ ...f, residualEta: new Float32Array(2) }) })).toThrow(/residualEta holds fewer values than residualQ/);
    expect(call({ gates: withGate('gate') })).toThrow(/gates\[0\] must be a Uint16Array \(BF16\), a Float32Array, a packed matrix \(FP8 \{ codes, scales, group \}, MXFP4 \{ blocks, scales \}\) or a factored matrix/);
    // packed operands: their parts' types and sizes, FP8's group, MXFP4's columns; any rows
    const fp8 = packedOperand('fp8', c.width, c.hidden, 1) as Fp8Matrix;
    expect(call({ gates: withGate(fp8) })).not.toThrow();
    expect(call({ ...two, first: Int32Array.of(0, 0, 9), gates: [fp8, fp8] })).not.toThrow();
    expect(call({ gates: withGate({ ...fp8, group: 0 }) })).toThrow(/gates\[0\]\.group must be a whole number ≥ 1/);
    expect(call({ gates: withGate({ ...fp8, codes: fp8.codes.subarray(1) }) })).toThrow(/gates\[0\]\.codes holds 3839 values, expected 3840 \(check hidden and width/);
    expect(call({ gates: withGate({ ...fp8, group: 64 }) })).toThrow(/gates\[0\]\.scales holds 120 values, expected 80 \(check group/);
    expect(call({ gates: withGate({ ...fp8, scales: new Uint8Array(120) }) })).toThrow(/gates\[0\]\.scales must be a Float32Array/);
    const mxfp4 = packedOperand('mxfp4', c.width, c.hidden, 2) as Mxfp4Matrix;
    expect(call({ ups: [mxfp4, ...x.ups.slice(1)] })).not.toThrow();
    expect(call({ ups: [{ ...mxfp4, blocks: new Uint8Array(7) }, ...x.ups.slice(1)] })).toThrow(/ups\[0\]\.blocks holds 7 values, expected 1920/);
    // a down projection's rows are width (40) long: not whole groups of 32
    expect(call({ downs: [packedOperand('mxfp4', c.hidden, 64, 3), ...x.downs.slice(1)] })).toThrow(/downs\[0\] is MXFP4 with 40 columns: MXFP4 needs a multiple of 32/);
    // a factored matrix of BF16 factors takes any rows, of f32 ones at most 8
    expect(call({ ...two, first: Int32Array.of(0, 0, 9), gates: [f, f] })).not.toThrow();
    const f32Factors = { ...f, coefficients: new Float32Array(c.width * 2) };
    expect(call({ ...two, first: Int32Array.of(0, 0, 9), gates: [f32Factors, f32Factors] })).toThrow(/routed expert 1 has 9 rows and f32 matrices: at most 8/);
    expect(call({ work: new Float32Array(10) })).toThrow(/work has 10 elements/);
    expect(call({ out: new Float32Array(5) })).toThrow(/out/);
    expect(call({ out: x.x })).toThrow(/out shares memory with x/);
    expect(call({ hidden: 0 })).toThrow(/hidden and width must be at least 1/);
  });
});

const native = engines.find((e) => e.name === 'native');
describe.skipIf(!native)('native kernel against the per-expert loop on the same engine', () => {
  // a prompt's experts (tens of rows each) on the path gemmBf16 takes for each product, experts on
  // threads only where the product's sums do not depend on the thread count
  it.each(SWIGLU_PROMPT_SHAPES)('a prompt of %i tokens, width %i, hidden %i: bit for bit on 1, 2, 3 and 5 threads', (tokens, width, hidden) => {
    expect(checkSwiGluExpertsPrompt(native!, tokens, width, hidden)).toEqual([]);
  }, 60_000);

  it.each(SWIGLU_PROMPT_FACTORED_SHAPES)('a prompt of %i tokens over factored experts, width %i, hidden %i: bit for bit on 1, 2, 3 and 5 threads', (tokens, width, hidden) => {
    expect(checkSwiGluExpertsPromptFactored(native!, tokens, width, hidden)).toEqual([]);
  }, 60_000);

  it.each(SWIGLU_PROMPT_SHAPES)('a prompt of %i tokens, width %i, hidden %i, clamped (gpt-oss): bit for bit on 1, 2, 3 and 5 threads', (tokens, width, hidden) => {
    expect(checkSwiGluExpertsPromptClamped(native!, tokens, width, hidden)).toEqual([]);
  }, 60_000);

  it.each(SWIGLU_PROMPT_PACKED_SHAPES)('a prompt of %i tokens over FP8, MXFP4 and BF16 experts, width %i, hidden %i: bit for bit on 1, 2, 3 and 5 threads', (tokens, width, hidden) => {
    expect(checkSwiGluExpertsPromptPacked(native!, tokens, width, hidden)).toEqual([]);
  }, 60_000);

  // with AMX, BF16 experts run on the tiles (f32 activations split into three exact BF16 parts)
  const levels = simdLevelsOf(native, { amx: true });
  // below AVX-512 the experts of more than 32 rows take sgemm's panels, so the kernel runs them on every thread
  it.skipIf(levels.length < 2).each(levels.slice(1))('capped at %s: a prompt bit for bit on 1, 2, 3 and 5 threads', (level) => {
    expectClean(runCappedCheck(level, 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_SHAPES', 'checkSwiGluExpertsPrompt'), `own kernels ${level},`);
    expectClean(runCappedCheck(level, 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_FACTORED_SHAPES', 'checkSwiGluExpertsPromptFactored'), `own kernels ${level},`);
    expectClean(runCappedCheck(level, 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_SHAPES', 'checkSwiGluExpertsPromptClamped'), `own kernels ${level},`);
    expectClean(runCappedCheck(level, 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_PACKED_SHAPES', 'checkSwiGluExpertsPromptPacked'), `own kernels ${level},`);
  }, 240_000);

  // with OpenBLAS's AVX-512 kernels the experts of 128+ rows take the panels on up to 2 threads
  it.skipIf(!levels.includes('avx512'))('with OpenBLAS running its SkylakeX kernels: a prompt bit for bit on 1, 2, 3 and 5 threads', () => {
    expectClean(runCappedCheck('avx512', 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_SHAPES', 'checkSwiGluExpertsPrompt', { OPENBLAS_CORETYPE: 'SkylakeX' }), /SkylakeX kernels/);
    expectClean(runCappedCheck('avx512', 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_FACTORED_SHAPES', 'checkSwiGluExpertsPromptFactored', { OPENBLAS_CORETYPE: 'SkylakeX' }), /SkylakeX kernels/);
    expectClean(runCappedCheck('avx512', 'test/helpers/swiglu-experts-check.ts', 'SWIGLU_PROMPT_SHAPES', 'checkSwiGluExpertsPromptClamped', { OPENBLAS_CORETYPE: 'SkylakeX' }), /SkylakeX kernels/);
  }, 240_000);

  it.each(CASES.map((c) => [c.name, c] as const))('%s: bit for bit, on 1 and 2 threads', async (_n, c) => {
    const x = inputs(c, 5);
    const results = (await onNativeEngines([1, 2], (engine) => [run(engine, c, x), loop(engine, c, x)])).flat();
    const [kernel1, loop1, kernel2, loop2] = results.map((r) => Buffer.from(r.buffer));
    expect(kernel1.equals(loop1)).toBe(true);
    expect(kernel2.equals(kernel1)).toBe(true);
    expect(loop2.equals(loop1)).toBe(true);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s, clamped (gpt-oss): bit for bit, on 1 and 2 threads', async (_n, c) => {
    const x = inputs(c, 5);
    const clamped = clampedFor(c, 5);
    const results = (await onNativeEngines([1, 2], (engine) => [run(engine, c, x, clamped), loop(engine, c, x, clamped)])).flat();
    const [kernel1, loop1, kernel2, loop2] = results.map((r) => Buffer.from(r.buffer));
    expect(kernel1.equals(loop1)).toBe(true);
    expect(kernel2.equals(kernel1)).toBe(true);
    expect(loop2.equals(loop1)).toBe(true);
    // and not SwiGLU's bits
    expect(kernel1.equals(Buffer.from(loop(native!, c, x).buffer))).toBe(false);
  });
});
