/**
 * Named recipes. A preset fills in every knob it names; fields the user writes win over it
 * (objects such as `residual` are merged key by key). The budget (retain / remove) is never part of
 * a preset.
 *
 * `paper` is RFID-MoE exactly as the method spec describes it, so results stay reproducible.
 * `default` is the recipe that measured best on the shipped models (see README, "Choosing a
 * method"); the CLI uses it when neither --preset nor --recipe is given.
 */
import type { RecipeInput } from './recipe.js';

type PresetBody = Omit<RecipeInput, 'retain' | 'remove' | 'budgetGivenAs' | 'preset'>;

const NO_RESIDUAL = { share: 0 } as const;

/** Activation-aware, spectrum-driven: whitened factors, water-filling, per-expert refit, the
 * structure and the residual each chosen by measurement per layer and matrix type. */
const WATERFILL_WHITEN: PresetBody = {
  groupSize: 4,
  allocation: 'waterfill',
  whiten: {},
  gramWeighting: 'routing-squared',
  refit: true,
  structure: 'auto',
  residual: { share: 0.03, shareMode: 'absolute', buckets: 'tile', gate: true },
};

export const PRESETS = {
  /** RFID-MoE per the spec: fused ξ 0.8, groups of 4 by frequency, raw weights, β 0.03 tile, largest remainder */
  paper: {
    groupSize: 4,
    xi: 0.8,
    allocation: 'fused',
    rounding: 'largest-remainder',
    residual: { share: 0.03, shareMode: 'absolute', buckets: 'tile', gate: false },
    whiten: false,
    structure: 'grouped',
    refit: false,
    gramWeighting: 'tokens',
  },
  /** RFID without the residual (the whole budget as rank) */
  'paper-no-residual': { groupSize: 4, xi: 0.8, allocation: 'fused', residual: NO_RESIDUAL, whiten: false, structure: 'grouped', refit: false },
  /** per-expert truncated SVD at one rank for all */
  uniform: { allocation: 'uniform', residual: NO_RESIDUAL, whiten: false, refit: false, structure: 'grouped' },
  /** per-expert SVD-LLM (whitened by each expert's routed inputs) at one rank for all */
  'uniform-whiten': { allocation: 'uniform', residual: NO_RESIDUAL, whiten: {}, refit: false, structure: 'grouped', gramWeighting: 'tokens' },
  /** MoBE's closed form: groups of 4 in index order, one rank for all */
  'grouped-uniform': { groupSize: 4, allocation: 'grouped-uniform', residual: NO_RESIDUAL, whiten: false, refit: false, structure: 'grouped' },
  'waterfill-whiten': WATERFILL_WHITEN,
  /** the same, always grouped (no per-layer structure choice) */
  'waterfill-whiten-grouped': { ...WATERFILL_WHITEN, structure: 'grouped' },
  /** the same without the per-expert refit */
  'waterfill-whiten-norefit': { ...WATERFILL_WHITEN, refit: false },
  /** water-filling on raw spectra weighted by routing frequency (no calibration Gram needed) */
  waterfill: { groupSize: 4, allocation: 'waterfill', whiten: false, refit: false, structure: 'auto', residual: { share: 0.03, gate: true } },
} as const satisfies Record<string, PresetBody>;

export type PresetName = keyof typeof PRESETS | 'default';

/** The preset `default` stands for (chosen by measurement; see README). */
export const DEFAULT_PRESET: keyof typeof PRESETS = 'waterfill-whiten';

export const PRESET_NAMES: readonly PresetName[] = [...(Object.keys(PRESETS) as Array<keyof typeof PRESETS>), 'default'];

export function presetBody(name: string): PresetBody | undefined {
  if (name === 'default') return PRESETS[DEFAULT_PRESET];
  return Object.prototype.hasOwnProperty.call(PRESETS, name) ? (PRESETS as Record<string, PresetBody>)[name] : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** preset ⊕ written: written keys win; nested plain objects merge key by key. */
export function mergeOver(base: Record<string, unknown>, written: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(written)) {
    out[k] = isPlainObject(v) && isPlainObject(base[k]) ? mergeOver(base[k] as Record<string, unknown>, v) : v;
  }
  return out;
}
