/** Shared pieces of the compression pipeline tests: temp dirs, synthetic routing statistics. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { modelFingerprint } from '../../src/routing-stats/fingerprint.js';
import { ROUTING_STATS_FORMAT, ROUTING_STATS_VERSION, type RoutingStats } from '../../src/routing-stats/schema.js';
import { mulberry32 } from '../helpers/rng.js';

export async function tempDir(label: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `rfid-${label}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Routing statistics as `rfid-moe calibrate` would write them, with counts drawn from a seeded
 * generator (each token picks topK distinct experts, skewed towards low indices so frequencies
 * differ): what a model the runtime cannot run (MLA) gets from another tool.
 */
export function syntheticStats(ckpt: Checkpoint, tokens = 64, seed = 1): RoutingStats {
  const rand = mulberry32(seed);
  const { numExperts: E, topK } = ckpt.config;
  const layers = ckpt.layout.layers
    .filter((l) => l.kind === 'moe')
    .map((l) => {
      const counts = new Array<number>(E).fill(0);
      for (let t = 0; t < tokens; t++) {
        const chosen = new Set<number>();
        while (chosen.size < topK) chosen.add(Math.floor(E * rand() * rand()));
        for (const e of chosen) counts[e]++;
      }
      return { layer: l.index, tokens, topK, counts };
    });
  return {
    format: ROUTING_STATS_FORMAT,
    version: ROUTING_STATS_VERSION,
    tool: 'test',
    model: {
      fingerprint: modelFingerprint(ckpt),
      family: ckpt.config.family,
      modelType: ckpt.config.modelType,
      numLayers: ckpt.config.numLayers,
      numExperts: E,
      topK,
    },
    dataset: { file: 'synthetic', format: 'text', sha256: '0'.repeat(64), tokens },
    calibration: { samples: 1, seqLen: tokens, seed, tokens },
    minTokens: 0,
    layers,
    warnings: [],
  };
}
