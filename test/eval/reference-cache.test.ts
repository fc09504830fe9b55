/**
 * The reference cache runs the reference's decoder once for many compared models: the numbers
 * must be exactly those of an uncached evaluation (same hidden states, same arithmetic), and the
 * cache must refuse to serve states computed for other windows or another reference.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { evaluateWindows, ReferenceCache } from '../../src/eval/evaluate.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';

const engine = createTsEngine({ threads: 1 });
let dir: string;
let a: Checkpoint;
let b: Checkpoint;
let ref: Checkpoint;

function windows(count: number, len: number, seed: number): Int32Array[] {
  const out: Int32Array[] = [];
  let x = seed;
  for (let w = 0; w < count; w++) {
    const ids = new Int32Array(len);
    for (let t = 0; t < len; t++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      ids[t] = x % 32;
    }
    out.push(ids);
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-refcache-'));
  await makeTinyCheckpoint(path.join(dir, 'a'), 'mixtral', { seed: 1 });
  await makeTinyCheckpoint(path.join(dir, 'b'), 'mixtral', { seed: 2 });
  await makeTinyCheckpoint(path.join(dir, 'ref'), 'mixtral', { seed: 3 });
  [a, b, ref] = await Promise.all(['a', 'b', 'ref'].map((n) => openCheckpoint(path.join(dir, n))));
});

afterAll(async () => {
  await Promise.all([a, b, ref].map((c) => c?.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('ReferenceCache', () => {
  it('gives exactly the uncached numbers for every model, over several passes', async () => {
    const w = windows(7, 6, 5);
    // 2 windows per pass: 4 passes, the last one short
    const opts = { batchTokens: 12 };
    const cache = new ReferenceCache(w);
    for (const model of [a, b]) {
      const plain = await evaluateWindows(model, engine, w, ref, opts);
      const cached = await evaluateWindows(model, engine, w, ref, { ...opts, referenceCache: cache });
      expect(cached).toEqual(plain);
      expect(plain.comparison!.meanKl).toBeGreaterThan(0);
    }
    // 4 passes × 12 tokens (the last pass 6) × hidden floats
    expect(cache.bytes).toBe(w.length * 6 * ref.config.hiddenSize * 4);
  });

  it('refuses other windows, another reference or another pass size', async () => {
    const w = windows(3, 6, 9);
    const cache = new ReferenceCache(w);
    await evaluateWindows(a, engine, w, ref, { referenceCache: cache });
    await expect(evaluateWindows(a, engine, windows(3, 6, 9), ref, { referenceCache: cache })).rejects.toThrow(/other windows/);
    await expect(evaluateWindows(a, engine, w, b, { referenceCache: cache })).rejects.toThrow(/another reference/);
    await expect(evaluateWindows(a, engine, w, ref, { referenceCache: cache, batchTokens: 6 })).rejects.toThrow(/another reference model or `batchTokens`/);
  });
});
