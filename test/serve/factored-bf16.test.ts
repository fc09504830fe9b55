/**
 * A factored model served with BF16 weights kept as stored (the server's default): its bases,
 * coefficients and unfactored expert matrices stay BF16 bit patterns (half the bytes), a group's
 * basis is still one shared array, every expert computes what the f32 form computes (factored
 * for a few rows, materialised for many), its materialised experts are the f32 ones rounded to
 * BF16, and the planned resident size counts 2 bytes for each kept value and materialised one.
 * The model is compressed here from a BF16 checkpoint, so its factors are BF16.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile } from 'node:fs/promises';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/index.js';
import { DenseLinear, FactoredLinear, SwiGluExpert } from '../../src/compressed/factored-expert.js';
import { loadCompressed, type CompressedModel } from '../../src/compressed/load.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { moeBlock } from '../../src/runtime/index.js';
import { uniform } from '../helpers/rng.js';
import { bf16HeldTensorNames, residentWeightBytes, type StandardAttentionWeights } from '../../src/runtime/index.js';
import { LiveExpertProvider } from '../../src/serve/expert-residency.js';
import { inspectServedModel } from '../../src/serve/models.js';
import { kvSlotBoundBytes } from '../../src/runtime/kv-cache.js';
import { tempDir, syntheticStats } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/rng.js';
import { TINY_DIR } from './helpers.js';

const { engine } = await createEngine('auto', { threads: 1 });
let tmp: Awaited<ReturnType<typeof tempDir>>;
let model: CompressedModel;
let factoredDir: string;

beforeAll(async () => {
  tmp = await tempDir('factored-bf16');
  const dir = path.join(tmp.dir, 'model');
  await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 3, numExperts: 8, numLayers: 2, dtype: 'BF16' });
  const original = await openCheckpoint(dir);
  factoredDir = path.join(tmp.dir, 'factored');
  await compress(original, { retain: 0.6, groupSize: 2 }, { out: factoredDir, stats: syntheticStats(original, 256, 5), engine, evaluation: false });
  await original.close();
  model = await loadCompressed(factoredDir);
});
afterAll(async () => {
  await model?.close();
  await tmp?.cleanup();
  engine.dispose();
});

const opsOf = (x: SwiGluExpert) => [x.gate, x.up, x.down];

async function expertOf(p: LiveExpertProvider, layer: number, e: number): Promise<SwiGluExpert> {
  const mlp = (await p.layer(layer)).mlp;
  if (mlp.kind !== 'moe') throw new Error('not an MoE layer');
  return (await mlp.moe.expert(e)) as SwiGluExpert;
}

describe('a factored model with BF16 weights kept as stored', () => {
  it('holds its factors and unfactored matrices as BF16, and a group still shares one basis array', async () => {
    const p = new LiveExpertProvider(model, engine, { denseBytes: 0, bf16: true });
    await p.loadAll();
    const layer = model.block.layers[0];
    let factored = 0;
    for (const e of [0, 1]) {
      for (const op of opsOf(await expertOf(p, layer.layer, e))) {
        if (op instanceof FactoredLinear) {
          factored++;
          expect(op.matrix.basis).toBeInstanceOf(Uint16Array);
          expect(op.matrix.coefficients).toBeInstanceOf(Uint16Array);
        } else {
          expect((op as DenseLinear).weight).toBeInstanceOf(Uint16Array);
        }
      }
    }
    expect(factored).toBeGreaterThan(0);
    const [type, t] = Object.entries(layer.types)[0] as ['gate' | 'up' | 'down', NonNullable<(typeof layer.types)['gate']>];
    const group = t.groups.find((g) => g.experts.length >= 2)!;
    const index = { gate: 0, up: 1, down: 2 }[type];
    const bases = await Promise.all(group.experts.map(async (e) => (opsOf(await expertOf(p, layer.layer, e))[index] as FactoredLinear).matrix.basis));
    for (const b of bases) expect(b).toBe(bases[0]);
  });

  it('every expert computes what the f32 form computes, factored (few rows) and materialised (many)', async () => {
    const bf16 = new LiveExpertProvider(model, engine, { denseBytes: 0, bf16: true });
    const f32 = new LiveExpertProvider(model, engine, { denseBytes: 0 });
    await bf16.loadAll();
    await f32.loadAll();
    const H = model.config.hiddenSize;
    for (const l of model.block.layers) {
      for (let e = 0; e < model.config.numExperts; e++) {
        const a = await expertOf(bf16, l.layer, e);
        const b = await expertOf(f32, l.layer, e);
        for (const rows of [1, 5, 4096]) {
          const rand = mulberry32(rows + e);
          const x = Float32Array.from({ length: rows * H }, () => rand() * 2 - 1);
          const ya = new Float32Array(rows * H);
          const yb = new Float32Array(rows * H);
          a.forward(engine, x, rows, ya);
          b.forward(engine, x, rows, yb);
          let scale = 0;
          let worst = 0;
          for (let i = 0; i < ya.length; i++) {
            scale = Math.max(scale, Math.abs(yb[i]));
            worst = Math.max(worst, Math.abs(ya[i] - yb[i]));
          }
          expect(worst).toBeLessThanOrEqual(1e-5 * scale);
        }
      }
    }
    // the 4096-row calls took the materialised path for some projection
    const ops = opsOf(await expertOf(bf16, model.block.layers[0].layer, 0)).filter((op): op is FactoredLinear => op instanceof FactoredLinear);
    expect(ops.some((op) => op.pathFor(4096) === 'materialised')).toBe(true);
  });

  it('materialises its hottest experts as the f32 matrices rounded to BF16: 2 bytes a value, so twice as many fit in a share', async () => {
    expect(model.materialisesBf16()).toBe(true);
    const { hiddenSize: H, expertIntermediateSize: I } = model.config;
    const share = 3.5 * 3 * H * I * 4; // 3.5 experts in f32
    const bf16 = new LiveExpertProvider(model, engine, { denseBytes: share, bf16: true });
    const f32 = new LiveExpertProvider(model, engine, { denseBytes: share });
    await bf16.loadAll();
    await f32.loadAll();
    expect(f32.denseCapacity).toBe(3);
    expect(bf16.denseCapacity).toBe(7);
    // the same prior picks the same order: f32's three are bf16's three hottest
    const dense = f32.denseExperts();
    expect(dense).toHaveLength(3);
    expect(bf16.denseExperts()).toHaveLength(7);
    expect(bf16.denseExperts()).toEqual(expect.arrayContaining(dense));
    for (const key of dense) {
      const [l, e] = key.split('/').map(Number);
      const a = opsOf(await expertOf(bf16, l, e));
      const b = opsOf(await expertOf(f32, l, e));
      for (let i = 0; i < 3; i++) {
        const [opA, opB] = [a[i], b[i]];
        if (!(opA instanceof DenseLinear) || !(opB instanceof DenseLinear)) throw new Error(`${key}: not materialised`);
        if (!(opB.weight instanceof Float32Array)) throw new Error('the f32 form holds f32');
        // exactly the round-to-nearest-even of the f32 matrix, rounded here bit by bit
        const expected = Uint16Array.from(new Uint32Array(opB.weight.buffer, opB.weight.byteOffset, opB.weight.length), (w) => ((w + 0x7fff + ((w >>> 16) & 1)) >>> 16) & 0xffff);
        expect(opA.weight).toBeInstanceOf(Uint16Array);
        expect(opA.weight).toEqual(expected);
        // its products differ from the f32 ones by at most the rounding: 2^-9 of Σ|w·x| per output
        const rows = 3;
        const rand = mulberry32(17 + i);
        const x = Float32Array.from({ length: rows * opB.d }, () => rand() * 2 - 1);
        const ya = new Float32Array(rows * opB.p);
        const yb = new Float32Array(rows * opB.p);
        opA.apply(engine, x, rows, ya);
        opB.apply(engine, x, rows, yb);
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < opB.p; j++) {
            let magnitude = 0;
            for (let q = 0; q < opB.d; q++) magnitude += Math.abs(opB.weight[j * opB.d + q] * x[r * opB.d + q]);
            expect(Math.abs(ya[r * opB.p + j] - yb[r * opB.p + j])).toBeLessThanOrEqual(2 ** -9 * magnitude * 1.01 + 1e-6);
          }
        }
      }
    }
  });

  it('generation on it (providerWith, the provider `generate` uses) reads a group\'s shared factor once for all its experts', async () => {
    const provider = model.providerWith({ bf16Weights: true });
    let groups = 0;
    for (const l of model.block.layers) {
      const mlp = (await provider.layer(l.layer)).mlp;
      if (mlp.kind !== 'moe') throw new Error('not an MoE layer');
      for (const [type, t] of Object.entries(l.types) as Array<['gate' | 'up' | 'down', NonNullable<(typeof l.types)['gate']>]>) {
        for (const g of t.groups) {
          if (g.experts.length < 2 || g.structure === 'base-delta') continue;
          const index = { gate: 0, up: 1, down: 2 }[type];
          const shared = await Promise.all(
            g.experts.map(async (e) => {
              const op = opsOf((await mlp.moe.expert(e)) as SwiGluExpert)[index] as FactoredLinear;
              return g.structure === 'output-basis' ? op.matrix.coefficients : op.matrix.basis;
            }),
          );
          for (const x of shared) expect(x).toBe(shared[0]);
          expect(shared[0]).toBeInstanceOf(Uint16Array);
          groups++;
        }
      }
    }
    expect(groups).toBeGreaterThan(0);
  });

  it('holds its attention, embedding table and lm_head as their stored bits too', async () => {
    const p = new LiveExpertProvider(model, engine, { denseBytes: 0, bf16: true });
    await p.loadAll();
    const names = model.layout.layers[0].attention;
    const attention = (await p.layer(0)).attention as StandardAttentionWeights;
    const bitsOf = (f: Float32Array) => Uint16Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length), (b) => b >>> 16);
    for (const m of ['q', 'k', 'v', 'o'] as const) expect(attention[m]).toEqual(bitsOf(await model.readF32(names[m])));
    const V = model.config.vocabSize;
    expect(await p.lmHeadRows(0, V)).toEqual(bitsOf(await model.readF32(model.layout.lmHead)));
    expect(await p.embedRows(0, V)).toEqual(bitsOf(await model.readF32(model.layout.embed)));
    const f32 = new LiveExpertProvider(model, engine, { denseBytes: 0 });
    expect(((await f32.layer(0)).attention as StandardAttentionWeights).q).toBeInstanceOf(Float32Array);
  });

  it('its planned resident size counts 2 bytes for each kept BF16 value', async () => {
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(factoredDir, f));
    const kept = bf16HeldTensorNames(model);
    let values = 0;
    let keptValues = 0;
    for (const name of model.tensorNames()) {
      const t = model.tensor(name)!;
      const n = t.shape.reduce((a, b) => a * b, 1);
      values += n;
      if (kept.has(name)) {
        expect(t.dtype).toBe('BF16');
        keptValues += n;
        expect(name).toMatch(/coeff|basis|base|experts\.\d+\.|_proj\.weight$|embed_tokens|lm_head/);
        expect(name).not.toMatch(/norm|\.gate\.weight$|residual/);
      }
    }
    expect(keptValues).toBeGreaterThan(0);
    expect([...model.tensorNames()].filter((n) => /residual/.test(n)).some((n) => kept.has(n))).toBe(false);
    expect(residentWeightBytes(model, { bf16Weights: true })).toBe(4 * values - 2 * keptValues);
    expect((await inspectServedModel({ id: 'm', dir: factoredDir }, 0)).estimatedBytes).toBe(4 * values - 2 * keptValues);
    expect((await inspectServedModel({ id: 'm', dir: factoredDir }, 0, { bf16Weights: false })).estimatedBytes).toBe(4 * values);
    // room for 2.5 f32 experts beyond the weights and one full-context KV cache: 5 BF16 ones planned, 2 f32 ones when widened
    const c = model.config;
    const perF32 = 3 * c.hiddenSize * c.expertIntermediateSize * 4;
    const probe = await inspectServedModel({ id: 'm', dir: factoredDir }, 0);
    const kv = kvSlotBoundBytes(c.numLayers, c.numKvHeads * c.headDim, probe.contextLength, probe.contextLength);
    const keptBf16 = await inspectServedModel({ id: 'm', dir: factoredDir }, probe.estimatedBytes + kv + 2.5 * perF32);
    expect(keptBf16.materialiseBytes).toBe(5 * (perF32 / 2));
    const widened = await inspectServedModel({ id: 'm', dir: factoredDir }, 4 * values + kv + 2.5 * perF32, { bf16Weights: false });
    expect(widened.materialiseBytes).toBe(2 * perF32);
  });

  it('a decoding step runs its resident factored experts in one kernel call, bit for bit what the expert-by-expert loop gives', async () => {
    const p = new LiveExpertProvider(model, engine, { denseBytes: 0, bf16: true });
    await p.loadAll();
    let calls = 0;
    const kernels = { ...engine.kernels, swiGluExperts: (...args: Parameters<Engine['kernels']['swiGluExperts']>) => (calls++, engine.kernels.swiGluExperts(...args)) };
    const counted = Object.create(engine, { kernels: { value: kernels } }) as Engine;
    const config = model.config;
    for (let l = 0; l < config.numLayers; l++) {
      const mlp = (await p.layer(l)).mlp;
      if (mlp.kind !== 'moe') continue;
      // the projections the kernel takes include factored ones (not only dense matrices)
      const ops = (await mlp.moe.expert(0)).swiGluOperands?.(1);
      expect(ops).toBeTruthy();
      expect([ops!.gate, ops!.up, ops!.down].some((o) => !ArrayBuffer.isView(o))).toBe(true);
      for (const tokens of [1, 6]) {
        const x = uniform(tokens * config.hiddenSize, 40 + l + tokens);
        const before = calls;
        const oneCall = await moeBlock(counted, config, l, mlp.moe, x, tokens);
        expect(calls).toBe(before + 1);
        // an observer of expert inputs takes the loop (expert.forward, one operator at a time)
        const loop = await moeBlock(counted, config, l, mlp.moe, x, tokens, { onExpertInput: () => undefined });
        expect(calls).toBe(before + 1);
        expect(Buffer.from(oneCall.buffer).equals(Buffer.from(loop.buffer))).toBe(true);
        expect(oneCall.some((v) => v !== 0)).toBe(true);
      }
    }
  });
});
