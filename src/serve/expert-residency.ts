/**
 * Which experts of a resident factored model run densely. A factored expert is applied as two
 * thin GEMMs per projection; a materialised one (Ŵ = A·B + residual, built once) as one dense
 * GEMM, which is faster per token but holds p·d values instead of r·(p + d). Within the model's
 * memory share the hottest experts are materialised: first by the routing frequency stored in
 * the checkpoint (its calibration counts), then by the live routing counts of the requests it
 * serves, which take over as they accumulate:
 *
 *   score(l, e) = (α · prior share(l, e) + live calls(l, e)) / (α + live calls(l))
 *
 * with α = `priorWeight` pseudo-calls, so the checkpoint decides until the layer has seen about
 * α expert calls of its own. Every `rebalanceEvery` expert calls the dense set is recomputed:
 * newly hot experts are materialised, cooled ones go back to the factored form
 * they kept (nothing is read again from disk after the load).
 *
 * Bases are shared per (layer, type, group) instead of copied into every expert of the group.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { CompressedModel } from '../compressed/load.js';
import { DenseLinear, FactoredLinear, SwiGluExpert, materialise, type LinearOperator } from '../compressed/factored-expert.js';
import type { Weights } from '../runtime/weight-matrix.js';
import type { ExpertMatrixType } from '../checkpoint/types.js';
import type { Engine } from '../engine/types.js';
import { roundToBf16 } from '../io/dtype.js';
import { ResidentWeights } from '../runtime/resident-weights.js';
import { CheckpointWeights } from '../runtime/checkpoint-weights.js';
import type { ExpertWeights, LayerWeights, NormWeights, WeightProvider } from '../runtime/weights.js';

const TYPES: readonly ExpertMatrixType[] = ['gate', 'up', 'down'];

export interface ExpertResidencyOptions {
  /** bytes of densely materialised experts allowed (the model's share beyond its factored weights) */
  denseBytes: number;
  /** pseudo-calls of the checkpoint's frequencies (default 256) */
  priorWeight?: number;
  /** expert calls between two recomputations of the dense set (default 2048) */
  rebalanceEvery?: number;
  /**
   * Matrices stored as BF16 stay BF16: factors, unfactored expert matrices, attention, embedding
   * and head (default false: f32). The materialised experts too, rounded to BF16, when every
   * factor is stored as BF16 (CompressedModel.materialisesBf16): half the bytes, so twice the
   * experts fit in the same share, and half the memory a dense product reads.
   */
  bf16?: boolean;
  /** told when materialising in the background fails (the experts concerned stay factored) */
  onError?(err: unknown): void;
}

export interface LoadAllOptions {
  /**
   * 'now' (default): loadAll returns once the hottest experts are materialised. 'background': it
   * returns once every expert is read in its factored form, and the hottest are materialised
   * afterwards, between the requests it serves (the server: a cold request then waits for the
   * reads alone, and runs factored until its experts are dense).
   */
  materialise?: 'now' | 'background';
}

interface Slot {
  weights: ExpertWeights;
  dense: boolean;
  /**
   * A dense expert's factored forms, kept so that it goes back to factored without reading them
   * again when it cools. They cost nothing the plan does not count (a served model's estimate
   * holds every expert's factors, src/serve/models.ts), and the load's packed chunks would keep
   * their bytes anyway.
   */
  factored?: Partial<Record<ExpertMatrixType, FactoredLinear>>;
}

export class LiveExpertProvider implements WeightProvider {
  private readonly base: ResidentWeights;
  private readonly slots = new Map<string, Slot>();
  private readonly prior = new Map<number, Float64Array>();
  private readonly live = new Map<number, Float64Array>();
  /** the tensors each group of experts shares, read once and held by all of them */
  private readonly shared = new Map<string, Promise<Weights>>();
  private readonly bytesPerExpert: number;
  /** materialised experts held as BF16 (see ExpertResidencyOptions.bf16) */
  private readonly denseBf16: boolean;
  private readonly priorWeight: number;
  private readonly rebalanceEvery: number;
  private callsSinceRebalance = 0;
  private rebalancing: Promise<void> | null = null;
  private counting = false;
  private closed = false;
  /** recomputations of the dense set so far */
  rebalances = 0;

  constructor(
    private readonly model: CompressedModel,
    private readonly engine: Engine,
    private readonly opts: ExpertResidencyOptions,
  ) {
    // attention, head and embedding held as the server holds an original's (BF16 kept with `bf16`)
    this.base = new ResidentWeights(new CheckpointWeights(model, { bf16Weights: opts.bf16 ?? false }));
    const { hiddenSize: H, expertIntermediateSize: I, numExperts } = model.config;
    this.denseBf16 = (opts.bf16 ?? false) && model.materialisesBf16();
    this.bytesPerExpert = 3 * H * I * (this.denseBf16 ? 2 : 4);
    this.priorWeight = opts.priorWeight ?? 256;
    this.rebalanceEvery = opts.rebalanceEvery ?? 2048;
    for (const l of model.block.layers) {
      const total = l.routingCounts.reduce((a, b) => a + b, 0);
      this.prior.set(l.layer, Float64Array.from(l.routingCounts, (c) => (total > 0 ? c / total : 1 / numExperts)));
      this.live.set(l.layer, new Float64Array(numExperts));
    }
  }

  get config() {
    return this.model.config;
  }

  /** how many experts fit densely in the share */
  get denseCapacity(): number {
    return Math.floor(this.opts.denseBytes / this.bytesPerExpert);
  }

  /** "layer/expert" keys of the experts running densely now */
  denseExperts(): string[] {
    return [...this.slots].filter(([, s]) => s.dense).map(([k]) => k);
  }

  /** live expert calls per layer (a copy) */
  liveCounts(): Map<number, Float64Array> {
    return new Map([...this.live].map(([l, c]) => [l, Float64Array.from(c)]));
  }

  embed(ids: Int32Array): Promise<Float32Array> {
    return this.base.embed(ids);
  }

  finalNorm(): Promise<NormWeights> {
    return this.base.finalNorm();
  }

  lmHeadRows(start: number, end: number): Promise<Weights> {
    return this.base.lmHeadRows(start, end);
  }

  lmHeadBias(): Promise<Float32Array | null> {
    return this.base.lmHeadBias();
  }

  embedRows(start: number, end: number): Promise<Weights> {
    return this.base.embedRows(start, end);
  }

  async layer(index: number): Promise<LayerWeights> {
    const layer = await this.base.layer(index);
    if (layer.mlp.kind !== 'moe' || !this.live.has(index)) return layer;
    const moe = layer.mlp.moe;
    return { ...layer, mlp: { kind: 'moe', moe: { ...moe, expert: (e) => this.expert(index, e), residentExpert: (e) => this.residentExpert(index, e) } } };
  }

  /**
   * Read every weight: non-expert tensors, every expert factored, then the hottest by the
   * checkpoint's frequencies materialised (see LoadAllOptions). Live counting starts afterwards.
   */
  async loadAll(opts: LoadAllOptions = {}): Promise<void> {
    const { numLayers, vocabSize } = this.model.config;
    await this.base.embed(Int32Array.of(0));
    await this.base.finalNorm();
    await this.base.lmHeadRows(0, Math.min(1, vocabSize));
    for (let l = 0; l < numLayers; l++) await this.base.layer(l);
    if (opts.materialise !== 'background') {
      await this.rebalance();
      this.counting = true;
      return;
    }
    // every expert factored first: the reads a request would otherwise wait for
    for (const [layer] of this.prior) {
      for (let e = 0; e < this.model.config.numExperts; e++) {
        const key = `${layer}/${e}`;
        if (!this.slots.has(key)) this.slots.set(key, await this.build(layer, e, false));
      }
    }
    this.counting = true;
    this.rebalanceInBackground();
  }

  /** Resolves when no materialisation is under way (one started in the background included). */
  async settled(): Promise<void> {
    while (this.rebalancing) await this.rebalancing;
  }

  /**
   * Stops materialising: one under way ends after the expert it is building, none starts after.
   * Call before closing the model it reads from.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
  }

  /** Starts a rebalance unless one is under way; a failure goes to onError and leaves the experts as they were. */
  private rebalanceInBackground(): void {
    if (this.rebalancing || this.closed) return;
    this.rebalancing = this.rebalance()
      .catch((err: unknown) => this.opts.onError?.(err))
      .finally(() => (this.rebalancing = null));
  }

  /** Recompute the dense set from the current scores and apply it. */
  async rebalance(): Promise<void> {
    const { numExperts } = this.model.config;
    const scored: Array<{ key: string; layer: number; expert: number; score: number }> = [];
    for (const [layer, prior] of this.prior) {
      const live = this.live.get(layer)!;
      const calls = live.reduce((a, b) => a + b, 0);
      for (let e = 0; e < numExperts; e++) scored.push({ key: `${layer}/${e}`, layer, expert: e, score: (this.priorWeight * prior[e] + live[e]) / (this.priorWeight + calls) });
    }
    scored.sort((a, b) => b.score - a.score || a.layer - b.layer || a.expert - b.expert);
    const hot = new Set(scored.slice(0, this.denseCapacity).map((s) => s.key));
    for (const s of scored) {
      if (this.closed) return;
      const slot = this.slots.get(s.key);
      const wantDense = hot.has(s.key);
      if (slot && slot.dense === wantDense) continue;
      // one expert per turn of the event loop: building one is ~0.1 s of synchronous products,
      // and with its factors already held nothing else would let requests in between
      await yieldToEventLoop();
      if (this.closed) return;
      this.slots.set(s.key, await this.build(s.layer, s.expert, wantDense));
    }
    this.rebalances++;
  }

  private async expert(layer: number, expert: number): Promise<ExpertWeights> {
    const held = this.residentExpert(layer, expert);
    if (held) return held;
    // before loadAll (or a layer the block does not list): built on demand, factored
    this.count(layer, expert);
    const slot = await this.build(layer, expert, false);
    this.slots.set(`${layer}/${expert}`, slot);
    return slot.weights;
  }

  /** The expert as held now, counted as a use (undefined when it has not been read yet). */
  private residentExpert(layer: number, expert: number): ExpertWeights | undefined {
    const slot = this.slots.get(`${layer}/${expert}`);
    if (slot) this.count(layer, expert);
    return slot?.weights;
  }

  /** One routing of a token to the expert, for the live counts and the rebalance they drive. */
  private count(layer: number, expert: number): void {
    if (this.counting) {
      this.live.get(layer)![expert]++;
      if (++this.callsSinceRebalance >= this.rebalanceEvery && !this.rebalancing) {
        this.callsSinceRebalance = 0;
        this.rebalanceInBackground();
      }
    }
  }

  private async build(layer: number, expert: number, dense: boolean): Promise<Slot> {
    // what the expert holds now is reused, not read again: the factors of a factored form or of
    // a dense one (Slot.factored), an unfactored matrix (the same dense or not). So materialising
    // a hot expert or returning a cooled one to factored reads nothing from disk, and its factors
    // stay the buffers the load read (packed in huge pages, src/serve/models.ts).
    const slot = this.slots.get(`${layer}/${expert}`);
    const held = slot?.weights;
    const ops: LinearOperator[] = [];
    const factored: Partial<Record<ExpertMatrixType, FactoredLinear>> = {};
    for (const type of TYPES) {
      const heldOp = held instanceof SwiGluExpert ? held[type] : undefined;
      if (!this.model.isFactored(layer, type)) {
        if (heldOp instanceof DenseLinear) {
          ops.push(heldOp);
          continue;
        }
        const W = (this.opts.bf16 ? await this.model.readExpertBf16(layer, expert, type) : null) ?? (await this.model.readExpert(layer, expert, type));
        const { hiddenSize: H, expertIntermediateSize: I } = this.model.config;
        const [p, d] = type === 'down' ? [H, I] : [I, H];
        ops.push(new DenseLinear(W, p, d));
        continue;
      }
      // a factored expert must stay at its factored size: the budget counts it so, and the dense
      // room of the share belongs to the hottest experts (a long prompt builds a dense form for one call only)
      const heldFactored = heldOp instanceof FactoredLinear ? heldOp : slot?.factored?.[type];
      const op = heldFactored ?? new FactoredLinear(await this.model.factors(layer, expert, type, this.shared, { bf16: this.opts.bf16 }), 'auto', { keepDense: false });
      if (dense) {
        const W = materialise(this.engine, op.matrix);
        ops.push(new DenseLinear(this.denseBf16 ? roundToBf16(W) : W, op.matrix.p, op.matrix.d));
        factored[type] = op;
      } else {
        ops.push(op);
      }
    }
    return { weights: new SwiGluExpert(ops[0], ops[1], ops[2]), dense, ...(dense ? { factored } : {}) };
  }
}
