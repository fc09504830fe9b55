/**
 * `i/N` task specs of sharded runs (a scheduler's array index i of N tasks, counted from 0), and
 * the contiguous, near-equal range of items each task owns, so that N tasks cover all exactly once.
 */
import { RfidMoeError } from '../errors.js';
export class ShardSpecError extends RfidMoeError {
  readonly kind = 'ShardSpecError';
}

/** `i/N` with 0 ≤ i < N. */
export function parseShard(text: string, what = 'shard'): { index: number; count: number } {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new ShardSpecError(`${what} must look like i/N (task i of N, counted from 0), got "${text}"`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new ShardSpecError(`${what} ${text}: the number of shards must be at least 1`);
  if (index >= count) throw new ShardSpecError(`${what} ${text}: the task index must be below the number of shards (0 … ${count - 1})`);
  return { index, count };
}

/** The half-open range [start, end) of items that shard `index` of `count` owns among `total`. */
export function shardRange(total: number, index: number, count: number): [number, number] {
  return [Math.floor((index * total) / count), Math.floor(((index + 1) * total) / count)];
}
