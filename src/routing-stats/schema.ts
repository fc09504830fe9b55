/**
 * The routing statistics file (`rfid-moe calibrate --out stats.json`), validated with zod on
 * write and on load. Besides the schema's shape, `loadRoutingStats` checks the arithmetic:
 * every layer has one count per expert and Σ counts = tokens · topK.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../io/atomic.js';
import { RfidMoeError } from '../errors.js';

export const ROUTING_STATS_FORMAT = 'rfid-moe.routing-stats';
export const ROUTING_STATS_VERSION = 1;

const count = z.number().int().nonnegative();

export const layerStatsSchema = z.object({
  layer: count,
  /** tokens that went through the layer (padding excluded) */
  tokens: count,
  topK: z.number().int().positive(),
  /** counts[e]: tokens with expert e in their top-k */
  counts: z.array(count),
});

export const routingStatsSchema = z.object({
  format: z.literal(ROUTING_STATS_FORMAT),
  version: z.literal(ROUTING_STATS_VERSION),
  tool: z.string(),
  model: z.object({
    /** see modelFingerprint(): sha256 of config.json and the tensor list (names, dtypes, shapes) */
    fingerprint: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    family: z.string(),
    modelType: z.string(),
    numLayers: z.number().int().positive(),
    numExperts: z.number().int().positive(),
    topK: z.number().int().positive(),
  }),
  dataset: z.object({
    file: z.string(),
    format: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** tokens in the whole tokenized dataset */
    tokens: count,
  }),
  calibration: z.object({
    samples: z.number().int().positive(),
    seqLen: z.number().int().positive(),
    seed: z.number().int(),
    /** tokens forwarded (samples × seqLen) */
    tokens: count,
  }),
  /** experts below this many tokens are listed in `warnings` */
  minTokens: count,
  layers: z.array(layerStatsSchema),
  warnings: z.array(z.string()),
  /**
   * Present only in one part of a sharded calibration (`calibrate --shard i/N`): which of the run's
   * windows it covered, and where it wrote its Gram matrices. `merge-stats` adds the parts up into
   * the document a one-process run writes (without this field).
   */
  shard: z
    .object({
      index: z.number().int().nonnegative(),
      count: z.number().int().positive(),
      /** [start, end) among the run's `samples` windows */
      windows: z.tuple([count, count]),
      grams: z.string().nullable(),
    })
    .optional(),
});

export type LayerStats = z.infer<typeof layerStatsSchema>;
export type RoutingStats = z.infer<typeof routingStatsSchema>;

export class RoutingStatsError extends RfidMoeError {
  readonly kind = 'RoutingStatsError';
}

/** Schema plus arithmetic checks; throws RoutingStatsError naming the first problem. */
export function validateRoutingStats(value: unknown, source = 'routing statistics'): RoutingStats {
  const parsed = routingStatsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RoutingStatsError(`${source} is not a valid routing-stats file: ${issue.path.join('.') || '(root)'}: ${issue.message}; regenerate it with \`rfid-moe calibrate\``);
  }
  const stats = parsed.data;
  for (const l of stats.layers) {
    if (l.counts.length !== stats.model.numExperts) {
      throw new RoutingStatsError(`${source}: layer ${l.layer} has ${l.counts.length} counts but the model has ${stats.model.numExperts} experts`);
    }
    const sum = l.counts.reduce((a, b) => a + b, 0);
    if (sum !== l.tokens * l.topK) {
      throw new RoutingStatsError(`${source}: layer ${l.layer} counts sum to ${sum}, expected tokens × topK = ${l.tokens * l.topK}`);
    }
  }
  return stats;
}

export async function loadRoutingStats(file: string): Promise<RoutingStats> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new RoutingStatsError(`cannot read routing statistics ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); create it by calibrating the model (\`rfid-moe calibrate\`, or collectRoutingStats and writeRoutingStats)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RoutingStatsError(`${file} is not JSON; create it with \`rfid-moe calibrate\``);
  }
  return validateRoutingStats(json, file);
}

/** Validates and writes atomically (temp file + rename). */
export async function writeRoutingStats(file: string, stats: RoutingStats): Promise<void> {
  validateRoutingStats(stats, 'statistics to write');
  await writeFileAtomic(file, JSON.stringify(stats, null, 1) + '\n');
}
