/**
 * npm run bench:small-rows [-- --json] [-- --rounds 3] [-- --shapes 16384x512,4096x14336] [-- --bf16] [-- --bf16-activations]
 *
 * What a decoding step's products cost per row: engine.gemm of m = 1…8 rows against a weight
 * matrix stored row by row (x·Wᵀ, the native engine's small-rows kernels; m = 1 is OpenBLAS's
 * sgemv), on one thread, for the projections of the synthetic bench models and of real MoE models
 * (Mixtral-8x7B's expert up/down, Qwen3-30B-A3B's expert gate/down, a 32000-token lm_head block).
 * The weights rotate through copies that together exceed the last-level cache, so every call
 * reads its weights from memory, as a decoding step does.
 *
 * The figure is the ratio m rows ÷ 1 row of the same round (the peer is the memory-bound gemv,
 * and the machine is noisy): 1.0 means the extra rows cost nothing, m means no sharing at all.
 * Rounds alternate the row counts; medians over rounds are printed.
 *
 * --bf16 measures instead the weights kept in BF16 (kernels.gemmBf16, the served routed experts)
 * against the same weights widened to f32 (engine.gemm), at 1-32 rows: per row count, the f32
 * product's time ÷ the BF16 product's in the same round (above 1: BF16 is faster).
 *
 * --bf16-activations measures the same BF16 weights with BF16 matmul activations (an engine with
 * matmulActivations 'bf16': AMX tiles, BF16 dot products or the f32 kernels on rounded rows, as
 * the CPU and RFID_MOE_NATIVE_SIMD allow) against f32 activations (the peer, in place of the
 * f32 weights): per row count, the f32-activation product's time ÷ the BF16-activation one's.
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine/index.js';
import { mulberry32 } from '../src/util/prng.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    shapes: { type: 'string', default: '16384x512,1408x512,512x1408,14336x4096,4096x14336,768x2048,2048x768' },
    'cache-mib': { type: 'string', default: '640' },
    bf16: { type: 'boolean', default: false },
    'bf16-activations': { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer; got "${values.rounds}"`);
const shapes = values.shapes.split(',').map((s) => {
  const m = /^(\d+)x(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`--shapes takes NxK pairs (weight rows x columns) separated by commas; got "${s}"`);
  return [Number(m[1]), Number(m[2])] as const;
});
const ROWS = [1, 2, 3, 4, 8];
const { engine, notice } = await createEngine('native', { threads: 1 });
process.stderr.write(`${notice}\n`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
if (values.bf16 || values['bf16-activations']) {
  await bf16AgainstF32();
  engine.dispose();
  process.exit(0);
}
const results: Array<{ n: number; k: number; msPerCall: Record<number, number>; overOneRow: Record<number, number> }> = [];
for (const [n, k] of shapes) {
  const copies = Math.max(2, Math.ceil((Number(values['cache-mib']) * 2 ** 20) / (n * k * 4)));
  const next = mulberry32(n * 31 + k);
  const weights = Array.from({ length: copies }, () => Float32Array.from({ length: n * k }, () => next() - 0.5));
  const x = Float32Array.from({ length: 8 * k }, () => next() - 0.5);
  const out = new Float32Array(8 * n);
  let turn = 0;
  const perCall = (m: number): number => {
    const calls = Math.max(copies, Math.ceil(2e8 / (n * k)));
    const t = performance.now();
    for (let i = 0; i < calls; i++) engine.gemm(m, n, k, x.subarray(0, m * k), weights[turn++ % copies], out.subarray(0, m * n), { transB: true });
    return (performance.now() - t) / calls;
  };
  for (const m of ROWS) perCall(m); // warm-up: every copy paged in, every kernel loaded
  const times: Record<number, number[]> = Object.fromEntries(ROWS.map((m) => [m, []]));
  const ratios: Record<number, number[]> = Object.fromEntries(ROWS.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ROWS : [...ROWS].reverse();
    const round: Record<number, number> = {};
    for (const m of order) round[m] = perCall(m);
    for (const m of ROWS) {
      times[m].push(round[m]);
      ratios[m].push(round[m] / round[1]);
    }
  }
  const row = {
    n, k,
    msPerCall: Object.fromEntries(ROWS.map((m) => [m, median(times[m])])),
    overOneRow: Object.fromEntries(ROWS.map((m) => [m, median(ratios[m])])),
  };
  results.push(row);
  if (!values.json) {
    process.stdout.write(`W ${n}×${k} (${((n * k * 4) / 2 ** 20).toFixed(1)} MiB): ` + ROWS.map((m) => `${m} row${m > 1 ? 's' : ''} ${row.msPerCall[m].toFixed(3)} ms (${row.overOneRow[m].toFixed(2)}×)`).join(', ') + '\n');
  }
}
if (values.json) process.stdout.write(JSON.stringify({ engine: notice, rounds, results }) + '\n');
engine.dispose();

/**
 * BF16 weights (gemmBf16) against the same weights widened to f32 (gemm), alternated per round;
 * with --bf16-activations, BF16 activations against f32 ones on the BF16 weights.
 */
async function bf16AgainstF32(): Promise<void> {
  const activations = values['bf16-activations'] ? (await createEngine('native', { threads: 1, matmulActivations: 'bf16' })).engine : undefined;
  if (activations) process.stderr.write(`BF16 activations: ${activations.describe()}\n`);
  const rows = [1, 2, 4, 8, 12, 16, 32];
  const out: Array<{ n: number; k: number; f32Ms: Record<number, number>; bf16Ms: Record<number, number>; f32OverBf16: Record<number, number> }> = [];
  for (const [n, k] of shapes) {
    // copies of the BF16 form that together exceed the last-level cache, and their f32 widening
    const copies = Math.max(2, Math.ceil((Number(values['cache-mib']) * 2 ** 20) / (n * k * 2)));
    const next = mulberry32(n * 37 + k);
    const wide = Array.from({ length: copies }, () => {
      const w = Float32Array.from({ length: n * k }, () => next() - 0.5);
      const bits = new Uint32Array(w.buffer);
      for (let i = 0; i < bits.length; i++) bits[i] &= 0xffff0000; // exactly representable in BF16
      return w;
    });
    const half = wide.map((w) => {
      const bits = new Uint32Array(w.buffer);
      const h = new Uint16Array(bits.length);
      for (let i = 0; i < bits.length; i++) h[i] = bits[i] >>> 16;
      return h;
    });
    const x = Float32Array.from({ length: 32 * k }, () => next() - 0.5);
    const c = new Float32Array(32 * n);
    let turn = 0;
    const perCall = (m: number, bf16: boolean): number => {
      const calls = Math.max(copies, Math.ceil(1e8 / (n * k)));
      const a = x.subarray(0, m * k);
      const y = c.subarray(0, m * n);
      const t = performance.now();
      for (let i = 0; i < calls; i++) {
        const w = turn++ % copies;
        if (bf16) (activations ?? engine).kernels.gemmBf16(m, n, k, a, half[w], y, 0);
        else if (activations) engine.kernels.gemmBf16(m, n, k, a, half[w], y, 0);
        else engine.gemm(m, n, k, a, wide[w], y, { transB: true });
      }
      return (performance.now() - t) / calls;
    };
    for (const m of rows) perCall(m, false), perCall(m, true);
    const f32: Record<number, number[]> = Object.fromEntries(rows.map((m) => [m, []]));
    const b16: Record<number, number[]> = Object.fromEntries(rows.map((m) => [m, []]));
    const ratio: Record<number, number[]> = Object.fromEntries(rows.map((m) => [m, []]));
    for (let r = 0; r < rounds; r++) {
      for (const m of rows) {
        // the order alternates between rounds
        let a: number;
        let b: number;
        if (r % 2 === 0) {
          a = perCall(m, false);
          b = perCall(m, true);
        } else {
          b = perCall(m, true);
          a = perCall(m, false);
        }
        f32[m].push(a);
        b16[m].push(b);
        ratio[m].push(a / b);
      }
    }
    const row = {
      n, k,
      f32Ms: Object.fromEntries(rows.map((m) => [m, median(f32[m])])),
      bf16Ms: Object.fromEntries(rows.map((m) => [m, median(b16[m])])),
      f32OverBf16: Object.fromEntries(rows.map((m) => [m, median(ratio[m])])),
    };
    out.push(row);
    if (!values.json) process.stdout.write(`W ${n}×${k}: ` + rows.map((m) => `${m} row${m > 1 ? 's' : ''} ${row.f32Ms[m].toFixed(3)} / ${row.bf16Ms[m].toFixed(3)} ms (${row.f32OverBf16[m].toFixed(2)}×)`).join(', ') + '\n');
  }
  if (values.json) process.stdout.write(JSON.stringify({ engine: notice, activations: activations?.describe(), rounds, bf16: out }) + '\n');
  activations?.dispose();
}
