/**
 * A served model's load reads its tensors of 64 KiB to 2 MiB into shared chunks (TensorArena,
 * which the native allocator backs with huge pages): the store hands the checkpoint an arena for
 * the load and takes it back afterwards, the experts it holds are those chunks' bytes, and they
 * equal the checkpoint's own reads bit for bit. Here the allocator is a plain ArrayBuffer
 * (process-wide, so it is swapped in and restored); the huge pages themselves:
 * test/engine/huge-page-buffers.test.ts. The store reads copies here (mapWeights false): mapped,
 * the tensors kept as stored are views of the files instead (test/serve/model-store-mapping.test.ts).
 */
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createEngine } from '../../src/engine/index.js';
import { ARENA_CHUNK_BYTES, setLargeBufferAllocator, TensorArena, type LargeBufferAllocator } from '../../src/io/tensor-buffers.js';
import { inspectServedModel, ModelStore } from '../../src/serve/models.js';
import { tempDir } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { TINY_DIR } from './helpers.js';

const { engine } = await createEngine('auto', { threads: 1 });
const chunks = new Set<ArrayBuffer>();
const allocator: LargeBufferAllocator = (bytes) => {
  const b = new ArrayBuffer(bytes);
  chunks.add(b);
  return b;
};
const installed = setLargeBufferAllocator(allocator);
let tmp: Awaited<ReturnType<typeof tempDir>>;
let dir = '';

beforeAll(async () => {
  tmp = await tempDir('model-store-packing');
  dir = path.join(tmp.dir, 'm');
  // expert matrices of 512 × 128 BF16 values: 128 KiB each, in the packed range
  await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 5, numLayers: 2, numExperts: 4, hiddenSize: 512, expertIntermediateSize: 128, numHeads: 4, dtype: 'BF16' });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(dir, f));
});
afterAll(async () => {
  setLargeBufferAllocator(installed);
  await tmp?.cleanup();
  engine.dispose();
});

describe('ModelStore.load', () => {
  it('packs the tensors it holds into an arena for the load, and stops packing afterwards', async () => {
    const probe = await openCheckpoint(dir);
    const proto = Object.getPrototypeOf(probe) as Required<Pick<Checkpoint, 'packReads'>>;
    await probe.close();
    const spy = vi.spyOn(proto, 'packReads');
    try {
      const served = await inspectServedModel({ id: 'm', dir }, 2 ** 30);
      const store = new ModelStore(new Map([['m', served]]), { engine, maxBatchSize: 2, mapWeights: false });
      const { handle } = await store.load('m');
      const calls = spy.mock.calls.map((c) => c[0] as unknown);
      expect(calls.length).toBe(2);
      expect(calls[0]).toBeInstanceOf(TensorArena);
      expect(calls[1]).toBe(null);
      const arena = calls[0] as TensorArena;
      expect(arena.stats.packedBytes).toBeGreaterThanOrEqual(2 * 4 * 3 * 128 * 1024);

      const reference = await openCheckpoint(dir);
      try {
        for (const layer of [0, 1]) {
          const mlp = (await handle.decoder.provider.layer(layer)).mlp;
          if (mlp.kind !== 'moe') throw new Error('expected an MoE layer');
          for (let e = 0; e < 4; e++) {
            const m = (await mlp.moe.expert(e)).swiGluMatrices!()!;
            for (const type of ['gate', 'up', 'down'] as const) {
              const held = m[type] as Uint16Array;
              expect(held).toBeInstanceOf(Uint16Array);
              expect(held.buffer.byteLength).toBe(ARENA_CHUNK_BYTES);
              expect(chunks.has(held.buffer as ArrayBuffer)).toBe(true);
              const own = (await reference.readExpertBf16!(layer, e, type))!;
              expect(Buffer.from(held.buffer, held.byteOffset, held.byteLength).equals(Buffer.from(own.buffer, own.byteOffset, own.byteLength))).toBe(true);
            }
          }
        }
      } finally {
        await reference.close();
      }
      await store.unload('m', handle);
    } finally {
      spy.mockRestore();
    }
  });
});
