/**
 * A `WeightProvider` that keeps every tensor it has served, for work that runs the same model many
 * times over (sampling calibration sequences token by token: without a KV cache each step runs
 * the whole model again, and re-reading and re-decoding BF16 weights from disk at every step
 * costs far more than the arithmetic on a small model).
 *
 * Only use it when the model fits comfortably in memory: `residentIfFits` falls back to the
 * streaming provider above the byte budget, which keeps large checkpoints layer by layer.
 */
import { fp8Bytes } from '../io/fp8-matrix.js';
import { mxfp4Bytes } from '../io/mxfp4-matrix.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { assertTokenIds, bf16HeldTensorNames, packedHeldTensorNames, type CheckpointWeightsOptions } from './checkpoint-weights.js';
import { gatherRows, type Weights } from './weight-matrix.js';
import type { ExpertWeights, LayerWeights, MoeWeights, NormWeights, WeightProvider } from './weights.js';

/** Default budget for keeping a model resident: decoded f32 weights up to 2 GiB. */
export const DEFAULT_RESIDENT_BYTES = 2 * 1024 ** 3;

export class ResidentWeights implements WeightProvider {
  private readonly layers = new Map<number, Promise<LayerWeights>>();
  private norm: Promise<NormWeights> | null = null;
  private headBias: Promise<Float32Array | null> | null = null;
  private embedTable: Promise<Weights> | null = null;
  private head: Promise<Weights> | null = null;

  constructor(private readonly inner: WeightProvider) {}

  get config() {
    return this.inner.config;
  }

  /**
   * Looked up in the whole table, held once (as the inner provider holds it: BF16 stays BF16)
   * when the inner provider can give its rows; a large vocabulary is otherwise scanned from disk
   * at every step.
   */
  async embed(ids: Int32Array): Promise<Float32Array> {
    if (!this.inner.embedRows) return this.inner.embed(ids);
    const { hiddenSize: h, vocabSize } = this.config;
    assertTokenIds(ids, vocabSize);
    const out = new Float32Array(ids.length * h);
    gatherRows(await this.embeddingTable(), h, ids, out);
    return out;
  }

  embedRows(start: number, end: number): Promise<Weights> {
    const h = this.config.hiddenSize;
    return this.embeddingTable().then((t) => t.subarray(start * h, end * h));
  }

  private embeddingTable(): Promise<Weights> {
    this.embedTable ??= this.inner.embedRows!(0, this.config.vocabSize).catch((err: unknown) => {
      this.embedTable = null;
      throw err;
    });
    return this.embedTable;
  }

  finalNorm(): Promise<NormWeights> {
    this.norm ??= this.inner.finalNorm();
    return this.norm;
  }

  lmHeadBias(): Promise<Float32Array | null> {
    this.headBias ??= this.inner.lmHeadBias();
    return this.headBias;
  }

  /** Rows of the whole output projection, read once (tied embeddings: the embedding table's). */
  lmHeadRows(start: number, end: number): Promise<Weights> {
    const h = this.config.hiddenSize;
    if (!this.head) {
      this.head = this.config.tieWordEmbeddings && this.inner.embedRows ? this.embeddingTable() : this.inner.lmHeadRows(0, this.config.vocabSize);
      this.head = this.head.catch((err: unknown) => {
        this.head = null;
        throw err;
      });
    }
    return this.head.then((t) => t.subarray(start * h, end * h));
  }

  layer(index: number): Promise<LayerWeights> {
    let layer = this.layers.get(index);
    if (!layer) {
      layer = this.inner.layer(index).then(keepExperts);
      this.layers.set(index, layer);
    }
    return layer;
  }
}

function keepExperts(layer: LayerWeights): LayerWeights {
  if (layer.mlp.kind !== 'moe') return layer;
  const moe = layer.mlp.moe;
  const experts = new Map<number, Promise<ExpertWeights>>();
  // the experts read so far, for the MoE block's one-call path
  const ready = new Map<number, ExpertWeights>();
  const resident: MoeWeights = {
    ...moe,
    expert(index: number) {
      let expert = experts.get(index);
      if (!expert) {
        expert = moe.expert(index).then((e) => {
          ready.set(index, e);
          return e;
        });
        experts.set(index, expert);
      }
      return expert;
    },
    residentExpert: (index: number) => ready.get(index),
  };
  return { ...layer, mlp: { kind: 'moe', moe: resident } };
}

/**
 * `ResidentWeights` over `provider` when the model's decoded weights (`parameterCount` × 4 bytes)
 * fit in `maxBytes`; otherwise `provider` itself, streaming as before.
 */
export function residentIfFits(provider: WeightProvider, parameterCount: number, maxBytes = DEFAULT_RESIDENT_BYTES): WeightProvider {
  return parameterCount * 4 <= maxBytes ? new ResidentWeights(provider) : provider;
}

/**
 * Bytes a checkpoint's weights take once resident: f32 for every tensor, except those a runtime
 * keeping BF16 weights holds as stored (`bf16Weights`: bf16HeldTensorNames, 2 bytes a value, or
 * none with `mapped`: they are then views of the mapped files, the page cache's pages, not the
 * process's own memory; Checkpoint.mapReads). A tensor decoded from FP8 or MXFP4
 * (TensorMeta.decoded) is the process's own copy, mapped or not: 2 bytes a value; MXFP4 experts
 * the runtime keeps as stored (packedHeldTensorNames) take 4.25 bits a value, FP8 ones their
 * scales (4 bytes a group of a row) and, unless mapped, a byte a value for their codes.
 */
export function residentWeightBytes(ckpt: Checkpoint, opts: CheckpointWeightsOptions & { mapped?: boolean } = {}): number {
  const keptBf16 = opts.bf16Weights ? bf16HeldTensorNames(ckpt) : new Set<string>();
  const { mxfp4: keptMxfp4, fp8: keptFp8 } = packedHeldTensorNames(ckpt, opts.bf16Weights ?? false);
  const keptBytes = opts.mapped ? 0 : 2;
  let bytes = 0;
  for (const name of ckpt.tensorNames()) {
    const meta = ckpt.tensor(name)!;
    const values = meta.shape.reduce((a, b) => a * b, 1);
    // MXFP4 experts kept as stored (copied out of the files: their rows are regrouped by expert
    // and matrix); a tensor decoded from FP8 or MXFP4 is a copy even where the files are mapped
    if (keptMxfp4.has(name)) bytes += mxfp4Bytes(1, values);
    else if (keptFp8.has(name)) {
      const cols = meta.shape[meta.shape.length - 1];
      // fp8TensorNames holds only tensors with a group (TensorMeta.fp8Group); mapped codes are the page cache's
      bytes += fp8Bytes(values / cols, cols, meta.fp8Group!) - (opts.mapped ? values : 0);
    } else bytes += values * (keptBf16.has(name) ? (meta.decoded ? 2 : keptBytes) : 4);
  }
  return bytes;
}
