/**
 * `merge(parts, { out })`: assemble the parts of a sharded compression run into the directory a
 * one-process run writes, byte for byte (the two reports aside, which hold wall times).
 *
 * Everything is checked before anything is written: every part is complete (its manifest exists),
 * all parts come from one run (same run fingerprint: model, recipe, statistics, format, tool
 * version), no layer is missing or owned twice, every layer shard still has its recorded sha256,
 * and the statistics files agree. The output is then built in a temp directory beside `out` and
 * renamed into place, so a refused or killed merge leaves nothing half-written at `out`.
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { openCheckpoint, openTensorSource } from '../../checkpoint/open.js';
import type { EngineChoice } from '../../engine/index.js';
import { lazyEngine } from '../../engine/lazy.js';
import type { Engine } from '../../engine/types.js';
import { modelFingerprint } from '../../routing-stats/fingerprint.js';
import { loadRoutingStats } from '../../routing-stats/schema.js';
import { TOOL_VERSION } from '../../version.js';
import { statsHash } from '../hashing.js';
import { CompressError, type EvaluationOptions } from '../options.js';
import type { LayerBlock } from '../output/block.js';
import { factorDtypeFor } from '../output/layer-shard.js';
import { PROGRESS_FILE, STATS_FILE } from '../output/names.js';
import type { ProgressListener } from '../progress.js';
import { parseRecipe, recipeFingerprint } from '../recipe.js';
import type { CompressionReport, LayerReport } from '../report.js';
import { readProgress, sha256File } from '../resume.js';
import { planCalibration } from '../stages/calibrate.js';
import { finishOutput } from '../stages/finish.js';
import { gatheredDtype } from '../stages/write.js';
import { formatLayerList } from './layers.js';
import { readPartManifest, type PartManifest } from './part.js';

export class MergeError extends CompressError {
  override readonly kind = 'MergeError';
}

export interface MergeOptions {
  out: string;
  /** the original model (default: the directory the parts record) */
  model?: string;
  engine?: Engine | EngineChoice;
  threads?: number;
  /** the KL / top-1 check of a one-process run (default 16 held-out sequences; false skips it) */
  evaluation?: EvaluationOptions | false;
  onProgress?: ProgressListener;
}

/** Marks a temp directory as a merge's own, so a later merge may remove it after a kill. */
const MERGE_MARKER = '.rfid-moe-merge';

interface LoadedPart {
  dir: string;
  manifest: PartManifest;
}

async function loadPart(dir: string): Promise<LoadedPart> {
  const abs = path.resolve(dir);
  let entries: string[];
  try {
    entries = await readdir(abs);
  } catch (err) {
    throw new MergeError(`part ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the output directories of the shard tasks`);
  }
  const manifest = await readPartManifest(abs, (why) => new MergeError(`part ${dir}: ${why}; rerun that shard into an empty directory`));
  if (!manifest) {
    if (entries.includes(PROGRESS_FILE)) {
      const progress = await readProgress(abs).catch(() => undefined);
      const done = progress ? Object.keys(progress.layers).length : 0;
      throw new MergeError(`part ${dir} is unfinished (${done} layer(s) done${progress?.selection ? ` of layers ${progress.selection}` : ''}): rerun its shard task with \`resume\`, then merge`);
    }
    if (entries.includes('config.json')) throw new MergeError(`${dir} is a complete compressed model, not a part of a sharded run: there is nothing to merge`);
    throw new MergeError(`${dir} is not a part of a sharded run (no ${'rfid-moe-part.json'}); give the \`out\` directories of the sharded \`rfid-moe compress\` tasks`);
  }
  return { dir: abs, manifest };
}

/** Refuses parts that come from different runs, naming what differs. */
function checkSameRun(parts: LoadedPart[]): void {
  const first = parts[0];
  const fields: Array<[keyof PartManifest, string]> = [
    ['tool', 'tool version'],
    ['modelFingerprint', 'model'],
    ['recipeFingerprint', 'recipe'],
    ['statsSha256', 'routing statistics'],
    ['storage', 'output format'],
    ['numLayers', 'number of layers'],
    ['runFingerprint', 'run settings (the engine or its settings, e.g. threads or OpenBLAS kernels, which change the bytes of the factors)'],
  ];
  for (const part of parts.slice(1)) {
    for (const [field, what] of fields) {
      if (part.manifest[field] !== first.manifest[field]) {
        throw new MergeError(
          `parts ${first.dir} and ${part.dir} come from different runs: their ${what} differ (${String(first.manifest[field]).slice(0, 24)} vs ${String(part.manifest[field]).slice(0, 24)}); every shard task must use the same model, recipe, statistics and format`,
        );
      }
    }
  }
}

/** Every layer owned exactly once. */
function checkCoverage(parts: LoadedPart[]): Map<number, LoadedPart> {
  const L = parts[0].manifest.numLayers;
  const owner = new Map<number, LoadedPart>();
  for (const part of parts) {
    for (const l of part.manifest.layers) {
      const previous = owner.get(l);
      if (previous) throw new MergeError(`layer ${l} is in two parts (${previous.dir} and ${part.dir}); give each layer's part once`);
      owner.set(l, part);
    }
  }
  const missing = Array.from({ length: L }, (_, l) => l).filter((l) => !owner.has(l));
  if (missing.length > 0) {
    throw new MergeError(`layers ${formatLayerList(missing)} are in no part (the model has layers 0-${L - 1}); run the shard tasks that own them, then merge all parts`);
  }
  return owner;
}

async function checkShards(parts: LoadedPart[], emit: ProgressListener): Promise<void> {
  for (const part of parts) {
    for (const entry of part.manifest.entries) {
      let actual: string;
      try {
        actual = await sha256File(path.join(part.dir, entry.file));
      } catch {
        throw new MergeError(`part ${part.dir} lacks ${entry.file} (layer ${entry.layer}); rerun that shard task into an empty directory`);
      }
      if (actual !== entry.sha256) {
        throw new MergeError(`part ${part.dir}: ${entry.file} (layer ${entry.layer}) does not have the content its manifest records (sha256 ${actual.slice(0, 12)}… vs ${entry.sha256.slice(0, 12)}…): it was modified or truncated; rerun that shard task into an empty directory`);
      }
    }
    emit({ type: 'finalize', message: `verified ${part.manifest.entries.length} layer shard(s) of ${part.dir}` });
  }
  const statsHashes = await Promise.all(parts.map((p) => sha256File(path.join(p.dir, STATS_FILE)).catch(() => undefined)));
  statsHashes.forEach((h, i) => {
    if (h === undefined) throw new MergeError(`part ${parts[i].dir} lacks ${STATS_FILE}; rerun that shard task into an empty directory`);
    if (h !== statsHashes[0]) throw new MergeError(`parts ${parts[0].dir} and ${parts[i].dir} hold different ${STATS_FILE} files; every shard task must use the same \`stats\``);
  });
}

/** The output directory must be new or empty (a complete merge of the same run is left alone). */
async function checkOut(out: string, partDirs: string[]): Promise<void> {
  if (partDirs.includes(out)) throw new MergeError(`\`out\` ${out} is one of the parts; merge into a new directory`);
  let entries: string[];
  try {
    if (!(await stat(out)).isDirectory()) throw new MergeError(`\`out\` ${out} exists and is not a directory; choose a new directory`);
    entries = await readdir(out);
  } catch (err) {
    if (err instanceof MergeError) throw err;
    return;
  }
  if (entries.length === 0) return;
  throw new MergeError(`\`out\` ${out} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); merge into a new or empty directory`);
}

/** Copies a file, as a copy-on-write clone where the filesystem supports it. */
async function copyShard(from: string, to: string): Promise<void> {
  await copyFile(from, to, constants.COPYFILE_FICLONE);
}

export async function merge(partDirs: string[], options: MergeOptions): Promise<CompressionReport> {
  const started = Date.now();
  const emit: ProgressListener = options.onProgress ?? (() => undefined);
  if (partDirs.length === 0) throw new MergeError('give the output directories of the shard tasks to merge');
  const parts: LoadedPart[] = [];
  for (const dir of partDirs) parts.push(await loadPart(dir));
  checkSameRun(parts);
  const owner = checkCoverage(parts);
  const manifest = parts[0].manifest;
  if (manifest.tool !== `rfid-moe ${TOOL_VERSION}`) {
    throw new MergeError(`the parts were made by ${manifest.tool}, this is rfid-moe ${TOOL_VERSION}; merge with the version that made them`);
  }
  const out = path.resolve(options.out);
  await checkOut(out, parts.map((p) => p.dir));
  await checkShards(parts, emit);

  const ckpt = await openCheckpoint(options.model ?? manifest.modelDir);
  const lazy = lazyEngine(options.engine, options.threads);
  const engine = lazy.get;
  const temp = path.join(path.dirname(out), `.${path.basename(out)}.rfid-moe-merge.tmp`);
  const store = await openTensorSource(ckpt.dir);
  try {
    const modelFp = modelFingerprint(ckpt);
    if (modelFp !== manifest.modelFingerprint) {
      throw new MergeError(`the model at ${ckpt.dir} is not the one the parts were made from (fingerprint ${modelFp.slice(0, 19)}… vs ${manifest.modelFingerprint.slice(0, 19)}…); pass the original model as \`model\``);
    }
    const recipe = parseRecipe(manifest.recipe);
    if (recipeFingerprint(recipe) !== manifest.recipeFingerprint) throw new MergeError('the recipe recorded in the parts does not reproduce its fingerprint; the part manifests were edited');

    const partStats = path.join(parts[0].dir, STATS_FILE);
    const stats = await loadRoutingStats(partStats);
    if (statsHash(stats) !== manifest.statsSha256) throw new MergeError(`${partStats} is not the statistics file the parts were compressed with (it was modified); rerun the shard tasks`);
    const planned = await planCalibration(ckpt, engine, { out, stats: partStats, ...(manifest.grams ? { grams: manifest.grams } : {}), recipeWhitens: recipe.whiten !== false }, modelFp, emit);
    // the description names the statistics file as the shard tasks were given it
    const calibration = { ...planned, description: manifest.calibrationDescription };
    // the run fingerprint also covers the engine the parts ran on, which the merge need not share;
    // its other inputs (model, recipe, statistics) were checked above
    const fingerprint = manifest.runFingerprint;
    const eng = await engine();

    // a temp directory left by a killed merge of ours is removed; anything else there is refused
    try {
      const left = await readdir(temp);
      if (!left.includes(MERGE_MARKER)) throw new MergeError(`${temp} exists and was not made by rfid-moe merge; remove it or choose another \`out\``);
      await rm(temp, { recursive: true, force: true });
    } catch (err) {
      if (err instanceof MergeError) throw err;
    }
    await mkdir(temp, { recursive: true });
    await writeFile(path.join(temp, MERGE_MARKER), `${process.pid}\n`);
    try {
      const L = manifest.numLayers;
      const layerReports: LayerReport[] = [];
      const blocks: LayerBlock[] = [];
      const warnings: string[] = [];
      for (let l = 0; l < L; l++) {
        const part = owner.get(l)!;
        const entry = part.manifest.entries.find((e) => e.layer === l);
        if (!entry) throw new MergeError(`part ${part.dir} owns layer ${l} but its manifest has no entry for it; rerun that shard task into an empty directory`);
        await copyShard(path.join(part.dir, entry.file), path.join(temp, entry.file));
        layerReports.push(entry.report);
        if (entry.block) blocks.push(entry.block);
        warnings.push(...entry.warnings);
        emit({ type: 'layer-done', layer: l, of: L, seconds: 0, etaSeconds: null, resumed: true });
      }
      await copyShard(partStats, path.join(temp, STATS_FILE));
      const report = await finishOutput({
        ckpt,
        store,
        out: temp,
        recipe,
        storage: manifest.storage,
        engine: eng,
        engineNotice: lazy.notice(),
        factorDtype: factorDtypeFor(gatheredDtype(ckpt, recipe)),
        calibration,
        stats,
        runFingerprint: fingerprint,
        modelFingerprint: modelFp,
        blocks,
        layerReports,
        resumedLayers: [],
        warnings: [...stats.warnings, ...warnings],
        started,
        evaluation: options.evaluation,
        removeGramsScratch: false,
      layerFiles: Array.from({ length: L }, (_, l) => owner.get(l)!.manifest.entries.find((e) => e.layer === l)),
        reportOut: out,
        emit,
      });
      await rm(path.join(temp, MERGE_MARKER), { force: true });
      await rmdir(out).catch(() => undefined); // an empty directory the user made for the output
      await rename(temp, out);
      emit({ type: 'finalize', message: `merged ${parts.length} part(s) into ${out}` });
      return report;
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  } finally {
    await store.close();
    await ckpt.close();
    lazy.dispose();
  }
}

/** Reads the manifests of parts without merging (for inspect-style listings). */
export async function describeParts(partDirs: string[]): Promise<PartManifest[]> {
  return Promise.all(partDirs.map(async (d) => (await loadPart(d)).manifest));
}
