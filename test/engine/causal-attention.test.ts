/**
 * The causalAttention kernel (causal self-attention of a ragged batch without a KV cache):
 * - every engine against softmax(scale·q·kᵀ)·v summed in f64 here, over multi-head and grouped
 *   heads, ragged sequences (empty, one token, several causal tiles), a sliding window;
 * - the native kernel, which spreads its units over threads, bit for bit against the per-head loop
 *   run one product at a time on the native engine's own gemm and kernels on one thread (what the
 *   forward pass did before the kernel), and the same on 1 and 2 threads, including products big
 *   enough that the loop on 2 threads would hand them to OpenBLAS's threads (whose sgemm rounds
 *   some elements an ulp differently from its one-thread sgemm);
 * - bad arguments: the same errors from every engine.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { EngineError } from '../../src/engine/types.js';
import { causalAttentionUnits } from '../../src/engine/ts/kernels/causal-attention.js';
import { uniform } from '../helpers/rng.js';
import { onNativeEngines } from '../helpers/native-threads.js';

const engines = await listAvailableEngines();
afterAll(() => engines.forEach((e) => e.dispose()));

interface Case {
  name: string;
  heads: number;
  kvHeads: number;
  headDim: number;
  lengths: number[];
  window: number | null;
  /** width of a value head (the `valueHeadDim` argument); absent: none given (headDim) */
  valueHeadDim?: number;
}

const CASES: Case[] = [
  { name: 'multi-head, one sequence of one tile', heads: 2, kvHeads: 2, headDim: 8, lengths: [13], window: null },
  { name: 'grouped heads, ragged batch with an empty and a one-token sequence', heads: 8, kvHeads: 2, headDim: 16, lengths: [5, 0, 1, 70], window: null },
  { name: 'several causal tiles', heads: 4, kvHeads: 1, headDim: 8, lengths: [300, 129], window: null },
  { name: 'sliding window shorter than a tile and longer than one', heads: 4, kvHeads: 2, headDim: 8, lengths: [200, 40], window: 37 },
  { name: 'window longer than every sequence', heads: 2, kvHeads: 1, headDim: 4, lengths: [9, 3], window: 1000 },
  // MiMo-V2-Flash: value heads narrower than the key heads
  { name: 'value heads narrower than key heads, several tiles and a window', heads: 8, kvHeads: 4, headDim: 12, valueHeadDim: 8, lengths: [150, 1, 20], window: 33 },
];

function inputs(c: Case, seed: number) {
  const offsets = new Int32Array(c.lengths.length + 1);
  c.lengths.forEach((l, i) => (offsets[i + 1] = offsets[i] + l));
  const rows = offsets[c.lengths.length];
  return {
    offsets,
    q: uniform(rows * c.heads * c.headDim, seed, 2),
    k: uniform(rows * c.kvHeads * c.headDim, seed + 1, 2),
    v: uniform(rows * c.kvHeads * (c.valueHeadDim ?? c.headDim), seed + 2),
    scale: 1 / Math.sqrt(c.headDim),
  };
}

/** softmax(scale·q·kᵀ)·v per head and row in f64, with the causal (and window) mask. */
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
        const first = c.window === null ? 0 : Math.max(0, i - c.window + 1);
        const scores: number[] = [];
        for (let j = first; j <= i; j++) {
          let dot = 0;
          for (let t = 0; t < d; t++) dot += x.q[(start + i) * heads * d + h * d + t] * x.k[(start + j) * kvHeads * d + kvh * d + t];
          scores.push(dot * x.scale);
        }
        const max = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < vd; t++) {
          let acc = 0;
          for (let j = first; j <= i; j++) acc += (e[j - first] / sum) * x.v[(start + j) * kvHeads * vd + kvh * vd + t];
          out[(start + i) * heads * vd + h * vd + t] = acc;
        }
      }
    }
  }
  return out;
}

function run(engine: Engine, c: Case, x: ReturnType<typeof inputs>): Float32Array {
  const context = new Float32Array((x.q.length / c.headDim) * (c.valueHeadDim ?? c.headDim)).fill(Number.NaN); // overwritten, never read
  engine.kernels.causalAttention(c.heads, c.kvHeads, c.headDim, x.offsets, x.q, x.k, x.v, x.scale, c.window, context, null, c.valueHeadDim);
  return context;
}

/** The per-head loop, one call at a time, on the engine's own products (the forward pass before the kernel). */
function perHead(engine: Engine, c: Case, x: ReturnType<typeof inputs>): Float32Array {
  const context = new Float32Array((x.q.length / c.headDim) * (c.valueHeadDim ?? c.headDim));
  causalAttentionUnits(
    {
      gemm: (m, n, k, a, b, out, transB, alpha) => engine.gemm(m, n, k, a, b, out, { transB, alpha }),
      causalSoftmax: (blocks, rows, cols, past, window, scores) => engine.kernels.causalSoftmax(blocks, rows, cols, past, window, scores),
      copyBlock: (...args) => engine.kernels.copyBlock(...args),
    },
    c.heads, c.kvHeads, c.headDim, x.offsets, x.q, x.k, x.v, x.scale, c.window, context, null, c.valueHeadDim,
  );
  return context;
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
    const call = (over: Partial<{ heads: number; kvHeads: number; offsets: Int32Array; q: Float32Array; window: number | null; context: Float32Array; scale: number }>) => () =>
      engine.kernels.causalAttention(over.heads ?? c.heads, over.kvHeads ?? c.kvHeads, c.headDim, over.offsets ?? x.offsets, over.q ?? x.q, x.k, x.v, over.scale ?? x.scale, over.window === undefined ? c.window : over.window, over.context ?? ctx);
    expect(call({ heads: 6, kvHeads: 4 })).toThrow(EngineError);
    expect(call({ heads: 6, kvHeads: 4 })).toThrow(/numHeads = 6 is not a multiple of numKvHeads = 4/);
    expect(call({ offsets: Int32Array.of(1, 5) })).toThrow(/offsets must start at 0/);
    expect(call({ offsets: Int32Array.of(0, 5, 3, 76) })).toThrow(/offsets must not decrease/);
    expect(call({ q: x.q.subarray(1) })).toThrow(/q/);
    expect(call({ window: 0 })).toThrow(/window/);
    expect(call({ scale: Number.NaN })).toThrow(/scale must be finite/);
    expect(call({ context: x.q })).toThrow(/context shares memory/);
  });
});

const native = engines.find((e) => e.name === 'native');
describe.skipIf(!native)('native kernel against the per-head loop on the same engine', () => {
  const big: Case = { name: 'long sequences, products past the threading threshold', heads: 8, kvHeads: 2, headDim: 128, lengths: [1100, 77], window: null };
  it.each([...CASES, big].map((c) => [c.name, c] as const))('%s: bit for bit, on 1 and 2 threads', async (_n, c) => {
    const x = inputs(c, 5);
    const results = (await onNativeEngines([1, 2], (engine, threads) => (threads === 1 ? [run(engine, c, x), perHead(engine, c, x)] : [run(engine, c, x)]))).flat();
    const [kernel1, loop1, kernel2] = results.map((r) => Buffer.from(r.buffer));
    expect(kernel1.equals(loop1)).toBe(true);
    expect(kernel2.equals(kernel1)).toBe(true);
  });
});
