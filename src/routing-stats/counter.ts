/**
 * Routing frequency: for every MoE layer, how often each expert is in a token's top-k (the
 * family's own rule, see runtime/moe.ts). Only real tokens reach the forward pass (padding is
 * stripped by `batchFromPadded`), so padding is never counted.
 */
import type { Engine } from '../engine/types.js';
import type { MoeObserver, Routing } from '../runtime/moe.js';
import type { TokenBatch } from '../runtime/batch.js';
import { fullLogits } from '../runtime/head.js';
import { runDecoder } from '../runtime/layerwise.js';
import { manyRowsWeights, weightProviderOf, type ModelSource } from '../runtime/index.js';

export interface LayerRoutingCounts {
  layer: number;
  /** tokens routed through this layer */
  tokens: number;
  topK: number;
  /** counts[e] = tokens whose top-k contains expert e (Σ counts = tokens · topK) */
  counts: number[];
}

export interface RoutingCounts {
  numExperts: number;
  layers: LayerRoutingCounts[];
}

export class RoutingCounter implements MoeObserver {
  private readonly byLayer = new Map<number, LayerRoutingCounts>();

  constructor(readonly numExperts: number) {}

  onRouting(layer: number, routing: Routing): void {
    let entry = this.byLayer.get(layer);
    if (!entry) {
      entry = { layer, tokens: 0, topK: routing.topK, counts: new Array<number>(this.numExperts).fill(0) };
      this.byLayer.set(layer, entry);
    }
    entry.tokens += routing.tokens;
    for (const e of routing.experts) entry.counts[e]++;
  }

  result(): RoutingCounts {
    return { numExperts: this.numExperts, layers: [...this.byLayer.values()].sort((a, b) => a.layer - b.layer) };
  }
}

/** Several observers as one (e.g. routing counts and Gram matrices in the same pass). */
export function combineObservers(...observers: (MoeObserver | undefined)[]): MoeObserver {
  const list = observers.filter((o): o is MoeObserver => o !== undefined);
  return {
    onRouting: (layer, routing) => list.forEach((o) => o.onRouting?.(layer, routing)),
    onExpertInput: async (layer, expert, x, rows, weights) => {
      for (const o of list) await o.onExpertInput?.(layer, expert, x, rows, weights);
    },
  };
}

/** Routing counts of one batch; with `withLogits` the full model runs and its logits are returned too. */
export async function countRouting(
  model: ModelSource,
  engine: Engine,
  batch: TokenBatch,
  opts: { withLogits?: boolean; observer?: MoeObserver } = {},
): Promise<{ counts: RoutingCounts; logits?: Float32Array }> {
  const provider = weightProviderOf(model, manyRowsWeights(engine));
  const counter = new RoutingCounter(provider.config.numExperts);
  const observer = combineObservers(counter, opts.observer);
  if (!opts.withLogits) {
    await runDecoder(provider, engine, batch, { observer, layers: lastMoeLayer(provider.config.numLayers, model) + 1, finalNorm: false });
    return { counts: counter.result() };
  }
  const hidden = await runDecoder(provider, engine, batch, { observer });
  return { counts: counter.result(), logits: await fullLogits(provider, engine, hidden, batch.ids.length) };
}

/** Index of the last MoE layer (layers after it cannot change routing); all layers when unknown. */
function lastMoeLayer(numLayers: number, model: ModelSource): number {
  if ('layout' in model) {
    for (let l = model.layout.layers.length - 1; l >= 0; l--) if (model.layout.layers[l].kind === 'moe') return l;
  }
  return numLayers - 1;
}
