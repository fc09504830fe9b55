/**
 * Model-wide water-filling (allocationScope 'model'): one budget over every MoE layer. The whole
 * model keeps γ of its gate+up parameters (to within one rank unit per layer and type) while the
 * layers' shares follow their spectra; the recipe refuses the scope with another allocation.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { compress } from '../../src/compress/pipeline.js';
import { parseRecipe } from '../../src/compress/recipe.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { tempDir } from './helpers.js';

let engine: Engine;
let root: Awaited<ReturnType<typeof tempDir>>;
let model: Checkpoint;

beforeAll(async () => {
  engine = createTsEngine({ threads: 1 });
  root = await tempDir('model-alloc');
  await makeTinyCheckpoint(path.join(root.dir, 'model'), 'qwen3_moe', { seed: 5, numLayers: 3 });
  model = await openCheckpoint(path.join(root.dir, 'model'));
});

afterAll(async () => {
  await model?.close();
  engine.dispose();
  await root.cleanup();
});

describe('allocationScope "model"', () => {
  it('refuses any allocation but water-filling', () => {
    expect(() => parseRecipe({ retain: 0.5, allocation: 'fused', allocationScope: 'model' })).toThrow(/allocationScope "model" needs allocation "waterfill"/);
  });

  it('keeps γ over the whole model while the layers take different shares', async () => {
    const recipe = { retain: 0.5, preset: 'waterfill-whiten', allocationScope: 'model', residual: { share: 0 } } as const;
    const opts = { selfSampled: { samples: 4, seqLen: 16 }, engine, evaluation: false as const };
    const report = await compress(model, recipe, { out: path.join(root.dir, 'model-scope'), ...opts });
    const layerOnly = await compress(model, { ...recipe, allocationScope: 'layer' }, { out: path.join(root.dir, 'layer-scope'), ...opts });
    const types = (r: typeof report) => r.layers.flatMap((l) => Object.values(l.types).flatMap((t) => (t ? [t] : [])));
    const sum = (r: typeof report, f: (t: ReturnType<typeof types>[number]) => number) => types(r).reduce((a, t) => a + f(t), 0);
    const original = sum(report, (t) => t.params.original);
    const stored = sum(report, (t) => t.params.stored);
    const units = sum(report, (t) => t.rankUnitShare * t.params.original);
    expect(stored).toBeLessThanOrEqual(0.5 * original + 1e-9);
    expect(0.5 * original - stored).toBeLessThan(units);
    // per layer the model-wide allocation departs from γ; per layer the layer-wide one does not
    const ratios = types(report).map((t) => t.ratio);
    expect(Math.max(...ratios) - Math.min(...ratios)).toBeGreaterThan(0.01);
    for (const t of types(layerOnly)) expect(Math.abs(t.ratio - 0.5)).toBeLessThanOrEqual(t.rankUnitShare + 1e-9);
  });
});
