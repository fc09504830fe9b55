/**
 * Stage 2, calibrate: routing statistics (and, when the recipe whitens, per-expert Gram matrices)
 * from a statistics file, from a dataset, or — with neither — from sequences sampled from the model
 * itself (seeded). Also the held-out data of the fidelity check that ends the run.
 */
import path from 'node:path';
import { parameterCounts } from '../../checkpoint/counts.js';
import { unrunnableReason } from '../../checkpoint/runnable.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { Engine } from '../../engine/types.js';
import { collectRoutingStats, type CalibrationInfo } from '../../routing-stats/collect.js';
import { GramDirectorySink, type GramWeighting } from '../../routing-stats/gram.js';
import { checkRoomForGrams, gramBytes } from '../../routing-stats/gram-room.js';
import { loadRoutingStats, RoutingStatsError, validateRoutingStats, type RoutingStats } from '../../routing-stats/schema.js';
import { assertRunnable, CheckpointWeights } from '../../runtime/checkpoint-weights.js';
import { residentIfFits } from '../../runtime/resident-weights.js';
import { manyRowsWeights } from '../../runtime/model-source.js';
import { defaultCalibrationSeqLen } from '../../eval/seq-len.js';
import { tokenizeDataset } from '../../tokens/prepare.js';
import { calibrationWindows, evaluationWindows } from '../../tokens/windows.js';
import { sampleSequences, type SampleOptions } from '../../runtime/generation/sample-sequences.js';
import { sha256, statsHash } from '../hashing.js';
import { CompressError, type CompressOptions } from '../options.js';
import { recipeNeedsGrams, type Recipe } from '../recipe.js';
import type { ProgressListener } from '../progress.js';
import { checkStatsMatchModel } from './plan.js';

export type CalibrationSource = 'stats' | 'dataset' | 'self-sampled';

export interface CalibrationPlan {
  source: CalibrationSource;
  key: string;
  description: string;
  /** resolves the statistics (and grams dir) once the output directory is claimed */
  run(): Promise<{ stats: RoutingStats; gramsDir?: string }>;
  /**
   * The calibration windows themselves, for a run that calibrates itself (dataset, self-sampled):
   * layer-by-layer calibration (layerwise-calibration.ts) carries them from layer to layer as it goes.
   */
  windows?(): Promise<CalibrationWindows>;
  /** held-out sequences for the fidelity check */
  heldOut(count: number): Promise<{ sequences: Int32Array[]; on: string } | undefined>;
}

export interface CalibrationWindows {
  windows: Int32Array[];
  info: CalibrationInfo;
}

/**
 * Where a run that calibrates itself takes layer l's statistics from:
 *  'sequential'  the inputs produced by the already-compressed layers 0..l−1 (GPTQ-style), so each
 *                layer is fitted to the activations it will see in the compressed model;
 *  'original'    the original model's activations: every layer in one pass before any compression,
 *                or layer by layer as each is reached (calibratesLayerByLayer), to the same numbers.
 * Statistics given as `stats` are always the original model's.
 */
export type CalibrationMode = 'sequential' | 'original';
export const CALIBRATION_MODES: readonly CalibrationMode[] = ['sequential', 'original'];
/**
 * The default of the library and the CLI (docs/method.md): chosen by measurement. On the shipped
 * models sequential calibration lost to the original activations on Mixtral (all 8 KL comparisons,
 * by 0.5–2.6%) and tied on qwen3 (4 of 8); see docs/evidence.md.
 */
export const DEFAULT_CALIBRATION_MODE: CalibrationMode = 'original';

/**
 * The mode this run uses, or a refusal: sequential calibration needs the run to calibrate itself,
 * and cannot serve a model-wide allocation (every layer's spectra before any layer is factorised).
 * Left to the default, every run calibrates on the original activations.
 */
export function resolveCalibrationMode(recipe: Pick<Recipe, 'allocationScope'>, opts: CompressOptions): CalibrationMode {
  const asked = opts.calibration;
  if (asked !== undefined && !CALIBRATION_MODES.includes(asked)) throw new CompressError(`\`calibration\` must be ${CALIBRATION_MODES.join(' or ')}, got ${String(asked)}`);
  if (opts.grams !== undefined) {
    if (asked === 'sequential') {
      throw new CompressError('`grams` are Gram matrices collected on the original model\'s activations, but sequential calibration collects each layer\'s own on the outputs of the compressed layers before it: leave `grams` out, or use `calibration` "original"');
    }
    return 'original';
  }
  if (opts.stats !== undefined) {
    if (asked === 'sequential') {
      throw new CompressError('sequential calibration collects each layer\'s statistics on the outputs of the already-compressed layers, so the run must calibrate itself: pass `dataset` instead of `stats` (statistics from a file are the original model\'s; use `calibration` "original" or leave it out)');
    }
    return 'original';
  }
  if (recipe.allocationScope === 'model') {
    if (asked === 'sequential') {
      throw new CompressError('allocationScope "model" needs the spectra of every layer before any layer is factorised, but sequential calibration only knows layer l\'s statistics once layers 0..l−1 are compressed: use `calibration` "original", or allocationScope "layer"');
    }
    return 'original';
  }
  return asked ?? DEFAULT_CALIBRATION_MODE;
}

/**
 * Whether a run collects each layer's statistics just before factorising it (layerwise-calibration.ts)
 * rather than every layer's in one pass first. Sequential calibration always does: its inputs exist
 * only then. On the original activations a run that calibrates itself does when it collects Gram
 * matrices and allocates within each layer: the statistics are the same bit for bit, and the disk
 * holds one layer's Gram matrices instead of every layer's. The one pass stays where nothing is
 * gained (no Gram matrices: the counts are a few numbers an expert) or where it is needed: a
 * model-wide allocation wants every layer's spectra before any layer is factorised.
 */
export function calibratesLayerByLayer(recipe: Pick<Recipe, 'allocationScope' | 'whiten' | 'refit'>, opts: CompressOptions, mode: CalibrationMode): boolean {
  if (opts.stats !== undefined || opts.grams !== undefined) return false;
  if (mode === 'sequential') return true;
  return recipeNeedsGrams(recipe) && recipe.allocationScope === 'layer';
}

/** Scratch directory (inside the output) for Gram matrices collected by this run. */
export const GRAMS_WORK_DIR = '.rfid-moe-grams';

/**
 * Weights for token-by-token sampling: every step runs the whole model again, so a model that fits
 * in memory is kept resident instead of being re-read and re-decoded from disk at each step. A step
 * has one row a sequence (the sample count), held as a prompt's many rows are (manyRowsWeights).
 */
async function sampleFromModel(ckpt: Checkpoint, engine: Engine, opts: SampleOptions): Promise<Int32Array[]> {
  const weights = residentIfFits(new CheckpointWeights(ckpt, manyRowsWeights(engine)), parameterCounts(ckpt).total);
  return sampleSequences(weights, engine, opts);
}

export async function planCalibration(
  ckpt: Checkpoint,
  engine: () => Promise<Engine>,
  opts: CompressOptions & { recipeWhitens: boolean; gramWeighting?: GramWeighting; mode?: CalibrationMode; layerByLayer?: boolean },
  modelFp: string,
  emit: ProgressListener,
): Promise<CalibrationPlan> {
  const withGrams = (key: string) => (opts.grams ? `${key}|grams:${path.resolve(opts.grams)}` : key);
  // a sequential run's statistics differ from the original activations': part of the run's identity
  const withMode = (key: string) => (opts.mode === 'sequential' ? `${key}|sequential` : key);
  const selfHeldOut = async (count: number, seqLen: number, seed: number): Promise<{ sequences: Int32Array[]; on: string }> => ({
    sequences: await sampleFromModel(ckpt, await engine(), { count, length: seqLen, seed }),
    on: `${count} sequence(s) of ${seqLen} tokens sampled from the original model (seed ${seed}, held out from calibration)`,
  });
  // a model the runtime cannot run (a RoPE scaling it lacks) compresses from given statistics with no held-out check
  const runnable = unrunnableReason(ckpt.config) === null;

  if (opts.stats !== undefined) {
    const source = typeof opts.stats === 'string' ? opts.stats : 'the routing statistics given';
    const stats = typeof opts.stats === 'string' ? await loadRoutingStats(opts.stats) : validateRoutingStats(opts.stats);
    if (stats.shard) {
      throw new RoutingStatsError(`${source} is shard ${stats.shard.index}/${stats.shard.count} of a sharded calibration, not the whole statistics; add the parts up with \`rfid-moe merge-stats\` and pass the merged file`);
    }
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

  // A run that calibrates itself in one pass writes every MoE layer's Gram matrices before
  // factorising any (model-wide allocation): refused now, before the output is claimed, where they
  // cannot fit (a run layer by layer holds one layer's, checked as it starts)
  const gramsDir = opts.grams === undefined && !opts.layerByLayer ? await calibrationGramsDir(opts) : undefined;
  if (gramsDir) {
    await checkRoomForGrams(gramsDir, gramBytes(ckpt), 'a model-wide allocation holds every MoE layer\'s until its last layer is factorised: free space there, compress into a directory on a larger disk, or use allocationScope "layer", which holds one layer\'s at a time');
  }

  if (opts.dataset !== undefined) {
    assertRunnable(ckpt);
    const d = opts.dataset;
    const samples = d.samples ?? 128;
    const seqLen = d.seqLen ?? defaultCalibrationSeqLen(ckpt.config);
    const seed = d.seed ?? 0;
    const data = await tokenizeDataset(d.tokenizer ?? ckpt.dir, d.file, { format: d.format, textField: d.textField });
    // calibration draws from the first 90 % of the tokens; the fidelity check uses the rest
    const split = Math.floor(data.ids.length * 0.9);
    const calibrationIds = data.ids.subarray(0, split);
    const heldOutIds = data.ids.subarray(split);
    // cut now, so a dataset too short for the windows is refused before the output is touched
    const windows = calibrationWindows(calibrationIds, samples, seqLen, seed);
    const description = `${samples} windows of ${seqLen} tokens (seed ${seed}) from the first 90% of ${path.basename(d.file)}${sequentialNote(opts.mode)}`;
    const info: CalibrationInfo = {
      dataset: { file: path.basename(d.file), format: data.dataset.format, sha256: data.dataset.sha256, tokens: data.ids.length },
      samples,
      seqLen,
      seed,
    };
    return {
      source: 'dataset',
      key: withMode(withGrams(`dataset:${data.dataset.sha256}:${sha256(data.tokenizerPath)}:${samples}:${seqLen}:${seed}`)),
      description,
      run: async () => {
        const gramsDir = opts.grams ?? (await calibrationGramsDir(opts));
        const stats = await calibrate(ckpt, await engine(), windows, gramsDir, modelFp, emit, 'dataset', info, opts);
        return { stats, gramsDir };
      },
      windows: async () => ({ windows, info }),
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
  const seqLen = s.seqLen ?? defaultCalibrationSeqLen(ckpt.config, 128);
  const seed = s.seed ?? 0;
  const sampled = async (): Promise<CalibrationWindows> => {
    emit({ type: 'calibration', phase: 'start', source: 'self-sampled', message: `sampling ${samples} sequences of ${seqLen} tokens from the model (seed ${seed})` });
    const sequences = await sampleFromModel(ckpt, await engine(), {
      count: samples,
      length: seqLen,
      seed,
      onStep: (done, of) => emit({ type: 'calibration', phase: 'layer', source: 'self-sampled', layer: done - 1, of, message: `sampled ${done}/${of} positions` }),
    });
    const ids = new Int32Array(sequences.flatMap((q) => Array.from(q)));
    return {
      windows: sequences,
      info: { dataset: { file: '(sampled from the model)', format: 'self-sampled', sha256: sha256(new Uint8Array(ids.buffer)), tokens: ids.length }, samples, seqLen, seed },
    };
  };
  return {
    source: 'self-sampled',
    key: withMode(withGrams(`self-sampled:${samples}:${seqLen}:${seed}`)),
    description: `no dataset given: ${samples} sequences of ${seqLen} tokens sampled from the model itself (temperature 1, seed ${seed})${sequentialNote(opts.mode)}`,
    run: async () => {
      const { windows, info } = await sampled();
      const gramsDir = opts.grams ?? (await calibrationGramsDir(opts));
      const stats = await calibrate(ckpt, await engine(), windows, gramsDir, modelFp, emit, 'self-sampled', info, opts);
      return { stats, gramsDir };
    },
    windows: sampled,
    // a different seed than calibration, so the check runs on sequences the compressor never saw
    heldOut: async (count) => selfHeldOut(count, seqLen, (seed ^ 0x5eed1234) >>> 0),
  };
}

function sequentialNote(mode: CalibrationMode | undefined): string {
  return mode === 'sequential' ? ', each layer calibrated on the outputs of the already-compressed layers before it (sequential)' : '';
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
  opts: CompressOptions & { gramWeighting?: GramWeighting },
): Promise<RoutingStats> {
  emit({ type: 'calibration', phase: 'start', source, message: `routing statistics over ${windows.length} sequence(s)` });
  const sink = gramsDir && !opts.grams ? new GramDirectorySink(gramsDir, ckpt.config.hiddenSize, modelFp) : undefined;
  const stats = await collectRoutingStats(ckpt, engine, windows, info, {
    grams: sink,
    ...(opts.gramWeighting ? { gramWeighting: opts.gramWeighting } : {}),
    onLayer: (p) => emit({ type: 'calibration', phase: 'layer', source, layer: p.layer, of: p.numLayers, message: `layer ${p.layer + 1}/${p.numLayers}` }),
  });
  if (sink) await sink.finish();
  emit({ type: 'calibration', phase: 'done', source, message: `${stats.calibration.tokens} tokens, ${stats.warnings.length} warning(s)` });
  return stats;
}

