/**
 * The compression methods compared by examples/compare-methods.ts, each a recipe of the library
 * at a given retain fraction γ. All share the same code path, routing statistics and Gram
 * matrices; they differ only in the knobs below.
 *
 * The four allocation baselines and `rfid-no-residual` spend the whole budget on rank (no
 * residual), so comparing them isolates the allocation; `rfid` adds the paper's residual at the
 * library default (β = 0.03 of the original parameters, tile buckets); `rfid-whiten` is `rfid`
 * with activation-aware whitening (SVD-LLM), an option beyond the paper.
 */
import type { RecipeInput } from '../../src/compress/recipe.js';

export const METHODS = [
  'uniform',
  'grouped-uniform',
  'frequency',
  'erank',
  'rfid-no-residual',
  'rfid',
  'rfid-whiten',
  'uniform-whiten',
  'waterfill',
  'waterfill-whiten',
  'waterfill-whiten-grouped',
  'waterfill-whiten-norefit',
  'waterfill-whiten-affinity',
  'waterfill-whiten-structures',
] as const;
export type MethodName = (typeof METHODS)[number];

export const METHOD_LABELS: Record<MethodName, string> = {
  uniform: 'uniform (per-expert SVD)',
  'grouped-uniform': 'grouped-uniform (MoBE)',
  frequency: 'frequency-only (ξ = 0)',
  erank: 'effective-rank-only (ξ = 1)',
  'rfid-no-residual': 'RFID without residual',
  rfid: 'RFID',
  'rfid-whiten': 'RFID + whitening',
  'uniform-whiten': 'uniform + whitening (per-expert SVD-LLM)',
  waterfill: 'water-filling on raw spectra, structure and residual chosen',
  'waterfill-whiten': 'default: whitened water-filling + refit, structure and residual chosen',
  'waterfill-whiten-grouped': 'whitened water-filling + refit, always grouped',
  'waterfill-whiten-norefit': 'whitened water-filling, no refit',
  'waterfill-whiten-affinity': 'whitened water-filling + refit, affinity groups',
  'waterfill-whiten-structures': 'whitened water-filling + refit, structure chosen among all four (adds output basis, base + delta)',
};

/** The quick comparison's methods: the baselines (uniform, uniform + whitening, grouped uniform, the paper's method) and every new preset. */
export const QUICK_METHODS: readonly MethodName[] = [
  'uniform',
  'uniform-whiten',
  'grouped-uniform',
  'rfid',
  'rfid-no-residual',
  'waterfill',
  'waterfill-whiten',
  'waterfill-whiten-grouped',
  'waterfill-whiten-norefit',
  'waterfill-whiten-affinity',
];

/**
 * The full comparison's methods (RESULTS.md): the default preset first, then the baselines a
 * user would otherwise pick: per-expert SVD, per-expert SVD-LLM, grouped uniform, the paper's
 * RFID and RFID without its residual.
 */
export const RESULTS_METHODS: readonly MethodName[] = ['waterfill-whiten', 'uniform', 'uniform-whiten', 'grouped-uniform', 'rfid', 'rfid-no-residual'];

const NO_RESIDUAL = { share: 0 } as const;

export function recipeFor(method: MethodName, retain: number): RecipeInput {
  switch (method) {
    case 'uniform':
      return { retain, allocation: 'uniform', residual: NO_RESIDUAL };
    case 'grouped-uniform':
      return { retain, allocation: 'grouped-uniform', residual: NO_RESIDUAL };
    case 'frequency':
      return { retain, allocation: 'frequency', residual: NO_RESIDUAL };
    case 'erank':
      return { retain, allocation: 'erank', residual: NO_RESIDUAL };
    case 'rfid-no-residual':
      return { retain, allocation: 'fused', residual: NO_RESIDUAL };
    case 'rfid':
      return { retain, allocation: 'fused' };
    case 'rfid-whiten':
      return { retain, allocation: 'fused', whiten: {} };
    case 'uniform-whiten':
    case 'waterfill':
    case 'waterfill-whiten':
    case 'waterfill-whiten-grouped':
    case 'waterfill-whiten-norefit':
      return { retain, preset: method };
    case 'waterfill-whiten-affinity':
      return { retain, preset: 'waterfill-whiten', grouping: 'affinity' };
    case 'waterfill-whiten-structures':
      return { retain, preset: 'waterfill-whiten', structures: ['per-expert', 'input-basis', 'output-basis', 'base-delta'] };
  }
}

/** Parse a comma-separated method list; throws naming the unknown ones and the valid names. */
export function parseMethods(list: string): MethodName[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(METHODS as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`unknown method(s) ${unknown.join(', ')}; choose from ${METHODS.join(', ')}`);
  if (names.length === 0) throw new Error(`--methods is empty; choose from ${METHODS.join(', ')}`);
  return [...new Set(names)] as MethodName[];
}

/** Parse "0.8,0.6" into retain fractions in (0, 1), in the order given, without duplicates. */
export function parseRetains(list: string): number[] {
  const values = list.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v <= 0 || v >= 1)) {
    throw new Error(`--retain must be a comma-separated list of fractions in (0, 1), e.g. 0.8,0.6,0.4; got "${list}"`);
  }
  return [...new Set(values)];
}
