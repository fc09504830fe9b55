/**
 * `WeightProvider` over an opened checkpoint: every tensor is read from disk (BF16/F16 decoded
 * to f32 by the checkpoint reader, or routed experts kept BF16 with `bf16Experts`) only when the
 * forward pass reaches it, and nothing is cached
 * beyond the embedding/output rows of small vocabularies, so a model larger than RAM can run.
 */
import type { Checkpoint, LayerLayout, MlpNames } from '../checkpoint/types.js';
import { Bf16SwiGlu, DenseSwiGlu } from './mlp.js';
import type { AttentionWeights, ExpertWeights, LayerWeights, MoeWeights, WeightProvider } from './weights.js';
import { RfidMoeError } from '../errors.js';
import { ModelInputError } from './errors.js';

/** Attention with multi-head latent attention (DeepSeek-V2) has no implementation here. */
export class UnsupportedModelError extends RfidMoeError {
  readonly kind = 'UnsupportedModelError';
}

export const MLA_NOT_IMPLEMENTED =
  'attention type MLA (DeepSeek-V2) is not implemented yet; routing statistics can be supplied as `stats` from another tool';

/** Tables up to this size are read whole once and kept (embedding lookups, lm_head chunks). */
const CACHE_LIMIT_BYTES = 256 * 1024 * 1024;
/** Rows per read when a big embedding table is scanned for the ids a batch needs. */
const EMBED_SCAN_ROWS = 8192;

export function assertRunnable(ckpt: Checkpoint): void {
  if (ckpt.config.attention === 'mla') throw new UnsupportedModelError(MLA_NOT_IMPLEMENTED);
  // only the default RoPE is implemented; a scaled one (linear, dynamic, yarn, longrope) would run silently wrong
  const scaling = ckpt.config.raw.rope_scaling;
  if (scaling !== undefined && scaling !== null) {
    const type = typeof scaling === 'object' ? String((scaling as Record<string, unknown>).rope_type ?? (scaling as Record<string, unknown>).type) : String(scaling);
    if (type !== 'default') throw new UnsupportedModelError(`rope_scaling of type "${type}" is not implemented yet (only the default RoPE is), so this model cannot be run by rfid-moe`);
  }
}

export interface CheckpointWeightsOptions {
  /**
   * Routed experts stored as BF16 stay BF16 in memory (Bf16SwiGlu): half the bytes of f32, and
   * decoding's few-row products read half as much (default false: every weight widened to f32).
   * Generation and the server turn it on; evaluation and calibration, whose products have many
   * rows per expert, keep f32.
   */
  bf16Experts?: boolean;
}

export class CheckpointWeights implements WeightProvider {
  private embedCache: Float32Array | null = null;
  private headCache: Float32Array | null = null;
  readonly bf16Experts: boolean;

  constructor(
    readonly checkpoint: Checkpoint,
    opts: CheckpointWeightsOptions = {},
  ) {
    assertRunnable(checkpoint);
    this.bf16Experts = opts.bf16Experts ?? false;
  }

  get config() {
    return this.checkpoint.config;
  }

  private tableFits(): boolean {
    return this.config.vocabSize * this.config.hiddenSize * 4 <= CACHE_LIMIT_BYTES;
  }

  async embed(ids: Int32Array): Promise<Float32Array> {
    const { hiddenSize: h, vocabSize } = this.config;
    for (const id of ids) {
      if (id < 0 || id >= vocabSize) throw new ModelInputError(`token id ${id} is outside the model's vocabulary [0, ${vocabSize}); is the tokenizer the model's own?`);
    }
    const out = new Float32Array(ids.length * h);
    const name = this.checkpoint.layout.embed;
    if (this.tableFits()) {
      this.embedCache ??= await this.checkpoint.readF32(name);
      const table = this.embedCache;
      ids.forEach((id, i) => out.set(table.subarray(id * h, (id + 1) * h), i * h));
      return out;
    }
    // Large vocabulary: scan the table in row blocks, reading only blocks some id falls in.
    const order = Array.from(ids.keys()).sort((a, b) => ids[a] - ids[b]);
    let i = 0;
    while (i < order.length) {
      const start = Math.floor(ids[order[i]] / EMBED_SCAN_ROWS) * EMBED_SCAN_ROWS;
      const end = Math.min(vocabSize, start + EMBED_SCAN_ROWS);
      const block = await this.checkpoint.readRowsF32(name, start, end);
      while (i < order.length && ids[order[i]] < end) {
        const id = ids[order[i]];
        out.set(block.subarray((id - start) * h, (id - start + 1) * h), order[i] * h);
        i++;
      }
    }
    return out;
  }

  async lmHeadRows(start: number, end: number): Promise<Float32Array> {
    const h = this.config.hiddenSize;
    if (this.tableFits()) {
      this.headCache ??= await this.checkpoint.readF32(this.checkpoint.layout.lmHead);
      return this.headCache.subarray(start * h, end * h);
    }
    return this.checkpoint.readRowsF32(this.checkpoint.layout.lmHead, start, end);
  }

  finalNorm(): Promise<Float32Array> {
    return this.checkpoint.readF32(this.checkpoint.layout.finalNorm);
  }

  async layer(index: number): Promise<LayerWeights> {
    const layout = this.checkpoint.layout.layers[index];
    if (!layout) throw new RangeError(`layer ${index} does not exist (the model has ${this.checkpoint.layout.layers.length})`);
    const [inputNorm, postAttentionNorm, attention] = await Promise.all([
      this.checkpoint.readF32(layout.inputNorm),
      this.checkpoint.readF32(layout.postAttentionNorm),
      this.attention(layout),
    ]);
    if (layout.kind === 'moe') return { index, inputNorm, postAttentionNorm, attention, mlp: { kind: 'moe', moe: await this.moe(layout) } };
    if (!layout.dense) throw new Error(`layer ${index} is dense but the layout names no MLP tensors`);
    const dense = await this.mlp(layout.dense);
    return { index, inputNorm, postAttentionNorm, attention, mlp: { kind: 'dense', dense } };
  }

  private async attention(layout: LayerLayout): Promise<AttentionWeights> {
    const a = layout.attention;
    const read = (name: string | undefined) => (name ? this.checkpoint.readF32(name) : Promise.resolve(undefined));
    const [q, k, v, o, qBias, kBias, vBias, qNorm, kNorm] = await Promise.all([
      this.checkpoint.readF32(a.q),
      this.checkpoint.readF32(a.k),
      this.checkpoint.readF32(a.v),
      this.checkpoint.readF32(a.o),
      read(a.qBias),
      read(a.kBias),
      read(a.vBias),
      read(a.qNorm),
      read(a.kNorm),
    ]);
    return { q, k, v, o, qBias, kBias, vBias, qNorm, kNorm };
  }

  /** A dense or shared MLP; its width is taken from the tensor (DenseSwiGlu checks the three agree). */
  private async mlp(names: MlpNames): Promise<ExpertWeights> {
    const [gate, up, down] = await Promise.all([names.gate, names.up, names.down].map((n) => this.checkpoint.readF32(n)));
    return new DenseSwiGlu(gate, up, down, this.config.hiddenSize, gate.length / this.config.hiddenSize);
  }

  private async moe(layout: LayerLayout): Promise<MoeWeights> {
    const names = layout.moe;
    if (!names) throw new Error(`layer ${layout.index} is MoE but the layout names no router`);
    const ckpt = this.checkpoint;
    const { hiddenSize, expertIntermediateSize } = this.config;
    const router = await ckpt.readF32(names.router);
    const moe: MoeWeights = {
      router,
      expert: async (e) => {
        if (this.bf16Experts && ckpt.readExpertBf16) {
          const read = ckpt.readExpertBf16.bind(ckpt);
          const [gate, up, down] = await Promise.all([read(layout.index, e, 'gate'), read(layout.index, e, 'up'), read(layout.index, e, 'down')]);
          if (gate && up && down) return new Bf16SwiGlu(gate, up, down, hiddenSize, expertIntermediateSize);
          // not all three stored as BF16: the expert is widened to f32 as a whole
        }
        const [gate, up, down] = await Promise.all([ckpt.readExpert(layout.index, e, 'gate'), ckpt.readExpert(layout.index, e, 'up'), ckpt.readExpert(layout.index, e, 'down')]);
        return new DenseSwiGlu(gate, up, down, hiddenSize, expertIntermediateSize);
      },
    };
    if (names.shared) moe.shared = await this.mlp(names.shared);
    if (names.sharedGate) moe.sharedGate = await ckpt.readF32(names.sharedGate);
    return moe;
  }
}

/**
 * A provider whose routed experts come from `expertFor` instead (e.g. compressed experts); all
 * other weights come from `base`. `expertFor` may return undefined to keep the base expert.
 */
export function withExperts(base: WeightProvider, expertFor: (layer: number, expert: number) => Promise<ExpertWeights | undefined>): WeightProvider {
  return {
    config: base.config,
    embed: (ids) => base.embed(ids),
    finalNorm: () => base.finalNorm(),
    lmHeadRows: (s, e) => base.lmHeadRows(s, e),
    layer: async (index) => {
      const layer = await base.layer(index);
      if (layer.mlp.kind !== 'moe') return layer;
      const moe = layer.mlp.moe;
      return {
        ...layer,
        mlp: { kind: 'moe', moe: { ...moe, expert: async (e) => (await expertFor(index, e)) ?? moe.expert(e) } },
      };
    },
  };
}
