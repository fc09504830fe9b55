/** What a caller of `compress()` can ask for (the recipe aside: that is `recipe.ts`). */
import { RfidMoeError } from '../errors.js';
import type { Engine } from '../engine/types.js';
import type { EngineChoice } from '../engine/index.js';
import type { RoutingStats } from '../routing-stats/schema.js';
import type { DatasetFormat } from '../tokens/dataset.js';
import type { ProgressListener } from './progress.js';
import type { LayerSelection } from './shard/layers.js';

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
  /**
   * For a run that calibrates itself (dataset, or sampled sequences): 'sequential' collects layer
   * l's statistics on the outputs of the already-compressed layers 0..l−1; 'original' (default, the
   * better of the two measured on the shipped models) on the original model's activations, in one
   * pass before compressing.
   * Statistics given as `stats` are the original model's; a model-wide allocation needs 'original'.
   */
  calibration?: 'sequential' | 'original';
  /** per-expert Gram matrices from `rfid-moe calibrate --grams` (needed for --whiten with --stats) */
  grams?: string;
  /** an engine instance (not disposed), or a choice (created and disposed here); default 'auto' */
  engine?: Engine | EngineChoice;
  threads?: number;
  resume?: boolean;
  /**
   * Compress only these decoder layers into a partial output (one task of a sharded run; needs
   * `stats`). `rfid-moe merge` assembles the parts into the directory a one-process run writes.
   */
  layers?: LayerSelection;
  /**
   * Model-wide allocation of a sharded run, phase 1: write the spectra of this task's layers to
   * this file and stop (nothing else is written). Phase 2 is `rfid-moe allocate`.
   */
  spectraOut?: string;
  /** Model-wide allocation, phase 3: the rank budgets written by `rfid-moe allocate` */
  rankBudgets?: string;
  evaluation?: EvaluationOptions | false;
  onProgress?: ProgressListener;
}

export class CompressError extends RfidMoeError {
  readonly kind: string = 'CompressError';
}
