import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors, type TensorPlan } from './safetensors-writer.js';
import { INDEX_FILE, ShardedWriter, TensorStore, assignShards, readShardIndex } from './sharded.js';

let root: string;
let counter = 0;
const freshDir = async () => {
  const d = path.join(root, `d${counter++}`);
  await mkdir(d, { recursive: true });
  return d;
};
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'rfid-sharded-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Six F32 tensors of 8 × (i + 1) bytes with recognisable values. */
const plan: TensorPlan[] = Array.from({ length: 6 }, (_, i) => ({ name: `layer.${i}.w`, dtype: 'F32', shape: [2, i + 1] }));
const valuesFor = (p: TensorPlan, k: number) => Float32Array.from({ length: p.shape[0] * p.shape[1] }, (_, j) => k * 100 + j);
const tensorBytes = plan.reduce((s, p) => s + p.shape[0] * p.shape[1] * 4, 0);

async function writeSharded(dir: string, maxShardBytes: number): Promise<{ files: string[]; totalSize: number }> {
  const w = await ShardedWriter.create(dir, plan, { maxShardBytes });
  // Reverse order: routing must not depend on write order.
  for (const [k, p] of [...plan.entries()].reverse()) await w.write(p.name, valuesFor(p, k));
  return w.finish();
}

describe('ShardedWriter', () => {
  it('splits in plan order under maxShardBytes, names shards HF-style and writes a correct index', async () => {
    const dir = await freshDir();
    const { files, totalSize } = await writeSharded(dir, 40);
    // sizes 8,16,24,32,40,48: [8,16] [24] [32] [40] [48] — greedy in plan order; 48 > 40 stands alone
    expect(files.map((f) => path.basename(f))).toEqual([1, 2, 3, 4, 5].map((i) => `model-0000${i}-of-00005.safetensors`));
    expect(totalSize).toBe(tensorBytes);
    const index = JSON.parse(await readFile(path.join(dir, INDEX_FILE), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(index.metadata.total_size).toBe(tensorBytes);
    expect(index.weight_map).toEqual({
      'layer.0.w': 'model-00001-of-00005.safetensors',
      'layer.1.w': 'model-00001-of-00005.safetensors',
      'layer.2.w': 'model-00002-of-00005.safetensors',
      'layer.3.w': 'model-00003-of-00005.safetensors',
      'layer.4.w': 'model-00004-of-00005.safetensors',
      'layer.5.w': 'model-00005-of-00005.safetensors',
    });
    expect((await readdir(dir)).sort()).toEqual([INDEX_FILE, ...files.map((f) => path.basename(f))].sort());

    const store = await TensorStore.open(dir);
    try {
      expect(store.shardCount).toBe(5);
      expect(store.tensorNames()).toEqual(plan.map((p) => p.name));
      for (const [k, p] of plan.entries()) {
        expect(Array.from(await store.readF32(p.name))).toEqual(Array.from(valuesFor(p, k)));
        expect(Array.from(await store.readRowsF32(p.name, 1, 2))).toEqual(Array.from(valuesFor(p, k).subarray(p.shape[1])));
        expect(store.tensor(p.name)!.file).toBe(path.join(dir, index.weight_map[p.name]));
      }
      expect(store.tensor('missing')).toBeUndefined();
      await expect(store.readBytes('missing')).rejects.toMatchObject({ variant: 'TensorNotFound' });
    } finally {
      await store.close();
    }
  });

  it('writes one model.safetensors and no index when everything fits, replacing a stale index', async () => {
    const dir = await freshDir();
    await writeSharded(dir, 40);
    const { files } = await writeSharded(dir, 1e9);
    expect(files).toEqual([path.join(dir, 'model.safetensors')]);
    expect((await readdir(dir)).includes(INDEX_FILE)).toBe(false);
    const store = await TensorStore.open(dir);
    expect(store.shardCount).toBe(1);
    expect(Array.from(await store.readF32('layer.3.w'))).toEqual(Array.from(valuesFor(plan[3], 3)));
    await store.close();
  });

  it('assignShards keeps plan order and never leaves an empty shard', () => {
    expect(assignShards(plan, 1).map((g) => g.map((p) => p.name))).toEqual(plan.map((p) => [p.name]));
    expect(assignShards([], 10)).toEqual([[]]);
  });

  it('rejects bad options and unknown tensors', async () => {
    await expect(ShardedWriter.create(await freshDir(), plan, { maxShardBytes: 0 })).rejects.toMatchObject({ variant: 'InvalidPlan' });
    await expect(ShardedWriter.create(await freshDir(), plan, { prefix: '../x' })).rejects.toMatchObject({ variant: 'InvalidPlan' });
    const w = await ShardedWriter.create(await freshDir(), plan, { maxShardBytes: 40 });
    await expect(w.write('nope', new Float32Array(1))).rejects.toMatchObject({ variant: 'TensorNotFound' });
    await w.abort();
  });
});

describe('TensorStore.open', () => {
  it('accepts a single file path, a directory with one .safetensors, or an index path', async () => {
    const dir = await freshDir();
    await writeSafetensors(path.join(dir, 'weights.safetensors'), [{ name: 'a', dtype: 'F32', shape: [1], data: Float32Array.of(5) }]);
    for (const target of [dir, path.join(dir, 'weights.safetensors')]) {
      const s = await TensorStore.open(target);
      expect(Array.from(await s.readF32('a'))).toEqual([5]);
      await s.close();
    }
    const sharded = await freshDir();
    await writeSharded(sharded, 40);
    const s = await TensorStore.open(path.join(sharded, INDEX_FILE));
    expect(s.shardCount).toBe(5);
    await s.close();
  });

  it('refuses ambiguous or empty directories with a message saying what to pass', async () => {
    const empty = await freshDir();
    await expect(TensorStore.open(empty)).rejects.toMatchObject({ variant: 'ShardNotFound', message: expect.stringContaining('no model.safetensors.index.json') });
    const two = await freshDir();
    for (const n of ['a', 'b']) await writeSafetensors(path.join(two, `${n}.safetensors`), [{ name: n, dtype: 'F32', shape: [1], data: Float32Array.of(1) }]);
    await expect(TensorStore.open(two)).rejects.toMatchObject({ variant: 'ShardNotFound', message: expect.stringContaining('pass') });
    await expect(TensorStore.open(path.join(empty, 'nothing-here'))).rejects.toMatchObject({ variant: 'ShardNotFound' });
  });
});

describe('corrupt indexes', () => {
  async function withIndex(index: unknown | string): Promise<string> {
    const dir = await freshDir();
    await writeSharded(dir, 40);
    await writeFile(path.join(dir, INDEX_FILE), typeof index === 'string' ? index : JSON.stringify(index));
    return dir;
  }
  const good = (extra: Record<string, string> = {}) => ({
    metadata: { total_size: tensorBytes },
    weight_map: { 'layer.0.w': 'model-00001-of-00005.safetensors', ...extra },
  });

  it.each([
    ['not JSON', '{"weight_map": {', 'InvalidShardIndex', /not valid JSON/],
    ['no weight_map', { metadata: {} }, 'InvalidShardIndex', /weight_map/],
    ['weight_map an array', { weight_map: [] }, 'InvalidShardIndex', /weight_map/],
    ['a non-string shard', { weight_map: { a: 3 } }, 'InvalidShardIndex', /weight_map/],
    ['an absolute shard path', good({ x: '/etc/passwd' }), 'InvalidShardIndex', /"\/etc\/passwd" is an absolute path/],
    ['a Windows absolute path', good({ x: 'C:\\weights.safetensors' }), 'InvalidShardIndex', /absolute/],
    ['a path leaving the directory', good({ x: '../model.safetensors' }), 'InvalidShardIndex', /"\.\.\/model\.safetensors" leaves the checkpoint directory/],
    ['a sneaky path leaving the directory', good({ x: 'sub/../../x.safetensors' }), 'InvalidShardIndex', /leaves/],
    ['a missing shard', good({ x: 'model-00009-of-00009.safetensors' }), 'ShardNotFound', /"model-00009-of-00009\.safetensors".*does not exist/],
    ['duplicate tensor names', '{"weight_map":{"a":"model-00001-of-00005.safetensors","a":"model-00002-of-00005.safetensors"}}', 'InvalidShardIndex', /duplicate key "a"/],
  ])('%s', async (_label, index, kind, message) => {
    const dir = await withIndex(index);
    await expect(readShardIndex(dir)).rejects.toMatchObject({ variant: kind, message: expect.stringMatching(message) });
    await expect(TensorStore.open(dir)).rejects.toMatchObject({ variant: kind });
  });

  it('a tensor the index places in a shard that lacks it is an error naming both', async () => {
    const dir = await withIndex(good({ 'layer.5.w': 'model-00001-of-00005.safetensors' }));
    await expect(TensorStore.open(dir)).rejects.toMatchObject({
      variant: 'TensorNotFound',
      tensor: 'layer.5.w',
      message: expect.stringMatching(/"layer\.5\.w".*"model-00001-of-00005\.safetensors"/),
    });
  });

  it('names are data: a weight_map key "__proto__" is just a tensor name', async () => {
    const dir = await freshDir();
    await writeSafetensors(path.join(dir, 'model-00001-of-00001.safetensors'), [{ name: '__proto__', dtype: 'F32', shape: [1], data: Float32Array.of(3) }]);
    await writeFile(path.join(dir, INDEX_FILE), '{"metadata":{"total_size":4},"weight_map":{"__proto__":"model-00001-of-00001.safetensors"}}');
    const index = await readShardIndex(dir);
    expect([...index.weightMap.keys()]).toEqual(['__proto__']);
    expect(index.metadata.total_size).toBe(4);
    const store = await TensorStore.open(dir);
    expect(Array.from(await store.readF32('__proto__'))).toEqual([3]);
    await store.close();
  });
});
