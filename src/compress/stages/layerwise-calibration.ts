/**
 * Layer-by-layer calibration, for a run that calibrates itself: layer l's routing statistics and
 * Gram matrices are collected just before layer l is factorised, on hidden states carried from
 * layer to layer, so neither memory nor disk ever holds more than one layer's Gram matrices. Two
 * kinds of inputs (`inputs`):
 *
 *  'compressed'  sequential calibration (GPTQ / llm-compressor style): the hidden states produced
 *                by the already-compressed layers 0..l−1, so each layer is fitted to the inputs it
 *                will see in the compressed model rather than to the original model's;
 *  'original'    the original model's activations, the same statistics as one pass over every
 *                layer (collectRoutingStats) gives, bit for bit: the same steps on the same batch.
 *                The one pass has to keep every layer's Gram matrices until the last layer is
 *                factorised: hidden·(hidden + 1)/2 f64 values per expert and layer (the stored
 *                triangle, 16 MiB at hidden 2048), 96 GiB for Qwen3-30B-A3B's 48 layers of 128
 *                experts; layer by layer that is one layer's, 2 GiB.
 *
 * The calibration windows' hidden states (rows × hidden f32, rows = samples × seqLen) are carried
 * from layer to layer; only one decoder layer's weights are read at a time. Per layer:
 *
 *  observe   the layer's attention half with its source weights (attention, norms and router are
 *            never compressed), then, on the MoE input, its routing counts and — when the recipe
 *            needs them — each expert's Gram matrix, written to a scratch directory of this layer
 *            only (the factorisation reads them back a group at a time, as it does in the
 *            one-pass mode). On original inputs the layer's MLP half runs here too, with its
 *            source weights, as the one pass runs it;
 *  advance   after the layer's shard is written: on compressed inputs, its MLP half with the
 *            experts read back from that shard, exactly as `loadCompressed` runs them; either way
 *            the layer's Gram scratch is removed.
 *
 * Resume: the hidden states entering the first unfinished layer are recomputed by `replay`, which
 * runs each finished layer whole, from its shard in the output (compressed inputs) or from the
 * source (original inputs); its routing counts come out of the same pass, since the router is not
 * compressed. Nothing else is checkpointed: the hidden states are a deterministic function of the
 * windows and the weights they pass through, the shards' sha256 are checked before they are kept,
 * and a fresh run propagates through the same weights, so a resumed run writes the same bytes as an
 * uninterrupted one. Recomputing costs one forward pass over the finished layers; checkpointing the
 * states instead would cost samples × seqLen × hidden × 4 bytes per layer of writes (256 MiB per
 * layer at 128 × 512 × 1024), on every run.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Checkpoint } from '../../checkpoint/types.js';
import { CompressedModel } from '../../compressed/load.js';
import type { Engine } from '../../engine/types.js';
import { TensorStore } from '../../io/sharded.js';
import { statsDocument, statsModel, type CalibrationInfo } from '../../routing-stats/collect.js';
import { combineObservers, RoutingCounter } from '../../routing-stats/counter.js';
import { GramDirectorySink, GramObserver, type GramWeighting } from '../../routing-stats/gram.js';
import { checkRoomForGrams, gramBytes } from '../../routing-stats/gram-room.js';
import type { RoutingStats } from '../../routing-stats/schema.js';
import type { AttentionContext } from '../../runtime/attention.js';
import { batchFromSequences } from '../../runtime/batch.js';
import { CheckpointWeights } from '../../runtime/checkpoint-weights.js';
import { manyRowsWeights } from '../../runtime/model-source.js';
import { attentionStep, decoderContext, embedTokens, mlpStep } from '../../runtime/layerwise.js';
import { observeMoeInputs } from '../../runtime/moe.js';
import type { LayerWeights } from '../../runtime/weights.js';
import type { LayerBlock, RfidBlock } from '../output/block.js';

export interface LayerwiseArgs {
  /** what layer l's statistics are collected on: the compressed layers' outputs, or the original model's */
  inputs: 'compressed' | 'original';
  ckpt: Checkpoint;
  engine: Engine;
  windows: Int32Array[];
  info: CalibrationInfo;
  /** the output directory (its layer shards are read back) */
  out: string;
  /** file name of layer l's shard in `out` */
  shardFile(layer: number): string;
  /** the rfid_moe block of the given layers as this run writes them (storage, groups, ranks) */
  blockOf(layers: LayerBlock[]): RfidBlock;
  /** set when the recipe needs Gram matrices: one scratch directory per layer is made under it */
  grams?: { scratch: string; weighting: GramWeighting; modelFingerprint: string };
}

export class LayerwiseCalibration {
  private readonly ctx: AttentionContext;
  private readonly source: CheckpointWeights;
  /** hidden states entering layer `next`, or (after `observe`) after its attention half */
  private readonly x: Float32Array;
  /**
   * the MoE / MLP input of the observed layer: kept from `observe` to `advance` on compressed
   * inputs; on original inputs `observe` runs the whole layer and drops it, so the factorisation
   * between the two does not hold it (samples × seqLen × hidden × 4 bytes, 512 MiB at 128 × 512 × 2048)
   */
  private normedRows: Float32Array | null = null;
  private readonly lastMoe: number;
  private readonly counts = new Map<number, { tokens: number; topK: number; counts: number[] }>();
  private next = 0;
  private observed = false;

  private constructor(
    private readonly a: LayerwiseArgs,
    x: Float32Array,
  ) {
    const { ckpt, engine, windows } = a;
    this.ctx = decoderContext(engine, ckpt.config, batchFromSequences(windows));
    this.source = new CheckpointWeights(ckpt, manyRowsWeights(engine));
    this.x = x;
    this.lastMoe = ckpt.layout.layers.reduce((last, l, i) => (l.kind === 'moe' ? i : last), -1);
  }

  static async start(a: LayerwiseArgs): Promise<LayerwiseCalibration> {
    if (a.grams) await checkRoomForGrams(a.grams.scratch, gramBytes(a.ckpt, 1), 'free space there, or compress into a directory on a larger disk');
    const x = await embedTokens(new CheckpointWeights(a.ckpt), a.ckpt.config, batchFromSequences(a.windows).ids);
    return new LayerwiseCalibration(a, x);
  }

  private get normed(): Float32Array {
    this.normedRows ??= new Float32Array(this.x.length);
    return this.normedRows;
  }

  /** Layers after the last MoE layer cannot change any statistic: nothing is run for them. */
  private needed(layer: number): boolean {
    return layer <= this.lastMoe;
  }

  private expect(layer: number, observed: boolean): void {
    if (this.next !== layer || this.observed !== observed) {
      throw new Error(`internal: layer-by-layer calibration at layer ${this.next}${this.observed ? ' (observed)' : ''}, asked for layer ${layer}`);
    }
  }

  private gramsDirOf(layer: number): string | undefined {
    return this.a.grams ? path.join(this.a.grams.scratch, `layer-${layer}`) : undefined;
  }

  /**
   * An unfinished layer: its attention half on the current hidden states, then (MoE layers) its
   * routing counts and Gram matrices. Returns the counts and the directory of this layer's Gram
   * matrices (for factorisation); dense layers return no counts.
   */
  async observe(layer: number): Promise<{ counts?: number[]; gramsDir?: string }> {
    if (!this.needed(layer)) return {};
    this.expect(layer, false);
    const { ckpt, engine } = this.a;
    const weights = await this.source.layer(layer);
    attentionStep(this.ctx, layer, weights, this.x, this.normed);
    this.observed = true;
    if (weights.mlp.kind !== 'moe') {
      if (this.a.inputs === 'original') {
        await mlpStep(this.ctx, layer, weights, this.x, this.normed);
        this.normedRows = null;
      }
      return {};
    }
    const counter = new RoutingCounter(ckpt.config.numExperts);
    const gramsDir = this.gramsDirOf(layer);
    let sink: GramDirectorySink | undefined;
    if (gramsDir && this.a.grams) {
      await rm(gramsDir, { recursive: true, force: true });
      await mkdir(gramsDir, { recursive: true });
      sink = new GramDirectorySink(gramsDir, ckpt.config.hiddenSize, this.a.grams.modelFingerprint);
    }
    const grams = sink && this.a.grams ? new GramObserver(engine, ckpt.config.hiddenSize, sink, this.a.grams.weighting) : undefined;
    const observer = combineObservers(counter, grams);
    // original inputs: the MLP half with the source weights, as the one pass over every layer runs it
    if (this.a.inputs === 'original') {
      await mlpStep(this.ctx, layer, weights, this.x, this.normed, observer);
      this.normedRows = null;
    } else await observeMoeInputs(engine, ckpt.config, layer, weights.mlp.moe, this.normed, this.ctx.batch.ids.length, observer);
    await sink?.finish();
    return { counts: this.record(layer, counter), ...(gramsDir ? { gramsDir } : {}) };
  }

  /**
   * After layer `layer`'s shard is written: on compressed inputs its MLP half with the weights read
   * back from the shard (on original inputs `observe` ran it); then its Gram scratch is removed.
   */
  async advance(layer: number, block: LayerBlock | undefined): Promise<void> {
    if (!this.needed(layer)) return;
    this.expect(layer, true);
    if (this.a.inputs === 'compressed') {
      await this.withWrittenLayer(layer, block, async (model) => {
        await mlpStep(this.ctx, layer, await model.layer(layer), this.x, this.normed);
      });
    }
    const gramsDir = this.gramsDirOf(layer);
    if (gramsDir) await rm(gramsDir, { recursive: true, force: true });
    this.observed = false;
    this.next = layer + 1;
  }

  /**
   * A layer kept from an interrupted run: the whole layer as `observe` and `advance` ran it, from its
   * shard (compressed inputs) or from the source (original inputs); returns its routing counts (MoE
   * layers), which the block and the statistics document record.
   */
  async replay(layer: number, block: LayerBlock | undefined): Promise<number[] | undefined> {
    if (!this.needed(layer)) return undefined;
    this.expect(layer, false);
    const counter = new RoutingCounter(this.a.ckpt.config.numExperts);
    const run = async (weights: LayerWeights) => {
      attentionStep(this.ctx, layer, weights, this.x, this.normed);
      await mlpStep(this.ctx, layer, weights, this.x, this.normed, counter);
    };
    if (this.a.inputs === 'original') await run(await this.source.layer(layer));
    else await this.withWrittenLayer(layer, block, async (model) => run(await model.layer(layer)));
    this.next = layer + 1;
    return this.record(layer, counter);
  }

  /** Keeps the layer's routing counts for the statistics document; undefined for a dense layer. */
  private record(layer: number, counter: RoutingCounter): number[] | undefined {
    const entry = counter.result().layers[0];
    if (!entry) return undefined;
    this.counts.set(layer, { tokens: entry.tokens, topK: entry.topK, counts: entry.counts });
    return entry.counts;
  }

  private async withWrittenLayer(layer: number, block: LayerBlock | undefined, run: (model: CompressedModel) => Promise<void>): Promise<void> {
    const { ckpt, out } = this.a;
    const store = await TensorStore.open(path.join(out, this.a.shardFile(layer)));
    const model = new CompressedModel(out, ckpt.config, ckpt.layout, this.a.blockOf(block ? [block] : []), store, {});
    try {
      await run(model);
    } finally {
      await model.close();
    }
  }

  /** The statistics document of the whole run (every MoE layer's counts), once every layer is done. */
  statistics(): RoutingStats {
    const { ckpt, windows, info } = this.a;
    const layers = ckpt.layout.layers.filter((l) => l.kind === 'moe').map((l) => {
      const entry = this.counts.get(l.index);
      if (!entry) throw new Error(`internal: layer-by-layer calibration has no routing counts for MoE layer ${l.index}`);
      return { layer: l.index, ...entry };
    });
    return statsDocument(statsModel(ckpt), info, windows.reduce((n, w) => n + w.length, 0), layers);
  }
}
