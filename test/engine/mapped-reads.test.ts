/**
 * Checkpoint files mapped into memory (native/file_map.cc, installed into io/file-map.ts when the
 * addon loads): after mapReads() the reads of tensors kept as stored are views of one mapping of
 * the file and equal the copies read without it; a tensor that does not start on a multiple of
 * its element size, and every decoded read, is still a copy; RFID_MOE_MMAP=0 turns mapping off;
 * populating brings the pages in (the kernel's own count, RssFile), dropping hands them back and
 * a view read afterwards still reads the file; a file cut short after it was mapped is a
 * rejected populate naming the cause, not a crash; memory that is not a mapping is refused.
 * Skipped where the addon is not built.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeEngine, nativeAddonPath } from '../../src/engine/native.js';
import { fileMapper } from '../../src/io/file-map.js';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';
import { SafetensorsError } from '../../src/io/errors.js';
import { rssFileBytes } from '../helpers/process-memory.js';

const skipReason = !existsSync(nativeAddonPath) ? 'the native addon is not built' : process.platform !== 'linux' ? 'mapping is built for Linux only' : undefined;

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mapped-reads-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  delete process.env.RFID_MOE_MMAP;
});

function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * (1 + (i % 7)));
}

function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}


describe.skipIf(skipReason !== undefined)(`checkpoint files mapped into memory${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(() => {
    const loaded = loadNativeEngine({ threads: 1 });
    if (!loaded.ok) throw new Error(loaded.reason);
    loaded.engine.dispose();
  });

  it('hands out views of one mapping for tensors kept as stored, equal to the copies, and copies for the rest', async () => {
    const file = path.join(dir, 'kinds.safetensors');
    await writeSafetensors(file, [
      { name: 'w', dtype: 'BF16', shape: [64, 100], data: values(6400, 1) },
      { name: 'n', dtype: 'F32', shape: [33], data: values(33, 2) },
      { name: 'h', dtype: 'F16', shape: [5, 7], data: values(35, 3) },
      { name: 'b', dtype: 'BF16', shape: [3, 9], data: values(27, 4) },
    ]);
    const copies = await SafetensorsFile.open(file);
    const mapped = await SafetensorsFile.open(file);
    try {
      expect(mapped.mapReads()).toBe(mapped.fileSize);
      expect(mapped.mapReads()).toBe(mapped.fileSize); // idempotent: one mapping
      const w = await mapped.readBf16('w');
      const rows = await mapped.readRowsBf16('w', 10, 20);
      const n = await mapped.readF32('n');
      const b = await mapped.readBf16('b');
      for (const view of [w, rows, n, b]) expect(view.buffer.byteLength).toBe(mapped.fileSize);
      expect(w.buffer).toBe(n.buffer);
      expect(rows.buffer).toBe(b.buffer);
      expect(same(w, await copies.readBf16('w'))).toBe(true);
      expect(same(rows, await copies.readRowsBf16('w', 10, 20))).toBe(true);
      expect(same(n, await copies.readF32('n'))).toBe(true);
      expect(same(b, await copies.readBf16('b'))).toBe(true);
      // decoded reads are the reader's own memory: widened F16 and BF16, raw bytes
      const h = await mapped.readF32('h');
      const wide = await mapped.readF32('w');
      const raw = await mapped.readBytes('w');
      for (const copy of [h, wide, raw]) expect(copy.buffer.byteLength).toBe(copy.byteLength);
      expect(same(h, await copies.readF32('h'))).toBe(true);
      expect(same(wide, await copies.readF32('w'))).toBe(true);
      expect(same(raw, await copies.readBytes('w'))).toBe(true);
      // the copies' reader was never mapped
      expect((await copies.readBf16('w')).buffer.byteLength).toBe(6400 * 2);
    } finally {
      await copies.close();
      await mapped.close();
    }
  });

  it('copies a tensor that does not start on a multiple of its element size', async () => {
    // a header whose length puts the data at an odd byte of the file (the format allows it)
    const data = new Uint8Array(Float32Array.from([1.5, -2, 3.25, 0.125]).buffer);
    let header = JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, y: { dtype: 'BF16', shape: [2], data_offsets: [16, 20] } });
    if ((8 + header.length) % 2 === 0) header += ' ';
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const file = path.join(dir, 'odd.safetensors');
    await writeFile(file, Buffer.concat([prefix, Buffer.from(header), data, Buffer.from([0x80, 0x3f, 0x00, 0xc0])]));
    const f = await SafetensorsFile.open(file);
    try {
      expect(f.dataStart % 2).toBe(1);
      expect(f.mapReads()).toBe(f.fileSize);
      const x = await f.readF32('x');
      const y = await f.readBf16('y');
      expect(Array.from(x)).toEqual([1.5, -2, 3.25, 0.125]);
      expect(Array.from(y)).toEqual([0x3f80, 0xc000]);
      expect(x.buffer.byteLength).toBe(16);
      expect(y.buffer.byteLength).toBe(4);
    } finally {
      await f.close();
    }
  });

  it('maps nothing with RFID_MOE_MMAP=0', async () => {
    const file = path.join(dir, 'off.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [8, 8], data: values(64, 5) }]);
    process.env.RFID_MOE_MMAP = '0';
    const f = await SafetensorsFile.open(file);
    try {
      expect(f.mapReads()).toBe(0);
      expect((await f.readBf16('w')).buffer.byteLength).toBe(128);
      await f.populateMapped(); // nothing to do
      f.dropMapped();
    } finally {
      await f.close();
    }
  });

  it('populating brings the pages in, dropping hands them back, and a view read after the drop reads the file', async () => {
    const file = path.join(dir, 'big.safetensors');
    const count = 24 * 2 ** 20; // 48 MiB of BF16, as raw bytes
    const bytes = new Uint8Array(count * 2);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i >>> 12) & 0x7f;
    await writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [count / 1024, 1024], data: bytes }]);
    const copies = await SafetensorsFile.open(file);
    const reference = await copies.readBf16('w');
    await copies.close();
    const f = await SafetensorsFile.open(file);
    try {
      f.mapReads();
      const w = await f.readBf16('w');
      const before = rssFileBytes();
      await f.populateMapped();
      const populated = rssFileBytes();
      expect(populated - before).toBeGreaterThan(40 * 2 ** 20);
      f.dropMapped();
      const dropped = rssFileBytes();
      expect(populated - dropped).toBeGreaterThan(40 * 2 ** 20);
      expect(same(w, reference)).toBe(true); // read from the file again
    } finally {
      await f.close();
    }
  });

  it('a file cut short after it was mapped is a rejected populate, not a crash', async () => {
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [1024, 1024], data: values(2 ** 20, 7) }]);
    const f = await SafetensorsFile.open(file);
    try {
      expect(f.mapReads()).toBe(f.fileSize);
      await truncate(file, f.dataStart + 100);
      const err = await f.populateMapped().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(SafetensorsError);
      expect((err as Error).message).toMatch(/cut short/);
      expect((err as Error).message).toContain(file);
    } finally {
      await f.close();
    }
  });

  it('refuses to populate or drop memory that is not a mapped file', () => {
    const mapper = fileMapper();
    expect(mapper).not.toBe(null);
    const heap = new Uint8Array(3 * 4096).fill(9);
    expect(() => mapper!.drop(heap)).toThrow(/not view a file mapped/);
    expect(() => mapper!.populate(heap)).toThrow(/not view a file mapped/);
    expect(heap.every((v) => v === 9)).toBe(true);
  });
});
