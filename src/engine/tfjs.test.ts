/**
 * The tfjs engine on the wasm backend (the one installed here): f32 GEMM against an f64 loop with
 * a proven f32 error bound, argument checks, delegation of everything else, and the backend
 * fallback order with simulated missing/broken tfjs-node(-gpu) packages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError, type Engine, type FloatArray, type GemmOptions } from './types.js';
import { loadTfjsEngine, type TfjsEngine } from './tfjs.js';
import type { ModuleImporter } from './tfjs/backends.js';
import { tsKernels } from './ts/kernels/index.js';

/** Deterministic uniform values in [-1, 1) (mulberry32). */
function randomArray<T extends FloatArray>(ctor: new (length: number) => T, length: number, seed: number): T {
  const out = new ctor(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/**
 * Reference GEMM in f64 from the definition, plus the element-wise scale of the f32 error bound:
 * |fl(C) − C|ᵢⱼ ≤ γ · (|α|·(|op(A)|·|op(B)|)ᵢⱼ + |β|·|C₀ᵢⱼ|), γ = (k+2)·2⁻²⁴ (any summation order;
 * +2 for the scaling and the final sum).
 */
function referenceGemm(m: number, n: number, k: number, a: FloatArray, b: FloatArray, c0: FloatArray, opts: GemmOptions) {
  const alpha = opts.alpha ?? 1;
  const beta = opts.beta ?? 0;
  const value = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const aip = opts.transA ? a[p * m + i] : a[i * k + p];
        const bpj = opts.transB ? b[j * k + p] : b[p * n + j];
        sum += aip * bpj;
        abs += Math.abs(aip * bpj);
      }
      const old = beta === 0 ? 0 : c0[i * n + j];
      value[i * n + j] = alpha * sum + beta * old;
      scale[i * n + j] = Math.abs(alpha) * abs + Math.abs(beta * old);
    }
  }
  return { value, bound: (i: number) => (k + 2) * 2 ** -24 * scale[i] + 1e-30 };
}

/**
 * Test double for the delegate: records each call and answers with a marker object, so the tests
 * can see which calls left the tfjs engine and that results come back untouched.
 */
class RecordingEngine implements Engine {
  readonly name = 'ts' as const;
  readonly kernels = tsKernels;
  readonly threads = 1;
  readonly matmulActivations = 'f32' as const;
  readonly calls: Array<{ method: string; args: unknown[] }> = [];
  disposed = false;
  describe(): string {
    return 'recording delegate';
  }
  private record(method: string, args: unknown[]): { marker: string } {
    this.calls.push({ method, args });
    return { marker: method };
  }
  gemm(...args: unknown[]): void {
    this.record('gemm', args);
  }
  syrk(...args: unknown[]): void {
    this.record('syrk', args);
  }
  cholesky(...args: unknown[]): never {
    return this.record('cholesky', args) as never;
  }
  eigSym(...args: unknown[]): never {
    return this.record('eigSym', args) as never;
  }

  eigSymTop(...args: unknown[]): never {
    return this.record('eigSymTop', args) as never;
  }
  svd(...args: unknown[]): never {
    return this.record('svd', args) as never;
  }
  singularValues(...args: unknown[]): never {
    return this.record('singularValues', args) as never;
  }
  svdTop(...args: unknown[]): never {
    return this.record('svdTop', args) as never;
  }
  svdRandomized(...args: unknown[]): never {
    return this.record('svdRandomized', args) as never;
  }
  solveTriangular(...args: unknown[]): void {
    this.record('solveTriangular', args);
  }
  dispose(): void {
    this.disposed = true;
  }
}

/** Real imports, except that the named packages behave as missing or broken. */
function importerWith(overrides: Record<string, 'missing' | Error>): ModuleImporter {
  return async (specifier) => {
    const override = overrides[specifier];
    if (override === 'missing') {
      throw Object.assign(new Error(`Cannot find package '${specifier}' imported from ${import.meta.url}`), { code: 'ERR_MODULE_NOT_FOUND' });
    }
    if (override) throw override;
    return import(specifier);
  };
}

const NO_NODE_BACKENDS = { '@tensorflow/tfjs-node-gpu': 'missing', '@tensorflow/tfjs-node': 'missing' } as const;

describe('tfjs engine on the wasm backend', () => {
  const delegate = new RecordingEngine();
  let engine: TfjsEngine;

  beforeAll(async () => {
    const load = await loadTfjsEngine({ delegate, importer: importerWith(NO_NODE_BACKENDS) });
    if (!load.ok) throw new Error(`${load.reason} (${load.fix})`);
    expect(load.backend).toBe('wasm');
    engine = load.engine;
  });

  afterAll(() => engine?.dispose());

  it('describes itself with the backend and the delegate', () => {
    expect(engine.name).toBe('tfjs');
    expect(engine.describe()).toMatch(/^tfjs \(wasm backend, tfjs-core \d+\.\d+\.\d+, 1 thread, f32 GEMM only; f64 GEMM and other ops on recording delegate\)$/);
    expect(engine.threads).toBe(1);
  });

  const shapes: Array<[number, number, number]> = [
    [1, 1, 1],
    [37, 29, 53],
    [64, 128, 96],
    [3, 200, 17],
  ];
  const scalars: Array<Pick<GemmOptions, 'alpha' | 'beta'>> = [{}, { alpha: -0.75 }, { alpha: 1, beta: 1 }, { alpha: 2.5, beta: -0.5 }];
  for (const [m, n, k] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`f32 GEMM ${m}×${n}×${k} transA=${transA} transB=${transB} matches f64 within the f32 bound for every alpha/beta`, () => {
          const a = randomArray(Float32Array, m * k, m * 7 + k);
          const b = randomArray(Float32Array, k * n, n * 13 + k);
          for (const [index, scalar] of scalars.entries()) {
            const opts: GemmOptions = { transA, transB, ...scalar };
            const c0 = randomArray(Float32Array, m * n, 1000 + index);
            const c = c0.slice();
            engine.gemm(m, n, k, a, b, c, opts);
            const ref = referenceGemm(m, n, k, a, b, c0, opts);
            for (let i = 0; i < m * n; i++) {
              const err = Math.abs(c[i] - ref.value[i]);
              if (!(err <= ref.bound(i))) throw new Error(`C[${i}] = ${c[i]}, f64 reference ${ref.value[i]}, error ${err} > bound ${ref.bound(i)} (${JSON.stringify(opts)})`);
            }
          }
          expect(delegate.calls.filter((call) => call.method === 'gemm')).toHaveLength(0);
        });
      }
    }
  }

  it('beta = 0 never reads the old C (NaN garbage is overwritten)', () => {
    const a = randomArray(Float32Array, 6, 1);
    const b = randomArray(Float32Array, 6, 2);
    const c = new Float32Array(4).fill(Number.NaN);
    engine.gemm(2, 2, 3, a, b, c);
    const ref = referenceGemm(2, 2, 3, a, b, c, {});
    for (let i = 0; i < 4; i++) expect(c[i]).toBeCloseTo(ref.value[i], 5);
  });

  it('k = 0 or alpha = 0 leaves beta·C (zeros when beta = 0)', () => {
    const c = new Float32Array([1, -2, 3, 4]);
    engine.gemm(2, 2, 0, new Float32Array(0), new Float32Array(0), c, { beta: 0.5 });
    expect(Array.from(c)).toEqual([0.5, -1, 1.5, 2]);
    engine.gemm(2, 2, 1, new Float32Array([1, 2]), new Float32Array([3, 4]), c, { alpha: 0 });
    expect(Array.from(c)).toEqual([0, 0, 0, 0]);
    engine.gemm(0, 3, 2, new Float32Array(0), new Float32Array(6), new Float32Array(0));
  });

  it('rejects bad dimensions, mixed dtypes and non-finite scalars with EngineError', () => {
    const f32 = (n: number) => new Float32Array(n);
    expect(() => engine.gemm(2, 3, 4, f32(8), f32(12), f32(5))).toThrow(EngineError);
    expect(() => engine.gemm(2, 3, 4, f32(8), f32(12), f32(5))).toThrow(/c \(m×n\) has 5 elements .* 2×3 = 6/);
    expect(() => engine.gemm(2, 3, 4, f32(7), f32(12), f32(6))).toThrow(/a \(m×k\) has 7 elements/);
    expect(() => engine.gemm(2, 3, 4, f32(8), f32(12), f32(6), { transB: true })).not.toThrow();
    expect(() => engine.gemm(2, 3, 4, f32(8), f32(11), f32(6), { transB: true })).toThrow(/b \(n×k, transB\)/);
    expect(() => engine.gemm(-1, 3, 4, f32(0), f32(12), f32(0))).toThrow(/m must be a non-negative integer, got -1/);
    expect(() => engine.gemm(2, 1.5, 4, f32(8), f32(6), f32(3))).toThrow(/n must be a non-negative integer/);
    expect(() => engine.gemm(2, 3, 4, f32(8), new Float64Array(12) as unknown as Float32Array, f32(6))).toThrow(/all be Float32Array or all be Float64Array/);
    expect(() => engine.gemm(2, 3, 4, f32(8), f32(12), f32(6), { alpha: Number.NaN })).toThrow(/alpha must be a finite number/);
    expect(delegate.calls).toHaveLength(0);
  });

  it('hands f64 GEMM and every other primitive to the delegate, returning its results untouched', () => {
    const f64 = (n: number) => new Float64Array(n);
    const a = f64(6);
    engine.gemm(2, 3, 1, f64(2), f64(3), a, { alpha: 2 });
    engine.syrk(3, 2, f64(6), f64(9), { trans: true });
    const results = [
      engine.cholesky(2, f64(4)),
      engine.eigSym(2, f64(4)),
      engine.eigSymTop(2, f64(4), 1),
      engine.svd(2, 3, a),
      engine.singularValues(2, 3, a),
      engine.svdTop(2, 3, a, 1),
      engine.svdRandomized(2, 3, a, 1, { seed: 5 }),
    ];
    engine.solveTriangular(2, 3, f64(4), a, { side: 'left' });
    expect(delegate.calls.map((call) => call.method)).toEqual(['gemm', 'syrk', 'cholesky', 'eigSym', 'eigSymTop', 'svd', 'singularValues', 'svdTop', 'svdRandomized', 'solveTriangular']);
    expect(results.map((result) => (result as unknown as { marker: string }).marker)).toEqual(['cholesky', 'eigSym', 'eigSymTop', 'svd', 'singularValues', 'svdTop', 'svdRandomized']);
    expect(delegate.calls[0].args).toEqual([2, 3, 1, f64(2), f64(3), a, { alpha: 2 }]);
    expect(delegate.calls[4].args[2]).toBe(1);
    expect(delegate.calls[6].args[2]).toBe(a);
    expect(delegate.calls[8].args[4]).toEqual({ seed: 5 });
    // the f64 GEMM was validated before being handed over
    expect(() => engine.gemm(2, 3, 1, f64(2), f64(3), f64(5))).toThrow(EngineError);
    expect(delegate.calls).toHaveLength(10);
  });
});

describe('tfjs engine with the default delegate (native, else ts)', () => {
  it('runs a delegated SVD and an f64 GEMM in full activations', async () => {
    const load = await loadTfjsEngine({ importer: importerWith(NO_NODE_BACKENDS) });
    if (!load.ok) throw new Error(`${load.reason} (${load.fix})`);
    const engine = load.engine;
    try {
      expect(engine.describe()).toMatch(/other ops on (native|ts)/);
      const [m, n] = [12, 7];
      const a = randomArray(Float64Array, m * n, 99);
      const { U, S, Vt, rank } = engine.svd(m, n, a);
      expect(rank).toBe(n);
      // U·diag(S)·Vt through the engine's own f64 GEMM must give A back (f64: ~1e-15).
      const us = Float64Array.from(U, (u, i) => u * S[i % n]);
      const back = new Float64Array(m * n);
      engine.gemm(m, n, n, us, Vt, back);
      for (let i = 0; i < m * n; i++) expect(Math.abs(back[i] - a[i])).toBeLessThan(1e-12);
      for (let i = 1; i < n; i++) expect(S[i - 1]).toBeGreaterThanOrEqual(S[i]);
    } finally {
      engine.dispose();
    }
    expect(() => engine.gemm(1, 1, 1, new Float32Array(1), new Float32Array(1), new Float32Array(1))).toThrow(/disposed/);
  });
});

describe('tfjs backend order', () => {
  it('skips a tfjs-node-gpu that is installed but broken, saying why, and a missing tfjs-node', async () => {
    const importer = importerWith({
      '@tensorflow/tfjs-node-gpu': new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory'),
      '@tensorflow/tfjs-node': 'missing',
    });
    const { loadTfjsBackend } = await import('./tfjs/backends.js');
    const load = await loadTfjsBackend({ importer });
    expect(load.ok).toBe(true);
    if (!load.ok) return;
    expect(load.backend.kind).toBe('wasm');
    expect(load.skipped).toEqual([
      { kind: 'tfjs-node-gpu', reason: '@tensorflow/tfjs-node-gpu is installed but failed to load: libcudart.so.11.0: cannot open shared object file: No such file or directory' },
      { kind: 'tfjs-node', reason: '@tensorflow/tfjs-node is not installed' },
    ]);
  });

  it('reports every backend and how to install one when none loads (never throws)', async () => {
    const importer = importerWith({ ...NO_NODE_BACKENDS, '@tensorflow/tfjs-core': 'missing', '@tensorflow/tfjs-backend-wasm': 'missing' });
    const load = await loadTfjsEngine({ importer, delegate: new RecordingEngine() });
    expect(load.ok).toBe(false);
    if (load.ok) return;
    expect(load.reason).toContain('tfjs-node-gpu: @tensorflow/tfjs-node-gpu is not installed');
    expect(load.reason).toContain('tfjs-node: @tensorflow/tfjs-node is not installed');
    expect(load.reason).toContain('wasm: @tensorflow/tfjs-core is not installed');
    expect(load.fix).toContain('npm i @tensorflow/tfjs-node-gpu');
    expect(load.fix).toContain('npm i @tensorflow/tfjs-core @tensorflow/tfjs-backend-wasm');
  });

  it('disposes a delegate it loaded itself but never one it was given', async () => {
    const given = new RecordingEngine();
    const load = await loadTfjsEngine({ delegate: given, importer: importerWith(NO_NODE_BACKENDS) });
    if (!load.ok) throw new Error(load.reason);
    load.engine.dispose();
    expect(given.disposed).toBe(false);
    expect(() => load.engine.svd(1, 1, new Float64Array(1))).toThrow(EngineError);
  });
});
