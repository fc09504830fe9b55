/**
 * The cost model of sharded runs (docs/cost-model.md): from per-layer figures measured at
 * Qwen3-30B-A3B shapes, estimates wall time, peak memory per worker, disk and network bytes for
 * larger MoEs on W workers. Every input is printed with the table, so the estimate can be checked.
 *
 *   npx tsx scripts/cost-model.ts [--layer-seconds S] [--layer-peak-mib M] [--calib-gflops G] [--json]
 */
interface Model {
  name: string;
  layers: number;
  moeLayers: number;
  experts: number;
  hidden: number;
  width: number;
  /** parameters of the whole checkpoint and active per token */
  totalParams: number;
  activeParams: number;
}

const MODELS: Model[] = [
  { name: 'Qwen3-30B-A3B', layers: 48, moeLayers: 48, experts: 128, hidden: 2048, width: 768, totalParams: 30.5e9, activeParams: 3.3e9 },
  { name: 'Qwen3-235B-A22B', layers: 94, moeLayers: 94, experts: 128, hidden: 4096, width: 1536, totalParams: 235e9, activeParams: 22e9 },
  { name: 'DeepSeek-V3', layers: 61, moeLayers: 58, experts: 256, hidden: 7168, width: 2048, totalParams: 671e9, activeParams: 37e9 },
];
const REFERENCE = MODELS[0];
const GROUP = 4;
const WORKERS = [1, 8, 64];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

// ---- measured inputs (BENCHMARKS.md, 2-core machine, native engine) ----------------------------
/** seconds to compress one matrix type (128 experts of 768×2048) of a Qwen3-30B-A3B layer, paper recipe */
const typeSeconds = arg('--layer-seconds', 118.3);
/** peak RSS of that run, MiB */
const typePeakMiB = arg('--layer-peak-mib', 1511);
/** effective GFLOP/s of the calibration forward pass (685 tokens/s × 2 × 21.5 M active parameters) */
const calibGflops = arg('--calib-gflops', 29.5);
/** calibration tokens (128 windows × 512) */
const calibTokens = arg('--calib-tokens', 128 * 512);
/** calibration peak RSS ÷ largest layer's bytes (2.56 GB BF16 checkpoint: 822 MB peak, 575 MB layer) */
const calibPeakPerLayer = arg('--calib-peak-ratio', 822 / 575);
const bf16 = 2;

/** Time of one matrix type of one layer, scaled from the reference by the SVD work of its groups (≈ m·n² per stacked k·p × d group). */
function typeTime(m: Model): number {
  const svd = (x: Model) => {
    const rows = GROUP * x.width;
    const cols = x.hidden;
    const [big, small] = rows >= cols ? [rows, cols] : [cols, rows];
    return (x.experts / GROUP) * big * small * small;
  };
  return typeSeconds * (svd(m) / svd(REFERENCE));
}

/** Peak memory: scales with one matrix type's f32 weights (the reference run's RSS ÷ its weights). */
function peakBytes(m: Model): number {
  const ref = REFERENCE.experts * REFERENCE.width * REFERENCE.hidden * 4;
  return typePeakMiB * 2 ** 20 * ((m.experts * m.width * m.hidden * 4) / ref);
}

function estimate(m: Model, workers: number) {
  const layerSeconds = 2 * typeTime(m); // gate and up
  const layersPerWorker = Math.ceil(m.moeLayers / workers);
  const compressSeconds = layersPerWorker * layerSeconds;
  const calibSeconds = (calibTokens * 2 * m.activeParams) / (calibGflops * 1e9) / workers;
  const checkpointBytes = m.totalParams * bf16;
  // each worker reads the layers it compresses (calibration streams every layer once per worker)
  const diskReadPerWorker = checkpointBytes + checkpointBytes / workers;
  // parts are written once and copied once by merge (a copy-on-write clone where the FS allows)
  const outBytes = checkpointBytes * 0.8;
  // on shared storage: every calibration task streams the whole checkpoint, compression tasks read
  // it once between them, parts are written and read back by merge, which writes the result
  const network = workers === 1 ? 0 : workers * checkpointBytes + checkpointBytes + 3 * outBytes;
  const calibPeak = calibPeakPerLayer * m.experts * 3 * m.width * m.hidden * bf16;
  return { layerSeconds, compressSeconds, calibSeconds, total: compressSeconds + calibSeconds, peak: Math.max(peakBytes(m), calibPeak), diskReadPerWorker, outBytes, network };
}

const rows = MODELS.flatMap((m) => WORKERS.map((w) => ({ model: m.name, workers: w, ...estimate(m, w) })));
if (process.argv.includes('--json')) {
  process.stdout.write(JSON.stringify({ inputs: { typeSeconds, typePeakMiB, calibGflops, calibTokens, calibPeakPerLayer }, rows }, null, 1) + '\n');
} else {
  const h = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : `${(s / 60).toFixed(0)} min`);
  const gb = (b: number) => `${(b / 1e9).toFixed(0)} GB`;
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  console.log(`inputs: ${typeSeconds} s and ${typePeakMiB} MiB per matrix type of a Qwen3-30B-A3B layer; calibration ${calibGflops} GFLOP/s, peak ${calibPeakPerLayer.toFixed(2)}× the largest layer; ${calibTokens} calibration tokens\n`);
  console.log('| model | workers | s per layer | calibration | compression | total wall | peak memory / worker | disk read / worker | network |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.model} | ${r.workers} | ${r.layerSeconds.toFixed(0)} | ${h(r.calibSeconds)} | ${h(r.compressSeconds)} | ${h(r.total)} | ${gib(r.peak)} | ${gb(r.diskReadPerWorker)} | ${r.workers === 1 ? '—' : gb(r.network)} |`);
  }
}
