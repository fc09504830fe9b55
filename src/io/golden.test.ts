/**
 * Conformance with the upstream safetensors test vectors in the test data folder ($RFID_MOE_DATA): every manifest case
 * parses to its listed values or is rejected with its listed kind, the canonical cases are
 * reproduced byte for byte by the writer, and old-style and real-world files parse.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath } from '../../test/helpers/shared-data.js';
import { DTYPE_BITS, isDType, type DType } from './dtype.js';
import { SafetensorsError } from './errors.js';
import { SafetensorsFile, parseSafetensorsBuffer } from './safetensors-reader.js';
import { writeSafetensors } from './safetensors-writer.js';
import realworldGolden from './testdata/realworld-golden.json' with { type: 'json' };

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  values?: number[];
  byte_len?: number;
}
interface ManifestCase {
  file: string;
  bytes: number;
  note: string;
  expect: { ok: true; tensors?: Record<string, ExpectedTensor>; metadata?: Record<string, string> } | { ok: false; error: string };
}

/**
 * Cases whose bytes are the canonical writer output (current Python/Rust `save`). The others are
 * hand-built reader inputs: unpadded headers (N = 60, 102), "[0, 0]" with a space, whitespace
 * padding, so no canonical writer produces them.
 */
const WRITER_CASES = [
  'ok_rust_serialization_f32_1x2x3.safetensors',
  'ok_rust_forced_alignment_f32_1x1x2x3.safetensors',
  'ok_rust_empty.safetensors',
  'ok_rust_empty_with_metadata.safetensors',
  'ok_rust_fp4.safetensors',
  'ok_python_serialization_i32_2x2.safetensors',
  'ok_python_metadata_i32.safetensors',
  'ok_python_alignment_order_i32_f16.safetensors',
  'ok_scalar_shape_empty.safetensors',
];

/** The raw little-endian bytes of `values` in `dtype`, built independently of the writer's encoder. */
function rawBytes(dtype: DType, shape: number[], values: number[] | undefined, byteLen: number | undefined): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  // The golden files hold zeros where no values are listed.
  if (values === undefined) return new Uint8Array(byteLen ?? (count * DTYPE_BITS[dtype]) / 8);
  const buffer = Buffer.alloc(count * 4);
  values.forEach((v, i) => (dtype === 'F32' ? buffer.writeFloatLE(v, i * 4) : buffer.writeInt32LE(v, i * 4)));
  if (dtype !== 'F32' && dtype !== 'I32') throw new Error(`test has no encoder for ${dtype}`);
  return new Uint8Array(buffer);
}

describe.skipIf(!hasSharedData)('safetensors golden manifest', async () => {
  const dir = sharedPath('safetensors-golden');
  const manifest = hasSharedData ? (JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { cases: ManifestCase[] }) : { cases: [] };
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rfid-golden-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('has the 25 cases of the manifest', () => {
    expect(manifest.cases).toHaveLength(25);
    expect(manifest.cases.filter((c) => c.expect.ok)).toHaveLength(14);
  });

  for (const c of manifest.cases) {
    it(`${c.file}: ${c.expect.ok ? 'parses' : `rejects with ${c.expect.error}`}`, async () => {
      const bytes = new Uint8Array(await readFile(path.join(dir, c.file)));
      expect(bytes.length).toBe(c.bytes);
      if (!c.expect.ok) {
        const kind = c.expect.error.split(' ')[0]; // "InvalidHeader (utf8)" → InvalidHeader
        const attempts: Array<() => unknown> = [() => parseSafetensorsBuffer(bytes, c.file), () => SafetensorsFile.open(path.join(dir, c.file))];
        for (const attempt of attempts) {
          const err = await Promise.resolve().then(attempt).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(SafetensorsError);
          expect((err as SafetensorsError).variant).toBe(kind);
          expect((err as SafetensorsError).message).toContain(c.file);
        }
        return;
      }
      const file = await SafetensorsFile.open(path.join(dir, c.file));
      try {
        const expected = c.expect.tensors ?? {};
        if (c.expect.tensors !== undefined) expect(file.tensorNames().sort()).toEqual(Object.keys(expected).sort());
        if (c.expect.metadata !== undefined) expect({ ...file.metadata }).toEqual(c.expect.metadata);
        for (const [name, t] of Object.entries(expected)) {
          const entry = file.tensor(name)!;
          expect(entry.dtype).toBe(t.dtype);
          expect(entry.shape).toEqual(t.shape);
          if (t.byte_len !== undefined) expect(entry.byteLength).toBe(t.byte_len);
          if (t.values !== undefined) expect(Array.from(await file.readF32(name))).toEqual(t.values);
        }
      } finally {
        await file.close();
      }
    });
  }

  for (const name of WRITER_CASES) {
    it(`writer reproduces ${name} byte for byte`, async () => {
      const c = manifest.cases.find((x) => x.file === name)!;
      if (!c.expect.ok) throw new Error('writer cases must be ok cases');
      const tensors = Object.entries(c.expect.tensors ?? {}).map(([tname, t]) => {
        if (!isDType(t.dtype)) throw new Error(t.dtype);
        return { name: tname, dtype: t.dtype, shape: t.shape, data: rawBytes(t.dtype, t.shape, t.values, t.byte_len) };
      });
      // Insertion order reversed: the writer, not the caller, must put things in canonical order.
      tensors.reverse();
      const out = path.join(tmp, name);
      await writeSafetensors(out, tensors, c.expect.metadata ?? null, { exactMetadata: true });
      expect(Buffer.compare(await readFile(out), await readFile(path.join(dir, name)))).toBe(0);
    });
  }

  it('f32 values go through the encoder to the same bytes as the golden F32 case', async () => {
    const out = path.join(tmp, 'f32-encoded.safetensors');
    await writeSafetensors(out, [{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: Float32Array.of(0, 1, 2, 3, 4, 5) }], null);
    expect(Buffer.compare(await readFile(out), await readFile(path.join(dir, 'ok_rust_serialization_f32_1x2x3.safetensors')))).toBe(0);
  });
});

describe.skipIf(!hasSharedData)('old-style upstream samples (unaligned, name-ordered)', () => {
  const dir = sharedPath('safetensors-samples-upstream');
  const expectedDtype: Record<string, DType> = { B: 'U8', H: 'U16', I: 'U32', b: 'I8', d: 'F64', e: 'F16', f: 'F32', h: 'I16', i: 'I32' };
  // generate.py stores [-3..2]; unsigned types hold the two's-complement wrap of the negatives.
  const expectedValues = (dtype: DType): number[] => {
    const wrap = { U8: 2 ** 8, U16: 2 ** 16, U32: 2 ** 32 } as Partial<Record<DType, number>>;
    return [-3, -2, -1, 0, 1, 2].map((v) => (v < 0 && wrap[dtype] !== undefined ? v + wrap[dtype]! : v)).map(Math.fround);
  };

  it('every single-dtype file parses to [-3..2] with metadata {test: "a"}', async () => {
    for (const [name, dtype] of Object.entries(expectedDtype)) {
      const file = await SafetensorsFile.open(path.join(dir, `${name}.safetensors`));
      try {
        expect(file.dataStart % 8).not.toBe(0); // really unaligned
        expect({ ...file.metadata }).toEqual({ test: 'a' });
        expect(file.tensor(name)).toMatchObject({ dtype, shape: [6] });
        expect(Array.from(await file.readF32(name))).toEqual(expectedValues(dtype));
      } finally {
        await file.close();
      }
    }
  });

  it('overall.safetensors holds all nine at odd offsets, each decoded correctly', async () => {
    const file = await SafetensorsFile.open(path.join(dir, 'overall.safetensors'));
    try {
      expect(file.tensorNames()).toEqual(['B', 'H', 'I', 'b', 'd', 'e', 'f', 'h', 'i']);
      for (const [name, dtype] of Object.entries(expectedDtype)) {
        expect(Array.from(await file.readF32(name))).toEqual(expectedValues(dtype));
        expect(Array.from(await file.readRowsF32(name, 0, 1))).toEqual(expectedValues(dtype));
      }
    } finally {
      await file.close();
    }
  });

  it('the folder holds no file this test forgot', async () => {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors'));
    expect(files.sort()).toEqual([...Object.keys(expectedDtype).map((n) => `${n}.safetensors`), 'overall.safetensors'].sort());
  });
});

describe.skipIf(!hasSharedData)('real-world files written by PyTorch (numpy-read golden values)', () => {
  const golden = realworldGolden as Record<string, Record<string, { dtype: string; shape: number[]; sum: number; first: number[]; last: number[]; row1_first: number[] | null }>>;
  for (const [fileName, tensors] of Object.entries(golden)) {
    it(`${fileName}`, async () => {
      const file = await SafetensorsFile.open(sharedPath('safetensors-realworld', fileName));
      try {
        expect(file.tensorNames().sort()).toEqual(Object.keys(tensors).sort());
        for (const [name, t] of Object.entries(tensors)) {
          const entry = file.tensor(name)!;
          expect(entry.dtype).toBe(t.dtype);
          expect(entry.shape).toEqual(t.shape);
          const values = await file.readF32(name);
          expect(Array.from(values.subarray(0, 5))).toEqual(t.first.map(Math.fround));
          expect(Array.from(values.subarray(values.length - 5))).toEqual(t.last.map(Math.fround));
          let sum = 0;
          for (const v of values) sum += v;
          if (t.dtype === 'F32') expect(sum).toBeCloseTo(t.sum, 3);
          else expect(sum).toBe(t.sum);
          if (t.row1_first !== null) expect(Array.from((await file.readRowsF32(name, 1, 2)).subarray(0, 5))).toEqual(t.row1_first.map(Math.fround));
        }
      } finally {
        await file.close();
      }
    });
  }
});
