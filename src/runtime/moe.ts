/**
 * The sparse MoE block with each family's routing rule:
 *   p = softmax(x·Wrᵀ) in f32 over all experts → top-k (DeepSeek-V2 and Mistral 4: among the best
 *   expert groups) → renormalise when norm_topk_prob (always for Mixtral; DeepSeek and Mistral 4
 *   add 1e-20 to the denominator as their code does) → × routed scaling factor → Σ_k w_k · expert_k(x)
 *   (Llama 4: Σ_k expert_k(w_k · x), the weights on the inputs, ModelConfig.routingWeightsScaleInputs)
 *   (or the top-k of the logits weighed by a softmax over them or their sigmoids, or PhiMoE's
 *   sparsemixer: routeTopk, routeSparsemixer)
 * plus the shared expert: Qwen2-MoE's scaled by sigmoid(x·g), DeepSeek's ungated (Cohere2-MoE's
 * averaged with the routed sum where its config says so).
 * Experts are loaded one at a time, the next one read while the current one computes, so at
 * most two experts' weights are resident. A provider that holds its experts (`residentExpert`)
 * lets a decoding step or a prompt run every routed expert in one kernel call instead (dense, or
 * factored as the expert would apply its factors; more than 8 rows an expert when all its
 * matrices are BF16), gpt-oss's clamped experts with their biases included.
 */
import type { Engine, ExpertOperand } from '../engine/types.js';
import type { ClampedSwiGlu, ModelConfig } from '../checkpoint/types.js';
import { addRowBias, ones, scratch, softmaxInPlace, topK } from './numerics.js';
import { clampedSwiGluInPlace } from '../engine/ts/kernels/clamped-swiglu.js';
import { prefetch } from './prefetch.js';
import { allBf16, SWIGLU_EXPERTS_MAX_ROWS } from '../engine/ts/kernels/swiglu-experts.js';
import type { ExpertWeights, MoeWeights, SwiGluOperands } from './weights.js';

export interface Routing {
  tokens: number;
  topK: number;
  /** chosen experts per token, best first [tokens × topK] */
  experts: Int32Array;
  /** their combination weights [tokens × topK] */
  weights: Float32Array;
}

/** Hooks into the MoE block (routing statistics, per-expert activation Gram matrices). */
export interface MoeObserver {
  onRouting?(layer: number, routing: Routing): void;
  /** the rows routed to `expert` (rows × hidden) as its gate/up projections take them (the
   * normalised hidden states; Llama 4's times their routing weights), and what the block multiplies
   * each row's output by (its routing weight; 1 where the weight scaled the input instead) */
  onExpertInput?(layer: number, expert: number, x: Float32Array, rows: number, routingWeights?: Float32Array): void | Promise<void>;
}

export function route(engine: Engine, config: ModelConfig, w: Pick<MoeWeights, 'router' | 'routerBias' | 'routerLogitBias'>, x: Float32Array, tokens: number): Routing {
  const { router, routerBias } = w;
  if (config.routing === 'topk-softmax' || config.routing === 'topk-sigmoid') return routeTopk(engine, config, router, w.routerLogitBias, x, tokens);
  if (config.routing === 'sparsemixer') return routeSparsemixer(engine, config, router, x, tokens);
  if (config.topkMethod === 'noaux_tc') return routeNoAuxTc(engine, config, router, routerBias, x, tokens);
  const { numExperts: E, topK: k, hiddenSize } = config;
  const probs = new Float32Array(tokens * E);
  engine.gemm(tokens, E, hiddenSize, x, router, probs, { transB: true });
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  const normalise = config.family === 'mixtral' || config.normTopkProb;
  const epsilon = config.family === 'deepseek' || config.family === 'deepseek_v2' || config.family === 'mistral4' ? 1e-20 : 0;
  const groups = config.topkMethod === 'group_limited_greedy' ? groupLimitedTopK(config, 'best', 0) : config.topkMethod === 'group_limited_top2' ? groupLimitedTopK(config, 'two best', 0) : null;
  if (routerBias && routerBias.length !== E) throw new RangeError(`the router's correction bias has ${routerBias.length} values for ${E} experts`);
  // ERNIE-4.5: the experts are chosen on probability + correction bias, weighted by the probability
  const choice = routerBias ? new Float32Array(E) : null;
  for (let t = 0; t < tokens; t++) {
    softmaxInPlace(probs, t * E, E);
    if (choice) {
      for (let e = 0; e < E; e++) choice[e] = probs[t * E + e] + routerBias![e];
      topK(choice, 0, E, k, experts, t * k);
    } else if (groups) groups.choose(probs, t * E, experts, t * k);
    else topK(probs, t * E, E, k, experts, t * k);
    let sum = 0;
    for (let s = 0; s < k; s++) sum += probs[t * E + experts[t * k + s]];
    const denominator = normalise ? Math.fround(Math.fround(sum) + epsilon) : 1;
    for (let s = 0; s < k; s++) {
      weights[t * k + s] = Math.fround(probs[t * E + experts[t * k + s]] / denominator) * config.routedScalingFactor;
    }
  }
  return { tokens, topK: k, experts, weights };
}

/**
 * Routing on the top-k logits: logits = x·Wᵀ (+ bias, gpt-oss's), the k largest (earlier experts
 * first on ties, as torch.topk on CPU), weighted by a softmax over those k values alone (gpt-oss's
 * GptOssTopKRouter, Cohere2-MoE's softmax router: 'topk-softmax') or each one's sigmoid (Llama 4's
 * Llama4Router, 'topk-sigmoid'; divided by their sum where normTopkProb, Cohere2-MoE's sigmoid
 * router), in f32, the routers' dtype there.
 */
function routeTopk(engine: Engine, config: ModelConfig, router: Float32Array, bias: Float32Array | undefined, x: Float32Array, tokens: number): Routing {
  const { numExperts: E, topK: k, hiddenSize } = config;
  if (bias && bias.length !== E) throw new RangeError(`the router's bias has ${bias.length} values for ${E} experts`);
  const logits = new Float32Array(tokens * E);
  engine.gemm(tokens, E, hiddenSize, x, router, logits, { transB: true });
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    if (bias) for (let e = 0; e < E; e++) logits[t * E + e] = Math.fround(logits[t * E + e] + bias[e]);
    topK(logits, t * E, E, k, experts, t * k);
    for (let s = 0; s < k; s++) weights[t * k + s] = logits[t * E + experts[t * k + s]];
    if (config.routing === 'topk-sigmoid') {
      for (let s = t * k; s < (t + 1) * k; s++) weights[s] = 1 / (1 + Math.exp(-weights[s]));
      if (config.normTopkProb) normaliseBySum(weights, t * k, k);
    } else softmaxInPlace(weights, t * k, k);
  }
  return { tokens, topK: k, experts, weights };
}

/**
 * PhiMoE's sparsemixer at inference, as transformers' sparsemixer computes it with training off:
 * logits s = x·Wᵀ; the first expert is the best logit's (m1, the earliest on ties), weighed by the
 * softmax, at it, of the logits not masked, a logit s_j being masked where
 * (m1 − s_j) / max(|s_j|, m1) > 2·eps; the second is the best of the others (m2), weighed by the
 * softmax, at it, of those others under the same mask taken against m2 (the first stays masked).
 * Two experts whatever num_experts_per_tok, as there; the weights are used as they are.
 */
function routeSparsemixer(engine: Engine, config: ModelConfig, router: Float32Array, x: Float32Array, tokens: number): Routing {
  const { numExperts: E, hiddenSize } = config;
  const k = 2;
  const margin = Math.fround(2 * (config.routerJitterEps ?? 0));
  const logits = new Float32Array(tokens * E);
  engine.gemm(tokens, E, hiddenSize, x, router, logits, { transB: true });
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  const gates = new Float32Array(E);
  for (let t = 0; t < tokens; t++) {
    const s = logits.subarray(t * E, (t + 1) * E);
    let first = -1;
    for (let pick = 0; pick < k; pick++) {
      // the best logit but the first pick's (torch's max: the earliest index on ties)
      let best = -1;
      for (let e = 0; e < E; e++) if (e !== first && (best < 0 || s[e] > s[best])) best = e;
      const m = s[best];
      for (let e = 0; e < E; e++) {
        const factor = Math.max(Math.abs(s[e]), m);
        gates[e] = e === first || Math.fround(Math.fround(m - s[e]) / factor) > margin ? -Infinity : s[e];
      }
      softmaxInPlace(gates, 0, E);
      experts[t * k + pick] = best;
      weights[t * k + pick] = gates[best];
      first = best;
    }
  }
  return { tokens, topK: k, experts, weights };
}

/** values[at…at+k) divided by their f32 sum, as torch's x / x.sum(-1, keepdim=True). */
function normaliseBySum(values: Float32Array, at: number, k: number): void {
  let sum = 0;
  for (let s = at; s < at + k; s++) sum = Math.fround(sum + values[s]);
  for (let s = at; s < at + k; s++) values[s] /= sum;
}

/**
 * DeepSeek-V3's routing (topk_method 'noaux_tc'), as transformers' DeepseekV3TopkRouter computes
 * it: sigmoid scores; the choice is made on score + e_score_correction_bias, among the experts of
 * the topkGroup groups whose two best biased scores sum highest; the chosen experts weigh their
 * unbiased scores, renormalised (norm_topk_prob, + 1e-20) and times routed_scaling_factor.
 */
function routeNoAuxTc(engine: Engine, config: ModelConfig, router: Float32Array, bias: Float32Array | undefined, x: Float32Array, tokens: number): Routing {
  const { numExperts: E, topK: k, hiddenSize } = config;
  if (bias && bias.length !== E) throw new RangeError(`the router's correction bias has ${bias.length} values for ${E} experts`);
  const groups = groupLimitedTopK(config, 'two best', -Infinity);
  const logits = new Float32Array(tokens * E);
  engine.gemm(tokens, E, hiddenSize, x, router, logits, { transB: true });
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  const scores = new Float32Array(E);
  const choice = new Float32Array(E);
  for (let t = 0; t < tokens; t++) {
    for (let e = 0; e < E; e++) {
      scores[e] = 1 / (1 + Math.exp(-logits[t * E + e]));
      choice[e] = scores[e] + (bias ? bias[e] : 0);
    }
    groups.choose(choice, 0, experts, t * k);
    let sum = 0;
    for (let s = 0; s < k; s++) sum += scores[experts[t * k + s]];
    const denominator = config.normTopkProb ? Math.fround(Math.fround(sum) + 1e-20) : 1;
    for (let s = 0; s < k; s++) weights[t * k + s] = Math.fround(scores[experts[t * k + s]] / denominator) * config.routedScalingFactor;
  }
  return { tokens, topK: k, experts, weights };
}

/**
 * DeepSeek's group-limited top-k, as transformers computes it: the experts fall into nGroup equal
 * groups, each scored by its best value (V2's 'group_limited_greedy') or the sum of its two best
 * (V3's 'noaux_tc', Mistral 4's 'group_limited_top2'); the topkGroup best groups are kept, the
 * others' values replaced by `fill` (V2 and Mistral 4: 0, so with fewer kept experts than k a
 * zero-probability one fills in; V3: −∞), and the top-k is taken over all experts.
 */
function groupLimitedTopK(config: ModelConfig, groupScore: 'best' | 'two best', fill: number): { choose(values: Float32Array, offset: number, out: Int32Array, outOffset: number): void } {
  const { numExperts: E, topK: k } = config;
  const nGroup = config.nGroup ?? 1;
  const keep = config.topkGroup ?? nGroup;
  const size = E / nGroup;
  if (E % nGroup !== 0 || keep > nGroup || (groupScore === 'two best' && size < 2)) {
    throw new RangeError(`group-limited routing needs n_group dividing the ${E} experts${groupScore === 'two best' ? ' into groups of at least 2' : ''} and topk_group ≤ n_group, got ${nGroup} and ${keep}`);
  }
  const groupScores = new Float32Array(nGroup);
  const kept = new Int32Array(keep);
  const masked = new Float32Array(E);
  return {
    choose(values, offset, out, outOffset) {
      for (let g = 0; g < nGroup; g++) {
        let first = -Infinity;
        let second = -Infinity;
        for (let j = offset + g * size; j < offset + (g + 1) * size; j++) {
          const v = values[j];
          if (v > first) [first, second] = [v, first];
          else if (v > second) second = v;
        }
        groupScores[g] = groupScore === 'best' ? first : first + second;
      }
      topK(groupScores, 0, nGroup, keep, kept, 0);
      masked.fill(fill);
      for (const g of kept) masked.set(values.subarray(offset + g * size, offset + (g + 1) * size), g * size);
      topK(masked, 0, E, k, out, outOffset);
    },
  };
}

/** Output (tokens × hidden) of the MoE block for the normalised input x. */
export async function moeBlock(
  engine: Engine,
  config: ModelConfig,
  layer: number,
  w: MoeWeights,
  x: Float32Array,
  tokens: number,
  observer?: MoeObserver,
): Promise<Float32Array> {
  const h = config.hiddenSize;
  const routing = route(engine, config, w, x, tokens);
  observer?.onRouting?.(layer, routing);

  const { first, order, orderWeights } = groupByExpert(routing, config.numExperts);
  const E = config.numExperts;

  // accumulated apart from the residual and added once, in the order transformers sums them
  const out = new Float32Array(tokens * h);
  // resident experts the kernel can run as they are (heldExperts): all of them in one kernel call
  const held = observer?.onExpertInput ? null : heldExperts(w, first, E);
  // gpt-oss's experts (a clamped activation, biases) in the one call too, given their biases
  const biases = held?.oneCall && config.expertActivation ? splitBiases(w.expertBiases, E, h, held.oneCall.width) : null;
  if (held?.oneCall && (!config.expertActivation || biases)) {
    const clamped = config.expertActivation && biases ? { act: config.expertActivation, biases } : null;
    if (config.routingWeightsScaleInputs) heldExpertsOnScaledRows(engine, h, x, held.oneCall, order, orderWeights, out, clamped);
    else heldExpertsInCalls(engine, h, x, held.oneCall, order, orderWeights, out, clamped);
  } else {
    await expertByExpert(engine, config, layer, w, x, h, first, order, orderWeights, out, held?.got, observer);
  }

  if (w.shared) {
    const shared = new Float32Array(tokens * h);
    w.shared.forward(engine, x, tokens, shared);
    if (w.sharedGate) {
      const gate = new Float32Array(tokens);
      engine.gemm(tokens, 1, h, x, w.sharedGate, gate, { transB: true });
      for (let t = 0; t < tokens; t++) {
        const g = 1 / (1 + Math.exp(-gate[t]));
        for (let j = 0; j < h; j++) out[t * h + j] += g * shared[t * h + j];
      }
    } else {
      for (let i = 0; i < out.length; i++) out[i] += shared[i];
    }
    // Cohere2-MoE's 'average': (routed + shared) / 2, the halving exact in f32
    if (config.sharedExpertCombination === 'average') for (let i = 0; i < out.length; i++) out[i] *= 0.5;
  }
  return out;
}

/**
 * Most scratch (floats) one swiGluExperts call gets before the routed experts are split over
 * several calls, in order (16 MiB): a prompt routes every token to top-k experts, and one call
 * holding all of them would need tokens · top-k · (2·hidden + 2·width) floats (a 4096-token
 * prompt of Qwen3-30B-A3B: 740 MB). An expert with more rows than that takes a call of its own,
 * with the scratch its rows need, as the loop's own buffers would.
 */
const EXPERTS_CALL_SCRATCH_FLOATS = 1 << 22;

/** The held routed experts through ForwardKernels.swiGluExperts, as few calls as the scratch bound allows. */
function heldExpertsInCalls(
  engine: Engine, h: number, x: Float32Array, call: OneCall, order: Int32Array, orderWeights: Float32Array, out: Float32Array,
  clamped: { act: ClampedSwiGlu; biases: ExpertBiases } | null,
): void {
  const { groups, experts, gates, ups, downs } = call;
  const width = call.width;
  const perRow = 2 * h + 2 * width;
  const routed = gates.length;
  let from = 0;
  while (from < routed) {
    let to = from + 1;
    while (to < routed && (groups[to + 1] - groups[from]) * perRow <= EXPERTS_CALL_SCRATCH_FLOATS) to++;
    const work = scratch('moe-experts-work', (groups[to] - groups[from]) * perRow);
    const range = from === 0 && to === routed;
    const these = range ? experts : experts.slice(from, to);
    engine.kernels.swiGluExperts(
      h, width, x, range ? groups : groups.subarray(from, to + 1), order, orderWeights,
      range ? gates : gates.slice(from, to), range ? ups : ups.slice(from, to), range ? downs : downs.slice(from, to), work, out,
      clamped && {
        alpha: clamped.act.alpha,
        limit: clamped.act.limit,
        gateBiases: these.map((e) => clamped.biases.gate[e]),
        upBiases: these.map((e) => clamped.biases.up[e]),
        downBiases: these.map((e) => clamped.biases.down[e]),
      },
    );
    from = to;
  }
}

/**
 * Llama 4's held routed experts (ModelConfig.routingWeightsScaleInputs): each routed row times its
 * weight, one a (token, expert) in `order`'s order, through heldExpertsInCalls with weights of 1
 * into a row of its own, then each token's rows summed in that order, expert after expert, as the
 * expert-by-expert loop sums them.
 */
function heldExpertsOnScaledRows(
  engine: Engine, h: number, x: Float32Array, call: OneCall, order: Int32Array, orderWeights: Float32Array, out: Float32Array,
  clamped: { act: ClampedSwiGlu; biases: ExpertBiases } | null,
): void {
  const n = order.length;
  const scaled = new Float32Array(n * h);
  engine.kernels.gatherRows(h, order, n, x, scaled);
  scaleRows(scaled, h, orderWeights);
  const perRoute = new Float32Array(n * h);
  heldExpertsInCalls(engine, h, scaled, call, Int32Array.from({ length: n }, (_, j) => j), ones(n), perRoute, clamped);
  engine.kernels.scatterAddRows(h, order, ones(n), n, perRoute, out);
}

/** Row j of `rows` (of `width` values) times weights[j], one f32 rounding a value (torch's routed_in = hidden · score). */
function scaleRows(rows: Float32Array, width: number, weights: Float32Array): void {
  for (let j = 0; j < weights.length; j++) {
    const weight = weights[j];
    for (let i = j * width; i < (j + 1) * width; i++) rows[i] *= weight;
  }
}

/**
 * A routed expert's rows as its projections take them, and what its outputs are multiplied by:
 * the rows and their routing weights, or (Llama 4) the rows times their weights, in place, and 1s.
 */
function weighInputs(config: ModelConfig, xe: Float32Array, weights: Float32Array): Float32Array {
  if (!config.routingWeightsScaleInputs) return weights;
  scaleRows(xe, config.hiddenSize, weights);
  return new Float32Array(weights.length).fill(1);
}

/** gpt-oss's expert biases per expert (indexed by expert), gate and up apart. */
interface ExpertBiases {
  gate: Float32Array[];
  up: Float32Array[];
  down: Float32Array[];
}

/**
 * A layer's expert biases split per expert, the interleaved gate_up bias de-interleaved (gate
 * bias of expert e at gateUp[e·2w + 2i], up at gateUp[e·2w + 2i + 1]): once per biases object,
 * which lives as long as the layer's weights, not at every step.
 */
const biasesByExpert = new WeakMap<NonNullable<MoeWeights['expertBiases']>, ExpertBiases>();

/**
 * The layer's expert biases per expert, gate and up apart (cached per biases object); null where
 * missing or of other sizes (its experts then run one by one, whose reference refuses them).
 */
function splitBiases(biases: MoeWeights['expertBiases'], E: number, hidden: number, width: number): ExpertBiases | null {
  if (!biases || biases.gateUp.length !== E * 2 * width || biases.down.length !== E * hidden) return null;
  let split = biasesByExpert.get(biases);
  if (!split) {
    const gateAll = new Float32Array(E * width);
    const upAll = new Float32Array(E * width);
    const { gateUp } = biases;
    for (let i = 0; i < E * width; i++) {
      gateAll[i] = gateUp[2 * i];
      upAll[i] = gateUp[2 * i + 1];
    }
    const each = (all: Float32Array, n: number) => Array.from({ length: E }, (_, e) => all.subarray(e * n, (e + 1) * n));
    split = { gate: each(gateAll, width), up: each(upAll, width), down: each(biases.down, hidden) };
    biasesByExpert.set(biases, split);
  }
  return split;
}

/** The routed experts' projections for ForwardKernels.swiGluExperts, and their rows' ranges in `order`. */
interface OneCall {
  groups: Int32Array;
  /** the routed experts' indices, in the order of gates */
  experts: number[];
  width: number;
  gates: ExpertOperand[];
  ups: ExpertOperand[];
  downs: ExpertOperand[];
}

/**
 * The routed experts the provider holds in memory now (`got`, each counted once as a use), and,
 * when every routed expert is held and has the same width, what the one-call path needs: its
 * projections as the kernel takes them (swiGluOperands: dense, or factored where the expert would
 * apply its factors as the kernel does for these rows), with at most SWIGLU_EXPERTS_MAX_ROWS rows
 * unless every matrix is BF16.
 * Null when the provider hands experts out only by reading them.
 */
function heldExperts(w: MoeWeights, first: Int32Array, E: number): { got: Map<number, ExpertWeights>; oneCall: OneCall | null } | null {
  if (!w.residentExpert) return null;
  const got = new Map<number, ExpertWeights>();
  const groups = [first[0]];
  const experts: number[] = [];
  const gates: ExpertOperand[] = [];
  const ups: ExpertOperand[] = [];
  const downs: ExpertOperand[] = [];
  let width = 0;
  let oneCall = true;
  for (let e = 0; e < E; e++) {
    const rows = first[e + 1] - first[e];
    if (rows === 0) continue;
    const expert = w.residentExpert(e);
    if (!expert) return { got, oneCall: null };
    got.set(e, expert);
    if (!oneCall) continue;
    const ops = kernelOperands(expert, rows);
    if (!ops || (width > 0 && ops.width !== width)) {
      oneCall = false;
      continue;
    }
    width = ops.width;
    // routed experts' rows are contiguous in `order` (the others have none)
    groups.push(first[e + 1]);
    experts.push(e);
    gates.push(ops.gate);
    ups.push(ops.up);
    downs.push(ops.down);
  }
  return { got, oneCall: oneCall && gates.length > 0 ? { groups: Int32Array.from(groups), experts, width, gates, ups, downs } : null };
}

/** An expert's projections for ForwardKernels.swiGluExperts with `rows` rows, and its width; null where it must run on its own. */
function kernelOperands(expert: ExpertWeights, rows: number): SwiGluOperands | null {
  const ops = expert.swiGluOperands?.(rows);
  if (!ops) return null;
  // more rows (a prompt's) only when every matrix is BF16: f32 products of more rows go through sgemm
  return rows <= SWIGLU_EXPERTS_MAX_ROWS || (allBf16(ops.gate) && allBf16(ops.up) && allBf16(ops.down)) ? ops : null;
}

/** The routed experts one at a time, the next one read while the current one computes (`got`: already held). */
async function expertByExpert(
  engine: Engine,
  config: ModelConfig,
  layer: number,
  w: MoeWeights,
  x: Float32Array,
  h: number,
  first: Int32Array,
  order: Int32Array,
  orderWeights: Float32Array,
  out: Float32Array,
  got: Map<number, ExpertWeights> | undefined,
  observer?: MoeObserver,
): Promise<void> {
  const kernels = engine.kernels;
  const E = first.length - 1;
  const routed = (from: number): number => {
    let e = from;
    while (e < E && first[e + 1] === first[e]) e++;
    return e;
  };
  const load = (e: number) => got?.get(e) ?? prefetch(w.expert(e));
  let e = routed(0);
  let nextWeights = e < E ? load(e) : undefined;
  while (e < E) {
    const rows = first[e + 1] - first[e];
    // the next routed expert is read while this one computes
    const expert = await nextWeights!;
    const following = routed(e + 1);
    nextWeights = following < E ? load(following) : undefined;
    const idx = order.subarray(first[e], first[e + 1]);
    let we = orderWeights.subarray(first[e], first[e + 1]);
    let xe: Float32Array | undefined;
    if (observer?.onExpertInput) {
      // the observer may keep its input or await on it: give it an array of its own
      xe = new Float32Array(rows * h);
      kernels.gatherRows(h, idx, rows, x, xe);
      we = weighInputs(config, xe, we);
      await observer.onExpertInput(layer, e, xe, rows, we);
    }
    // synchronous from here to the scatter: the scratch buffers cannot be reused meanwhile
    if (!xe) {
      xe = scratch('moe-expert-in', rows * h);
      kernels.gatherRows(h, idx, rows, x, xe);
      we = weighInputs(config, xe, we);
    }
    const ye = scratch('moe-expert-out', rows * h);
    if (config.expertActivation) clampedSwiGluExpert(engine, config.expertActivation, expert, splitBiases(w.expertBiases, E, h, config.expertIntermediateSize), e, xe, rows, h, config.expertIntermediateSize, ye);
    else expert.forward(engine, xe, rows, ye);
    kernels.scatterAddRows(h, idx, we, rows, ye, out);
    e = following;
  }
}

/**
 * gpt-oss's expert on `rows` rows: g = x·gateᵀ + b_g, u = x·upᵀ + b_u, then
 * a = (clamp(u, −limit, limit) + 1) · min(g, limit) · sigmoid(alpha · min(g, limit)), and
 * out = a·downᵀ + b_d, as transformers' GptOssExperts (whose stored gate_up bias interleaves gate
 * and up as its columns do). In f32; each projection as the expert holds it (dense, BF16 or factored).
 * The reference of swiGluExperts's `clamped` (whose kernels compute it step for step as here), and
 * what runs where the experts cannot go through that kernel (read one by one, observed, or more
 * than 8 rows with f32 matrices).
 */
function clampedSwiGluExpert(
  engine: Engine, act: ClampedSwiGlu, expert: ExpertWeights, biases: ExpertBiases | null, e: number,
  x: Float32Array, rows: number, hidden: number, width: number, out: Float32Array,
): void {
  if (!biases) throw new RangeError(`the model's experts take biases (gpt-oss) but the layer has none, or none of its ${width}-wide experts' sizes`);
  if (!expert.project) throw new RangeError('this expert cannot apply its projections one at a time, which gpt-oss\'s activation needs');
  const g = scratch('clamped-swiglu-gate', rows * width);
  const u = scratch('clamped-swiglu-up', rows * width);
  expert.project(engine, 'gate', x, rows, g);
  expert.project(engine, 'up', x, rows, u);
  clampedSwiGluInPlace(rows, width, g, u, biases.gate[e], biases.up[e], act.alpha, act.limit);
  expert.project(engine, 'down', g, rows, out);
  addRowBias(out, rows, hidden, biases.down[e], engine.kernels);
}

/**
 * Tokens grouped by expert (slot order within a token does not matter for the sum): expert e's
 * tokens are order[first[e]..first[e+1]), in token order, with their routing weights alongside.
 */
function groupByExpert(routing: Routing, numExperts: number): { first: Int32Array; order: Int32Array; orderWeights: Float32Array } {
  const { experts, weights } = routing;
  const first = new Int32Array(numExperts + 1);
  for (const e of experts) first[e + 1]++;
  for (let e = 0; e < numExperts; e++) first[e + 1] += first[e];
  const order = new Int32Array(experts.length);
  const orderWeights = new Float32Array(experts.length);
  const fill = first.slice(0, numExperts);
  for (let i = 0; i < experts.length; i++) {
    const e = experts[i];
    order[fill[e]] = Math.floor(i / routing.topK);
    orderWeights[fill[e]++] = weights[i];
  }
  return { first, order, orderWeights };
}

/**
 * What `moeBlock` shows its observer — the routing, then each expert's routed rows in the same
 * order — without running any expert: sequential calibration observes a layer's inputs before
 * the layer's experts are compressed, and only the compressed experts' output is needed after.
 */
export async function observeMoeInputs(engine: Engine, config: ModelConfig, layer: number, moe: Pick<MoeWeights, 'router' | 'routerBias' | 'routerLogitBias'>, x: Float32Array, tokens: number, observer: MoeObserver): Promise<void> {
  const routing = route(engine, config, moe, x, tokens);
  observer.onRouting?.(layer, routing);
  if (!observer.onExpertInput) return;
  const h = config.hiddenSize;
  const { first, order, orderWeights } = groupByExpert(routing, config.numExperts);
  for (let e = 0; e < config.numExperts; e++) {
    const rows = first[e + 1] - first[e];
    if (rows === 0) continue;
    // an array of its own, as in moeBlock: the observer may keep it (Llama 4's rows scaled as there)
    const xe = new Float32Array(rows * h);
    engine.kernels.gatherRows(h, order.subarray(first[e], first[e + 1]), rows, x, xe);
    await observer.onExpertInput(layer, e, xe, rows, weighInputs(config, xe, orderWeights.subarray(first[e], first[e + 1])));
  }
}
