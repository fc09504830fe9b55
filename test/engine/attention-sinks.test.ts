/**
 * Attention sinks (gpt-oss) in causalAttention and cachedAttention: a logit per query head that
 * joins each softmax normaliser and is then dropped.
 * - every engine against transformers' eager formula written out here in f64 loops (weights
 *   exp(s_j − m) / (Σ exp(s_j − m) + exp(sink_h − m)), m the max of the scores and the sink), over
 *   grouped heads, ragged batches, cached pasts, sliding windows, rows whose only key is
 *   themselves, and sinks that dominate the scores, sit far below them, or differ from head to
 *   head (so that a sink applied to the wrong head shows);
 * - no sinks (absent, undefined or null): bit for bit the result of a call without the argument;
 * - the native engine against the ts engine to f32 rounding, and the same bits on 1 and 2 threads;
 * - a sinks array of the wrong length (or type, or overlapping context) refused by every engine,
 *   and by the addon itself.
 */
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import { nativeAddonPath } from '../../src/engine/native.js';
import type { Engine } from '../../src/engine/types.js';
import { EngineError } from '../../src/engine/types.js';
import { uniform } from '../helpers/rng.js';
import { onNativeEngines } from '../helpers/native-threads.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 8;

/** Per query head: distinct values, so that each head's sink must reach that head. */
const SINKS: Record<string, Float32Array> = {
  'dominating (+6…+9)': Float32Array.of(8, 6, 9, 7),
  'far below (−6…−9)': Float32Array.of(-8, -6, -9, -7),
  'mixed, one −Infinity (no sink)': Float32Array.of(8, -8, 0.5, -Infinity),
};

interface Case {
  name: string;
  /** per sequence: cached positions (all 0 for causalAttention) and new rows */
  past: number[];
  lengths: number[];
  window: number | null;
  layout: 'head-major' | 'row-major';
}

/** causalAttention: no past. Each sequence's first row (and every row at window 1) sees only itself. */
const CAUSAL: Case[] = [
  { name: 'ragged, one-token sequence, two causal tiles, no window', past: [0, 0, 0], lengths: [5, 1, 70], window: null, layout: 'row-major' },
  { name: 'ragged, sliding window 3', past: [0, 0, 0], lengths: [9, 1, 70], window: 3, layout: 'row-major' },
  { name: 'window 1: every row sees only its own key', past: [0, 0], lengths: [4, 2], window: 1, layout: 'row-major' },
];

/** cachedAttention: pasts > 0 (and one sequence without, whose only key is its own). */
const CACHED: Case[] = [
  { name: 'decoding steps and a chunk after a past, no window', past: [7, 0, 30], lengths: [1, 1, 70], window: null, layout: 'head-major' },
  { name: 'sliding window 13 shorter than the past', past: [50, 0, 3], lengths: [2, 1, 20], window: 13, layout: 'head-major' },
  { name: 'row-major cache rows', past: [9, 0, 25], lengths: [1, 3, 6], window: null, layout: 'row-major' },
];

function inputs(c: Case, seed: number) {
  const sequences = c.lengths.length;
  const offsets = new Int32Array(sequences + 1);
  c.lengths.forEach((l, i) => (offsets[i + 1] = offsets[i] + l));
  const rows = offsets[sequences];
  const kvWidth = KV_HEADS * HEAD_DIM;
  // every position of every sequence, row-major (what the reference reads)
  const fullK = c.past.map((p, s) => uniform((p + c.lengths[s]) * kvWidth, seed + 10 * s, 2));
  const fullV = c.past.map((p, s) => uniform((p + c.lengths[s]) * kvWidth, seed + 10 * s + 1));
  const headStride = Int32Array.from(c.past, (p, s) => (c.layout === 'head-major' ? p + c.lengths[s] + 3 : 0));
  const toLayout = (full: Float32Array, s: number) => {
    if (c.layout === 'row-major') return full;
    const stride = headStride[s];
    const out = new Float32Array(KV_HEADS * stride * HEAD_DIM).fill(Number.NaN); // spare room never read
    for (let h = 0; h < KV_HEADS; h++) {
      for (let j = 0; j < c.past[s] + c.lengths[s]; j++) out.set(full.subarray(j * kvWidth + h * HEAD_DIM, j * kvWidth + (h + 1) * HEAD_DIM), (h * stride + j) * HEAD_DIM);
    }
    return out;
  };
  // causalAttention's k and v (no past): every sequence's own rows, stacked
  const noPast = c.past.every((p) => p === 0);
  const stack = (full: Float32Array[]) => {
    const out = new Float32Array(noPast ? rows * kvWidth : 0);
    if (noPast) full.forEach((f, s) => out.set(f, offsets[s] * kvWidth));
    return out;
  };
  return {
    offsets,
    past: Int32Array.from(c.past),
    headStride,
    fullK,
    fullV,
    keys: fullK.map(toLayout),
    values: fullV.map(toLayout),
    k: stack(fullK),
    v: stack(fullV),
    q: uniform(rows * HEADS * HEAD_DIM, seed + 999, 2),
    scale: 1 / Math.sqrt(HEAD_DIM),
  };
}
type Inputs = ReturnType<typeof inputs>;

/**
 * transformers' GptOssAttention in f64: per query head h and row, the allowed scores s_j and the
 * sink column, max subtracted, softmax, sink column dropped, times v. sinks null: plain softmax.
 */
function reference(c: Case, x: Inputs, sinks: Float32Array | null): Float64Array {
  const d = HEAD_DIM;
  const group = HEADS / KV_HEADS;
  const out = new Float64Array(x.q.length);
  for (let s = 0; s + 1 < x.offsets.length; s++) {
    const start = x.offsets[s];
    for (let i = 0; i < x.offsets[s + 1] - start; i++) {
      const pos = c.past[s] + i;
      const first = c.window === null ? 0 : Math.max(0, pos - c.window + 1);
      for (let h = 0; h < HEADS; h++) {
        const kvh = Math.floor(h / group);
        const scores: number[] = [];
        for (let j = first; j <= pos; j++) {
          let dot = 0;
          for (let t = 0; t < d; t++) dot += x.q[(start + i) * HEADS * d + h * d + t] * x.fullK[s][j * KV_HEADS * d + kvh * d + t];
          scores.push(dot * x.scale);
        }
        const sink = sinks === null ? -Infinity : sinks[h];
        let m = sink;
        for (const v of scores) m = Math.max(m, v);
        let denominator = Math.exp(sink - m);
        for (const v of scores) denominator += Math.exp(v - m);
        for (let t = 0; t < d; t++) {
          let acc = 0;
          for (let j = first; j <= pos; j++) acc += (Math.exp(scores[j - first] - m) / denominator) * x.fullV[s][j * KV_HEADS * d + kvh * d + t];
          out[(start + i) * HEADS * d + h * d + t] = acc;
        }
      }
    }
  }
  return out;
}

type Kernel = 'causalAttention' | 'cachedAttention';

/** One call of the kernel; `sinks` 'absent' leaves the argument out. */
function run(engine: Engine, kernel: Kernel, c: Case, x: Inputs, sinks: Float32Array | null | undefined | 'absent'): Float32Array {
  const context = new Float32Array(x.q.length).fill(Number.NaN); // overwritten, never read
  const kk = engine.kernels;
  if (kernel === 'causalAttention') {
    if (sinks === 'absent') kk.causalAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.q, x.k, x.v, x.scale, c.window, context);
    else kk.causalAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.q, x.k, x.v, x.scale, c.window, context, sinks);
  } else if (sinks === 'absent') {
    kk.cachedAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, c.window, context);
  } else {
    kk.cachedAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, c.window, context, sinks);
  }
  return context;
}

function worstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** values of |v| ≤ 1 averaged by f32 weights: a few hundred f32 ulps of 1 at most (the kernels' own tests' bound) */
const F32_TOLERANCE = 2e-5;

const KERNEL_CASES: Array<[Kernel, Case]> = [...CAUSAL.map((c) => ['causalAttention', c] as [Kernel, Case]), ...CACHED.map((c) => ['cachedAttention', c] as [Kernel, Case])];
const SINK_CASES = KERNEL_CASES.flatMap(([kernel, c]) => Object.keys(SINKS).map((sinkName) => [`${kernel}, ${c.name}, sinks ${sinkName}`, kernel, c, sinkName] as const));

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(SINK_CASES)('%s: equals the f64 formula', (_n, kernel, c, sinkName) => {
    const x = inputs(c, 21);
    const sinks = SINKS[sinkName];
    const got = run(engine, kernel, c, x, sinks);
    expect(worstDiff(got, reference(c, x, sinks))).toBeLessThan(F32_TOLERANCE);
    // and the sinks matter: the plain softmax's result is far from it, even with the sinks far
    // below the scores (≥ 2.7e-3 here), so a kernel that ignored them would fail
    expect(worstDiff(got, reference(c, x, null))).toBeGreaterThan(10 * F32_TOLERANCE);
  });

  it('a row whose only key is its own: v·σ(s − sink), for each head', () => {
    const c: Case = { name: 'one token', past: [0], lengths: [1], window: null, layout: 'row-major' };
    const x = inputs(c, 4);
    const sinks = SINKS['mixed, one −Infinity (no sink)'];
    const got = run(engine, 'causalAttention', c, x, sinks);
    for (let h = 0; h < HEADS; h++) {
      const kvh = Math.floor(h / (HEADS / KV_HEADS));
      let dot = 0;
      for (let t = 0; t < HEAD_DIM; t++) dot += x.q[h * HEAD_DIM + t] * x.k[kvh * HEAD_DIM + t];
      const weight = 1 / (1 + Math.exp(sinks[h] - dot * x.scale));
      for (let t = 0; t < HEAD_DIM; t++) expect(Math.abs(got[h * HEAD_DIM + t] - weight * x.v[kvh * HEAD_DIM + t])).toBeLessThan(F32_TOLERANCE);
    }
  });

  it.each(KERNEL_CASES.map(([kernel, c]) => [`${kernel}, ${c.name}`, kernel, c] as const))('%s: no sinks (null, undefined) is bit for bit the call without them', (_n, kernel, c) => {
    const x = inputs(c, 8);
    const without = Buffer.from(run(engine, kernel, c, x, 'absent').buffer);
    expect(Buffer.from(run(engine, kernel, c, x, null).buffer).equals(without)).toBe(true);
    expect(Buffer.from(run(engine, kernel, c, x, undefined).buffer).equals(without)).toBe(true);
    expect(worstDiff(run(engine, kernel, c, x, 'absent'), reference(c, x, null))).toBeLessThan(F32_TOLERANCE);
  });

  it.each(['causalAttention', 'cachedAttention'] as const)('%s refuses sinks of the wrong length, type or place', (kernel) => {
    const c = kernel === 'causalAttention' ? CAUSAL[0] : CACHED[0];
    const x = inputs(c, 3);
    const call = (sinks: Float32Array, context = new Float32Array(x.q.length)) => () => {
      if (kernel === 'causalAttention') engine.kernels.causalAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.q, x.k, x.v, x.scale, c.window, context, sinks);
      else engine.kernels.cachedAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, c.window, context, sinks);
    };
    // one per kv head instead of one per query head: the likely mix-up
    expect(call(new Float32Array(KV_HEADS))).toThrow(EngineError);
    expect(call(new Float32Array(KV_HEADS))).toThrow(new RegExp(`${kernel}: sinks has 2 elements but numHeads = 4 \\(one sink logit per query head\\)`));
    expect(call(new Float32Array(HEADS + 1))).toThrow(/sinks has 5 elements but numHeads = 4/);
    expect(call(new Float64Array(HEADS) as unknown as Float32Array)).toThrow(/sinks must be a Float32Array/);
    const context = new Float32Array(x.q.length);
    expect(call(context.subarray(0, HEADS), context)).toThrow(/context shares memory with sinks/);
  });
});

const ts = engines.find((e) => e.name === 'ts');
const native = engines.find((e) => e.name === 'native');
describe.skipIf(!native || !ts)('native against ts with sinks', () => {
  it.each(SINK_CASES)('%s: to f32 rounding', (_n, kernel, c, sinkName) => {
    const x = inputs(c, 33);
    const sinks = SINKS[sinkName];
    expect(worstDiff(run(native!, kernel, c, x, sinks), run(ts!, kernel, c, x, sinks))).toBeLessThan(F32_TOLERANCE);
  });

  it.each(KERNEL_CASES.map(([kernel, c]) => [`${kernel}, ${c.name}`, kernel, c] as const))('%s: the same bits on 1 and 2 threads', async (_n, kernel, c) => {
    const x = inputs(c, 5);
    const sinks = SINKS['mixed, one −Infinity (no sink)'];
    const [one, two] = (await onNativeEngines([1, 2], (engine) => run(engine, kernel, c, x, sinks))).map((r) => Buffer.from(r.buffer));
    expect(two.equals(one)).toBe(true);
  });

  it('the addon itself refuses sinks of the wrong length (native.ts checks first; this is its own check)', () => {
    type Raw = (...args: unknown[]) => void;
    const binding = createRequire(import.meta.url)(nativeAddonPath) as { causalAttention: Raw; cachedAttention: Raw };
    const short = new Float32Array(KV_HEADS);
    const xc = inputs(CAUSAL[0], 3);
    expect(() => binding.causalAttention(HEADS, KV_HEADS, HEAD_DIM, xc.offsets, xc.q, xc.k, xc.v, xc.scale, 0, 1, new Float32Array(xc.q.length), short)).toThrow(/causalAttention: sinks has 2 elements but numHeads = 4/);
    const x = inputs(CACHED[0], 3);
    const context = new Float32Array(x.q.length);
    expect(() => binding.cachedAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, 0, 1, context, short)).toThrow(/cachedAttention: sinks has 2 elements but numHeads = 4/);
    expect(() => binding.cachedAttention(HEADS, KV_HEADS, HEAD_DIM, x.offsets, x.past, x.keys, x.values, x.headStride, x.q, x.scale, 0, 1, context, context.subarray(0, HEADS))).toThrow(/context shares memory with sinks/);
  });
});
