/**
 * What keeps a compression run from writing something silently wrong:
 *
 * - factors are checked for NaN/Inf before their shard is written (a degenerate SVD or a Gram
 *   matrix with Inf would otherwise be stored as a model);
 * - a resumed run keeps a finished layer only when its shard still has the recorded sha256, and
 *   refuses outright when the layer's source weights, or the routing statistics, are not those
 *   the interrupted run used — before it writes anything, so one output never mixes two models;
 * - the finished output records the sha256 of every file (verified by loadCompressed, eval,
 *   inspect --verify) and of the source weights of every shard, so `compress --resume` on a
 *   complete directory checks both instead of answering "nothing to do" for a damaged output
 *   or another model's weights.
 */
import { assertFinite, NonFiniteError } from '../checkpoint/finite.js';
import { hashFiles, verifyOutputFiles, type VerifyOptions } from '../compressed/verify.js';
import type { TensorSource } from '../io/sharded.js';
import type { RfidBlock } from './output/block.js';
import type { CompressedTypeData } from './output/layer-shard.js';
import { modelFilesToCopy } from './output/model-files.js';
import { INDEX_FILE, STATS_FILE } from './output/names.js';
import { finishedLayerIntact, OutputDirError, type ProgressFile } from './resume.js';
import { scanSourceTensors } from './source-scan.js';

const FACTOR_FIX = 'the compression produced non-finite factors; nothing was written for this layer. Check the calibration statistics (\`grams\`) and report this with the recipe';

/** Refuses NaN/Inf in any basis, coefficient or residual vector of one layer. */
export function assertFactorsFinite(layer: number, compressed: readonly CompressedTypeData[]): void {
  for (const c of compressed) {
    c.groups.forEach((g, gi) => {
      assertFinite(g.basis, `layer ${layer} ${c.type}: basis of group ${gi}`, FACTOR_FIX);
      g.coefficients.forEach((a, j) => assertFinite(a, `layer ${layer} ${c.type}: coefficients of expert ${g.experts[j]}`, FACTOR_FIX));
      if (g.base) assertFinite(g.base, `layer ${layer} ${c.type}: base of group ${gi}`, FACTOR_FIX);
      g.expertBases?.forEach((b, j) => assertFinite(b, `layer ${layer} ${c.type}: basis of expert ${g.experts[j]}`, FACTOR_FIX));
      g.residual?.vectors.forEach((v, j) => assertFinite(v, `layer ${layer} ${c.type}: residual vector of expert ${g.experts[j]}`, FACTOR_FIX));
    });
  }
}

const changedSource = (out: string, what: string) =>
  new OutputDirError(
    `\`out\` ${out}: the source weights of ${what} are not those this directory's layers were made from (same shapes, different values: another checkpoint, or a modified one); resuming would mix two models in one output. Compress into an empty directory, or resume with the original weights`,
  );

/** Refuses statistics that differ from those the finished layers were compressed with. */
export function checkStatsUnchanged(out: string, progress: ProgressFile, statsSha256: string): void {
  if (progress.statsSha256 !== null && Object.keys(progress.layers).length > 0 && progress.statsSha256 !== statsSha256) {
    throw new OutputDirError(
      `\`out\` ${out}: the routing statistics (${STATS_FILE}) differ from those the finished layers were compressed with; resuming would mix two calibrations. Restore the file, or compress into an empty directory`,
    );
  }
}

/**
 * The finished layers of an interrupted run that may be kept: their shard has the recorded
 * sha256 (else the layer is redone), and their source weights hash as recorded (else the run is
 * refused). Reads each kept layer's source once; runs before anything is written.
 */
export async function keptLayers(args: { out: string; progress: ProgressFile; store: TensorSource; shards: string[][]; shardFile: (l: number) => string }): Promise<Set<number>> {
  const kept = new Set<number>();
  for (const [key, entry] of Object.entries(args.progress.layers)) {
    const l = Number(key);
    if (!Number.isInteger(l) || l < 0 || l >= args.shards.length - 1 || entry.file !== args.shardFile(l)) continue;
    if ((await scanSourceTensors(args.store, args.shards[l])) !== entry.sourceSha256) throw changedSource(args.out, `layer ${l}`);
    if (await finishedLayerIntact(args.out, entry)) kept.add(l);
  }
  return kept;
}

/** sha256 of every file of the finished output that the model is made of. */
export async function outputFileHashes(out: string, layerFiles: ReadonlyArray<{ file: string; sha256: string } | undefined>, numLayers: number, lastShard: string, opts: VerifyOptions = {}): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (let l = 0; l < numLayers; l++) {
    const entry = layerFiles[l];
    if (!entry) throw new Error(`internal: layer ${l} has no progress entry at the end of the run`);
    files[entry.file] = entry.sha256;
  }
  const others = [lastShard, INDEX_FILE, STATS_FILE, ...(await modelFilesToCopy(out))];
  Object.assign(files, await hashFiles(out, others, opts));
  return Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * `compress --resume` on a complete directory of this same run: every recorded file still has
 * its sha256, and the model's weights still hash as they did (one read of the source).
 */
export async function checkCompleteOutput(args: { out: string; block: RfidBlock; store: TensorSource; shards: string[][]; verify?: VerifyOptions }): Promise<void> {
  await verifyOutputFiles(args.out, args.block.files, args.verify);
  const { layers, rest } = args.block.sourceSha256;
  for (let l = 0; l < args.shards.length - 1; l++) {
    if ((await scanSourceTensors(args.store, args.shards[l])) !== layers[l]) throw changedSource(args.out, `layer ${l}`);
  }
  if ((await scanSourceTensors(args.store, args.shards[args.shards.length - 1])) !== rest) throw changedSource(args.out, 'the embeddings, final norm and output head');
}

export { NonFiniteError };
