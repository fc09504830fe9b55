/**
 * npm run bench:prefill-gemm [-- --json] [-- --rounds 3] [-- --threads 2] [-- --shapes 81x1408x512,256x512x512] [-- --bf16-activations]
 *
 * What a prompt's prefill products cost against weights kept in BF16: kernels.gemmBf16 of m rows
 * (the tokens of a prompt, or the rows routed to one expert) against an n × k weight matrix, on
 * the engine's threads, against OpenBLAS's sgemm (engine.gemm) on the same weights widened to
 * f32, in the same round. The peer is what the BF16 products went through before the tiled
 * product (B widened a panel at a time for sgemm, which cost 0.74-0.98x of sgemm on f32), so the
 * ratio under-states the gain over that path. Shapes: the synthetic bench models' projections and
 * experts at 24-1024 rows, Qwen3-30B-A3B's expert (768 × 2048) and attention-sized products, and
 * Mixtral-8x7B's expert (14336 × 4096) at 32 rows.
 *
 * The weights rotate through copies of at least 64 MiB in all, so the first pass over each comes
 * from memory, as in a prefill. Per shape and round: sgemm's time ÷ gemmBf16's (above 1: the BF16
 * product is faster); medians over the rounds, which alternate the two. `OPENBLAS_CORETYPE` and
 * `RFID_MOE_NATIVE_SIMD` choose the kernels compared (the engine line printed names them).
 *
 * --bf16-activations adds gemmBf16 with BF16 matmul activations (MatmulActivations: the rows
 * rounded to BF16, BF16 dot products where the CPU has them) in the same rounds, and its speed-up
 * over gemmBf16 with f32 activations.
 */
import { parseArgs } from 'node:util';
import { createEngine } from '../src/engine/index.js';
import { mulberry32 } from '../src/util/prng.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    'bf16-activations': { type: 'boolean', default: false },
    shapes: { type: 'string', default: '24x1408x512,81x1408x512,256x512x512,256x128x512,256x1408x512,1024x512x512,64x768x2048,512x2048x768,256x4096x4096,32x14336x4096' },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer; got "${values.rounds}"`);
const threads = Number(values.threads);
if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer; got "${values.threads}"`);
const shapes = values.shapes.split(',').map((s) => {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`--shapes takes MxNxK triples (rows of A x weight rows x columns) separated by commas; got "${s}"`);
  return [Number(m[1]), Number(m[2]), Number(m[3])] as const;
});
const { engine, notice } = await createEngine('native', { threads });
if (engine.name !== 'native') throw new Error(`this benchmark measures the native engine's kernels; ${notice ?? 'it is not available'}`);
const rounding = values['bf16-activations'] ? (await createEngine('native', { threads, matmulActivations: 'bf16' })) : null;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Seconds per call of `run` over the copies, repeated until about 0.3 s have passed. */
function timeCalls(copies: number, run: (i: number) => void): number {
  for (let i = 0; i < copies; i++) run(i);
  let calls = 0;
  const t0 = performance.now();
  do {
    for (let i = 0; i < copies; i++) run(i);
    calls += copies;
  } while (performance.now() - t0 < 300);
  return (performance.now() - t0) / 1000 / calls;
}

interface Row {
  m: number; n: number; k: number; bf16Us: number; sgemmUs: number; bf16Gmacs: number; sgemmGmacs: number; ratio: number;
  /** with --bf16-activations: gemmBf16 with BF16 activations, and f32 activations' time ÷ its */
  roundedUs?: number; roundedGmacs?: number; roundedRatio?: number;
}
const rows: Row[] = [];
for (const [m, n, k] of shapes) {
  const next = mulberry32(m * 31 + n * 7 + k);
  const copies = Math.max(1, Math.ceil((64 << 20) / (n * k * 2)));
  const bf16 = Array.from({ length: copies }, () => {
    const b = new Uint16Array(n * k);
    // BF16 patterns of values in about ±1 (sign, exponents 2^-8..2^0, any mantissa)
    for (let i = 0; i < b.length; i++) b[i] = ((next() < 0.5 ? 0x8000 : 0) | ((119 + Math.floor(next() * 8)) << 7) | Math.floor(next() * 128)) & 0xffff;
    return b;
  });
  const f32 = bf16.map((b) => new Float32Array(Uint32Array.from(b, (h) => h << 16).buffer));
  const a = Float32Array.from({ length: m * k }, () => next() * 2 - 1);
  const c = new Float32Array(m * n);
  const ratios: number[] = [];
  const bf16Times: number[] = [];
  const sgemmTimes: number[] = [];
  const roundedTimes: number[] = [];
  const roundedRatios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const sgemm = timeCalls(copies, (i) => engine.gemm(m, n, k, a, f32[i], c, { transB: true }));
    const tiled = timeCalls(copies, (i) => engine.kernels.gemmBf16(m, n, k, a, bf16[i], c, 0));
    ratios.push(sgemm / tiled);
    bf16Times.push(tiled);
    sgemmTimes.push(sgemm);
    if (rounding) {
      const rounded = timeCalls(copies, (i) => rounding.engine.kernels.gemmBf16(m, n, k, a, bf16[i], c, 0));
      roundedTimes.push(rounded);
      roundedRatios.push(tiled / rounded);
    }
  }
  const macs = m * n * k;
  const row: Row = {
    m, n, k,
    bf16Us: median(bf16Times) * 1e6,
    sgemmUs: median(sgemmTimes) * 1e6,
    bf16Gmacs: macs / median(bf16Times) / 1e9,
    sgemmGmacs: macs / median(sgemmTimes) / 1e9,
    ratio: median(ratios),
    ...(rounding ? { roundedUs: median(roundedTimes) * 1e6, roundedGmacs: macs / median(roundedTimes) / 1e9, roundedRatio: median(roundedRatios) } : {}),
  };
  rows.push(row);
  if (!values.json) process.stderr.write(`${m}x${n}x${k} done\n`);
}
engine.dispose();
rounding?.engine.dispose();

if (values.json) {
  process.stdout.write(JSON.stringify({ engine: notice, rounding: rounding?.notice, threads, rounds, rows }) + '\n');
} else {
  process.stdout.write(`${notice}; ${threads} thread(s), median of ${rounds} round(s)\n${rounding ? `BF16 activations: ${rounding.notice}\n` : ''}\n`);
  const extra = rounding ? ' gemmBf16, BF16 activations | f32 ÷ BF16 activations |' : '';
  process.stdout.write(`| m × n × k | gemmBf16 (BF16) | sgemm on f32 | sgemm ÷ gemmBf16 |${extra}\n|---|---:|---:|---:|${rounding ? '---:|---:|' : ''}\n`);
  for (const r of rows) {
    const more = rounding ? ` ${r.roundedUs!.toFixed(0)} µs (${r.roundedGmacs!.toFixed(0)} GMAC/s) | **${r.roundedRatio!.toFixed(2)}** |` : '';
    process.stdout.write(`| ${r.m} × ${r.n} × ${r.k} | ${r.bf16Us.toFixed(0)} µs (${r.bf16Gmacs.toFixed(0)} GMAC/s) | ${r.sgemmUs.toFixed(0)} µs (${r.sgemmGmacs.toFixed(0)} GMAC/s) | **${r.ratio.toFixed(2)}** |${more}\n`);
  }
}
