/** `rfid-moe compress` recipe flags: the default preset, --preset, flags over a preset, refusals. */
import { describe, expect, it } from 'vitest';
import { recipeFromOptions } from '../../src/cli/commands/compress.js';
import { DEFAULT_PRESET, PRESETS } from '../../src/compress/presets.js';
import { parseRecipe } from '../../src/compress/recipe.js';

describe('compress recipe flags', () => {
  it('without --preset or --recipe uses the default preset', () => {
    const r = parseRecipe(recipeFromOptions({ retain: '0.6' }));
    expect(r.preset).toBe('default');
    expect(r).toEqual(parseRecipe({ ...PRESETS[DEFAULT_PRESET], retain: 0.6, preset: 'default' }));
  });

  it('--preset paper is the spec; flags override the preset', () => {
    const paper = parseRecipe(recipeFromOptions({ retain: '0.6', preset: 'paper' }));
    expect(paper).toMatchObject({ allocation: 'fused', xi: 0.8, groupSize: 4, whiten: false, refit: false });
    expect(paper.residual).toMatchObject({ share: 0.03, buckets: 'tile', gate: false });
    const tweaked = parseRecipe(recipeFromOptions({ remove: '0.4', preset: 'paper', xi: '0.5', residualShare: '0', whiten: true }));
    expect(tweaked).toMatchObject({ retain: 0.6, xi: 0.5, whiten: { dampingSchedule: expect.any(Array) } });
    expect(tweaked.residual.share).toBe(0);
    const noWhiten = parseRecipe(recipeFromOptions({ retain: '0.6', whiten: false, refit: false }));
    expect(noWhiten).toMatchObject({ whiten: false, refit: false, allocation: PRESETS[DEFAULT_PRESET].allocation });
  });

  it('refuses an unknown preset and --preset together with --recipe', () => {
    expect(() => recipeFromOptions({ retain: '0.6', preset: 'nope' })).toThrow(/unknown preset "nope"/);
    expect(() => recipeFromOptions({ retain: '0.6', preset: 'paper', recipe: 'r.json' })).toThrow(/either --preset or --recipe/);
  });
});
