/**
 * Model-wide allocation for sharded runs, in two phases around a global step:
 *   1. each shard task writes the spectra of its layers (`compress --shard i/N --spectra-out f`);
 *   2. `rfid-moe allocate f… --out budgets.json` runs one water-filling over every layer's groups;
 *   3. each shard task factorises its layers with those budgets (`--rank-budgets budgets.json`).
 * The budgets equal those a one-process run computes, so the merged output is byte-identical.
 * Every file carries the run's identity (model, recipe, statistics) and is refused on another run.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../../io/atomic.js';
import { CompressError } from '../options.js';
import { parseRecipe } from '../recipe.js';
import { budgetsFromSpectra, type RankBudgets, type SpectraPart } from '../stages/allocate-model.js';
import { formatLayerList } from './layers.js';

export class AllocationFileError extends CompressError {
  override readonly kind = 'AllocationFileError';
}

const identity = {
  tool: z.string(),
  modelFingerprint: z.string(),
  recipeFingerprint: z.string(),
  statsSha256: z.string(),
  /** MoE layers of the model (spectra must cover them all before allocating) */
  moeLayers: z.array(z.number().int().nonnegative()),
  /** the canonical recipe (its type order fixes the order of the water-filling) */
  recipe: z.record(z.string(), z.unknown()),
};

const spectraSchema = z.object({
  format: z.literal('rfid-moe.spectra'),
  version: z.literal(1),
  ...identity,
  layers: z.array(z.number().int().nonnegative()),
  parts: z.array(
    z.object({
      layer: z.number().int().nonnegative(),
      type: z.enum(['gate', 'up', 'down']),
      budgetParams: z.number(),
      fixedParams: z.number().optional(),
      groups: z.array(z.object({ energies: z.array(z.number()), weight: z.number(), unitCost: z.number(), cap: z.number() })),
    }),
  ),
});

const budgetsSchema = z.object({
  format: z.literal('rfid-moe.rank-budgets'),
  version: z.literal(1),
  ...identity,
  /** `${layer}/${type}` → parameters the factors of that layer and type spend */
  budgets: z.record(z.string(), z.number().nonnegative()),
});

export type SpectraFile = z.infer<typeof spectraSchema>;
export type BudgetsFile = z.infer<typeof budgetsSchema>;
export type RunIdentity = Pick<SpectraFile, 'tool' | 'modelFingerprint' | 'recipeFingerprint' | 'statsSha256' | 'moeLayers' | 'recipe'>;

async function readJson<T>(file: string, schema: z.ZodType<T>, what: string): Promise<T> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new AllocationFileError(`cannot read ${what} ${file} (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new AllocationFileError(`${file} is not ${what} written by rfid-moe (${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message})`);
  return parsed.data;
}

export async function writeSpectraFile(file: string, id: RunIdentity, layers: number[], parts: SpectraPart[]): Promise<void> {
  const doc: SpectraFile = { format: 'rfid-moe.spectra', version: 1, ...id, layers, parts };
  await writeFileAtomic(file, JSON.stringify(doc) + '\n');
}

function sameRun(a: RunIdentity, b: RunIdentity, aName: string, bName: string): void {
  const fields: Array<[keyof RunIdentity, string]> = [
    ['tool', 'tool version'],
    ['modelFingerprint', 'model'],
    ['recipeFingerprint', 'recipe'],
    ['statsSha256', 'routing statistics'],
  ];
  for (const [field, what] of fields) {
    if (a[field] !== b[field]) throw new AllocationFileError(`${aName} and ${bName} come from different runs: their ${what} differ; every task must use the same model, recipe and statistics`);
  }
}

/** Phase 2: the model's rank budgets from the spectra of every MoE layer. Refuses gaps and doubles. */
export async function allocateFromSpectra(files: string[]): Promise<BudgetsFile> {
  if (files.length === 0) throw new AllocationFileError('give the spectra files of the shard tasks (compress with `spectraOut`)');
  const docs = await Promise.all(files.map((f) => readJson(f, spectraSchema, 'a spectra file')));
  docs.forEach((d, i) => sameRun(docs[0], d, files[0], files[i]));
  const owner = new Map<number, string>();
  docs.forEach((d, i) => {
    for (const l of d.layers) {
      if (owner.has(l)) throw new AllocationFileError(`layer ${l} is in two spectra files (${owner.get(l)} and ${files[i]}); give each layer once`);
      owner.set(l, files[i]);
    }
  });
  const missing = docs[0].moeLayers.filter((l) => !owner.has(l));
  if (missing.length > 0) throw new AllocationFileError(`MoE layers ${formatLayerList(missing)} are in no spectra file; run the tasks that own them, then allocate over all of them`);
  const budgets = budgetsFromSpectra(docs.flatMap((d) => d.parts), parseRecipe(docs[0].recipe));
  const { format: _f, version: _v, layers: _l, parts: _p, ...id } = docs[0];
  return { format: 'rfid-moe.rank-budgets', version: 1, ...id, budgets: Object.fromEntries(budgets) };
}

export async function writeBudgetsFile(file: string, doc: BudgetsFile): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(doc, null, 1) + '\n');
}

/** Phase 3: the budgets for this run, refused when made for another model, recipe or statistics. */
export async function loadRankBudgets(file: string, id: RunIdentity): Promise<RankBudgets> {
  const doc = await readJson(file, budgetsSchema, 'a rank-budgets file');
  sameRun(doc, id, file, 'this run');
  return new Map(Object.entries(doc.budgets));
}
