/**
 * Weights kept in BF16 as the checkpoint stores them (CheckpointWeights' `bf16Weights`, the
 * default of generation and the server): every matrix a forward pass multiplies by (routed
 * experts, attention projections, dense and shared MLPs, lm_head) and the embedding table hold
 * exactly the stored bits, per-expert and fused (transformers ≥ 5) expert layouts alike (a shared
 * MLP's fused gate/up too), while
 * norms, biases and the router stay f32; experts and whole forward passes match the f32 form;
 * the resident table and head are held once (tied embeddings: one table); a checkpoint stored in
 * another dtype keeps f32; the resident bytes count 2 per kept value, checked against an
 * independent count from the config; and a NaN in any BF16 weight is refused as in f32.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NonFiniteError, withFiniteChecks } from '../../src/checkpoint/finite.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint, FamilyName, FusedMlpNames, MlpNames } from '../../src/checkpoint/types.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import { batchFromSequences, Bf16SwiGlu, CheckpointWeights, DenseSwiGlu, forwardLogits, ResidentWeights, residentWeightBytes, SwiGlu, type StandardAttentionWeights } from '../../src/runtime/index.js';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { uniform } from '../helpers/small-rows-check.js';

const dirs: string[] = [];
const opened: Checkpoint[] = [];
const engines = await listAvailableEngines();
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  engines.forEach((e) => e.dispose());
});

async function fixture(family: FamilyName, opts: TinyCheckpointOptions): Promise<{ dir: string; ckpt: Checkpoint }> {
  const dir = mkdtempSync(path.join(tmpdir(), `rfid-bf16-${family}-`));
  dirs.push(dir);
  await makeTinyCheckpoint(dir, family, { seed: 5, ...opts });
  const ckpt = await openCheckpoint(dir);
  opened.push(ckpt);
  return { dir, ckpt };
}

const bitsOf = (f: Float32Array) => Uint16Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length), (b) => b >>> 16);

/** An MLP's three matrices as stored, widened (a fused gate/up tensor: its gate rows, then its up rows). */
async function storedMlp(ckpt: Checkpoint, names: MlpNames | FusedMlpNames): Promise<Record<'gate' | 'up' | 'down', Float32Array>> {
  if (!('gateUp' in names)) return { gate: await ckpt.readF32(names.gate), up: await ckpt.readF32(names.up), down: await ckpt.readF32(names.down) };
  const gateUp = await ckpt.readF32(names.gateUp);
  return { gate: gateUp.subarray(0, gateUp.length / 2), up: gateUp.subarray(gateUp.length / 2), down: await ckpt.readF32(names.down) };
}

/** Values of the matrices kept BF16, counted from the config alone (not from the tensor list). */
function keptValuesFromConfig(ckpt: Checkpoint): number {
  const c = ckpt.config;
  const H = c.hiddenSize;
  let values = c.vocabSize * H * (c.tieWordEmbeddings ? 1 : 2);
  for (const layer of ckpt.layout.layers) {
    values += 2 * c.numHeads * c.headDim * H + 2 * c.numKvHeads * c.headDim * H;
    if (layer.kind === 'dense') values += 3 * H * c.denseIntermediateSize;
    else values += c.numExperts * 3 * H * c.expertIntermediateSize + 3 * H * c.sharedExpertIntermediateSize;
  }
  return values;
}

describe.each([
  ['mixtral', false, false],
  ['qwen3_moe', false, false],
  ['qwen3_moe', true, true],
  ['olmoe', true, false],
  ['qwen2_moe', false, true],
  ['deepseek', false, false],
  // its shared MLP's gate and up stored in one tensor
  ['granitemoeshared', true, true],
] as const)('%s, fused experts %s, tied embeddings %s', (family, fusedExperts, tieWordEmbeddings) => {
  const made = fixture(family, { dtype: 'BF16', fusedExperts, tieWordEmbeddings });

  it('each routed expert is a Bf16SwiGlu holding exactly the stored bits', async () => {
    const { ckpt } = await made;
    const provider = new CheckpointWeights(ckpt, { bf16Weights: true });
    const layerIndex = ckpt.layout.layers.findIndex((l) => l.kind === 'moe');
    const layer = await provider.layer(layerIndex);
    if (layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    for (const e of [0, ckpt.config.numExperts - 1]) {
      const expert = await layer.mlp.moe.expert(e);
      expect(expert).toBeInstanceOf(Bf16SwiGlu);
      const bf16 = expert as Bf16SwiGlu;
      // readExpert widens the same stored values to f32: their upper halves are the kept bits
      for (const type of ['gate', 'up', 'down'] as const) expect(bf16[type]).toEqual(bitsOf(await ckpt.readExpert(layerIndex, e, type)));
      expect(bf16.byteLength).toBe(3 * ckpt.config.hiddenSize * ckpt.config.expertIntermediateSize * 2);
    }
  });

  it.each(engines.map((e) => [e.describe(), e] as const))('%s: the BF16 expert computes what the f32 expert computes', async (_name, engine) => {
    const { ckpt } = await made;
    const layerIndex = ckpt.layout.layers.findIndex((l) => l.kind === 'moe');
    const bf16Layer = await new CheckpointWeights(ckpt, { bf16Weights: true }).layer(layerIndex);
    const f32Layer = await new CheckpointWeights(ckpt).layer(layerIndex);
    if (bf16Layer.mlp.kind !== 'moe' || f32Layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    const h = ckpt.config.hiddenSize;
    for (const rows of [1, 3, 8, 13, 40]) {
      const x = uniform(rows * h, rows);
      const a = new Float32Array(rows * h);
      const b = new Float32Array(rows * h);
      const viaBf16 = await bf16Layer.mlp.moe.expert(2);
      const viaF32 = await f32Layer.mlp.moe.expert(2);
      expect(viaF32).toBeInstanceOf(DenseSwiGlu);
      viaBf16.forward(engine, x, rows, a);
      viaF32.forward(engine, x, rows, b);
      const scale = Math.max(...b.map(Math.abs));
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-5 * scale);
    }
  });

  it('attention, dense and shared MLPs hold their stored bits; norms, biases and the router stay f32', async () => {
    const { ckpt } = await made;
    const provider = new CheckpointWeights(ckpt, { bf16Weights: true });
    let sawDense = false;
    let sawShared = false;
    for (const [i, names] of ckpt.layout.layers.entries()) {
      const layer = await provider.layer(i);
      const attention = layer.attention as StandardAttentionWeights;
      for (const m of ['q', 'k', 'v', 'o'] as const) expect(attention[m]).toEqual(bitsOf(await ckpt.readF32(names.attention[m])));
      const norms = Object.values(layer.norms).flatMap((n) => (n ? [n.weight, n.bias] : []));
      for (const f32 of [...norms, attention.qBias, attention.qNorm]) if (f32) expect(f32).toBeInstanceOf(Float32Array);
      const mlps = [];
      if (layer.mlp.kind === 'dense' && names.dense) mlps.push([layer.mlp.dense, names.dense] as const);
      if (layer.mlp.kind === 'moe') {
        expect(layer.mlp.moe.router).toBeInstanceOf(Float32Array);
        if (layer.mlp.moe.shared && names.moe?.shared) mlps.push([layer.mlp.moe.shared, names.moe.shared] as const);
        sawShared ||= layer.mlp.moe.shared !== undefined;
      }
      sawDense ||= layer.mlp.kind === 'dense';
      for (const [mlp, mlpNames] of mlps) {
        expect(mlp).toBeInstanceOf(SwiGlu);
        const stored = await storedMlp(ckpt, mlpNames);
        for (const t of ['gate', 'up', 'down'] as const) expect((mlp as SwiGlu)[t]).toEqual(bitsOf(stored[t]));
      }
    }
    expect(sawDense).toBe(family === 'qwen2_moe' || family === 'deepseek');
    expect(sawShared).toBe(family === 'qwen2_moe' || family === 'deepseek' || family === 'granitemoeshared');
  });

  it('the resident embedding table and lm_head hold the stored bits, read once (one table when tied)', async () => {
    const { ckpt } = await made;
    const { vocabSize: V } = ckpt.config;
    const reads: string[] = [];
    const counting = new Proxy(ckpt, {
      get(target, prop) {
        const value = Reflect.get(target, prop) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (typeof prop === 'string' && prop.startsWith('read') && typeof args[0] === 'string') reads.push(`${prop} ${args[0]}`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const resident = new ResidentWeights(new CheckpointWeights(counting, { bf16Weights: true }));
    const ids = Int32Array.of(0, V - 1, 7, 7, 3);
    const embedded = await resident.embed(ids);
    await resident.embed(Int32Array.of(1, 2));
    const table = await ckpt.readF32(ckpt.layout.embed);
    const H = ckpt.config.hiddenSize;
    ids.forEach((id, i) => expect(embedded.subarray(i * H, (i + 1) * H)).toEqual(table.subarray(id * H, (id + 1) * H)));
    const head = await resident.lmHeadRows(0, V);
    expect(head).toEqual(bitsOf(await ckpt.readF32(ckpt.layout.lmHead)));
    expect((await resident.lmHeadRows(5, 9)).length).toBe(4 * H);
    await resident.lmHeadRows(9, V);
    const embedReads = reads.filter((r) => r.endsWith(` ${ckpt.layout.embed}`));
    const headReads = reads.filter((r) => r.endsWith(` ${ckpt.layout.lmHead}`));
    if (tieWordEmbeddings) {
      expect(embedReads).toHaveLength(1);
      expect(head.buffer).toBe((await resident.embedRows(0, V)).buffer);
    } else {
      expect(embedReads).toHaveLength(1);
      expect(headReads).toHaveLength(1);
    }
  });

  it.each(engines.map((e) => [e.describe(), e] as const))('%s: a whole forward pass with BF16 weights computes what the f32 one computes', async (_name, engine) => {
    const { ckpt } = await made;
    const V = ckpt.config.vocabSize;
    const batch = batchFromSequences([Array.from({ length: 9 }, (_, i) => (i * 11 + 3) % V), [1, 4, 9, 16 % V]]);
    const a = await forwardLogits(new CheckpointWeights(ckpt, { bf16Weights: true }), engine, batch);
    const b = await forwardLogits(new CheckpointWeights(ckpt), engine, batch);
    const scale = Math.max(...b.map(Math.abs));
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThanOrEqual(1e-4 * scale);
  });

  it('resident bytes: 2 per kept value, 4 per other value', async () => {
    const { ckpt } = await made;
    let values = 0;
    for (const name of ckpt.tensorNames()) values += ckpt.tensor(name)!.shape.reduce((x, y) => x * y, 1);
    expect(residentWeightBytes(ckpt)).toBe(4 * values);
    expect(residentWeightBytes(ckpt, { bf16Weights: true })).toBe(4 * values - 2 * keptValuesFromConfig(ckpt));
  });
});

describe('where experts stay f32', () => {
  it.each(['F32', 'F16'] as const)('a %s checkpoint keeps f32 weights and counts 4 bytes a value', async (dtype) => {
    const { ckpt } = await fixture('qwen2_moe', { dtype });
    const provider = new ResidentWeights(new CheckpointWeights(ckpt, { bf16Weights: true }));
    const layer = await provider.layer(0);
    if (layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    expect(await layer.mlp.moe.expert(0)).toBeInstanceOf(DenseSwiGlu);
    expect((layer.attention as StandardAttentionWeights).q).toBeInstanceOf(Float32Array);
    expect((layer.mlp.moe.shared as SwiGlu).gate).toBeInstanceOf(Float32Array);
    expect(await provider.lmHeadRows(0, 2)).toBeInstanceOf(Float32Array);
    expect(residentWeightBytes(ckpt, { bf16Weights: true })).toBe(residentWeightBytes(ckpt));
  });

  it('bf16Weights off (the default of CheckpointWeights) widens every BF16 weight to f32', async () => {
    const { ckpt } = await fixture('qwen2_moe', { dtype: 'BF16' });
    const provider = new ResidentWeights(new CheckpointWeights(ckpt));
    const layer = await provider.layer(0);
    if (layer.mlp.kind !== 'moe') throw new Error('expected an MoE layer');
    expect(await layer.mlp.moe.expert(0)).toBeInstanceOf(DenseSwiGlu);
    for (const w of [(layer.attention as StandardAttentionWeights).q, (layer.attention as StandardAttentionWeights).o, (layer.mlp.moe.shared as SwiGlu).down, await provider.lmHeadRows(0, 2), await provider.embedRows(0, 2)]) expect(w).toBeInstanceOf(Float32Array);
  });
});

describe('finite checks', () => {
  it('a NaN in a BF16 expert is refused with its layer, expert and tensor', async () => {
    const { dir } = await fixture('mixtral', { dtype: 'BF16' });
    const file = path.join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    const name = 'model.layers.1.block_sparse_moe.experts.3.w2.weight';
    const at = 8 + headerLength + header[name].data_offsets[0] + 2 * 5;
    bytes.writeUInt16LE(0x7fc0, at); // a BF16 quiet NaN at element 5
    writeFileSync(file, bytes);
    const ckpt = withFiniteChecks(await openCheckpoint(dir));
    opened.push(ckpt);
    await expect(ckpt.readExpertBf16!(1, 3, 'down')).rejects.toThrow(NonFiniteError);
    await expect(ckpt.readExpertBf16!(1, 3, 'down')).rejects.toThrow(/layer 1, expert 3 down \(tensor model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight\): holds NaN \(element 5/);
    expect(await ckpt.readExpertBf16!(1, 2, 'down')).toBeInstanceOf(Uint16Array);
  });

  it.each([
    ['an attention projection', 'model.layers.0.self_attn.q_proj.weight', 0x7f80, '\\+Inf'],
    ['the embedding table', 'model.embed_tokens.weight', 0xff80, '-Inf'],
  ])('a non-finite value in %s kept BF16 is refused with its tensor', async (_what, name, bits, shown) => {
    const { dir } = await fixture('mixtral', { dtype: 'BF16' });
    const file = path.join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    bytes.writeUInt16LE(bits, 8 + headerLength + header[name].data_offsets[0] + 2 * 70);
    writeFileSync(file, bytes);
    const ckpt = withFiniteChecks(await openCheckpoint(dir));
    opened.push(ckpt);
    const escaped = name.replace(/\./g, '\\.');
    await expect(ckpt.readBf16!(name)).rejects.toThrow(new RegExp(`tensor ${escaped}: holds ${shown} \\(element 70\\)`));
    // a row read reports the element's index in the whole tensor (element 70 lies in row 2 of 32 columns)
    expect(ckpt.config.hiddenSize).toBe(32);
    await expect(ckpt.readRowsBf16!(name, 1, 3)).rejects.toThrow(new RegExp(`holds ${shown} \\(element 70\\)`));
    const provider = new ResidentWeights(new CheckpointWeights(ckpt, { bf16Weights: true }));
    await expect(name.includes('embed') ? provider.embed(Int32Array.of(0)) : provider.layer(0)).rejects.toThrow(NonFiniteError);
  });
});
