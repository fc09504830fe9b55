/**
 * Safety of the output directory across runs.
 *
 * A run is identified by its fingerprint: sha256 of (tool version, model fingerprint, recipe
 * fingerprint, calibration key, storage, engine with its settings). While it runs,
 * `.rfid-moe-progress.json` (rewritten atomically after each layer) records the fingerprint, the
 * hash of the routing statistics, and every finished layer's shard with its sha256, the sha256 of
 * the source weights it was made from (see source-scan.ts) and its report entry. A killed run is
 * resumed with `--resume`: finished layers whose shard still has the recorded hash, and whose
 * source weights still hash the same, are kept, the rest are redone; changed source weights or
 * statistics are refused (integrity.ts). The directory is complete only when
 * config.json (carrying the fingerprint in its rfid_moe block) exists; it is written last and the
 * progress file is then removed.
 *
 * Refused before any work: a directory holding another run (different fingerprint), another
 * model, or unrelated files; an unfinished run of the same job without --resume.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../io/atomic.js';
import { RfidMoeError } from '../errors.js';
import { CONFIG_BLOCK_KEY, CONFIG_FILE, LOCK_FILE, PROGRESS_FILE } from './output/names.js';
import type { LayerReport } from './report.js';
import { PART_FILE, readPartManifest } from './shard/part.js';

export class OutputDirError extends RfidMoeError {
  readonly kind = 'OutputDirError';
}

export interface RunIdentity {
  toolVersion: string;
  modelFingerprint: string;
  recipeFingerprint: string;
  /** what the routing statistics come from: a stats file's hash, or the calibration settings */
  calibrationKey: string;
  storage: 'factored' | 'dense';
  /** the engine's describe(): name, threads, BLAS kernels (results may differ in the last bits between engines) */
  engine: string;
}

export function runFingerprint(id: RunIdentity): string {
  const text = JSON.stringify([id.toolVersion, id.modelFingerprint, id.recipeFingerprint, id.calibrationKey, id.storage, id.engine]);
  return 'sha256:' + createHash('sha256').update(text).digest('hex');
}

const layerEntrySchema = z.object({
  file: z.string(),
  sha256: z.string(),
  /** sha256 of the source tensors of this layer (scanSourceTensors) */
  sourceSha256: z.string(),
  report: z.custom<LayerReport>((v) => typeof v === 'object' && v !== null && 'layer' in v),
});

const progressSchema = z.object({
  format: z.literal('rfid-moe.progress'),
  version: z.literal(2),
  runFingerprint: z.string(),
  modelDir: z.string(),
  /** the layers of a part of a sharded run (absent: every layer) */
  selection: z.string().optional(),
  /** statsHash of the routing statistics the finished layers were made with (null until known) */
  statsSha256: z.string().nullable(),
  /** finished layers, by decimal index */
  layers: z.record(z.string(), layerEntrySchema),
});

export type ProgressFile = z.infer<typeof progressSchema>;
export type FinishedLayer = z.infer<typeof layerEntrySchema>;

export type OutputState =
  | { state: 'fresh' }
  | { state: 'resume'; progress: ProgressFile }
  | { state: 'complete'; block: Record<string, unknown> }
  | { state: 'part-complete' };

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OutputDirError(`${file} is unreadable or not JSON (${(err as Error).message}); remove it or choose another \`out\` directory`);
  }
}

async function entriesOf(dir: string): Promise<string[] | undefined> {
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) throw new OutputDirError(`\`out\` ${dir} exists and is not a directory; choose a directory path`);
  } catch (err) {
    if (err instanceof OutputDirError) throw err;
    return undefined;
  }
  return readdir(dir);
}

/**
 * What the output directory holds and whether this run may use it. Throws OutputDirError with
 * the reason and the fix otherwise.
 */
export async function inspectOutputDir(out: string, fingerprint: string, opts: { resume: boolean; modelDir: string; selection?: string }): Promise<OutputState> {
  const absOut = path.resolve(out);
  if (absOut === path.resolve(opts.modelDir)) {
    throw new OutputDirError(`\`out\` ${out} is the model directory itself; write the compressed model to a new directory`);
  }
  const entries = await entriesOf(absOut);
  // a temp file left by a killed atomic write is harmless: it is never renamed into place
  // nor is the lock file (lock.ts decides whether its owner is alive)
  const visible = (entries ?? []).filter((e) => !(e.startsWith('.') && e.endsWith('.tmp')) && e !== LOCK_FILE);
  if (visible.length === 0) return { state: 'fresh' };

  if (visible.includes(CONFIG_FILE)) {
    const config = (await readJson(path.join(absOut, CONFIG_FILE))) as Record<string, unknown> | undefined;
    const block = config?.[CONFIG_BLOCK_KEY] as ({ runFingerprint?: unknown } & Record<string, unknown>) | undefined;
    if (!block) {
      throw new OutputDirError(`\`out\` ${out} already holds a model (config.json without an rfid_moe block); choose an empty or new directory`);
    }
    if (block.runFingerprint !== fingerprint) {
      throw new OutputDirError(
        `\`out\` ${out} holds the output of another compression run (fingerprint ${String(block.runFingerprint).slice(0, 19)}…, this run ${fingerprint.slice(0, 19)}…: different model, recipe, statistics or format); choose an empty or new directory`,
      );
    }
    if (!opts.resume) {
      throw new OutputDirError(`\`out\` ${out} already holds the complete output of this same run; pass \`resume\` to accept it as done, or choose another directory`);
    }
    return { state: 'complete', block };
  }

  if (visible.includes(PART_FILE)) {
    const part = await readPartManifest(absOut, (why) => new OutputDirError(`\`out\` ${out}: ${why}; remove the directory's contents and start again`));
    if (part!.runFingerprint !== fingerprint) {
      throw new OutputDirError(`\`out\` ${out} holds a part of another compression run (fingerprint ${part!.runFingerprint.slice(0, 19)}…, this run ${fingerprint.slice(0, 19)}…); choose an empty or new directory`);
    }
    if (opts.selection === undefined || part!.selection !== opts.selection) {
      throw new OutputDirError(
        `\`out\` ${out} holds the finished part with layers ${part!.selection} of this run, and this run ${opts.selection === undefined ? 'compresses every layer' : `owns layers ${opts.selection}`}; give each task its own directory`,
      );
    }
    if (!opts.resume) throw new OutputDirError(`\`out\` ${out} already holds this finished part (layers ${part!.selection}); pass \`resume\` to accept it as done, or choose another directory`);
    return { state: 'part-complete' };
  }

  const progress = await readProgress(absOut);
  if (!progress) {
    throw new OutputDirError(`\`out\` ${out} is not empty and holds no rfid-moe run (${visible.slice(0, 3).join(', ')}${visible.length > 3 ? ', …' : ''}); choose an empty or new directory`);
  }
  if (progress.runFingerprint !== fingerprint) {
    throw new OutputDirError(
      `\`out\` ${out} holds an unfinished run with another fingerprint (${progress.runFingerprint.slice(0, 19)}…; this run ${fingerprint.slice(0, 19)}…): the model, recipe, statistics or format differ. Rerun with the same settings and \`resume\`, or choose an empty directory`,
    );
  }
  if ((progress.selection ?? '') !== (opts.selection ?? '')) {
    const what = (sel?: string) => (sel === undefined ? 'every layer' : `layers ${sel}`);
    throw new OutputDirError(`\`out\` ${out} holds an unfinished run of ${what(progress.selection)}, and this run compresses ${what(opts.selection)}; give each task its own directory`);
  }
  if (!opts.resume) {
    throw new OutputDirError(`\`out\` ${out} holds an unfinished run of this same job (${Object.keys(progress.layers).length} layer(s) done); pass \`resume\` to continue it, or choose an empty directory`);
  }
  return { state: 'resume', progress };
}

export async function readProgress(out: string): Promise<ProgressFile | undefined> {
  const file = path.join(out, PROGRESS_FILE);
  const json = await readJson(file);
  if (json === undefined) return undefined;
  const parsed = progressSchema.safeParse(json);
  if (!parsed.success) {
    throw new OutputDirError(`${file} is damaged (${parsed.error.issues[0].message}); remove the directory's contents and start again`);
  }
  return parsed.data;
}

export function newProgress(fingerprint: string, modelDir: string, selection?: string): ProgressFile {
  return { format: 'rfid-moe.progress', version: 2, runFingerprint: fingerprint, modelDir, ...(selection !== undefined ? { selection } : {}), statsSha256: null, layers: {} };
}

export async function writeProgress(out: string, progress: ProgressFile): Promise<void> {
  await writeFileAtomic(path.join(out, PROGRESS_FILE), JSON.stringify(progress, null, 1) + '\n');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A finished layer is kept only when its shard still has the recorded content. */
export async function finishedLayerIntact(out: string, entry: FinishedLayer): Promise<boolean> {
  try {
    return (await sha256File(path.join(out, entry.file))) === entry.sha256;
  } catch {
    return false;
  }
}
