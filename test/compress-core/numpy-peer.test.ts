/**
 * Our layer compression against scripts/rfid_numpy.py (the committed numpy implementation of the
 * same algorithm) on the same small layer: same groups, same ranks, same errors. Skipped when
 * python3 with numpy is not available.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressLayerType } from '../../src/compress/compress-layer.js';
import { parseRecipe } from '../../src/compress/recipe.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { repoRoot } from '../helpers/shared-data.js';
import { lowRankPlusNoise } from './fixtures.js';

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

interface NumpyResult {
  ranks: number[];
  kTotal: number;
  params: { stored: number };
  groups: Array<{ experts: number[]; erank: number; weightRelBefore: number; weightRelAfter: number; residualEnergyRecovered: number }>;
}

describe.skipIf(!hasNumpy)('numpy peer (scripts/rfid_numpy.py)', () => {
  let engine: Engine;
  let dir: string;
  beforeAll(async () => {
    engine = (await createEngine('ts', { threads: 1 })).engine;
    dir = mkdtempSync(path.join(tmpdir(), 'rfid-numpy-'));
  });
  afterAll(() => {
    engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const n = 10;
  const p = 24;
  const d = 40;
  const matrices = Array.from({ length: n }, (_, i) => lowRankPlusNoise(p, d, 500 + i, 2 + (i % 5), 0.03 + 0.01 * i));
  const frequencies = [120, 7, 55, 55, 300, 18, 90, 0, 33, 61];

  it.each([
    ['fused, largest remainder, tile residual', { retain: 0.5, groupSize: 4, xi: 0.8, residualShare: 0.03, rounding: 'largest-remainder' }],
    ['per expert, floor, no residual', { retain: 0.3, groupSize: 1, xi: 0.5, residualShare: 0, rounding: 'floor' }],
  ] as const)('%s: same groups, ranks and errors', (_name, cfg) => {
    const bin = path.join(dir, 'layer.bin');
    const freqFile = path.join(dir, 'freqs.json');
    const all = new Float32Array(n * p * d);
    matrices.forEach((m, i) => all.set(m, i * p * d));
    writeFileSync(bin, all);
    writeFileSync(freqFile, JSON.stringify(frequencies));
    const proc = spawnSync('python3', [
      path.join(repoRoot, 'scripts', 'rfid_numpy.py'), '--input', bin, '--frequencies', freqFile,
      '--n', String(n), '--p', String(p), '--d', String(d), '--retain', String(cfg.retain),
      '--residual-share', String(cfg.residualShare), '--group-size', String(cfg.groupSize), '--xi', String(cfg.xi), '--rounding', cfg.rounding,
    ], { encoding: 'utf8' });
    expect(proc.stderr).toBe('');
    const peer = JSON.parse(proc.stdout) as NumpyResult;

    const ours = compressLayerType({
      engine,
      recipe: parseRecipe({ retain: cfg.retain, groupSize: cfg.groupSize, xi: cfg.xi, rounding: cfg.rounding, residual: { share: cfg.residualShare } }),
      matrices,
      p,
      d,
      frequencies,
    });
    expect(ours.groups.map((g) => g.experts)).toEqual(peer.groups.map((g) => g.experts));
    expect(ours.ranks).toEqual(peer.ranks);
    expect(ours.budget.kTotal).toBe(peer.kTotal);
    expect(ours.params.stored).toBe(peer.params.stored);
    ours.groups.forEach((g, i) => {
      expect(g.erank).toBeCloseTo(peer.groups[i].erank, 4);
      expect(g.errors.weightRelBefore).toBeCloseTo(peer.groups[i].weightRelBefore, 5);
      expect(g.errors.weightRelAfter).toBeCloseTo(peer.groups[i].weightRelAfter, 5);
      expect(g.errors.residualEnergyRecovered).toBeCloseTo(peer.groups[i].residualEnergyRecovered, 5);
    });
  });
});
