/**
 * The native small-rows products on several threads (native/thread_pool.cc): a product whose
 * weights are large enough is cut into pieces of whole weight rows, so its result must be the
 * one-thread result bit for bit at every thread count, for f32 weights (engine.gemm with 2 ≤ m ≤ 8;
 * one row is OpenBLAS's sgemv, which cuts its threads' work its own way) and BF16 weights (kernels.gemmBf16: the small-rows kernels up to 8 rows, beyond them the tiled product, whose units are tiles of B and runs of 8-row blocks of A, or on CPUs without AVX-512 beyond 32 rows, and where OpenBLAS runs AVX-512 kernels from 128 rows against weights of a panel a thread, widened panels, each panel's sgemm on one thread; against fewer panels than threads the first cuts A's rows into blocks a thread and the second takes the tiled product, so the sums may differ in the last bit from one thread's, and those are checked against the f64 bound instead), with n and k that leave tails everywhere; and the
 * pool serves one call at a time, so calls made at once from several JS threads (each with its own
 * engine) must each still get that result (the busy pool runs them on their callers).
 */
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import { nativeAddonPath } from '../../src/engine/native.js';
import type { Engine } from '../../src/engine/types.js';
import { bf16Uniform, checkGemmBf16, panelsOf } from '../helpers/bf16-gemm-check.js';
import { uniform } from '../helpers/small-rows-check.js';

async function nativeWith(threads: number): Promise<Engine | undefined> {
  const { engine } = await createEngine('auto', { threads });
  if (engine.name === 'native') return engine;
  engine.dispose();
  return undefined;
}

const one = await nativeWith(1);
const THREADS = [2, 3, 5];
const several = one ? await Promise.all(THREADS.map((t) => nativeWith(t))) : [];
const engineLine = one?.describe() ?? '';
const ownKernels = /own kernels (\w+)/.exec(engineLine)?.[1];
const openblasAvx512 = /(skylakex|cooperlake|sapphirerapids) kernels/i.test(engineLine);

/**
 * Whether gemmBf16's sums may depend on the thread count (native/bf16_gemm.cc), which only
 * happens against weights of fewer 1 MiB f32 panels than threads: below AVX-512 beyond 32 rows
 * (the panel path then cuts A's rows by the thread count too), and where OpenBLAS runs AVX-512
 * kernels from 128 rows against two panels or more (the panels on fewer threads, the tiled
 * product on more).
 */
function sumsDependOnThreads(m: number, n: number, k: number, threads: number): boolean {
  const panels = panelsOf(n, k);
  if (panels >= threads) return false;
  return ownKernels !== 'avx512' ? m > 32 : openblasAvx512 && m >= 128 && panels >= 2;
}
afterAll(() => [one, ...several].forEach((e) => e?.dispose()));

/** (n, k): rows of B not a multiple of the 16-row piece alignment, k with vector and scalar tails;
    each over 128 KiB of weights (two pieces or more) in both forms. */
const SHAPES: Array<[number, number]> = [
  [1037, 301],
  [4099, 64],
  [250, 1411],
];

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe.skipIf(!one)('native small-rows products on several threads', () => {
  it.each(SHAPES)('f32 weights n=%i k=%i: m = 2…8 give the one-thread result bit for bit on 2, 3 and 5 threads', (n, k) => {
    const b = uniform(n * k, 11);
    for (let m = 2; m <= 8; m++) {
      const a = uniform(m * k, 20 + m);
      const reference = new Float32Array(m * n);
      one!.gemm(m, n, k, a, b, reference, { transB: true });
      for (const engine of several) {
        const c = new Float32Array(m * n).fill(Number.NaN);
        engine!.gemm(m, n, k, a, b, c, { transB: true });
        expect(bitsEqual(c, reference), `m=${m} on ${engine!.describe()}`).toBe(true);
      }
    }
  });

  it.each(SHAPES)('BF16 weights n=%i k=%i: m = 1…130 give the one-thread result bit for bit on 2, 3 and 5 threads, beta too (within the bound where the path depends on the threads)', (n, k) => {
    const b = bf16Uniform(n * k, 12);
    for (const m of [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 40, 130]) {
      const a = uniform(m * k, 40 + m);
      const start = uniform(m * n, 60 + m);
      const reference = start.slice();
      one!.kernels.gemmBf16(m, n, k, a, b, reference, 0.5);
      several.forEach((engine, t) => {
        if (sumsDependOnThreads(m, n, k, THREADS[t])) {
          expect(checkGemmBf16(engine!, m, n, k), `m=${m} on ${engine!.describe()}`).toEqual([]);
          return;
        }
        const c = start.slice();
        engine!.kernels.gemmBf16(m, n, k, a, b, c, 0.5);
        expect(bitsEqual(c, reference), `m=${m} on ${engine!.describe()}`).toBe(true);
      });
    }
  });

  it('on 3 threads the pieces land where they belong: within the f64 reference bound', () => {
    for (const m of [1, 3, 8, 12]) for (const [n, k] of SHAPES) expect(checkGemmBf16(several[1]!, m, n, k)).toEqual([]);
  });

  it('calls made at once from three worker threads and this one, each on 2 threads, all get the one-thread result', async () => {
    const [m, n, k] = [4, 4099, 64];
    const a = uniform(m * k, 71);
    const b = bf16Uniform(n * k, 72);
    const reference = new Float32Array(m * n);
    one!.kernels.gemmBf16(m, n, k, a, b, reference, 0);
    const rounds = 2000;
    // plain JS on the addon itself: a worker thread loads it as any other would
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const binding = require(workerData.addon);
      const { m, n, k, a, b, rounds } = workerData;
      const c = new Float32Array(m * n);
      const results = [];
      for (let r = 0; r < rounds; r++) {
        binding.gemmBf16(m, n, k, a, b, c, 0, 2);
        if (r % 50 === 0) results.push(c.slice());
      }
      parentPort.postMessage(results);`;
    const workers = [0, 1, 2].map(
      () =>
        new Promise<Float32Array[]>((resolve, reject) => {
          const worker = new Worker(source, { eval: true, workerData: { addon: nativeAddonPath, m, n, k, a, b, rounds } });
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    );
    // this thread calls until every worker is done, so its calls overlap theirs
    let finished = false;
    const done = Promise.all(workers).finally(() => (finished = true));
    const here: Float32Array[] = [];
    const c = new Float32Array(m * n);
    for (let r = 0; !finished || r < rounds; r++) {
      several[0]!.kernels.gemmBf16(m, n, k, a, b, c, 0);
      if (r % 50 === 0) here.push(c.slice());
      // let the workers' messages and errors through now and then
      if (r % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const all = [here, ...(await done)];
    expect(all.flat().length).toBeGreaterThanOrEqual(4 * (rounds / 50));
    for (const result of all.flat()) expect(bitsEqual(result, reference)).toBe(true);
  }, 60_000);
});
