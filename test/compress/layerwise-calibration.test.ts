/**
 * Layer-by-layer calibration (stages/layerwise-calibration.ts): a run that calibrates itself
 * collects layer l's statistics just before factorising it, carrying the windows' hidden states.
 *
 * Sequential calibration (`calibration: 'sequential'`): layer l's statistics come from the hidden
 * states of the already-compressed layers 0..l−1. Independent truth: the finished output opened
 * with `loadCompressed` and run by the runtime up to layer l gives each expert's routed inputs; their
 * XᵀX (summed here in plain f64 loops, weighted as the recipe says) must equal the Gram matrices the
 * pipeline factorised layer l with, and the routing counts must equal those recorded. Layer 0 sees
 * the same inputs in both modes; later layers must not (else "sequential" would be the original
 * activations under another name).
 *
 * On the original activations (the default) a recipe that needs Gram matrices is calibrated layer by
 * layer too, so the disk holds one layer's: its statistics must be those of the one pass over every
 * layer (`collectRoutingStats`, what `rfid-moe calibrate --grams` runs) bit for bit, and its layer
 * shards those of a run given that pass's statistics and Gram matrices.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { compress, CompressError, type CompressOptions } from '../../src/compress/pipeline.js';
import type { CompressProgress } from '../../src/compress/progress.js';
import { shardFileName, STATS_FILE } from '../../src/compress/output/names.js';
import { GRAMS_WORK_DIR } from '../../src/compress/stages/calibrate.js';
import { createEngine } from '../../src/engine/index.js';
import { readGramFileSync } from '../../src/routing-stats/gram-io.js';
import { collectRoutingStats, type CalibrationInfo } from '../../src/routing-stats/collect.js';
import { modelFingerprint } from '../../src/routing-stats/fingerprint.js';
import { GRAM_MANIFEST, GramDirectorySink, type GramManifest } from '../../src/routing-stats/gram.js';
import type { RoutingStats } from '../../src/routing-stats/schema.js';
import { batchFromSequences } from '../../src/runtime/batch.js';
import { runDecoder } from '../../src/runtime/layerwise.js';
import { tokenizeDataset } from '../../src/tokens/prepare.js';
import { calibrationWindows } from '../../src/tokens/windows.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';
import { syntheticStats, tempDir } from './helpers.js';
import { cliArgs } from '../helpers/cli.js';

/** the shipped Qwen3-MoE model's tokenizer (vocabulary 4096) tokenizes the repository's README */
const TOKENIZER = path.join(repoRoot, 'examples', 'models', 'qwen3-moe-tiny-shakespeare');
const TEXT = path.join(repoRoot, 'README.md');
const SAMPLES = 6;
const SEQ_LEN = 24;
const LAYERS = 4;
const HIDDEN = 48;
const RECIPE = { preset: 'waterfill-whiten', retain: 0.4 } as const;
/** the preset weighs each routed row by w² (gramWeighting 'routing-squared') */
const rowScale = (w: number) => Math.abs(w);
/** files the two reports (wall times) aside, a run's output is a function of its inputs */
const TIMED = new Set(['rfid-moe-report.json', 'rfid-moe-report.md']);

type Grams = Map<number, { gram: Float64Array; tokens: number }>;

/** Reads the Gram matrices the pipeline is about to factorise a layer with, while they exist. */
function gramWatcher(out: string) {
  const used = new Map<number, Grams>();
  const scratchSeen: string[][] = [];
  const listener = (e: CompressProgress) => {
    if (e.type !== 'layer-group' || used.has(e.layer)) return;
    const scratch = path.join(out, GRAMS_WORK_DIR);
    scratchSeen.push(readdirSync(scratch).sort());
    const dir = path.join(scratch, `layer-${e.layer}`);
    const manifest = JSON.parse(readFileSync(path.join(dir, GRAM_MANIFEST), 'utf8')) as GramManifest;
    const grams: Grams = new Map();
    for (const [key, entry] of Object.entries(manifest.entries)) {
      const [layer, expert] = key.split('/').map(Number);
      expect(layer).toBe(e.layer);
      grams.set(expert, { gram: readGramFileSync(path.join(dir, entry.file)).data, tokens: entry.tokens });
    }
    used.set(e.layer, grams);
  };
  return { used, scratchSeen, listener };
}

/** Σ s(w)² x xᵀ per expert over the rows routed to it at `layer`, in plain f64 loops. */
function referenceGrams(rows: Map<number, { x: Float32Array[]; w: number[] }>, h: number): Grams {
  const out: Grams = new Map();
  for (const [expert, r] of rows) {
    const g = new Float64Array(h * h);
    r.x.forEach((x, i) => {
      const s2 = rowScale(r.w[i]) ** 2;
      for (let a = 0; a < h; a++) for (let b = 0; b < h; b++) g[a * h + b] += s2 * x[a] * x[b];
    });
    out.set(expert, { gram: g, tokens: r.x.length });
  }
  return out;
}

function maxRelDiff(a: Float64Array, b: Float64Array): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / Math.max(scale, 1e-300);
}

describe('layer-by-layer calibration', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let model: string;
  let windows: Int32Array[];
  /** what the pipeline records of its dataset calibration */
  let info: CalibrationInfo;
  const dataset = { file: TEXT, tokenizer: TOKENIZER, samples: SAMPLES, seqLen: SEQ_LEN, seed: 3 };
  const base = (out: string): CompressOptions => ({ out, dataset, engine: 'ts', threads: 1, evaluation: false, calibration: 'sequential' });

  beforeAll(async () => {
    root = await tempDir('seqcal');
    model = path.join(root.dir, 'model');
    await makeTinyCheckpoint(model, 'qwen3_moe', { numLayers: LAYERS, hiddenSize: HIDDEN, expertIntermediateSize: 24, numExperts: 8, topK: 2, vocabSize: 4096, seed: 5 });
    // the pipeline's windows, as the dataset calibration cuts them (first 90% of the tokens)
    const data = await tokenizeDataset(TOKENIZER, TEXT);
    windows = calibrationWindows(data.ids.subarray(0, Math.floor(data.ids.length * 0.9)), SAMPLES, SEQ_LEN, 3);
    info = { dataset: { file: path.basename(TEXT), format: data.dataset.format, sha256: data.dataset.sha256, tokens: data.ids.length }, samples: SAMPLES, seqLen: SEQ_LEN, seed: 3 };
  });

  afterAll(async () => {
    await root.cleanup();
  });

  it('fits layer l to the compressed model\'s own inputs: its Gram matrices and counts are those of the output run up to layer l', { timeout: 120_000 }, async () => {
    const seqOut = path.join(root.dir, 'sequential');
    const seq = gramWatcher(seqOut);
    const report = await compress(model, RECIPE, { ...base(seqOut), onProgress: seq.listener });
    expect(report.calibration.description).toMatch(/sequential/);

    // memory: the scratch directory held one layer's Gram matrices at a time, and is gone at the end
    expect(seq.scratchSeen).toEqual(Array.from({ length: LAYERS }, (_, l) => [`layer-${l}`]));
    expect(existsSync(path.join(seqOut, GRAMS_WORK_DIR))).toBe(false);
    expect((await readdir(seqOut)).filter((f) => f.includes('gram'))).toEqual([]);

    const origOut = path.join(root.dir, 'original');
    await compress(model, RECIPE, { ...base(origOut), calibration: 'original' });
    const seqStats = JSON.parse(await readFile(path.join(seqOut, STATS_FILE), 'utf8')) as RoutingStats;
    const origStats = JSON.parse(await readFile(path.join(origOut, STATS_FILE), 'utf8')) as RoutingStats;

    // independent truth: the finished output, loaded as a user would, run by the runtime
    const { engine } = await createEngine('ts');
    const compressed = await loadCompressed(seqOut);
    try {
      for (let l = 0; l < LAYERS; l++) {
        const rows = new Map<number, { x: Float32Array[]; w: number[] }>();
        const counts = new Array<number>(8).fill(0);
        await runDecoder(compressed, engine, batchFromSequences(windows), {
          layers: l + 1,
          finalNorm: false,
          observer: {
            onRouting: (layer, routing) => {
              if (layer === l) for (const e of routing.experts) counts[e]++;
            },
            onExpertInput: (layer, expert, x, n, weights) => {
              if (layer !== l) return;
              const entry = rows.get(expert) ?? { x: [], w: [] };
              for (let i = 0; i < n; i++) {
                entry.x.push(x.slice(i * HIDDEN, (i + 1) * HIDDEN));
                entry.w.push(weights![i]);
              }
              rows.set(expert, entry);
            },
          },
        });
        expect(seqStats.layers[l].counts, `layer ${l} routing counts`).toEqual(counts);
        const reference = referenceGrams(rows, HIDDEN);
        const used = seq.used.get(l)!;
        expect([...used.keys()].sort()).toEqual([...reference.keys()].sort());
        for (const [expert, ref] of reference) {
          expect(used.get(expert)!.tokens).toBe(ref.tokens);
          expect(maxRelDiff(used.get(expert)!.gram, ref.gram), `layer ${l} expert ${expert}`).toBeLessThan(1e-9);
        }
      }
    } finally {
      await compressed.close();
      engine.dispose();
    }

    // layer 0 sees the original inputs in both modes; some later layer must see different ones
    expect(seqStats.layers[0].counts).toEqual(origStats.layers[0].counts);
    const laterDiffer = seqStats.layers.slice(1).some((s, i) => s.counts.join() !== origStats.layers[i + 1].counts.join());
    expect(laterDiffer).toBe(true);
    // and the two runs are different runs (the mode is part of the run's identity)
    expect(JSON.parse(await readFile(path.join(seqOut, 'config.json'), 'utf8')).rfid_moe.runFingerprint).not.toBe(
      JSON.parse(await readFile(path.join(origOut, 'config.json'), 'utf8')).rfid_moe.runFingerprint,
    );
  });

  it('layer 0\'s Gram matrices are the same in both modes (same inputs), layer 1\'s are not', { timeout: 120_000 }, async () => {
    const a = gramWatcher(path.join(root.dir, 'g-seq'));
    await compress(model, RECIPE, { ...base(path.join(root.dir, 'g-seq')), onProgress: a.listener });
    const b = gramWatcher(path.join(root.dir, 'g-orig'));
    await compress(model, RECIPE, { ...base(path.join(root.dir, 'g-orig')), calibration: 'original', onProgress: b.listener });
    const same = (l: number) => [...a.used.get(l)!].every(([e, g]) => b.used.get(l)!.get(e)?.tokens === g.tokens && maxRelDiff(g.gram, b.used.get(l)!.get(e)!.gram) === 0);
    expect(same(0)).toBe(true);
    expect(same(1)).toBe(false);
  });

  it('on the original activations, a recipe with Gram matrices holds one layer\'s at a time, with the one pass\'s statistics bit for bit and the same factors', { timeout: 120_000 }, async () => {
    const out = path.join(root.dir, 'orig-layerwise');
    const seen = gramWatcher(out);
    const report = await compress(model, RECIPE, { ...base(out), calibration: 'original', onProgress: seen.listener });
    expect(report.calibration.description).not.toMatch(/sequential/);
    // disk: the scratch directory held one layer's Gram matrices at a time, and is gone at the end
    expect(seen.scratchSeen).toEqual(Array.from({ length: LAYERS }, (_, l) => [`layer-${l}`]));
    expect(existsSync(path.join(out, GRAMS_WORK_DIR))).toBe(false);

    // the one pass over every layer, on the same windows, into one directory
    const onePass = path.join(root.dir, 'one-pass-grams');
    const ckpt = await openCheckpoint(model);
    const { engine } = await createEngine('ts', { threads: 1 });
    let stats: RoutingStats;
    try {
      const sink = new GramDirectorySink(onePass, HIDDEN, modelFingerprint(ckpt));
      stats = await collectRoutingStats(ckpt, engine, windows, info, { grams: sink, gramWeighting: 'routing-squared' });
      await sink.finish();
    } finally {
      engine.dispose();
      await ckpt.close();
    }
    expect(JSON.parse(await readFile(path.join(out, STATS_FILE), 'utf8'))).toEqual(stats);
    const manifest = JSON.parse(await readFile(path.join(onePass, GRAM_MANIFEST), 'utf8')) as GramManifest;
    expect(Object.keys(manifest.entries).length).toBe([...seen.used.values()].reduce((n, g) => n + g.size, 0));
    for (const [key, entry] of Object.entries(manifest.entries)) {
      const [layer, expert] = key.split('/').map(Number);
      const used = seen.used.get(layer)!.get(expert)!;
      expect(used.tokens, key).toBe(entry.tokens);
      expect(Buffer.compare(Buffer.from(used.gram.buffer), Buffer.from(readGramFileSync(path.join(onePass, entry.file)).data.buffer)), key).toBe(0);
    }

    // given those statistics and Gram matrices, the same recipe writes the same layer shards
    const statsFile = path.join(root.dir, 'one-pass-stats.json');
    await writeFile(statsFile, JSON.stringify(stats));
    const given = path.join(root.dir, 'given-one-pass');
    const { dataset: _d, calibration: _c, ...rest } = base(given);
    await compress(model, RECIPE, { ...rest, stats: statsFile, grams: onePass });
    for (let l = 0; l < LAYERS; l++) {
      const name = shardFileName(l, LAYERS);
      const [x, y] = await Promise.all([readFile(path.join(out, name)), readFile(path.join(given, name))]);
      expect(Buffer.compare(x, y), name).toBe(0);
    }
  });

  it('a run stopped mid-way resumes without redoing finished layers, to the bytes of an uninterrupted run', { timeout: 120_000 }, async () => {
    const reference = path.join(root.dir, 'seq-ref');
    await compress(model, RECIPE, base(reference));
    const out = path.join(root.dir, 'seq-stopped');
    const stop = new Error('stopped after layer 1');
    await expect(
      compress(model, RECIPE, {
        ...base(out),
        onProgress: (e) => {
          if (e.type === 'layer-done' && e.layer === 1) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect(existsSync(path.join(out, 'config.json'))).toBe(false);
    const resumed = await compress(model, RECIPE, { ...base(out), resume: true });
    expect(resumed.resumedLayers).toEqual([0, 1]);
    const names = (await readdir(out)).filter((f) => !TIMED.has(f)).sort();
    expect(names).toEqual((await readdir(reference)).filter((f) => !TIMED.has(f)).sort());
    for (const name of names) {
      const [x, y] = await Promise.all([readFile(path.join(reference, name)), readFile(path.join(out, name))]);
      expect(Buffer.compare(x, y), name).toBe(0);
    }
  });

  it('refuses what it cannot do, with the reason and the fix', async () => {
    const statsFile = path.join(root.dir, 'stats.json');
    const ckpt = await openCheckpoint(model);
    await writeFile(statsFile, JSON.stringify(syntheticStats(ckpt)));
    await ckpt.close();
    const run = (opts: Partial<CompressOptions>, recipe: object = RECIPE) => compress(model, recipe, { ...base(path.join(root.dir, 'refused')), ...opts });
    await expect(run({ dataset: undefined, stats: statsFile, grams: root.dir, calibration: 'sequential' })).rejects.toThrow(CompressError);
    await expect(run({ dataset: undefined, stats: statsFile, calibration: 'sequential' }, { preset: 'waterfill', retain: 0.4 })).rejects.toThrow(/must calibrate itself: pass `dataset`/);
    await expect(run({ calibration: 'sequential' }, { preset: 'waterfill', allocationScope: 'model', retain: 0.4 })).rejects.toThrow(/allocationScope "model" needs the spectra of every layer.*`calibration` "original"/);
    await expect(run({ calibration: 'sequential', grams: root.dir })).rejects.toThrow(/leave `grams` out, or use `calibration` "original"/);
    await expect(run({ calibration: 'both' as never })).rejects.toThrow(/`calibration` must be sequential or original/);
    expect(existsSync(path.join(root.dir, 'refused'))).toBe(false);

    // the CLI names its flags, exits 2, and refuses before touching --out
    const cli = spawnSync(process.execPath, [...cliArgs, 'compress', model, '--out', path.join(root.dir, 'refused'), '--retain', '0.4', '--preset', 'waterfill', '--stats', statsFile, '--calibration', 'sequential'], { cwd: repoRoot, encoding: 'utf8' });
    expect(cli.status).toBe(2);
    expect(cli.stderr).toMatch(/must calibrate itself: pass --dataset instead of --stats/);
    expect(existsSync(path.join(root.dir, 'refused'))).toBe(false);
  });

  it('left to the default, a run calibrates on the original activations (model-wide allocation too)', { timeout: 120_000 }, async () => {
    const defaults = (dir: string) => {
      const { calibration: _mode, ...rest } = base(path.join(root.dir, dir));
      return rest;
    };
    for (const [dir, recipe] of [['default-mode', RECIPE], ['model-wide', { preset: 'waterfill', allocationScope: 'model', retain: 0.4 }]] as const) {
      const report = await compress(model, recipe, defaults(dir));
      expect(report.calibration.description, dir).not.toMatch(/sequential/);
    }
  });
});
