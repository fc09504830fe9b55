/**
 * `mergeRoutingStats(parts)`: adds up the parts of a sharded calibration (`calibrate --shard i/N`)
 * into the document a one-process run writes. Counts and token totals are integers and add up
 * exactly, so the merged file is byte-identical to a one-process run's. Gram matrices are summed
 * in f64 in shard order; a one-process run sums the same rows in one pass, so the two agree to
 * f64 rounding (not bit for bit).
 *
 * Refused, before anything is written: parts of another model, dataset, sequence length, seed,
 * sample count or warning threshold; a document that is not a shard; shard indices that are
 * missing, doubled, or of different shard counts; Gram matrices in some parts but not others.
 */
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { statsDocument } from './collect.js';
import { GRAM_MANIFEST, loadGram, type GramManifest } from './gram.js';
import { writeGramFile } from './gram-io.js';
import { RoutingStatsError, type RoutingStats } from './schema.js';

export interface StatsPart {
  /** where it was read from, for messages */
  source: string;
  stats: RoutingStats;
}

type Shard = NonNullable<RoutingStats['shard']>;

function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 40 ? text.slice(0, 37) + '…' : text;
}

/** Checks the parts belong to one sharded run and cover it exactly; returns them in shard order. */
export function checkStatsParts(parts: StatsPart[]): Array<StatsPart & { shard: Shard }> {
  if (parts.length === 0) throw new RoutingStatsError('give the statistics files of the sharded calibrate tasks to merge');
  for (const p of parts) {
    if (!p.stats.shard) throw new RoutingStatsError(`${p.source} is a complete statistics file, not a part of a sharded calibration (calibrate with a \`shard\`): there is nothing to merge it with`);
  }
  const first = parts[0];
  const same: Array<[string, (s: RoutingStats) => unknown]> = [
    ['model', (s) => s.model.fingerprint],
    ['dataset', (s) => s.dataset.sha256],
    ['sequence length', (s) => s.calibration.seqLen],
    ['seed', (s) => s.calibration.seed],
    ['number of samples', (s) => s.calibration.samples],
    ['warning threshold (\`minTokens\`)', (s) => s.minTokens],
    ['tool version', (s) => s.tool],
    ['number of shards', (s) => s.shard!.count],
  ];
  for (const p of parts.slice(1)) {
    for (const [what, get] of same) {
      if (get(p.stats) !== get(first.stats)) {
        throw new RoutingStatsError(`${first.source} and ${p.source} were made with a different ${what} (${describe(get(first.stats))} vs ${describe(get(p.stats))}); every shard task must calibrate the same model on the same data with the same settings`);
      }
    }
  }
  const count = first.stats.shard!.count;
  const byIndex = new Map<number, StatsPart & { shard: Shard }>();
  for (const p of parts) {
    const shard = p.stats.shard!;
    const other = byIndex.get(shard.index);
    if (other) throw new RoutingStatsError(`${other.source} and ${p.source} are both shard ${shard.index}/${count}; give each shard once`);
    byIndex.set(shard.index, { ...p, shard });
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new RoutingStatsError(`shard(s) ${missing.map((i) => `${i}/${count}`).join(', ')} missing: run those calibrate tasks, then merge all ${count} parts`);
  const ordered = Array.from({ length: count }, (_, i) => byIndex.get(i)!);
  // the shards' windows must tile [0, samples)
  let next = 0;
  for (const p of ordered) {
    if (p.shard.windows[0] !== next) throw new RoutingStatsError(`${p.source} covers windows ${p.shard.windows[0]}-${p.shard.windows[1]} but the previous shard ended at ${next}; the parts come from different shardings`);
    next = p.shard.windows[1];
  }
  if (next !== first.stats.calibration.samples) throw new RoutingStatsError(`the shards cover ${next} of ${first.stats.calibration.samples} windows; the parts come from different shardings`);
  const withGrams = ordered.filter((p) => p.shard.grams !== null).length;
  if (withGrams !== 0 && withGrams !== ordered.length) {
    throw new RoutingStatsError(`${withGrams} of ${ordered.length} parts wrote Gram matrices (\`grams\`); run every shard task with \`grams\` or none`);
  }
  const layersOf = (s: RoutingStats) => s.layers.map((l) => `${l.layer}:${l.counts.length}:${l.topK}`).join(',');
  for (const p of ordered) {
    if (layersOf(p.stats) !== layersOf(first.stats)) throw new RoutingStatsError(`${p.source} has other layers or expert counts than ${first.source}; they were not made on the same model`);
  }
  return ordered;
}

/** The merged document: identical to what one process calibrating every window writes. */
export function mergeRoutingStats(parts: StatsPart[]): RoutingStats {
  const ordered = checkStatsParts(parts);
  const first = ordered[0].stats;
  const layers = first.layers.map((l, i) => {
    const counts = new Array<number>(l.counts.length).fill(0);
    let tokens = 0;
    for (const p of ordered) {
      const pl = p.stats.layers[i];
      tokens += pl.tokens;
      pl.counts.forEach((c, e) => (counts[e] += c));
    }
    return { layer: l.layer, tokens, topK: l.topK, counts };
  });
  const tokens = ordered.reduce((a, p) => a + p.stats.calibration.tokens, 0);
  return statsDocument(
    first.model,
    { dataset: first.dataset, samples: first.calibration.samples, seqLen: first.calibration.seqLen, seed: first.calibration.seed, minTokens: first.minTokens },
    tokens,
    layers,
  );
}

/**
 * Sums the parts' Gram matrices into `outDir` (f64, shard order). Written into a temp directory
 * beside it and renamed into place, so a killed merge leaves no half-merged directory.
 */
export async function mergeGrams(parts: StatsPart[], outDir: string, onExpert?: (done: number, of: number) => void): Promise<GramManifest> {
  const ordered = checkStatsParts(parts);
  const dirs = ordered.map((p) => {
    if (p.shard.grams === null) throw new RoutingStatsError(`${p.source} wrote no Gram matrices; rerun the shard tasks with \`grams\` to merge them`);
    return p.shard.grams;
  });
  const manifests: GramManifest[] = [];
  for (const dir of dirs) {
    try {
      manifests.push(JSON.parse(await readFile(path.join(dir, GRAM_MANIFEST), 'utf8')) as GramManifest);
    } catch (err) {
      throw new RoutingStatsError(`cannot read the Gram matrices of a part at ${dir} (${(err as Error).message}); the shard's \`grams\` directory must be readable from here`);
    }
  }
  const hidden = manifests[0].hiddenSize;
  for (const [i, m] of manifests.entries()) {
    if (m.hiddenSize !== hidden || m.modelFingerprint !== manifests[0].modelFingerprint) throw new RoutingStatsError(`the Gram matrices at ${dirs[i]} were made on another model than those at ${dirs[0]}`);
  }
  const keys = [...new Set(manifests.flatMap((m) => Object.keys(m.entries)))].sort((a, b) => {
    const [la, ea] = a.split('/').map(Number);
    const [lb, eb] = b.split('/').map(Number);
    return la - lb || ea - eb;
  });
  const target = path.resolve(outDir);
  try {
    if ((await readdir(target)).length > 0) throw new RoutingStatsError(`\`grams\` ${outDir} is not empty; merge the Gram matrices into a new directory`);
  } catch (err) {
    if (err instanceof RoutingStatsError) throw err;
  }
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.merge.tmp`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  const manifest: GramManifest = { format: 'rfid-moe.expert-grams', version: 1, hiddenSize: hidden, modelFingerprint: manifests[0].modelFingerprint, entries: {} };
  try {
    let done = 0;
    for (const key of keys) {
      const [layer, expert] = key.split('/').map(Number);
      const sum = new Float64Array(hidden * hidden);
      let tokens = 0;
      for (const dir of dirs) {
        const g = await loadGram(dir, layer, expert);
        if (!g) continue;
        for (let i = 0; i < sum.length; i++) sum[i] += g.gram[i];
        tokens += g.tokens;
      }
      const file = `layer${layer}-expert${expert}.gram.safetensors`;
      await writeGramFile(path.join(temp, file), sum, hidden, { layer: String(layer), expert: String(expert), tokens: String(tokens) });
      manifest.entries[key] = { file, tokens };
      onExpert?.(++done, keys.length);
    }
    await writeFileAtomic(path.join(temp, GRAM_MANIFEST), JSON.stringify(manifest, null, 1) + '\n');
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
  return manifest;
}
