/**
 * `compress(model, recipe, options)`: the whole run, layer by layer, as a sequence of stages
 * (one file each under stages/):
 *
 *  1. plan       refuse bad input before any work (recipe against every MoE layer, options,
 *                statistics of another model, an output directory of another run);
 *  2. calibrate  routing statistics from a stats file, a dataset, or sequences sampled from the
 *                model itself; saved in the output directory so a resumed run does not redo them.
 *                A run that calibrates itself layer by layer (stages/layerwise-calibration.ts)
 *                instead collects layer l's statistics just before factorising it, on the original
 *                activations when it needs Gram matrices (the disk holds one layer's, not every
 *                layer's) or, with `calibration: 'sequential'`, on the outputs of the compressed
 *                layers 0..l−1; a resumed run recomputes the finished layers' hidden states;
 *  3. allocate   within each layer, as part of factorise (compress-layer.ts): ranks per group
 *                under the layer's budget;
 *  4. factorise  per decoder layer: read its experts one matrix type at a time, compress, write the
 *                layer's shard atomically, record it (with its sha256) in the progress file, free
 *                it. Memory stays bounded by one layer. Finished layers of a killed run are kept;
 *  5. write      the shard of the non-layer tensors, the index, the tokenizer files, the reports,
 *                and last config.json with its rfid_moe block: its presence marks completion;
 *  6. verify     KL and top-1 agreement against the original on held-out sequences.
 *
 * Every output file except the two reports (which hold wall times) is a deterministic function of
 * (model, recipe, statistics, storage, engine), so a killed and resumed run is byte-identical.
 *
 * Integrity (integrity.ts, lock.ts, source-scan.ts): `<out>/.rfid-moe.lock` keeps a second live run
 * out; each layer's source tensors are hashed and checked for NaN/Inf as the layer is reached, its
 * factors are checked before they are written; a resumed run re-hashes the source of the layers it
 * keeps and refuses changed weights or statistics before writing; config.json records the sha256
 * of every output file and of every shard's source weights.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { openCheckpoint, openTensorSource } from '../checkpoint/open.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { lazyEngine } from '../engine/lazy.js';
import type { Engine } from '../engine/types.js';
import { modelFingerprint } from '../routing-stats/fingerprint.js';
import { loadRoutingStats, writeRoutingStats, type RoutingStats } from '../routing-stats/schema.js';
import { TOOL_VERSION } from '../version.js';
import { CompressError, type CompressOptions } from './options.js';
import { DENSE_SAVES_NOTHING } from './dense-notice.js';
import type { LayerBlock } from './output/block.js';
import { factorDtypeFor, writeShard } from './output/layer-shard.js';
import { PROGRESS_FILE, REPORT_JSON, STATS_FILE, shardFileName } from './output/names.js';
import { EtaClock, type ProgressListener } from './progress.js';
import { parseRecipe, recipeFingerprint, recipeNeedsGrams, type Recipe, type RecipeInput } from './recipe.js';
import { reductionsOf, type CompressionReport, type LayerReport } from './report.js';
import { assertFactorsFinite, checkCompleteOutput, checkStatsUnchanged, keptLayers } from './integrity.js';
import { lockOutputDir, type OutputLock } from './lock.js';
import { parseRfidBlock } from './output/block.js';
import { scanSourceTensors } from './source-scan.js';
import { withFiniteChecks } from '../checkpoint/finite.js';
import { hashProgressLines } from '../compressed/verify.js';
import { inspectOutputDir, newProgress, OutputDirError, runFingerprint, sha256File, writeProgress, type ProgressFile } from './resume.js';
import { calibratesLayerByLayer, GRAMS_WORK_DIR, planCalibration, resolveCalibrationMode } from './stages/calibrate.js';
import { LayerwiseCalibration } from './stages/layerwise-calibration.js';
import { layerSpectra, modelRankBudgets } from './stages/allocate-model.js';
import { loadRankBudgets, writeSpectraFile, type RunIdentity as AllocationIdentity } from './shard/spectra.js';
import { factoriseLayer, layerBlockFromReport } from './stages/factorise.js';
import { finishOutput } from './stages/finish.js';
import { validateBeforeWork } from './stages/plan.js';
import { gatheredDtype, removeStrayTempFiles, rfidBlock, tensorsByShard } from './stages/write.js';
import { formatLayerList, selectedLayers } from './shard/layers.js';
import { PART_FILE, writePartManifest, type PartLayerEntry } from './shard/part.js';
import { canonical, statsHash } from './hashing.js';
import { parameterCounts } from '../checkpoint/counts.js';

export { CompressError, type CompressOptions, type DatasetCalibration, type SelfSampledCalibration, type EvaluationOptions } from './options.js';

/** Compress a model; returns the report (also written as JSON and Markdown into the output). */
export async function compress(model: string | Checkpoint, recipeInput: Recipe | RecipeInput, options: CompressOptions): Promise<CompressionReport> {
  const started = Date.now();
  const emit: ProgressListener = options.onProgress ?? (() => undefined);
  const recipe = parseRecipe(recipeInput);
  const storage = options.storage ?? 'factored';
  if (storage !== 'factored' && storage !== 'dense') throw new CompressError(`\`storage\` must be factored or dense, got ${String(storage)}`);
  // every weight read (calibration, factorisation) is checked for NaN/Inf, naming layer and tensor
  const ckpt = withFiniteChecks(typeof model === 'string' ? await openCheckpoint(model) : model);
  const lazy = lazyEngine(options.engine, options.threads);
  const engine = lazy.get;
  const store = await openTensorSource(ckpt.dir);
  let lock: OutputLock | undefined;
  try {
    // 1. plan
    validateBeforeWork(ckpt, recipe, storage, options);
    const modelFp = modelFingerprint(ckpt);
    const mode = resolveCalibrationMode(recipe, options);
    const layerByLayer = calibratesLayerByLayer(recipe, options, mode);
    const opts = { ...options, recipeWhitens: recipeNeedsGrams(recipe), gramWeighting: recipe.gramWeighting, mode, layerByLayer };
    const calibration = await planCalibration(ckpt, engine, opts, modelFp, emit);
    const selection = options.layers ? partSelection(options.layers, ckpt.config.numLayers, calibration.source) : undefined;
    if (options.spectraOut !== undefined) return await writeSpectraOnly({ ckpt, recipe, options, calibration, selection, engine: await engine(), modelFp, started, emit });
    const fingerprint = runFingerprint({ toolVersion: TOOL_VERSION, modelFingerprint: modelFp, recipeFingerprint: recipeFingerprint(recipe), calibrationKey: calibration.key, storage, engine: (await engine()).describe() });
    const out = path.resolve(options.out);
    const dirOpts = { resume: options.resume ?? false, modelDir: ckpt.dir, selection: selection?.key };
    // read-only look first (never create a lock in a directory that is not ours), then claim it
    await inspectOutputDir(out, fingerprint, dirOpts);
    await mkdir(out, { recursive: true });
    lock = await lockOutputDir(out, (message) => emit({ type: 'warning', message }));
    const state = await inspectOutputDir(out, fingerprint, dirOpts);
    const shards = tensorsByShard(ckpt);
    if (state.state === 'part-complete' && selection) {
      emit({ type: 'finalize', message: `${out} already holds the complete part (layers ${selection.key}) of this run; nothing to do` });
      return partReport({ ckpt, out, storage, recipe, fingerprint, modelFp, engine: 'not run', calibration, layerReports: [], resumedLayers: selection.layers, started, warnings: [], layers: selection.layers });
    }
    if (state.state === 'complete') {
      await checkCompleteOutput({ out, block: parseRfidBlock(state.block, `${out}/config.json`), store, shards, verify: { onProgress: hashProgressLines((message) => emit({ type: 'finalize', message })) } });
      emit({ type: 'finalize', message: `${out} already holds the complete output of this run (every file and the source weights verified); nothing to do` });
      return JSON.parse(await readFile(path.join(out, REPORT_JSON), 'utf8')) as CompressionReport;
    }
    const L = ckpt.config.numLayers;
    const kept = state.state === 'resume' ? await keptLayers({ out, progress: state.progress, store, shards, shardFile: (l) => shardFileName(l, L) }) : new Set<number>();

    if (state.state === 'resume') await removeStrayTempFiles(out);
    const progress: ProgressFile = state.state === 'resume' ? state.progress : newProgress(fingerprint, ckpt.dir, selection?.key);
    await writeProgress(out, progress);

    // 2. calibrate: reuse the statistics saved by the interrupted run, else resolve and save them;
    // a run layer by layer instead collects each layer's statistics as the layer is reached
    const statsPath = path.join(out, STATS_FILE);
    let stats: RoutingStats | undefined;
    let gramsDir: string | undefined = options.grams;
    let layerwise: LayerwiseCalibration | undefined;
    const eng = await engine();
    const factorDtype = factorDtypeFor(gatheredDtype(ckpt, recipe));
    if (layerByLayer && calibration.windows) {
      const { windows, info } = await calibration.windows();
      const scratch = path.join(out, GRAMS_WORK_DIR);
      await rm(scratch, { recursive: true, force: true }); // a killed run's half-collected layer
      layerwise = await LayerwiseCalibration.start({
        inputs: mode === 'sequential' ? 'compressed' : 'original',
        ckpt,
        engine: eng,
        windows,
        info,
        out,
        shardFile: (l) => shardFileName(l, ckpt.config.numLayers),
        blockOf: (layers) =>
          rfidBlock({ ckpt, recipe, storage, runFingerprint: fingerprint, modelFingerprint: modelFp, factorDtype, calibration, statsSha256: '', layers, files: {}, sourceSha256: { layers: [], rest: '' } }),
        ...(recipeNeedsGrams(recipe) ? { grams: { scratch, weighting: recipe.gramWeighting, modelFingerprint: modelFp } } : {}),
      });
      const message =
        mode === 'sequential'
          ? `sequential: each layer's statistics over ${windows.length} sequence(s), on the outputs of the compressed layers before it`
          : `each layer's statistics and Gram matrices over ${windows.length} sequence(s) of the original model, collected as the layer is reached`;
      emit({ type: 'calibration', phase: 'start', source: calibration.source === 'dataset' ? 'dataset' : 'self-sampled', message });
    } else {
      const saved = state.state === 'resume' ? await loadRoutingStats(statsPath).catch(() => undefined) : undefined;
      if (saved) {
        stats = saved;
        if (!options.grams && recipeNeedsGrams(recipe)) gramsDir = path.join(out, GRAMS_WORK_DIR);
      } else {
        const resolved = await calibration.run();
        stats = resolved.stats;
        gramsDir = resolved.gramsDir;
        await writeRoutingStats(statsPath, stats);
      }
      checkStatsUnchanged(out, progress, statsHash(stats));
      progress.statsSha256 = statsHash(stats);
    }
    const engineDescription = eng.describe();

    // 3–4. allocate and factorise, one layer's shard at a time
    const clock = new EtaClock();
    const layerReports: LayerReport[] = [];
    const blocks: LayerBlock[] = [];
    const resumedLayers: number[] = [];
    const warnings: string[] = [...(stats?.warnings ?? [])];
    if (storage === 'dense') {
      emit({ type: 'warning', message: DENSE_SAVES_NOTHING });
      warnings.push(DENSE_SAVES_NOTHING);
    }
    const layerCounts = new Map<number, number[]>();
    const countsOf = (l: number) => (layerwise ? layerCounts.get(l) : stats?.layers.find((s) => s.layer === l)?.counts) ?? [];
    let rankBudgets: Map<string, number> | undefined;
    if (recipe.allocationScope === 'model') {
      if (!stats) throw new Error('internal: model-wide allocation without statistics (resolveCalibrationMode refuses sequential calibration for it)');
      if (options.rankBudgets !== undefined) rankBudgets = await loadRankBudgets(options.rankBudgets, runIdentity(ckpt, recipe, modelFp, stats));
      else {
        if (selection) emit({ type: 'warning', message: 'model-wide allocation in a part of a sharded run: this task computes the spectra of every layer; the two-phase flow (`spectraOut`, rfid-moe allocate, `rankBudgets`) does each layer once' });
        rankBudgets = await modelRankBudgets({ ckpt, recipe, engine: eng, countsOf, gramsDir, emit });
      }
    } else if (options.rankBudgets !== undefined) {
      throw new CompressError('`rankBudgets` are for model-wide allocation (recipe allocationScope "model"); this recipe allocates within each layer');
    }
    const layerWarnings = new Map<number, string[]>();
    const owned = selection ? new Set(selection.layers) : undefined;
    const toDo = (from: number) => (owned ? selection!.layers.filter((x) => x >= from).length : L - from);

    for (let l = 0; l < L; l++) {
      if (owned && !owned.has(l)) continue;
      const layout = ckpt.layout.layers[l];
      const file = shardFileName(l, L);
      const previous = progress.layers[String(l)];
      if (previous && kept.has(l)) {
        // layer by layer: run the finished layer again, for the next layer's inputs and its counts
        const replayed = await layerwise?.replay(l, layout.kind === 'moe' ? layerBlockFromReport(previous.report, []) : undefined);
        if (replayed) layerCounts.set(l, replayed);
        layerReports.push({ ...previous.report, seconds: 0 });
        if (layout.kind === 'moe') blocks.push(layerBlockFromReport(previous.report, countsOf(l)));
        resumedLayers.push(l);
        emit({ type: 'layer-done', layer: l, of: L, seconds: 0, etaSeconds: clock.eta(toDo(l + 1)), resumed: true });
        continue;
      }
      emit({ type: 'layer-start', layer: l, of: L, etaSeconds: clock.eta(toDo(l)) });
      const t0 = Date.now();
      const report: LayerReport = { layer: l, kind: layout.kind, seconds: 0, types: {} };
      // content hash of the layer's source (for --resume) and NaN/Inf check of all its tensors
      const sourceSha256 = await scanSourceTensors(store, shards[l]);
      let compressed: Parameters<typeof writeShard>[0]['compressed'] = [];
      let layerGrams = gramsDir;
      if (layerwise) {
        const observed = await layerwise.observe(l);
        if (observed.counts) layerCounts.set(l, observed.counts);
        layerGrams = observed.gramsDir;
      }
      let block: LayerBlock | undefined;
      if (layout.kind === 'moe') {
        const done = await factoriseLayer({ ckpt, layer: l, recipe, engine: eng, frequencies: countsOf(l), gramsDir: layerGrams, factorDtype, emit, ...(rankBudgets ? { rankBudgets } : {}) });
        block = done.block;
        compressed = done.compressed;
        assertFactorsFinite(l, compressed);
        report.types = done.types;
        blocks.push(done.block);
        warnings.push(...done.warnings);
        layerWarnings.set(l, done.warnings);
      }
      await writeShard({ file: path.join(out, file), tensors: shards[l], ckpt, store, engine: eng, storage, factorDtype, layer: layout, compressed });
      await layerwise?.advance(l, block);
      report.seconds = (Date.now() - t0) / 1000;
      clock.record(report.seconds);
      layerReports.push(report);
      progress.layers[String(l)] = { file, sha256: await sha256File(path.join(out, file)), sourceSha256, report };
      await writeProgress(out, progress);
      emit({ type: 'layer-done', layer: l, of: L, seconds: report.seconds, etaSeconds: clock.eta(toDo(l + 1)), resumed: false });
    }

    if (layerwise) {
      stats = layerwise.statistics();
      await writeRoutingStats(statsPath, stats);
      progress.statsSha256 = statsHash(stats);
      warnings.push(...stats.warnings);
      emit({ type: 'calibration', phase: 'done', source: calibration.source === 'dataset' ? 'dataset' : 'self-sampled', message: `${stats.calibration.tokens} tokens per layer, ${stats.warnings.length} warning(s)` });
    }
    if (!stats) throw new Error('internal: no routing statistics at the end of the run');
    const finalStats = stats;

    if (selection) {
      // a part of a sharded run: its manifest marks it complete; `merge` writes the rest
      const entries: PartLayerEntry[] = selection.layers.map((l) => {
        const done = progress.layers[String(l)];
        return { layer: l, file: done.file, sha256: done.sha256, sourceSha256: done.sourceSha256, report: done.report, block: blocks.find((b) => b.layer === l) ?? null, warnings: layerWarnings.get(l) ?? [] };
      });
      await writePartManifest(out, {
        format: 'rfid-moe.part',
        version: 1,
        tool: `rfid-moe ${TOOL_VERSION}`,
        runFingerprint: fingerprint,
        modelFingerprint: modelFp,
        recipeFingerprint: recipeFingerprint(recipe),
        recipe: JSON.parse(JSON.stringify(canonical(recipe))) as Record<string, unknown>,
        storage,
        modelDir: ckpt.dir,
        numLayers: L,
        statsSha256: statsHash(finalStats),
        grams: options.grams ? path.resolve(options.grams) : null,
        calibrationDescription: calibration.description,
        layers: selection.layers,
        selection: selection.key,
        entries,
      });
      await rm(path.join(out, PROGRESS_FILE), { force: true });
      emit({ type: 'finalize', message: `part complete: layers ${selection.key} in ${out}; assemble the parts with \`rfid-moe merge\`` });
      return partReport({ ckpt, out, storage, recipe, fingerprint, modelFp, engine: engineDescription, calibration, layerReports, resumedLayers, started, warnings, layers: selection.layers });
    }

    // 5–6. write the rest, verify, and last config.json
    return await finishOutput({
      ckpt,
      store,
      out,
      recipe,
      storage,
      engine: eng,
      engineNotice: lazy.notice(),
      factorDtype,
      calibration,
      stats: finalStats,
      runFingerprint: fingerprint,
      modelFingerprint: modelFp,
      blocks,
      layerReports,
      resumedLayers,
      warnings,
      started,
      evaluation: options.evaluation,
      removeGramsScratch: !options.grams,
      layerFiles: Array.from({ length: L }, (_, l) => progress.layers[String(l)]),
      emit,
    });
  } finally {
    await lock?.release();
    await store.close();
    if (typeof model === 'string') await ckpt.close();
    lazy.dispose();
  }
}

export { OutputDirError };

/** The layers a part owns, refused when the run cannot be split by layer. */
function partSelection(layers: NonNullable<CompressOptions['layers']>, numLayers: number, source: string): { layers: number[]; key: string } {
  if (source !== 'stats') {
    throw new CompressError(
      'a sharded compression (layers or shard) needs routing statistics made beforehand: run `rfid-moe calibrate` (it shards by samples too: rfid-moe calibrate with a shard, then merge-stats) and pass them as stats. Calibrating inside each part would repeat the work, and sequential calibration cannot be split by layer',
    );
  }
  const selected = selectedLayers(layers, numLayers);
  return { layers: selected, key: formatLayerList(selected) };
}

/** What a part run returns: its layers' reports; reductions cover only these layers. */
function partReport(a: {
  ckpt: Checkpoint;
  out: string;
  storage: 'factored' | 'dense';
  recipe: Recipe;
  fingerprint: string;
  modelFp: string;
  engine: string;
  calibration: { source: 'stats' | 'dataset' | 'self-sampled'; description: string };
  layerReports: LayerReport[];
  resumedLayers: number[];
  started: number;
  warnings: string[];
  layers: number[];
}): CompressionReport {
  const counts = parameterCounts(a.ckpt);
  const { compressedTypes, ...reductions } = reductionsOf(counts, a.layerReports);
  return {
    tool: `rfid-moe ${TOOL_VERSION}`,
    model: { dir: a.ckpt.dir, family: a.ckpt.config.family, modelType: a.ckpt.config.modelType, fingerprint: a.modelFp },
    out: a.out,
    storage: a.storage,
    recipe: JSON.parse(JSON.stringify(canonical(a.recipe))) as Record<string, unknown>,
    budgetGivenAs: a.recipe.budgetGivenAs,
    runFingerprint: a.fingerprint,
    engine: a.engine,
    calibration: { source: a.calibration.source, description: a.calibration.description },
    params: { original: counts, compressedTypes, reductions },
    layers: a.layerReports,
    resumedLayers: a.resumedLayers,
    seconds: (Date.now() - a.started) / 1000,
    warnings: a.warnings,
    part: { layers: a.layers, numLayers: a.ckpt.config.numLayers, manifest: path.join(a.out, PART_FILE) },
  };
}

/** The identity that spectra and rank-budget files carry. */
function runIdentity(ckpt: Checkpoint, recipe: Recipe, modelFp: string, stats: RoutingStats): AllocationIdentity {
  return {
    tool: `rfid-moe ${TOOL_VERSION}`,
    modelFingerprint: modelFp,
    recipeFingerprint: recipeFingerprint(recipe),
    statsSha256: statsHash(stats),
    moeLayers: ckpt.layout.layers.filter((l) => l.kind === 'moe').map((l) => l.index),
    recipe: JSON.parse(JSON.stringify(canonical(recipe))) as Record<string, unknown>,
  };
}

/** Phase 1 of model-wide allocation in a sharded run: the spectra of this task's layers, nothing else. */
async function writeSpectraOnly(a: {
  ckpt: Checkpoint;
  recipe: Recipe;
  options: CompressOptions;
  calibration: Awaited<ReturnType<typeof planCalibration>>;
  selection: { layers: number[]; key: string } | undefined;
  engine: Engine;
  modelFp: string;
  started: number;
  emit: ProgressListener;
}): Promise<CompressionReport> {
  const { ckpt, recipe } = a;
  if (recipe.allocationScope !== 'model') throw new CompressError('`spectraOut` is the first phase of model-wide allocation (recipe allocationScope "model"); this recipe allocates within each layer, so each task can compress its layers directly');
  if (a.calibration.source !== 'stats') throw new CompressError('`spectraOut` needs routing statistics made beforehand: pass `stats`');
  const { stats, gramsDir } = await a.calibration.run();
  const layers = a.selection?.layers ?? ckpt.layout.layers.map((l) => l.index);
  const countsOf = (l: number) => stats.layers.find((s) => s.layer === l)?.counts ?? [];
  const parts = await layerSpectra({ ckpt, recipe, engine: a.engine, countsOf, gramsDir, emit: a.emit, layers: new Set(layers) });
  const id = runIdentity(ckpt, recipe, a.modelFp, stats);
  const moe = layers.filter((l) => id.moeLayers.includes(l));
  await writeSpectraFile(path.resolve(a.options.spectraOut!), id, moe, parts);
  a.emit({ type: 'finalize', message: `spectra of layers ${formatLayerList(moe)} written to ${path.resolve(a.options.spectraOut!)}; when every task is done, run rfid-moe allocate over every task\'s spectra file` });
  const fingerprint = 'spectra-only';
  return partReport({ ckpt, out: path.resolve(a.options.spectraOut!), storage: a.options.storage ?? 'factored', recipe, fingerprint, modelFp: a.modelFp, engine: a.engine.describe(), calibration: a.calibration, layerReports: [], resumedLayers: [], started: a.started, warnings: [], layers: moe });
}
