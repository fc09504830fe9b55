/**
 * Disk room for a directory of Gram matrices, checked before calibration starts: the matrices of
 * every routed expert of every MoE layer can take more than the model itself (96 GiB at
 * Qwen3-30B-A3B's shape), and a disk that fills hours into a run is worse than a refusal up front.
 */
import { readdir, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Checkpoint } from '../checkpoint/types.js';
import { packedTriangleLength } from './gram-io.js';
import { fmtBytes } from '../util/bytes.js';
import { RoutingStatsError } from './schema.js';

/** safetensors header and metadata of one Gram file, rounded up */
const HEADER_BYTES = 1024;

/** Bytes the Gram matrices of `layers` MoE layers take at most (every expert reached). */
export function gramBytes(ckpt: Pick<Checkpoint, 'config' | 'layout'>, layers = ckpt.layout.layers.filter((l) => l.kind === 'moe').length): number {
  return layers * ckpt.config.numExperts * (packedTriangleLength(ckpt.config.hiddenSize) * 8 + HEADER_BYTES);
}

/** Free bytes for an unprivileged writer on the file system holding `dir` (or its nearest existing parent). */
async function freeBytes(dir: string): Promise<number | undefined> {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    try {
      const s = await statfs(at);
      return s.bavail * s.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(at) === at) return undefined;
    }
  }
}

/** Bytes of the files already in `dir` (an interrupted run's, which the new ones replace). */
async function bytesIn(dir: string): Promise<number> {
  try {
    const names = await readdir(dir);
    let total = 0;
    for (const name of names) total += (await stat(path.join(dir, name)).catch(() => undefined))?.size ?? 0;
    return total;
  } catch {
    return 0;
  }
}

/**
 * Refuses, before any work, when the file system of `dir` has less free space than `needed` bytes
 * of Gram matrices (counting as free the files already in `dir`, which an interrupted run left and
 * the new ones replace); `fix` says what the caller can do instead. Where the free space cannot
 * be read, nothing is refused.
 */
export async function checkRoomForGrams(dir: string, needed: number, fix: string): Promise<void> {
  const available = await freeBytes(dir);
  if (available === undefined) return;
  const free = available + (await bytesIn(dir));
  if (free >= needed) return;
  throw new RoutingStatsError(`the Gram matrices need up to ${fmtBytes(needed)} in ${dir}, and its disk has ${fmtBytes(free)} free for them; ${fix}`);
}
