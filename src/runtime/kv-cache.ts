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
 * With headDim = kvWidth (the default) that is plain position-major rows of kvWidth. Layers may
 * differ in kv heads (KvCacheOptions.layerWidths: MiMo-V2-Flash's sliding layers have twice its
 * full layers'); each layer's buffers are then as wide as its own. Value heads may be narrower
 * than key heads (KvCacheOptions.valueHeadDim: MiMo-V2-Flash's 128 against 192): the value
 * buffers are then [heads][allocated positions][valueHeadDim], the same positions as the keys'.
 *
 * A layer with a sliding window W (gpt-oss's, Mixtral's `sliding_window`) keeps only the positions
 * its next rows can attend to: the last W − 1 of the past, and a step's new rows. Its buffers hold
 * `held(slot, layer)` positions, the sequence's last ones, and the `dropped` older ones are gone;
 * attention over them is unchanged, because the window's mask is relative to each row (a row
 * attends to the W − 1 keys before it, all held). The older positions are dropped when the buffer
 * would grow (moved down in place, at most once per W − 1 new positions), so a windowed layer
 * takes 2(W − 1) positions, or W − 1 and a prefill chunk's rows, however long the sequence: gpt-oss's every
 * other layer at 128, where a 128k-token context would otherwise hold 128k. The price: a prompt
 * can copy another's cached beginning (shared-prefix.ts) only while that one's windowed layers
 * still hold its end (canCopyPrefix): n choices and a prompt sent twice always can; a longer
 * prompt that shares only its beginning, once past it by more than W, cannot, and is computed.
 * A chunked layer (Llama 4's chunks of C positions) keeps its past as a window of C does: a row
 * attends to at most the C − 1 positions before it, from its chunk's start, which attention finds
 * from the positions the layer has dropped (attention-chunks.ts).
 *
 * A linear-attention layer (Qwen3-Next's Gated DeltaNet, KvCacheOptions.linear) holds no keys or
 * values but a state of fixed size per slot: its convolution's last inputs and its recurrent
 * state (linear-attention.ts), which sum up the whole sequence so far. It is the state after
 * exactly the slot's positions, so a slot's cache can be copied only whole: canCopyPrefix refuses
 * a shorter prefix of a model with such layers, and the decoder shares no prefixes for it.
 */
import { attentionShapeOf } from '../checkpoint/attention-shape.js';
import { localSpanOf } from '../checkpoint/sliding-window.js';
import type { ModelConfig } from '../checkpoint/types.js';
import { linearAttentionShape, type LinearState } from './linear-attention.js';
/**
 * Most bytes one slot's buffers can reach while its sequence grows to `positions` (prompt and
 * generated tokens) under the doubling rule of `resizeLayer` (at least 16 positions, at most 2× the
 * positions, never beyond `capacity`; a windowed layer 2(W − 1), or W − 1 and a step's rows):
 * what a server reserves for a request in its memory budget. The copy made while a buffer grows
 * (old and new side by side) is not included.
 */
export function kvSlotBoundBytes(
  numLayers: number, kvWidth: number, capacity: number, positions: number, valuesAreKeys = false,
  /**
   * the layers' sliding windows (KvCacheOptions.windows), the most positions one step adds (the
   * decoder's prefill chunk), each layer's width where layers differ (KvCacheOptions.layerWidths;
   * absent: kvWidth), the key and value head widths where values are narrower (KvCacheOptions.valueHeadDim),
   * and the linear-attention layers, which hold a state of fixed size instead of keys and values
   * (KvCacheOptions.linear)
   */
  opts: { windows?: ReadonlyArray<number | null>; maxStep?: number; layerWidths?: ReadonlyArray<number>; headDim?: number; valueHeadDim?: number; linear?: LinearCacheLayout } = {},
): number {
  // a layer's values: as wide as its keys, or valueHeadDim for every headDim of its width (KvCacheOptions.valueHeadDim)
  const valueWidth = (width: number) => (opts.headDim !== undefined && opts.valueHeadDim !== undefined ? (width / opts.headDim) * opts.valueHeadDim : width);
  const full = Math.min(capacity, Math.max(16, 2 * positions));
  // positions × the widths of its keys and values, summed over the layers
  let values = 0;
  for (let l = 0; l < numLayers; l++) {
    if (opts.linear?.layers[l]) continue;
    const window = opts.windows?.[l] ?? null;
    // a windowed layer: W − 1 past positions and a step's rows, or 2(W − 1) (resizeLayer)
    const keep = window === null ? null : window - 1;
    const allocated = keep === null ? full : Math.min(full, Math.max(16, 2 * keep, keep + Math.min(opts.maxStep ?? positions, positions)));
    const width = opts.layerWidths?.[l] ?? kvWidth;
    values += allocated * (valuesAreKeys ? width : width + valueWidth(width));
  }
  return values * 4 + (opts.linear ? linearStateBytes(opts.linear) : 0);
}

/** Which layers hold a linear-attention state in a KvCache, and its two parts' sizes (values, f32). */
export interface LinearCacheLayout {
  layers: readonly boolean[];
  convStateSize: number;
  stateSize: number;
}

/** The linear-attention layers' cache layout of a model (Qwen3-Next's), undefined where it has none. */
export function linearCacheLayout(config: ModelConfig): LinearCacheLayout | undefined {
  const lin = config.linearAttention;
  if (!lin || !lin.layers.includes(true)) return undefined;
  const shape = linearAttentionShape(lin);
  return { layers: lin.layers, convStateSize: shape.convStateSize, stateSize: shape.stateSize };
}

/** Bytes of one slot's linear-attention states (every linear layer's, f32). */
export function linearStateBytes(linear: LinearCacheLayout): number {
  return linear.layers.filter(Boolean).length * (linear.convStateSize + linear.stateSize) * 4;
}

/** A KvCache's options for a model: its layers' windows and widths, its value heads' width and its linear-attention layers. */
export function kvCacheOptions(config: ModelConfig): KvCacheOptions {
  const shape = kvCacheShape(config);
  const linear = linearCacheLayout(config);
  return {
    windows: kvWindows(config),
    ...(shape.layerWidths ? { layerWidths: shape.layerWidths } : {}),
    ...(shape.valueHeadDim !== undefined ? { valueHeadDim: shape.valueHeadDim } : {}),
    ...(linear ? { linear } : {}),
  };
}

/**
 * Width of one cached position per layer and of one kv head in it: the model's kv heads' keys and
 * values, or for MLA (DeepSeek-V2) its one latent row, kv_lora_rank + qk_rope_head_dim, which is
 * both the key and the value (mla-attention.ts), so it is held once. Where layers differ in kv
 * heads, `layerWidths` holds each layer's key width (`width` is then the first layer's); where
 * value heads are narrower than key heads (MiMo-V2-Flash), `valueHeadDim` is theirs.
 */
export function kvCacheShape(config: ModelConfig): { width: number; headDim: number; valuesAreKeys: boolean; layerWidths?: number[]; valueHeadDim?: number } {
  if (config.attention === 'mla' && config.mla) {
    // DeepSeek Sparse Attention's index key of each position rides after its latent row (sparse-attention.ts)
    const row = config.mla.kvLoraRank + config.mla.qkRopeHeadDim + (config.sparseAttention?.indexHeadDim ?? 0);
    return { width: row, headDim: row, valuesAreKeys: true };
  }
  const widths = Array.from({ length: config.numLayers }, (_, l) => attentionShapeOf(config, l).kvHeads * config.headDim);
  const width = widths[0] ?? config.numKvHeads * config.headDim;
  const { valueHeadDim } = attentionShapeOf(config, 0);
  return {
    width,
    headDim: config.headDim,
    valuesAreKeys: false,
    ...(widths.some((w) => w !== width) ? { layerWidths: widths } : {}),
    ...(valueHeadDim !== config.headDim ? { valueHeadDim } : {}),
  };
}

/** Options of a KvCache beyond its sizes. */
export interface KvCacheOptions {
  /** each layer's sliding window (null or absent: the layer attends to every past position) */
  windows?: ReadonlyArray<number | null>;
  /** each layer's width (a multiple of headDim) where layers differ in kv heads; absent: kvWidth for every layer */
  layerWidths?: ReadonlyArray<number>;
  /** width of one value head where it differs from headDim (a layer's values: its width / headDim heads of it); absent: headDim */
  valueHeadDim?: number;
  /** the linear-attention layers, which hold a state per slot and no keys or values (absent: none) */
  linear?: LinearCacheLayout;
}

/**
 * Every layer's sliding window, for KvCacheOptions.windows: a chunked layer's (Llama 4) is its
 * chunk length, since its rows attend to at most the chunk's C − 1 positions before them.
 */
export function kvWindows(config: ModelConfig): Array<number | null> {
  return Array.from({ length: config.numLayers }, (_, l) => localSpanOf(config, l));
}

export class KvCache {
  /** positions of each slot's sequence so far (its next position; the same for every layer between steps) */
  readonly lengths: Int32Array;
  /** [slot][layer] → positions × kvWidth, grown on demand */
  private readonly keyBuffers: Float32Array[][];
  private readonly valueBuffers: Float32Array[][];
  private readonly inUse: Uint8Array;
  /** [slot × numLayers + layer]: the sequence's first positions a windowed layer no longer holds */
  private readonly dropped: Int32Array;
  /** per layer: past positions a windowed layer must keep (W − 1), null for a layer without a window */
  private readonly keep: Array<number | null>;
  /** per layer: the width of one position (kvWidth unless KvCacheOptions.layerWidths says otherwise) */
  private readonly widths: readonly number[];
  /** width of one value head (KvCacheOptions.valueHeadDim, else headDim) */
  readonly valueHeadDim: number;
  /** the linear-attention layers' layout (KvCacheOptions.linear), null: none */
  private readonly linear: LinearCacheLayout | null;
  /** [slot][layer]: a linear-attention layer's state after the slot's positions (null: none yet, or not such a layer) */
  private readonly linearStates: Array<Array<LinearState | null>>;

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
    opts: KvCacheOptions = {},
  ) {
    if (![numLayers, sequences, capacity, kvWidth, headDim].every((v) => Number.isInteger(v) && v > 0) || kvWidth % headDim !== 0) {
      throw new RangeError(`KvCache needs positive integer sizes with headDim dividing kvWidth, got layers ${numLayers}, sequences ${sequences}, capacity ${capacity}, width ${kvWidth}, head ${headDim}`);
    }
    const windows = opts.windows ?? [];
    if (windows.length > numLayers || windows.some((w) => w !== null && (!Number.isInteger(w) || w < 1))) {
      throw new RangeError(`KvCache windows must be positive integers or null, at most one a layer (${numLayers}), got ${JSON.stringify(windows)}`);
    }
    this.keep = Array.from({ length: numLayers }, (_, l) => (windows[l] == null ? null : windows[l]! - 1));
    const widths = opts.layerWidths ?? [];
    if (opts.layerWidths !== undefined && (widths.length !== numLayers || widths.some((w) => !Number.isInteger(w) || w <= 0 || w % headDim !== 0))) {
      throw new RangeError(`KvCache layerWidths must give each of the ${numLayers} layers a positive multiple of headDim ${headDim}, got ${JSON.stringify(widths)}`);
    }
    this.widths = Array.from({ length: numLayers }, (_, l) => widths[l] ?? kvWidth);
    this.valueHeadDim = opts.valueHeadDim ?? headDim;
    if (!Number.isInteger(this.valueHeadDim) || this.valueHeadDim <= 0 || (valuesAreKeys && this.valueHeadDim !== headDim)) {
      throw new RangeError(`KvCache valueHeadDim must be a positive integer (headDim where values are keys), got ${opts.valueHeadDim}`);
    }
    this.dropped = new Int32Array(sequences * numLayers);
    const empty = () => Array.from({ length: numLayers }, () => new Float32Array(0));
    this.keyBuffers = Array.from({ length: sequences }, empty);
    // the same arrays when values are keys: every buffer change below then applies to both
    this.valueBuffers = valuesAreKeys ? this.keyBuffers : Array.from({ length: sequences }, empty);
    this.lengths = new Int32Array(sequences);
    this.inUse = new Uint8Array(sequences);
    if (opts.linear && opts.linear.layers.length !== numLayers) throw new RangeError(`KvCache linear layers name ${opts.linear.layers.length} layers, not ${numLayers}`);
    this.linear = opts.linear ?? null;
    this.linearStates = Array.from({ length: sequences }, () => Array.from({ length: numLayers }, () => null));
  }

  /** Whether some layer holds a linear-attention state, which sums up exactly the slot's positions (a prefix shorter than them cannot be copied). */
  get holdsLinearState(): boolean {
    return this.linear !== null;
  }

  /** Whether `layer` holds a linear-attention state instead of keys and values. */
  isLinearLayer(layer: number): boolean {
    return this.linear?.layers[layer] === true;
  }

  /**
   * The state of linear-attention `layer` after the slot's positions, which the layer updates in
   * place for the next ones; null for a slot without positions (a sequence starts from zero).
   */
  linearState(slot: number, layer: number): LinearState | null {
    this.checkSlot(slot);
    if (!this.isLinearLayer(layer)) throw new RangeError(`layer ${layer} holds no linear-attention state`);
    if (this.lengths[slot] === 0) return null;
    const state = this.linearStates[slot][layer];
    if (!state) throw new RangeError(`slot ${slot} holds ${this.lengths[slot]} positions but no state of linear-attention layer ${layer}`);
    return state;
  }

  /** Keeps `state` as linear-attention `layer`'s state of the slot, for its next positions. */
  setLinearState(slot: number, layer: number, state: LinearState): void {
    this.checkSlot(slot);
    if (!this.isLinearLayer(layer)) throw new RangeError(`layer ${layer} holds no linear-attention state`);
    const { convStateSize, stateSize } = this.linear!;
    if (state.conv.length !== convStateSize || state.recurrent.length !== stateSize) throw new RangeError(`a linear-attention state of ${state.conv.length} + ${state.recurrent.length} values where layer ${layer} holds ${convStateSize} + ${stateSize}`);
    this.linearStates[slot][layer] = state;
  }

  /** Positions of slot `slot` that `layer`'s buffers hold: the sequence's last ones (all of them without a window). */
  held(slot: number, layer: number): number {
    return this.lengths[slot] - this.dropped[slot * this.numLayers + layer];
  }

  /** The width of one position of `layer` (kvWidth, or its own where layers differ). */
  widthOf(layer: number): number {
    return this.widths[layer];
  }

  /** The width of one position's values in `layer`: its heads times valueHeadDim. */
  valueWidthOf(layer: number): number {
    return (this.widths[layer] / this.headDim) * this.valueHeadDim;
  }

  /** Slot `slot`'s keys of `layer` (positions × widthOf(layer); only the first held(slot, layer) + new rows are meaningful). */
  keys(layer: number, slot: number): Float32Array {
    return this.keyBuffers[slot][layer];
  }

  values(layer: number, slot: number): Float32Array {
    return this.valueBuffers[slot][layer];
  }

  /** Positions `layer`'s buffers of the slot hold room for now (the per-head stride of the layout). */
  allocated(slot: number, layer = 0): number {
    return this.keyBuffers[slot][layer].length / this.widths[layer];
  }

  /**
   * Stores `count` new positions (rows `from`… of k and v, row-major widthOf(layer) and valueWidthOf(layer)) of `layer` at
   * buffer positions `at`… of `slot` (held(slot, layer) for the next ones). Room must have been
   * reserved (assertRoom).
   */
  write(layer: number, slot: number, at: number, k: Float32Array, v: Float32Array, from: number, count: number): void {
    const { headDim, valueHeadDim: vDim } = this;
    const kvWidth = this.widths[layer];
    const vWidth = this.valueWidthOf(layer);
    const heads = kvWidth / headDim;
    const stride = this.allocated(slot, layer);
    const keys = this.keyBuffers[slot][layer];
    const values = this.valueBuffers[slot][layer];
    for (let i = 0; i < count; i++) {
      const src = (from + i) * kvWidth;
      const srcV = (from + i) * vWidth;
      for (let h = 0; h < heads; h++) {
        keys.set(k.subarray(src + h * headDim, src + (h + 1) * headDim), (h * stride + at + i) * headDim);
        if (values !== keys) values.set(v.subarray(srcV + h * vDim, srcV + (h + 1) * vDim), (h * stride + at + i) * vDim);
      }
    }
  }

  /** The first of the first `positions` positions a layer must hold to continue from there (0 without a window). */
  private neededFrom(layer: number, positions: number): number {
    const keep = this.keep[layer];
    return keep === null ? 0 : Math.max(0, positions - keep);
  }

  /**
   * Whether slot `from` still holds what a sequence continuing after its first `positions`
   * positions needs: every position of each layer without a window, the last W − 1 of them of each
   * windowed layer (the slot may have dropped those since).
   */
  canCopyPrefix(from: number, positions: number): boolean {
    this.checkSlot(from);
    if (!Number.isInteger(positions) || positions < 0 || positions > this.lengths[from]) return false;
    // a linear-attention state is that of all the slot's positions, of no shorter prefix
    if (this.linear && positions !== this.lengths[from]) return false;
    for (let l = 0; l < this.numLayers; l++) if (this.dropped[from * this.numLayers + l] > this.neededFrom(l, positions)) return false;
    return true;
  }

  /**
   * Copies the first `positions` cached positions of slot `from` into the empty slot `to` (every
   * layer's keys and values; of a windowed layer only the last W − 1 of them), so a sequence with
   * the same prompt starts from them instead of computing them again. `from` keeps its own.
   * Refused where `from` no longer holds them (canCopyPrefix).
   */
  copyPrefix(from: number, to: number, positions: number): void {
    this.checkSlot(from);
    this.checkSlot(to);
    if (!this.canCopyPrefix(from, positions)) {
      throw new RangeError(
        `cannot copy ${positions} positions of slot ${from}, which holds ${this.lengths[from]}${positions > this.lengths[from] ? '' : this.linear ? ', as its linear-attention layers hold the state of all of them and of no shorter prefix' : ' but has dropped some a windowed layer needs'}`,
      );
    }
    if (this.lengths[to] !== 0) throw new RangeError(`slot ${to} already holds ${this.lengths[to]} positions; a prefix is copied into an empty slot`);
    const { headDim } = this;
    for (let l = 0; l < this.numLayers; l++) {
      if (this.isLinearLayer(l)) {
        const state = this.linearStates[from][l];
        this.linearStates[to][l] = state && positions > 0 ? { conv: state.conv.slice(), recurrent: state.recurrent.slice() } : null;
        continue;
      }
      const heads = this.widths[l] / headDim;
      const first = this.neededFrom(l, positions);
      const count = positions - first;
      this.resizeLayer(to, l, count);
      const strideFrom = this.allocated(from, l);
      const strideTo = this.allocated(to, l);
      // where position `first` lies in the source's buffer
      const at = first - this.dropped[from * this.numLayers + l];
      for (const [buffers, dim] of this.bufferSets()) {
        const src = buffers[from][l];
        const dst = buffers[to][l];
        for (let h = 0; h < heads; h++) dst.set(src.subarray((h * strideFrom + at) * dim, (h * strideFrom + at + count) * dim), h * strideTo * dim);
      }
      this.dropped[to * this.numLayers + l] = first;
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
    this.dropped.fill(0, slot * this.numLayers, (slot + 1) * this.numLayers);
    this.linearStates[slot].fill(null);
    return slot;
  }

  /** Returns a slot: its positions are forgotten and its buffers dropped. */
  release(slot: number): void {
    this.checkSlot(slot);
    this.inUse[slot] = 0;
    this.lengths[slot] = 0;
    this.dropped.fill(0, slot * this.numLayers, (slot + 1) * this.numLayers);
    for (let l = 0; l < this.numLayers; l++) {
      this.keyBuffers[slot][l] = new Float32Array(0);
      this.valueBuffers[slot][l] = new Float32Array(0);
    }
    this.linearStates[slot].fill(null);
  }

  /** Bytes of key/value buffers and linear-attention states currently allocated. */
  get allocatedBytes(): number {
    let bytes = 0;
    for (const [buffers] of this.bufferSets()) for (let s = 0; s < this.sequences; s++) for (let l = 0; l < this.numLayers; l++) bytes += buffers[s][l].byteLength;
    for (const states of this.linearStates) for (const state of states) if (state) bytes += state.conv.byteLength + state.recurrent.byteLength;
    return bytes;
  }

  /**
   * Checks that `added[i]` new positions fit in slot `slots[i]` (default: slot i for every
   * sequence of the cache), before any layer writes them, and makes room for them in every
   * layer's buffers: a windowed layer first drops what its next rows cannot attend to.
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
    // a batch of prompts with no past (a fresh prefill) attends to its own rows, not to the cache
    // (attention-cache.ts, freshPrefill): a windowed layer then stores only as many of their last
    // ones as its buffer takes, 2(W − 1) (writeFresh)
    const fresh = this.allEmpty(slots);
    for (let i = 0; i < n; i++) {
      const s = slots ? slots[i] : i;
      for (let l = 0; l < this.numLayers; l++) {
        // a linear-attention layer's state has its size whatever the positions
        if (this.isLinearLayer(l)) continue;
        const keep = this.keep[l];
        if (keep === null) {
          this.resizeLayer(s, l, this.held(s, l) + added[i]);
          continue;
        }
        if (fresh) {
          this.resizeLayer(s, l, Math.min(added[i], 2 * keep));
          continue;
        }
        // all new rows go in the buffer at once: they attend to the past and to each other there
        const need = this.held(s, l) + added[i];
        if (need > this.allocated(s, l)) this.dropOld(s, l);
        this.resizeLayer(s, l, this.held(s, l) + added[i]);
      }
    }
  }

  /**
   * Whether slots `slots` (default: every slot, one a sequence of the batch) hold no position: a
   * batch of them is a fresh prefill, which attends to its own rows only (attention-cache.ts) and
   * whose windowed layers store only their last rows (assertRoom, writeFresh).
   */
  allEmpty(slots?: ArrayLike<number>): boolean {
    const n = slots ? slots.length : this.sequences;
    for (let i = 0; i < n; i++) if (this.lengths[slots ? slots[i] : i] !== 0) return false;
    return true;
  }

  /**
   * Stores a fresh prefill's `count` positions (rows `from`… of k and v) of `layer` in the empty
   * slot: all of them, or of a windowed layer the last ones its buffer takes (at least W − 1; more,
   * so that a copy of the prompt but its last token, as n choices and repeated prompts take, still
   * finds what it needs: canCopyPrefix).
   */
  writeFresh(layer: number, slot: number, k: Float32Array, v: Float32Array, from: number, count: number): void {
    const skip = this.keep[layer] === null ? 0 : Math.max(0, count - this.allocated(slot, layer));
    this.write(layer, slot, 0, k, v, from + skip, count - skip);
    // held = lengths − dropped once the step advances the slot by `count`
    this.dropped[slot * this.numLayers + layer] = skip;
  }

  /** After the last layer of a step: the new positions become past. */
  advance(added: ArrayLike<number>, slots?: ArrayLike<number>): void {
    const n = slots ? slots.length : this.sequences;
    for (let i = 0; i < n; i++) this.lengths[slots ? slots[i] : i] += added[i];
  }

  /**
   * Drops the oldest positions of a windowed layer of the slot but the last W − 1 (moved to the
   * front of each head's rows), which are all its next rows can attend to.
   */
  private dropOld(slot: number, layer: number): void {
    const keep = this.keep[layer]!;
    const held = this.held(slot, layer);
    if (held <= keep) return;
    const heads = this.widths[layer] / this.headDim;
    const stride = this.allocated(slot, layer);
    for (const [buffers, dim] of this.bufferSets()) {
      const b = buffers[slot][layer];
      for (let h = 0; h < heads; h++) b.copyWithin(h * stride * dim, (h * stride + held - keep) * dim, (h * stride + held) * dim);
    }
    this.dropped[slot * this.numLayers + layer] += held - keep;
  }

  /**
   * Makes `layer`'s buffers of the slot hold room for `positions`, keeping what they hold: grown
   * (doubling, which keeps the copies amortised O(1) per position; a windowed layer to what it
   * needs), or, for a windowed layer, shrunk where a prefill chunk left them more than twice as
   * large as it now needs.
   */
  private resizeLayer(slot: number, layer: number, positions: number): void {
    const have = this.allocated(slot, layer);
    const keep = this.keep[layer];
    // a windowed layer that needs more than W − 1 takes at least 2(W − 1), so that it drops old
    // positions at most once per W − 1 new ones (and never more than a layer without a window)
    const floor = Math.max(16, keep !== null && positions > keep ? 2 * keep : 0);
    let size: number;
    // a windowed layer grows to what it needs: it grows only for a prefill chunk (single tokens drop old positions instead)
    if (positions > have) size = Math.min(this.capacity, Math.max(positions, keep === null ? 2 * have : 0, floor));
    else if (keep !== null && have > 2 * Math.max(positions, floor)) size = Math.min(this.capacity, Math.max(positions, floor));
    else return;
    const heads = this.widths[layer] / this.headDim;
    const held = this.held(slot, layer);
    for (const [buffers, dim] of this.bufferSets()) {
      const old = buffers[slot][layer];
      const next = new Float32Array(size * heads * dim);
      for (let h = 0; h < heads; h++) next.set(old.subarray(h * have * dim, h * have * dim + held * dim), h * size * dim);
      buffers[slot][layer] = next;
    }
  }

  /** The key buffers, and the value buffers where they are not the same, each with its head width. */
  private bufferSets(): Array<[Float32Array[][], number]> {
    return this.valueBuffers === this.keyBuffers ? [[this.keyBuffers, this.headDim]] : [[this.keyBuffers, this.headDim], [this.valueBuffers, this.valueHeadDim]];
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.sequences) throw new RangeError(`KV cache slot ${slot} does not exist (the cache has ${this.sequences})`);
  }
}
