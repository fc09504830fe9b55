/**
 * The sparse projection P ∈ R^{L×q} (L = p·d) that carries each expert's residual as q numbers.
 *
 * Every weight entry belongs to exactly one of q non-empty buckets and P's entry for it is
 * 1/√|bucket|, so the columns of P are orthonormal (PᵀP = I). Then η = Pᵀr is the least-squares
 * optimum of min‖r − Pη‖ and P·η sets every entry to its bucket's mean residual. P is never
 * built: it is regenerated from a descriptor, which is all an output needs to store.
 */
import { mulberry32 } from './prng.js';
import { RfidMoeError } from '../errors.js';

export type BucketScheme = 'tile' | 'random';

export interface ProjectionDescriptor {
  /** 'tile': q contiguous runs of near-equal size in row-major order; 'random': the same sizes
   * over a seeded random permutation of the entries */
  scheme: BucketScheme;
  /** number of buckets (residual numbers per expert) */
  q: number;
  /** entries covered, p·d */
  length: number;
  /** seed of the 'random' permutation (ignored by 'tile') */
  seed: number;
}

export class ProjectionError extends RfidMoeError {
  readonly kind = 'ProjectionError';
}

/** Start of bucket b in position space: floor(b·L/q). Sizes differ by at most one. */
function bucketStart(b: number, length: number, q: number): number {
  return Math.floor((b * length) / q);
}

export class SparseProjection {
  readonly descriptor: Readonly<ProjectionDescriptor>;
  /** positions → entries; null for 'tile', where position j is entry j */
  private readonly order: Int32Array | null;
  private readonly starts: Float64Array;

  constructor(descriptor: ProjectionDescriptor) {
    const { scheme, q, length, seed } = descriptor;
    if (scheme !== 'tile' && scheme !== 'random') throw new ProjectionError(`unknown bucket scheme "${String(scheme)}"; use "tile" or "random"`);
    if (!Number.isInteger(length) || length < 1) throw new ProjectionError(`projection length must be a positive integer, got ${length}`);
    if (!Number.isInteger(q) || q < 1 || q > length) {
      throw new ProjectionError(`projection needs 1 ≤ q ≤ length (every bucket non-empty), got q=${q} for length ${length}`);
    }
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new ProjectionError(`seed must be a 32-bit unsigned integer, got ${seed}`);
    this.descriptor = Object.freeze({ ...descriptor });
    this.starts = new Float64Array(q + 1);
    for (let b = 0; b <= q; b++) this.starts[b] = bucketStart(b, length, q);
    this.order = scheme === 'random' ? randomPermutation(length, seed) : null;
  }

  get q(): number {
    return this.descriptor.q;
  }

  get length(): number {
    return this.descriptor.length;
  }

  bucketSize(b: number): number {
    return this.starts[b + 1] - this.starts[b];
  }

  /** η = Pᵀr: each bucket's sum divided by √|bucket| (summed in f64). */
  project(r: ArrayLike<number>): Float32Array {
    this.checkLength(r.length, 'residual');
    const { q } = this.descriptor;
    const eta = new Float32Array(q);
    const order = this.order;
    for (let b = 0; b < q; b++) {
      const start = this.starts[b];
      const end = this.starts[b + 1];
      let sum = 0;
      if (order === null) for (let j = start; j < end; j++) sum += r[j];
      else for (let j = start; j < end; j++) sum += r[order[j]];
      eta[b] = sum / Math.sqrt(end - start);
    }
    return eta;
  }

  /** out += scale · P·η in place (entry = scale·η_b/√|b|). */
  addReconstruction(out: Float32Array | Float64Array, eta: ArrayLike<number>, scale = 1): void {
    this.checkLength(out.length, 'output');
    if (eta.length !== this.descriptor.q) throw new ProjectionError(`η has ${eta.length} entries, the projection has q=${this.descriptor.q}`);
    const order = this.order;
    for (let b = 0; b < this.descriptor.q; b++) {
      const start = this.starts[b];
      const end = this.starts[b + 1];
      const value = (scale * eta[b]) / Math.sqrt(end - start);
      if (order === null) for (let j = start; j < end; j++) out[j] += value;
      else for (let j = start; j < end; j++) out[order[j]] += value;
    }
  }

  /** P·η as a fresh vector of length L. */
  reconstruct(eta: ArrayLike<number>): Float32Array {
    const out = new Float32Array(this.descriptor.length);
    this.addReconstruction(out, eta);
    return out;
  }

  private checkLength(n: number, what: string): void {
    if (n !== this.descriptor.length) throw new ProjectionError(`${what} has ${n} entries, the projection covers ${this.descriptor.length}`);
  }
}

/** Fisher–Yates over [0, length) driven by mulberry32(seed): a balanced random assignment once
 * cut into the tile runs. */
function randomPermutation(length: number, seed: number): Int32Array {
  const rand = mulberry32(seed);
  const perm = new Int32Array(length);
  for (let i = 0; i < length; i++) perm[i] = i;
  for (let i = length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

export function createProjection(descriptor: ProjectionDescriptor): SparseProjection {
  return new SparseProjection(descriptor);
}
