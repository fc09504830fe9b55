/**
 * A batch of token sequences, stored ragged (each sequence keeps its own length) and flattened
 * row-wise: token r of the batch is row r of every activation matrix. Padding never enters the
 * forward pass, so it can neither be attended to nor counted by routing statistics: a padded,
 * masked batch is converted with `batchFromPadded`, which keeps only the valid tokens.
 */
export interface TokenBatch {
  /** all token ids, sequence after sequence */
  ids: Int32Array;
  /** start row of each sequence in `ids` (length = sequences + 1, last = ids.length) */
  offsets: Int32Array;
}

export function batchFromSequences(sequences: ArrayLike<number>[]): TokenBatch {
  const offsets = new Int32Array(sequences.length + 1);
  sequences.forEach((s, i) => (offsets[i + 1] = offsets[i] + s.length));
  const ids = new Int32Array(offsets[sequences.length]);
  sequences.forEach((s, i) => ids.set(Array.from(s), offsets[i]));
  return { ids, offsets };
}

/**
 * From a right-padded batch and its attention mask (1 = token, 0 = padding). Left padding or
 * holes are rejected: with position ids 0..L−1 (what Hugging Face uses for a plain forward)
 * they would shift every later token's position.
 */
export function batchFromPadded(ids: ArrayLike<number>[], mask: ArrayLike<number>[]): TokenBatch {
  if (ids.length !== mask.length) throw new Error(`batch has ${ids.length} rows of ids but ${mask.length} rows of mask`);
  const sequences = ids.map((row, b) => {
    const m = mask[b];
    if (m.length !== row.length) throw new Error(`row ${b}: ${row.length} ids but ${m.length} mask entries`);
    let valid = 0;
    while (valid < m.length && m[valid] === 1) valid++;
    for (let t = valid; t < m.length; t++) {
      if (m[t] !== 0) throw new Error(`row ${b}: the attention mask must be 1s followed by 0s (right padding); found ${m[t]} at position ${t} after padding`);
    }
    return Array.from(row).slice(0, valid);
  });
  return batchFromSequences(sequences);
}

export function sequenceCount(batch: TokenBatch): number {
  return batch.offsets.length - 1;
}

export function longestSequence(batch: TokenBatch): number {
  let max = 0;
  for (let s = 0; s + 1 < batch.offsets.length; s++) max = Math.max(max, batch.offsets[s + 1] - batch.offsets[s]);
  return max;
}

/** position of every row within its own sequence */
export function positionsOf(batch: TokenBatch): Int32Array {
  const pos = new Int32Array(batch.ids.length);
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    for (let r = batch.offsets[s]; r < batch.offsets[s + 1]; r++) pos[r] = r - batch.offsets[s];
  }
  return pos;
}
