/**
 * Seeded random numbers shared by every engine, so a randomized SVD with a given seed sketches
 * with the same Gaussian matrix whatever engine runs it.
 *
 * Generator: xoshiro128** (Blackman & Vigna), state seeded through splitmix32 so that nearby
 * seeds give unrelated streams. Gaussians: Box–Muller, both outputs of each pair used.
 */

function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${String(seed)}`);
    // Seeds beyond 32 bits keep their high bits (folded in) instead of silently colliding.
    const low = seed >>> 0;
    const high = Math.floor(Math.abs(seed) / 2 ** 32) >>> 0;
    const mix = splitmix32(low ^ Math.imul(high, 0x27d4eb2d));
    this.s0 = mix();
    this.s1 = mix();
    this.s2 = mix();
    this.s3 = mix();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** A generator at an exact 128-bit state (four 32-bit words), e.g. to check reference outputs. */
  static fromState(s0: number, s1: number, s2: number, s3: number): Xoshiro128 {
    const rng = new Xoshiro128(0);
    rng.s0 = s0 >>> 0;
    rng.s1 = s1 >>> 0;
    rng.s2 = s2 >>> 0;
    rng.s3 = s3 >>> 0;
    return rng;
  }

  /** next uniform 32-bit unsigned integer */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** uniform in the open interval (0, 1): never 0, so log() in Box–Muller is finite */
  nextOpenUnit(): number {
    return (this.nextUint32() + 0.5) / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Fills `out` with independent standard normal samples. */
export function fillGaussian(out: Float64Array, rng: Xoshiro128): void {
  for (let i = 0; i < out.length; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(rng.nextOpenUnit()));
    const angle = 2 * Math.PI * rng.nextOpenUnit();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < out.length) out[i + 1] = radius * Math.sin(angle);
  }
}

/** rows×cols row-major matrix of standard normal samples, deterministic in `seed`. */
export function gaussianMatrix(rows: number, cols: number, seed: number): Float64Array {
  if (!Number.isSafeInteger(rows) || rows < 0 || !Number.isSafeInteger(cols) || cols < 0) {
    throw new RangeError(`gaussianMatrix: rows and cols must be non-negative integers, got ${rows}×${cols}`);
  }
  const out = new Float64Array(rows * cols);
  fillGaussian(out, new Xoshiro128(seed));
  return out;
}
