/**
 * The runtime's family tests' check of the KV cache: sequences run in cached pieces (a prefill, then
 * chunks and single tokens, each continuing the cache) give the hidden states of the whole
 * sequences run at once. The KV-cache, Llama 4, Mistral 4 and MiMo-V2-Flash tests each wrote this
 * loop out.
 */
import type { Engine } from '../../src/engine/types.js';
import { batchFromSequences, runDecoder, type KvCache } from '../../src/runtime/index.js';
import type { WeightProvider } from '../../src/runtime/weights.js';

/**
 * Runs `sequences` (of one length) in the pieces `steps` ([a, b) of every sequence at once, in
 * order, continuing `cache` from slot 0 on) and answers the largest difference of a piece's hidden
 * states from the whole sequences', |Δ| / (1 + |whole|) over every element; `afterStep` looks at
 * the cache after each piece.
 */
export async function worstCachedPieceDifference(
  provider: WeightProvider,
  engine: Engine,
  sequences: number[][],
  steps: ReadonlyArray<[number, number]>,
  cache: KvCache,
  afterStep?: (a: number, b: number) => void,
): Promise<number> {
  const h = provider.config.hiddenSize;
  const len = sequences[0].length;
  if (sequences.some((s) => s.length !== len)) throw new RangeError('the sequences must have one length');
  const full = await runDecoder(provider, engine, batchFromSequences(sequences));
  let worst = 0;
  for (const [a, b] of steps) {
    const got = await runDecoder(provider, engine, batchFromSequences(sequences.map((s) => s.slice(a, b))), { kvCache: cache });
    for (let s = 0; s < sequences.length; s++) {
      for (let t = a; t < b; t++) {
        const ref = full.subarray((s * len + t) * h, (s * len + t + 1) * h);
        const row = got.subarray((s * (b - a) + t - a) * h, (s * (b - a) + t - a + 1) * h);
        for (let j = 0; j < h; j++) worst = Math.max(worst, Math.abs(row[j] - ref[j]) / (1 + Math.abs(ref[j])));
      }
    }
    afterStep?.(a, b);
  }
  return worst;
}

/** Two sequences of `len` tokens below 64 (every fixture's vocabulary). */
export function twoSequences(len: number): number[][] {
  return [Array.from({ length: len }, (_, i) => (i * 7 + 3) % 64), Array.from({ length: len }, (_, i) => (i * 11 + 5) % 64)];
}

/** Pieces of `len` (≥ 27) positions: a prefill of 3, a chunk of 6, one of 1, single tokens, a chunk of 7, single tokens. */
export function prefillChunkAndTokenSteps(len: number): Array<[number, number]> {
  const steps: Array<[number, number]> = [[0, 3], [3, 9], [9, 10]];
  for (let t = 10; t < 20; t++) steps.push([t, t + 1]);
  steps.push([20, 27]);
  for (let t = 27; t < len; t++) steps.push([t, t + 1]);
  return steps;
}
