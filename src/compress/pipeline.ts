/**
 * `compress(model, recipe, options)`: the whole run, layer by layer, as a sequence of stages
 * (one file each under stages/):
 *
 *  1. plan       refuse bad input before any work (recipe against every MoE layer, options,
 *                statistics of another model, an output directory of another run);
 *  2. calibrate  routing statistics from a stats file, a dataset, or sequences sampled from the
 *                model itself; saved in the output directory so a resumed run does not redo them;
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
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parameterCounts } from '../checkpoint/counts.js';
import { openCheckpoint } from '../checkpoint/open.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { createEngine, type EngineChoice } from '../engine/index.js';
import type { Engine } from '../engine/types.js';
import { writeFileAtomic } from '../io/atomic.js';
import { TensorStore } from '../io/sharded.js';
import { modelFingerprint } from '../routing-stats/fingerprint.js';
import { loadRoutingStats, writeRoutingStats, type RoutingStats } from '../routing-stats/schema.js';
import { TOOL_VERSION } from '../version.js';
import { statsHash } from './hashing.js';
import { CompressError, type CompressOptions } from './options.js';
import type { LayerBlock } from './output/block.js';
import { factorDtypeFor, writeShard } from './output/layer-shard.js';
import { CONFIG_BLOCK_KEY, CONFIG_FILE, PROGRESS_FILE, REPORT_JSON, REPORT_MD, STATS_FILE, shardFileName } from './output/names.js';
import { EtaClock, type ProgressListener } from './progress.js';
import { parseRecipe, recipeFingerprint, recipeNeedsGrams, type Recipe, type RecipeInput } from './recipe.js';
import { reductionsOf, reportToMarkdown, type CompressionReport, type Fidelity, type LayerReport } from './report.js';
import { finishedLayerIntact, inspectOutputDir, newProgress, OutputDirError, runFingerprint, sha256File, writeProgress, type ProgressFile } from './resume.js';
import { GRAMS_WORK_DIR, planCalibration } from './stages/calibrate.js';
import { modelRankBudgets } from './stages/allocate-model.js';
import { factoriseLayer, layerBlockFromReport } from './stages/factorise.js';
import { validateBeforeWork } from './stages/plan.js';
import { measureFidelity } from './stages/verify.js';
import { copyModelFiles, gatheredDtype, removeStrayTempFiles, rfidBlock, tensorsByShard, writeIndex } from './stages/write.js';

export { CompressError, type CompressOptions, type DatasetCalibration, type SelfSampledCalibration, type EvaluationOptions } from './options.js';

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
    // 1. plan
    validateBeforeWork(ckpt, recipe, storage, options);
    const modelFp = modelFingerprint(ckpt);
    const opts = { ...options, recipeWhitens: recipeNeedsGrams(recipe), gramWeighting: recipe.gramWeighting };
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

    // 2. calibrate: reuse the statistics saved by the interrupted run, else resolve and save them
    const statsPath = path.join(out, STATS_FILE);
    let stats: RoutingStats;
    let gramsDir: string | undefined = options.grams;
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
    const eng = await engine();
    const engineDescription = eng.describe();

    // 3–4. allocate and factorise, one layer's shard at a time
    const shards = tensorsByShard(ckpt);
    const L = ckpt.config.numLayers;
    const factorDtype = factorDtypeFor(gatheredDtype(ckpt, recipe));
    const clock = new EtaClock();
    const layerReports: LayerReport[] = [];
    const blocks: LayerBlock[] = [];
    const resumedLayers: number[] = [];
    const warnings: string[] = [...stats.warnings];
    const countsOf = (l: number) => stats.layers.find((s) => s.layer === l)?.counts ?? [];
    const rankBudgets = recipe.allocationScope === 'model' ? await modelRankBudgets({ ckpt, recipe, engine: eng, countsOf, gramsDir, emit }) : undefined;

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
      const report: LayerReport = { layer: l, kind: layout.kind, seconds: 0, types: {} };
      let compressed: Parameters<typeof writeShard>[0]['compressed'] = [];
      if (layout.kind === 'moe') {
        const done = await factoriseLayer({ ckpt, layer: l, recipe, engine: eng, frequencies: countsOf(l), gramsDir, factorDtype, emit, ...(rankBudgets ? { rankBudgets } : {}) });
        compressed = done.compressed;
        report.types = done.types;
        blocks.push(done.block);
        warnings.push(...done.warnings);
      }
      await writeShard({ file: path.join(out, file), tensors: shards[l], ckpt, store, engine: eng, storage, factorDtype, layer: layout, compressed });
      report.seconds = (Date.now() - t0) / 1000;
      clock.record(report.seconds);
      layerReports.push(report);
      progress.layers[String(l)] = { file, sha256: await sha256File(path.join(out, file)), report };
      await writeProgress(out, progress);
      emit({ type: 'layer-done', layer: l, of: L, seconds: report.seconds, etaSeconds: clock.eta(L - l - 1), resumed: false });
    }

    // 5. write the rest (config.json comes last, after verify and the reports)
    emit({ type: 'finalize', message: 'embeddings, index, tokenizer files' });
    const lastFile = shardFileName(L, L);
    await writeShard({ file: path.join(out, lastFile), tensors: shards[L], ckpt, store, engine: eng, storage, factorDtype, compressed: [] });
    await writeIndex(out, Array.from({ length: L + 1 }, (_, i) => shardFileName(i, L)));
    await copyModelFiles(ckpt.dir, out);
    const block = rfidBlock({ ckpt, recipe, storage, runFingerprint: fingerprint, modelFingerprint: modelFp, factorDtype, calibration, statsSha256: statsHash(stats), layers: blocks });
    const config = { ...ckpt.config.raw, [CONFIG_BLOCK_KEY]: block };

    // 6. verify
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

export { OutputDirError };
