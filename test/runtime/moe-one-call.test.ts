/**
 * The MoE block's one-call path (ForwardKernels.swiGluExperts): once a resident provider holds a
 * layer's experts, a block whose routed experts are dense and have at most 8 rows each runs them
 * in one kernel call, and its output is bit for bit the expert-by-expert loop's (the first call,
 * which reads the experts), on every engine, BF16 and f32, with Qwen2-MoE's gated shared expert
 * (the tfjs engine's f32 products are its own, not the kernel's: there to f32 rounding), and with
 * Llama 4's routing weights on the experts' inputs; a
 * prompt's BF16 experts (more than 8 rows) in one call too; f32 experts with more rows, a
 * streaming provider or an observer of expert inputs keep the loop. Experts held packed as their
 * checkpoints store them (FP8 codes: Qwen3-FP8's form; MXFP4: gpt-oss's, with its clamped
 * activation) go in the one call too, a step's and a prompt's, bit for bit the loop's and the
 * one call's over the same experts decoded to BF16.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint, FamilyName } from '../../src/checkpoint/types.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { CheckpointWeights, moeBlock, ResidentWeights, type MoeWeights } from '../../src/runtime/index.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { quantizeToFp8, withExpertsDecoded } from '../helpers/fp8-fixture.js';
import { rewriteExpertsAsMxfp4, withMxfp4Decoded } from '../helpers/mxfp4-fixture.js';
import { Fp8SwiGlu } from '../../src/runtime/fp8-swiglu.js';
import { Mxfp4SwiGlu } from '../../src/runtime/mxfp4-swiglu.js';
import { uniform } from '../helpers/small-rows-check.js';

const dirs: string[] = [];
const opened: Checkpoint[] = [];
const engines = await listAvailableEngines();
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  engines.forEach((e) => e.dispose());
});

async function fixture(family: FamilyName, dtype: 'F32' | 'BF16'): Promise<Checkpoint> {
  const dir = mkdtempSync(path.join(tmpdir(), `rfid-moe-one-call-${family}-`));
  dirs.push(dir);
  await makeTinyCheckpoint(dir, family, { seed: 9, dtype, numExperts: 8, topK: 2, hiddenSize: 48, expertIntermediateSize: 40 });
  const ckpt = await openCheckpoint(dir);
  opened.push(ckpt);
  return ckpt;
}

/** The engine with swiGluExperts calls counted. */
function counting(engine: Engine): { engine: Engine; calls: () => number } {
  let calls = 0;
  const kernels = { ...engine.kernels, swiGluExperts: (...args: Parameters<Engine['kernels']['swiGluExperts']>) => (calls++, engine.kernels.swiGluExperts(...args)) };
  return { engine: Object.create(engine, { kernels: { value: kernels } }) as Engine, calls: () => calls };
}

async function moeLayer(provider: { layer(i: number): Promise<import('../../src/runtime/index.js').LayerWeights> }, ckpt: Checkpoint): Promise<{ index: number; moe: MoeWeights }> {
  for (let l = 0; l < ckpt.config.numLayers; l++) {
    const layer = await provider.layer(l);
    if (layer.mlp.kind === 'moe') return { index: l, moe: layer.mlp.moe };
  }
  throw new Error('no MoE layer');
}

const bytes = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

/** A tiny checkpoint whose experts are stored packed: FP8 (Qwen3-MoE, 32×32 blocks) or MXFP4 (gpt-oss); and the same read decoded to BF16. */
async function packedFixture(format: 'fp8' | 'mxfp4'): Promise<{ packed: Checkpoint; decoded: Checkpoint }> {
  const dir = mkdtempSync(path.join(tmpdir(), `rfid-moe-one-call-${format}-`));
  dirs.push(dir);
  const shape = { seed: 12, dtype: 'BF16' as const, numExperts: 8, topK: 2, hiddenSize: 64, expertIntermediateSize: 32 };
  if (format === 'fp8') {
    await makeTinyCheckpoint(dir, 'qwen3_moe', { ...shape, fusedExperts: false });
    await quantizeToFp8(dir, 5, { block: [32, 32], pick: (name) => /\.experts\./.test(name) });
  } else {
    await makeTinyCheckpoint(dir, 'gpt_oss', shape);
    await rewriteExpertsAsMxfp4(dir, 5);
  }
  const packed = await openCheckpoint(dir);
  opened.push(packed);
  return { packed, decoded: format === 'fp8' ? withExpertsDecoded(packed) : withMxfp4Decoded(packed) };
}

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, base) => {
  it.each(['fp8', 'mxfp4'] as const)('%s experts held as stored: one call, bit for bit the loop and the experts decoded, a step and a prompt', async (format) => {
    const { packed, decoded } = await packedFixture(format);
    const { engine, calls } = counting(base);
    const held = await moeLayer(new ResidentWeights(new CheckpointWeights(packed, { bf16Weights: true })), packed);
    expect(await held.moe.expert(0)).toBeInstanceOf(format === 'fp8' ? Fp8SwiGlu : Mxfp4SwiGlu);
    const plain = await moeLayer(new ResidentWeights(new CheckpointWeights(decoded, { bf16Weights: true })), decoded);
    expect(await plain.moe.expert(0)).not.toBeInstanceOf(format === 'fp8' ? Fp8SwiGlu : Mxfp4SwiGlu);
    // the loop: a streaming provider's, which reads the experts expert by expert
    const streaming = await moeLayer(new CheckpointWeights(packed, { bf16Weights: true }), packed);
    expect(streaming.moe.residentExpert).toBeUndefined();
    for (const tokens of [5, 40]) {
      const x = uniform(tokens * packed.config.hiddenSize, tokens);
      // the first call reads the experts it routes to; then they are held
      await moeBlock(engine, packed.config, held.index, held.moe, x, tokens);
      const before = calls();
      const oneCall = await moeBlock(engine, packed.config, held.index, held.moe, x, tokens);
      expect(calls()).toBe(before + 1);
      const loop = await moeBlock(engine, packed.config, streaming.index, streaming.moe, x, tokens);
      expect(calls()).toBe(before + 1);
      await moeBlock(engine, decoded.config, plain.index, plain.moe, x, tokens);
      const asBf16 = await moeBlock(engine, decoded.config, plain.index, plain.moe, x, tokens);
      expect(oneCall.some((v) => v !== 0)).toBe(true);
      expect(bytes(oneCall).equals(bytes(loop)), `${tokens} tokens: the loop`).toBe(true);
      expect(bytes(oneCall).equals(bytes(asBf16)), `${tokens} tokens: decoded to BF16`).toBe(true);
    }
  });

  it.each([
    ['mixtral', 'BF16', true],
    ['mixtral', 'F32', false],
    ['qwen2_moe', 'BF16', true],
    // gpt-oss: its clamped activation and biases in the one call (ClampedSwiGluExperts)
    ['gpt_oss', 'BF16', true],
    ['gpt_oss', 'F32', false],
    // Llama 4: one routed row per (token, expert), scaled by its weight, outputs summed after
    ['llama4_text', 'BF16', true],
    ['llama4_text', 'F32', false],
  ] as const)('%s %s: the one call equals the loop bit for bit', async (family, dtype, bf16Weights) => {
    const ckpt = await fixture(family, dtype);
    const { engine, calls } = counting(base);
    const provider = new ResidentWeights(new CheckpointWeights(ckpt, { bf16Weights }));
    const { index, moe } = await moeLayer(provider, ckpt);
    expect(moe.residentExpert).toBeTypeOf('function');
    const tokens = 6; // at most 6 rows per expert
    const x = uniform(tokens * ckpt.config.hiddenSize, 3);
    const loop = await moeBlock(engine, ckpt.config, index, moe, x, tokens);
    expect(calls()).toBe(0); // the experts were read by this call, expert by expert
    const oneCall = await moeBlock(engine, ckpt.config, index, moe, x, tokens);
    expect(calls()).toBe(1);
    if (base.name === 'tfjs' && !bf16Weights) {
      for (let i = 0; i < loop.length; i++) expect(Math.abs(oneCall[i] - loop[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(loop[i])));
    } else {
      expect(bytes(oneCall).equals(bytes(loop))).toBe(true);
    }
    expect(oneCall.some((v) => v !== 0)).toBe(true);

    // a prompt (more than 8 rows for some expert): once every expert is held, one call with BF16
    // experts, the loop with f32 ones; either way what a streaming provider's loop gives
    const many = 40;
    const y = uniform(many * ckpt.config.hiddenSize, 4);
    await moeBlock(engine, ckpt.config, index, moe, y, many);
    const held = calls();
    const prompt = await moeBlock(engine, ckpt.config, index, moe, y, many);
    expect(calls()).toBe(held + (bf16Weights ? 1 : 0));
    const streaming = await moeLayer(new CheckpointWeights(ckpt, { bf16Weights }), ckpt);
    expect(streaming.moe.residentExpert).toBeUndefined();
    const again = await moeBlock(engine, ckpt.config, index, streaming.moe, y, many);
    if (base.name === 'tfjs' && !bf16Weights) {
      for (let i = 0; i < again.length; i++) expect(Math.abs(prompt[i] - again[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(again[i])));
    } else {
      expect(bytes(prompt).equals(bytes(again))).toBe(true);
    }
    const callsBefore = calls();

    // an observer of expert inputs sees every expert: the loop
    const seen: number[] = [];
    const observed = await moeBlock(engine, ckpt.config, index, moe, x, tokens, { onExpertInput: (_l, e) => void seen.push(e) });
    expect(calls()).toBe(callsBefore);
    expect(seen.length).toBeGreaterThan(0);
    expect(bytes(observed).equals(bytes(loop))).toBe(true);
  });
});
