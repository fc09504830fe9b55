/**
 * What only the pure-TS engine has: the worker-thread GEMM (participation, bitwise agreement with
 * one thread, processes still exit with idle workers), engine lifecycle and options.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GemmPool, PARALLEL_MIN_MULADDS } from '../../src/engine/ts/gemm-parallel.js';
import { gemmBlock } from '../../src/engine/ts/gemm-kernel.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { EngineError } from '../../src/engine/types.js';
import { naiveMatmul, relErr, testMatrix } from './linalg-helpers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('worker-thread GEMM', () => {
  const [m, n, k] = [192, 160, 170];

  it('is used above the size threshold only', () => {
    const pool = new GemmPool(2);
    expect(m * n * k).toBeGreaterThanOrEqual(PARALLEL_MIN_MULADDS);
    expect(pool.wants(m, n, k)).toBe(true);
    expect(pool.wants(32, 32, 32)).toBe(false);
    expect(new GemmPool(1).wants(m, n, k)).toBe(false);
    pool.dispose();
    expect(pool.wants(m, n, k)).toBe(false);
  });

  it.each([
    [false, false],
    [true, true],
  ])('workers take chunks and the result is bitwise that of one thread (transA %s, transB %s)', (transA, transB) => {
    const pool = new GemmPool(2);
    try {
      for (const wide of [false, true]) {
        // wide C splits by columns, tall C by rows
        const [mm, nn] = wide ? [n, m + 40] : [m, n];
        const a = Float32Array.from(testMatrix(mm * k, 31));
        const b = Float32Array.from(testMatrix(k * nn, 32));
        const c0 = testMatrix(mm * nn, 33);
        const single = Float32Array.from(c0);
        const threaded = single.slice();
        gemmBlock(mm, nn, k, a, transA, b, transB, single, 1.25, 0.5, 0, mm, 0, nn);
        // The first runs may finish before the workers have booted; work-claiming makes that
        // correct, but we want to see the workers actually contribute.
        let workerChunks = 0;
        for (let attempt = 0; attempt < 40 && workerChunks === 0; attempt++) {
          threaded.set(c0);
          pool.run(mm, nn, k, a, transA, b, transB, threaded, 1.25, 0.5);
          workerChunks = pool.lastRunWorkerChunks;
        }
        expect(workerChunks).toBeGreaterThan(0);
        expect(Array.from(threaded)).toEqual(Array.from(single));
        const truth = naiveMatmul(mm, nn, k, a, transA, b, transB).map((v, i) => 1.25 * v + 0.5 * Math.fround(c0[i]));
        expect(relErr(threaded, truth)).toBeLessThan(2e-6);
      }
    } finally {
      pool.dispose();
    }
  });

  it('computes only the lower triangle for syrk-style runs', () => {
    const pool = new GemmPool(2);
    try {
      const size = 200;
      const a = testMatrix(size * k, 34);
      const c = new Float64Array(size * size).fill(7);
      pool.run(size, size, k, a, false, a, true, c, 1, 0, true);
      let untouched = 0;
      for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) if (c[i * size + j] === 7) untouched++;
      expect(untouched).toBeGreaterThan((size * (size - 1)) / 4); // most of the upper triangle skipped
      const truth = naiveMatmul(size, size, k, a, false, a, true);
      for (let i = 0; i < size; i++) {
        for (let j = 0; j < size; j++) {
          // the lower triangle is exact; above it, only whole row-chunks' diagonal blocks may be
          // written (with correct values), the rest is left alone
          const v = c[i * size + j];
          if (j <= i || v !== 7) expect(Math.abs(v - truth[i * size + j])).toBeLessThan(1e-12);
        }
      }
    } finally {
      pool.dispose();
    }
  });

  it('lets a process exit while idle workers exist (no dispose)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rfid-moe-ts-engine-'));
    try {
      const script = path.join(dir, 'exit-check.mts');
      const engineUrl = new URL('../../src/engine/ts/index.ts', import.meta.url).href;
      writeFileSync(
        script,
        `import { createTsEngine } from ${JSON.stringify(engineUrl)};
const engine = createTsEngine({ threads: 2 });
const n = 256;
const a = new Float64Array(n * n).fill(1);
const c = new Float64Array(n * n);
for (let i = 0; i < 5; i++) engine.gemm(n, n, n, a, a, c);
console.log('sum', c[0] + c[n * n - 1]);
`,
      );
      const out = execFileSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, timeout: 60_000, encoding: 'utf8' });
      expect(out.trim()).toBe('sum 512');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createTsEngine', () => {
  it('describes itself and defaults to at most two threads', () => {
    const engine = createTsEngine();
    expect(engine.name).toBe('ts');
    expect(engine.threads).toBeGreaterThanOrEqual(1);
    expect(engine.threads).toBeLessThanOrEqual(2);
    expect(engine.describe()).toMatch(/^ts \(pure TypeScript, [12] threads?\)$/);
    engine.dispose();
    expect(createTsEngine({ threads: 1 }).describe()).toBe('ts (pure TypeScript, 1 thread)');
  });

  it('rejects a bad thread count', () => {
    expect(() => createTsEngine({ threads: 0 })).toThrow(EngineError);
    expect(() => createTsEngine({ threads: 1.5 })).toThrow(/positive integer/);
  });

  it('refuses work after dispose()', () => {
    const engine = createTsEngine({ threads: 2 });
    engine.dispose();
    expect(() => engine.gemm(1, 1, 1, new Float64Array(1), new Float64Array(1), new Float64Array(1))).toThrow(/dispose/);
  });

  it('rejects an output that overlaps an input', () => {
    const engine = createTsEngine({ threads: 1 });
    const buf = new Float64Array(8);
    expect(() => engine.gemm(2, 2, 2, buf.subarray(0, 4), buf.subarray(4), buf.subarray(2, 6))).toThrow(/overlaps/);
    engine.dispose();
  });

  it('handles empty dimensions', () => {
    const engine = createTsEngine({ threads: 1 });
    const c = new Float64Array(6).fill(3);
    engine.gemm(2, 3, 0, new Float64Array(0), new Float64Array(0), c, { beta: 0.5 });
    expect(Array.from(c)).toEqual([1.5, 1.5, 1.5, 1.5, 1.5, 1.5]);
    const s = engine.svd(0, 4, new Float64Array(0));
    expect([s.U.length, s.S.length, s.Vt.length, s.rank]).toEqual([0, 0, 0, 0]);
    expect(engine.cholesky(0, new Float64Array(0)).L.length).toBe(0);
    engine.dispose();
  });

  it('svd of an all-zero matrix still returns orthonormal factors', () => {
    const engine = createTsEngine({ threads: 1 });
    const s = engine.svd(6, 4, new Float64Array(24));
    expect(Array.from(s.S)).toEqual([0, 0, 0, 0]);
    const gram = naiveMatmul(4, 4, 6, s.U, true, s.U, false);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expect(gram[i * 4 + j]).toBeCloseTo(i === j ? 1 : 0, 12);
    engine.dispose();
  });
});
