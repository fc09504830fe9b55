/**
 * The output projection, streamed: logits are produced in blocks of (tokens × vocabulary rows)
 * so that neither the lm_head of a large vocabulary nor a [tokens × vocab] matrix is ever
 * materialised whole. Consumers (next-token NLL, KL between two models) accumulate per-token
 * statistics online across vocabulary chunks.
 */
import type { Engine, ForwardKernels, LogitStatsOut } from '../engine/types.js';
import { tsKernels } from '../engine/ts/kernels/index.js';
import type { WeightProvider } from './weights.js';
import { productTransB } from './weight-matrix.js';
import { ModelInputError } from './errors.js';

/**
 * Bytes of one lm_head chunk (f32) and of one logits block; bounded whatever the vocabulary. The
 * block is small enough to still be in cache when the consumer reads it right after the GEMM.
 */
const HEAD_CHUNK_BYTES = 32 * 1024 * 1024;
const LOGIT_BLOCK_BYTES = 8 * 1024 * 1024;

export interface LogitBlock {
  rowStart: number;
  rowCount: number;
  vocabStart: number;
  vocabCount: number;
  /** one (rowCount × vocabCount) block per model, same rows and vocabulary range; valid only
   * during the `consume` call (the buffers are reused for the next block) */
  logits: Float32Array[];
}

/**
 * Streams the logits of one or more models whose final hidden states (rows × hidden each) are
 * given; all models must share the vocabulary size.
 */
export async function streamLogits(
  models: { provider: WeightProvider; hidden: Float32Array }[],
  engine: Engine,
  rows: number,
  consume: (block: LogitBlock) => void,
  opts: { chunkRows?: number } = {},
): Promise<void> {
  const first = models[0];
  if (!first) return;
  const vocab = first.provider.config.vocabSize;
  for (const m of models) {
    if (m.provider.config.vocabSize !== vocab) {
      throw new ModelInputError(`models do not share a vocabulary (${vocab} vs ${m.provider.config.vocabSize} ids); compare models with the same tokenizer`);
    }
  }
  const maxHidden = Math.max(...models.map((m) => m.provider.config.hiddenSize));
  const chunk = headChunkRows(vocab, maxHidden, opts.chunkRows);
  const rowBlock = Math.max(1, Math.min(rows, Math.floor(LOGIT_BLOCK_BYTES / (4 * chunk * models.length))));
  // one block buffer per model for the whole call (consumers must not keep a block)
  const buffers = models.map(() => new Float32Array(rowBlock * chunk));
  for (let v0 = 0; v0 < vocab; v0 += chunk) {
    const vc = Math.min(chunk, vocab - v0);
    const weights = await Promise.all(models.map((m) => m.provider.lmHeadRows(v0, v0 + vc)));
    const biases = await Promise.all(models.map((m) => m.provider.lmHeadBias()));
    for (let r0 = 0; r0 < rows; r0 += rowBlock) {
      const rc = Math.min(rowBlock, rows - r0);
      const logits = models.map((m, i) => {
        const h = m.provider.config.hiddenSize;
        const out = rc * vc === buffers[i].length ? buffers[i] : buffers[i].subarray(0, rc * vc);
        productTransB(engine, rc, vc, h, m.hidden.subarray(r0 * h, (r0 + rc) * h), weights[i], out);
        addLogitBias(out, rc, vc, biases[i], v0);
        return out;
      });
      consume({ rowStart: r0, rowCount: rc, vocabStart: v0, vocabCount: vc, logits });
    }
  }
}

/** logits (rows × count, of vocabulary ids v0…) += lm_head's bias for those ids, where it has one (PhiMoE's). */
function addLogitBias(logits: Float32Array, rows: number, count: number, bias: Float32Array | null, v0: number): void {
  if (!bias) return;
  for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) logits[r * count + j] += bias[v0 + j];
}

/** lm_head rows per product: HEAD_CHUNK_BYTES of f32 weights, at least 256, at most the vocabulary. */
function headChunkRows(vocab: number, hidden: number, chunkRows?: number): number {
  return Math.min(vocab, chunkRows ?? Math.max(256, Math.floor(HEAD_CHUNK_BYTES / (4 * hidden))));
}

/**
 * Buffers `logitsInto` reuses from call to call: a decoding loop that asks for a step's logits
 * every few milliseconds would otherwise allocate (and fault in, and collect) a fresh block each
 * time. One per caller; a call must finish before the next one with the same workspace starts.
 */
export interface LogitsWorkspace {
  block?: Float32Array;
}

/**
 * The whole [rows × vocab] logits of `hidden` (rows × hidden) into `out`, for a few rows (a
 * decoding step's sampling rows). One row, or a vocabulary that fits in one chunk, is computed in
 * place; otherwise each chunk of the head goes through `work.block` and its rows are copied out.
 */
export async function logitsInto(
  provider: WeightProvider,
  engine: Engine,
  hidden: Float32Array,
  rows: number,
  out: Float32Array,
  work: LogitsWorkspace = {},
  opts: { chunkRows?: number } = {},
): Promise<void> {
  const { vocabSize: vocab, hiddenSize: h } = provider.config;
  if (out.length < rows * vocab) throw new RangeError(`logitsInto: out holds ${out.length} values, ${rows} rows × ${vocab} need ${rows * vocab}`);
  const chunk = headChunkRows(vocab, h, opts.chunkRows);
  const x = hidden.subarray(0, rows * h);
  const bias = await provider.lmHeadBias();
  for (let v0 = 0; v0 < vocab; v0 += chunk) {
    const vc = Math.min(chunk, vocab - v0);
    const weights = await provider.lmHeadRows(v0, v0 + vc);
    if (vc === vocab || rows === 1) {
      // the product's rows are already out's: all of each row, or one row's columns [v0, v0 + vc)
      productTransB(engine, rows, vc, h, x, weights, rows === 1 ? out.subarray(v0, v0 + vc) : out.subarray(0, rows * vocab));
      addLogitBias(rows === 1 ? out.subarray(v0, v0 + vc) : out, rows, vc, bias, v0);
      continue;
    }
    if (!work.block || work.block.length < rows * vc) work.block = new Float32Array(rows * vc);
    const block = work.block.subarray(0, rows * vc);
    productTransB(engine, rows, vc, h, x, weights, block);
    addLogitBias(block, rows, vc, bias, v0);
    for (let r = 0; r < rows; r++) out.set(block.subarray(r * vc, (r + 1) * vc), r * vocab + v0);
  }
}

/** The whole [rows × vocab] logits matrix (for small vocabularies and tests). */
export async function fullLogits(provider: WeightProvider, engine: Engine, hidden: Float32Array, rows: number): Promise<Float32Array> {
  const out = new Float32Array(rows * provider.config.vocabSize);
  await streamLogits([{ provider, hidden }], engine, rows, (b) => {
    const block = b.logits[0];
    for (let r = 0; r < b.rowCount; r++) {
      out.set(block.subarray(r * b.vocabCount, (r + 1) * b.vocabCount), (b.rowStart + r) * provider.config.vocabSize + b.vocabStart);
    }
  });
  return out;
}

/** Per-block row statistics, reused across blocks (grown when a block has more rows). */
class BlockScratch {
  out: LogitStatsOut = { max: new Float64Array(0), sumExp: new Float64Array(0), argmax: new Int32Array(0) };
  weightedDiff = new Float64Array(0);

  ensure(rows: number): void {
    if (this.out.max.length >= rows) return;
    this.out = { max: new Float64Array(rows), sumExp: new Float64Array(rows), argmax: new Int32Array(rows) };
    this.weightedDiff = new Float64Array(rows);
  }
}

/**
 * Online log-sum-exp, target logit and argmax per row, fed block by block.
 * nll(r) = logsumexp(logits_r) − logits_r[target_r].
 *
 * Each block is reduced by `kernels.logitStats` (vectorised in the native engine) to its row max,
 * argmax and Σ exp(l − block max); rows then merge blocks with the usual rescaling
 * Σ exp(l − M) = Σ exp(l − m_block) · exp(m_block − M).
 */
export class NextTokenStats {
  readonly max: Float64Array;
  readonly sumExp: Float64Array;
  readonly targetLogit: Float64Array;
  readonly argmax: Int32Array;
  private readonly block = new BlockScratch();
  /** exp(block max − running max) of the last merge() */
  blockScale = 1;

  constructor(
    readonly targets: Int32Array,
    private readonly kernels: ForwardKernels = tsKernels,
  ) {
    const n = targets.length;
    this.max = new Float64Array(n).fill(-Infinity);
    this.sumExp = new Float64Array(n);
    this.targetLogit = new Float64Array(n).fill(NaN);
    this.argmax = new Int32Array(n).fill(-1);
  }

  /** Reduces a block to per-row statistics (in `this.block`). */
  reduce(rowCount: number, vocabCount: number, logits: Float32Array, other?: Float32Array): BlockScratch {
    this.block.ensure(rowCount);
    const { out, weightedDiff } = this.block;
    this.kernels.logitStats(rowCount, vocabCount, logits.subarray(0, rowCount * vocabCount), out, other ? { logits: other.subarray(0, rowCount * vocabCount), weightedDiff } : undefined);
    return this.block;
  }

  /**
   * Merges block row i (already reduced) into row r: moves the running max (rescaling the running
   * sum), records the argmax and the target logit. Returns exp(old max − new max), the factor any
   * other sum kept relative to the max must be rescaled by, and sets `blockScale` to
   * exp(block max − new max).
   */
  merge(r: number, i: number, vocabStart: number, vocabCount: number, logits: Float32Array): number {
    const { max: bmax, sumExp: bsum, argmax: barg } = this.block.out;
    const m = this.max[r];
    const bm = bmax[i];
    let rescale = 1;
    if (bm > m) {
      rescale = Math.exp(m - bm);
      this.sumExp[r] = this.sumExp[r] * rescale + bsum[i];
      this.max[r] = bm;
      this.argmax[r] = vocabStart + barg[i];
      this.blockScale = 1;
    } else {
      this.blockScale = Math.exp(bm - m);
      this.sumExp[r] += bsum[i] * this.blockScale;
    }
    const t = this.targets[r];
    if (t >= vocabStart && t < vocabStart + vocabCount) this.targetLogit[r] = logits[i * vocabCount + t - vocabStart];
    return rescale;
  }

  add(rowStart: number, rowCount: number, vocabStart: number, vocabCount: number, logits: Float32Array): void {
    this.reduce(rowCount, vocabCount, logits);
    for (let i = 0; i < rowCount; i++) this.merge(rowStart + i, i, vocabStart, vocabCount, logits);
  }

  logSumExp(r: number): number {
    return this.max[r] + Math.log(this.sumExp[r]);
  }

  /** negative log-likelihood of row r's target (rows without a target, −1, give NaN) */
  nll(r: number): number {
    return this.logSumExp(r) - this.targetLogit[r];
  }
}

/**
 * Online KL(P_ref ‖ P_model) per row: with a = reference logits, b = model logits,
 * KL = Σ_v softmax(a)_v (a_v − b_v) − lse(a) + lse(b). The first sum is kept relative to the
 * running max of a and rescaled when that max grows, so one pass over the vocabulary suffices
 * (and each exp(a_v − max) serves both the normaliser and the KL sum).
 */
export class KlStats {
  readonly ref: NextTokenStats;
  readonly model: NextTokenStats;
  private readonly weightedDiff: Float64Array;

  constructor(targets: Int32Array, kernels: ForwardKernels = tsKernels) {
    this.ref = new NextTokenStats(targets, kernels);
    this.model = new NextTokenStats(targets, kernels);
    this.weightedDiff = new Float64Array(targets.length);
  }

  add(rowStart: number, rowCount: number, vocabStart: number, vocabCount: number, refLogits: Float32Array, modelLogits: Float32Array): void {
    const refBlock = this.ref.reduce(rowCount, vocabCount, refLogits, modelLogits);
    this.model.reduce(rowCount, vocabCount, modelLogits);
    for (let i = 0; i < rowCount; i++) {
      const r = rowStart + i;
      const rescale = this.ref.merge(r, i, vocabStart, vocabCount, refLogits);
      this.weightedDiff[r] = this.weightedDiff[r] * rescale + refBlock.weightedDiff[i] * this.ref.blockScale;
      this.model.merge(r, i, vocabStart, vocabCount, modelLogits);
    }
  }

  kl(r: number): number {
    return this.weightedDiff[r] / this.ref.sumExp[r] - this.ref.logSumExp(r) + this.model.logSumExp(r);
  }

  top1Agrees(r: number): boolean {
    return this.ref.argmax[r] === this.model.argmax[r];
  }
}
