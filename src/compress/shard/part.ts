/**
 * The manifest of a partial output (`compress --shard i/N` or `--layers`): which layers it holds,
 * each layer shard's sha256, report entry and config-block entry, and the identity of the run
 * (fingerprints of model, recipe and statistics). It is written last, like config.json in a full
 * run, so its presence means the part is complete; `merge` assembles the parts into the directory
 * a one-process run writes.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../io/atomic.js';
import type { LayerBlock } from '../output/block.js';
import type { LayerReport } from '../report.js';

export const PART_FILE = 'rfid-moe-part.json';

const layerEntry = z.object({
  layer: z.number().int().nonnegative(),
  file: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** content hash of the layer's source weights (recorded in the final config block) */
  sourceSha256: z.string(),
  report: z.custom<LayerReport>((v) => typeof v === 'object' && v !== null && 'layer' in v),
  /** the layer's entry of the rfid_moe block (MoE layers only) */
  block: z.custom<LayerBlock>((v) => typeof v === 'object' && v !== null && 'layer' in v).nullable(),
  warnings: z.array(z.string()),
});

export const partManifestSchema = z.object({
  format: z.literal('rfid-moe.part'),
  version: z.literal(1),
  tool: z.string(),
  runFingerprint: z.string(),
  modelFingerprint: z.string(),
  recipeFingerprint: z.string(),
  /** the canonical recipe, as written into the rfid_moe block */
  recipe: z.record(z.string(), z.unknown()),
  storage: z.enum(['factored', 'dense']),
  /** absolute path of the model directory the part was made from (merge's default --model) */
  modelDir: z.string(),
  numLayers: z.number().int().positive(),
  /** canonical hash of the routing statistics (saved beside the shards as the stats file) */
  statsSha256: z.string(),
  grams: z.string().nullable(),
  /** how the statistics were described by the run (part of config.json's block) */
  calibrationDescription: z.string(),
  /** the layers this part owns, and the selection that named them */
  layers: z.array(z.number().int().nonnegative()),
  selection: z.string(),
  entries: z.array(layerEntry),
});

export type PartManifest = z.infer<typeof partManifestSchema>;
export type PartLayerEntry = z.infer<typeof layerEntry>;

export async function writePartManifest(out: string, manifest: PartManifest): Promise<void> {
  await writeFileAtomic(path.join(out, PART_FILE), JSON.stringify(manifest, null, 1) + '\n');
}

/** The manifest, undefined when absent; throws with `describeProblem` when unreadable or malformed. */
export async function readPartManifest(dir: string, describeProblem: (why: string) => Error): Promise<PartManifest | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, PART_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw describeProblem(`cannot read ${PART_FILE} (${(err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw describeProblem(`${PART_FILE} is not JSON`);
  }
  const parsed = partManifestSchema.safeParse(json);
  if (!parsed.success) throw describeProblem(`${PART_FILE} is malformed (${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message})`);
  return parsed.data;
}
