/**
 * `WeightProvider` over an opened checkpoint: every tensor is read from disk (BF16/F16 decoded
 * to f32 by the checkpoint reader, or BF16 matrices kept as stored with `bf16Weights`) only when
 * the forward pass reaches it, and nothing is cached beyond the embedding/output rows of small
 * vocabularies, so a model larger than RAM can run.
 */
import type { Checkpoint, FusedMlpNames, IndexerNames, LayerLayout, MlaAttentionNames, MlpNames, ModelLayout, NormSite } from '../checkpoint/types.js';
import { expertTensorNames } from '../checkpoint/expert-location.js';
import { swiGlu } from './mlp.js';
import { Fp8SwiGlu } from './fp8-swiglu.js';
import { Mxfp4SwiGlu } from './mxfp4-swiglu.js';
import { gatherRows, type Weights } from './weight-matrix.js';
import type { AttentionWeights, ExpertWeights, LayerWeights, MlaAttentionWeights, MoeWeights, NormWeights, WeightProvider } from './weights.js';
import { ModelInputError, UnsupportedModelError } from './errors.js';
import { ropeSpecOf } from './rope.js';
import { unrunnableReason } from '../checkpoint/runnable.js';

export { UnsupportedModelError };

/** Tables up to this size (as held) are read whole once and kept (embedding lookups, lm_head chunks). */
const CACHE_LIMIT_BYTES = 256 * 1024 * 1024;
/** Rows per read when a big embedding table is scanned for the ids a batch needs. */
const EMBED_SCAN_ROWS = 8192;

/** Refuses token ids outside the vocabulary (a model run with another model's tokenizer). */
export function assertTokenIds(ids: Int32Array, vocabSize: number): void {
  for (const id of ids) {
    if (id < 0 || id >= vocabSize) throw new ModelInputError(`token id ${id} is outside the model's vocabulary [0, ${vocabSize}); is the tokenizer the model's own?`);
  }
}

/** Throws an UnsupportedModelError where the runtime would run the model wrong (checkpoint/runnable.ts). */
export function assertRunnable(ckpt: Checkpoint): void {
  const reason = unrunnableReason(ckpt.config);
  if (reason !== null) throw new UnsupportedModelError(reason);
  ropeSpecOf(ckpt.config);
  if (ckpt.config.attention === 'mla' && !ckpt.layout.layers.every((l) => l.attention.mla)) throw new UnsupportedModelError('the config asks for MLA attention but the layout names no MLA tensors');
}

export interface CheckpointWeightsOptions {
  /**
   * Weight matrices stored as BF16 stay BF16 in memory, and routed experts stored as MXFP4
   * (gpt-oss's) or as FP8 codes with scales (DeepSeek-V3's, Qwen3-FP8's) stay so (Mxfp4SwiGlu,
   * Fp8SwiGlu): routed experts (Bf16SwiGlu), the attention
   * projections, dense and shared MLPs, the embedding table and the lm_head. Half the bytes of
   * f32, and decoding's few-row products read half as much (ForwardKernels.gemmBf16, whose
   * widening is exact). Norms, biases and the router stay f32. Default false: every weight widened
   * to f32. Generation and the server turn it on; evaluation and calibration, whose products have
   * many rows, keep f32.
   */
  bf16Weights?: boolean;
}

export class CheckpointWeights implements WeightProvider {
  private embedCache: Weights | null = null;
  private headCache: Weights | null = null;
  private headBias: Promise<Float32Array | null> | null = null;
  readonly bf16Weights: boolean;
  /** the routed-expert tensors held in MXFP4 / FP8 as stored (packedHeldTensorNames; residentWeightBytes counts the same) */
  private readonly mxfp4Held: ReadonlySet<string>;
  private readonly fp8Held: ReadonlySet<string>;

  constructor(
    readonly checkpoint: Checkpoint,
    opts: CheckpointWeightsOptions = {},
  ) {
    assertRunnable(checkpoint);
    this.bf16Weights = opts.bf16Weights ?? false;
    const packed = packedHeldTensorNames(checkpoint, this.bf16Weights);
    this.mxfp4Held = packed.mxfp4;
    this.fp8Held = packed.fp8;
  }

  get config() {
    return this.checkpoint.config;
  }

  /** A matrix as held: its BF16 patterns when kept so and stored so, else f32. */
  private async matrix(name: string): Promise<Weights> {
    const ckpt = this.checkpoint;
    return (this.bf16Weights && ckpt.readBf16 ? await ckpt.readBf16(name) : null) ?? ckpt.readF32(name);
  }

  private async matrixRows(name: string, start: number, end: number): Promise<Weights> {
    const ckpt = this.checkpoint;
    return (this.bf16Weights && ckpt.readRowsBf16 ? await ckpt.readRowsBf16(name, start, end) : null) ?? ckpt.readRowsF32(name, start, end);
  }

  private tableFits(name: string): boolean {
    const bytesPerValue = this.bf16Weights && this.checkpoint.readBf16 && this.checkpoint.tensor(name)?.dtype === 'BF16' ? 2 : 4;
    return this.config.vocabSize * this.config.hiddenSize * bytesPerValue <= CACHE_LIMIT_BYTES;
  }

  async embed(ids: Int32Array): Promise<Float32Array> {
    const { hiddenSize: h, vocabSize } = this.config;
    assertTokenIds(ids, vocabSize);
    const out = new Float32Array(ids.length * h);
    const name = this.checkpoint.layout.embed;
    if (this.tableFits(name)) {
      this.embedCache ??= name === this.checkpoint.layout.lmHead && this.headCache ? this.headCache : await this.matrix(name);
      gatherRows(this.embedCache, h, ids, out);
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

  embedRows(start: number, end: number): Promise<Weights> {
    return this.matrixRows(this.checkpoint.layout.embed, start, end);
  }

  async lmHeadRows(start: number, end: number): Promise<Weights> {
    const h = this.config.hiddenSize;
    const name = this.checkpoint.layout.lmHead;
    if (this.tableFits(name)) {
      // tied embeddings: one table serves both
      this.headCache ??= name === this.checkpoint.layout.embed && this.embedCache ? this.embedCache : await this.matrix(name);
      return this.headCache.subarray(start * h, end * h);
    }
    return this.matrixRows(name, start, end);
  }

  /** read once: a decoding step asks for it every step */
  lmHeadBias(): Promise<Float32Array | null> {
    const name = this.checkpoint.layout.lmHeadBias;
    this.headBias ??= name === undefined ? Promise.resolve(null) : this.checkpoint.readF32(name);
    return this.headBias;
  }

  finalNorm(): Promise<NormWeights> {
    const { finalNorm, finalNormBias } = this.checkpoint.layout;
    return this.norm(finalNorm, finalNormBias);
  }

  /** A norm's weight, with its bias where the layout names one. */
  private async norm(weight: string, bias: string | undefined): Promise<NormWeights> {
    const [w, b] = await Promise.all([this.checkpoint.readF32(weight), bias === undefined ? undefined : this.checkpoint.readF32(bias)]);
    return b ? { weight: w, bias: b } : { weight: w };
  }

  async layer(index: number): Promise<LayerWeights> {
    const layout = this.checkpoint.layout.layers[index];
    if (!layout) throw new RangeError(`layer ${index} does not exist (the model has ${this.checkpoint.layout.layers.length})`);
    const sites = Object.entries(layout.norms) as Array<[NormSite, string]>;
    const [attention, ...weights] = await Promise.all([this.attention(layout), ...sites.map(([site, name]) => this.norm(name, layout.normBiases?.[site]))]);
    const norms = Object.fromEntries(sites.map(([site], i) => [site, weights[i]])) as LayerWeights['norms'];
    if (layout.kind === 'moe') return { index, norms, attention, mlp: { kind: 'moe', moe: await this.moe(layout) } };
    if (!layout.dense) throw new Error(`layer ${index} is dense but the layout names no MLP tensors`);
    const dense = await this.mlp(layout.dense);
    return { index, norms, attention, mlp: { kind: 'dense', dense } };
  }

  /** A vector the layout names only in some families (a bias, a norm), f32; undefined where it names none. */
  private readOptional(name: string | undefined): Promise<Float32Array | undefined> {
    return name ? this.checkpoint.readF32(name) : Promise.resolve(undefined);
  }

  private async attention(layout: LayerLayout): Promise<AttentionWeights> {
    const a = layout.attention;
    if (a.mla) return this.mlaAttention(a.mla, a.o, a.indexer);
    const read = (name: string | undefined) => this.readOptional(name);
    const [q, k, v, o, qBias, kBias, vBias, qNorm, kNorm, oBias, sinks, outputGate] = await Promise.all([
      this.matrix(a.q),
      this.matrix(a.k),
      this.matrix(a.v),
      this.matrix(a.o),
      read(a.qBias),
      read(a.kBias),
      read(a.vBias),
      read(a.qNorm),
      read(a.kNorm),
      read(a.oBias),
      read(a.sinks),
      a.outputGate ? this.matrix(a.outputGate) : undefined,
    ]);
    return { q, k, v, o, qBias, kBias, vBias, qNorm, kNorm, ...(oBias ? { oBias } : {}), ...(sinks ? { sinks } : {}), ...(outputGate ? { outputGate } : {}) };
  }

  private async mlaAttention(names: MlaAttentionNames, o: string, indexerNames?: IndexerNames): Promise<MlaAttentionWeights> {
    const ckpt = this.checkpoint;
    const query = names.qProj ?? names.qB;
    if (!query) throw new Error('an MLA layer names neither q_proj nor q_b_proj');
    const [q, qA, qANorm, kvA, kvANorm, kvB, out] = await Promise.all([
      this.matrix(query),
      names.qA ? this.matrix(names.qA) : undefined,
      names.qANorm ? ckpt.readF32(names.qANorm) : undefined,
      this.matrix(names.kvA),
      ckpt.readF32(names.kvANorm),
      ckpt.readF32(names.kvB),
      this.matrix(o),
    ]);
    if (names.qA && (!qA || !qANorm)) throw new Error('an MLA layer with q-LoRA lacks q_a_proj or q_a_layernorm');
    if (!indexerNames) return { kind: 'mla', q, qA, qANorm, kvA, kvANorm, kvB, o: out };
    const [wqB, wk, kNorm, kNormBias, weightsProj] = await Promise.all([
      this.matrix(indexerNames.wqB),
      this.matrix(indexerNames.wk),
      ckpt.readF32(indexerNames.kNorm),
      ckpt.readF32(indexerNames.kNormBias),
      this.matrix(indexerNames.weightsProj),
    ]);
    return { kind: 'mla', q, qA, qANorm, kvA, kvANorm, kvB, o: out, indexer: { wqB, wk, kNorm, kNormBias, weightsProj } };
  }

  /**
   * A dense or shared MLP; its width is taken from the tensor (SwiGlu checks the three agree). A
   * fused gate/up tensor is held once, its gate rows and up rows as two views of it.
   */
  private async mlp(names: MlpNames | FusedMlpNames): Promise<ExpertWeights> {
    const h = this.config.hiddenSize;
    if ('gateUp' in names) {
      const [gateUp, down] = await Promise.all([this.matrix(names.gateUp), this.matrix(names.down)]);
      const half = gateUp.length / 2;
      return swiGlu(gateUp.subarray(0, half), gateUp.subarray(half), down, h, half / h);
    }
    const [gate, up, down] = await Promise.all([names.gate, names.up, names.down].map((n) => this.matrix(n)));
    return swiGlu(gate, up, down, h, gate.length / h);
  }

  private async moe(layout: LayerLayout): Promise<MoeWeights> {
    const names = layout.moe;
    if (!names) throw new Error(`layer ${layout.index} is MoE but the layout names no router`);
    const ckpt = this.checkpoint;
    const { hiddenSize, expertIntermediateSize } = this.config;
    const router = await ckpt.readF32(names.router);
    const keepBf16 = this.bf16Weights && ckpt.readExpertBf16 ? ckpt.readExpertBf16.bind(ckpt) : null;
    // MXFP4 or FP8 kept as stored (with bf16Weights) where all the layer's expert tensors are so:
    // a quarter or half of their BF16 form
    const expertNames = expertTensorNames(names);
    const allHeld = (held: ReadonlySet<string>) => expertNames.length > 0 && expertNames.every((n) => held.has(n));
    const keepMxfp4 = allHeld(this.mxfp4Held) ? ckpt.readExpertMxfp4!.bind(ckpt) : null;
    const keepFp8 = allHeld(this.fp8Held) ? ckpt.readExpertFp8!.bind(ckpt) : null;
    /** expert e's three matrices through `read`, or null where one is not kept so */
    const stored = async <M>(read: (layer: number, expert: number, type: 'gate' | 'up' | 'down') => Promise<M | null>, e: number): Promise<[M, M, M] | null> => {
      const [gate, up, down] = await Promise.all([read(layout.index, e, 'gate'), read(layout.index, e, 'up'), read(layout.index, e, 'down')]);
      return gate && up && down ? [gate, up, down] : null;
    };
    const moe: MoeWeights = {
      router,
      expert: async (e) => {
        const mxfp4 = keepMxfp4 ? await stored(keepMxfp4, e) : null;
        if (mxfp4) return new Mxfp4SwiGlu(...mxfp4, hiddenSize, expertIntermediateSize);
        const fp8 = keepFp8 ? await stored(keepFp8, e) : null;
        if (fp8) return new Fp8SwiGlu(...fp8, hiddenSize, expertIntermediateSize);
        // each matrix as held: BF16 kept where stored so (with bf16Weights), any other dtype widened
        const read = async (type: 'gate' | 'up' | 'down') => (keepBf16 ? await keepBf16(layout.index, e, type) : null) ?? ckpt.readExpert(layout.index, e, type);
        const [gate, up, down] = await Promise.all([read('gate'), read('up'), read('down')]);
        return swiGlu(gate, up, down, hiddenSize, expertIntermediateSize);
      },
    };
    if (names.routerBias) moe.routerBias = await ckpt.readF32(names.routerBias);
    if (names.routerLogitBias) moe.routerLogitBias = await ckpt.readF32(names.routerLogitBias);
    if (names.fused?.gateUpBias && names.fused.downBias) {
      const [gateUp, down] = await Promise.all([ckpt.readF32(names.fused.gateUpBias), ckpt.readF32(names.fused.downBias)]);
      moe.expertBiases = { gateUp, down };
    }
    if (names.shared) moe.shared = await this.mlp(names.shared);
    if (names.sharedGate) moe.sharedGate = await ckpt.readF32(names.sharedGate);
    return moe;
  }
}

/**
 * The routed-expert tensors CheckpointWeights with `bf16Weights` holds in their packed stored form (none without it),
 * where the checkpoint can read them so (a checked checkpoint, withFiniteChecks, cannot): MXFP4
 * (Checkpoint.mxfp4TensorNames, 4.25 bits a value) and FP8 (fp8TensorNames, a byte a value and
 * the scales). What residentWeightBytes counts so.
 */
export function packedHeldTensorNames(ckpt: Checkpoint, bf16Weights: boolean): { mxfp4: Set<string>; fp8: Set<string> } {
  return {
    mxfp4: bf16Weights && ckpt.readExpertMxfp4 && ckpt.mxfp4TensorNames ? ckpt.mxfp4TensorNames() : new Set(),
    fp8: bf16Weights && ckpt.readExpertFp8 && ckpt.fp8TensorNames ? ckpt.fp8TensorNames() : new Set(),
  };
}

/**
 * The tensors CheckpointWeights with `bf16Weights` holds as stored BF16 (2 bytes a value): the
 * attention projections, dense and shared MLPs, the embedding table and lm_head, and the routed
 * experts (Checkpoint.bf16TensorNames: for a compressed model, their factors), where stored as
 * BF16 and where the checkpoint can read them so.
 */
export function bf16HeldTensorNames(ckpt: Checkpoint): Set<string> {
  const names = new Set(ckpt.bf16TensorNames ? ckpt.bf16TensorNames() : []);
  if (!ckpt.readBf16) return names;
  for (const name of matrixNames(ckpt.layout)) if (ckpt.tensor(name)?.dtype === 'BF16') names.add(name);
  return names;
}

/** The non-expert matrices a forward pass multiplies by (and the embedding table). */
function matrixNames(layout: ModelLayout): string[] {
  const names = [layout.embed, layout.lmHead];
  for (const l of layout.layers) {
    const a = l.attention;
    // MLA's kv_b_proj is held f32 (MlaAttentionWeights)
    if (a.mla) names.push(...[a.mla.qProj, a.mla.qA, a.mla.qB, a.mla.kvA].filter((n): n is string => n !== undefined), a.o);
    else names.push(a.q, a.k, a.v, a.o, ...(a.outputGate ? [a.outputGate] : []));
    if (a.indexer) names.push(a.indexer.wqB, a.indexer.wk, a.indexer.weightsProj);
    for (const mlp of [l.dense, l.moe?.shared]) if (mlp) names.push(...('gateUp' in mlp ? [mlp.gateUp, mlp.down] : [mlp.gate, mlp.up, mlp.down]));
  }
  return names;
}

/**
 * A provider whose routed experts come from `expertFor` instead (e.g. compressed experts); all
 * other weights come from `base`. `expertFor` may return undefined to keep the base expert.
 */
export function withExperts(base: WeightProvider, expertFor: (layer: number, expert: number) => Promise<ExpertWeights | undefined>): WeightProvider {
  return {
    config: base.config,
    embed: (ids) => base.embed(ids),
    ...(base.embedRows ? { embedRows: base.embedRows.bind(base) } : {}),
    finalNorm: () => base.finalNorm(),
    lmHeadRows: (s, e) => base.lmHeadRows(s, e),
    lmHeadBias: () => base.lmHeadBias(),
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
