/**
 * Calibration: tokenized windows → routing statistics (and optionally per-expert Gram matrices),
 * one layer-by-layer pass over all windows together. Layers after the last MoE layer cannot
 * change routing, so they and the output head are skipped.
 */
import type { Checkpoint } from '../checkpoint/types.js';
import type { Engine } from '../engine/types.js';
import { batchFromSequences } from '../runtime/batch.js';
import { runDecoder, type LayerProgress } from '../runtime/layerwise.js';
import { CheckpointWeights } from '../runtime/checkpoint-weights.js';
import { manyRowsWeights } from '../runtime/model-source.js';
import type { WeightProvider } from '../runtime/weights.js';
import { TOOL_VERSION } from '../version.js';
import { combineObservers, RoutingCounter, type RoutingCounts } from './counter.js';
import { modelFingerprint } from './fingerprint.js';
import { GramObserver, type GramSink, type GramWeighting } from './gram.js';
import { ROUTING_STATS_FORMAT, ROUTING_STATS_VERSION, RoutingStatsError, type RoutingStats } from './schema.js';

export interface CollectOptions {
  /** receive each expert's input Gram matrix XᵀX (f64) */
  grams?: GramSink;
  /** how routed tokens count in the Gram matrices (default 'tokens') */
  gramWeighting?: GramWeighting;
  onLayer?(p: LayerProgress): void;
  /** use this provider instead of the checkpoint's own weights (e.g. a compressed model) */
  provider?: WeightProvider;
}

/** Routing counts of every MoE layer over the given windows. */
export async function collectRoutingCounts(ckpt: Checkpoint, engine: Engine, windows: Int32Array[], opts: CollectOptions = {}): Promise<RoutingCounts> {
  const provider = opts.provider ?? new CheckpointWeights(ckpt, manyRowsWeights(engine));
  const counter = new RoutingCounter(ckpt.config.numExperts);
  const grams = opts.grams ? new GramObserver(engine, ckpt.config.hiddenSize, opts.grams, opts.gramWeighting) : undefined;
  let lastMoe = -1;
  ckpt.layout.layers.forEach((l, i) => (lastMoe = l.kind === 'moe' ? i : lastMoe));
  if (lastMoe < 0) throw new RoutingStatsError('the model has no MoE layer: there is no routing to calibrate');
  await runDecoder(provider, engine, batchFromSequences(windows), {
    observer: combineObservers(counter, grams),
    layers: lastMoe + 1,
    finalNorm: false,
    onLayer: opts.onLayer,
  });
  return counter.result();
}

export interface CalibrationInfo {
  dataset: { file: string; format: string; sha256: string; tokens: number };
  samples: number;
  seqLen: number;
  seed: number;
  /** experts that saw fewer tokens are listed as warnings (docs/method.md: the recipe's minExpertTokens, 10) */
  minTokens?: number;
}

/** Calibrates and returns the validated statistics document (see schema.ts). */
export async function collectRoutingStats(
  ckpt: Checkpoint,
  engine: Engine,
  windows: Int32Array[],
  info: CalibrationInfo,
  opts: CollectOptions = {},
): Promise<RoutingStats> {
  const counts = await collectRoutingCounts(ckpt, engine, windows, opts);
  return statsDocument(
    statsModel(ckpt),
    info,
    windows.reduce((a, w) => a + w.length, 0),
    counts.layers.map((l) => ({ layer: l.layer, tokens: l.tokens, topK: l.topK, counts: l.counts })),
  );
}

/** The model section of a statistics document. */
export function statsModel(ckpt: Checkpoint): RoutingStats['model'] {
  const c = ckpt.config;
  return { fingerprint: modelFingerprint(ckpt), family: c.family, modelType: c.modelType, numLayers: c.numLayers, numExperts: c.numExperts, topK: c.topK };
}

/** Experts routed fewer than `minTokens` tokens, one warning per layer. */
export function lowCountWarnings(layers: RoutingStats['layers'], minTokens: number): string[] {
  const warnings: string[] = [];
  for (const l of layers) {
    const low = l.counts.map((c, e) => [e, c] as const).filter(([, c]) => c < minTokens);
    if (low.length > 0) {
      warnings.push(`layer ${l.layer}: ${low.length} expert(s) routed fewer than ${minTokens} tokens (${low.map(([e, c]) => `#${e}: ${c}`).join(', ')}); their frequency is noisy: calibrate with more samples`);
    }
  }
  return warnings;
}

/**
 * The statistics document, built in one place so that a one-process run and `merge-stats` of a
 * sharded run write the same bytes.
 */
export function statsDocument(model: RoutingStats['model'], info: CalibrationInfo, tokens: number, layers: RoutingStats['layers']): RoutingStats {
  const minTokens = info.minTokens ?? 10;
  const warnings = lowCountWarnings(layers, minTokens);
  return {
    format: ROUTING_STATS_FORMAT,
    version: ROUTING_STATS_VERSION,
    tool: `rfid-moe ${TOOL_VERSION}`,
    model,
    dataset: info.dataset,
    calibration: { samples: info.samples, seqLen: info.seqLen, seed: info.seed, tokens },
    minTokens,
    layers,
    warnings,
  };
}
