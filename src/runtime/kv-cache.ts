/**
 * Keys and values of past positions, per decoder layer and cache SLOT, for token-by-token
 * generation (sampling calibration sequences, `generate`, the continuous-batching decoder).
 * Without it every generated token reruns the whole prefix: a cache turns the quadratic number of
 * token-forwards into a linear one.
 *
 * A slot holds one sequence. Slots are handed out with `acquire()` and returned with `release()`
 * (a finished or aborted request), so a long-running decoder reuses them; a released slot is
 * emptied (length 0) and its buffers are shrunk back, so one long request does not pin its
 * memory after it ends. Each slot's buffers grow on demand (doubling) up to `capacity`
 * positions, so a decoder with a large context limit only pays for the positions in use.
 *
 * Keys are stored after RoPE (and q/k norm), exactly as attention consumes them, so a cached run
 * gives the same numbers as running the whole prefix (tested in test/runtime/kv-cache.test.ts).
 */
export class KvCache {
  /** positions already cached per slot (the same for every layer between steps) */
  readonly lengths: Int32Array;
  /** [slot][layer] → positions × kvWidth, grown on demand */
  private readonly keyBuffers: Float32Array[][];
  private readonly valueBuffers: Float32Array[][];
  private readonly inUse: Uint8Array;

  constructor(
    readonly numLayers: number,
    /** number of slots (sequences held at once) */
    readonly sequences: number,
    /** most positions one slot can hold */
    readonly capacity: number,
    readonly kvWidth: number,
  ) {
    if (![numLayers, sequences, capacity, kvWidth].every((v) => Number.isInteger(v) && v > 0)) {
      throw new RangeError(`KvCache needs positive integer sizes, got layers ${numLayers}, sequences ${sequences}, capacity ${capacity}, width ${kvWidth}`);
    }
    const empty = () => Array.from({ length: numLayers }, () => new Float32Array(0));
    this.keyBuffers = Array.from({ length: sequences }, empty);
    this.valueBuffers = Array.from({ length: sequences }, empty);
    this.lengths = new Int32Array(sequences);
    this.inUse = new Uint8Array(sequences);
  }

  /** Slot `slot`'s keys of `layer` (positions × kvWidth; only the first lengths[slot] + new rows are meaningful). */
  keys(layer: number, slot: number): Float32Array {
    return this.keyBuffers[slot][layer];
  }

  values(layer: number, slot: number): Float32Array {
    return this.valueBuffers[slot][layer];
  }

  /** Slots not handed out. */
  get freeSlots(): number {
    let free = 0;
    for (const u of this.inUse) if (!u) free++;
    return free;
  }

  /** An empty slot, or null when all are in use. */
  acquire(): number | null {
    const slot = this.inUse.indexOf(0);
    if (slot < 0) return null;
    this.inUse[slot] = 1;
    this.lengths[slot] = 0;
    return slot;
  }

  /** Returns a slot: its positions are forgotten and its buffers dropped. */
  release(slot: number): void {
    this.checkSlot(slot);
    this.inUse[slot] = 0;
    this.lengths[slot] = 0;
    for (let l = 0; l < this.numLayers; l++) {
      this.keyBuffers[slot][l] = new Float32Array(0);
      this.valueBuffers[slot][l] = new Float32Array(0);
    }
  }

  /** Bytes of key/value buffers currently allocated. */
  get allocatedBytes(): number {
    let bytes = 0;
    for (let s = 0; s < this.sequences; s++) for (let l = 0; l < this.numLayers; l++) bytes += this.keyBuffers[s][l].byteLength + this.valueBuffers[s][l].byteLength;
    return bytes;
  }

  /**
   * Checks that `added[i]` new positions fit in slot `slots[i]` (default: slot i for every
   * sequence of the cache), before any layer writes them, and grows the buffers to hold them.
   */
  assertRoom(added: ArrayLike<number>, slots?: ArrayLike<number>): void {
    const n = slots ? slots.length : this.sequences;
    for (let i = 0; i < n; i++) {
      const s = slots ? slots[i] : i;
      this.checkSlot(s);
      if (this.lengths[s] + added[i] > this.capacity) {
        throw new RangeError(`sequence ${s} would hold ${this.lengths[s] + added[i]} positions, more than the cache's ${this.capacity}`);
      }
    }
    for (let i = 0; i < n; i++) this.reserve(slots ? slots[i] : i, this.lengths[slots ? slots[i] : i] + added[i]);
  }

  /** After the last layer of a step: the new positions become past. */
  advance(added: ArrayLike<number>, slots?: ArrayLike<number>): void {
    const n = slots ? slots.length : this.sequences;
    for (let i = 0; i < n; i++) this.lengths[slots ? slots[i] : i] += added[i];
  }

  private reserve(slot: number, positions: number): void {
    const have = this.keyBuffers[slot][0].length / this.kvWidth;
    if (positions <= have) return;
    // doubling keeps the copies amortised O(1) per position
    const grown = Math.min(this.capacity, Math.max(positions, 2 * have, 16));
    const keep = this.lengths[slot] * this.kvWidth;
    for (let l = 0; l < this.numLayers; l++) {
      for (const buffers of [this.keyBuffers, this.valueBuffers]) {
        const next = new Float32Array(grown * this.kvWidth);
        next.set(buffers[slot][l].subarray(0, keep));
        buffers[slot][l] = next;
      }
    }
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.sequences) throw new RangeError(`KV cache slot ${slot} does not exist (the cache has ${this.sequences})`);
  }
}
