import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  effectiveGroupSize,
  effectiveXi,
  groupOrderOf,
  loadRecipe,
  parseRecipe,
  recipeFingerprint,
  recipeToJson,
  resolvedResidualShare,
  validateRecipeForLayer,
  RecipeError,
} from '../../src/compress/recipe.js';

describe('recipe parsing', () => {
  it('fills every default (the paper where it is known)', () => {
    const r = parseRecipe({ retain: 0.6 });
    expect(r).toEqual({
      retain: 0.6,
      budgetGivenAs: 'retain',
      groupSize: 4,
      xi: 0.8,
      allocation: 'fused',
      rounding: 'largest-remainder',
      residual: { share: 0.03, shareMode: 'absolute', buckets: 'tile', seed: 0, gate: false },
      whiten: false,
      svd: 'exact',
      randomizedSvd: { oversample: 16, powerIterations: 2, seed: 0 },
      structure: 'grouped',
      refit: false,
      allocationScope: 'layer',
      gramWeighting: 'tokens',
      matrixTypes: ['gate', 'up'],
      minExpertTokens: 10,
    });
  });

  it('normalises remove to retain and remembers which was given', () => {
    const r = parseRecipe('{"remove": 0.7}');
    expect(r.retain).toBe(0.3);
    expect(r.budgetGivenAs).toBe('remove');
    // the same budget written either way hashes the same once re-saved with its label
    expect(recipeFingerprint(parseRecipe({ retain: 0.3, budgetGivenAs: 'remove' }))).toBe(recipeFingerprint(r));
  });

  it('round-trips through its saved JSON with the same fingerprint', () => {
    const r = parseRecipe({ remove: 0.4, groupSize: 2, whiten: {}, residual: { buckets: 'random', seed: 9 } });
    const again = parseRecipe(recipeToJson(r));
    expect(again).toEqual(r);
    expect(recipeFingerprint(again)).toBe(recipeFingerprint(r));
    expect(recipeFingerprint(parseRecipe({ remove: 0.4, groupSize: 3 }))).not.toBe(recipeFingerprint(r));
    expect(recipeFingerprint(r)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('fingerprint ignores key order', () => {
    const a = parseRecipe({ retain: 0.5, xi: 0.3, groupSize: 2 });
    const b = parseRecipe({ groupSize: 2, xi: 0.3, retain: 0.5 });
    expect(recipeFingerprint(a)).toBe(recipeFingerprint(b));
  });

  it.each([
    [{}, /retain .* or remove/],
    [{ retain: 1 }, /retain must be strictly between 0 and 1/],
    [{ retain: -0.2 }, /retain must be strictly between 0 and 1/],
    [{ retain: 0.5, remove: 0.5 }, /either retain or remove/],
    [{ retain: 0.5, groupSize: 0 }, /groupSize must be ≥ 1/],
    [{ retain: 0.5, xi: 1.5 }, /xi must be in \[0, 1\]/],
    [{ retain: 0.5, allocation: 'greedy' }, /allocation/],
    [{ retain: 0.02 }, /residual share 0.03 leaves nothing/],
    [{ retain: 0.5, whiten: true }, /whiten must be false or an object/],
    [{ retain: 0.5, matrixTypes: ['gate', 'gate'] }, /twice/],
    [{ retain: 0.5, grupSize: 2 }, /grupSize/],
  ])('refuses %j', (input, message) => {
    expect(() => parseRecipe(input)).toThrow(RecipeError);
    expect(() => parseRecipe(input)).toThrow(message);
  });

  it('refuses broken JSON and missing files with the path', () => {
    expect(() => parseRecipe('{retain: 0.5')).toThrow(/not valid JSON/);
    expect(() => loadRecipe('/nonexistent/recipe.json')).toThrow(/cannot read recipe file \/nonexistent\/recipe.json/);
    const dir = mkdtempSync(path.join(tmpdir(), 'recipe-'));
    const file = path.join(dir, 'r.json');
    writeFileSync(file, JSON.stringify({ retain: 0.5, groupSize: 2 }));
    expect(loadRecipe(file).groupSize).toBe(2);
  });

  it('resolves baselines and the residual share mode', () => {
    const r = parseRecipe({ retain: 0.2, residual: { share: 0.1, shareMode: 'fraction-of-retain' } });
    expect(resolvedResidualShare(r)).toBeCloseTo(0.02, 15);
    expect(effectiveGroupSize(parseRecipe({ retain: 0.5, allocation: 'uniform' }))).toBe(1);
    expect(effectiveXi(parseRecipe({ retain: 0.5, allocation: 'frequency' }))).toBe(0);
    expect(effectiveXi(parseRecipe({ retain: 0.5, allocation: 'erank' }))).toBe(1);
    expect(groupOrderOf(parseRecipe({ retain: 0.5, allocation: 'grouped-uniform' }))).toBe('index');
  });
});

describe('validateRecipeForLayer', () => {
  it('accepts Qwen3 shapes and returns the budget', () => {
    const b = validateRecipeForLayer(parseRecipe({ retain: 0.6 }), { numExperts: 128, p: 768, d: 2048 });
    expect(b.kTotal).toBe(22413);
  });

  it('refuses a group size larger than the experts', () => {
    expect(() => validateRecipeForLayer(parseRecipe({ retain: 0.6, groupSize: 8 }), { numExperts: 4, p: 8, d: 8 })).toThrow(
      /group size 8 is larger than the 4 experts.*≤ 4/,
    );
  });

  it('refuses a retain too small for one rank per group, saying how much is needed', () => {
    // one rank per group of 4 costs 4·768 + 2048 = 5120 of 6,291,456 params per group: γ ≥ 0.0008 + β
    expect(() => validateRecipeForLayer(parseRecipe({ retain: 0.0305 }), { numExperts: 128, p: 768, d: 2048 })).toThrow(
      /too small for one rank per group.*retain ≥ 0.03/,
    );
    expect(() => validateRecipeForLayer(parseRecipe({ retain: 0.0305 }), { numExperts: 128, p: 768, d: 2048 })).toThrow(RecipeError);
  });

  it('refuses a retain beyond what factors at break-even can use', () => {
    expect(() => validateRecipeForLayer(parseRecipe({ retain: 0.999, residual: { share: 0 } }), { numExperts: 64, p: 8, d: 8 })).toThrow(
      /beyond what factoring can use/,
    );
  });
});
