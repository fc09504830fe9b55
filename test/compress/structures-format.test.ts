/**
 * The factored format holds the structures beyond a shared input-side basis (a shared output-side
 * basis, a shared base plus per-expert deltas): compress writes them as format version 2,
 * loadCompressed reads them back, densify writes the same shards as `compress --format dense`,
 * and the factored forward (two thin GEMMs, plus the base) equals x·Ŵᵀ of the densified weights.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { parseRfidBlock } from '../../src/compress/output/block.js';
import { compress } from '../../src/compress/pipeline.js';
import { densify } from '../../src/compressed/densify.js';
import { describeCompressed } from '../../src/compressed/describe.js';
import { FactoredLinear, materialise } from '../../src/compressed/factored-expert.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/rng.js';
import { syntheticStats, tempDir } from './helpers.js';

const CASES: Array<{ label: string; family: FamilyName; structure: 'output-basis' | 'base-delta'; residual: number; retain?: number }> = [
  { label: 'mixtral output-basis', family: 'mixtral', structure: 'output-basis', residual: 0 },
  { label: 'qwen3_moe output-basis + residual', family: 'qwen3_moe', structure: 'output-basis', residual: 0.05 },
  { label: 'qwen3_moe base-delta', family: 'qwen3_moe', structure: 'base-delta', residual: 0 },
  { label: 'mixtral base-delta + residual', family: 'mixtral', structure: 'base-delta', residual: 0.05, retain: 0.75 },
];

let engine: Engine;
let root: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  engine = createTsEngine({ threads: 1 });
  root = await tempDir('structures');
});

afterAll(async () => {
  engine.dispose();
  await root.cleanup();
});

describe.each(CASES)('factored structures: $label', ({ label, family, structure, residual, retain }) => {
  const dirs = { model: '', factored: '', dense: '', densified: '' };

  beforeAll(async () => {
    const base = path.join(root.dir, label.replace(/\W+/g, '-'));
    for (const k of Object.keys(dirs) as Array<keyof typeof dirs>) dirs[k] = path.join(base, k);
    await makeTinyCheckpoint(dirs.model, family, { seed: 4 });
    await writeFile(path.join(dirs.model, 'tokenizer.json'), '{"model": {"type": "test"}}\n');
    const ckpt = await openCheckpoint(dirs.model);
    const stats = path.join(base, 'stats.json');
    try {
      await writeRoutingStats(stats, syntheticStats(ckpt));
      // raw weights (no Gram needed); gate and up and down, so both shapes p < d and p > d occur
      const recipe = {
        retain: retain ?? 0.6,
        groupSize: 2,
        allocation: 'waterfill' as const,
        structure: 'auto' as const,
        structures: [structure],
        residual: { share: residual, gate: false },
        matrixTypes: ['gate' as const, 'up' as const, 'down' as const],
      };
      await compress(ckpt, recipe, { out: dirs.factored, stats, engine, evaluation: false });
      await compress(ckpt, recipe, { out: dirs.dense, stats, engine, storage: 'dense', evaluation: false });
    } finally {
      await ckpt.close();
    }
    await densify(dirs.factored, { out: dirs.densified, engine });
  });

  it('writes format version 2 with the structure tag on every group; the block validates', async () => {
    const config = JSON.parse(await readFile(path.join(dirs.factored, 'config.json'), 'utf8')) as { rfid_moe: unknown };
    const block = parseRfidBlock(config.rfid_moe, 'test');
    expect(block.version).toBe(2);
    for (const l of block.layers) {
      for (const t of Object.values(l.types)) {
        for (const g of t!.groups) {
          expect(g.structure).toBe(structure);
          if (structure === 'base-delta') expect(Math.max(...g.expertRanks!)).toBe(g.rank);
        }
      }
    }
    // a version-1 block with a structure tag is still refused by the version check of older readers:
    // here, the schema refuses expertRanks on a group that is not base-delta
    const bad = structuredClone(config.rfid_moe) as { layers: Array<{ types: Record<string, { groups: Array<Record<string, unknown>> }> }> };
    const g0 = Object.values(bad.layers[0].types)[0].groups[0];
    g0.expertRanks = structure === 'base-delta' ? [] : [1];
    expect(() => parseRfidBlock(bad, 'test')).toThrow(/expertRanks/);
  });

  it('densify writes the same shards, byte for byte, as compress --format dense', async () => {
    const dense = (await readdir(dirs.dense)).filter((f) => f.endsWith('.safetensors')).sort();
    expect((await readdir(dirs.densified)).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(dense);
    for (const f of dense) expect(Buffer.compare(await readFile(path.join(dirs.densified, f)), await readFile(path.join(dirs.dense, f))), f).toBe(0);
  });

  it("through one map, a group's experts hold the same shared tensor (read once), with the values read without it", async () => {
    const model = await loadCompressed(dirs.factored);
    try {
      const shared = new Map<string, Promise<Float32Array>>();
      let groups = 0;
      for (const l of model.block.layers) {
        for (const [type, t] of Object.entries(l.types) as Array<['gate' | 'up' | 'down', NonNullable<(typeof l.types)['gate']>]>) {
          for (const g of t.groups) {
            if (g.experts.length < 2) continue;
            groups++;
            const [a, b] = [g.experts[0], g.experts[g.experts.length - 1]];
            const fa = await model.factors(l.layer, a, type, shared);
            const fb = await model.factors(l.layer, b, type, shared);
            // the group's tensor: the base of base-delta, U (the left factor) of output-basis
            const pick = (m: typeof fa) => (structure === 'base-delta' ? m.base! : m.coefficients);
            expect(pick(fa)).toBe(pick(fb));
            const plain = await model.factors(l.layer, b, type);
            expect(pick(plain)).not.toBe(pick(fb));
            expect(pick(plain)).toEqual(pick(fb));
            expect(plain.basis).toEqual(fb.basis);
            expect(plain.coefficients).toEqual(fb.coefficients);
          }
        }
      }
      expect(groups).toBeGreaterThan(0);
    } finally {
      await model.close();
    }
  });

  it('the factored forward (thin GEMMs, plus the base) equals x·Ŵᵀ with the densified weights; the factors materialise to them', async () => {
    const model = await loadCompressed(dirs.factored);
    const dense = await openCheckpoint(dirs.densified);
    const rand = mulberry32(9);
    try {
      for (const l of model.block.layers) {
        for (const type of ['gate', 'up', 'down'] as const) {
          for (let e = 0; e < model.config.numExperts; e++) {
            const m = await model.factors(l.layer, e, type);
            expect(m.base !== undefined).toBe(structure === 'base-delta');
            const W = await dense.readExpert(l.layer, e, type);
            const Wf = materialise(engine, m);
            let diff = 0;
            let norm = 0;
            for (let i = 0; i < W.length; i++) {
              diff = Math.max(diff, Math.abs(W[i] - Wf[i]));
              norm = Math.max(norm, Math.abs(W[i]));
            }
            expect(diff).toBeLessThanOrEqual(1e-5 * norm);
            const rows = 3;
            const x = Float32Array.from({ length: rows * m.d }, () => rand() - 0.5);
            const y = new Float32Array(rows * m.p);
            new FactoredLinear(m, 'factored').apply(engine, x, rows, y);
            const ref = new Float32Array(rows * m.p);
            engine.gemm(rows, m.p, m.d, x, W, ref, { transB: true });
            let err = 0;
            let scale = 0;
            for (let i = 0; i < y.length; i++) {
              err = Math.max(err, Math.abs(y[i] - ref[i]));
              scale = Math.max(scale, Math.abs(ref[i]));
            }
            expect(err).toBeLessThanOrEqual(1e-4 * scale);
          }
        }
      }
      const description = describeCompressed(model, false);
      const t = description.layers[0].types.gate!;
      expect(t.storedBytes).toBeGreaterThan(0);
      expect(t.storedBytes).toBeLessThan(t.originalBytes);
    } finally {
      await dense.close();
      await model.close();
    }
  });
});
