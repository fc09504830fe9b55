import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic.js';
import { SafetensorsError } from './errors.js';
import { SafetensorsFile, parseSafetensorsBuffer } from './safetensors-reader.js';
import { SafetensorsWriter, serializeSafetensorsHeader, writeSafetensors, type TensorPlan } from './safetensors-writer.js';

/** Seeded PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Round half to even on doubles (exact here: the argument is always a scaled f32). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/**
 * Arithmetic model of a binary float with `mantBits` stored bits, minimum normal exponent `eMin`
 * and overflow threshold `overflow` (the first power of two past the largest finite): round x to
 * a multiple of its ulp, ties to even. Shares nothing with the bit-level encoder.
 */
function quantize(x: number, mantBits: number, eMin: number, overflow: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const e = Math.max(Math.floor(Math.log2(Math.abs(x))), eMin);
  // log2 can be off by one right at powers of two; fix the binade exactly.
  const exp = 2 ** e > Math.abs(x) ? e - 1 : 2 ** (e + 1) <= Math.abs(x) ? e + 1 : e;
  const ulp = 2 ** (Math.max(exp, eMin) - mantBits);
  const q = roundHalfEven(x / ulp) * ulp;
  if (Math.abs(q) >= overflow) return Math.sign(x) * Infinity;
  return q === 0 ? (x < 0 ? -0 : 0) : q;
}
const referenceBF16 = (x: number) => quantize(x, 7, -126, 2 ** 128);
const referenceF16 = (x: number) => quantize(x, 10, -14, 65536);

function randomValues(rand: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.05) out[i] = [0, -0, Infinity, -Infinity, 65504, 65520, 2 ** -24, 2 ** -25, 3e38, 1e-40][Math.floor(rand() * 10)];
    else if (r < 0.15) out[i] = (rand() - 0.5) * 2 ** (Math.floor(rand() * 80) - 40);
    else out[i] = (rand() - 0.5) * 8;
  }
  return out;
}

function randomShape(rand: () => number): number[] {
  const rank = Math.floor(rand() * 5); // 0 → scalar
  return Array.from({ length: rank }, () => (rand() < 0.1 ? 0 : 1 + Math.floor(rand() * 7)));
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-writer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('round trip write → read', () => {
  it('is exact for F32 and matches the arithmetic rounding model for F16 / BF16, over random shapes', async () => {
    const rand = prng(1234);
    for (let trial = 0; trial < 12; trial++) {
      const tensors = Array.from({ length: 1 + Math.floor(rand() * 6) }, (_, i) => {
        const shape = randomShape(rand);
        const dtype = (['F32', 'F16', 'BF16'] as const)[Math.floor(rand() * 3)];
        return { name: `t${trial}.${i}`, dtype, shape, data: randomValues(rand, shape.reduce((a, b) => a * b, 1)) };
      });
      const file = path.join(dir, `rt${trial}.safetensors`);
      await writeSafetensors(file, tensors);
      const f = await SafetensorsFile.open(file);
      try {
        expect(f.dataStart % 8).toBe(0);
        for (const t of tensors) {
          expect(f.tensor(t.name)).toMatchObject({ dtype: t.dtype, shape: t.shape, elementCount: t.data.length });
          const back = await f.readF32(t.name);
          const model = t.dtype === 'F32' ? (x: number) => x : t.dtype === 'F16' ? referenceF16 : referenceBF16;
          expect(Array.from(back), `${t.name} ${t.dtype}[${t.shape}]`).toEqual(Array.from(t.data, model));
        }
      } finally {
        await f.close();
      }
    }
  });

  it('raw bytes for any byte-sized dtype come back unchanged', async () => {
    const rand = prng(99);
    const dtypes = ['U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'F64', 'F8_E4M3', 'F8_E5M2', 'BOOL', 'C64'] as const;
    const tensors = dtypes.map((dtype, i) => {
      const shape = [1 + i, 3];
      const width = { I16: 2, U16: 2, I32: 4, U32: 4, I64: 8, U64: 8, F64: 8, C64: 8 }[dtype as string] ?? 1;
      return { name: dtype.toLowerCase(), dtype, shape, data: Uint8Array.from({ length: shape[0] * 3 * width }, () => Math.floor(rand() * 256)) };
    });
    const file = path.join(dir, 'raw.safetensors');
    await writeSafetensors(file, tensors);
    const f = await SafetensorsFile.open(file);
    try {
      for (const t of tensors) expect(Buffer.compare(await f.readBytes(t.name), t.data), t.name).toBe(0);
    } finally {
      await f.close();
    }
  });
});

describe('canonical layout', () => {
  it('orders by descending dtype then UTF-8 name, metadata first, header padded with spaces to 8', () => {
    const plan: TensorPlan[] = [
      { name: 'b', dtype: 'F16', shape: [1] },
      { name: '\u{1F600}', dtype: 'F32', shape: [1] }, // UTF-16 sorts this before U+E000; UTF-8 after
      { name: '\uE000', dtype: 'F32', shape: [1] },
      { name: 'a', dtype: 'F32', shape: [1] },
      { name: 'z', dtype: 'I64', shape: [1] },
    ];
    const { bytes, entries, dataStart } = serializeSafetensorsHeader(plan, [['format', 'pt']]);
    expect([...entries.keys()]).toEqual(['z', 'a', '\uE000', '\u{1F600}', 'b']);
    expect([...entries.values()].map((e) => e.dataOffsets)).toEqual([
      [0, 8],
      [8, 12],
      [12, 16],
      [16, 20],
      [20, 22],
    ]);
    expect(dataStart % 8).toBe(0);
    const header = Buffer.from(bytes.subarray(8)).toString('utf8');
    expect(header.startsWith('{"__metadata__":{"format":"pt"},"z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},')).toBe(true);
    expect(header.trimEnd().endsWith('}')).toBe(true);
    expect(/^ *$/.test(header.slice(header.trimEnd().length))).toBe(true);
    expect(Number(new DataView(bytes.buffer).getBigUint64(0, true))).toBe(bytes.length - 8);
  });

  it('escapes names exactly as serde_json and round-trips them', async () => {
    const names = ['q"uote', 'back\\slash', 'tab\there', 'nl\n', '\u0001ctl', 'é', '\u2028', '__proto__'];
    const file = path.join(dir, 'names.safetensors');
    await writeSafetensors(
      file,
      names.map((name, i) => ({ name, dtype: 'F32', shape: [1], data: Float32Array.of(i) })),
    );
    const raw = await readFile(file);
    expect(raw.includes(Buffer.from('"\\u0001ctl"'))).toBe(true); // lowercase \u00XX, like serde_json
    expect(raw.includes(Buffer.from('"\u2028"'))).toBe(true); // not escaped, like serde_json
    const parsed = parseSafetensorsBuffer(new Uint8Array(raw));
    for (const [i, name] of names.entries()) {
      const e = parsed.tensors.get(name)!;
      expect(new Float32Array(raw.buffer.slice(raw.byteOffset + parsed.dataStart + e.dataOffsets[0], raw.byteOffset + parsed.dataStart + e.dataOffsets[1]))[0]).toBe(i);
    }
  });

  it('metadata: default {format: pt}; format added to a given object; exact or none on request', async () => {
    const one = [{ name: 'x', dtype: 'F32' as const, shape: [], data: Float32Array.of(1) }];
    const meta = async (m: Record<string, string> | null | undefined, exactMetadata = false) => {
      const file = path.join(dir, 'meta.safetensors');
      await writeSafetensors(file, one, m, { exactMetadata });
      const f = await SafetensorsFile.open(file);
      await f.close();
      return f.metadata === null ? null : { ...f.metadata };
    };
    expect(await meta(undefined)).toEqual({ format: 'pt' });
    expect(await meta({ source: 'rfid' })).toEqual({ format: 'pt', source: 'rfid' });
    expect(await meta({ format: 'np' })).toEqual({ format: 'np' });
    expect(await meta({ framework: 'pt' }, true)).toEqual({ framework: 'pt' });
    expect(await meta(null)).toBeNull();
  });
});

describe('streaming writer', () => {
  it('accepts tensors in any order, concurrently, and renames only on finish', async () => {
    const target = path.join(dir, 'stream.safetensors');
    await writeFile(target, 'old contents');
    const plan: TensorPlan[] = [
      { name: 'a', dtype: 'BF16', shape: [3, 2] },
      { name: 'b', dtype: 'F32', shape: [2] },
      { name: 'c', dtype: 'U8', shape: [0] },
    ];
    const w = await SafetensorsWriter.create(target, plan);
    await Promise.all([w.write('c', new Uint8Array(0)), w.write('b', Float32Array.of(1, 2)), w.write('a', Float32Array.of(1, 2, 3, 4, 5, 6))]);
    expect((await readFile(target)).toString()).toBe('old contents');
    await w.finish();
    const f = await SafetensorsFile.open(target);
    try {
      expect(Array.from(await f.readF32('a'))).toEqual([1, 2, 3, 4, 5, 6]);
      expect(Array.from(await f.readF32('b'))).toEqual([1, 2]);
    } finally {
      await f.close();
    }
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('reports misuse with clear kinds; finish with missing tensors keeps the writer usable', async () => {
    const target = path.join(dir, 'misuse.safetensors');
    const w = await SafetensorsWriter.create(target, [
      { name: 'a', dtype: 'F32', shape: [2] },
      { name: 'i', dtype: 'I32', shape: [1] },
    ]);
    await expect(w.write('a', Float32Array.of(1))).rejects.toMatchObject({ variant: 'InvalidTensorView', tensor: 'a' });
    await expect(w.write('a', new Uint8Array(7))).rejects.toMatchObject({ variant: 'InvalidTensorView' });
    await expect(w.write('i', Float32Array.of(1))).rejects.toMatchObject({ variant: 'UnsupportedDType', tensor: 'i' });
    await expect(w.write('zz', Float32Array.of(1))).rejects.toMatchObject({ variant: 'TensorNotFound' });
    await w.write('a', Float32Array.of(1, 2));
    await expect(w.write('a', Float32Array.of(1, 2))).rejects.toMatchObject({ variant: 'IncompleteWrite' });
    await expect(w.finish()).rejects.toMatchObject({ variant: 'IncompleteWrite', message: expect.stringContaining('"i"') });
    await w.write('i', new Uint8Array(Int32Array.of(-7).buffer));
    await w.finish();
    const f = await SafetensorsFile.open(target);
    expect(Array.from(await f.readF32('i'))).toEqual([-7]);
    await f.close();
  });

  it('abort leaves neither the target nor a temp file', async () => {
    const target = path.join(dir, 'aborted.safetensors');
    const w = await SafetensorsWriter.create(target, [{ name: 'a', dtype: 'F32', shape: [1] }]);
    await w.write('a', Float32Array.of(1));
    await w.abort();
    const left = await readdir(dir);
    expect(left.some((n) => n.includes('aborted'))).toBe(false);
  });

  it('rejects bad plans before touching the disk', () => {
    const bad: Array<[TensorPlan[], RegExp]> = [
      [[{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F16', shape: [1] }], /twice/],
      [[{ name: 'a', dtype: 'F32', shape: [-1] }], /non-negative/],
      [[{ name: 'a', dtype: 'F32', shape: [1.5] }], /non-negative/],
      [[{ name: 'a', dtype: 'F99' as 'F32', shape: [1] }], /unknown dtype/],
      [[{ name: '__metadata__', dtype: 'F32', shape: [1] }], /reserved/],
      [[{ name: 'bad\uD800', dtype: 'F32', shape: [1] }], /surrogate/],
      [[{ name: 'f4', dtype: 'F4', shape: [3] }], /whole number of bytes/],
    ];
    for (const [plan, message] of bad) {
      expect(() => serializeSafetensorsHeader(plan, null)).toThrow(message);
      expect(() => serializeSafetensorsHeader(plan, null)).toThrow(SafetensorsError);
    }
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole and leaves no temp file', async () => {
    const target = path.join(dir, 'atomic.json');
    await writeFileAtomic(target, 'first');
    await writeFileAtomic(target, new Uint8Array([0x73, 0x65, 0x63]));
    expect((await readFile(target)).toString()).toBe('sec');
    expect((await readdir(dir)).filter((n) => n.includes('atomic.json') && n !== 'atomic.json')).toEqual([]);
  });
});
