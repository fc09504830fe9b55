/**
 * Block-FP8 checkpoints read through Fp8BlockStore (src/checkpoint/fp8-blocks.ts): every value
 * against the format's definition (code × its block's scale in f32, rounded to BF16), partial
 * edge blocks, fused [E, rows, cols] weights, row reads against whole reads, the scale dtypes
 * the releases use, and each malformed checkpoint refused naming the tensor. Agreement with
 * transformers and torch on the same files: test/hf/fp8-checkpoints.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCheckpoint } from '../../src/checkpoint/describe.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { loadNativeEngine } from '../../src/engine/native.js';
import { decodeToF32, roundToBf16 } from '../../src/io/dtype.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { quantizeToFp8, type Fp8Options, type Quantized } from '../helpers/fp8-fixture.js';
import { editConfig, openError, rewriteModelFile, type RawTensor } from './rewrite.js';
import { makeScratch } from './tmp-dirs.js';

let scratch: Awaited<ReturnType<typeof makeScratch>>;
let counter = 0;
beforeAll(async () => {
  scratch = await makeScratch('fp8');
});
afterAll(async () => {
  await scratch.cleanup();
});

/** A fixture of `family` with the weights `opts.pick` picks turned into FP8 (quantizeToFp8). */
async function toFp8(family: FamilyName, fixtureOpts: Parameters<typeof makeTinyCheckpoint>[2], opts: Fp8Options): Promise<{ dir: string; quantized: Map<string, Quantized> }> {
  const { dir } = await makeTinyCheckpoint(scratch.sub(`ckpt-${counter++}`), family, fixtureOpts);
  return { dir, quantized: await quantizeToFp8(dir, counter, opts) };
}

/** BF16 bit patterns as the f32 values they stand for (each the upper half of an f32). */
function widened(bits: Uint16Array): Float32Array {
  return Float32Array.from(bits, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]);
}

/** The format's definition, element by element: E4M3 code × the scale of its block, in f32, rounded to BF16. */
function expected(q: Quantized): Float32Array {
  const [rows, cols] = q.shape.slice(-2);
  const gridRows = Math.ceil(rows / q.block[0]);
  const gridCols = Math.ceil(cols / q.block[1]);
  const values = decodeToF32('F8_E4M3', q.codes);
  const product = new Float32Array(values.length);
  for (let k = 0; k < values.length; k++) {
    const m = Math.floor(k / (rows * cols));
    const i = Math.floor(k / cols) % rows;
    const j = k % cols;
    product[k] = Math.fround(values[k] * q.scales[(m * gridRows + Math.floor(i / q.block[0])) * gridCols + Math.floor(j / q.block[1])]);
  }
  return widened(roundToBf16(product));
}

const isExpertOrAttention = (name: string, t: RawTensor) => t.shape.length >= 2 && /(proj|experts\.\d+\.w\d|experts\.(gate_up|down)_proj)(\.weight)?$/.test(name);

describe('block-FP8 weights read as BF16', () => {
  it('every value is its code times its block’s scale rounded to BF16, with partial edge blocks; the scales are hidden', async () => {
    // 5×7 blocks: no dimension of the fixture divides, so every matrix has partial edge blocks
    const { dir, quantized } = await toFp8('qwen3_moe', { seed: 1 }, { block: [5, 7], pick: isExpertOrAttention });
    expect(quantized.size).toBeGreaterThan(10);
    const ckpt = await openCheckpoint(dir);
    try {
      for (const [name, q] of quantized) {
        const want = expected(q);
        expect(ckpt.tensor(name)).toMatchObject({ dtype: 'BF16', shape: q.shape, byteLength: want.length * 2 });
        expect(await ckpt.readF32(name)).toEqual(want);
        const bits = (await ckpt.readBf16!(name))!;
        expect(widened(bits)).toEqual(want);
      }
      expect(ckpt.tensorNames().filter((n) => n.includes('scale'))).toEqual([]);
      expect(ckpt.tensor([...quantized.keys()][0] + '_scale_inv')).toBeUndefined();
      // inspect says how the weights are stored and read
      const d = describeCheckpoint(ckpt);
      expect(d.fp8Blocks).toEqual({ method: 'fp8', block: [5, 7] });
      expect(d.dtypes.F8_E4M3).toBeUndefined();
      expect(d.validation.unusedTensors).toEqual([]);
      // the experts as the runtime reads them
      const name = 'model.layers.0.mlp.experts.3.down_proj.weight';
      expect(await ckpt.readExpert(0, 3, 'down')).toEqual(expected(quantized.get(name)!));
    } finally {
      await ckpt.close();
    }
  });

  it('fused [E, rows, cols] experts: each matrix has its own grid; row reads (across matrices too) equal the whole read', async () => {
    const { dir, quantized } = await toFp8('mixtral', { seed: 2, fusedExperts: true }, { block: [3, 5], pick: isExpertOrAttention });
    const fused = [...quantized.keys()].filter((n) => n.endsWith('gate_up_proj') || n.endsWith('down_proj'));
    expect(fused.length).toBeGreaterThan(0);
    const ckpt = await openCheckpoint(dir);
    try {
      for (const name of fused) {
        const q = quantized.get(name)!;
        const whole = expected(q);
        expect(await ckpt.readF32(name)).toEqual(whole);
        const cols = q.shape[q.shape.length - 1];
        const rows = whole.length / cols;
        for (const [a, b] of [
          [0, 1],
          [2, 9],
          [q.shape[1] - 1, q.shape[1] + 2],
          [rows - 4, rows],
        ]) {
          expect(await ckpt.readRowsF32(name, a, b)).toEqual(whole.subarray(a * cols, b * cols));
          const bits = (await ckpt.readRowsBf16!(name, a, b))!;
          expect(widened(bits)).toEqual(whole.subarray(a * cols, b * cols));
        }
      }
      await expect(ckpt.readRowsF32(fused[0], 3, 2)).rejects.toThrow(/outside/);
    } finally {
      await ckpt.close();
    }
  });

  it('blocks of 1,024 values or more (read through per-block tables of the 256 codes), partial and fused', async () => {
    for (const [family, fixtureOpts, block] of [
      ['qwen3_moe', { seed: 13 }, [64, 16]],
      ['mixtral', { seed: 14, fusedExperts: true }, [32, 32]],
    ] as const) {
      const { dir, quantized } = await toFp8(family, fixtureOpts, { block: [block[0], block[1]], pick: isExpertOrAttention });
      const ckpt = await openCheckpoint(dir);
      try {
        for (const [name, q] of quantized) {
          const want = expected(q);
          expect(await ckpt.readF32(name)).toEqual(want);
          const bits = (await ckpt.readBf16!(name))!;
          expect(widened(bits)).toEqual(want);
          const cols = q.shape[q.shape.length - 1];
          const rows = want.length / cols;
          expect(await ckpt.readRowsF32(name, 5, rows - 3)).toEqual(want.subarray(5 * cols, (rows - 3) * cols));
        }
      } finally {
        await ckpt.close();
      }
    }
  });

  it('with the native engine loaded (its table lookup in place of the JavaScript loop), the same values', async () => {
    const native = loadNativeEngine({ threads: 1 });
    if (!native.ok) {
      console.warn(`skipped: the native engine is not available (${native.reason})`);
      return;
    }
    try {
      const { dir, quantized } = await toFp8('mixtral', { seed: 15, fusedExperts: true }, { block: [32, 32], pick: isExpertOrAttention });
      const ckpt = await openCheckpoint(dir);
      try {
        for (const [name, q] of quantized) {
          const want = expected(q);
          expect(await ckpt.readF32(name)).toEqual(want);
          const bits = (await ckpt.readBf16!(name))!;
          expect(widened(bits)).toEqual(want);
        }
      } finally {
        await ckpt.close();
      }
    } finally {
      native.engine.dispose();
    }
  });

  for (const scaleDtype of ['BF16', 'U8', 'F8_E8M0'] as const) {
    it(`scales stored as ${scaleDtype}${scaleDtype === 'BF16' ? '' : ' (E8M0 exponents: 2^(e − 127))'}`, async () => {
      const { dir, quantized } = await toFp8('qwen3_moe', { seed: 3 }, { block: [4, 8], scaleDtype, pick: isExpertOrAttention });
      const ckpt = await openCheckpoint(dir);
      try {
        for (const [name, q] of quantized) expect(await ckpt.readF32(name)).toEqual(expected(q));
      } finally {
        await ckpt.close();
      }
    });
  }

  it('without weight_block_size the block is read off each scale grid; a static scheme’s input scales are hidden', async () => {
    const { dir, quantized } = await toFp8('qwen3_moe', { seed: 4 }, { block: null, gridBlock: [4, 8], pick: isExpertOrAttention, inputScales: true });
    const ckpt = await openCheckpoint(dir);
    try {
      for (const [name, q] of quantized) expect(await ckpt.readF32(name)).toEqual(expected(q));
      expect(ckpt.tensorNames().filter((n) => n.endsWith('input_scale'))).toEqual([]);
    } finally {
      await ckpt.close();
    }
  });
});

describe('compressed-tensors FP8 (llm-compressor’s float-quantized format)', () => {
  it('one scale per output channel under NAME_scale: every value its code times its row’s scale, rounded to BF16; static input scales hidden', async () => {
    const { dir, quantized } = await toFp8('mixtral', { seed: 21 }, { block: null, compressedTensorsChannel: true, inputScales: true, pick: isExpertOrAttention });
    expect(quantized.size).toBeGreaterThan(10);
    const ckpt = await openCheckpoint(dir);
    try {
      for (const [name, q] of quantized) expect(await ckpt.readF32(name)).toEqual(expected(q));
      expect(ckpt.tensorNames().filter((n) => n.endsWith('_scale'))).toEqual([]);
      expect(describeCheckpoint(ckpt).fp8Blocks).toEqual({ method: 'compressed-tensors', block: null });
    } finally {
      await ckpt.close();
    }
  });

  it('schemes of another kind are refused, naming them: integers, 4-bit floats, asymmetric weights, zero points', async () => {
    const group = (weights: Record<string, unknown>, format = 'float-quantized') => ({ quant_method: 'compressed-tensors', format, config_groups: { group_0: { targets: ['Linear'], weights } } });
    for (const [config, message] of [
      [group({ num_bits: 4, type: 'int', strategy: 'group', group_size: 128, symmetric: true }, 'pack-quantized'), /stores weights in a scheme rfid-moe does not read \(config_groups.group_0: \{"format":"pack-quantized","type":"int","num_bits":4/],
      [group({ num_bits: 4, type: 'float', strategy: 'tensor_group', symmetric: true }, 'nvfp4-pack-quantized'), /nvfp4-pack-quantized/],
      [group({ num_bits: 8, type: 'float', strategy: 'channel', symmetric: false }), /"symmetric":false/],
      [{ quant_method: 'compressed-tensors', format: 'float-quantized' }, /has no config_groups/],
    ] as const) {
      const { dir } = await makeTinyCheckpoint(scratch.sub(`ckpt-${counter++}`), 'qwen3_moe', { seed: 22 });
      await editConfig(dir, (c) => {
        c.quantization_config = config;
      });
      const err = await openError(dir);
      expect(err.variant).toBe('Quantized');
      expect(err.message).toMatch(message);
    }
    const withZeros = await toFp8('qwen3_moe', { seed: 23 }, { block: null, compressedTensorsChannel: true, pick: (n) => n === 'model.layers.0.self_attn.q_proj.weight' });
    await rewriteModelFile(withZeros.dir, (ts) => [...ts, { name: 'model.layers.0.self_attn.q_proj.weight_zero_point', dtype: 'F32', shape: [48, 1], data: new Uint8Array(48 * 4) }]);
    expect((await openError(withZeros.dir)).message).toContain('holds the zero points model.layers.0.self_attn.q_proj.weight_zero_point; rfid-moe reads symmetric FP8 weights only');
  });
});

describe('malformed block-FP8 checkpoints are refused, naming the tensor', () => {
  const pickOne = (name: string) => name === 'model.layers.0.self_attn.q_proj.weight';

  it('an FP8 weight without its scales; a config declaring FP8 over a checkpoint without any', async () => {
    const { dir } = await toFp8('qwen3_moe', { seed: 5 }, { block: [4, 8], pick: pickOne });
    await rewriteModelFile(dir, (ts) => ts.filter((t) => !t.name.endsWith('_scale_inv')));
    const err = await openError(dir);
    expect(err.variant).toBe('Quantized');
    expect(err.message).toContain('stores model.layers.0.self_attn.q_proj.weight as F8_E4M3 without the block scales');
    const plain = await toFp8('qwen3_moe', { seed: 5 }, { block: [4, 8], pick: () => false });
    expect((await openError(plain.dir)).message).toContain('declares FP8 quantization (quantization_config) but holds no tensor with block scales (…_scale_inv)');
    const again = await toFp8('qwen3_moe', { seed: 5 }, { block: [4, 8], pick: (n) => pickOne(n) || n === 'model.layers.0.self_attn.k_proj.weight' });
    await rewriteModelFile(again.dir, (ts) => ts.filter((t) => t.name !== 'model.layers.0.self_attn.k_proj.weight_scale_inv'));
    expect((await openError(again.dir)).message).toContain('stores model.layers.0.self_attn.k_proj.weight as F8_E4M3 without the block scales model.layers.0.self_attn.k_proj.weight_scale_inv');
  });

  it('a scale grid that does not fit the weight', async () => {
    const { dir } = await toFp8('qwen3_moe', { seed: 6 }, { block: [4, 8], pick: pickOne });
    await editConfig(dir, (c) => {
      (c.quantization_config as Record<string, unknown>).weight_block_size = [8, 8];
    });
    const err = await openError(dir);
    expect(err.message).toMatch(/has scales model\.layers\.0\.self_attn\.q_proj\.weight_scale_inv of shape \[\d+, \d+\] for model\.layers\.0\.self_attn\.q_proj\.weight of shape \[48, 32\]; blocks of 8×8 need \[6, 4\]/);
  });

  it('scales without their weight, scales for a weight that is not FP8, scales of an integer dtype', async () => {
    const orphan = await toFp8('qwen3_moe', { seed: 7 }, { block: [4, 8], pick: pickOne });
    await rewriteModelFile(orphan.dir, (ts) => [...ts, { name: 'model.layers.0.mlp.extra.weight_scale_inv', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
    expect((await openError(orphan.dir)).message).toContain('holds the block scales model.layers.0.mlp.extra.weight_scale_inv but no weight model.layers.0.mlp.extra.weight');

    const notFp8 = await toFp8('qwen3_moe', { seed: 8 }, { block: [4, 8], pick: pickOne });
    await rewriteModelFile(notFp8.dir, (ts) => [...ts, { name: 'model.layers.0.self_attn.o_proj.weight_scale_inv', dtype: 'F32', shape: [8, 6], data: new Uint8Array(8 * 6 * 4) }]);
    expect((await openError(notFp8.dir)).message).toContain('has block scales for model.layers.0.self_attn.o_proj.weight, which is F32, not FP8');

    const intScales = await toFp8('qwen3_moe', { seed: 9 }, { block: [4, 8], pick: pickOne });
    await rewriteModelFile(intScales.dir, (ts) => ts.map((t) => (t.name.endsWith('_scale_inv') ? { ...t, dtype: 'I32' } : t)));
    expect((await openError(intScales.dir)).message).toContain('stores the scales model.layers.0.self_attn.q_proj.weight_scale_inv as I32');
  });

  it('a weight_block_size that is not two positive integers; without one, a grid that does not divide the weight', async () => {
    const { dir } = await toFp8('qwen3_moe', { seed: 10 }, { block: [4, 8], pick: pickOne });
    await editConfig(dir, (c) => {
      (c.quantization_config as Record<string, unknown>).weight_block_size = [128, 0];
    });
    expect((await openError(dir)).message).toContain('quantization_config.weight_block_size must be two positive integers [rows, cols], found [128,0]');

    const partial = await toFp8('qwen3_moe', { seed: 11 }, { block: null, gridBlock: [5, 7], pick: pickOne });
    expect((await openError(partial.dir)).message).toContain('config.json gives no weight_block_size to place them by');
  });

  it('other quantization methods stay refused: their codes would be read unscaled', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub(`ckpt-${counter++}`), 'qwen3_moe', { seed: 12 });
    await editConfig(dir, (c) => {
      c.quantization_config = { quant_method: 'gptq', bits: 4 };
    });
    const err = await openError(dir);
    expect(err.variant).toBe('Quantized');
    expect(err.message).toContain('is a quantized checkpoint (quantization_config: quant_method "gptq", bits 4)');
    expect(err.message).toMatch(/BF16 or F32 release, or dequantize/);
  });
});
