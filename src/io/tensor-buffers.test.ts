/**
 * Where a tensor is read into (tensor-buffers.ts): the large-buffer hook is used from 2 MiB on and
 * only then, every failure of it falls back to Node's memory, RFID_MOE_HUGE_PAGES=0 turns it off
 * (and =1 on, where it was installed off by default: a VM that reports its free pages),
 * a TensorArena packs the sizes between 64 KiB and 2 MiB into shared chunks of that hook (and
 * nothing else), and a safetensors file reads the same values whichever memory its tensors land
 * in. (The native allocator itself: test/engine/huge-page-buffers.test.ts.)
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from './safetensors-reader.js';
import { writeSafetensors } from './safetensors-writer.js';
import { TensorStore } from './sharded.js';
import { ARENA_CHUNK_BYTES, LARGE_BUFFER_BYTES, PACKED_BUFFER_BYTES, TensorArena, reportsFreePages, setLargeBufferAllocator, tensorBytes, type LargeBufferAllocator } from './tensor-buffers.js';

const installed = setLargeBufferAllocator(null);
afterAll(() => setLargeBufferAllocator(installed));
afterEach(() => {
  setLargeBufferAllocator(null);
  delete process.env.RFID_MOE_HUGE_PAGES;
});

/** An allocator that records the sizes it was asked for and hands out buffers it remembers. */
function recording(answer: (bytes: number) => ArrayBuffer | null = (bytes) => new ArrayBuffer(bytes)) {
  const asked: number[] = [];
  const given = new Set<ArrayBuffer>();
  const allocator: LargeBufferAllocator = (bytes) => {
    asked.push(bytes);
    const b = answer(bytes);
    if (b) given.add(b);
    return b;
  };
  return { allocator, asked, given };
}

describe('tensorBytes', () => {
  it('uses the installed allocator from LARGE_BUFFER_BYTES on, and Node below it', () => {
    const r = recording();
    setLargeBufferAllocator(r.allocator);
    const small = tensorBytes(LARGE_BUFFER_BYTES - 1);
    const large = tensorBytes(LARGE_BUFFER_BYTES);
    expect(r.asked).toEqual([LARGE_BUFFER_BYTES]);
    expect(r.given.has(large.buffer as ArrayBuffer)).toBe(true);
    expect(r.given.has(small.buffer as ArrayBuffer)).toBe(false);
    for (const [bytes, length] of [[small, LARGE_BUFFER_BYTES - 1], [large, LARGE_BUFFER_BYTES]] as const) {
      expect(bytes.length).toBe(length);
      expect(bytes.byteOffset).toBe(0);
      expect(bytes.buffer.byteLength).toBe(length); // not a slice of a shared pool
    }
  });

  it('falls back to Node when the allocator returns null, throws or gives the wrong size', () => {
    for (const answer of [() => null, () => { throw new Error('mmap failed'); }, (n: number) => new ArrayBuffer(n - 1)]) {
      const r = recording(answer as (bytes: number) => ArrayBuffer | null);
      setLargeBufferAllocator(r.allocator);
      const bytes = tensorBytes(3 * LARGE_BUFFER_BYTES);
      expect(r.asked).toEqual([3 * LARGE_BUFFER_BYTES]);
      expect(bytes.length).toBe(3 * LARGE_BUFFER_BYTES);
      expect(r.given.has(bytes.buffer as ArrayBuffer)).toBe(false);
    }
  });

  it('RFID_MOE_HUGE_PAGES=0 keeps every buffer on Node', () => {
    const r = recording();
    setLargeBufferAllocator(r.allocator);
    process.env.RFID_MOE_HUGE_PAGES = '0';
    tensorBytes(4 * LARGE_BUFFER_BYTES);
    expect(r.asked).toEqual([]);
  });

  it('an allocator installed off by default is used only where RFID_MOE_HUGE_PAGES=1 asks for it', () => {
    const r = recording();
    setLargeBufferAllocator(Object.assign(r.allocator, { byDefault: false }));
    tensorBytes(4 * LARGE_BUFFER_BYTES);
    expect(r.asked).toEqual([]);
    for (const on of ['1', 'true', 'on']) {
      process.env.RFID_MOE_HUGE_PAGES = on;
      tensorBytes(4 * LARGE_BUFFER_BYTES);
    }
    expect(r.asked).toHaveLength(3);
    // and =0 keeps one installed on by default off
    const d = recording();
    setLargeBufferAllocator(d.allocator);
    process.env.RFID_MOE_HUGE_PAGES = 'off';
    tensorBytes(4 * LARGE_BUFFER_BYTES);
    delete process.env.RFID_MOE_HUGE_PAGES;
    tensorBytes(4 * LARGE_BUFFER_BYTES);
    expect(d.asked).toEqual([4 * LARGE_BUFFER_BYTES]);
  });

  it('reportsFreePages: a virtio balloon with free page reporting (feature bit 5), read from sysfs', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'balloon-'));
    try {
      expect(reportsFreePages(path.join(root, 'absent'))).toBe(false);
      await mkdir(path.join(root, 'virtio0'));
      // this development VM's features: bits 1, 2, 5 and 7
      await writeFile(path.join(root, 'virtio0', 'features'), '0110010100000000000000000000000010000000\n');
      expect(reportsFreePages(root)).toBe(true);
      await writeFile(path.join(root, 'virtio0', 'features'), '0110000100000000000000000000000010000000\n');
      expect(reportsFreePages(root)).toBe(false);
      // any of several balloons; an entry without features is skipped
      await mkdir(path.join(root, 'virtio3'));
      await writeFile(path.join(root, 'virtio3', 'features'), '000001\n');
      await mkdir(path.join(root, 'virtio4'));
      expect(reportsFreePages(root)).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('setLargeBufferAllocator returns the allocator it replaces', () => {
    const a: LargeBufferAllocator = () => null;
    expect(setLargeBufferAllocator(a)).toBe(null);
    expect(setLargeBufferAllocator(null)).toBe(a);
  });
});

describe('a safetensors file read into large buffers', () => {
  let dir = '';
  const file = () => path.join(dir, 'm.safetensors');
  // one tensor below the threshold, one F32 and one BF16 above it (raw bytes and widened reads)
  const small = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
  const bigF32 = Float32Array.from({ length: LARGE_BUFFER_BYTES / 4 + 123 }, (_, i) => Math.cos(i * 0.01) * (i % 7));
  const bf16Bits = Uint16Array.from({ length: LARGE_BUFFER_BYTES / 2 + 77 }, (_, i) => (0x3f80 + ((i * 37) % 0x3f)) ^ (i % 3 === 0 ? 0x8000 : 0));
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-tensor-buffers-'));
    await writeSafetensors(file(), [
      { name: 'small', dtype: 'F32', shape: [small.length], data: small },
      { name: 'big', dtype: 'F32', shape: [bigF32.length], data: bigF32 },
      { name: 'half', dtype: 'BF16', shape: [bf16Bits.length], data: new Uint8Array(bf16Bits.buffer) },
    ]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads the values it wrote, with the large tensors in the allocator’s buffers', async () => {
    const r = recording();
    setLargeBufferAllocator(r.allocator);
    const f = await SafetensorsFile.open(file());
    try {
      const big = await f.readF32('big');
      const half = await f.readBytes('half');
      const widened = await f.readF32('half');
      expect(await f.readF32('small')).toEqual(small);
      expect(Buffer.from(big.buffer, big.byteOffset, big.byteLength).equals(Buffer.from(bigF32.buffer))).toBe(true);
      expect(Buffer.from(half.buffer, half.byteOffset, half.byteLength).equals(Buffer.from(bf16Bits.buffer))).toBe(true);
      expect(Array.from(widened.subarray(0, 5))).toEqual(Array.from(bf16Bits.subarray(0, 5), (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]));
      for (const t of [big, half, widened]) expect(r.given.has(t.buffer as ArrayBuffer)).toBe(true);
      expect(r.asked.sort((a, b) => a - b)).toEqual([bf16Bits.byteLength, bigF32.byteLength, bf16Bits.length * 4].sort((a, b) => a - b));
    } finally {
      await f.close();
    }
  });
});

describe('TensorArena', () => {
  const KiB = 2 ** 10;
  const MiB = 2 ** 20;

  it('packs sizes from PACKED_BUFFER_BYTES below LARGE_BUFFER_BYTES into chunks, aligned and disjoint', () => {
    const r = recording();
    const arena = new TensorArena(r.allocator);
    const sizes = [PACKED_BUFFER_BYTES, 300 * KiB + 3, LARGE_BUFFER_BYTES - 1, 850 * KiB, 1 * MiB + 17];
    const views = sizes.map((n) => arena.bytes(n));
    expect(r.asked).toEqual([ARENA_CHUNK_BYTES]);
    const chunk = views[0].buffer;
    views.forEach((v, i) => {
      expect(v.buffer).toBe(chunk);
      expect(v.length).toBe(sizes[i]);
      expect(v.byteOffset % 64).toBe(0);
      v.fill(i + 1);
    });
    // each range still holds its own fill: no two overlap
    views.forEach((v, i) => expect(v.every((b) => b === i + 1)).toBe(true));
    const ends = views.map((v) => [v.byteOffset, v.byteOffset + v.length]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ends.length; i++) expect(ends[i][0]).toBeGreaterThanOrEqual(ends[i - 1][1]);
    expect(arena.stats).toEqual({ packedBytes: sizes.reduce((a, b) => a + b, 0), chunks: 1 });
  });

  it('takes a new chunk when the current one cannot hold the next buffer', () => {
    const r = recording();
    const arena = new TensorArena(r.allocator);
    const n = Math.floor(ARENA_CHUNK_BYTES / (1900 * KiB)); // 8 of 1.9 MiB fill a 16 MiB chunk
    const views = Array.from({ length: n + 1 }, () => arena.bytes(1900 * KiB));
    expect(r.asked).toEqual([ARENA_CHUNK_BYTES, ARENA_CHUNK_BYTES]);
    expect(new Set(views.slice(0, n).map((v) => v.buffer)).size).toBe(1);
    expect(views[n].buffer).not.toBe(views[0].buffer);
    expect(views[n].byteOffset).toBe(0);
  });

  it('leaves other sizes to tensorBytes: Node below 64 KiB, a buffer of their own from 2 MiB', () => {
    const r = recording();
    setLargeBufferAllocator(r.allocator);
    const arena = new TensorArena();
    const small = arena.bytes(PACKED_BUFFER_BYTES - 1);
    const large = arena.bytes(LARGE_BUFFER_BYTES);
    expect(r.asked).toEqual([LARGE_BUFFER_BYTES]);
    expect(small.buffer.byteLength).toBe(PACKED_BUFFER_BYTES - 1);
    expect(large.buffer.byteLength).toBe(LARGE_BUFFER_BYTES);
    expect(r.given.has(large.buffer as ArrayBuffer)).toBe(true);
    // the installed allocator serves the arena's chunks too
    const packed = arena.bytes(PACKED_BUFFER_BYTES);
    expect(r.asked).toEqual([LARGE_BUFFER_BYTES, ARENA_CHUNK_BYTES]);
    expect(packed.buffer.byteLength).toBe(ARENA_CHUNK_BYTES);
  });

  it('gives buffers of their own when no chunk is had, after close(), and with RFID_MOE_HUGE_PAGES=0', () => {
    for (const answer of [() => null, () => { throw new Error('mmap failed'); }, (n: number) => new ArrayBuffer(n - 4096)]) {
      const r = recording(answer as (bytes: number) => ArrayBuffer | null);
      const bytes = new TensorArena(r.allocator).bytes(500 * KiB);
      expect(r.asked).toEqual([ARENA_CHUNK_BYTES]);
      expect(bytes.length).toBe(500 * KiB);
      expect(bytes.buffer.byteLength).toBe(500 * KiB);
    }
    const r = recording();
    const arena = new TensorArena(r.allocator);
    const before = arena.bytes(500 * KiB);
    arena.close();
    const after = arena.bytes(500 * KiB);
    expect(after.buffer).not.toBe(before.buffer);
    expect(after.buffer.byteLength).toBe(500 * KiB);
    process.env.RFID_MOE_HUGE_PAGES = '0';
    const r2 = recording();
    expect(new TensorArena(r2.allocator).bytes(500 * KiB).buffer.byteLength).toBe(500 * KiB);
    expect(r2.asked).toEqual([]);
    // and with no allocator at all, nothing is packed
    delete process.env.RFID_MOE_HUGE_PAGES;
    expect(new TensorArena().bytes(500 * KiB).buffer.byteLength).toBe(500 * KiB);
  });
});

describe('a safetensors file read into an arena (packInto)', () => {
  let dir = '';
  const file = () => path.join(dir, 'packed.safetensors');
  // F32 and BF16 tensors in the packed range, one below it, and an F64 one, decoded into a new array
  const f32 = Float32Array.from({ length: 70_000 }, (_, i) => Math.sin(i * 0.003) * (1 + (i % 5)));
  const bf16Bits = Uint16Array.from({ length: 3 * 40_000 }, (_, i) => (0x3f00 + ((i * 13) % 0x1ff)) ^ (i % 4 === 0 ? 0x8000 : 0));
  const tiny = Float32Array.from({ length: 100 }, (_, i) => i / 7);
  const f64 = Float64Array.from({ length: 20_000 }, (_, i) => Math.cos(i) * 1e-3);
  const widen = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0];
  // byte-wise equality (vitest's deep equality is slow on 10^5 elements)
  const same = (x: ArrayBufferView, y: ArrayBufferView) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-tensor-arena-'));
    await writeSafetensors(file(), [
      { name: 'tiny', dtype: 'F32', shape: [tiny.length], data: tiny },
      { name: 'f32', dtype: 'F32', shape: [700, 100], data: f32 },
      { name: 'bf16', dtype: 'BF16', shape: [3, 40_000], data: new Uint8Array(bf16Bits.buffer) },
      { name: 'f64', dtype: 'F64', shape: [f64.length], data: new Uint8Array(f64.buffer) },
    ]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads the values it wrote; what it hands out in the packed range shares the arena’s chunk', async () => {
    const r = recording();
    const arena = new TensorArena(r.allocator);
    const f = await SafetensorsFile.open(file());
    try {
      f.packInto(arena);
      const a = await f.readF32('f32');
      const widened = await f.readF32('bf16');
      const kept = await f.readBf16('bf16');
      const rows = await f.readRowsBf16('bf16', 1, 3);
      const decoded = await f.readF32('f64');
      const t = await f.readF32('tiny');
      expect(same(a, f32)).toBe(true);
      expect(same(widened, Float32Array.from(bf16Bits, widen))).toBe(true);
      expect(same(kept, bf16Bits)).toBe(true);
      expect(same(rows, bf16Bits.subarray(40_000))).toBe(true);
      expect(same(decoded, Float32Array.from(f64))).toBe(true);
      expect(t).toEqual(tiny);
      expect(r.asked).toEqual([ARENA_CHUNK_BYTES]);
      const chunk = a.buffer;
      for (const x of [widened, kept, rows]) expect(x.buffer).toBe(chunk);
      // the F64 bytes are decoded into a new array: neither they nor the result were packed
      expect(decoded.buffer).not.toBe(chunk);
      expect(arena.stats.packedBytes).toBe(f32.byteLength + widened.byteLength + kept.byteLength + rows.byteLength);
      expect(t.buffer).not.toBe(chunk);
      f.packInto(null);
      const own = await f.readF32('f32');
      expect(own.buffer).not.toBe(chunk);
      expect(same(own, f32)).toBe(true);
    } finally {
      await f.close();
    }
  });

  it('a TensorStore packs the reads of every shard', async () => {
    const r = recording();
    const arena = new TensorArena(r.allocator);
    const store = await TensorStore.open(file());
    try {
      store.packInto(arena);
      const a = await store.readF32('f32');
      expect(same(a, f32)).toBe(true);
      expect(r.given.has(a.buffer as ArrayBuffer)).toBe(true);
    } finally {
      await store.close();
    }
  });
});
