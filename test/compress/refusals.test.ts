/**
 * Bad input is refused before any work, with the reason and the fix; the output directory of
 * another run is never touched. Also: a model the runtime cannot run (a RoPE scaling it lacks)
 * compresses from --stats and its output refuses to run clearly; with neither dataset nor stats, calibration samples the model.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { compress } from '../../src/compress/pipeline.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { evaluateWindows } from '../../src/eval/evaluate.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { syntheticStats, tempDir } from './helpers.js';

let engine: Engine;
let root: Awaited<ReturnType<typeof tempDir>>;
let model: Checkpoint;
let other: Checkpoint;
let statsFile: string;
let otherStatsFile: string;

beforeAll(async () => {
  engine = createTsEngine({ threads: 1 });
  root = await tempDir('refusals');
  await makeTinyCheckpoint(path.join(root.dir, 'model'), 'qwen3_moe', { seed: 3 });
  await makeTinyCheckpoint(path.join(root.dir, 'other'), 'olmoe', { seed: 3 });
  model = await openCheckpoint(path.join(root.dir, 'model'));
  other = await openCheckpoint(path.join(root.dir, 'other'));
  statsFile = path.join(root.dir, 'stats.json');
  otherStatsFile = path.join(root.dir, 'other-stats.json');
  await writeRoutingStats(statsFile, syntheticStats(model));
  await writeRoutingStats(otherStatsFile, syntheticStats(other));
});

afterAll(async () => {
  await model?.close();
  await other?.close();
  engine.dispose();
  await root.cleanup();
});

const run = (out: string, recipe: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  compress(model, recipe, { out: path.join(root.dir, out), stats: statsFile, engine, evaluation: false, ...extra });

async function isAbsent(dir: string): Promise<boolean> {
  return readdir(path.join(root.dir, dir)).then(
    () => false,
    () => true,
  );
}

describe('refusals before any work', () => {
  it('retain outside (0, 1)', async () => {
    await expect(run('o1', { retain: 1.2 })).rejects.toThrow(/retain must be strictly between 0 and 1/);
    await expect(run('o1', { remove: 0 })).rejects.toThrow(/remove must be strictly between 0 and 1/);
    expect(await isAbsent('o1')).toBe(true);
  });

  it('retain too small for one rank per group', async () => {
    await expect(run('o2', { retain: 0.05, groupSize: 2, residual: { share: 0 } })).rejects.toThrow(/too small for one rank per group.*use retain ≥/);
    expect(await isAbsent('o2')).toBe(true);
  });

  it('group size larger than the experts of a layer', async () => {
    await expect(run('o3', { retain: 0.5, groupSize: 9 })).rejects.toThrow(/group size 9 is larger than the 8 experts.*group size ≤ 8/);
    expect(await isAbsent('o3')).toBe(true);
  });

  it('statistics made on another model', async () => {
    await expect(run('o4', { retain: 0.5 }, { stats: otherStatsFile })).rejects.toThrow(/collected on another model.*rfid-moe calibrate/);
    expect(await isAbsent('o4')).toBe(true);
  });

  it('a calibration --seq-len beyond max_position_embeddings (it would crawl, then mean nothing)', async () => {
    await expect(run('o10', { retain: 0.5 }, { stats: undefined, selfSampled: { seqLen: 100000 } })).rejects.toThrow(/`seqLen` 100000 is longer than the model's max_position_embeddings \(256\)/);
    await expect(run('o10', { retain: 0.5 }, { stats: undefined, dataset: { file: statsFile, seqLen: 257 } })).rejects.toThrow(/`seqLen` 257 is longer than the model's max_position_embeddings \(256\)/);
    expect(await isAbsent('o10')).toBe(true);
  });

  it('an output directory holding another run, another model, or other files', async () => {
    const out = 'o5';
    await run(out, { retain: 0.5 });
    const before = await readFile(path.join(root.dir, out, 'model-00001-of-00003.safetensors'));
    await expect(run(out, { retain: 0.4 })).rejects.toThrow(/holds the output of another compression run.*choose an empty or new directory/);
    await expect(run(out, { retain: 0.5 })).rejects.toThrow(/complete output of this same run; pass `resume`/);
    // --resume on a complete run of the same job does nothing
    const again = await run(out, { retain: 0.5 }, { resume: true });
    expect(again.layers.length).toBe(2);
    expect(Buffer.compare(before, await readFile(path.join(root.dir, out, 'model-00001-of-00003.safetensors')))).toBe(0);

    await mkdir(path.join(root.dir, 'o6'));
    await writeFile(path.join(root.dir, 'o6', 'notes.txt'), 'mine');
    await expect(run('o6', { retain: 0.5 })).rejects.toThrow(/not empty and holds no rfid-moe run/);
    await expect(run('o7', { retain: 0.5 }, { out: model.dir })).rejects.toThrow(/is the model directory itself/);
  });

  it('an unfinished run with another fingerprint', async () => {
    const out = path.join(root.dir, 'o8');
    await mkdir(out);
    await writeFile(
      path.join(out, '.rfid-moe-progress.json'),
      JSON.stringify({ format: 'rfid-moe.progress', version: 2, runFingerprint: "sha256:other", modelDir: model.dir, statsSha256: null, layers: {} }),
    );
    await expect(run('o8', { retain: 0.5 }, { resume: true })).rejects.toThrow(/unfinished run with another fingerprint/);
  });
});

describe('a model the runtime cannot run (a RoPE scaling it lacks): compress from --stats, running refused clearly', () => {
  it('compresses and loads, and eval refuses with the reason', async () => {
    const dir = path.join(root.dir, 'dsv2');
    await makeTinyCheckpoint(dir, 'deepseek_v2', { seed: 5, ropeScaling: { type: 'longrope', short_factor: [1], long_factor: [1] } });
    const ckpt = await openCheckpoint(dir);
    try {
      const stats = path.join(root.dir, 'dsv2-stats.json');
      await writeRoutingStats(stats, syntheticStats(ckpt));
      const report = await compress(ckpt, { retain: 0.5, groupSize: 2 }, { out: path.join(root.dir, 'dsv2-out'), stats, engine });
      expect(report.warnings.join(' ')).toMatch(/fidelity not measured: rope_scaling of type "longrope" is not implemented .*so this model cannot be run by rfid-moe/);
      expect(report.layers.filter((l) => l.kind === 'moe')).toHaveLength(2);
      await expect(compress(ckpt, { retain: 0.5 }, { out: path.join(root.dir, 'dsv2-x'), engine })).rejects.toThrow(/rope_scaling of type "longrope" is not implemented/);
      const loaded = await loadCompressed(path.join(root.dir, 'dsv2-out'));
      try {
        await expect(evaluateWindows(loaded, engine, [Int32Array.from([1, 2, 3])])).rejects.toThrow(/"longrope" is not implemented/);
      } finally {
        await loaded.close();
      }
    } finally {
      await ckpt.close();
    }
  });
});

describe('calibration sampled from the model itself', () => {
  it('is seeded, recorded in the report, and followed by a KL / top-1 check', async () => {
    const opts = { stats: undefined, selfSampled: { samples: 3, seqLen: 6, seed: 11 }, evaluation: { sequences: 2 } };
    const a = await run('self-a', { retain: 0.5 }, opts);
    const b = await run('self-b', { retain: 0.5 }, opts);
    expect(a.calibration.source).toBe('self-sampled');
    expect(a.calibration.description).toMatch(/no dataset given.*sampled from the model itself.*seed 11/);
    const statsA = await readFile(path.join(root.dir, 'self-a', 'rfid-moe-routing-stats.json'), 'utf8');
    expect(statsA).toBe(await readFile(path.join(root.dir, 'self-b', 'rfid-moe-routing-stats.json'), 'utf8'));
    expect(JSON.parse(statsA).calibration.tokens).toBe(18);
    expect(a.fidelity!.tokens).toBe(2 * 5);
    expect(a.fidelity!.meanKl).toBeGreaterThan(0);
    expect(a.fidelity!.meanKl).toBe(b.fidelity!.meanKl);
    expect(a.fidelity!.top1Agreement).toBeGreaterThanOrEqual(0);
    expect(a.fidelity!.on).toMatch(/held out/);
  });

  it('runs on DeepSeek-V2 (MLA) too: sampled with the KV cache, calibrated, then checked', async () => {
    const dir = path.join(root.dir, 'dsv2-self');
    await makeTinyCheckpoint(dir, 'deepseek_v2', { seed: 9, qLoraRank: 6 });
    const ckpt = await openCheckpoint(dir);
    try {
      const report = await compress(ckpt, { retain: 0.5, groupSize: 2 }, { out: path.join(root.dir, 'dsv2-self-out'), engine, selfSampled: { samples: 3, seqLen: 6, seed: 11 }, evaluation: { sequences: 2 } });
      expect(report.calibration.source).toBe('self-sampled');
      expect(report.warnings.join(' ')).not.toMatch(/fidelity not measured/);
      expect(report.fidelity!.tokens).toBe(2 * 5);
      expect(report.fidelity!.meanKl).toBeGreaterThan(0);
    } finally {
      await ckpt.close();
    }
  });
});
