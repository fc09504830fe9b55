/**
 * Seeded mutation fuzzing of valid files: every mutant must either be rejected with a
 * SafetensorsError or parse to a self-consistent layout whose tensors all read back with the
 * right element count — never another exception, a hang, or a read outside the buffer / file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DTYPE_BITS, decodeToF32, encodeFromF32 } from './dtype.js';
import { SafetensorsError } from './errors.js';
import { SafetensorsFile, parseSafetensorsBuffer, type ParsedSafetensors } from './safetensors-reader.js';
import { serializeSafetensorsHeader, type TensorPlan } from './safetensors-writer.js';

const CASES = 8000;
const FILE_BACKED_EVERY = 16; // 500 of them also go through the file reader
const MAX_CASE_MS = 250;

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

function canonicalFile(plan: TensorPlan[], metadata: Array<[string, string]> | null, fill: (p: TensorPlan, bytes: number) => Uint8Array): Uint8Array {
  const layout = serializeSafetensorsHeader(plan, metadata);
  const out = new Uint8Array(layout.fileSize);
  out.set(layout.bytes);
  for (const e of layout.entries.values()) out.set(fill(plan.find((p) => p.name === e.name)!, e.byteLength), layout.dataStart + e.dataOffsets[0]);
  return out;
}

/** An old-style file: unpadded header, name order, unaligned data. */
function oldStyleFile(): Uint8Array {
  const header = '{"__metadata__":{"test":"a"},"b":{"dtype":"I8","shape":[3],"data_offsets":[0,3]},"e":{"dtype":"F16","shape":[2],"data_offsets":[3,7]},"q":{"dtype":"I64","shape":[1],"data_offsets":[7,15]}}';
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + 15);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set([0xfd, 0xfe, 0xff, 0x00, 0x3c, 0x00, 0xc0, 5, 0, 0, 0, 0, 0, 0, 0x80], 8 + h.length);
  return out;
}

function seedFiles(): Uint8Array[] {
  const rand = prng(7);
  const fill = (p: TensorPlan, bytes: number) =>
    p.dtype === 'F32' || p.dtype === 'F16' || p.dtype === 'BF16'
      ? encodeFromF32(p.dtype, Float32Array.from({ length: bytes / (DTYPE_BITS[p.dtype] / 8) }, () => rand() * 4 - 2))
      : Uint8Array.from({ length: bytes }, () => Math.floor(rand() * 256));
  return [
    canonicalFile(
      [
        { name: 'w', dtype: 'BF16', shape: [3, 4] },
        { name: 'b', dtype: 'F32', shape: [4] },
        { name: 's', dtype: 'F16', shape: [] },
        { name: 'z', dtype: 'I32', shape: [2, 0] },
      ],
      [['format', 'pt']],
      fill,
    ),
    canonicalFile(
      [
        { name: 'e', dtype: 'F8_E4M3', shape: [5] },
        { name: 'q', dtype: 'F4', shape: [2, 3] },
        { name: 'i', dtype: 'I64', shape: [2] },
        { name: '__proto__', dtype: 'U8', shape: [1] },
      ],
      null,
      fill,
    ),
    canonicalFile([], [['k', 'v']], fill),
    oldStyleFile(),
  ];
}

type Mutation = (b: Uint8Array, r: () => number) => Uint8Array;
const INTERESTING = [...'{}[]",:0123456789-+.eE ntf\\u'].map((c) => c.charCodeAt(0)).concat([0x00, 0x09, 0x0a, 0x7f, 0x80, 0xbf, 0xc0, 0xed, 0xef, 0xff]);
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const headerEnd = (b: Uint8Array) => (b.length >= 8 ? Math.min(b.length, 8 + Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true) & 0xffffffn)) : b.length);
const at = (b: Uint8Array, r: () => number, headerBias: number) => (r() < headerBias ? 8 + Math.floor(r() * Math.max(1, headerEnd(b) - 8)) : Math.floor(r() * b.length));

const MUTATIONS: Record<string, Mutation> = {
  bitFlip: (b, r) => {
    const c = b.slice();
    if (c.length > 0) c[at(c, r, 0.7)] ^= 1 << Math.floor(r() * 8);
    return c;
  },
  headerByte: (b, r) => {
    const c = b.slice();
    if (c.length > 8) c[at(c, r, 1)] = pick(r, INTERESTING);
    return c;
  },
  digitEdit: (b, r) => {
    // Change a digit inside the header: shapes and offsets drift out of agreement.
    const c = b.slice();
    const digits: number[] = [];
    for (let i = 8; i < headerEnd(c); i++) if (c[i] >= 0x30 && c[i] <= 0x39) digits.push(i);
    if (digits.length > 0) c[pick(r, digits)] = 0x30 + Math.floor(r() * 10);
    return c;
  },
  insertOrDelete: (b, r) => {
    // Edit the header's length and keep N consistent, so the damage reaches the JSON checks.
    if (b.length <= 9) return b.slice();
    const i = at(b, r, 1);
    const insert = r() < 0.5;
    const c = insert ? new Uint8Array(b.length + 1) : new Uint8Array(b.length - 1);
    if (insert) {
      c.set(b.subarray(0, i));
      c[i] = pick(r, INTERESTING);
      c.set(b.subarray(i), i + 1);
    } else {
      c.set(b.subarray(0, i));
      c.set(b.subarray(i + 1), i);
    }
    const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    if (i < headerEnd(b)) new DataView(c.buffer).setBigUint64(0, insert ? n + 1n : n - 1n, true);
    return c;
  },
  truncate: (b, r) => b.slice(0, Math.floor(r() * b.length)),
  append: (b, r) => {
    const extra = Uint8Array.from({ length: 1 + Math.floor(r() * 16) }, () => Math.floor(r() * 256));
    const c = new Uint8Array(b.length + extra.length);
    c.set(b);
    c.set(extra, b.length);
    return c;
  },
  lengthField: (b, r) => {
    const c = b.slice();
    if (c.length < 8) return c;
    const view = new DataView(c.buffer);
    const n = view.getBigUint64(0, true);
    const choices = [n + 1n, n - 1n, n + 8n, 0n, 1n, 100_000_000n, 100_000_001n, 2n ** 63n, 2n ** 64n - 1n, BigInt(Math.floor(r() * c.length))];
    view.setBigUint64(0, BigInt.asUintN(64, pick(r, choices)), true);
    return c;
  },
  duplicateSpan: (b, r) => {
    // Copy a run of header bytes over another place in the header (duplicate keys, broken nesting).
    const c = b.slice();
    const end = headerEnd(c);
    if (end - 8 < 4) return c;
    const len = 1 + Math.floor(r() * 12);
    const from = 8 + Math.floor(r() * (end - 8 - 1));
    const to = 8 + Math.floor(r() * (end - 8 - 1));
    c.copyWithin(to, from, Math.min(from + len, end, to + (end - to)));
    return c;
  },
};

function checkConsistent(parsed: ParsedSafetensors, buffer: Uint8Array): void {
  let expected = 0;
  for (const e of parsed.tensors.values()) {
    expect(e.dataOffsets[0]).toBe(expected);
    expect(e.byteLength).toBe(e.dataOffsets[1] - e.dataOffsets[0]);
    expect(e.elementCount * DTYPE_BITS[e.dtype]).toBe(e.byteLength * 8);
    expect(e.shape.reduce((a, b) => a * b, 1)).toBe(e.elementCount);
    expected = e.dataOffsets[1];
    const bytes = buffer.subarray(parsed.dataStart + e.dataOffsets[0], parsed.dataStart + e.dataOffsets[1]);
    expect(bytes.length).toBe(e.byteLength);
    if (DTYPE_BITS[e.dtype] % 8 === 0 && e.dtype !== 'C64') expect(decodeToF32(e.dtype, bytes)).toHaveLength(e.elementCount);
  }
  expect(parsed.dataStart + expected).toBe(buffer.length);
}

type Outcome = { ok: true; names: string[] } | { ok: false; kind: string };

describe('fuzzing the reader with seeded mutations', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-fuzz-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`${CASES} mutants: only SafetensorsErrors or consistent tensors`, async () => {
    const seeds = seedFiles();
    for (const s of seeds) checkConsistent(parseSafetensorsBuffer(s), s); // the seeds themselves are valid
    const rand = prng(20250101);
    const names = Object.keys(MUTATIONS);
    const outcomes = new Map<string, number>();
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      const label = `case ${i}`;
      let mutant = pick(rand, seeds);
      const steps = 1 + Math.floor(rand() * 3);
      const applied: string[] = [];
      for (let k = 0; k < steps; k++) {
        const m = pick(rand, names);
        applied.push(m);
        mutant = MUTATIONS[m](mutant, rand);
      }
      const where = `${label} (${applied.join('+')})`;
      const started = performance.now();
      let outcome: Outcome;
      try {
        const parsed = parseSafetensorsBuffer(mutant, 'mutant.safetensors');
        checkConsistent(parsed, mutant);
        outcome = { ok: true, names: [...parsed.tensors.keys()] };
      } catch (err) {
        if (!(err instanceof SafetensorsError)) throw new Error(`${where}: unexpected ${String(err)}`, { cause: err });
        outcome = { ok: false, kind: err.variant };
      }
      slowest = Math.max(slowest, performance.now() - started);
      const key = outcome.ok ? 'accepted' : outcome.kind;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

      if (i % FILE_BACKED_EVERY === 0) {
        // The file reader must reach the same verdict, reading only inside the file.
        const file = path.join(dir, `m${i}.safetensors`);
        await writeFile(file, mutant);
        let fileOutcome: Outcome;
        try {
          const f = await SafetensorsFile.open(file);
          try {
            for (const name of f.tensorNames()) {
              const e = f.tensor(name)!;
              expect((await f.readBytes(name)).length).toBe(e.byteLength);
              if (DTYPE_BITS[e.dtype] % 8 === 0 && e.dtype !== 'C64') expect(await f.readF32(name)).toHaveLength(e.elementCount);
            }
            fileOutcome = { ok: true, names: f.tensorNames() };
          } finally {
            await f.close();
          }
        } catch (err) {
          if (!(err instanceof SafetensorsError)) throw new Error(`${where} (file): unexpected ${String(err)}`, { cause: err });
          fileOutcome = { ok: false, kind: err.variant };
        }
        expect(fileOutcome, where).toEqual(outcome);
        await rm(file);
      }
    }
    if (process.env.FUZZ_REPORT) console.log(JSON.stringify({ slowest, outcomes: Object.fromEntries(outcomes) }));
    expect(slowest).toBeLessThan(MAX_CASE_MS);
    // The fuzzer must actually reach deep checks, not just bounce off the first one.
    const seen = [...outcomes.keys()];
    for (const kind of ['accepted', 'InvalidHeaderDeserialization', 'InvalidHeaderLength', 'MetadataIncompleteBuffer', 'HeaderTooLarge', 'InvalidOffset', 'TensorInvalidInfo', 'InvalidHeader']) {
      expect(seen, JSON.stringify(Object.fromEntries(outcomes))).toContain(kind);
    }
    expect(outcomes.get('accepted')!).toBeGreaterThan(CASES / 50);
  });
});
