/**
 * The test helpers themselves: the seeded RNG is reproducible and normal, and fixture values have
 * the promised scale (1/sqrt(fan_in) for matrices, ~1 for norms) so forward passes stay finite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { Rng, hashString, mulberry32 } from '../helpers/rng.js';
import { makeScratch } from './tmp-dirs.js';

function meanAndStd(xs: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  const mean = s / xs.length;
  let v = 0;
  for (let i = 0; i < xs.length; i++) v += (xs[i] - mean) ** 2;
  return { mean, std: Math.sqrt(v / xs.length) };
}

describe('rng', () => {
  it('mulberry32 is deterministic, in [0, 1), and seed-sensitive', () => {
    const a = mulberry32(1);
    const b = mulberry32(1);
    const seq = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(seq);
    expect(mulberry32(2)()).not.toBe(seq[0]);
    for (const x of seq) expect(x >= 0 && x < 1).toBe(true);
  });

  it('normals have mean 0 and std 1 (n = 20000, 5-sigma bounds)', () => {
    const xs = new Rng(42).normalArray(20000);
    const { mean, std } = meanAndStd(xs);
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(20000));
    expect(Math.abs(std - 1)).toBeLessThan(5 * Math.sqrt(0.5 / 20000));
  });

  it('labels give independent streams', () => {
    expect(hashString('a')).not.toBe(hashString('b'));
    expect(Rng.forLabel(0, 'x').normal()).not.toBe(Rng.forLabel(0, 'y').normal());
    expect(Rng.forLabel(0, 'x').normal()).toBe(Rng.forLabel(0, 'x').normal());
  });
});

describe('fixture values', () => {
  let scratch: Awaited<ReturnType<typeof makeScratch>>;
  beforeAll(async () => {
    scratch = await makeScratch('fixtures');
  });
  afterAll(async () => {
    await scratch.cleanup();
  });

  it('matrices scale as 1/sqrt(fan_in), norms sit near 1', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub('m'), 'mixtral', { hiddenSize: 64, expertIntermediateSize: 32, numExperts: 4 });
    const ckpt = await openCheckpoint(dir);
    try {
      const gate = meanAndStd(await ckpt.readExpert(0, 1, 'gate')); // [32, 64]: fan_in 64
      const down = meanAndStd(await ckpt.readExpert(0, 1, 'down')); // [64, 32]: fan_in 32
      expect(gate.std).toBeCloseTo(1 / 8, 1);
      expect(down.std).toBeCloseTo(1 / Math.sqrt(32), 1);
      const norm = meanAndStd(await ckpt.readF32('model.layers.0.input_layernorm.weight'));
      expect(Math.abs(norm.mean - 1)).toBeLessThan(0.1);
      expect(norm.std).toBeLessThan(0.2);
    } finally {
      await ckpt.close();
    }
  });
});
