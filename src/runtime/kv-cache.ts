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
 *
 * Layout of one slot's buffer per layer: head-major, [kvWidth/headDim heads][allocated positions]
 * [headDim], so attention reads one kv head's keys as one contiguous matrix without gathering.
 * With headDim = kvWidth (the default) that is plain position-major rows of kvWidth.
 */
import type { ModelConfig } from '../checkpoint/types.js';
/**
 * Most bytes one slot's buffers can reach while its sequence grows to `positions` (prompt and
 * generated tokens) under the doubling rule of `reserve` (at least 16 positions, at most 2× the
 * positions, never beyond `capacity`): what a server reserves for a request in its memory budget.
 * The copy made while a buffer grows (old and new side by side) is not included.
 */
export function kvSlotBoundBytes(numLayers: number, kvWidth: number, capacity: number, positions: number, valuesAreKeys = false): number {
  const allocated = Math.min(capacity, Math.max(16, 2 * positions));
  return numLayers * (valuesAreKeys ? 1 : 2) * allocated * kvWidth * 4;
}

/**
 * Width of one cached position per layer and of one kv head in it: the model's kv heads' keys and
 * values, or for MLA (DeepSeek-V2) its one latent row, kv_lora_rank + qk_rope_head_dim, which is
 * both the key and the value (mla-attention.ts), so it is held once.
 */
export function kvCacheShape(config: ModelConfig): { width: number; headDim: number; valuesAreKeys: boolean } {
  if (config.attention === 'mla' && config.mla) {
    const latent = config.mla.kvLoraRank + config.mla.qkRopeHeadDim;
    return { width: latent, headDim: latent, valuesAreKeys: true };
  }
  return { width: config.numKvHeads * config.headDim, headDim: config.headDim, valuesAreKeys: false };
}

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
    /** width of one kv head (the model's head_dim) for the head-major layout; default kvWidth */
    readonly headDim: number = kvWidth,
    /** keys and values are the same rows (MLA's latent): one buffer serves both, `write` takes them from k */
    readonly valuesAreKeys = false,
  ) {
    if (![numLayers, sequences, capacity, kvWidth, headDim].every((v) => Number.isInteger(v) && v > 0) || kvWidth % headDim !== 0) {
      throw new RangeError(`KvCache needs positive integer sizes with headDim dividing kvWidth, got layers ${numLayers}, sequences ${sequences}, capacity ${capacity}, width ${kvWidth}, head ${headDim}`);
    }
    const empty = () => Array.from({ length: numLayers }, () => new Float32Array(0));
    this.keyBuffers = Array.from({ length: sequences }, empty);
    // the same arrays when values are keys: every buffer change below then applies to both
    this.valueBuffers = valuesAreKeys ? this.keyBuffers : Array.from({ length: sequences }, empty);
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

  /** Positions the slot's buffers hold room for now (the per-head stride of the layout). */
  allocated(slot: number): number {
    return this.keyBuffers[slot][0].length / this.kvWidth;
  }

  /**
   * Stores `count` new positions (rows `from`… of k and v, row-major kvWidth) of `layer` at
   * positions `at`… of `slot`. Room must have been reserved (assertRoom).
   */
  write(layer: number, slot: number, at: number, k: Float32Array, v: Float32Array, from: number, count: number): void {
    const { kvWidth, headDim } = this;
    const heads = kvWidth / headDim;
    const stride = this.allocated(slot);
    const keys = this.keyBuffers[slot][layer];
    const values = this.valueBuffers[slot][layer];
    for (let i = 0; i < count; i++) {
      const src = (from + i) * kvWidth;
      for (let h = 0; h < heads; h++) {
        const dst = (h * stride + at + i) * headDim;
        keys.set(k.subarray(src + h * headDim, src + (h + 1) * headDim), dst);
        if (values !== keys) values.set(v.subarray(src + h * headDim, src + (h + 1) * headDim), dst);
      }
    }
  }

  /**
   * Copies the first `positions` cached positions of slot `from` into the empty slot `to` (every
   * layer's keys and values), so a sequence with the same prompt starts from them instead of
   * computing them again. `from` keeps its own.
   */
  copyPrefix(from: number, to: number, positions: number): void {
    this.checkSlot(from);
    this.checkSlot(to);
    if (!Number.isInteger(positions) || positions < 0 || positions > this.lengths[from]) {
      throw new RangeError(`cannot copy ${positions} positions of slot ${from}, which holds ${this.lengths[from]}`);
    }
    if (this.lengths[to] !== 0) throw new RangeError(`slot ${to} already holds ${this.lengths[to]} positions; a prefix is copied into an empty slot`);
    this.reserve(to, positions);
    const { headDim } = this;
    const heads = this.kvWidth / headDim;
    const strideFrom = this.allocated(from);
    const strideTo = this.allocated(to);
    for (let l = 0; l < this.numLayers; l++) {
      for (const buffers of this.bufferSets()) {
        const src = buffers[from][l];
        const dst = buffers[to][l];
        for (let h = 0; h < heads; h++) dst.set(src.subarray(h * strideFrom * headDim, (h * strideFrom + positions) * headDim), h * strideTo * headDim);
      }
    }
    this.lengths[to] = positions;
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
    for (const buffers of this.bufferSets()) for (let s = 0; s < this.sequences; s++) for (let l = 0; l < this.numLayers; l++) bytes += buffers[s][l].byteLength;
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
    const have = this.allocated(slot);
    if (positions <= have) return;
    // doubling keeps the copies amortised O(1) per position
    const grown = Math.min(this.capacity, Math.max(positions, 2 * have, 16));
    const { kvWidth, headDim } = this;
    const keep = this.lengths[slot] * headDim;
    for (let l = 0; l < this.numLayers; l++) {
      for (const buffers of this.bufferSets()) {
        const old = buffers[slot][l];
        const next = new Float32Array(grown * kvWidth);
        for (let h = 0; h < kvWidth / headDim; h++) next.set(old.subarray(h * have * headDim, h * have * headDim + keep), h * grown * headDim);
        buffers[slot][l] = next;
      }
    }
  }

  /** The key buffers, and the value buffers where they are not the same. */
  private bufferSets(): Float32Array[][][] {
    return this.valueBuffers === this.keyBuffers ? [this.keyBuffers] : [this.keyBuffers, this.valueBuffers];
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.sequences) throw new RangeError(`KV cache slot ${slot} does not exist (the cache has ${this.sequences})`);
  }
}
