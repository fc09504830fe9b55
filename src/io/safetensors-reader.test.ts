import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError, type SafetensorsErrorKind } from './errors.js';
import { SafetensorsFile, parseSafetensorsBuffer, parseSafetensorsHeader } from './safetensors-reader.js';

/** A file from a literal header (unpadded unless the text pads it) and data bytes. */
function build(header: string | Uint8Array, data: Uint8Array | number = 0, declaredLength?: bigint): Uint8Array {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + body.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}
const info = (dtype: string, shape: Array<number | string>, begin: number | string, end: number | string, extra = '') =>
  `{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${begin},${end}]${extra}}`;
const f32Bytes = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

function rejection(buffer: Uint8Array): SafetensorsError {
  try {
    parseSafetensorsBuffer(buffer, 'case.safetensors');
  } catch (err) {
    if (err instanceof SafetensorsError) return err;
    throw new Error(`not a SafetensorsError: ${String(err)}`);
  }
  throw new Error('accepted, but should have been rejected');
}
const expectKind = (buffer: Uint8Array, kind: SafetensorsErrorKind, tensor?: string) => {
  const err = rejection(buffer);
  expect(err.variant, err.message).toBe(kind);
  expect(err.message).toContain('case.safetensors');
  if (tensor !== undefined) {
    expect(err.tensor).toBe(tensor);
    expect(err.message).toContain(JSON.stringify(tensor));
  }
  return err;
};

describe('length field', () => {
  it('HeaderTooSmall below 8 bytes', () => {
    expectKind(new Uint8Array(7), 'HeaderTooSmall');
  });
  it('HeaderTooLarge above 100,000,000 (and for N near 2^64, without precision loss)', () => {
    expectKind(build('{}', 0, 100_000_001n), 'HeaderTooLarge');
    expectKind(build('{}', 0, 2n ** 64n - 1n), 'HeaderTooLarge');
  });
  it('InvalidHeaderLength when N runs past the end', () => {
    expectKind(build('{}', 0, 100_000_000n), 'InvalidHeaderLength');
    expectKind(build('{}', 0, 3n), 'InvalidHeaderLength');
  });
});

describe('header text', () => {
  it('InvalidHeader for bytes that are not UTF-8', () => {
    expectKind(build(Uint8Array.of(0x7b, 0xc0, 0xaf, 0x7d)), 'InvalidHeader'); // overlong '/'
    expectKind(build(Uint8Array.of(0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d)), 'InvalidHeader'); // encoded surrogate
  });
  it('InvalidHeaderDeserialization for anything serde_json would refuse', () => {
    for (const header of [
      '{',
      '{}x',
      '[]',
      '"x"',
      '\uFEFF{}', // a BOM is not JSON whitespace
      '{"a":' + info('F32', [1], 0, 4) + ',"a":' + info('F32', [1], 4, 8) + '}', // duplicate tensor
      '{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', // duplicate field
      '{"a":' + info('F33', [1], 0, 4) + '}',
      '{"a":' + info('f32', [1], 0, 4) + '}',
      '{"a":{"dtype":1,"shape":[1],"data_offsets":[0,4]}}',
      '{"a":{"shape":[1],"data_offsets":[0,4]}}',
      '{"a":{"dtype":"F32","data_offsets":[0,4]}}',
      '{"a":{"dtype":"F32","shape":[1]}}',
      '{"a":' + info('F32', [-1], 0, 4) + '}',
      '{"a":' + info('F32', ['1.0'], 0, 4) + '}',
      '{"a":' + info('F32', ['1e0'], 0, 4) + '}',
      '{"a":' + info('F32', ['01'], 0, 4) + '}',
      '{"a":' + info('F32', ['18446744073709551616'], 0, 4) + '}', // 2^64: not a u64
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}',
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}',
      '{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}',
      '{"a":[1,2]}',
      '{"__metadata__":{"k":1}}',
      '{"__metadata__":{"k":null}}',
      '{"__metadata__":["x"]}',
      '{"__metadata__":{"k":"a","k":"b"}}',
      '{"\\ud800":' + info('F32', [1], 0, 4) + '}', // lone surrogate escape
      '{"a\tb":' + info('F32', [1], 0, 4) + '}', // raw control character in a string
      '{"a":' + info('F32', [1], 0, 4, ',"x":' + '['.repeat(200) + ']'.repeat(200)) + '}', // nesting bomb
      "{'a':1}",
      '{"a":tru}',
    ]) {
      const data = header.includes('data_offsets') ? 4 : 0;
      expect(rejection(build(header, data)).variant, header).toBe('InvalidHeaderDeserialization');
    }
  });
  it('accepts JSON whitespace around the object, escapes in names, and ignores unknown fields', () => {
    const header = ' \t\n{"a\\"b\\u00e9":' + info('F32', [1], 0, 4, ',"extra":{"deep":[1,2,{"x":null}]}') + ',"__metadata__":null}\r\n ';
    const parsed = parseSafetensorsBuffer(build(header, f32Bytes(7)));
    expect([...parsed.tensors.keys()]).toEqual(['a"bé']);
    expect(parsed.metadata).toBeNull();
  });
});

describe('layout validation', () => {
  it('InvalidOffset for a hole, an overlap or a reversed span, naming the tensor', () => {
    expectKind(build('{"a":' + info('F32', [1], 4, 8) + '}', 8), 'InvalidOffset', 'a');
    expectKind(build('{"a":' + info('F32', [2], 0, 8) + ',"b":' + info('F32', [1], 4, 8) + '}', 8), 'InvalidOffset', 'b');
    expectKind(build('{"a":' + info('U8', [0], 4, 0) + '}', 4), 'InvalidOffset', 'a');
  });
  it('compares offsets above 2^53 exactly (2^53 + 1 ≠ 2^53)', () => {
    const a = '9007199254740993';
    const header = `{"a":${info('U8', [a], 0, a)},"b":${info('U8', [1], '9007199254740992', '9007199254740993')}}`;
    expectKind(build(header, 0), 'InvalidOffset', 'b');
    // Consistent but enormous offsets fail only because the file is too small.
    expectKind(build(`{"a":${info('U8', [a], 0, a)}}`, 0), 'MetadataIncompleteBuffer');
  });
  it('ValidationOverflow when shape × bits passes 2^64, checked as upstream does (left to right)', () => {
    expectKind(build('{"a":' + info('I32', [2, '18446744073709551614'], 0, 16) + '}', 16), 'ValidationOverflow', 'a');
    expectKind(build('{"a":' + info('I32', [2, '9223372036854775807'], 0, 16) + '}', 16), 'ValidationOverflow', 'a');
    expectKind(build('{"a":' + info('U8', ['4294967296', '4294967296', 0], 0, 0) + '}'), 'ValidationOverflow', 'a');
  });
  it('a dimension JavaScript cannot hold is refused even beside a zero (a documented limit)', () => {
    const err = expectKind(build('{"a":' + info('U8', [0, '9007199254740993'], 0, 0) + '}'), 'ValidationOverflow', 'a');
    expect(err.message).toMatch(/2\^53/);
    // …while a big-but-safe dimension beside a zero is an ordinary empty tensor.
    expect(parseSafetensorsBuffer(build('{"a":' + info('U8', [0, 2 ** 52], 0, 0) + '}')).tensors.get('a')!.elementCount).toBe(0);
  });
  it('MisalignedSlice for sub-byte tensors that end mid-byte', () => {
    expectKind(build('{"a":' + info('F4', [3], 0, 1) + '}', 1), 'MisalignedSlice', 'a');
    expectKind(build('{"a":' + info('F6_E2M3', [2], 0, 1) + '}', 1), 'MisalignedSlice', 'a');
    expect(parseSafetensorsBuffer(build('{"a":' + info('F6_E3M2', [4], 0, 3) + '}', 3)).tensors.get('a')!.byteLength).toBe(3);
  });
  it('TensorInvalidInfo when the span does not match the size', () => {
    expectKind(build('{"a":' + info('F32', [2], 0, 4) + '}', 4), 'TensorInvalidInfo', 'a');
  });
  it('MetadataIncompleteBuffer for missing or trailing data bytes', () => {
    expectKind(build('{"a":' + info('F32', [2], 0, 8) + '}', 7), 'MetadataIncompleteBuffer');
    expectKind(build('{"a":' + info('F32', [2], 0, 8) + '}', 9), 'MetadataIncompleteBuffer');
    expectKind(build('{}', 1), 'MetadataIncompleteBuffer');
  });
  it('accepts zero-sized tensors anywhere, scalars, and any header order', () => {
    const header = `{"z":${info('F32', [4, 0], 8, 8)},"b":${info('F32', [], 4, 8)},"e":${info('I32', [0], 0, 0)},"a":${info('F32', [1], 0, 4)}}`;
    const parsed = parseSafetensorsBuffer(build(header, f32Bytes(1, 2)));
    expect([...parsed.tensors.values()].map((t) => [t.name, t.elementCount, t.byteLength])).toEqual([
      ['e', 0, 0],
      ['a', 1, 4],
      ['b', 1, 4],
      ['z', 0, 0],
    ]);
  });
});

describe('untrusted names', () => {
  it('treats __proto__, constructor and friends as ordinary names and metadata keys', () => {
    const names = ['__proto__', 'constructor', 'hasOwnProperty', 'toString'];
    const tensors = names.map((n, i) => `"${n}":${info('F32', [1], i * 4, i * 4 + 4)}`).join(',');
    const header = `{"__metadata__":{"__proto__":"p","constructor":"c"},${tensors}}`;
    const parsed = parseSafetensorsBuffer(build(header, f32Bytes(0, 1, 2, 3)));
    expect([...parsed.tensors.keys()]).toEqual(names);
    const metadata = parsed.metadata!;
    expect(Object.getPrototypeOf(metadata)).toBeNull();
    expect(Object.keys(metadata)).toEqual(['__proto__', 'constructor']);
    expect(metadata['__proto__']).toBe('p');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  it('a tensor may not be named by prototype lookup', () => {
    expect(parseSafetensorsHeader(new TextEncoder().encode('{}'), 10, 'x').tensors.get('toString')).toBeUndefined();
  });
});

describe('SafetensorsFile (positioned reads)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-reader-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // An unaligned header (N = 61 → data at byte 69) so F32 rows sit at odd file offsets.
  async function unalignedFile(): Promise<string> {
    const values = Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
    let header = `{"m":${info('F32', [2, 3, 4], 0, 96)},"s":${info('F32', [], 96, 100)},"v":${info('I16', [3], 100, 106)}}`;
    header += ' '.repeat(61 - (header.length % 61));
    const i16 = new Uint8Array(Int16Array.of(-1, 2, -3).buffer);
    const data = new Uint8Array(106);
    data.set(f32Bytes(...values), 0);
    data.set(f32Bytes(42), 96);
    data.set(i16, 100);
    const file = path.join(dir, 'unaligned.safetensors');
    await writeFile(file, build(header, data));
    return file;
  }

  it('reads whole tensors and row ranges of the 2-D view at unaligned offsets', async () => {
    const f = await SafetensorsFile.open(await unalignedFile());
    try {
      expect(f.dataStart % 4).not.toBe(0);
      const all = Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
      expect(Array.from(await f.readF32('m'))).toEqual(all);
      // shape [2,3,4] → 6 rows of 4
      expect(Array.from(await f.readRowsF32('m', 1, 3))).toEqual(all.slice(4, 12));
      expect(Array.from(await f.readRowsF32('m', 5, 6))).toEqual(all.slice(20, 24));
      expect(await f.readRowsF32('m', 2, 2)).toHaveLength(0);
      expect(Array.from(await f.readRowsF32('s', 0, 1))).toEqual([42]);
      expect(Array.from(await f.readRowsF32('v', 0, 1))).toEqual([-1, 2, -3]);
      expect(Array.from(await f.readBytes('v'))).toEqual(Array.from(new Uint8Array(Int16Array.of(-1, 2, -3).buffer)));
      expect(f.tensor('m')).toEqual({ name: 'm', dtype: 'F32', shape: [2, 3, 4], dataOffsets: [0, 96], byteLength: 96, elementCount: 24 });
    } finally {
      await f.close();
    }
  });

  it('bounds-checks row ranges and names the tensor', async () => {
    const f = await SafetensorsFile.open(await unalignedFile());
    try {
      for (const [s, e] of [
        [-1, 1],
        [0, 7],
        [3, 2],
        [0.5, 1],
        [0, NaN],
      ]) {
        await expect(f.readRowsF32('m', s, e)).rejects.toMatchObject({ variant: 'SliceOutOfRange', tensor: 'm' });
      }
      await expect(f.readF32('nope')).rejects.toMatchObject({ variant: 'TensorNotFound', tensor: 'nope' });
    } finally {
      await f.close();
    }
    await expect(f.readBytes('m')).rejects.toMatchObject({ variant: 'IoError' });
  });

  it('never reads past the end: a file truncated after open fails cleanly', async () => {
    const file = await unalignedFile();
    const f = await SafetensorsFile.open(file);
    try {
      await truncate(file, 80);
      await expect(f.readF32('m')).rejects.toMatchObject({ variant: 'IoError', tensor: 'm' });
    } finally {
      await f.close();
    }
  });

  it('open() reports missing files and directories clearly', async () => {
    await expect(SafetensorsFile.open(path.join(dir, 'missing.safetensors'))).rejects.toMatchObject({ variant: 'ShardNotFound', message: expect.stringContaining('missing.safetensors') });
    await expect(SafetensorsFile.open(dir)).rejects.toBeInstanceOf(SafetensorsError);
  });

  it('rejects F4 row reads and decodes with UnsupportedDType but still serves raw bytes', async () => {
    const file = path.join(dir, 'f4.safetensors');
    await writeFile(file, build('{"q":' + info('F4', [2, 2], 0, 2) + '}', Uint8Array.of(0x12, 0x34)));
    const f = await SafetensorsFile.open(file);
    try {
      expect(Array.from(await f.readBytes('q'))).toEqual([0x12, 0x34]);
      await expect(f.readF32('q')).rejects.toMatchObject({ variant: 'UnsupportedDType', tensor: 'q', file });
      await expect(f.readRowsF32('q', 0, 1)).rejects.toMatchObject({ variant: 'UnsupportedDType' });
    } finally {
      await f.close();
    }
  });

  describe('BF16 and F16 read straight into the f32 result and widened in place', () => {
    /** Every 16-bit pattern class: ± zero, subnormals, normals, ± Inf, NaNs, and pseudo-random bits. */
    function patterns(count: number, seed: number): Uint16Array {
      const special = [0x0000, 0x8000, 0x0001, 0x807f, 0x3f80, 0xbf80, 0x7f80, 0xff80, 0x7fc0, 0xffff, 0x7c00, 0xfc00, 0x7e00, 0x03ff, 0x3c00];
      let x = seed;
      return Uint16Array.from({ length: count }, (_, i) => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return i < special.length ? special[i] : x >>> 16;
      });
    }

    /** The f32 of a 16-bit pattern, written independently of the reader: BF16 by bits, F16 by formula. */
    function reference(dtype: 'BF16' | 'F16', h: number): number {
      if (dtype === 'BF16') {
        const view = new DataView(new ArrayBuffer(4));
        view.setUint32(0, h << 16);
        return view.getFloat32(0);
      }
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      if (exp === 0) return sign * frac * 2 ** -24;
      if (exp === 31) return frac === 0 ? sign * Infinity : Number.NaN;
      return sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }

    // 1 and 7 columns give odd element counts and odd row offsets (the halves at a 2-byte, not
    // 4-byte, boundary of the result); the header padding puts the data at an unaligned file offset.
    it.each([
      ['BF16', [37, 7]], ['BF16', [16, 16]], ['BF16', [5, 1]], ['BF16', [1]],
      ['F16', [37, 7]], ['F16', [16, 16]], ['F16', [5, 1]],
    ] as const)('%s %j: readF32 and readRowsF32 give each value exactly', async (dtype, shape) => {
      const count = (shape as readonly number[]).reduce((a, b) => a * b, 1);
      const bits = patterns(count, count * 7 + dtype.length);
      let header = `{"t":${info(dtype, [...shape], 0, count * 2)}}`;
      header += ' '.repeat(3 - (header.length % 3));
      const file = path.join(dir, `${dtype}-${shape.join('x')}.safetensors`);
      await writeFile(file, build(header, new Uint8Array(bits.buffer)));
      const f = await SafetensorsFile.open(file);
      try {
        const want = Array.from(bits, (h) => reference(dtype, h));
        const same = (got: Float32Array, from: number) => {
          got.forEach((v, i) => {
            const w = want[from + i];
            if (Number.isNaN(w)) expect(v).toBeNaN();
            else expect(Object.is(v, Math.fround(w)), `element ${from + i}: ${v} against ${w}`).toBe(true);
          });
        };
        const whole = await f.readF32('t');
        expect(whole).toHaveLength(count);
        same(whole, 0);
        const cols = shape.length === 1 ? 1 : shape[shape.length - 1];
        const rows = count / cols;
        for (const [s, e] of [[0, rows], [1, rows], [Math.floor(rows / 2), rows - 1]]) {
          const got = await f.readRowsF32('t', s, e);
          expect(got).toHaveLength((e - s) * cols);
          same(got, s * cols);
          if (dtype === 'BF16') {
            // the stored bit patterns as they are (weights kept BF16 in memory)
            expect(await f.readRowsBf16('t', s, e)).toEqual(bits.subarray(s * cols, e * cols));
          } else {
            await expect(f.readRowsBf16('t', s, e)).rejects.toMatchObject({ variant: 'UnsupportedDType', tensor: 't' });
          }
        }
        if (dtype === 'BF16') {
          await expect(f.readRowsBf16('t', 0, rows + 1)).rejects.toMatchObject({ variant: 'SliceOutOfRange' });
          await expect(f.readRowsBf16('t', 2, 1)).rejects.toMatchObject({ variant: 'SliceOutOfRange' });
        }
      } finally {
        await f.close();
      }
    });
  });
});
