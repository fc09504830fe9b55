/**
 * Broken checkpoints give a typed error whose kind and message name the problem: missing or
 * invalid config.json, unknown model_type, schema violations, quantized weights, missing / misshapen / undecodable
 * tensors, shards escaping the directory, out-of-range expert reads.
 */
import { copyFile, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { SafetensorsError } from '../../src/io/errors.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { editConfig, openError, rewriteModelFile } from './rewrite.js';
import { makeScratch } from './tmp-dirs.js';

let scratch: Awaited<ReturnType<typeof makeScratch>>;
let counter = 0;
beforeAll(async () => {
  scratch = await makeScratch('errors');
});
afterAll(async () => {
  await scratch.cleanup();
});

async function fixture(family: Parameters<typeof makeTinyCheckpoint>[1] = 'qwen2_moe', opts: Parameters<typeof makeTinyCheckpoint>[2] = {}) {
  return makeTinyCheckpoint(scratch.sub(`ckpt-${counter++}`), family, opts);
}

describe('config.json problems', () => {
  it('missing directory', async () => {
    const err = await openError(scratch.sub('does-not-exist'));
    expect(err.variant).toBe('NotFound');
    expect(err.message).toContain('does-not-exist');
  });

  it('missing config.json', async () => {
    const { dir } = await fixture();
    await rm(path.join(dir, 'config.json'));
    const err = await openError(dir);
    expect(err.variant).toBe('MissingConfig');
    expect(err.message).toMatch(/has no config\.json/);
  });

  it('config.json that is not JSON, or not an object', async () => {
    const { dir } = await fixture();
    await writeFile(path.join(dir, 'config.json'), '{"model_type": "qwen2_moe",');
    expect((await openError(dir)).variant).toBe('InvalidConfigJson');
    await writeFile(path.join(dir, 'config.json'), '[1, 2]');
    const err = await openError(dir);
    expect(err.variant).toBe('InvalidConfigJson');
    expect(err.message).toContain('an array');
  });

  it('unknown model_type lists every supported one', async () => {
    const { dir } = await fixture();
    await editConfig(dir, (c) => {
      c.model_type = 'llama';
    });
    const err = await openError(dir);
    expect(err.variant).toBe('UnknownModelType');
    expect(err.message).toContain("'llama'");
    for (const t of ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek', 'deepseek_v2']) expect(err.message).toContain(t);
  });

  it('missing model_type', async () => {
    const { dir } = await fixture();
    await editConfig(dir, (c) => {
      delete c.model_type;
    });
    const err = await openError(dir);
    expect(err.variant).toBe('UnknownModelType');
    expect(err.message).toContain('model_type');
  });

  it('a key of the wrong type is named', async () => {
    const { dir } = await fixture('mixtral');
    await editConfig(dir, (c) => {
      c.num_local_experts = 'eight';
    });
    const err = await openError(dir);
    expect(err.variant).toBe('InvalidConfig');
    expect(err.message).toContain("'num_local_experts'");
    expect(err.message).toContain('Mixtral');
  });

  it('an unsupported activation / scoring function / attention bias is named', async () => {
    const a = await fixture('olmoe');
    await editConfig(a.dir, (c) => {
      c.hidden_act = 'gelu';
    });
    expect((await openError(a.dir)).message).toContain("'hidden_act'");
    const b = await fixture('deepseek_v2');
    await editConfig(b.dir, (c) => {
      c.scoring_func = 'sigmoid';
    });
    expect((await openError(b.dir)).message).toMatch(/'scoring_func'.*sigmoid/);
    const q = await fixture('qwen3_moe');
    await editConfig(q.dir, (c) => {
      c.attention_bias = true;
    });
    expect((await openError(q.dir)).message).toContain("'attention_bias'");
  });

  it('top-k above the expert count is rejected', async () => {
    const { dir } = await fixture('olmoe');
    await editConfig(dir, (c) => {
      c.num_experts_per_tok = 9;
    });
    const err = await openError(dir);
    expect(err.variant).toBe('InvalidConfig');
    expect(err.message).toMatch(/num_experts_per_tok \(9\) exceeds .* \(8\)/);
  });

  it('a config with no MoE layer is rejected', async () => {
    const { dir } = await fixture('deepseek');
    await editConfig(dir, (c) => {
      c.n_routed_experts = null;
    });
    const err = await openError(dir);
    expect(err.variant).toBe('InvalidConfig');
    expect(err.message).toContain('no layer is an MoE layer');
  });

  it('a quantized checkpoint of a method rfid-moe does not read (AWQ) is refused, naming the fix (block FP8 is read: fp8-blocks.test.ts)', async () => {
    const { dir } = await fixture('deepseek_v3');
    await editConfig(dir, (c) => {
      c.quantization_config = { quant_method: 'awq', bits: 4, group_size: 128, version: 'gemm' };
    });
    const err = await openError(dir);
    expect(err.variant).toBe('Quantized');
    expect(err.message).toContain('is a quantized checkpoint (quantization_config: quant_method "awq", bits 4)');
    expect(err.message).toMatch(/BF16 or F32 release, or dequantize/);
  });
});

describe('tensors that do not match the config', () => {
  it('a missing expert tensor is named with its expected shape', async () => {
    const { dir } = await fixture('qwen2_moe');
    const victim = 'model.layers.2.mlp.experts.5.up_proj.weight';
    await rewriteModelFile(dir, (ts) => ts.filter((t) => t.name !== victim));
    const err = await openError(dir);
    expect(err.variant).toBe('LayoutMismatch');
    expect(err.message).toContain(`missing tensor ${victim} (config.json implies shape [16, 32])`);
    expect(err.problems).toHaveLength(1);
  });

  it('a wrong shape is named with expected and found shapes', async () => {
    const { dir } = await fixture('mixtral');
    const victim = 'model.layers.1.block_sparse_moe.experts.2.w2.weight';
    // transposed: [I, H] instead of [H, I]
    await rewriteModelFile(dir, (ts) => ts.map((t) => (t.name === victim ? { ...t, shape: [16, 32] } : t)));
    const err = await openError(dir);
    expect(err.variant).toBe('LayoutMismatch');
    expect(err.message).toContain(`tensor ${victim} has shape [16, 32] but config.json implies [32, 16]`);
  });

  it('a config that disagrees with the weights reports every mismatch', async () => {
    const { dir } = await fixture('olmoe');
    await editConfig(dir, (c) => {
      c.intermediate_size = 20;
    });
    const err = await openError(dir);
    expect(err.variant).toBe('LayoutMismatch');
    // 2 layers × 8 experts × 3 matrices
    expect(err.problems).toHaveLength(48);
    expect(err.message).toContain('and 45 more problem(s)');
  });

  it('a dtype that cannot be decoded to f32 is named', async () => {
    const { dir } = await fixture('qwen3_moe');
    const victim = 'model.layers.0.mlp.experts.0.gate_proj.weight';
    // C64 (complex): same element count, 8 bytes each
    await rewriteModelFile(dir, (ts) => ts.map((t) => (t.name === victim ? { ...t, dtype: 'C64', data: new Uint8Array(t.data.length * 2) } : t)));
    const err = await openError(dir);
    expect(err.variant).toBe('LayoutMismatch');
    expect(err.message).toContain(`tensor ${victim} has dtype C64, which cannot be decoded to f32`);
  });

  it('integer-dtype expert weights (quantized codes) are refused at validation', async () => {
    for (const [dtype, width] of [['I8', 1], ['U8', 1], ['I32', 4]] as const) {
      const { dir } = await fixture('qwen3_moe');
      const victim = 'model.layers.1.mlp.experts.3.down_proj.weight';
      await rewriteModelFile(dir, (ts) => ts.map((t) => (t.name === victim ? { ...t, dtype, data: new Uint8Array((t.data.length / 4) * width) } : t)));
      const err = await openError(dir);
      expect(err.variant).toBe('LayoutMismatch');
      expect(err.message).toContain(`tensor ${victim} has integer dtype ${dtype}: weights must be floating point`);
    }
  });

  it('no weights at all', async () => {
    const { dir } = await fixture('mixtral');
    await rm(path.join(dir, 'model.safetensors'));
    const err = await openCheckpoint(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).variant).toBe('ShardNotFound');
  });
});

describe('shards outside the checkpoint directory', () => {
  it('an index entry with ../ is refused by the io layer', async () => {
    const { dir } = await fixture('mixtral', { maxShardBytes: 16384 });
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    const shard = index.weight_map['lm_head.weight'];
    await copyFile(path.join(dir, shard), path.join(dir, '..', 'escaped.safetensors'));
    for (const [name, file] of Object.entries(index.weight_map)) if (file === shard) index.weight_map[name] = '../escaped.safetensors';
    await writeFile(indexFile, JSON.stringify(index));
    const err = await openCheckpoint(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).variant).toBe('InvalidShardIndex');
    expect((err as Error).message).toContain('../escaped.safetensors');
  });

  it('shards symlinked elsewhere, as in the Hugging Face cache, still open', async () => {
    const { dir } = await fixture('mixtral', { maxShardBytes: 16384 });
    const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const shard = index.weight_map['lm_head.weight'];
    const blob = path.join(dir, '..', `blob-${counter++}`);
    await copyFile(path.join(dir, shard), blob);
    await rm(path.join(dir, shard));
    await symlink(path.relative(dir, blob), path.join(dir, shard));
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.tensor('lm_head.weight')?.shape).toEqual([64, 32]);
    await ckpt.close();
  });
});

describe('readExpert bounds', () => {
  it('refuses dense layers, missing layers and missing experts', async () => {
    const { dir } = await fixture('deepseek');
    const ckpt = await openCheckpoint(dir);
    try {
      await expect(ckpt.readExpert(0, 0, 'gate')).rejects.toThrow(/layer 0 is not an MoE layer \(MoE layers: 1, 2\)/);
      await expect(ckpt.readExpert(7, 0, 'gate')).rejects.toThrow(/layer 7 is not an MoE layer/);
      await expect(ckpt.readExpert(1, 8, 'down')).rejects.toThrow(/expert 8 does not exist; layer 1 has experts 0\.\.7/);
      await expect(ckpt.readExpert(1, -1, 'up')).rejects.toBeInstanceOf(CheckpointError);
    } finally {
      await ckpt.close();
    }
  });
});
