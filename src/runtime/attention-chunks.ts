/**
 * Chunked local attention (Llama 4's attention_chunk_size, ModelConfig.attentionChunk): a
 * sequence's positions fall into consecutive chunks of C from its start, and a query attends only
 * to the earlier positions of its own chunk. So the rows of one attention call are cut where a
 * chunk starts, and each piece is attended as a sequence of its own whose keys begin at its
 * chunk's start: a piece that starts a chunk sees its own rows only (a prompt's pieces are plain
 * sequences for ForwardKernels.causalAttention), one that continues a cached chunk sees that
 * chunk's cached positions (ForwardKernels.cachedAttention's `from`). The attention kernels do
 * no masked work for the other chunks.
 */

/** A batch's rows cut at chunk starts, each piece a sequence of its own for the attention kernels. */
export interface ChunkPieces {
  /** the pieces' rows: piece p is rows offsets[p]..offsets[p+1] (a subdivision of the batch's offsets) */
  offsets: Int32Array;
  /** the sequence of the batch each piece belongs to */
  sequence: Int32Array;
  /** where the piece's first row lies among its sequence's keys (past positions, then new rows) */
  past: Int32Array;
  /** where its chunk starts among them: the first key the piece attends to */
  from: Int32Array;
}

/**
 * The pieces of a batch whose sequence s has rows offsets[s]…offsets[s+1] at key positions
 * past[s]… of its keys, key position 0 being the sequence's position origin[s] (0 for a sequence
 * whose keys are all there, or the positions a KV cache's layer has dropped before its first held
 * one). Positions count from the sequence's start, where the first chunk starts.
 */
export function chunkPieces(offsets: Int32Array, past: ArrayLike<number>, origin: ArrayLike<number>, size: number): ChunkPieces {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`an attention chunk must be a positive number of positions, got ${size}`);
  const offs = [0];
  const sequence: number[] = [];
  const pieceStart: number[] = [];
  const from: number[] = [];
  for (let s = 0; s + 1 < offsets.length; s++) {
    const len = offsets[s + 1] - offsets[s];
    for (let r = 0; r < len; ) {
      const position = origin[s] + past[s] + r;
      const chunkStart = position - (position % size);
      const end = Math.min(len, r + chunkStart + size - position);
      if (chunkStart < origin[s]) throw new RangeError(`sequence ${s}: its chunk starts at position ${chunkStart}, before the first key held (${origin[s]})`);
      offs.push(offsets[s] + end);
      sequence.push(s);
      pieceStart.push(past[s] + r);
      from.push(chunkStart - origin[s]);
      r = end;
    }
  }
  return { offsets: Int32Array.from(offs), sequence: Int32Array.from(sequence), past: Int32Array.from(pieceStart), from: Int32Array.from(from) };
}

/** The rows of a batch of sequences that start at position 0 (a prompt's, no cached past) cut at every chunk start: each piece a sequence of its own. */
export function promptChunkOffsets(offsets: Int32Array, size: number): Int32Array {
  const none = new Int32Array(offsets.length - 1);
  return chunkPieces(offsets, none, none, size).offsets;
}
