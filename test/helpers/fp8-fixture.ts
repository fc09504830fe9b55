/**
 * Block-FP8 checkpoints made from the fixtures, as DeepSeek-V3, the Qwen3 "-FP8" releases and
 * llm-compressor store them: shared by the FP8 reader's tests (test/checkpoint/fp8-blocks.test.ts)
 * and the runtime's FP8 experts kept as stored (test/runtime/fp8-experts.test.ts).
 */
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { decodeToF32, encodeFromF32, type DType } from '../../src/io/dtype.js';
import { editConfig, rewriteModelFile, type RawTensor } from '../checkpoint/rewrite.js';
import { Rng } from './rng.js';

export interface Fp8Options {
  /** weight_block_size in config.json; null: not declared */
  block: [number, number] | null;
  /** the grid's block when config.json declares none (default: block) */
  gridBlock?: [number, number];
  scaleDtype?: 'F32' | 'BF16' | 'U8' | 'F8_E8M0';
  /** weights quantized */
  pick: (name: string, t: RawTensor) => boolean;
  /** a static scheme's activation scale beside each quantized weight */
  inputScales?: boolean;
  /** llm-compressor's compressed-tensors form, one scale per output channel under NAME_scale (block and gridBlock unused) */
  compressedTensorsChannel?: boolean;
}

export interface Quantized {
  shape: number[];
  codes: Uint8Array;
  scales: Float32Array;
  block: [number, number];
}

/**
 * Turns the weights of the checkpoint in `dir` that `opts.pick` picks into FP8 codes (random, no
 * NaN code) with random block scales, as the releases store them, and declares the quantization in
 * its config.json. Returns each quantized tensor's codes and scales.
 */
export async function quantizeToFp8(dir: string, seed: number, opts: Fp8Options): Promise<Map<string, Quantized>> {
  const rng = new Rng(seed);
  const quantized = new Map<string, Quantized>();
  const channel = opts.compressedTensorsChannel ?? false;
  await rewriteModelFile(dir, (tensors) =>
    tensors.flatMap((t) => {
      if (!opts.pick(t.name, t)) return [t];
      const [rows, cols] = t.shape.slice(-2);
      const block: [number, number] = channel ? [1, cols] : (opts.block ?? opts.gridBlock!);
      const lead = t.shape.slice(0, -2);
      const grid = [...lead, Math.ceil(rows / block[0]), Math.ceil(cols / block[1])];
      const count = t.shape.reduce((a, b) => a * b, 1);
      const codes = Uint8Array.from({ length: count }, () => {
        const b = Math.floor(rng.next() * 256);
        return (b & 0x7f) === 0x7f ? 0x3c : b; // 0x7f / 0xff are E4M3's NaN
      });
      const scaleCount = grid.reduce((a, b) => a * b, 1);
      let scaleBytes: Uint8Array;
      let scales: Float32Array;
      if (opts.scaleDtype === 'U8' || opts.scaleDtype === 'F8_E8M0') {
        scaleBytes = Uint8Array.from({ length: scaleCount }, () => 118 + Math.floor(rng.next() * 6));
        scales = Float32Array.from(scaleBytes, (b) => 2 ** (b - 127));
      } else {
        const dtype = opts.scaleDtype ?? 'F32';
        scaleBytes = encodeFromF32(dtype, Float32Array.from({ length: scaleCount }, () => 0.001 + rng.next() * 0.01));
        scales = decodeToF32(dtype, scaleBytes);
      }
      quantized.set(t.name, { shape: t.shape, codes, scales, block });
      const out: RawTensor[] = [
        { name: t.name, dtype: 'F8_E4M3', shape: t.shape, data: codes },
        { name: `${t.name}${channel ? '_scale' : '_scale_inv'}`, dtype: (opts.scaleDtype ?? 'F32') as DType, shape: grid, data: scaleBytes },
      ];
      if (opts.inputScales) out.push({ name: t.name.replace(/weight$/, 'input_scale'), dtype: 'F32', shape: [1], data: encodeFromF32('F32', Float32Array.of(0.5)) });
      return out;
    }),
  );
  await editConfig(dir, (c) => {
    c.quantization_config = channel
      ? {
          quant_method: 'compressed-tensors',
          format: 'float-quantized',
          config_groups: { group_0: { targets: ['Linear'], weights: { num_bits: 8, type: 'float', strategy: 'channel', symmetric: true, dynamic: false }, input_activations: { num_bits: 8, type: 'float', strategy: opts.inputScales ? 'tensor' : 'token', symmetric: true, dynamic: !opts.inputScales } } },
          ignore: ['lm_head'],
        }
      : { activation_scheme: opts.inputScales ? 'static' : 'dynamic', fmt: 'e4m3', quant_method: 'fp8', ...(opts.block ? { weight_block_size: opts.block } : {}) };
  });
  return quantized;
}


/** The same checkpoint without readExpertFp8: its experts are read decoded to BF16, as before they could be kept as codes. */
export function withExpertsDecoded(c: Checkpoint): Checkpoint {
  return new Proxy(c, { get: (target, prop) => (prop === 'readExpertFp8' || prop === 'fp8TensorNames' ? undefined : Reflect.get(target, prop, target)) });
}
