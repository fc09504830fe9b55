/**
 * Builds the ModelLayout (every tensor name the runtime needs) from a family's name templates,
 * the resolved config, and which tensors the checkpoint actually holds: the only data-dependent
 * choice is, per MoE layer, whether the experts are stored per expert or fused (a family that
 * stores them fused only has no choice).
 */
import { hasSinks } from './attention-shape.js';
import { fillName, type Family, type ResolvedConfig } from './family.js';
import type { AttentionNames, FusedMlpNames, LayerLayout, MlpNames, ModelConfig, ModelLayout, MoeNames, NormPlacement, NormSite } from './types.js';
import { storedName, type LanguageModelPrefix } from './wrapped.js';

function fillMlp(names: MlpNames, layer: number, expert?: number): MlpNames {
  return { gate: fillName(names.gate, layer, expert), up: fillName(names.up, layer, expert), down: fillName(names.down, layer, expert) };
}

function fillSharedMlp(names: MlpNames | FusedMlpNames, layer: number): MlpNames | FusedMlpNames {
  return 'gateUp' in names ? { gateUp: fillName(names.gateUp, layer), down: fillName(names.down, layer) } : fillMlp(names, layer);
}

function attentionNames(family: Family, config: ModelConfig, layer: number): AttentionNames {
  const t = family.names.attention;
  const linear = family.names.linear;
  if (config.linearAttention?.layers[layer] && linear) {
    const names = mapStrings(linear, (template) => fillName(template, layer));
    const [first, second] = Object.values(names.inProj) as string[];
    // q/k/v/o name the layer's projections, as MLA's do, for what lists a layer's tensors
    return { q: first, k: second, v: names.conv1d, o: names.outProj, linear: names };
  }
  const names: AttentionNames = {
    q: fillName(t.q, layer),
    k: fillName(t.k, layer),
    v: fillName(t.v, layer),
    o: fillName(t.o, layer),
  };
  if (config.qkvBias && t.qBias && t.kBias && t.vBias) {
    names.qBias = fillName(t.qBias, layer);
    names.kBias = fillName(t.kBias, layer);
    names.vBias = fillName(t.vBias, layer);
  }
  if (config.oBias && t.oBias) names.oBias = fillName(t.oBias, layer);
  if (hasSinks(config, layer) && t.sinks) names.sinks = fillName(t.sinks, layer);
  if (config.attentionOutputGate && t.outputGate) names.outputGate = fillName(t.outputGate, layer);
  if (config.qkNorm !== 'none' && t.qNorm && t.kNorm) {
    names.qNorm = fillName(t.qNorm, layer);
    names.kNorm = fillName(t.kNorm, layer);
  }
  const mlaTemplates = family.names.mla;
  if (config.attention === 'mla' && config.mla && mlaTemplates) {
    const kvA = fillName(mlaTemplates.kvA, layer);
    const kvB = fillName(mlaTemplates.kvB, layer);
    const kvANorm = fillName(mlaTemplates.kvANorm, layer);
    if (config.mla.qLoraRank === null) {
      const qProj = fillName(mlaTemplates.qProj, layer);
      names.mla = { qProj, kvA, kvANorm, kvB };
      names.q = qProj;
    } else {
      const qB = fillName(mlaTemplates.qB, layer);
      names.mla = { qA: fillName(mlaTemplates.qA, layer), qANorm: fillName(mlaTemplates.qANorm, layer), qB, kvA, kvANorm, kvB };
      names.q = qB;
    }
    names.k = kvA;
    names.v = kvB;
  }
  const indexer = family.names.indexer;
  if (config.sparseAttention?.layers[layer] && indexer) {
    names.indexer = {
      wqB: fillName(indexer.wqB, layer),
      wk: fillName(indexer.wk, layer),
      kNorm: fillName(indexer.kNorm, layer),
      kNormBias: fillName(indexer.kNormBias, layer),
      weightsProj: fillName(indexer.weightsProj, layer),
    };
  }
  return names;
}

function moeNames(family: Family, config: ModelConfig, layer: number, has: (name: string) => boolean, shapeOf?: (name: string) => readonly number[] | undefined): MoeNames {
  const t = family.names;
  const fusedGateUp = fillName(t.fused.gateUp, layer);
  // a family without per-expert names (GraniteMoE) is fused on disk whatever the checkpoint holds
  const isFused = t.expert === undefined || has(fusedGateUp);
  const names: MoeNames = { router: fillName(t.router, layer) };
  if (isFused) {
    names.fused = { gateUp: fusedGateUp, down: fillName(t.fused.down, layer) };
    if (t.fused.form) names.fused.form = t.fused.form;
    if (t.fused.formFromShape && isTransposedDown(shapeOf?.(names.fused.down), config)) names.fused.form = 'transposed';
    if (t.fused.gateUpBias) names.fused.gateUpBias = fillName(t.fused.gateUpBias, layer);
    if (t.fused.downBias) names.fused.downBias = fillName(t.fused.downBias, layer);
    // the fused form's writer may also have renamed the router; take whichever name is present
    if (t.fused.router && !has(names.router)) names.router = fillName(t.fused.router, layer);
  } else {
    names.experts = Array.from({ length: config.numExperts }, (_, e) => fillMlp(t.expert!, layer, e));
  }
  if (t.routerBias) names.routerBias = fillName(t.routerBias, layer);
  if (t.routerLogitBias) names.routerLogitBias = fillName(t.routerLogitBias, layer);
  if (t.routerBias && t.routerBiasRow) names.routerBiasRow = true;
  // as the router: the fused form's writer may have moved the correction bias (MiniMax-M2's to mlp.e_score_correction_bias)
  if (isFused && t.fused.routerBias && names.routerBias && !has(names.routerBias)) names.routerBias = fillName(t.fused.routerBias, layer);
  if (config.sharedExpertIntermediateSize > 0 && t.shared) names.shared = fillSharedMlp(t.shared, layer);
  if (config.sharedExpertGated && t.sharedGate) names.sharedGate = fillName(t.sharedGate, layer);
  return names;
}

/** `names` with each tensor name the checkpoint lacks replaced by its renamed form, where the checkpoint has that one. */
function renamed<T>(names: T, renamings: ReadonlyArray<readonly [string, string]>, has: (name: string) => boolean): T {
  return mapStrings(names, (value) => {
    if (has(value)) return value;
    for (const [from, to] of renamings) {
      const candidate = value.replace(from, to);
      if (candidate !== value && has(candidate)) return candidate;
    }
    return value;
  });
}

/** `names` with every string in it (the tensor names; the few other strings, kinds and forms, are no tensor's name and map to themselves) passed through `map`. */
function mapStrings<T>(names: T, map: (value: string) => string): T {
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return map(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    return value;
  };
  return walk(names) as T;
}

/** Llama's norm placement, a norm on each sublayer's input: what a config without ModelConfig.norms has. */
export const PRE_NORMS: NormPlacement = { attentionInput: true, attentionOutput: false, mlpInput: true, mlpOutput: false };

/** Whether decoder layer (an MoE layer or not) has a norm at each site under the config's placement. */
export function layerNormSites(config: Pick<ModelConfig, 'norms'>, moeLayer: boolean): Record<NormSite, boolean> {
  const p = config.norms ?? PRE_NORMS;
  return { attentionInput: p.attentionInput, attentionOutput: p.attentionOutput, mlpInput: p.mlpInput, mlpOutput: p.mlpOutput === 'moe' ? moeLayer : p.mlpOutput };
}

/** Whether the config's norms carry a bias beside their weight (ModelConfig.normKind). */
export function normsHaveBias(config: Pick<ModelConfig, 'normKind'>): boolean {
  return config.normKind?.kind === 'layer' && config.normKind.bias;
}

/** The names of a layer's norm weights (or biases), at the sites its config places them. */
function normNames(family: Family, config: ModelConfig, layer: number, moeLayer: boolean, what: 'norms' | 'normBiases'): Partial<Record<NormSite, string>> {
  const names: Partial<Record<NormSite, string>> = {};
  for (const [site, present] of Object.entries(layerNormSites(config, moeLayer)) as Array<[NormSite, boolean]>) {
    if (!present) continue;
    const template = family.names[what]?.[site];
    if (template === undefined) throw new Error(`${family.label} places a norm at ${site} but names no ${what === 'norms' ? 'weight' : 'bias'} tensor for it`);
    names[site] = fillName(template, layer);
  }
  return names;
}

function requiredName(family: Family, template: string | undefined, what: string): string {
  if (template === undefined) throw new Error(`${family.label}'s config asks for ${what} but the family names no tensor for it`);
  return template;
}

/** Whether a fused down tensor's shape is the transposed form's [E, I, H] and not the rows' [E, H, I] (the rows where I = H). */
function isTransposedDown(shape: readonly number[] | undefined, config: ModelConfig): boolean {
  const { expertIntermediateSize: I, hiddenSize: H } = config;
  return shape !== undefined && I !== H && shape.length === 3 && shape[1] === I && shape[2] === H;
}

/**
 * The layout of a checkpoint; `has` says whether the checkpoint holds a tensor of that name, and
 * `shapeOf` its shape (read where a family's fused form depends on it). A language model inside a
 * multimodal wrapper (wrapped.ts) gives `prefix`: its names are then the wrapper's
 * (`model.language_model.layers.…`).
 */
export function buildLayout(
  family: Family,
  resolved: ResolvedConfig,
  storedHas: (name: string) => boolean,
  prefix?: LanguageModelPrefix,
  storedShape?: (name: string) => readonly number[] | undefined,
): ModelLayout {
  const has = prefix ? (name: string) => storedHas(storedName(prefix, name)) : storedHas;
  const shapeOf = storedShape && ((name: string) => storedShape(storedName(prefix, name)));
  const { config, moeLayers } = resolved;
  const t = family.names;
  const layers: LayerLayout[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const layer: LayerLayout = {
      index: l,
      kind: moeLayers[l] ? 'moe' : 'dense',
      norms: normNames(family, config, l, moeLayers[l], 'norms'),
      ...(normsHaveBias(config) ? { normBiases: normNames(family, config, l, moeLayers[l], 'normBiases') } : {}),
      attention: attentionNames(family, config, l),
    };
    if (moeLayers[l]) layer.moe = moeNames(family, config, l, has, shapeOf);
    else if (t.dense) layer.dense = fillMlp(t.dense, l);
    layers.push(t.renamings ? renamed(layer, t.renamings, has) : layer);
  }
  const layout: ModelLayout = {
    embed: t.embed,
    finalNorm: t.finalNorm,
    ...(normsHaveBias(config) ? { finalNormBias: requiredName(family, t.finalNormBias, 'the final norm\'s bias') } : {}),
    lmHead: config.tieWordEmbeddings ? t.embed : t.lmHead,
    ...(config.lmHeadBias ? { lmHeadBias: requiredName(family, t.lmHeadBias, 'a bias on lm_head') } : {}),
    layers,
  };
  return prefix ? { ...mapStrings(layout, (name) => storedName(prefix, name)), layerPrefix: storedName(prefix, DEFAULT_LAYER_PREFIX) } : layout;
}

const DEFAULT_LAYER_PREFIX = 'model.layers.';

/** Where the decoder layers' tensors start: `model.layers.`, or a wrapped language model's under its prefix. */
export function layersPrefix(layout: Pick<ModelLayout, 'layerPrefix'>): string {
  return layout.layerPrefix ?? DEFAULT_LAYER_PREFIX;
}

/** Where decoder layer l's tensors start (`model.layers.3.`). */
export function layerTensorPrefix(layout: Pick<ModelLayout, 'layerPrefix'>, layer: number): string {
  return `${layersPrefix(layout)}${layer}.`;
}
