/**
 * Qwen3-Next's Gated DeltaNet, the token mixer of its linear-attention layers
 * (ModelConfig.linearAttention), as transformers' Qwen3NextGatedDeltaNet computes it:
 *
 * 1. The input projections give the queries, keys and values, z, b and a: Qwen3.5's four as they
 *    are, Qwen3-Next's two grouped by key head (transformers' fix_query_key_value_ordering): group
 *    g holds its query and key (dk each), then the values and gates z of its r = Vh / Kh value
 *    heads (r·dv each), and in_proj_ba its r b's then its r a's. Value head g·r + j is the j-th of
 *    group g.
 * 2. The queries, keys and values (Kh·dk + Kh·dk + Vh·dv channels) go through a depthwise causal
 *    convolution of `convKernel` positions, then SiLU.
 * 3. q and k are l2-normalised per head (x·rsqrt(Σx² + 1e-6)), q scaled by 1/√dk; value head h
 *    reads key head ⌊h / r⌋ (repeat_interleave). β = sigmoid(b), g = −exp(A_log)·softplus(a + dt_bias).
 * 4. The gated delta rule, per value head, over a state S (dk × dv) from zero: S ← exp(g)·S;
 *    S ← S + k ⊗ β(v − kᵀS); o = qᵀS. transformers runs the same recurrence chunked for a prompt
 *    and step by step when decoding; it is computed here token by token in both cases.
 * 5. Each head's output is RMS-normalised with the gated norm's weight (eps rms_norm_eps), times
 *    silu(z), and out_proj maps it back to the hidden size.
 *
 * Every sequence of a batch starts from its own state: zero, or what the KV cache holds for its
 * slot (the last convKernel − 1 inputs of the convolution and S), which it leaves updated.
 */
import type { LinearAttentionConfig } from '../checkpoint/types.js';
import type { AttentionContext } from './attention.js';
import { scratch } from './numerics.js';
import { productTransB, type Weights } from './weight-matrix.js';
import type { LinearAttentionWeights } from './weights.js';

/** The sizes a Gated DeltaNet layer derives from its config. */
export interface LinearAttentionShape {
  keyHeads: number;
  valueHeads: number;
  dk: number;
  dv: number;
  kernel: number;
  /** value heads per key head */
  ratio: number;
  keyWidth: number;
  valueWidth: number;
  /** channels of the convolution: queries, keys, values */
  convDim: number;
  /** values of one sequence's recurrent state: valueHeads × dk × dv */
  stateSize: number;
  /** values of one sequence's convolution state: the last kernel − 1 inputs of every channel */
  convStateSize: number;
}

export function linearAttentionShape(lin: LinearAttentionConfig): LinearAttentionShape {
  const keyWidth = lin.numKeyHeads * lin.keyHeadDim;
  const valueWidth = lin.numValueHeads * lin.valueHeadDim;
  const convDim = 2 * keyWidth + valueWidth;
  return {
    keyHeads: lin.numKeyHeads,
    valueHeads: lin.numValueHeads,
    dk: lin.keyHeadDim,
    dv: lin.valueHeadDim,
    kernel: lin.convKernel,
    ratio: lin.numValueHeads / lin.numKeyHeads,
    keyWidth,
    valueWidth,
    convDim,
    stateSize: lin.numValueHeads * lin.keyHeadDim * lin.valueHeadDim,
    convStateSize: (lin.convKernel - 1) * convDim,
  };
}

/** A sequence's state in one linear-attention layer: the convolution's last inputs (position-major, convDim each) and S per value head. */
export interface LinearState {
  conv: Float32Array;
  recurrent: Float32Array;
}

/** Where the states of the batch's sequences live: the KV cache's slots (decoding), or nowhere (each sequence from zero). */
export interface LinearStateStore {
  /** the state sequence s of the batch continues, null: from zero */
  read(sequence: number): LinearState | null;
  /** sequence s's state after its rows */
  write(sequence: number, state: LinearState): void;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const silu = (x: number) => x / (1 + Math.exp(-x));
/** torch's softplus (beta 1, threshold 20): x itself above 20 */
const softplus = (x: number) => (x > 20 ? x : Math.log1p(Math.exp(x)));

/**
 * The layer's output (rows × hidden) for the normalised input `x`; with `residual`, added into it
 * and returned. `states` gives and keeps each sequence's state (absent: every sequence from zero,
 * the state dropped).
 */
export function linearAttentionBlock(ctx: AttentionContext, w: LinearAttentionWeights, x: Float32Array, residual?: Float32Array, states?: LinearStateStore): Float32Array {
  const { engine, config, batch } = ctx;
  const lin = config.linearAttention;
  if (!lin) throw new Error('a linear-attention layer in a model whose config has no linear attention');
  const shape = linearAttentionShape(lin);
  const { valueHeads, dv, valueWidth, convDim } = shape;
  const rows = batch.ids.length;
  const hidden = config.hiddenSize;

  // the convolution's inputs in transformers' order (all queries, all keys, all values), z, β and g
  const mixed = scratch('linear-mixed', rows * convDim);
  const z = scratch('linear-z', rows * valueWidth);
  const b = scratch('linear-b', rows * valueHeads);
  const a = scratch('linear-a', rows * valueHeads);
  const p = w.inProj;
  if ('qkv' in p) {
    productTransB(engine, rows, convDim, hidden, x, p.qkv, mixed);
    productTransB(engine, rows, valueWidth, hidden, x, p.z, z);
    productTransB(engine, rows, valueHeads, hidden, x, p.b, b);
    productTransB(engine, rows, valueHeads, hidden, x, p.a, a);
  } else {
    ungroup(shape, engine, rows, hidden, x, p.qkvz, p.ba, mixed, z, b, a);
  }
  const beta = scratch('linear-beta', rows * valueHeads);
  const decay = scratch('linear-decay', rows * valueHeads);
  for (let i = 0; i < rows * valueHeads; i++) {
    const h = i % valueHeads;
    beta[i] = sigmoid(b[i]);
    // transformers: −A_log.float().exp() · softplus(a.float() + dt_bias), in f32
    decay[i] = Math.exp(-Math.exp(w.aLog[h]) * softplus(Math.fround(a[i] + w.dtBias[h])));
  }

  const core = scratch('linear-core', rows * valueWidth);
  const conv = scratch('linear-conv', rows * convDim);
  for (let s = 0; s + 1 < batch.offsets.length; s++) {
    const start = batch.offsets[s];
    const len = batch.offsets[s + 1] - start;
    if (len === 0) continue;
    const state = states?.read(s) ?? { conv: new Float32Array(shape.convStateSize), recurrent: new Float32Array(shape.stateSize) };
    convolve(shape, w.conv1d, mixed, start, len, state.conv, conv);
    deltaRule(shape, conv, beta, decay, start, len, state.recurrent, core);
    states?.write(s, state);
  }

  // the gated norm per value head: RMS-normalised, times its weight, times silu(z)
  const eps = config.rmsNormEps;
  for (let i = 0; i < rows * valueHeads; i++) {
    const o = i * dv;
    let sq = 0;
    for (let d = 0; d < dv; d++) sq += core[o + d] * core[o + d];
    const inv = 1 / Math.sqrt(Math.fround(sq / dv) + eps);
    for (let d = 0; d < dv; d++) core[o + d] = Math.fround(w.norm[d] * Math.fround(core[o + d] * inv)) * Math.fround(silu(z[o + d]));
  }
  const out = residual ?? new Float32Array(rows * hidden);
  productTransB(engine, rows, hidden, valueWidth, core, w.outProj, out, residual ? 1 : 0);
  return out;
}

/**
 * Qwen3-Next's projections grouped by key head (transformers' fix_query_key_value_ordering) into
 * the split form: group g of in_proj_qkvz holds its query and key (dk each), then its r value
 * heads' values and their z (r·dv each); group g of in_proj_ba its r b's, then its r a's. Value
 * head g·r + j is the j-th of group g.
 */
function ungroup(shape: LinearAttentionShape, engine: AttentionContext['engine'], rows: number, hidden: number, x: Float32Array, qkvzW: Weights, baW: Weights, mixed: Float32Array, z: Float32Array, b: Float32Array, a: Float32Array): void {
  const { keyHeads, valueHeads, dk, dv, ratio, keyWidth, valueWidth, convDim } = shape;
  const groupWidth = 2 * dk + 2 * ratio * dv;
  const qkvz = scratch('linear-qkvz', rows * (2 * keyWidth + 2 * valueWidth));
  const ba = scratch('linear-ba', rows * 2 * valueHeads);
  productTransB(engine, rows, 2 * keyWidth + 2 * valueWidth, hidden, x, qkvzW, qkvz);
  productTransB(engine, rows, 2 * valueHeads, hidden, x, baW, ba);
  for (let r = 0; r < rows; r++) {
    const src = r * (2 * keyWidth + 2 * valueWidth);
    const dst = r * convDim;
    for (let g = 0; g < keyHeads; g++) {
      const group = src + g * groupWidth;
      mixed.set(qkvz.subarray(group, group + dk), dst + g * dk);
      mixed.set(qkvz.subarray(group + dk, group + 2 * dk), dst + keyWidth + g * dk);
      mixed.set(qkvz.subarray(group + 2 * dk, group + 2 * dk + ratio * dv), dst + 2 * keyWidth + g * ratio * dv);
      z.set(qkvz.subarray(group + 2 * dk + ratio * dv, group + groupWidth), r * valueWidth + g * ratio * dv);
      for (let j = 0; j < ratio; j++) {
        b[r * valueHeads + g * ratio + j] = ba[r * 2 * valueHeads + g * 2 * ratio + j];
        a[r * valueHeads + g * ratio + j] = ba[r * 2 * valueHeads + g * 2 * ratio + ratio + j];
      }
    }
  }
}

/**
 * out rows start… = silu(depthwise causal conv of `mixed` rows start…), each channel over the
 * kernel − 1 inputs before (from `past`, the state, for the first rows) and itself; `past` is left
 * holding the sequence's last kernel − 1 inputs.
 */
function convolve(shape: LinearAttentionShape, weight: Float32Array, mixed: Float32Array, start: number, len: number, past: Float32Array, out: Float32Array): void {
  const { kernel, convDim } = shape;
  const hist = kernel - 1;
  // the inputs in order: the held past, then this sequence's rows
  const input = (t: number, c: number) => (t < 0 ? past[(hist + t) * convDim + c] : mixed[(start + t) * convDim + c]);
  for (let t = 0; t < len; t++) {
    const o = (start + t) * convDim;
    for (let c = 0; c < convDim; c++) {
      let sum = 0;
      for (let i = 0; i < kernel; i++) sum += weight[c * kernel + i] * input(t - hist + i, c);
      out[o + c] = silu(Math.fround(sum));
    }
  }
  if (hist === 0) return;
  const next = new Float32Array(past.length);
  for (let p = 0; p < hist; p++) {
    const t = len - hist + p;
    for (let c = 0; c < convDim; c++) next[p * convDim + c] = input(t, c);
  }
  past.set(next);
}

/**
 * The gated delta rule over the sequence's rows start… of the convolved q, k, v, each value
 * head's state S (dk × dv, row i the key's i-th component) updated in `state`; the heads'
 * outputs go to `core` (rows × valueHeads·dv).
 */
function deltaRule(shape: LinearAttentionShape, conv: Float32Array, beta: Float32Array, decay: Float32Array, start: number, len: number, state: Float32Array, core: Float32Array): void {
  const { keyHeads, valueHeads, dk, dv, ratio, keyWidth, convDim } = shape;
  const q = new Float64Array(dk);
  const k = new Float64Array(dk);
  const kvMem = new Float64Array(dv);
  const read = new Float64Array(dv);
  const scale = 1 / Math.sqrt(dk);
  for (let t = 0; t < len; t++) {
    const row = (start + t) * convDim;
    for (let kh = 0; kh < keyHeads; kh++) {
      l2normInto(conv, row + kh * dk, dk, q, scale);
      l2normInto(conv, row + keyWidth + kh * dk, dk, k, 1);
      for (let j = 0; j < ratio; j++) {
        const h = kh * ratio + j;
        const S = state.subarray(h * dk * dv, (h + 1) * dk * dv);
        const v = row + 2 * keyWidth + h * dv;
        const g = decay[(start + t) * valueHeads + h];
        const b = beta[(start + t) * valueHeads + h];
        kvMem.fill(0);
        for (let i = 0; i < dk; i++) {
          const ki = k[i];
          for (let d = 0; d < dv; d++) {
            S[i * dv + d] *= g;
            kvMem[d] += ki * S[i * dv + d];
          }
        }
        for (let d = 0; d < dv; d++) kvMem[d] = (conv[v + d] - kvMem[d]) * b;
        read.fill(0);
        for (let i = 0; i < dk; i++) {
          const ki = k[i];
          const qi = q[i];
          for (let d = 0; d < dv; d++) {
            S[i * dv + d] += ki * kvMem[d];
            read[d] += qi * S[i * dv + d];
          }
        }
        core.set(read, ((start + t) * valueHeads + h) * dv);
      }
    }
  }
}

/** out = x[from…from + n] · rsqrt(Σx² + 1e-6) · scale (transformers' l2norm, FLA's eps) */
function l2normInto(x: Float32Array, from: number, n: number, out: Float64Array, scale: number): void {
  let sq = 0;
  for (let i = 0; i < n; i++) sq += x[from + i] * x[from + i];
  const inv = scale / Math.sqrt(sq + 1e-6);
  for (let i = 0; i < n; i++) out[i] = x[from + i] * inv;
}
