/**
 * Inside a resident factored model, the hottest experts are materialised within the model's
 * share: first by the routing counts stored in the checkpoint, then by the live routing counts.
 * A materialised expert computes what its factored form computes.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/index.js';
import { loadCompressed, type CompressedModel } from '../../src/compressed/load.js';
import { createEngine } from '../../src/engine/index.js';
import { LiveExpertProvider } from '../../src/serve/expert-residency.js';
import { FactoredLinear, SwiGluExpert } from '../../src/compressed/factored-expert.js';
import { inspectServedModel } from '../../src/serve/models.js';
import { createServer } from '../../src/serve/server.js';
import { kvSlotBoundBytes } from '../../src/runtime/kv-cache.js';
import { copyFile } from 'node:fs/promises';
import { TINY_DIR } from './helpers.js';
import { tempDir, syntheticStats } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/rng.js';

const { engine } = await createEngine('auto', { threads: 1 });
let tmp: Awaited<ReturnType<typeof tempDir>>;
let model: CompressedModel;
let factoredDir: string;

beforeAll(async () => {
  tmp = await tempDir('expert-residency');
  const dir = path.join(tmp.dir, 'model');
  await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 3, numExperts: 8, numLayers: 2 });
  const original = await openCheckpoint(dir);
  const out = path.join(tmp.dir, 'factored');
  await compress(original, { retain: 0.6, groupSize: 2 }, { out, stats: syntheticStats(original, 256, 5), engine, evaluation: false });
  await original.close();
  model = await loadCompressed(out);
  factoredDir = out;
  // a served model needs a tokenizer: the shipped demo's (requests below send token ids, under this checkpoint's 64)
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(out, f));
});
afterAll(async () => {
  await model?.close();
  await tmp?.cleanup();
  engine.dispose();
});

/** "layer/expert" keys ordered by the checkpoint's per-layer routing shares, hottest first. */
function checkpointOrder(m: CompressedModel): string[] {
  const all = m.block.layers.flatMap((l) => {
    const total = l.routingCounts.reduce((a, b) => a + b, 0);
    return l.routingCounts.map((c, e) => ({ key: `${l.layer}/${e}`, share: c / total, layer: l.layer, e }));
  });
  return all.sort((a, b) => b.share - a.share || a.layer - b.layer || a.e - b.e).map((x) => x.key);
}

/** The model with its `factors` reads counted. */
function countingFactorReads(m: CompressedModel): { counted: CompressedModel; calls: { factors: number } } {
  const calls = { factors: 0 };
  const counted = new Proxy(m, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop !== 'factors') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: Parameters<CompressedModel['factors']>) => {
        calls.factors++;
        return target.factors(...args);
      };
    },
  });
  return { counted, calls };
}

/** factored matrices (of gate, up, down) summed over the layers, for one expert index */
function factoredMatricesPerExpert(m: CompressedModel): number {
  let n = 0;
  for (const l of m.block.layers) for (const t of ['gate', 'up', 'down'] as const) if (m.isFactored(l.layer, t)) n++;
  return n;
}

const bytesPerExpert = (m: CompressedModel) => 3 * m.config.hiddenSize * m.config.expertIntermediateSize * 4;

describe('LiveExpertProvider', () => {
  it('materialises the checkpoint’s hottest experts within the share', async () => {
    const p = new LiveExpertProvider(model, engine, { denseBytes: 3.5 * bytesPerExpert(model) });
    await p.loadAll();
    expect(p.denseCapacity).toBe(3);
    expect(p.denseExperts().sort()).toEqual(checkpointOrder(model).slice(0, 3).sort());
  });

  it('in the background (the server): loadAll returns with every expert read factored, and the same hottest are dense once settled', async () => {
    const { counted, calls } = countingFactorReads(model);
    const p = new LiveExpertProvider(counted, engine, { denseBytes: 3.5 * bytesPerExpert(model) });
    await p.loadAll({ materialise: 'background' });
    // one factored read per factored matrix of every expert, before loadAll returned
    const factoredMatrices = factoredMatricesPerExpert(model);
    expect(calls.factors).toBeGreaterThanOrEqual(factoredMatrices * model.config.numExperts);
    // an expert asked for meanwhile is there and computes
    const [l, e] = checkpointOrder(model)[0].split('/').map(Number);
    const layer = await p.layer(l);
    if (layer.mlp.kind !== 'moe') throw new Error('not an MoE layer');
    const x = Float32Array.from({ length: 2 * model.config.hiddenSize }, (_, i) => Math.sin(i));
    const out = new Float32Array(x.length);
    (await layer.mlp.moe.expert(e)).forward(engine, x, 2, out);
    expect(out.every(Number.isFinite)).toBe(true);
    // the event loop turns between two experts built (requests get in): callbacks run meanwhile
    let turns = 0;
    let done = false;
    const turn = () => {
      turns++;
      if (!done) setImmediate(turn);
    };
    setImmediate(turn);
    await p.settled();
    done = true;
    expect(turns).toBeGreaterThanOrEqual(2);
    expect(p.denseExperts().sort()).toEqual(checkpointOrder(model).slice(0, 3).sort());
    // materialising reused the factors each hot expert held: no read after loadAll's
    expect(calls.factors).toBe(factoredMatrices * model.config.numExperts);
  });

  it('a background materialisation that fails leaves the experts factored and says so; close() stops one under way', async () => {
    // loadAll's reads succeed; building the first dense expert fails (here its product, in the
    // engine: materialising reuses the factors held, so it reads nothing)
    let failing = false;
    const flaky = new Proxy(engine, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'gemm' || !failing) return typeof v === 'function' ? v.bind(target) : v;
        return () => {
          throw new Error('out of memory');
        };
      },
    });
    const errors: unknown[] = [];
    const p = new LiveExpertProvider(model, flaky, { denseBytes: 3.5 * bytesPerExpert(model), onError: (err) => errors.push(err) });
    const loaded = p.loadAll({ materialise: 'background' });
    failing = true;
    await loaded;
    await p.settled();
    failing = false;
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('out of memory');
    expect(p.denseExperts()).toEqual([]);
    const layer = await p.layer(model.block.layers[0].layer);
    if (layer.mlp.kind !== 'moe') throw new Error('not an MoE layer');
    expect(await layer.mlp.moe.expert(0)).toBeInstanceOf(SwiGluExpert);

    // close() while a materialisation runs: it ends after the expert it is building
    const q = new LiveExpertProvider(model, engine, { denseBytes: 3.5 * bytesPerExpert(model), onError: (err) => errors.push(err) });
    await q.loadAll({ materialise: 'background' });
    await q.close();
    expect(q.denseExperts().length).toBeLessThanOrEqual(1);
    await q.rebalance();
    expect(q.denseExperts().length).toBeLessThanOrEqual(1);
    expect(errors).toHaveLength(1);
  });

  it('then follows the live routing counts, and an expert that cools goes back to the factors it held', async () => {
    const { counted, calls } = countingFactorReads(model);
    const p = new LiveExpertProvider(counted, engine, { denseBytes: 3 * bytesPerExpert(model), priorWeight: 16, rebalanceEvery: 50 });
    await p.loadAll();
    expect(calls.factors).toBe(factoredMatricesPerExpert(model) * model.config.numExperts);
    const hotAtLoad = p.denseExperts();
    const coldest = checkpointOrder(model).slice(-2); // e.g. experts the calibration data rarely used
    for (const key of coldest) expect(p.denseExperts()).not.toContain(key);
    for (let i = 0; i < 200; i++) {
      for (const key of coldest) {
        const [l, e] = key.split('/').map(Number);
        const layer = await p.layer(l);
        if (layer.mlp.kind === 'moe') await layer.mlp.moe.expert(e);
      }
    }
    await new Promise((r) => setTimeout(r, 50));
    await p.rebalance();
    expect(p.rebalances).toBeGreaterThan(2);
    const dense = p.denseExperts();
    expect(dense).toHaveLength(3);
    for (const key of coldest) expect(dense).toContain(key);
    // the two that cooled run factored again, on the factors read at load: no read since
    const cooled = hotAtLoad.filter((key) => !dense.includes(key));
    expect(cooled).toHaveLength(2);
    for (const key of cooled) {
      const [l, e] = key.split('/').map(Number);
      const layer = await p.layer(l);
      if (layer.mlp.kind !== 'moe') throw new Error('expected a MoE layer');
      const expert = await layer.mlp.moe.expert(e);
      expect(expert).toBeInstanceOf(SwiGluExpert);
      for (const t of ['gate', 'up', 'down'] as const) if (model.isFactored(l, t)) expect((expert as SwiGluExpert)[t]).toBeInstanceOf(FactoredLinear);
    }
    expect(calls.factors).toBe(factoredMatricesPerExpert(model) * model.config.numExperts);
    const live = p.liveCounts();
    for (const key of coldest) {
      const [l, e] = key.split('/').map(Number);
      expect(live.get(l)![e]).toBe(200);
    }
  });

  it('hands held experts out at once for the one-call MoE path, counted as expert() counts them', async () => {
    const p = new LiveExpertProvider(model, engine, { denseBytes: 2 * bytesPerExpert(model), priorWeight: 16, rebalanceEvery: 1e9 });
    const [l, e] = checkpointOrder(model)[0].split('/').map(Number);
    const before = await p.layer(l);
    if (before.mlp.kind !== 'moe') throw new Error('expected a MoE layer');
    expect(before.mlp.moe.residentExpert?.(e)).toBeUndefined(); // not read yet: the block reads it
    await p.loadAll();
    const layer = await p.layer(l);
    if (layer.mlp.kind !== 'moe') throw new Error('expected a MoE layer');
    const held = layer.mlp.moe.residentExpert!(e)!;
    expect(held).toBe(await layer.mlp.moe.expert(e));
    // the hottest expert is materialised: dense matrices for the one call; a factored one has none
    expect(held.swiGluMatrices?.()).not.toBeNull();
    const cold = checkpointOrder(model).at(-1)!.split('/').map(Number);
    const coldLayer = await p.layer(cold[0]);
    if (coldLayer.mlp.kind !== 'moe') throw new Error('expected a MoE layer');
    expect(coldLayer.mlp.moe.residentExpert!(cold[1])!.swiGluMatrices?.()).toBeNull();
    expect(p.liveCounts().get(l)![e]).toBe(2);
    expect(p.liveCounts().get(cold[0])![cold[1]]).toBe(1);
  });

  it('a materialised expert computes what its factored form computes', async () => {
    const key = checkpointOrder(model)[0];
    const [l, e] = key.split('/').map(Number);
    const dense = new LiveExpertProvider(model, engine, { denseBytes: bytesPerExpert(model) });
    const factored = new LiveExpertProvider(model, engine, { denseBytes: 0 });
    await dense.loadAll();
    await factored.loadAll();
    expect(dense.denseExperts()).toEqual([key]);
    expect(factored.denseExperts()).toEqual([]);
    const H = model.config.hiddenSize;
    const rows = 5;
    const rand = mulberry32(9);
    const x = Float32Array.from({ length: rows * H }, () => rand() * 2 - 1);
    const run = async (p: LiveExpertProvider) => {
      const layer = await p.layer(l);
      if (layer.mlp.kind !== 'moe') throw new Error('not an MoE layer');
      const out = new Float32Array(rows * H);
      (await layer.mlp.moe.expert(e)).forward(engine, x, rows, out);
      return out;
    };
    const a = await run(dense);
    const b = await run(factored);
    const scale = Math.max(...b.map(Math.abs));
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-4 * scale + 1e-6);
  });
});

describe("a group's shared basis in the server", () => {
  it('is one array for all experts of the group, holding the stored basis', async () => {
    const provider = new LiveExpertProvider(model, engine, { denseBytes: 0 });
    await provider.loadAll();
    const layer = model.block.layers[0];
    const [type, t] = Object.entries(layer.types)[0] as ['gate' | 'up' | 'down', NonNullable<(typeof layer.types)['gate']>];
    const group = t.groups.find((g) => g.experts.length >= 2)!;
    const mlp = (await provider.layer(layer.layer)).mlp;
    if (mlp.kind !== 'moe') throw new Error('not an MoE layer');
    const ops = await Promise.all(group.experts.map(async (e) => (await mlp.moe.expert(e)) as SwiGluExpert));
    const index = { gate: 0, up: 1, down: 2 }[type];
    const linear = (x: SwiGluExpert) => [x.gate, x.up, x.down][index] as FactoredLinear;
    const bases = ops.map((x) => linear(x).matrix.basis);
    for (const b of bases) expect(b).toBe(bases[0]);
    // the shared array holds the stored basis
    expect(bases[0]).toEqual((await model.factors(layer.layer, group.experts[0], type)).basis);
  });
});

describe('a factored expert in the server', () => {
  it('stays at its factored size after a long prompt: the dense form a big batch builds is used for that call only', async () => {
    const p = new LiveExpertProvider(model, engine, { denseBytes: 0 });
    await p.loadAll();
    const layer = await p.layer(model.block.layers[0].layer);
    if (layer.mlp.kind !== 'moe') throw new Error('not an MoE layer');
    const expert = (await layer.mlp.moe.expert(0)) as SwiGluExpert;
    const ops = [expert.gate, expert.up, expert.down].filter((op): op is FactoredLinear => op instanceof FactoredLinear);
    expect(ops.length).toBeGreaterThan(0);
    // enough rows that a dense product is cheaper than the factored one for some projection
    let rows = 16;
    while (rows < 1 << 16 && !ops.some((op) => op.pathFor(rows) === 'materialised')) rows *= 2;
    expect(ops.some((op) => op.pathFor(rows) === 'materialised')).toBe(true);
    const H = model.config.hiddenSize;
    const rand = mulberry32(4);
    const x = Float32Array.from({ length: rows * H }, () => rand() * 2 - 1);
    const out = new Float32Array(rows * H);
    expert.forward(engine, x, rows, out);
    expect(out.every(Number.isFinite)).toBe(true);
    // a decoding step afterwards still runs factored: nothing dense was kept
    for (const op of ops) expect(op.pathFor(1)).toBe('factored');
    expect(p.denseExperts()).toEqual([]);
  });
});

describe('a factored model\'s planned size in the server', () => {
  it('materialises whole experts only, in the room its share leaves after one full-context KV cache', async () => {
    const spec = { id: 'm', dir: factoredDir };
    const base = (await inspectServedModel(spec, 0)).estimatedBytes;
    const probe = await inspectServedModel(spec, 0);
    const c = model.config;
    const kv = kvSlotBoundBytes(c.numLayers, c.numKvHeads * c.headDim, probe.contextLength, probe.contextLength);
    const per = bytesPerExpert(model);
    // an F32 model's materialised experts stay f32 (4 bytes a value) even with BF16 weights kept
    expect(model.materialisesBf16()).toBe(false);
    // room for half an expert after the KV reserve: none planned, and the KV cache fits beside it
    const tight = await inspectServedModel(spec, base + kv + 0.5 * per);
    expect(tight.materialiseBytes).toBe(0);
    expect(tight.estimatedBytes + kv).toBeLessThanOrEqual(base + kv + 0.5 * per);
    // room for 2.5 experts after the KV reserve: two are planned
    const roomy = await inspectServedModel(spec, base + kv + 2.5 * per);
    expect(roomy.materialiseBytes).toBe(2 * per);
    expect(roomy.estimatedBytes + kv).toBeLessThanOrEqual(base + kv + 2.5 * per);
    // --no-materialise-experts: the same room plans no dense experts, the model is its factors alone
    const factoredOnly = await inspectServedModel(spec, base + kv + 2.5 * per, { materialiseExperts: false });
    expect(factoredOnly.materialiseBytes).toBe(0);
    expect(factoredOnly.estimatedBytes).toBe(base);
  });
});

describe('a factored model served with materialiseExperts false (--no-materialise-experts)', () => {
  /** The prompt log-probabilities of `prompt` (token ids: the tiny model has 64), echoed, from a served model. */
  async function promptLogprobs(url: string, prompt: number[]): Promise<number[]> {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', prompt, max_tokens: 0, echo: true, logprobs: 1 }),
    });
    if (res.status !== 200) throw new Error(`${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { choices: { logprobs: { token_logprobs: (number | null)[] } }[] };
    return body.choices[0]!.logprobs.token_logprobs.slice(1) as number[];
  }

  /** Log-probs of one prompt from a fresh server, then again after other traffic has run through it. */
  async function beforeAndAfterTraffic(materialiseExperts: boolean): Promise<{ before: number[]; after: number[] }> {
    const server = await createServer({ models: [`m=${factoredDir}`], engine, processMetrics: false, maxBatchSize: 1, materialiseExperts, policy: 'keep-alive' });
    try {
      const url = await server.listen({ port: 0, host: '127.0.0.1' });
      const rng = mulberry32(7);
      const tokens = (n: number) => Array.from({ length: n }, () => Math.floor(rng() * 64));
      const prompt = tokens(48);
      const before = await promptLogprobs(url, prompt);
      // enough routed calls for the live counts to take over (the dense set is recomputed every 2048)
      for (let i = 0; i < 12; i++) await promptLogprobs(url, tokens(120));
      await new Promise((r) => setTimeout(r, 300)); // background materialisation settles
      const after = await promptLogprobs(url, prompt);
      return { before, after };
    } finally {
      await server.close();
    }
  }

  it('gives the same log-probabilities before and after it has served other requests; by default its dense experts change them', async () => {
    const fixed = await beforeAndAfterTraffic(false);
    expect(fixed.after).toEqual(fixed.before);
    // by default, once its experts are dense, the same prompt's results move in the last digits
    // (the dense Ŵ sums its products in another order than (x·Bᵀ)·Aᵀ): the flag is what holds them
    const live = await beforeAndAfterTraffic(true);
    expect(live.after).not.toEqual(fixed.after);
    for (let i = 0; i < fixed.after.length; i++) expect(Math.abs(live.after[i]! - fixed.after[i]!)).toBeLessThan(1e-4);
  });
});
