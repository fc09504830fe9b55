/**
 * The project's one small seeded PRNG, with a fixed, portable definition (mulberry32 over 32-bit
 * integer math): calibration window offsets, sampled sequences and residual projection buckets
 * all regenerate identically from their seeds on every platform and release.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mix a base seed with an index (e.g. a group's) into a new 32-bit seed (splitmix32 finaliser). */
export function mixSeed(base: number, index: number): number {
  let z = ((base >>> 0) + Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}
