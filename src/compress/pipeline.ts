/**
 * `compress(model, recipe, options)`: the whole run, layer by layer.
 *
 *  1. Refuse bad input before any work: the recipe against every MoE layer (γ, group size,
 *     budget), routing statistics made on another model, an output directory of another run.
 *  2. Routing statistics: a stats file, calibration on a dataset, or — with neither — calibration
 *     on sequences sampled from the model itself (seeded). They are saved in the output directory,
 *     so a resumed run does not calibrate again.
 *  3. Per decoder layer: read its experts one matrix type at a time, compress, write the layer's
 *     shard atomically, record it (with its sha256) in the progress file, free it. Memory stays
 *     bounded by one layer. Finished layers of an interrupted run are kept (--resume).
 *  4. The shard of the non-layer tensors, the index, the tokenizer files, the fidelity check
 *     (KL and top-1 agreement against the original on held-out sequences), the reports, and
 *     last config.json with its rfid_moe block: its presence marks the directory complete.
 *
 * Every output file except the two reports (which hold wall times) is a deterministic function of
 * (model, recipe, statistics, storage, engine), so a killed and resumed run is byte-identical.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parameterCounts } from '../checkpoint/counts.js';
import { openCheckpoint } from '../checkpoint/open.js';
import type { Checkpoint, LayerLayout } from '../checkpoint/types.js';
import { createEngine, type EngineChoice } from '../engine/index.js';
import type { Engine } from '../engine/types.js';
import { evaluateWindows } from '../eval/evaluate.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { DType } from '../io/dtype.js';
import { SafetensorsFile } from '../io/safetensors-reader.js';
import { TensorStore } from '../io/sharded.js';
import { collectRoutingStats } from '../routing-stats/collect.js';
import { modelFingerprint } from '../routing-stats/fingerprint.js';
import { GramDirectorySink, loadGram } from '../routing-stats/gram.js';
import { loadRoutingStats, RoutingStatsError, validateRoutingStats, writeRoutingStats, type RoutingStats } from '../routing-stats/schema.js';
import { assertRunnable, CheckpointWeights } from '../runtime/checkpoint-weights.js';
import { residentIfFits } from '../runtime/resident-weights.js';
import { tokenizeDataset } from '../tokens/prepare.js';
import { calibrationWindows, evaluationWindows } from '../tokens/windows.js';
import type { DatasetFormat } from '../tokens/dataset.js';
import { TOOL_VERSION } from '../version.js';
import { compressLayerType, type CompressLayerResult } from './compress-layer.js';
import { openCompressed } from '../compressed/load.js';
import { sampleSequences } from '../runtime/generation/sample-sequences.js';
import { NAME_TEMPLATES, CONFIG_BLOCK_KEY, CONFIG_FILE, COPIED_FILES, INDEX_FILE, PROGRESS_FILE, REPORT_JSON, REPORT_MD, STATS_FILE, shardFileName } from './output/names.js';
import { factorDtypeFor, roundFactors, writeShard, droppedTensors, type CompressedTypeData } from './output/layer-shard.js';
import type { LayerBlock, RfidBlock } from './output/block.js';
import { EtaClock, type ProgressListener } from './progress.js';
import { parseRecipe, recipeFingerprint, validateRecipeForLayer, type MatrixType, type Recipe, type RecipeInput } from './recipe.js';
import { reductionsOf, reportToMarkdown, type CompressionReport, type Fidelity, type GroupReport, type LayerReport, type TypeReport } from './report.js';
import { finishedLayerIntact, inspectOutputDir, newProgress, OutputDirError, runFingerprint, sha256File, writeProgress, type ProgressFile } from './resume.js';
import { rankUnitCost } from '../rank-allocation/budget.js';

export interface DatasetCalibration {
  file: string;
  /** calibration windows (default 128) of seqLen tokens (default 512), offsets drawn from seed */
  samples?: number;
  seqLen?: number;
  seed?: number;
  /** tokenizer.json or a directory holding one (default: the model's) */
  tokenizer?: string;
  format?: DatasetFormat | 'auto';
  textField?: string;
}

export interface SelfSampledCalibration {
  /** sequences (default 32) of seqLen tokens (default 128) sampled from the model, seeded */
  samples?: number;
  seqLen?: number;
  seed?: number;
}

export interface EvaluationOptions {
  /** held-out sequences / windows for KL and top-1 (default 16); 0 skips the check */
  sequences?: number;
  /** length of sampled held-out sequences (default: the calibration length) */
  seqLen?: number;
}

export interface CompressOptions {
  out: string;
  /** 'factored' (default, saves memory) or 'dense' (reconstructed weights under the original names) */
  storage?: 'factored' | 'dense';
  /** routing statistics: a file written by `rfid-moe calibrate`, or the document itself */
  stats?: string | RoutingStats;
  /** calibrate on a dataset instead */
  dataset?: DatasetCalibration;
  /** with neither stats nor dataset: calibration sequences sampled from the model (these settings) */
  selfSampled?: SelfSampledCalibration;
  /** per-expert Gram matrices from `rfid-moe calibrate --grams` (needed for --whiten with --stats) */
  grams?: string;
  /** an engine instance (not disposed), or a choice (created and disposed here); default 'auto' */
  engine?: Engine | EngineChoice;
  threads?: number;
  resume?: boolean;
  evaluation?: EvaluationOptions | false;
  onProgress?: ProgressListener;
}

export class CompressError extends Error {
  readonly kind = 'CompressError';
  constructor(message: string) {
    super(message);
    this.name = 'CompressError';
  }
}

type CalibrationSource = 'stats' | 'dataset' | 'self-sampled';

interface CalibrationPlan {
  source: CalibrationSource;
  key: string;
  description: string;
  /** resolves the statistics (and grams dir) once the output directory is claimed */
  run(): Promise<{ stats: RoutingStats; gramsDir?: string }>;
  /** held-out sequences for the fidelity check */
  heldOut(count: number): Promise<{ sequences: Int32Array[]; on: string } | undefined>;
}

const GRAMS_WORK_DIR = '.rfid-moe-grams';

function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

function statsHash(stats: RoutingStats): string {
  return sha256(JSON.stringify(canonical(stats)));
}

function moeLayers(ckpt: Checkpoint): LayerLayout[] {
  return ckpt.layout.layers.filter((l) => l.kind === 'moe');
}

/** p × d of one expert matrix of each type. */
function shapeOf(ckpt: Checkpoint, type: MatrixType): { p: number; d: number } {
  const { hiddenSize: H, expertIntermediateSize: I } = ckpt.config;
  return type === 'down' ? { p: H, d: I } : { p: I, d: H };
}

/** Everything that can be refused without reading a weight. */
function validateBeforeWork(ckpt: Checkpoint, recipe: Recipe, storage: 'factored' | 'dense', opts: CompressOptions): void {
  const layers = moeLayers(ckpt);
  if (layers.length === 0) throw new CompressError('the model has no MoE layer: there is nothing to compress');
  for (const type of recipe.matrixTypes) {
    const { p, d } = shapeOf(ckpt, type);
    try {
      validateRecipeForLayer(recipe, { numExperts: ckpt.config.numExperts, p, d });
    } catch (err) {
      throw new CompressError(`${type} matrices (${p}×${d}, ${ckpt.config.numExperts} experts per layer): ${(err as Error).message}`);
    }
  }
  if (storage === 'factored') for (const l of layers) droppedTensors(l, recipe.matrixTypes);
  if (opts.stats !== undefined && opts.dataset !== undefined) throw new CompressError('give routing statistics either as --stats or as --dataset, not both');
  if (recipe.whiten !== false && opts.stats !== undefined && opts.grams === undefined) {
    throw new CompressError('whitening needs each expert\'s input Gram matrix: pass --grams <dir> written by `rfid-moe calibrate --grams`, or calibrate here with --dataset');
  }
}

function checkStatsMatchModel(stats: RoutingStats, ckpt: Checkpoint, fingerprint: string, source: string): void {
  if (stats.model.fingerprint !== fingerprint) {
    throw new RoutingStatsError(
      `${source} was collected on another model (fingerprint ${stats.model.fingerprint.slice(0, 19)}…, this model ${fingerprint.slice(0, 19)}…, ${stats.model.family} with ${stats.model.numLayers} layers vs ${ckpt.config.family} with ${ckpt.config.numLayers}); calibrate this model with \`rfid-moe calibrate\` or pass --dataset`,
    );
  }
  for (const l of moeLayers(ckpt)) {
    const entry = stats.layers.find((s) => s.layer === l.index);
    if (!entry) throw new RoutingStatsError(`${source} has no counts for MoE layer ${l.index}; recalibrate the whole model`);
  }
}

/**
 * Weights for token-by-token sampling: every step runs the whole model again, so a model that fits
 * in memory is kept resident instead of being re-read and re-decoded from disk at each step.
 */
function samplingWeights(ckpt: Checkpoint) {
  return residentIfFits(new CheckpointWeights(ckpt), parameterCounts(ckpt).total);
}

async function planCalibration(ckpt: Checkpoint, engine: () => Promise<Engine>, opts: CompressOptions & { recipeWhitens: boolean }, modelFp: string, emit: ProgressListener): Promise<CalibrationPlan> {
  const withGrams = (key: string) => (opts.grams ? `${key}|grams:${path.resolve(opts.grams)}` : key);
  const selfHeldOut = async (count: number, seqLen: number, seed: number): Promise<{ sequences: Int32Array[]; on: string }> => ({
    sequences: await sampleSequences(samplingWeights(ckpt), await engine(), { count, length: seqLen, seed }),
    on: `${count} sequence(s) of ${seqLen} tokens sampled from the original model (seed ${seed}, held out from calibration)`,
  });
  const runnable = ckpt.config.attention !== 'mla';

  if (opts.stats !== undefined) {
    const source = typeof opts.stats === 'string' ? opts.stats : 'the routing statistics given';
    const stats = typeof opts.stats === 'string' ? await loadRoutingStats(opts.stats) : validateRoutingStats(opts.stats);
    checkStatsMatchModel(stats, ckpt, modelFp, source);
    const seqLen = Math.max(2, Math.min(stats.calibration.seqLen, 128));
    return {
      source: 'stats',
      key: withGrams(`stats:${statsHash(stats)}`),
      description: `routing statistics ${typeof opts.stats === 'string' ? path.basename(opts.stats) : '(given)'}: ${stats.calibration.samples} × ${stats.calibration.seqLen} tokens of ${stats.dataset.file}`,
      run: async () => ({ stats, gramsDir: opts.grams }),
      heldOut: async (count) => (runnable ? selfHeldOut(count, seqLen, 0x5eed) : undefined),
    };
  }

  if (opts.dataset !== undefined) {
    assertRunnable(ckpt);
    const d = opts.dataset;
    const samples = d.samples ?? 128;
    const seqLen = d.seqLen ?? 512;
    const seed = d.seed ?? 0;
    const data = await tokenizeDataset(d.tokenizer ?? ckpt.dir, d.file, { format: d.format, textField: d.textField });
    // calibration draws from the first 90 % of the tokens; the fidelity check uses the rest
    const split = Math.floor(data.ids.length * 0.9);
    const calibrationIds = data.ids.subarray(0, split);
    const heldOutIds = data.ids.subarray(split);
    const description = `${samples} windows of ${seqLen} tokens (seed ${seed}) from the first 90% of ${path.basename(d.file)}`;
    return {
      source: 'dataset',
      key: withGrams(`dataset:${data.dataset.sha256}:${sha256(data.tokenizerPath)}:${samples}:${seqLen}:${seed}`),
      description,
      run: async () => {
        const windows = calibrationWindows(calibrationIds, samples, seqLen, seed);
        const gramsDir = opts.grams ?? (await calibrationGramsDir(opts));
        const stats = await calibrate(ckpt, await engine(), windows, gramsDir, modelFp, emit, 'dataset', {
          dataset: { file: path.basename(d.file), format: data.dataset.format, sha256: data.dataset.sha256, tokens: data.ids.length },
          samples,
          seqLen,
          seed,
        }, opts);
        return { stats, gramsDir };
      },
      heldOut: async (count) => {
        if (heldOutIds.length < seqLen) return undefined;
        return {
          sequences: evaluationWindows(heldOutIds, seqLen, count),
          on: `held-out windows of ${seqLen} tokens from the last 10% of ${path.basename(d.file)}`,
        };
      },
    };
  }

  assertRunnable(ckpt);
  const s = opts.selfSampled ?? {};
  const samples = s.samples ?? 32;
  const seqLen = s.seqLen ?? 128;
  const seed = s.seed ?? 0;
  return {
    source: 'self-sampled',
    key: withGrams(`self-sampled:${samples}:${seqLen}:${seed}`),
    description: `no dataset given: ${samples} sequences of ${seqLen} tokens sampled from the model itself (temperature 1, seed ${seed})`,
    run: async () => {
      emit({ type: 'calibration', phase: 'start', source: 'self-sampled', message: `sampling ${samples} sequences of ${seqLen} tokens from the model (seed ${seed})` });
      const eng = await engine();
      const sequences = await sampleSequences(samplingWeights(ckpt), eng, {
        count: samples,
        length: seqLen,
        seed,
        onStep: (done, of) => emit({ type: 'calibration', phase: 'layer', source: 'self-sampled', layer: done - 1, of, message: `sampled ${done}/${of} positions` }),
      });
      const ids = new Int32Array(sequences.flatMap((q) => Array.from(q)));
      const gramsDir = opts.grams ?? (await calibrationGramsDir(opts));
      const stats = await calibrate(ckpt, eng, sequences, gramsDir, modelFp, emit, 'self-sampled', {
        dataset: { file: '(sampled from the model)', format: 'self-sampled', sha256: sha256(new Uint8Array(ids.buffer)), tokens: ids.length },
        samples,
        seqLen,
        seed,
      }, opts);
      return { stats, gramsDir };
    },
    // a different seed than calibration, so the check runs on sequences the compressor never saw
    heldOut: async (count) => selfHeldOut(count, seqLen, (seed ^ 0x5eed1234) >>> 0),
  };
}

/** Gram matrices are only collected when the recipe whitens (they cost hidden² per expert). */
async function calibrationGramsDir(opts: CompressOptions & { recipeWhitens: boolean }): Promise<string | undefined> {
  return opts.recipeWhitens ? path.join(path.resolve(opts.out), GRAMS_WORK_DIR) : undefined;
}

async function calibrate(
  ckpt: Checkpoint,
  engine: Engine,
  windows: Int32Array[],
  gramsDir: string | undefined,
  modelFp: string,
  emit: ProgressListener,
  source: 'dataset' | 'self-sampled',
  info: Parameters<typeof collectRoutingStats>[3],
  opts: CompressOptions,
): Promise<RoutingStats> {
  emit({ type: 'calibration', phase: 'start', source, message: `routing statistics over ${windows.length} sequence(s)` });
  const sink = gramsDir && !opts.grams ? new GramDirectorySink(gramsDir, ckpt.config.hiddenSize, modelFp) : undefined;
  const stats = await collectRoutingStats(ckpt, engine, windows, info, {
    grams: sink,
    onLayer: (p) => emit({ type: 'calibration', phase: 'layer', source, layer: p.layer, of: p.numLayers, message: `layer ${p.layer + 1}/${p.numLayers}` }),
  });
  if (sink) await sink.finish();
  emit({ type: 'calibration', phase: 'done', source, message: `${stats.calibration.tokens} tokens, ${stats.warnings.length} warning(s)` });
  return stats;
}

function groupReports(result: CompressLayerResult): GroupReport[] {
  return result.groups.map((g, i) => ({
    group: i,
    experts: g.experts,
    rank: g.rank,
    erank: g.erank,
    F: g.F,
    E: g.E,
    C: g.C,
    weightRelBefore: g.errors.weightRelBefore,
    weightRelAfter: g.errors.weightRelAfter,
    ...(g.errors.outputRelBefore !== undefined ? { outputRelBefore: g.errors.outputRelBefore } : {}),
    ...(g.errors.outputRel !== undefined ? { outputRelAfter: g.errors.outputRel } : {}),
    residualEnergyRecovered: g.errors.residualEnergyRecovered,
    residual: g.residual ? { ...g.residual.descriptor } : null,
    ...(g.whiteningDamping !== undefined ? { whiteningDamping: g.whiteningDamping } : {}),
  }));
}

function typeReport(result: CompressLayerResult, p: number, d: number, groupSize: number): TypeReport {
  return {
    p,
    d,
    params: { original: result.params.original, stored: result.params.stored },
    ratio: result.params.ratio,
    rankUnitShare: rankUnitCost(groupSize, p, d) / result.params.original,
    groups: groupReports(result),
    warnings: result.warnings,
  };
}

/** Tensors of each shard: decoder layer l → shard l, everything else → the last shard. */
function tensorsByShard(ckpt: Checkpoint): string[][] {
  const L = ckpt.config.numLayers;
  const shards: string[][] = Array.from({ length: L + 1 }, () => []);
  for (const name of ckpt.tensorNames()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    const l = m ? Number(m[1]) : L;
    shards[l < L ? l : L].push(name);
  }
  return shards;
}

function layerBlock(layer: number, counts: number[], compressed: CompressedTypeData[]): LayerBlock {
  const types: LayerBlock['types'] = {};
  for (const c of compressed) {
    types[c.type] = {
      p: c.p,
      d: c.d,
      groups: c.groups.map((g) => ({
        experts: g.experts,
        rank: g.rank,
        erank: g.erank,
        frequencyShare: g.F,
        erankShare: g.E,
        fusedScore: g.C,
        residual: g.residual ? { ...g.residual.descriptor } : null,
      })),
    };
  }
  return { layer, routingCounts: counts, types };
}

/** The layer's block entry as recorded in the progress file's report (groups and descriptors). */
function layerBlockFromReport(report: LayerReport, counts: number[]): LayerBlock {
  const types: LayerBlock['types'] = {};
  for (const [type, t] of Object.entries(report.types)) {
    if (!t) continue;
    types[type as MatrixType] = {
      p: t.p,
      d: t.d,
      groups: t.groups.map((g) => ({ experts: g.experts, rank: g.rank, erank: g.erank, frequencyShare: g.F, erankShare: g.E, fusedScore: g.C, residual: g.residual })),
    };
  }
  return { layer: report.layer, routingCounts: counts, types };
}

async function loadLayerGrams(gramsDir: string, layer: number, numExperts: number, hidden: number): Promise<(e: number) => Float64Array> {
  const grams: Float64Array[] = [];
  for (let e = 0; e < numExperts; e++) {
    const g = await loadGram(gramsDir, layer, e);
    // an expert no calibration token reached has XᵀX = 0 (whitening then damps it)
    grams.push(g?.gram ?? new Float64Array(hidden * hidden));
  }
  return (e) => grams[e];
}

async function writeIndex(out: string, files: string[]): Promise<void> {
  const weightMap: Record<string, string> = {};
  const entries: Array<[string, string]> = [];
  let totalSize = 0;
  for (const file of files) {
    const f = await SafetensorsFile.open(path.join(out, file));
    try {
      for (const name of f.tensorNames()) {
        entries.push([name, file]);
        totalSize += f.tensor(name)!.byteLength;
      }
    } finally {
      await f.close();
    }
  }
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [name, file] of entries) weightMap[name] = file;
  await writeFileAtomic(path.join(out, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
}

async function copyModelFiles(modelDir: string, out: string): Promise<void> {
  for (const name of COPIED_FILES) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path.join(modelDir, name));
    } catch {
      continue;
    }
    await writeFileAtomic(path.join(out, name), bytes);
  }
}

function gatheredDtype(ckpt: Checkpoint, recipe: Recipe): DType {
  const l = moeLayers(ckpt)[0];
  const moe = l.moe!;
  const name = moe.experts ? moe.experts[0][recipe.matrixTypes[0]] : recipe.matrixTypes[0] === 'down' ? moe.fused!.down : moe.fused!.gateUp;
  return ckpt.tensor(name)?.dtype ?? 'F32';
}

/** Compress a model; returns the report (also written as JSON and Markdown into the output). */
export async function compress(model: string | Checkpoint, recipeInput: Recipe | RecipeInput, options: CompressOptions): Promise<CompressionReport> {
  const started = Date.now();
  const emit: ProgressListener = options.onProgress ?? (() => undefined);
  const recipe = parseRecipe(recipeInput);
  const storage = options.storage ?? 'factored';
  if (storage !== 'factored' && storage !== 'dense') throw new CompressError(`format must be factored or dense, got ${String(storage)}`);
  const ckpt = typeof model === 'string' ? await openCheckpoint(model) : model;
  let ownedEngine: Engine | undefined;
  let engineNotice = '';
  const engine = async (): Promise<Engine> => {
    if (options.engine !== undefined && typeof options.engine === 'object') return options.engine;
    if (!ownedEngine) {
      const created = await createEngine((options.engine as EngineChoice | undefined) ?? 'auto', { threads: options.threads });
      ownedEngine = created.engine;
      engineNotice = created.notice;
    }
    return ownedEngine;
  };
  const store = await TensorStore.open(ckpt.dir);
  try {
    validateBeforeWork(ckpt, recipe, storage, options);
    const modelFp = modelFingerprint(ckpt);
    const opts = { ...options, recipeWhitens: recipe.whiten !== false };
    const calibration = await planCalibration(ckpt, engine, opts, modelFp, emit);
    const fingerprint = runFingerprint({ toolVersion: TOOL_VERSION, modelFingerprint: modelFp, recipeFingerprint: recipeFingerprint(recipe), calibrationKey: calibration.key, storage });
    const out = path.resolve(options.out);
    const state = await inspectOutputDir(out, fingerprint, { resume: options.resume ?? false, modelDir: ckpt.dir });
    if (state.state === 'complete') {
      emit({ type: 'finalize', message: `${out} already holds the complete output of this run; nothing to do` });
      return JSON.parse(await readFile(path.join(out, REPORT_JSON), 'utf8')) as CompressionReport;
    }

    await mkdir(out, { recursive: true });
    if (state.state === 'resume') await removeStrayTempFiles(out);
    const progress: ProgressFile = state.state === 'resume' ? state.progress : newProgress(fingerprint, ckpt.dir);
    await writeProgress(out, progress);

    // statistics: reuse those saved by the interrupted run, else resolve and save them
    const statsPath = path.join(out, STATS_FILE);
    let stats: RoutingStats;
    let gramsDir: string | undefined = options.grams;
    const saved = state.state === 'resume' ? await loadRoutingStats(statsPath).catch(() => undefined) : undefined;
    if (saved) {
      stats = saved;
      if (!options.grams && recipe.whiten !== false) gramsDir = path.join(out, GRAMS_WORK_DIR);
    } else {
      const resolved = await calibration.run();
      stats = resolved.stats;
      gramsDir = resolved.gramsDir;
      await writeRoutingStats(statsPath, stats);
    }
    const eng = await engine();
    const engineDescription = eng.describe();

    const shards = tensorsByShard(ckpt);
    const L = ckpt.config.numLayers;
    const factorDtype = factorDtypeFor(gatheredDtype(ckpt, recipe));
    const clock = new EtaClock();
    const layerReports: LayerReport[] = [];
    const blocks: LayerBlock[] = [];
    const resumedLayers: number[] = [];
    const warnings: string[] = [...stats.warnings];
    const countsOf = (l: number) => stats.layers.find((s) => s.layer === l)?.counts ?? [];

    for (let l = 0; l < L; l++) {
      const layout = ckpt.layout.layers[l];
      const file = shardFileName(l, L);
      const previous = progress.layers[String(l)];
      if (previous && previous.file === file && (await finishedLayerIntact(out, previous))) {
        layerReports.push({ ...previous.report, seconds: 0 });
        if (layout.kind === 'moe') blocks.push(layerBlockFromReport(previous.report, countsOf(l)));
        resumedLayers.push(l);
        emit({ type: 'layer-done', layer: l, of: L, seconds: 0, etaSeconds: clock.eta(L - l - 1), resumed: true });
        continue;
      }
      emit({ type: 'layer-start', layer: l, of: L, etaSeconds: clock.eta(L - l) });
      const t0 = Date.now();
      const compressed: CompressedTypeData[] = [];
      const report: LayerReport = { layer: l, kind: layout.kind, seconds: 0, types: {} };
      if (layout.kind === 'moe') {
        const frequencies = countsOf(l);
        const gram = gramsDir ? await loadLayerGrams(gramsDir, l, ckpt.config.numExperts, ckpt.config.hiddenSize) : undefined;
        for (const type of recipe.matrixTypes) {
          const { p, d } = shapeOf(ckpt, type);
          const matrices: Float32Array[] = [];
          for (let e = 0; e < ckpt.config.numExperts; e++) matrices.push(await ckpt.readExpert(l, e, type));
          const result = compressLayerType({
            engine: eng,
            recipe,
            matrices,
            p,
            d,
            frequencies,
            ...(gram ? { gram } : {}),
            onGroupDone: (done, total) => emit({ type: 'layer-group', layer: l, of: L, matrixType: type, group: done, groups: total }),
          });
          roundFactors(result.groups, factorDtype);
          compressed.push({ type, p, d, groups: result.groups });
          report.types[type] = typeReport(result, p, d, Math.min(recipe.groupSize, ckpt.config.numExperts));
          for (const w of result.warnings) warnings.push(`layer ${l} ${type}: ${w}`);
        }
        blocks.push(layerBlock(l, frequencies, compressed));
      }
      await writeShard({ file: path.join(out, file), tensors: shards[l], ckpt, store, engine: eng, storage, factorDtype, layer: layout, compressed });
      report.seconds = (Date.now() - t0) / 1000;
      clock.record(report.seconds);
      layerReports.push(report);
      progress.layers[String(l)] = { file, sha256: await sha256File(path.join(out, file)), report };
      await writeProgress(out, progress);
      emit({ type: 'layer-done', layer: l, of: L, seconds: report.seconds, etaSeconds: clock.eta(L - l - 1), resumed: false });
    }

    emit({ type: 'finalize', message: 'embeddings, index, tokenizer files' });
    const lastFile = shardFileName(L, L);
    await writeShard({ file: path.join(out, lastFile), tensors: shards[L], ckpt, store, engine: eng, storage, factorDtype, compressed: [] });
    await writeIndex(out, Array.from({ length: L + 1 }, (_, i) => shardFileName(i, L)));
    await copyModelFiles(ckpt.dir, out);

    const block: RfidBlock = {
      format: 'rfid-moe',
      version: 1,
      tool: `rfid-moe ${TOOL_VERSION}`,
      storage,
      runFingerprint: fingerprint,
      modelFingerprint: modelFp,
      recipeFingerprint: recipeFingerprint(recipe),
      recipe: JSON.parse(JSON.stringify(canonical(recipe))) as Record<string, unknown>,
      factorDtype,
      expertLayout: moeLayers(ckpt)[0].moe!.fused ? 'fused' : 'per-expert',
      matrixTypes: [...recipe.matrixTypes],
      calibration: { source: calibration.source, description: calibration.description, statsSha256: statsHash(stats) },
      tensorNames: { basis: NAME_TEMPLATES.basis, coefficients: NAME_TEMPLATES.coefficients, residual: NAME_TEMPLATES.residual },
      layers: blocks,
    };
    const config = { ...ckpt.config.raw, [CONFIG_BLOCK_KEY]: block };

    let fidelity: Fidelity | undefined;
    const evalOpts = options.evaluation === false ? { sequences: 0 } : (options.evaluation ?? {});
    if ((evalOpts.sequences ?? 16) > 0) {
      if (ckpt.config.attention === 'mla') {
        warnings.push('fidelity not measured: the runtime cannot run MLA attention (DeepSeek-V2) yet');
      } else {
        fidelity = await measureFidelity(ckpt, out, config, eng, calibration, evalOpts.sequences ?? 16, emit);
      }
    }

    const counts = parameterCounts(ckpt);
    const { compressedTypes, ...reductions } = reductionsOf(counts, layerReports);
    const report: CompressionReport = {
      tool: `rfid-moe ${TOOL_VERSION}`,
      model: { dir: ckpt.dir, family: ckpt.config.family, modelType: ckpt.config.modelType, fingerprint: modelFp },
      out,
      storage,
      recipe: block.recipe,
      budgetGivenAs: recipe.budgetGivenAs,
      runFingerprint: fingerprint,
      engine: engineDescription,
      calibration: { source: calibration.source, description: calibration.description },
      params: { original: counts, compressedTypes, reductions },
      layers: layerReports,
      resumedLayers,
      seconds: (Date.now() - started) / 1000,
      ...(fidelity ? { fidelity } : {}),
      warnings,
    };
    await writeFileAtomic(path.join(out, REPORT_JSON), JSON.stringify(report, null, 1) + '\n');
    await writeFileAtomic(path.join(out, REPORT_MD), reportToMarkdown(report));
    // last: config.json makes the directory complete; then the run's scratch state goes
    await writeFileAtomic(path.join(out, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
    await rm(path.join(out, PROGRESS_FILE), { force: true });
    if (!options.grams) await rm(path.join(out, GRAMS_WORK_DIR), { recursive: true, force: true });
    emit({ type: 'finalize', message: `complete: ${out}${engineNotice ? ` (${engineNotice})` : ''}` });
    return report;
  } finally {
    await store.close();
    if (typeof model === 'string') await ckpt.close();
    ownedEngine?.dispose();
  }
}

/** Temp files of atomic writes a killed run left behind (never renamed into place, so never valid). */
async function removeStrayTempFiles(out: string): Promise<void> {
  for (const name of await readdir(out)) if (name.startsWith('.') && name.endsWith('.tmp')) await rm(path.join(out, name), { force: true });
}

async function measureFidelity(
  ckpt: Checkpoint,
  out: string,
  config: Record<string, unknown>,
  engine: Engine,
  calibration: CalibrationPlan,
  count: number,
  emit: ProgressListener,
): Promise<Fidelity | undefined> {
  emit({ type: 'evaluation', phase: 'start', message: `KL and top-1 agreement against the original on ${count} held-out sequence(s)` });
  const heldOut = await calibration.heldOut(count);
  if (!heldOut || heldOut.sequences.length === 0) {
    emit({ type: 'warning', message: 'fidelity not measured: no held-out data long enough for one window' });
    return undefined;
  }
  const compressed = await openCompressed(out, config);
  try {
    const result = await evaluateWindows(compressed, engine, heldOut.sequences, ckpt);
    const fidelity: Fidelity = {
      on: heldOut.on,
      sequences: heldOut.sequences.length,
      tokens: result.comparison!.tokens,
      meanKl: result.comparison!.meanKl,
      top1Agreement: result.comparison!.top1Agreement,
      perplexity: result.model.perplexity,
      referencePerplexity: result.reference!.perplexity,
    };
    emit({ type: 'evaluation', phase: 'done', message: `mean KL ${fidelity.meanKl.toExponential(3)}, top-1 ${(100 * fidelity.top1Agreement).toFixed(2)}%` });
    return fidelity;
  } finally {
    await compressed.close();
  }
}

export { OutputDirError };
