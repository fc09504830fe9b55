/**
 * The cachedAttention kernel (attention of sequences that continue those in a KV cache, the whole
 * batch in one call):
 * - every engine against softmax(scale·q·kᵀ)·v summed in f64 here, over grouped heads, a ragged
 *   batch (an empty sequence, one-token decoding steps, a prompt chunk after a cached past that
 *   spans several causal tiles), a sliding window, a first attended position per sequence
 *   (chunked attention), head-major and row-major cache buffers, value heads of another width than
 *   the key heads (MiMo-V2-Flash's);
 * - the native kernel, which spreads its units over the persistent pool's threads (or, with fewer
 *   units than threads, shares each product's rows out), bit for bit
 *   against the per-sequence loop run one product at a time on the native engine's own gemm and
 *   kernels (what the forward pass did before the kernel), and the same on 1 and 2 threads;
 * - bad arguments: the same errors from every engine.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { EngineError } from '../../src/engine/types.js';
import { cachedAttentionUnits } from '../../src/engine/ts/kernels/cached-attention.js';
import { uniform } from '../helpers/rng.js';
import { onNativeEngines } from '../helpers/native-threads.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

interface Case {
  name: string;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** per sequence: cached positions and new rows */
  past: number[];
  lengths: number[];
  window: number | null;
  layout: 'head-major' | 'row-major';
  /** per sequence: the first position its rows attend to (the `from` argument); absent: none given */
  from?: number[];
  /** width of a value head (the `valueHeadDim` argument); absent: none given (headDim) */
  valueHeadDim?: number;
}

const CASES: Case[] = [
  { name: 'decoding step of 8 sequences, grouped heads (enough work for the pool)', heads: 8, kvHeads: 2, headDim: 16, past: [300, 1, 400, 0, 170, 30, 640, 90], lengths: [1, 1, 1, 1, 1, 1, 1, 1], window: null, layout: 'head-major' },
  { name: 'ragged: an empty sequence, one token, a chunk after a past', heads: 4, kvHeads: 4, headDim: 8, past: [7, 30, 0, 12], lengths: [3, 0, 1, 20], window: null, layout: 'head-major' },
  { name: 'a chunk of several causal tiles after a past', heads: 4, kvHeads: 1, headDim: 8, past: [90, 0], lengths: [300, 2], window: null, layout: 'head-major' },
  { name: 'sliding window shorter than the past', heads: 4, kvHeads: 2, headDim: 8, past: [50, 10, 3], lengths: [1, 70, 2], window: 13, layout: 'head-major' },
  { name: 'row-major cache rows', heads: 6, kvHeads: 3, headDim: 4, past: [9, 0, 25], lengths: [1, 4, 6], window: null, layout: 'row-major' },
  { name: 'one sequence of one kv head: fewer units than threads, products shared', heads: 8, kvHeads: 1, headDim: 64, past: [700], lengths: [1], window: null, layout: 'head-major' },
  // chunked attention: each sequence's rows attend from their chunk's start within the cache
  { name: 'a first position per sequence (chunks): decoding, a chunk of several tiles, none', heads: 4, kvHeads: 2, headDim: 8, past: [20, 9, 300, 5, 0], lengths: [1, 3, 70, 0, 4], window: null, layout: 'head-major', from: [16, 9, 256, 2, 0] },
  { name: 'a first position and a sliding window, row-major', heads: 6, kvHeads: 3, headDim: 4, past: [12, 40, 30], lengths: [5, 1, 2], window: 6, layout: 'row-major', from: [10, 33, 29] },
  // MiMo-V2-Flash: value heads narrower than the key heads (and, row-major, wider)
  { name: 'value heads narrower than key heads, a sliding window', heads: 8, kvHeads: 2, headDim: 12, valueHeadDim: 8, past: [40, 0, 9], lengths: [1, 70, 3], window: 7, layout: 'head-major' },
  { name: 'value heads wider than key heads, row-major', heads: 4, kvHeads: 2, headDim: 4, valueHeadDim: 6, past: [9, 0, 25], lengths: [1, 4, 6], window: null, layout: 'row-major' },
];

function inputs(c: Case, seed: number) {
  const sequences = c.lengths.length;
  const offsets = new Int32Array(sequences + 1);
  c.lengths.forEach((l, i) => (offsets[i + 1] = offsets[i] + l));
  const rows = offsets[sequences];
  const vd = c.valueHeadDim ?? c.headDim;
  // every position of every sequence, row-major (the reference reads these)
  const fullK = c.past.map((p, s) => uniform((p + c.lengths[s]) * c.kvHeads * c.headDim, seed + 10 * s, 2));
  const fullV = c.past.map((p, s) => uniform((p + c.lengths[s]) * c.kvHeads * vd, seed + 10 * s + 1));
  // the kernel's buffers: head-major with room to spare (stride > positions), or the rows themselves
  const headStride = Int32Array.from(c.past, (p, s) => (c.layout === 'head-major' ? p + c.lengths[s] + 3 : 0));
  const toLayout = (d: number) => (full: Float32Array, s: number) => {
    if (c.layout === 'row-major') return full;
    const stride = headStride[s];
    const width = c.kvHeads * d;
    const out = new Float32Array(c.kvHeads * stride * d).fill(Number.NaN); // spare room never read
    const positions = c.past[s] + c.lengths[s];
    for (let h = 0; h < c.kvHeads; h++) {
      for (let j = 0; j < positions; j++) out.set(full.subarray(j * width + h * d, j * width + (h + 1) * d), (h * stride + j) * d);
    }
    return out;
  };
  return {
    offsets,
    past: Int32Array.from(c.past),
    headStride,
    fullK,
    fullV,
    keys: fullK.map(toLayout(c.headDim)),
    values: fullV.map(toLayout(vd)),
    q: uniform(rows * c.heads * c.headDim, seed + 999, 2),
    scale: 1 / Math.sqrt(c.headDim),
    from: c.from ? Int32Array.from(c.from) : undefined,
  };
}

/** softmax(scale·q·kᵀ)·v per head and row in f64, row i of sequence s at position past + i. */
function reference(c: Case, x: ReturnType<typeof inputs>): Float64Array {
  const { heads, kvHeads, headDim: d } = c;
  const vd = c.valueHeadDim ?? d;
  const rows = x.offsets[x.offsets.length - 1];
  const out = new Float64Array(rows * heads * vd);
  const group = heads / kvHeads;
  for (let s = 0; s + 1 < x.offsets.length; s++) {
    const start = x.offsets[s];
    const len = x.offsets[s + 1] - start;
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < len; i++) {
        const pos = c.past[s] + i;
        const first = Math.max(c.from?.[s] ?? 0, c.window === null ? 0 : pos - c.window + 1);
        const scores: number[] = [];
        for (let j = first; j <= pos; j++) {
          let dot = 0;
          for (let t = 0; t < d; t++) dot += x.q[(start + i) * heads * d + h * d + t] * x.fullK[s][j * kvHeads * d + kvh * d + t];
          scores.push(dot * x.scale);
        }
        const max = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < vd; t++) {
          let acc = 0;
          for (let j = first; j <= pos; j++) acc += (e[j - first] / sum) * x.fullV[s][j * kvHeads * vd + kvh * vd + t];
          out[(start + i) * heads * vd + h * vd + t] = acc;
        }
      }
    }
  }
  return out;
}

function run(engine: Engine, c: Case, x: ReturnType<typeof inputs>): Float32Array {
  const context = new Float32Array(contextLength(c, x)).fill(Number.NaN); // overwritten, never read
  engine.kernels.cachedAttention(c.heads, c.kvHeads, c.headDim, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, c.window, context, null, x.from, c.valueHeadDim);
  return context;
}

/** The per-sequence loop, one call at a time, on the engine's own products (the forward pass before the kernel). */
function loop(engine: Engine, c: Case, x: ReturnType<typeof inputs>): Float32Array {
  const context = new Float32Array(contextLength(c, x));
  cachedAttentionUnits(
    {
      gemm: (m, n, k, a, b, out, transB, alpha) => engine.gemm(m, n, k, a, b, out, { transB, alpha }),
      causalSoftmax: (blocks, rows, cols, past, window, scores) => engine.kernels.causalSoftmax(blocks, rows, cols, past, window, scores),
      copyBlock: (...args) => engine.kernels.copyBlock(...args),
    },
    c.heads, c.kvHeads, c.headDim, x.offsets, { past: x.past, keys: x.keys, values: x.values, headStride: x.headStride, from: x.from }, x.q, x.scale, c.window, context, null, c.valueHeadDim,
  );
  return context;
}

/** rows × heads × the value head width */
function contextLength(c: Case, x: ReturnType<typeof inputs>): number {
  return x.offsets[x.offsets.length - 1] * c.heads * (c.valueHeadDim ?? c.headDim);
}

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s: equals the f64 attention', (_n, c) => {
    const x = inputs(c, 11);
    const got = run(engine, c, x);
    const want = reference(c, x);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    // values of |v| ≤ 1 averaged by f32 weights: a few hundred f32 ulps of 1 at most
    expect(worst).toBeLessThan(2e-5);
  });

  it('refuses bad arguments with the problem named', () => {
    const c = CASES[1];
    const x = inputs(c, 3);
    const ctx = new Float32Array(x.q.length);
    type Over = Partial<{ heads: number; kvHeads: number; offsets: Int32Array; past: Int32Array; keys: Float32Array[]; headStride: Int32Array; q: Float32Array; window: number | null; context: Float32Array; scale: number }>;
    const call = (o: Over) => () =>
      engine.kernels.cachedAttention(o.heads ?? c.heads, o.kvHeads ?? c.kvHeads, c.headDim, o.offsets ?? x.offsets, o.past ?? x.past, o.keys ?? x.keys, x.values, o.headStride ?? x.headStride, o.q ?? x.q, o.scale ?? x.scale, o.window === undefined ? c.window : o.window, o.context ?? ctx);
    expect(call({ heads: 6, kvHeads: 4 })).toThrow(EngineError);
    expect(call({ heads: 6, kvHeads: 4 })).toThrow(/numHeads = 6 is not a multiple of numKvHeads = 4/);
    expect(call({ offsets: Int32Array.of(1, 5, 5, 6, 26) })).toThrow(/offsets must start at 0/);
    expect(call({ past: Int32Array.of(7, 30, 0) })).toThrow(/one entry per sequence/);
    expect(call({ past: Int32Array.of(7, 30, 0, 16) })).toThrow(/headStride\[3\] = 35 holds fewer than the sequence's 36 positions/);
    expect(call({ past: Int32Array.of(-1, 30, 0, 12) })).toThrow(/must not be negative/);
    expect(call({ keys: [x.keys[0].subarray(1), ...x.keys.slice(1)] })).toThrow(/keys has \d+ elements but at least \d+ are needed/);
    expect(call({ q: x.q.subarray(1) })).toThrow(/q/);
    expect(call({ window: 0 })).toThrow(/window/);
    expect(call({ scale: Number.NaN })).toThrow(/scale must be finite/);
    expect(call({ context: x.q })).toThrow(/context shares memory/);
    expect(call({ context: x.keys[3].subarray(0, ctx.length) })).toThrow(/context shares memory with keys/);
    const withFrom = (from: Int32Array) => () => engine.kernels.cachedAttention(c.heads, c.kvHeads, c.headDim, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, c.window, ctx, null, from);
    expect(withFrom(Int32Array.of(0, 0, 0))).toThrow(/from must have one entry per sequence/);
    expect(withFrom(Int32Array.of(0, 31, 0, 0))).toThrow(/from\[1\] = 31 is not within 0..past = 30/);
    expect(withFrom(Int32Array.of(-1, 0, 0, 0))).toThrow(/from\[0\] = -1 is not within/);
    // a value head width the context or the values are not sized for
    const withValueDim = (d: number, context = ctx) => () => engine.kernels.cachedAttention(c.heads, c.kvHeads, c.headDim, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, c.window, context, null, null, d);
    expect(withValueDim(4)).toThrow(/context has \d+ elements but (is|a) \d+×16/);
    expect(withValueDim(16, new Float32Array(ctx.length * 2))).toThrow(/values has \d+ elements but at least \d+ are needed/);
  });
});

const native = engines.find((e) => e.name === 'native');
describe.skipIf(!native)('native kernel against the per-sequence loop on the same engine', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s: bit for bit, on 1 and 2 threads', async (_n, c) => {
    const x = inputs(c, 5);
    const results = (await onNativeEngines([1, 2], (engine, threads) => (threads === 1 ? [run(engine, c, x), loop(engine, c, x)] : [run(engine, c, x)]))).flat();
    const [kernel1, loop1, kernel2] = results.map((r) => Buffer.from(r.buffer));
    expect(kernel1.equals(loop1)).toBe(true);
    expect(kernel2.equals(kernel1)).toBe(true);
  });
});
