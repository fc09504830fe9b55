/**
 * The rotary position embedding a model's config asks for: which width of each head rotates, its
 * base, and its scaling (none, or YaRN), as cos/sin tables the engine's rope kernel applies.
 *
 * YaRN (rope_type "yarn": DeepSeek-V2/V2-Lite ship it, Qwen3 and Mixtral configs may add it for
 * long context) follows transformers' `_compute_yarn_parameters` in f32: inverse frequencies
 * blended between the original ones and ones divided by `factor` along a linear ramp between the
 * correction dims of beta_fast and beta_slow, and cos/sin multiplied by the attention factor.
 * DeepSeek-V2 and V3 (MLA) also multiply their softmax scale by mscale(factor, mscale_all_dim)²
 * (`softmaxScale`). Hunyuan's "dynamic" with an NTK alpha raises the base (ModelConfig.ropeAlpha).
 * "linear" divides every inverse frequency by `factor`; "llama3" divides the low frequencies (wave
 * lengths beyond original_max_position_embeddings / low_freq_factor) by it, keeps the high ones
 * (below … / high_freq_factor) and blends those between, as transformers' `_compute_llama3_parameters`.
 * PhiMoE's "longrope" divides them by its short factors and scales cos/sin by its mscale, as
 * transformers' PhimoeRotaryEmbedding does (ModelConfig.longRope).
 * Other scalings (dynamic without an alpha, longrope elsewhere) are refused: they would run silently wrong.
 *
 * The scaling is read from `rope_scaling` or `rope_parameters` (checkpoint/rope-scaling.ts).
 */
import { ropeProblem, ropeScalingOf } from '../checkpoint/rope-scaling.js';
import { cannotRun } from '../checkpoint/runnable.js';
import type { ModelConfig } from '../checkpoint/types.js';
import { UnsupportedModelError } from './errors.js';

/** YaRN's parameters, defaults filled in as transformers fills them. */
export interface YarnScaling {
  factor: number;
  originalMaxPositions: number;
  betaFast: number;
  betaSlow: number;
  /** round the correction range outward (transformers' default) */
  truncate: boolean;
  /** cos and sin are multiplied by this */
  attentionFactor: number;
}

/** Llama 3's frequency-dependent scaling (rope_type "llama3"). */
export interface Llama3Scaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface RopeSpec {
  /** rotated width of each head (MLA: qk_rope_head_dim) */
  dim: number;
  theta: number;
  yarn: YarnScaling | null;
  /** rope_type "linear": every inverse frequency divided by this factor */
  linear?: number;
  llama3?: Llama3Scaling;
  /** PhiMoE's LongRoPE (ModelConfig.longRope): each inverse frequency divided by its short factor, cos/sin × mscale */
  longRope?: { shortFactor: readonly number[]; mscale: number };
  /** what 1/√(query head width) is multiplied by in the softmax (1 but for DeepSeek-V2's YaRN mscale²) */
  softmaxScale: number;
}

/** cos/sin tables [positions × dim/2], computed as transformers computes them (angles in f32). */
export interface RopeTables {
  positions: number;
  half: number;
  cos: Float32Array;
  sin: Float32Array;
}

type Params = Record<string, unknown>;

/** YaRN's mscale (transformers' get_mscale). */
function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function numberOf(p: Params, key: string, what: string): number | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UnsupportedModelError(`${what}.${key} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

const specs = new WeakMap<ModelConfig, RopeSpec>();
/** per model, the spec of each base its layers rotate with (ModelConfig.layerRopeThetas), made once */
const layerSpecs = new WeakMap<ModelConfig, Map<number, RopeSpec>>();

/**
 * The RoPE of a model, or with `layer` of that decoder layer, or an UnsupportedModelError naming a
 * scaling that is not implemented. Layers with bases of their own (ModelConfig.layerRopeThetas:
 * GraniteMoE-SWA's layer_rope_theta, MiMo-V2-Flash's per layer type) keep the model's scaling with
 * their base in place of rope_theta, as transformers builds one rotary embedding per base.
 */
export function ropeSpecOf(config: ModelConfig, layer?: number): RopeSpec {
  let spec = specs.get(config);
  if (!spec) specs.set(config, (spec = readRopeSpec(config)));
  const theta = layer === undefined ? 0 : (config.layerRopeThetas?.[layer] ?? 0);
  // 0: a layer without RoPE, which never reads its tables, or one rotating with rope_theta
  if (theta === 0 || theta === config.ropeTheta) return spec;
  let byTheta = layerSpecs.get(config);
  if (!byTheta) layerSpecs.set(config, (byTheta = new Map()));
  let own = byTheta.get(theta);
  if (!own) byTheta.set(theta, (own = { ...spec, theta }));
  return own;
}

function readRopeSpec(config: ModelConfig): RopeSpec {
  const dim = config.attention === 'mla' && config.mla ? config.mla.qkRopeHeadDim : (config.rotaryDim ?? config.headDim);
  if (dim % 2 !== 0) throw new UnsupportedModelError(`the rotary width must be even, got ${dim}`);
  // a scaling the kernels do not apply (or a partial rotary width) would run silently wrong
  const problem = ropeProblem(config);
  if (problem !== null) throw new UnsupportedModelError(cannotRun(problem));
  const { key, type, params } = ropeScalingOf(config.raw);
  const what = key ?? 'rope_scaling';
  if (type === 'default') return { dim, theta: config.ropeTheta, yarn: null, softmaxScale: 1 };
  // Hunyuan's NTK alpha: the base raised to θ·alpha^(d/(d−2)), d = head_dim (transformers' HunYuanMoEV1RotaryEmbedding)
  if (type === 'dynamic' && config.ropeAlpha !== undefined) return { dim, theta: config.ropeTheta * config.ropeAlpha ** (config.headDim / (config.headDim - 2)), yarn: null, softmaxScale: 1 };
  if (type === 'longrope' && config.longRope !== undefined) {
    if (config.longRope.shortFactor.length !== dim / 2) throw new UnsupportedModelError(`${key ?? 'rope_scaling'}.short_factor has ${config.longRope.shortFactor.length} values for ${dim / 2} rotated pairs`);
    return { dim, theta: config.ropeTheta, yarn: null, longRope: config.longRope, softmaxScale: 1 };
  }
  const p = params!;
  if (type === 'linear') {
    const factor = numberOf(p, 'factor', what);
    if (factor === undefined || factor <= 0) throw new UnsupportedModelError(`${what} of type "linear" needs a positive factor`);
    return { dim, theta: config.ropeTheta, yarn: null, linear: factor, softmaxScale: 1 };
  }
  const original = numberOf(p, 'original_max_position_embeddings', what);
  if (original === undefined || original <= 0) throw new UnsupportedModelError(`${what} of type "${type}" needs original_max_position_embeddings (the context length the model was trained at)`);
  if (type === 'llama3') {
    const factor = numberOf(p, 'factor', what);
    const lowFreqFactor = numberOf(p, 'low_freq_factor', what);
    const highFreqFactor = numberOf(p, 'high_freq_factor', what);
    // low_freq_factor ≥ high_freq_factor (Llama 4 Scout's are both 1) leaves no band to blend: every
    // frequency is kept or divided, as transformers computes it (it only warns)
    if (factor === undefined || factor <= 0 || lowFreqFactor === undefined || highFreqFactor === undefined || !(lowFreqFactor > 0 && highFreqFactor > 0)) {
      throw new UnsupportedModelError(`${what} of type "llama3" needs a positive factor, low_freq_factor and high_freq_factor`);
    }
    return { dim, theta: config.ropeTheta, yarn: null, llama3: { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: original }, softmaxScale: 1 };
  }
  const maxPositions = typeof config.raw.max_position_embeddings === 'number' ? config.raw.max_position_embeddings : undefined;
  const factor = numberOf(p, 'factor', what) ?? (maxPositions !== undefined ? maxPositions / original : undefined);
  if (factor === undefined || factor <= 0) throw new UnsupportedModelError(`${what} of type "yarn" needs a positive factor`);
  const mscale = numberOf(p, 'mscale', what);
  const mscaleAllDim = numberOf(p, 'mscale_all_dim', what);
  const attentionFactor = numberOf(p, 'attention_factor', what) ?? (mscale && mscaleAllDim ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim) : yarnMscale(factor));
  const yarn: YarnScaling = {
    factor,
    originalMaxPositions: original,
    // transformers: `get("beta_fast") or 32`, so 0 also means the default
    betaFast: numberOf(p, 'beta_fast', what) || 32,
    betaSlow: numberOf(p, 'beta_slow', what) || 1,
    truncate: p.truncate === undefined || p.truncate === null ? true : p.truncate !== false,
    attentionFactor,
  };
  // DeepSeek-V2/V3's attention (yarn_apply_mscale) scales its softmax by the square of mscale_all_dim's mscale
  const softmaxScale = config.attention === 'mla' && mscaleAllDim ? yarnMscale(factor, mscaleAllDim) ** 2 : 1;
  return { dim, theta: config.ropeTheta, yarn, softmaxScale };
}

/**
 * Tables already built, per spec: decoding asks for one more position every step, so the largest
 * table is kept and served for any shorter request (rows are independent of the count). Keyed by
 * what the tables depend on, so models of one shape share them; each spec's key is made once (a
 * decoding step asks for its tables every step).
 */
const ropeCache = new Map<string, RopeTables>();
const cacheKeys = new WeakMap<RopeSpec, string>();

export function ropeTables(spec: RopeSpec, positions: number): RopeTables {
  let key = cacheKeys.get(spec);
  if (key === undefined) cacheKeys.set(spec, (key = JSON.stringify([spec.dim, spec.theta, spec.yarn, spec.linear ?? null, spec.llama3 ?? null, spec.longRope ?? null])));
  const cached = ropeCache.get(key);
  if (cached && cached.positions >= positions) return cached;
  // round up so a growing decode rebuilds the table rarely
  const table = buildRopeTables(spec, Math.ceil(positions / 512) * 512);
  ropeCache.set(key, table);
  return table;
}

/**
 * inv_freq[i] = 1 / theta^(2i/d) in f32, as transformers computes it; linear scaling divides it by
 * its factor, Llama 3's by frequency band, and YaRN blends it with inv_freq / factor.
 */
export function inverseFrequencies(spec: RopeSpec): Float32Array {
  const { dim, theta, yarn } = spec;
  const half = dim / 2;
  const invFreq = new Float32Array(half);
  const posFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    posFreq[i] = Math.fround(Math.pow(theta, Math.fround(Math.fround(2 * i) / dim)));
    invFreq[i] = Math.fround(1 / posFreq[i]);
  }
  if (spec.linear !== undefined) {
    const factor = Math.fround(spec.linear);
    for (let i = 0; i < half; i++) invFreq[i] = Math.fround(invFreq[i] / factor);
    return invFreq;
  }
  if (spec.llama3 !== undefined) return llama3Frequencies(invFreq, spec.llama3);
  // LongRoPE: 1 / (factor · θ^(2i/d)), transformers' f32 steps
  if (spec.longRope !== undefined) {
    for (let i = 0; i < half; i++) invFreq[i] = Math.fround(1 / Math.fround(Math.fround(spec.longRope.shortFactor[i]) * posFreq[i]));
    return invFreq;
  }
  if (!yarn) return invFreq;
  const correctionDim = (rotations: number) => (dim * Math.log(yarn.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(yarn.betaFast);
  let high = correctionDim(yarn.betaSlow);
  if (yarn.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  const blended = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, Math.fround(Math.fround(i - low) / Math.fround(high - low))));
    const extrapolation = Math.fround(1 - ramp);
    const interpolated = Math.fround(1 / Math.fround(yarn.factor * posFreq[i]));
    blended[i] = Math.fround(Math.fround(interpolated * Math.fround(1 - extrapolation)) + Math.fround(invFreq[i] * extrapolation));
  }
  return blended;
}

/** transformers' `_compute_llama3_parameters`, its f32 steps in the same order. */
function llama3Frequencies(invFreq: Float32Array, l: Llama3Scaling): Float32Array {
  const f = Math.fround;
  const factor = f(l.factor);
  const lowWavelen = f(l.originalMaxPositions / l.lowFreqFactor);
  const highWavelen = f(l.originalMaxPositions / l.highFreqFactor);
  const out = new Float32Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    const inv = invFreq[i];
    const wavelen = f(f(2 * Math.PI) / inv);
    // long wave lengths are divided by the factor, short ones kept, those between blended
    const scaled = wavelen > lowWavelen ? f(inv / factor) : inv;
    if (wavelen < highWavelen || wavelen > lowWavelen) {
      out[i] = scaled;
      continue;
    }
    const smooth = f(f(f(f(l.originalMaxPositions) / wavelen) - f(l.lowFreqFactor)) / f(l.highFreqFactor - l.lowFreqFactor));
    out[i] = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
  }
  return out;
}

function buildRopeTables(spec: RopeSpec, positions: number): RopeTables {
  const half = spec.dim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  const invFreq = inverseFrequencies(spec);
  const scale = spec.yarn?.attentionFactor ?? (spec.longRope ? Math.fround(spec.longRope.mscale) : 1);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]);
      cos[p * half + i] = Math.fround(Math.cos(angle)) * scale;
      sin[p * half + i] = Math.fround(Math.sin(angle)) * scale;
    }
  }
  return { positions, half, cos, sin };
}
