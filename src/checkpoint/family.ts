/**
 * What a model family is, declaratively: which `model_type`s it claims, the zod schema of its
 * config.json (unknown keys pass through; defaults as transformers has them), how that config
 * maps onto the normalised `ModelConfig`, which layers are MoE, and the templates of its tensor
 * names. One file per family under ./families declares one of these; nothing else in the code
 * base knows a family's key names.
 */
import type { z } from 'zod';
import { CheckpointError } from './errors.js';
import type { FamilyName, FusedExpertForm, FusedMlpNames, IndexerNames, MlpNames, ModelConfig, NormSite } from './types.js';

/**
 * Tensor-name templates. `{l}` is replaced by the layer index and `{e}` by the expert index.
 * Optional entries are used only when the config says the family instance has them (q/k/v biases
 * when `qkvBias`, q/k norms when `qkNorm !== 'none'`, MLA names when `attention === 'mla'`).
 */
export interface TensorNameTemplates {
  embed: string;
  finalNorm: string;
  lmHead: string;
  /** lm_head's bias, used where the config sets lmHeadBias */
  lmHeadBias?: string;
  /** the layer's norms by site (ModelConfig.norms), at least those the family's configs place */
  norms: Partial<Record<NormSite, string>>;
  /** their biases by site, used where the config's norms have biases (ModelConfig.normKind) */
  normBiases?: Partial<Record<NormSite, string>>;
  /** the final norm's bias, used where the config's norms have biases */
  finalNormBias?: string;
  attention: {
    q: string;
    k: string;
    v: string;
    o: string;
    qBias?: string;
    kBias?: string;
    vBias?: string;
    qNorm?: string;
    kNorm?: string;
    /** used where the config sets oBias (gpt-oss) */
    oBias?: string;
    /** used where the config sets attentionSinks (gpt-oss) */
    sinks?: string;
    /** used where the config sets attentionOutputGate (AFMoE) */
    outputGate?: string;
  };
  mla?: {
    qProj: string;
    qA: string;
    qANorm: string;
    qB: string;
    kvA: string;
    kvANorm: string;
    kvB: string;
  };
  /** DeepSeek Sparse Attention's indexer (filled where the config's sparseAttention gives a layer one) */
  indexer?: IndexerNames;
  router: string;
  /** DeepSeek-V3's router correction bias [E] */
  routerBias?: string;
  /**
   * Renamings as transformers' conversion mapping has them for the family: a layer tensor absent
   * under its template's name is read under the name with `from` replaced by `to`, where that one
   * is present. A family's releases and transformers' own saves (its module names) may name the
   * same tensor differently (EXAONE-MoE's correction bias at mlp.e_score_correction_bias or under
   * mlp.gate; HY V3's router, bias and shared MLP).
   */
  renamings?: ReadonlyArray<readonly [from: string, to: string]>;
  /** the correction bias is stored as one row, [1, E] (ERNIE-4.5) */
  routerBiasRow?: boolean;
  /** per-expert 2-D tensors, the on-disk form of most families; absent where a family stores its experts fused only (GraniteMoE) */
  expert?: MlpNames;
  /**
   * transformers ≥ 5's in-memory fused form, which some writers put on disk:
   * gate_up [E, 2I, H] (gate rows first) and down [E, H, I], or gpt-oss's and Llama 4's
   * transposed forms (`form`, FusedExpertNames in types.ts), gpt-oss's with its biases. `router` and `routerBias` are the
   * router's and its correction bias's names in that form when they differ (Mixtral's
   * block_sparse_moe.gate becomes mlp.gate).
   */
  fused: {
    gateUp: string;
    down: string;
    router?: string;
    routerBias?: string;
    form?: FusedExpertForm;
    gateUpBias?: string;
    downBias?: string;
    /**
     * The form is read from the stored down tensor's shape: [E, I, H] is 'transposed' (the
     * releases'), [E, H, I] the modules' rows (transformers' saves); the rows where I = H, as
     * transformers' conversion reads it (Qwen3-VL-MoE)
     */
    formFromShape?: boolean;
  };
  /** gpt-oss: the router's bias on its logits [E] */
  routerLogitBias?: string;
  /** per projection, or gate and up fused in one tensor (GraniteMoE-shared's shared_mlp) */
  shared?: MlpNames | FusedMlpNames;
  sharedGate?: string;
  dense?: MlpNames;
}

export interface FamilyDefinition<Parsed> {
  family: FamilyName;
  /** human name, e.g. "Qwen2-MoE" */
  label: string;
  /** config.json `model_type` values this family reads */
  modelTypes: readonly string[];
  /** schema of config.json; must pass unknown keys through */
  configSchema: z.ZodType<Parsed>;
  // NoInfer: the parsed type comes from the schema alone, never from these callbacks
  normalize(parsed: NoInfer<Parsed>, raw: Record<string, unknown>): ModelConfig;
  /** whether decoder layer `layer` has a routed MoE block (else a dense MLP) */
  isMoeLayer(parsed: NoInfer<Parsed>, layer: number): boolean;
  names: TensorNameTemplates;
}

/** A config.json resolved by its family. */
export interface ResolvedConfig {
  config: ModelConfig;
  /** moeLayers[l] is true when layer l is an MoE layer */
  moeLayers: boolean[];
}

/** A family with its config type erased, so the registry can hold them side by side. */
export interface Family {
  readonly family: FamilyName;
  readonly label: string;
  readonly modelTypes: readonly string[];
  readonly names: TensorNameTemplates;
  /** Parse and normalise a config.json object; throws CheckpointError('InvalidConfig') naming the key. */
  resolveConfig(raw: Record<string, unknown>): ResolvedConfig;
}

export function defineFamily<Parsed>(definition: FamilyDefinition<Parsed>): Family {
  return {
    family: definition.family,
    label: definition.label,
    modelTypes: definition.modelTypes,
    names: definition.names,
    resolveConfig(raw) {
      const result = definition.configSchema.safeParse(raw);
      if (!result.success) {
        const problems = result.error.issues.map((issue) => {
          const key = issue.path.map(String).join('.') || '(root)';
          return `config.json key '${key}': ${issue.message}`;
        });
        const more = problems.length > 3 ? `; and ${problems.length - 3} more problem(s)` : '';
        throw new CheckpointError('InvalidConfig', `${problems.slice(0, 3).join('; ')}${more} (${definition.label} config); fix config.json`, problems);
      }
      const config = definition.normalize(result.data, raw);
      const moeLayers = Array.from({ length: config.numLayers }, (_, l) => definition.isMoeLayer(result.data, l));
      checkConsistency(config, moeLayers, definition.label);
      return { config, moeLayers };
    },
  };
}

/** Cross-key rules no single-key schema can state. */
function checkConsistency(config: ModelConfig, moeLayers: boolean[], label: string): void {
  const problems: string[] = [];
  if (!moeLayers.some(Boolean)) problems.push('no layer is an MoE layer under this config, so there is nothing to compress');
  if (moeLayers.some(Boolean) && config.topK < 1) problems.push('num_experts_per_tok is missing; MoE layers need a top-k of at least 1');
  if (moeLayers.some(Boolean) && config.topK > config.numExperts)
    problems.push(`num_experts_per_tok (${config.topK}) exceeds the number of routed experts (${config.numExperts})`);
  if (config.attention === 'standard' && config.numHeads % config.numKvHeads !== 0)
    problems.push(`num_attention_heads (${config.numHeads}) is not a multiple of num_key_value_heads (${config.numKvHeads})`);
  if (problems.length > 0)
    throw new CheckpointError('InvalidConfig', `config.json: ${problems[0]} (${label} config); fix config.json`, problems);
}

/** Substitute `{l}` and `{e}` in a tensor-name template. */
export function fillName(template: string, layer: number, expert?: number): string {
  let name = template.replaceAll('{l}', String(layer));
  if (expert !== undefined) name = name.replaceAll('{e}', String(expert));
  return name;
}
