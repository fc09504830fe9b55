/**
 * Keys and values of past positions, per decoder layer and sequence, for token-by-token
 * generation (sampling calibration sequences from a model). Without it every generated token
 * reruns the whole prefix: a cache turns the quadratic number of token-forwards into a linear one.
 *
 * Keys are stored after RoPE (and q/k norm), exactly as attention consumes them, so a cached run
 * gives the same numbers as running the whole prefix (tested in test/runtime/kv-cache.test.ts).
 */
export class KvCache {
  /** per layer: sequences × capacity × kvWidth */
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** positions already cached per sequence (the same for every layer between steps) */
  readonly lengths: Int32Array;

  constructor(
    readonly numLayers: number,
    readonly sequences: number,
    /** most positions one sequence can hold */
    readonly capacity: number,
    readonly kvWidth: number,
  ) {
    if (![numLayers, sequences, capacity, kvWidth].every((v) => Number.isInteger(v) && v > 0)) {
      throw new RangeError(`KvCache needs positive integer sizes, got layers ${numLayers}, sequences ${sequences}, capacity ${capacity}, width ${kvWidth}`);
    }
    const size = sequences * capacity * kvWidth;
    this.keys = Array.from({ length: numLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: numLayers }, () => new Float32Array(size));
    this.lengths = new Int32Array(sequences);
  }

  /** Row offset (in rows of kvWidth) of position `pos` of sequence `s` in a layer's buffers. */
  row(s: number, pos: number): number {
    return s * this.capacity + pos;
  }

  /** Checks that `added` new positions per sequence fit, before any layer writes them. */
  assertRoom(added: ArrayLike<number>): void {
    for (let s = 0; s < this.sequences; s++) {
      if (this.lengths[s] + added[s] > this.capacity) {
        throw new RangeError(`sequence ${s} would hold ${this.lengths[s] + added[s]} positions, more than the cache's ${this.capacity}`);
      }
    }
  }

  /** After the last layer of a step: the new positions become past. */
  advance(added: ArrayLike<number>): void {
    for (let s = 0; s < this.sequences; s++) this.lengths[s] += added[s];
  }
}
