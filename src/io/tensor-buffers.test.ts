/**
 * Where a tensor is read into (tensor-buffers.ts): the large-buffer hook is used from 2 MiB on and
 * only then, every failure of it falls back to Node's memory, RFID_MOE_HUGE_PAGES=0 turns it off,
 * and a safetensors file reads the same values whichever memory its tensors land in. (The native
 * allocator itself: test/engine/huge-page-buffers.test.ts.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from './safetensors-reader.js';
import { writeSafetensors } from './safetensors-writer.js';
import { LARGE_BUFFER_BYTES, setLargeBufferAllocator, tensorBytes, type LargeBufferAllocator } from './tensor-buffers.js';

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
