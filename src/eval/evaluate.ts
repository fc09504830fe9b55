/**
 * Perplexity and fidelity over evaluation windows (docs/method.md): every window predicts its
 * seqLen − 1 next tokens; PPL = exp(mean NLL over all of them). Against a reference model the
 * same positions give mean KL(P_reference ‖ P_model) and top-1 agreement. Windows are run in
 * passes of at most `batchTokens` tokens, each pass layer by layer; the logits are streamed
 * over vocabulary chunks, never materialised whole.
 */
import { NonFiniteError } from '../checkpoint/finite.js';
import type { Engine } from '../engine/types.js';
import { batchFromSequences } from '../runtime/batch.js';
import { KlStats, NextTokenStats, streamLogits } from '../runtime/head.js';
import { runDecoder, type LayerProgress } from '../runtime/layerwise.js';
import { manyRowsWeights, weightProviderOf, type ModelSource } from '../runtime/index.js';
import { EvalSettingsError } from './seq-len.js';

export interface EvalOptions {
  /** tokens per layer-by-layer pass (default 16384): bounds activation memory */
  batchTokens?: number;
  onProgress?(p: EvalProgress): void;
  /**
   * Keeps the reference's final hidden states of every pass, so that comparing several models
   * with one reference on the same windows runs the reference's decoder once, not once per model.
   */
  referenceCache?: ReferenceCache;
}

/**
 * The reference model's final hidden states (tokens × hidden, f32) per pass over one list of
 * windows. It holds every evaluated token's hidden state in memory (400k tokens of a 256-wide
 * model are 400 MiB), which is why it is opt-in; it is tied to the windows, the reference and the
 * pass size it was filled with and refuses any other.
 */
export class ReferenceCache {
  private readonly passes = new Map<number, Float32Array>();
  private owner: { reference: ModelSource; perPass: number } | undefined;

  constructor(readonly windows: Int32Array[]) {}

  /** Bytes held. */
  get bytes(): number {
    let total = 0;
    for (const h of this.passes.values()) total += h.byteLength;
    return total;
  }

  /** @internal the hidden states of pass `p`, computed by `compute` on first use */
  async hidden(reference: ModelSource, windows: Int32Array[], perPass: number, p: number, compute: () => Promise<Float32Array>): Promise<Float32Array> {
    if (windows !== this.windows) throw new EvalSettingsError('this reference cache was filled on other windows: give each window list its own cache');
    if (this.owner === undefined) this.owner = { reference, perPass };
    else if (this.owner.reference !== reference || this.owner.perPass !== perPass) {
      throw new EvalSettingsError('this reference cache was filled with another reference model or `batchTokens`: give each its own cache');
    }
    let h = this.passes.get(p);
    if (h === undefined) {
      h = await compute();
      this.passes.set(p, h);
    }
    return h;
  }
}

export interface EvalProgress {
  pass: number;
  passes: number;
  model: 'model' | 'reference';
  layer: LayerProgress;
}

export interface PerplexityResult {
  windows: number;
  seqLen: number;
  /** predicted tokens (windows × (seqLen − 1)) */
  tokens: number;
  meanNll: number;
  perplexity: number;
}

export interface ComparisonResult {
  tokens: number;
  /** mean over predicted positions of KL(P_reference ‖ P_model), nats */
  meanKl: number;
  /** fraction of positions where both models' most likely next token agree */
  top1Agreement: number;
}

export interface EvaluationResult {
  model: PerplexityResult;
  reference?: PerplexityResult;
  comparison?: ComparisonResult;
}

/** Perplexity of `model` (and, with `reference`, the reference's perplexity, KL and top-1 agreement). */
export async function evaluateWindows(
  model: ModelSource,
  engine: Engine,
  windows: Int32Array[],
  reference?: ModelSource,
  opts: EvalOptions = {},
): Promise<EvaluationResult> {
  if (windows.length === 0) throw new EvalSettingsError('no evaluation windows: the dataset is shorter than one window');
  const seqLen = windows[0].length;
  if (windows.some((w) => w.length !== seqLen)) throw new EvalSettingsError('evaluation windows must all have the same length');
  const held = manyRowsWeights(engine);
  const provider = weightProviderOf(model, held);
  const refProvider = reference ? weightProviderOf(reference, held) : undefined;
  const perPass = Math.max(1, Math.floor((opts.batchTokens ?? 16384) / seqLen));
  const passes = Math.ceil(windows.length / perPass);

  let nll = 0;
  let refNll = 0;
  let kl = 0;
  let agree = 0;
  let tokens = 0;
  for (let p = 0; p < passes; p++) {
    const group = windows.slice(p * perPass, (p + 1) * perPass);
    const batch = batchFromSequences(group);
    const rows = batch.ids.length;
    // row r predicts the next token of its window; the last row of each window predicts nothing
    const targets = new Int32Array(rows).fill(-1);
    group.forEach((w, i) => {
      for (let t = 0; t + 1 < seqLen; t++) targets[i * seqLen + t] = w[t + 1];
    });
    const progress = (which: 'model' | 'reference') => (layer: LayerProgress) => opts.onProgress?.({ pass: p, passes, model: which, layer });
    const hidden = await runDecoder(provider, engine, batch, { onLayer: progress('model') });
    if (!refProvider) {
      const stats = new NextTokenStats(targets, engine.kernels);
      await streamLogits([{ provider, hidden }], engine, rows, (b) => stats.add(b.rowStart, b.rowCount, b.vocabStart, b.vocabCount, b.logits[0]));
      for (let r = 0; r < rows; r++) {
        if (targets[r] < 0) continue;
        const v = stats.nll(r);
        if (!Number.isFinite(v)) throw nonFiniteNll('model', p * perPass, r, seqLen, v);
        nll += v;
      }
    } else {
      const runReference = () => runDecoder(refProvider, engine, batch, { onLayer: progress('reference') });
      const refHidden = opts.referenceCache ? await opts.referenceCache.hidden(reference!, windows, perPass, p, runReference) : await runReference();
      const stats = new KlStats(targets, engine.kernels);
      await streamLogits([{ provider: refProvider, hidden: refHidden }, { provider, hidden }], engine, rows, (b) =>
        stats.add(b.rowStart, b.rowCount, b.vocabStart, b.vocabCount, b.logits[0], b.logits[1]),
      );
      for (let r = 0; r < rows; r++) {
        if (targets[r] < 0) continue;
        const v = stats.model.nll(r);
        const rv = stats.ref.nll(r);
        if (!Number.isFinite(v)) throw nonFiniteNll('model', p * perPass, r, seqLen, v);
        if (!Number.isFinite(rv)) throw nonFiniteNll('reference', p * perPass, r, seqLen, rv);
        nll += v;
        refNll += rv;
        kl += stats.kl(r);
        if (stats.top1Agrees(r)) agree++;
      }
    }
    tokens += group.length * (seqLen - 1);
  }
  const summary = (total: number): PerplexityResult => ({ windows: windows.length, seqLen, tokens, meanNll: total / tokens, perplexity: Math.exp(total / tokens) });
  const result: EvaluationResult = { model: summary(nll) };
  if (refProvider) {
    result.reference = summary(refNll);
    result.comparison = { tokens, meanKl: kl / tokens, top1Agreement: agree / tokens };
  }
  return result;
}

/**
 * A NaN or infinite NLL is refused instead of averaged into a NaN perplexity: it comes from a
 * non-finite weight or an activation that overflowed, and no number printed from it means anything.
 */
function nonFiniteNll(which: 'model' | 'reference', firstWindow: number, row: number, seqLen: number, value: number): NonFiniteError {
  const w = firstWindow + Math.floor(row / seqLen);
  return new NonFiniteError(
    `the ${which}'s next-token loss is ${Number.isNaN(value) ? 'NaN' : 'infinite'} at window ${w}, position ${row % seqLen}: its logits are not finite (a NaN/Inf weight, or an activation that overflowed), so no perplexity is reported; check the weights with rfid-moe inspect (with its \`verify\` option) or recompress`,
  );
}

/** Perplexity of a model over evaluation windows. */
export async function computePerplexity(model: ModelSource, engine: Engine, windows: Int32Array[], opts: EvalOptions = {}): Promise<PerplexityResult> {
  return (await evaluateWindows(model, engine, windows, undefined, opts)).model;
}

/** Mean KL(P_reference ‖ P_model) and top-1 agreement of next-token distributions (plus both perplexities). */
export async function compareModels(
  model: ModelSource,
  reference: ModelSource,
  engine: Engine,
  windows: Int32Array[],
  opts: EvalOptions = {},
): Promise<Required<EvaluationResult>> {
  return (await evaluateWindows(model, engine, windows, reference, opts)) as Required<EvaluationResult>;
}
