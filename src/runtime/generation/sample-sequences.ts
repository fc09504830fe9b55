/**
 * Sequences sampled from a model itself: the calibration and held-out data used when no dataset
 * is given. Every sequence starts at the BOS token (token 0 when the config names none) and each
 * next token is drawn from softmax(logits) at temperature 1 with a seeded generator, so the same
 * seed gives the same sequences on every machine.
 *
 * Generation is incremental: a KV cache keeps each layer's past keys and values, so step t runs
 * only the newest token of each sequence.
 */
import type { Engine } from '../../engine/types.js';
import { mulberry32 } from '../../util/prng.js';
import { batchFromSequences } from '../batch.js';
import { streamLogits } from '../head.js';
import { KvCache, kvCacheShape, kvWindows } from '../kv-cache.js';
import { runDecoder } from '../layerwise.js';
import type { WeightProvider } from '../weights.js';
import { drawToken } from './sampling.js';

export interface SampleOptions {
  count: number;
  /** tokens per sequence, the start token included */
  length: number;
  seed: number;
  /** default: config.bosTokenId, else 0 */
  startToken?: number;
  /** called after each generated position */
  onStep?(done: number, of: number): void;
}

export async function sampleSequences(provider: WeightProvider, engine: Engine, opts: SampleOptions): Promise<Int32Array[]> {
  const { count, length, seed } = opts;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`sample count must be a positive integer, got ${count}`);
  if (!Number.isInteger(length) || length < 2) throw new RangeError(`sampled sequence length must be at least 2, got ${length}`);
  const vocab = provider.config.vocabSize;
  const start = opts.startToken ?? provider.config.bosTokenId ?? 0;
  if (start < 0 || start >= vocab) throw new RangeError(`start token ${start} is outside the vocabulary [0, ${vocab})`);
  const random = mulberry32(seed);
  const sequences = Array.from({ length: count }, () => {
    const s = new Int32Array(length);
    s[0] = start;
    return s;
  });
  const shape = kvCacheShape(provider.config);
  const cache = new KvCache(provider.config.numLayers, count, length, shape.width, shape.headDim, shape.valuesAreKeys, { windows: kvWindows(provider.config), layerWidths: shape.layerWidths, valueHeadDim: shape.valueHeadDim });
  for (let t = 1; t < length; t++) {
    // each sequence's newest token; the cache supplies the positions before it
    const batch = batchFromSequences(sequences.map((s) => s.subarray(t - 1, t)));
    const last = await runDecoder(provider, engine, batch, { kvCache: cache });
    const logits = new Float32Array(count * vocab);
    await streamLogits([{ provider, hidden: last }], engine, count, (b) => {
      for (let r = 0; r < b.rowCount; r++) {
        logits.set(b.logits[0].subarray(r * b.vocabCount, (r + 1) * b.vocabCount), (b.rowStart + r) * vocab + b.vocabStart);
      }
    });
    for (let i = 0; i < count; i++) sequences[i][t] = drawToken(logits.subarray(i * vocab, (i + 1) * vocab), random());
    opts.onStep?.(t, length - 1);
  }
  return sequences;
}
