/**
 * A gpt-oss fixture's experts rewritten in MXFP4, as gpt-oss is released: gate_up [E, H, 2I] as
 * blocks [E, 2I, H/32, 16] and scales [E, 2I, H/32], down [E, I, H] as [E, H, I/32, 16] and
 * [E, H, I/32]; random codes, scales 2^(117−127) … 2^(124−127) (weights of ordinary size).
 */
import { editConfig, rewriteModelFile } from '../checkpoint/rewrite.js';
import { Rng } from './rng.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';

export async function rewriteExpertsAsMxfp4(dir: string, seed: number): Promise<void> {
  const rng = new Rng(seed);
  await rewriteModelFile(dir, (ts) =>
    ts.flatMap((t) => {
      if (!/experts\.(gate_up|down)_proj$/.test(t.name)) return [t];
      const [experts, cols, rows] = t.shape;
      const groups = cols / 32;
      return [
        { name: `${t.name}_blocks`, dtype: 'U8' as const, shape: [experts, rows, groups, 16], data: Uint8Array.from({ length: experts * rows * groups * 16 }, () => Math.floor(rng.next() * 256)) },
        { name: `${t.name}_scales`, dtype: 'U8' as const, shape: [experts, rows, groups], data: Uint8Array.from({ length: experts * rows * groups }, () => 117 + Math.floor(rng.next() * 8)) },
      ];
    }),
  );
  await editConfig(dir, (c) => {
    c.quantization_config = { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'lm_head'] };
  });
}

/** The same checkpoint without readExpertMxfp4: its experts are read as BF16, decoded. */
export function withMxfp4Decoded(c: Checkpoint): Checkpoint {
  return new Proxy(c, { get: (target, prop) => (prop === 'readExpertMxfp4' || prop === 'mxfp4TensorNames' ? undefined : Reflect.get(target, prop, target)) });
}

