/**
 * openCheckpoint on a generated checkpoint of every family, in per-expert, fused and sharded
 * form: layout against the HF names the fixtures write, counts against a formula computed from
 * config.json in the test, readExpert against the raw tensors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCheckpoint } from '../../src/checkpoint/describe.js';
import { expectedTensors } from '../../src/checkpoint/expected.js';
import { parameterCounts } from '../../src/checkpoint/counts.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { loadNativeEngine } from '../../src/engine/native.js';
import { setFastTransposeColumns } from '../../src/io/transpose.js';
import type { Checkpoint, ExpertMatrixType, FamilyName } from '../../src/checkpoint/types.js';
import { FIXTURE_FAMILIES, makeTinyCheckpoint, type TinyCheckpoint } from '../helpers/fixtures.js';
import { independentCounts } from './expected-counts.js';
import { makeScratch } from './tmp-dirs.js';

/** The HF on-disk name of one routed expert matrix, per family (from the model cards and the families' Hugging Face modeling code). */
function hfExpertName(family: FamilyName, l: number, e: number, type: ExpertMatrixType): string {
  if (family === 'mixtral' || family === 'minimax_m2' || family === 'phimoe') return `model.layers.${l}.block_sparse_moe.experts.${e}.${{ gate: 'w1', up: 'w3', down: 'w2' }[type]}.weight`;
  return `model.layers.${l}.mlp.experts.${e}.${type}_proj.weight`;
}

const TYPES: ExpertMatrixType[] = ['gate', 'up', 'down'];

/**
 * The families whose experts exist fused and transposed only (gate_up [E, H, 2I], down [E, I, H]):
 * where they are, and which columns of an expert's slab its gate's and up's rows i are (gpt-oss:
 * 2i and 2i + 1; Llama 4: i and I + i).
 */
const TRANSPOSED: Partial<Record<FamilyName, { prefix: (l: number) => string; gate: (i: number, I: number) => number; up: (i: number, I: number) => number }>> = {
  gpt_oss: { prefix: (l) => `model.layers.${l}.mlp.experts`, gate: (i) => 2 * i, up: (i) => 2 * i + 1 },
  llama4_text: { prefix: (l) => `model.layers.${l}.feed_forward.experts`, gate: (i) => i, up: (i, I) => I + i },
};

/** The addon's transposeColumns hook, which it installs on its first load only: kept for each transposed family's test. */
let addonTransposeColumns: ReturnType<typeof setFastTransposeColumns>;

/** the Granite MoE families, whose experts exist fused only */
const GRANITE = new Set<FamilyName>(['granitemoe', 'granitemoeshared', 'granitemoe_swa']);

/** A Granite family's fused experts in layer l: block_sparse_moe.input_linear / output_linear, GraniteMoE-SWA's under transformers' module names. */
function graniteFused(family: FamilyName, l: number): { gateUp: string; down: string } {
  const b = `model.layers.${l}.block_sparse_moe`;
  return family === 'granitemoe_swa' ? { gateUp: `${b}.experts.gate_up_proj`, down: `${b}.experts.down_proj` } : { gateUp: `${b}.input_linear.weight`, down: `${b}.output_linear.weight` };
}

let scratch: Awaited<ReturnType<typeof makeScratch>>;
beforeAll(async () => {
  scratch = await makeScratch('open');
});
afterAll(async () => {
  await scratch.cleanup();
});

describe.each(FIXTURE_FAMILIES)('%s', (family) => {
  let plain: TinyCheckpoint;
  let ckpt: Checkpoint;
  let fusedCkpt: Checkpoint;
  let shardedCkpt: Checkpoint;

  beforeAll(async () => {
    plain = await makeTinyCheckpoint(scratch.sub(`${family}-plain`), family, { seed: 7 });
    const fused = await makeTinyCheckpoint(scratch.sub(`${family}-fused`), family, { seed: 7, fusedExperts: true });
    const sharded = await makeTinyCheckpoint(scratch.sub(`${family}-sharded`), family, { seed: 7, maxShardBytes: 16384 });
    ckpt = await openCheckpoint(plain.dir);
    fusedCkpt = await openCheckpoint(fused.dir);
    shardedCkpt = await openCheckpoint(sharded.dir);
  });
  afterAll(async () => {
    await Promise.all([ckpt?.close(), fusedCkpt?.close(), shardedCkpt?.close()]);
  });

  it('resolves the family and the MoE / dense layers config.json implies', () => {
    const truth = independentCounts(plain.config);
    expect(ckpt.config.family).toBe(family);
    expect(ckpt.config.modelType).toBe(plain.config.model_type);
    expect(ckpt.config.numExperts).toBe(truth.numExperts);
    expect(ckpt.config.topK).toBe(truth.topK);
    expect(ckpt.config.expertIntermediateSize).toBe(truth.expertWidth);
    expect(ckpt.layout.layers.filter((l) => l.kind === 'moe').map((l) => l.index)).toEqual(truth.moeLayers);
    expect(ckpt.layout.layers.filter((l) => l.kind === 'dense').map((l) => l.index)).toEqual(truth.denseLayers);
    for (const layer of ckpt.layout.layers) {
      expect(Boolean(layer.moe)).toBe(layer.kind === 'moe');
      expect(Boolean(layer.dense)).toBe(layer.kind === 'dense');
    }
  });

  it('names exactly the tensors the fixture wrote, with the written shapes', () => {
    const expected = expectedTensors(ckpt.config, ckpt.layout);
    const written = new Map(plain.tensors.map((t) => [t.name, t.shape]));
    expect(new Set(expected.map((t) => t.name))).toEqual(new Set(written.keys()));
    for (const t of expected) expect(t.shape, t.name).toEqual(written.get(t.name));
    const d = describeCheckpoint(ckpt);
    expect(d.validation).toEqual({ ok: true, tensorsChecked: plain.tensors.length, unusedTensors: [] });
  });

  it('counts parameters as the independent formula does', () => {
    const truth = independentCounts(plain.config);
    const counts = parameterCounts(ckpt);
    const { moeLayers: _m, denseLayers: _d, numExperts: _e, topK: _k, expertWidth: _w, ...truthCounts } = truth;
    expect(counts).toEqual({ ...truthCounts, other: 0 });
    expect(truth.total).toBe(plain.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0));
    // the fused and sharded forms hold the same parameters
    expect(parameterCounts(fusedCkpt)).toEqual(counts);
    expect(parameterCounts(shardedCkpt)).toEqual(counts);
  });

  it('readExpert returns the raw per-expert tensor with shape [p, d] / [d, p]', async () => {
    const { hiddenSize: d, expertIntermediateSize: p } = ckpt.config;
    const layer = ckpt.layout.layers.find((l) => l.kind === 'moe')!.index;
    const transposed = TRANSPOSED[family];
    if (transposed) {
      // stored fused and transposed only: expert e's gate is the transpose of some columns of
      // gate_up_proj[e] ([H, 2I]), its up of others, its down the transpose of down_proj[e] ([I, H])
      const gateUp = await ckpt.readF32(`${transposed.prefix(layer)}.gate_up_proj`);
      const down = await ckpt.readF32(`${transposed.prefix(layer)}.down_proj`);
      // the JavaScript loop, then the native kernel the addon installs when it first loads
      // (io/transpose.ts): now, or for an earlier family of this file, which kept it
      const before = setFastTransposeColumns(undefined);
      const native = loadNativeEngine();
      const nativeHook = (addonTransposeColumns = setFastTransposeColumns(undefined) ?? before ?? addonTransposeColumns);
      if (native.ok) expect(nativeHook).toBeDefined();
      try {
        for (const hook of native.ok ? [undefined, nativeHook] : [undefined]) {
          setFastTransposeColumns(hook);
          await checkTransposedExperts();
        }
      } finally {
        if (native.ok) native.engine.dispose();
        setFastTransposeColumns(before);
      }
      return;
      async function checkTransposedExperts(): Promise<void> {
        for (const e of [0, ckpt.config.numExperts - 1]) {
          const gate = new Float32Array(p * d);
          const up = new Float32Array(p * d);
          const dn = new Float32Array(d * p);
          for (let i = 0; i < p; i++) {
            for (let h = 0; h < d; h++) {
              gate[i * d + h] = gateUp[(e * d + h) * 2 * p + transposed!.gate(i, p)];
              up[i * d + h] = gateUp[(e * d + h) * 2 * p + transposed!.up(i, p)];
              dn[h * p + i] = down[(e * p + i) * d + h];
            }
          }
          expect(await ckpt.readExpert(layer, e, 'gate')).toEqual(gate);
          expect(await ckpt.readExpert(layer, e, 'up')).toEqual(up);
          expect(await ckpt.readExpert(layer, e, 'down')).toEqual(dn);
        }
      }
    }
    if (GRANITE.has(family)) {
      // stored fused only: expert e's gate is rows [0, p) of input_linear[e], its up rows [p, 2p), its down output_linear[e]
      const names = graniteFused(family, layer);
      const gateUp = await ckpt.readF32(names.gateUp);
      const down = await ckpt.readF32(names.down);
      for (const e of [0, ckpt.config.numExperts - 1]) {
        expect(await ckpt.readExpert(layer, e, 'gate')).toEqual(gateUp.subarray(2 * e * p * d, (2 * e + 1) * p * d));
        expect(await ckpt.readExpert(layer, e, 'up')).toEqual(gateUp.subarray((2 * e + 1) * p * d, (2 * e + 2) * p * d));
        expect(await ckpt.readExpert(layer, e, 'down')).toEqual(down.subarray(e * d * p, (e + 1) * d * p));
      }
      return;
    }
    for (const e of [0, ckpt.config.numExperts - 1]) {
      for (const type of TYPES) {
        const name = hfExpertName(family, layer, e, type);
        expect(ckpt.tensor(name)?.shape).toEqual(type === 'down' ? [d, p] : [p, d]);
        const got = await ckpt.readExpert(layer, e, type);
        expect(got.length).toBe(p * d);
        expect(got).toEqual(await ckpt.readF32(name));
      }
    }
  });

  it('fused on-disk experts give the same matrices as per-expert ones', async () => {
    expect(describeCheckpoint(fusedCkpt).expertStorage).toBe('fused');
    // GraniteMoE has no per-expert form
    expect(describeCheckpoint(ckpt).expertStorage).toBe(GRANITE.has(family) || TRANSPOSED[family] ? 'fused' : 'per-expert');
    const { hiddenSize: H, expertIntermediateSize: I } = fusedCkpt.config;
    for (const layer of fusedCkpt.layout.layers.filter((l) => l.kind === 'moe')) {
      const l = layer.index;
      const m = `model.layers.${l}.mlp.experts`;
      expect(layer.moe!.fused).toEqual(
        GRANITE.has(family)
          ? graniteFused(family, l)
          : family === 'gpt_oss'
            ? { gateUp: `${m}.gate_up_proj`, down: `${m}.down_proj`, form: 'transposed-interleaved', gateUpBias: `${m}.gate_up_proj_bias`, downBias: `${m}.down_proj_bias` }
            : family === 'llama4_text'
              ? { gateUp: `model.layers.${l}.feed_forward.experts.gate_up_proj`, down: `model.layers.${l}.feed_forward.experts.down_proj`, form: 'transposed' }
              : family === 'qwen3_vl_moe_text'
                ? // the releases' transposed form, told from down_proj's shape [E, I, H]
                  { gateUp: `${m}.gate_up_proj`, down: `${m}.down_proj`, form: 'transposed' }
                : { gateUp: `${m}.gate_up_proj`, down: `${m}.down_proj` },
      );
      expect(layer.moe!.experts).toBeUndefined();
      const gateUp = await fusedCkpt.readF32(layer.moe!.fused!.gateUp);
      for (let e = 0; e < fusedCkpt.config.numExperts; e++) {
        for (const type of TYPES) {
          const fromFused = await fusedCkpt.readExpert(l, e, type);
          expect(fromFused, `layer ${l} expert ${e} ${type}`).toEqual(await ckpt.readExpert(l, e, type));
        }
        // gate rows come first in each expert's [2I, H] block, then up rows (the transposed forms: checked above)
        if (layer.moe!.fused!.form === undefined) expect(await fusedCkpt.readExpert(l, e, 'up')).toEqual(gateUp.subarray((2 * e + 1) * I * H, (2 * e + 2) * I * H));
      }
    }
  });

  it('opens a sharded copy with an index and reads the same experts', async () => {
    expect(shardedCkpt.shardCount).toBeGreaterThan(1);
    expect(new Set(shardedCkpt.tensorNames())).toEqual(new Set(ckpt.tensorNames()));
    const moe = shardedCkpt.layout.layers.filter((l) => l.kind === 'moe');
    const last = moe[moe.length - 1].index;
    for (const type of TYPES) expect(await shardedCkpt.readExpert(last, 3, type)).toEqual(await ckpt.readExpert(last, 3, type));
    expect(describeCheckpoint(shardedCkpt).files.length).toBe(shardedCkpt.shardCount);
  });
});
