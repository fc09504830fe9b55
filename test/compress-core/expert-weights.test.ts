/**
 * Packed bf16 expert weights (compress/expert-weights.ts): packing is lossless or not done, the
 * decode is exact, non-finite values are found in packed form, and a layer compressed from packed
 * weights is bit for bit the layer compressed from the same values in f32, for every preset and
 * structure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { compressLayerType, type CompressLayerResult } from '../../src/compress/compress-layer.js';
import { firstNonFinite, PackedBf16, packLossless, toF32 } from '../../src/compress/expert-weights.js';
import { PRESET_NAMES } from '../../src/compress/presets.js';
import { parseRecipe, type RecipeInput } from '../../src/compress/recipe.js';
import { f32BitsToBf16 } from '../../src/io/dtype.js';
import { anisotropicGram, lowRankPlusNoise } from './fixtures.js';

let engine: Engine;
beforeAll(async () => {
  engine = (await createEngine('ts', { threads: 1 })).engine;
});
afterAll(() => engine.dispose());

/** x rounded to the nearest bf16 numbers, as f32 */
function roundToBf16(x: Float32Array): Float32Array {
  const words = new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
  for (let i = 0; i < words.length; i++) words[i] = f32BitsToBf16(words[i]) << 16;
  return new Float32Array(words.buffer);
}

describe('packLossless and toF32', () => {
  it('packs bf16 numbers (zeros of both signs, subnormals, extremes, ±Inf) and decodes them to the same bits', () => {
    const words = new Uint32Array([0, 0x80000000, 0x3f800000, 0xbf800000, 0x00010000, 0x7f7f0000, 0xff7f0000, 0x7f800000, 0xff800000, 0x40490000]);
    const x = new Float32Array(words.buffer);
    const packed = packLossless(x);
    expect(packed).toBeInstanceOf(PackedBf16);
    expect(packed.length).toBe(x.length);
    expect(Array.from(new Uint32Array(toF32(packed).buffer))).toEqual(Array.from(words));
    // a fresh array each time, the caller's to write into
    expect(toF32(packed)).not.toBe(toF32(packed));
  });

  it('leaves a matrix with any value that is not a bf16 number as it is (the same array)', () => {
    const x = roundToBf16(lowRankPlusNoise(6, 10, 3));
    expect(packLossless(x)).toBeInstanceOf(PackedBf16);
    const y = x.slice();
    y[37] = Math.fround(1 + 2 ** -20); // needs more than bf16's 8 significant bits
    expect(packLossless(y)).toBe(y);
    expect(toF32(y)).toBe(y);
  });

  it('finds the first NaN or infinity in packed bits as in f32', () => {
    const x = roundToBf16(lowRankPlusNoise(4, 8, 5));
    expect(firstNonFinite(packLossless(x))).toBe(-1);
    for (const [j, v] of [[9, Number.NaN], [3, Number.POSITIVE_INFINITY], [20, Number.NEGATIVE_INFINITY]] as const) {
      const y = x.slice();
      y[j] = v;
      expect(firstNonFinite(y)).toBe(j);
      expect(firstNonFinite(packLossless(y))).toBe(j);
    }
  });

  it('is refused with the entry named when a packed weight is not finite', () => {
    const p = 6;
    const d = 10;
    const matrices = Array.from({ length: 4 }, (_, e) => roundToBf16(lowRankPlusNoise(p, d, e)));
    matrices[2][13] = Number.NaN;
    expect(() =>
      compressLayerType({ engine, recipe: parseRecipe({ retain: 0.5, preset: 'paper' }), matrices: matrices.map(packLossless), p, d, frequencies: [1, 1, 1, 1] }),
    ).toThrow(/expert 2: entry 13 \(row 1, column 3\) is NaN/);
  });
});

describe('a layer from packed weights', () => {
  const p = 8;
  const d = 24;
  const n = 8;
  const freq = [90, 70, 60, 50, 40, 30, 20, 0];
  const weights = Array.from({ length: n }, (_, e) => roundToBf16(lowRankPlusNoise(p, d, 40 + e, 5, 0.08)));
  const grams = Array.from({ length: n }, (_, e) => (freq[e] > 0 ? anisotropicGram(d, 40 + e, 90 + e).gram : new Float64Array(d * d)));

  function expectSameLayer(got: CompressLayerResult, want: CompressLayerResult): void {
    expect(got.ranks).toEqual(want.ranks);
    expect(got.params).toEqual(want.params);
    expect(got.errors).toEqual(want.errors);
    expect(got.choices).toEqual(want.choices);
    got.groups.forEach((grp, g) => {
      const ref = want.groups[g];
      expect(grp.experts).toEqual(ref.experts);
      expect(Array.from(grp.basis)).toEqual(Array.from(ref.basis));
      expect(Array.from(grp.base ?? [])).toEqual(Array.from(ref.base ?? []));
      grp.coefficients.forEach((A, j) => expect(Array.from(A)).toEqual(Array.from(ref.coefficients[j])));
      (grp.expertBases ?? []).forEach((B, j) => expect(Array.from(B)).toEqual(Array.from(ref.expertBases![j])));
      expect(grp.residual?.vectors.map((v) => Array.from(v))).toEqual(ref.residual?.vectors.map((v) => Array.from(v)));
      expect(grp.expertErrors).toEqual(ref.expertErrors);
    });
  }

  const variants: Array<[string, RecipeInput]> = [
    ...PRESET_NAMES.map((preset): [string, RecipeInput] => [preset, { retain: 0.5, preset }]),
    ['shared output basis', { retain: 0.5, preset: 'default', structures: ['output-basis'] }],
    ['base + delta', { retain: 0.6, preset: 'default', structures: ['base-delta'] }],
    ['affinity groups', { retain: 0.5, preset: 'waterfill-whiten-grouped', grouping: 'affinity' }],
  ];
  it.each(variants)('%s: bit for bit the layer from the same values in f32, and handed over', (_, input) => {
    const recipe = parseRecipe(input);
    const needsGram = recipe.whiten !== false || recipe.refit;
    const common = { engine, recipe, p, d, frequencies: freq, ...(needsGram ? { gram: (e: number) => grams[e] } : {}) };
    const want = compressLayerType({ ...common, matrices: weights });
    if (input.structures) expect(want.choices?.structure.chosen).toBe(input.structures[0]);
    const packed = weights.map(packLossless);
    expect(packed.every((w) => w instanceof PackedBf16)).toBe(true);
    expectSameLayer(compressLayerType({ ...common, matrices: packed }), want);
    const handed = weights.map(packLossless);
    expectSameLayer(compressLayerType({ ...common, matrices: handed, handOverMatrices: true, spillBasesOverBytes: 0 }), want);
    expect(handed.every((w) => w.length === 0)).toBe(true);
  });
});
