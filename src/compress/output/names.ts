/**
 * Tensor names and file names of a compressed output directory (the on-disk contract that
 * `loadCompressed` reads back).
 *
 * Factored tensors live beside the layer's MoE block, under `<moe prefix>.rfid.<type>`, where the
 * MoE prefix is the router's module path (router `model.layers.3.mlp.gate.weight` → prefix
 * `model.layers.3.mlp`; Mixtral `model.layers.3.block_sparse_moe`):
 *
 * | tensor                                         | shape      | meaning                                   |
 * |------------------------------------------------|------------|-------------------------------------------|
 * | `<prefix>.rfid.<type>.groups.<g>.basis`        | [K_g, d]   | B_g, the basis shared by group g          |
 * | `<prefix>.rfid.<type>.experts.<e>.coeff`       | [p, K_g]   | A_e, expert e's coefficients (its group's K) |
 * | `<prefix>.rfid.<type>.experts.<e>.residual`    | [q]        | η_e, the residual through P (if β > 0)   |
 *
 * Groups of another structure (the group's `structure` in the block, format version 2):
 *
 * | 'output-basis': `groups.<g>.basis` is U_g [p, K_g], `experts.<e>.coeff` is C_e [K_g, d]; Ŵ_e = U_g·C_e
 * | 'base-delta':   `groups.<g>.base` W̄_g [p, d], `experts.<e>.coeff` A_e [p, K_e],
 * |                 `experts.<e>.basis` B_e [K_e, d]; Ŵ_e = W̄_g + A_e·B_e
 *
 * <type> is gate, up or down; for gate/up p is the expert width and d the hidden size, for down
 * p = hidden and d = width (nn.Linear's [out, in]). Ŵ_e = A_e·B_g + unvec(P·η_e), with P rebuilt
 * from the group's descriptor in config.json's `rfid_moe` block. The original tensors of the
 * compressed types are dropped; every other tensor keeps its name, dtype and bytes.
 */

/** The MoE module path of a layer, from its router tensor name. */
export function moePrefix(routerName: string): string {
  const parts = routerName.split('.');
  // ...<prefix>.gate.weight (every supported family names its router `<prefix>.gate.weight`)
  if (parts.length < 3 || parts[parts.length - 1] !== 'weight') {
    throw new Error(`router tensor ${routerName} does not end in ".<module>.weight"; cannot place factored tensors beside it`);
  }
  return parts.slice(0, -2).join('.');
}

export function basisName(prefix: string, type: string, group: number): string {
  return `${prefix}.rfid.${type}.groups.${group}.basis`;
}

export function groupBaseName(prefix: string, type: string, group: number): string {
  return `${prefix}.rfid.${type}.groups.${group}.base`;
}

export function expertBasisName(prefix: string, type: string, expert: number): string {
  return `${prefix}.rfid.${type}.experts.${expert}.basis`;
}

export function coefficientName(prefix: string, type: string, expert: number): string {
  return `${prefix}.rfid.${type}.experts.${expert}.coeff`;
}

export function residualName(prefix: string, type: string, expert: number): string {
  return `${prefix}.rfid.${type}.experts.${expert}.residual`;
}

/** Templates as written into the `rfid_moe` block, so other readers need not read this file. */
export const NAME_TEMPLATES = {
  basis: '<moe prefix>.rfid.<type>.groups.<g>.basis',
  coefficients: '<moe prefix>.rfid.<type>.experts.<e>.coeff',
  residual: '<moe prefix>.rfid.<type>.experts.<e>.residual',
} as const;

// ---- files -------------------------------------------------------------------------------------

/** One shard per decoder layer plus one for the tensors outside the layers (embeddings, norm, head). */
export function shardCount(numLayers: number): number {
  return numLayers + 1;
}

/** Shard of decoder layer `layer` (0-based), or of the non-layer tensors when layer = numLayers. */
export function shardFileName(layer: number, numLayers: number): string {
  const n = shardCount(numLayers);
  return `model-${String(layer + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

export const PROGRESS_FILE = '.rfid-moe-progress.json';
/** claims the output directory for one live run (lock.ts) */
export const LOCK_FILE = '.rfid-moe.lock';
export const REPORT_JSON = 'rfid-moe-report.json';
export const REPORT_MD = 'rfid-moe-report.md';
/** routing statistics the run used (saved so a resumed run need not calibrate again) */
export const STATS_FILE = 'rfid-moe-routing-stats.json';
export const CONFIG_FILE = 'config.json';
export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * Files copied unchanged from the model directory when present: the tokenizer's, and its chat
 * template, which transformers 5 saves in chat_template.jinja rather than tokenizer_config.json
 * (named extra templates in additional_chat_templates/, see CHAT_TEMPLATE_DIR).
 */
export const COPIED_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
  'generation_config.json',
] as const;

/** transformers' folder of named chat templates (`<name>.jinja`), copied with COPIED_FILES. */
export const CHAT_TEMPLATE_DIR = 'additional_chat_templates';

/** A template name transformers would save (and nothing that could leave the folder). */
export const CHAT_TEMPLATE_FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*\.jinja$/;

/** The config.json key of the compression block (namespaced; never `quantization_config`). */
export const CONFIG_BLOCK_KEY = 'rfid_moe';
