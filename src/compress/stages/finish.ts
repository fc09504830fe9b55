/**
 * The end of a run, once every decoder layer's shard exists: the shard of the non-layer tensors,
 * the index, the tokenizer files, the fidelity check (verify), the reports, and last config.json
 * with its `rfid_moe` block, whose presence marks the directory complete. Shared by `compress()`
 * and by `merge`, which assembles the same directory from the parts of a sharded run, so that both
 * write the same bytes.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parameterCounts } from '../../checkpoint/counts.js';
import { unrunnableReason } from '../../checkpoint/runnable.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { Engine } from '../../engine/types.js';
import { writeFileAtomic } from '../../io/atomic.js';
import type { TensorSource } from '../../io/sharded.js';
import type { RoutingStats } from '../../routing-stats/schema.js';
import { TOOL_VERSION } from '../../version.js';
import { statsHash } from '../hashing.js';
import type { EvaluationOptions } from '../options.js';
import type { LayerBlock } from '../output/block.js';
import { writeShard } from '../output/layer-shard.js';
import { outputConfigText, sourceConfigText } from '../output/config-json.js';
import { CONFIG_FILE, PROGRESS_FILE, REPORT_JSON, REPORT_MD, shardFileName } from '../output/names.js';
import type { ProgressListener } from '../progress.js';
import type { Recipe } from '../recipe.js';
import { reductionsOf, reportToMarkdown, type CompressionReport, type Fidelity, type LayerReport } from '../report.js';
import { GRAMS_WORK_DIR, type CalibrationPlan } from './calibrate.js';
import { measureFidelity } from './verify.js';
import { outputFileHashes } from '../integrity.js';
import { scanSourceTensors } from '../source-scan.js';
import { copyModelFiles, rfidBlock, tensorsByShard, writeIndex } from './write.js';

export interface FinishArgs {
  ckpt: Checkpoint;
  store: TensorSource;
  out: string;
  recipe: Recipe;
  storage: 'factored' | 'dense';
  engine: Engine;
  engineNotice: string;
  factorDtype: 'F16' | 'BF16' | 'F32';
  calibration: CalibrationPlan;
  stats: RoutingStats;
  runFingerprint: string;
  modelFingerprint: string;
  /** MoE layers' block entries and every layer's report, in layer order */
  blocks: LayerBlock[];
  layerReports: LayerReport[];
  resumedLayers: number[];
  warnings: string[];
  started: number;
  evaluation: EvaluationOptions | false | undefined;
  /** remove the Gram matrices this run collected in its scratch directory */
  removeGramsScratch: boolean;
  /** every decoder layer's shard: file name, its sha256, and the sha256 of its source weights */
  layerFiles: ReadonlyArray<{ file: string; sha256: string; sourceSha256: string } | undefined>;
  /** the directory the report names, when the files are written elsewhere first (merge) */
  reportOut?: string;
  emit: ProgressListener;
}

export async function finishOutput(a: FinishArgs): Promise<CompressionReport> {
  const { ckpt, out, emit, recipe, storage } = a;
  const warnings = [...a.warnings];
  emit({ type: 'finalize', message: 'embeddings, index, tokenizer files' });
  const L = ckpt.config.numLayers;
  const lastShard = shardFileName(L, L);
  const restTensors = tensorsByShard(ckpt)[L];
  // content hash of the non-layer source tensors (and their NaN/Inf check) before writing them
  const restSha256 = await scanSourceTensors(a.store, restTensors);
  await writeShard({ file: path.join(out, lastShard), tensors: restTensors, ckpt, store: a.store, engine: a.engine, storage, factorDtype: a.factorDtype, compressed: [] });
  await writeIndex(out, Array.from({ length: L + 1 }, (_, i) => shardFileName(i, L)));
  await copyModelFiles(ckpt.dir, out);
  const files = await outputFileHashes(out, a.layerFiles, L, lastShard);
  const sourceSha256 = {
    layers: Array.from({ length: L }, (_, l) => {
      const entry = a.layerFiles[l];
      if (!entry) throw new Error(`internal: layer ${l} has no shard at the end of the run`);
      return entry.sourceSha256;
    }),
    rest: restSha256,
  };
  const block = rfidBlock({
    ckpt,
    recipe,
    storage,
    runFingerprint: a.runFingerprint,
    modelFingerprint: a.modelFingerprint,
    factorDtype: a.factorDtype,
    calibration: a.calibration,
    statsSha256: statsHash(a.stats),
    layers: a.blocks,
    files,
    sourceSha256,
  });
  // config.json keeps the source's text (every value with its lexical type) plus the block
  const configText = outputConfigText(await sourceConfigText(ckpt.dir, ckpt.config.multimodalWrapper?.raw ?? ckpt.config.raw), block);
  const config = JSON.parse(configText) as Record<string, unknown>;

  // verify
  let fidelity: Fidelity | undefined;
  const evalOpts = a.evaluation === false ? { sequences: 0 } : (a.evaluation ?? {});
  if ((evalOpts.sequences ?? 16) > 0) {
    const unrunnable = unrunnableReason(ckpt.config);
    if (unrunnable !== null) {
      warnings.push(`fidelity not measured: ${unrunnable}`);
    } else {
      fidelity = await measureFidelity(ckpt, out, config, a.engine, a.calibration, evalOpts.sequences ?? 16, emit);
    }
  }

  const counts = parameterCounts(ckpt);
  const { compressedTypes, ...reductions } = reductionsOf(counts, a.layerReports);
  const report: CompressionReport = {
    tool: `rfid-moe ${TOOL_VERSION}`,
    model: { dir: ckpt.dir, family: ckpt.config.family, modelType: ckpt.config.modelType, fingerprint: a.modelFingerprint },
    out: a.reportOut ?? out,
    storage,
    recipe: block.recipe,
    budgetGivenAs: recipe.budgetGivenAs,
    runFingerprint: a.runFingerprint,
    engine: a.engine.describe(),
    calibration: { source: a.calibration.source, description: a.calibration.description },
    params: { original: counts, compressedTypes, reductions },
    layers: a.layerReports,
    resumedLayers: a.resumedLayers,
    seconds: (Date.now() - a.started) / 1000,
    ...(fidelity ? { fidelity } : {}),
    warnings,
  };
  await writeFileAtomic(path.join(out, REPORT_JSON), JSON.stringify(report, null, 1) + '\n');
  await writeFileAtomic(path.join(out, REPORT_MD), reportToMarkdown(report));
  // last: config.json makes the directory complete; then the run's scratch state goes
  await writeFileAtomic(path.join(out, CONFIG_FILE), configText);
  await rm(path.join(out, PROGRESS_FILE), { force: true });
  if (a.removeGramsScratch) await rm(path.join(out, GRAMS_WORK_DIR), { recursive: true, force: true });
  emit({ type: 'finalize', message: `complete: ${out}${a.engineNotice ? ` (${a.engineNotice})` : ''}` });
  return report;
}
