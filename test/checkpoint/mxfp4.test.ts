/**
 * MXFP4 experts (gpt-oss) read through Mxfp4Store (src/checkpoint/mxfp4.ts): hand-built blocks
 * whose values are worked out by hand (the nibble order, the scales at the edges of the exponent
 * range, the transpose), random ones against the format's definition written out element by
 * element here, row reads (one expert's slab, across experts, within a group, across read chunks)
 * against whole reads, the pairs hidden, an opened checkpoint's experts (and inspect), and every malformed pair
 * refused naming the tensor. Agreement with transformers' own dequantisation on the same files:
 * test/hf/mxfp4-transformers.test.ts.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCheckpoint } from '../../src/checkpoint/describe.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { formatCheckpoint } from '../../src/cli/commands/inspect.js';
import { mxfp4Quantization } from '../../src/checkpoint/mxfp4.js';
import { openCheckpoint, openTensorSource } from '../../src/checkpoint/open.js';
import { encodeFromF32, roundToBf16, type DType } from '../../src/io/dtype.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';
import { residentWeightBytes } from '../../src/runtime/resident-weights.js';
import type { TensorSource } from '../../src/io/sharded.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { Rng } from '../helpers/rng.js';
import { editConfig, openError, rewriteModelFile, type RawTensor } from './rewrite.js';
import { makeScratch } from './tmp-dirs.js';

let scratch: Awaited<ReturnType<typeof makeScratch>>;
let counter = 0;
beforeAll(async () => {
  scratch = await makeScratch('mxfp4');
});
afterAll(async () => {
  await scratch.cleanup();
});

const QUANTIZATION = { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'lm_head'] };
/** FP4 E2M1, written out from the OCP MX spec's table */
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** A directory with config.json declaring MXFP4 and one safetensors file of `tensors`. */
async function writeDir(tensors: RawTensor[], quantization: unknown = QUANTIZATION): Promise<string> {
  const dir = scratch.sub(`dir-${counter++}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'test', quantization_config: quantization }));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

const bf16 = (name: string, shape: number[], values: number[]): RawTensor => ({ name, dtype: 'BF16', shape, data: encodeFromF32('BF16', Float32Array.from(values)) });

interface Packed {
  blocks: Uint8Array;
  scales: Uint8Array;
  /** [E, R, G] */
  dims: [number, number, number];
}

function randomPacked(rng: Rng, E: number, R: number, G: number): Packed {
  return {
    blocks: Uint8Array.from({ length: E * R * G * 16 }, () => Math.floor(rng.next() * 256)),
    scales: Uint8Array.from({ length: E * R * G }, () => 110 + Math.floor(rng.next() * 26)),
    dims: [E, R, G],
  };
}

const pair = (name: string, p: Packed): RawTensor[] => [
  { name: `${name}_blocks`, dtype: 'U8', shape: [...p.dims, 16], data: p.blocks },
  { name: `${name}_scales`, dtype: 'U8', shape: [...p.dims], data: p.scales },
];

/**
 * The definition, element by element: presented [e, c, r] is the code of stored [e, r, c] (byte
 * ⌊c / 2⌋ of its row, the low nibble for even c) times 2^(its group's scale − 127), in f32,
 * rounded to BF16 (bit patterns).
 */
function reference(p: Packed): Uint16Array {
  const [E, R, G] = p.dims;
  const C = G * 32;
  const values = new Float32Array(E * C * R);
  for (let e = 0; e < E; e++)
    for (let c = 0; c < C; c++)
      for (let r = 0; r < R; r++) {
        const byte = p.blocks[(e * R + r) * G * 16 + (c >> 1)];
        const code = c % 2 === 0 ? byte & 0x0f : byte >> 4;
        const scale = p.scales[(e * R + r) * G + Math.floor(c / 32)];
        values[(e * C + c) * R + r] = E2M1[code] * Math.pow(2, scale - 127);
      }
  return roundToBf16(values);
}

/** index of the first difference of two bit-pattern arrays, -1 if equal (and equally long) */
function firstDifference(a: Uint16Array, b: Uint16Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const f32Bits = (v: Float32Array) => new Uint32Array(v.buffer, v.byteOffset, v.length);
const widen = (bits: Uint16Array) => Uint32Array.from(bits, (b) => b << 16);

async function withSource<T>(dir: string, body: (s: TensorSource) => Promise<T>): Promise<T> {
  const source = await openTensorSource(dir);
  try {
    return await body(source);
  } finally {
    await source.close();
  }
}

describe('mxfp4Quantization', () => {
  it('reads quant_method "mxfp4" and its modules_to_not_convert; null for none or another method', () => {
    expect(mxfp4Quantization({ quantization_config: QUANTIZATION })).toEqual({ method: 'mxfp4', modulesToNotConvert: ['model.layers.*.self_attn', 'lm_head'] });
    expect(mxfp4Quantization({ quantization_config: { quant_method: 'mxfp4' } })).toEqual({ method: 'mxfp4', modulesToNotConvert: [] });
    expect(mxfp4Quantization({})).toBeNull();
    expect(mxfp4Quantization({ quantization_config: { quant_method: 'fp8' } })).toBeNull();
  });
});

describe('MXFP4 blocks read as BF16', () => {
  it('hand-built values: low nibble first, 2^(s − 127), the edges of the exponent range, the transpose', async () => {
    // E 2, R 2 stored rows, G 1 group: presented [2, 32, 2]
    const blocks = new Uint8Array(2 * 2 * 16);
    const scales = Uint8Array.of(128, 127, 255, 0);
    blocks[0] = 0x71; // e0 r0, elements 0 and 1 at scale 128: 0.5·2 = 1, 6·2 = 12
    blocks[16 + 15] = 0xf8; // e0 r1, elements 30 and 31 at scale 127: −0, −6
    blocks[32 + 3] = 0x21; // e1 r0, elements 6 and 7 at scale 255: 0.5·2^128 = 2^127, 1·2^128 overflows
    blocks[32 + 4] = 0xa9; // e1 r0, elements 8 and 9: −0.5·2^128 = −2^127, −1·2^128 = −inf
    blocks[48 + 0] = 0x0f; // e1 r1, elements 0 and 1 at scale 0: −6·2^−127 = −1.5·2^−125, +0
    blocks[48 + 1] = 0x01; // e1 r1, elements 2 and 3: 0.5·2^−127 = 2^−128 (a BF16 subnormal), +0
    const dir = await writeDir([
      ...pair('model.layers.0.mlp.experts.gate_up_proj', { blocks, scales, dims: [2, 2, 1] }),
      bf16('model.layers.0.mlp.experts.gate_up_proj_bias', [2, 2], [1, 2, 3, 4]),
      bf16('model.norm.weight', [4], [1, 1, 1, 1]),
    ]);
    await withSource(dir, async (s) => {
      const name = 'model.layers.0.mlp.experts.gate_up_proj';
      expect(s.tensor(name)).toMatchObject({ name, dtype: 'BF16', shape: [2, 32, 2], byteLength: 2 * 32 * 2 * 2 });
      const bits = await s.readBf16(name);
      expect(bits.length).toBe(128);
      const at = (e: number, c: number, r: number) => bits[(e * 32 + c) * 2 + r];
      expect([at(0, 0, 0), at(0, 1, 0)]).toEqual([0x3f80, 0x4140]); // 1, 12
      expect([at(0, 30, 1), at(0, 31, 1)]).toEqual([0x8000, 0xc0c0]); // −0, −6
      expect([at(1, 6, 0), at(1, 7, 0), at(1, 8, 0), at(1, 9, 0)]).toEqual([0x7f00, 0x7f80, 0xff00, 0xff80]); // 2^127, inf, −2^127, −inf
      expect([at(1, 0, 1), at(1, 1, 1), at(1, 2, 1), at(1, 3, 1)]).toEqual([0x8140, 0x0000, 0x0020, 0x0000]); // −1.5·2^−125, 0, 2^−128, 0
      // every other element is a zero code: +0 at any scale (transformers' ldexp gives no NaN for 0 × 2^128)
      const index = (e: number, c: number, r: number) => (e * 32 + c) * 2 + r;
      const named = new Set([index(0, 0, 0), index(0, 1, 0), index(0, 30, 1), index(0, 31, 1), ...[6, 7, 8, 9].map((c) => index(1, c, 0)), ...[0, 1, 2, 3].map((c) => index(1, c, 1))]);
      bits.forEach((b, i) => {
        if (!named.has(i)) expect(b, `element ${i}`).toBe(0);
      });
      // readF32 is the same values widened; readBytes the same patterns
      const f32 = await s.readF32(name);
      expect(f32[0]).toBe(1);
      expect(f32[2]).toBe(12);
      expect(f32[(1 * 32 + 7) * 2]).toBe(Infinity);
      expect(Object.is(f32[30 * 2 + 1], -0)).toBe(true);
      expect(f32Bits(f32)).toEqual(widen(bits));
      expect(new Uint16Array((await s.readBytes(name)).slice().buffer)).toEqual(bits);
      // the pair is hidden, the rest passes through
      expect([...s.tensorNames()].sort()).toEqual([name, 'model.layers.0.mlp.experts.gate_up_proj_bias', 'model.norm.weight']);
      expect(s.tensor(`${name}_blocks`)).toBeUndefined();
      expect(s.tensor(`${name}_scales`)).toBeUndefined();
      await expect(s.readF32(`${name}_scales`)).rejects.toThrow(/is part of the MXFP4 weight model\.layers\.0\.mlp\.experts\.gate_up_proj/);
      await expect(s.readBytes(`${name}_blocks`)).rejects.toBeInstanceOf(CheckpointError);
      expect(s.tensor('model.norm.weight')).toMatchObject({ dtype: 'BF16', shape: [4] });
      expect(Array.from(await s.readF32('model.layers.0.mlp.experts.gate_up_proj_bias'))).toEqual([1, 2, 3, 4]);
    });
  });

  it('random blocks against the definition; row reads (a slab, across experts, within groups, across tiles) equal the whole read', async () => {
    const rng = new Rng(5);
    // presented gate_up [3, 64, 80] (80 stored rows: more than one tile of 64), down [3, 96, 40]
    const gateUp = randomPacked(rng, 3, 80, 2);
    const down = randomPacked(rng, 3, 40, 3);
    // both nibbles of every value, and a spread of scales, appear
    expect(new Set(gateUp.blocks).size).toBe(256);
    const dir = await writeDir([...pair('l.gate_up_proj', gateUp), ...pair('l.down_proj', down)]);
    await withSource(dir, async (s) => {
      for (const [name, p] of [
        ['l.gate_up_proj', gateUp],
        ['l.down_proj', down],
      ] as const) {
        const [E, R, G] = p.dims;
        const C = G * 32;
        expect(s.tensor(name)).toMatchObject({ dtype: 'BF16', shape: [E, C, R] });
        const want = reference(p);
        const whole = await s.readBf16(name);
        expect(firstDifference(whole, want)).toBe(-1);
        expect(f32Bits(await s.readF32(name))).toEqual(widen(want));
        for (const [a, b] of [
          [C, 2 * C], // expert 1's slab
          [0, C],
          [C - 5, C + 7], // across experts
          [5, 37], // starting and ending within groups
          [33, 34],
          [C - 1, 2 * C + 1], // across two expert boundaries
          [E * C - 3, E * C],
          [7, 7],
        ]) {
          const rows = await s.readRowsBf16(name, a, b);
          expect(firstDifference(rows, want.subarray(a * R, b * R)), `rows [${a}, ${b})`).toBe(-1);
          expect(f32Bits(await s.readRowsF32(name, a, b))).toEqual(widen(want.subarray(a * R, b * R)));
        }
        await expect(s.readRowsBf16(name, 3, 2)).rejects.toThrow(/outside/);
        await expect(s.readRowsF32(name, 0, E * C + 1)).rejects.toThrow(/outside \[0, \d+\] of the \d+×\d+ view of l\./);
      }
    });
  });

  it('columns of an expert slab decoded directly (gpt-oss\'s gate: even stored rows, up: odd, down: all) equal the slab read and transposed', async () => {
    const rng = new Rng(8);
    const gateUp = randomPacked(rng, 3, 80, 2);
    // one expert bigger than a read chunk (4 MiB of blocks): 8,200 stored rows of 512 bytes
    const big = randomPacked(rng, 1, 8200, 32);
    const dir = await writeDir([...pair('l.gate_up_proj', gateUp), ...pair('big', big)]);
    await withSource(dir, async (s) => {
      for (const [name, p] of [
        ['l.gate_up_proj', gateUp],
        ['big', big],
      ] as const) {
        const [E, R, G] = p.dims;
        const C = G * 32;
        const want = reference(p);
        for (let e = 0; e < E; e++) {
          for (const cols of [
            { first: 0, step: 2, count: R / 2 },
            { first: 1, step: 2, count: R / 2 },
            { first: 0, step: 1, count: R },
            { first: 3, step: 5, count: Math.floor((R - 4) / 5) },
          ]) {
            const got = await s.readColumnsBf16!(name, e * C, (e + 1) * C, cols);
            // out[j][c] = presented [e, c, first + j·step]
            const expected = new Uint16Array(cols.count * C);
            for (let j = 0; j < cols.count; j++) for (let c = 0; c < C; c++) expected[j * C + c] = want[(e * C + c) * R + cols.first + j * cols.step];
            expect(firstDifference(got!, expected), `${name} expert ${e} ${JSON.stringify(cols)}`).toBe(-1);
          }
        }
        // not one whole expert slab, or columns past the rows: the caller transposes the rows itself
        expect(await s.readColumnsBf16!(name, 1, C, { first: 0, step: 2, count: 2 })).toBeNull();
        expect(await s.readColumnsBf16!(name, 0, C, { first: 1, step: 2, count: R })).toBeNull();
      }
      await expect(s.readColumnsBf16!('l.gate_up_proj', 0, 4 * 64, { first: 0, step: 1, count: 1 })).rejects.toThrow(/outside/);
    });
  });

  it('an expert larger than a read chunk (4 MiB of blocks) is decoded chunk by chunk', async () => {
    const rng = new Rng(6);
    // 8,200 stored rows of 512 bytes: 8,192 rows a chunk
    const p = randomPacked(rng, 1, 8200, 32);
    const dir = await writeDir(pair('big', p));
    await withSource(dir, async (s) => {
      const want = reference(p);
      expect(firstDifference(await s.readBf16('big'), want)).toBe(-1);
      const R = 8200;
      expect(firstDifference(await s.readRowsBf16('big', 100, 300), want.subarray(100 * R, 300 * R))).toBe(-1);
    });
  });

  it('through openCheckpoint: fused experts stored as MXFP4 read as the runtime reads them', async () => {
    // Mixtral's fused fixture: gate_up_proj [8, 32, 32], down_proj [8, 32, 16]; presented [E, C, R] from blocks [E, R, C/32, 16]
    const { dir } = await makeTinyCheckpoint(scratch.sub(`ckpt-${counter++}`), 'mixtral', { seed: 3, fusedExperts: true });
    const rng = new Rng(7);
    const packed = new Map<string, Packed>();
    await rewriteModelFile(dir, (ts) =>
      ts.flatMap((t) => {
        if (!/experts\.(gate_up|down)_proj$/.test(t.name)) return [t];
        const [E, C, R] = t.shape;
        const p = randomPacked(rng, E, R, C / 32);
        packed.set(t.name, p);
        return pair(t.name, p);
      }),
    );
    expect(packed.size).toBe(4);
    await editConfig(dir, (c) => {
      c.quantization_config = QUANTIZATION;
    });
    const ckpt = await openCheckpoint(dir);
    try {
      const name = 'model.layers.1.mlp.experts.down_proj';
      expect(ckpt.tensor(name)).toMatchObject({ dtype: 'BF16', shape: [8, 32, 16] });
      const want = reference(packed.get(name)!);
      // expert 3's down: rows 3·32 … 4·32 of [8·32, 16]
      expect(f32Bits(await ckpt.readExpert(1, 3, 'down'))).toEqual(widen(want.subarray(3 * 32 * 16, 4 * 32 * 16)));
      expect(firstDifference((await ckpt.readExpertBf16!(1, 3, 'down'))!, want.subarray(3 * 32 * 16, 4 * 32 * 16))).toBe(-1);
      expect(ckpt.tensorNames().filter((n) => n.endsWith('_blocks') || n.endsWith('_scales'))).toEqual([]);
      // inspect says how the experts are stored and read
      const d = describeCheckpoint(ckpt);
      expect(d.mxfp4).toEqual({ modulesToNotConvert: QUANTIZATION.modules_to_not_convert });
      expect(d.dtypes.U8).toBeUndefined();
      expect(d.dtypes.BF16).toBe(4);
      expect(d.validation.unusedTensors).toEqual([]);
      expect(formatCheckpoint(d)).toMatch(/quantization +MXFP4 .*dequantised to BF16 as read/);
      // decoded on every read, so the process's own memory even where the files are mapped (generate's budget)
      const decoded = ckpt.tensorNames().filter((n) => ckpt.tensor(n)!.decoded);
      expect(decoded.sort()).toEqual([...packed.keys()].sort());
      const decodedValues = decoded.reduce((sum, n) => sum + ckpt.tensor(n)!.shape.reduce((a, b) => a * b, 1), 0);
      expect(residentWeightBytes(ckpt, { bf16Weights: true })).toBe(residentWeightBytes(ckpt) - 2 * decodedValues);
      expect(residentWeightBytes(ckpt, { bf16Weights: true, mapped: true })).toBe(residentWeightBytes(ckpt, { bf16Weights: true }));
    } finally {
      await ckpt.close();
    }
  });
});

describe('malformed MXFP4 checkpoints are refused, naming the tensor and the fix', () => {
  const p = (E = 2, R = 4, G = 1): Packed => randomPacked(new Rng(9), E, R, G);

  async function sourceError(tensors: RawTensor[], quantization?: unknown): Promise<CheckpointError> {
    const dir = await writeDir(tensors, quantization);
    const err = await openTensorSource(dir).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).variant).toBe('Quantized');
    expect((err as CheckpointError).message).toContain("restore the checkpoint's original files");
    return err as CheckpointError;
  }

  it('blocks without their scales; scales without their blocks', async () => {
    const [blocks, scales] = pair('x.down_proj', p());
    expect((await sourceError([blocks])).message).toContain('holds the MXFP4 blocks x.down_proj_blocks without their scales x.down_proj_scales');
    expect((await sourceError([...pair('x.gate_up_proj', p()), scales])).message).toContain('holds the MXFP4 scales x.down_proj_scales but no blocks x.down_proj_blocks for them');
  });

  it('blocks that are not U8, or not [E, R, G, 16]', async () => {
    const [blocks, scales] = pair('x.down_proj', p());
    expect((await sourceError([{ ...blocks, dtype: 'I8' as DType }, scales])).message).toContain('stores the MXFP4 blocks x.down_proj_blocks as I8; MXFP4 blocks are U8');
    const eight = { ...blocks, shape: [2, 4, 2, 8] };
    expect((await sourceError([eight, { ...scales, shape: [2, 4, 2], data: new Uint8Array(16) }])).message).toContain(
      'has MXFP4 blocks x.down_proj_blocks of shape [2, 4, 2, 8]; they are [experts, rows, groups, 16]',
    );
    const rank3 = { ...blocks, shape: [8, 1, 16] };
    expect((await sourceError([rank3, { ...scales, shape: [8, 1] }])).message).toContain('has MXFP4 blocks x.down_proj_blocks of shape [8, 1, 16]');
  });

  it('scales of another dtype or shape', async () => {
    const [blocks, scales] = pair('x.down_proj', p());
    expect((await sourceError([blocks, { ...scales, dtype: 'F32', shape: [2, 2, 1], data: new Uint8Array(16) }])).message).toContain(
      'stores the MXFP4 scales x.down_proj_scales as F32; MXFP4 scales are U8 exponents',
    );
    expect((await sourceError([blocks, { ...scales, shape: [2, 2, 2] }])).message).toContain(
      'has MXFP4 scales x.down_proj_scales of shape [2, 2, 2] for blocks x.down_proj_blocks of shape [2, 4, 1, 16]; one exponent a group needs [2, 4, 1]',
    );
  });

  it('a plain weight beside its blocks; a config declaring MXFP4 over files without any', async () => {
    expect((await sourceError([...pair('x.down_proj', p()), bf16('x.down_proj', [2], [1, 2])])).message).toContain('holds both x.down_proj and the MXFP4 blocks x.down_proj_blocks');
    expect((await sourceError([bf16('x.down_proj', [2], [1, 2])])).message).toContain('declares MXFP4 quantization (quantization_config) but holds no MXFP4 tensor');
  });

  it('through openCheckpoint; and other quantization methods stay refused, the message naming MXFP4 among those read', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub(`ckpt-${counter++}`), 'qwen3_moe', { seed: 12 });
    await editConfig(dir, (c) => {
      c.quantization_config = QUANTIZATION;
    });
    expect((await openError(dir)).message).toContain('declares MXFP4 quantization (quantization_config) but holds no MXFP4 tensor');
    await editConfig(dir, (c) => {
      c.quantization_config = { quant_method: 'bitsandbytes', bits: 4 };
    });
    const err = await openError(dir);
    expect(err.variant).toBe('Quantized');
    expect(err.message).toContain('is a quantized checkpoint (quantization_config: quant_method "bitsandbytes", bits 4)');
    expect(err.message).toContain('MXFP4 ones (quant_method "mxfp4"');
  });
});

