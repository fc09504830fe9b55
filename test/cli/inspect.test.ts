/**
 * `rfid-moe inspect` run as a user runs it (in a child process; test/helpers/cli.ts says which entry):
 * `--json` on a generated checkpoint of every family reports the counts computed independently from
 * config.json; a single .safetensors file lists its tensors; broken input exits 2 with one line.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/pipeline.js';
import type { RfidBlock } from '../../src/compress/output/block.js';
import type { CompressedDescription } from '../../src/compressed/describe.js';
import { densify } from '../../src/compressed/densify.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { TensorStore } from '../../src/io/sharded.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { syntheticStats } from '../compress/helpers.js';
import { FIXTURE_FAMILIES, makeTinyCheckpoint } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';
import { independentCounts } from '../checkpoint/expected-counts.js';
import { makeScratch } from '../checkpoint/tmp-dirs.js';
import { cliArgs } from '../helpers/cli.js';

const run = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function inspect(...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...cliArgs, 'inspect', ...args], { cwd: repoRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let scratch: Awaited<ReturnType<typeof makeScratch>>;
beforeAll(async () => {
  scratch = await makeScratch('cli');
});
afterAll(async () => {
  await scratch.cleanup();
});

describe('inspect <dir> --json', () => {
  // one CLI process per family, each its own test: all of them at once outgrew one test's time limit on two cores
  const variants = FIXTURE_FAMILIES.map((family, i) => ({
    family,
    // rotate the storage form over the families so every form goes through the CLI
    opts: [{}, { fusedExperts: true }, { maxShardBytes: 16384 }][i % 3],
  }));
  it.each(variants)('reports the right counts for $family (per-expert, fused and sharded forms rotate over the families)', async ({ family, opts }) => {
    const fixture = await makeTinyCheckpoint(scratch.sub(`json-${family}`), family, { seed: 5, ...opts });
    const result = await inspect(fixture.dir, '--json');
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as Record<string, unknown> & { parameters: Record<string, number>; layers: Array<{ experts: number }> };
    const truth = independentCounts(fixture.config);
    expect(out).toMatchObject({
      ok: true,
      type: 'checkpoint',
      family,
      modelType: family,
      numLayers: fixture.config.num_hidden_layers,
      moeLayers: truth.moeLayers,
      denseLayers: truth.denseLayers,
      numExperts: truth.numExperts,
      topK: truth.topK,
      expertShapes: { gate: [truth.expertWidth, 32], up: [truth.expertWidth, 32], down: [32, truth.expertWidth] },
      dtypes: { F32: fixture.tensors.length },
      validation: { ok: true, tensorsChecked: fixture.tensors.length, unusedTensors: [] },
    });
    expect(out.layers.map((l) => l.experts)).toEqual(Array.from({ length: fixture.config.num_hidden_layers as number }, (_, l) => (truth.moeLayers.includes(l) ? truth.numExperts : 0)));
    expect(out.parameters).toMatchObject({ total: truth.total, experts: truth.experts, routedGateUp: truth.routedGateUp, sharedExperts: truth.sharedExperts, routers: truth.routers });
    const sharded = (out.shardCount as number) > 1;
    expect(sharded, family).toBe('maxShardBytes' in opts);
  });

  it('prints a human summary by default', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub('human'), 'qwen2_moe');
    const result = await inspect(dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/family\s+Qwen2-MoE \(model_type qwen2_moe\)/);
    expect(result.stdout).toMatch(/layers\s+3: MoE 0, 2; dense 1/);
    expect(result.stdout).toMatch(/gate \+ up\s+16,384/);
    expect(result.stdout).toContain('validation: OK, 91 tensors match config.json');
    // a family that rotates part of each head says how much
    const glm = await makeTinyCheckpoint(scratch.sub('human-glm'), 'glm4_moe', { partialRotaryFactor: 0.25 });
    expect((await inspect(glm.dir)).stdout).toMatch(/attention\s+4 heads, 2 kv heads, head_dim 16; RoPE default over the first 4 of each head's 16 values\n/);
    // a sliding window, with the layers that use it (text and JSON)
    const dots = await makeTinyCheckpoint(scratch.sub('human-dots'), 'dots1', { numLayers: 3, configKeys: { sliding_window: 5, max_window_layers: 1 } });
    expect((await inspect(dots.dir)).stdout).toMatch(/RoPE default; a sliding window of 5 positions in layers 1, 2\n/);
    expect(JSON.parse((await inspect(dots.dir, '--json')).stdout).slidingWindow).toEqual({ size: 5, layers: [1, 2] });
    // and one with multipliers names them
    const granite = await makeTinyCheckpoint(scratch.sub('human-granite'), 'granitemoe');
    expect((await inspect(granite.dir)).stdout).toMatch(/multipliers\s+embeddings × 12, residual × 0.22, softmax scale 0.015625, logits ÷ 6\n/);
    // gpt-oss: its sinks, its routing and its activation
    const gptOss = await makeTinyCheckpoint(scratch.sub('human-gpt-oss'), 'gpt_oss');
    const text = (await inspect(gptOss.dir)).stdout;
    expect(text).toMatch(/RoPE yarn; a sink logit per head; a sliding window of 5 positions in layers 0\n/);
    expect(text).toMatch(/top-2 of the biased router logits, a softmax over those k; activation \(up \+ 1\)·g·sigmoid\(1.702·g\), g = min\(gate, 7\), up within ±7, biases on the projections; no shared expert/);
    expect(JSON.parse((await inspect(gptOss.dir, '--json')).stdout)).toMatchObject({ routing: 'topk-softmax', attentionSinks: true, expertActivation: { kind: 'clamped-swiglu', alpha: 1.702, limit: 7 } });
    // Cohere2-MoE: LayerNorms in its parallel block, routing without a bias, the averaged shared expert, the scaled head
    const cohere = await makeTinyCheckpoint(scratch.sub('human-cohere'), 'cohere2_moe');
    const cohereText = (await inspect(cohere.dir)).stdout;
    expect(cohereText).toMatch(/norms\s+LayerNorms \(mean-centred, no bias\) before the attention and the MLP, which read it in parallel and join the residual together, and the final norm\n/);
    expect(cohereText).toMatch(/top-2 of the router logits, a softmax over those k; shared expert width 16, averaged with the routed experts' sum\n/);
    expect(cohereText).toMatch(/multipliers\s+logits ÷ 4\n/);
    expect(JSON.parse((await inspect(cohere.dir, '--json')).stdout)).toMatchObject({ normKind: { kind: 'layer', bias: false }, parallelBlock: true, sharedExpertCombination: 'average' });
    // PhiMoE: biased LayerNorms, its head's bias, sparsemixer
    const phi = (await inspect((await makeTinyCheckpoint(scratch.sub('human-phimoe'), 'phimoe')).dir)).stdout;
    expect(phi).toMatch(/norms\s+LayerNorms \(mean-centred, with bias\) before the attention, before the MLP, and the final norm\n/);
    expect(phi).toMatch(/hidden \/ vocab\s+32 \/ 64 \(lm_head with a bias\)\n/);
    expect(phi).toMatch(/top-2 by sparsemixer \(the best logit, then the best of the rest, each weighed by a softmax over the logits within a relative margin of 0.02 of it\); no shared expert/);
  });
});

describe('inspect <file.safetensors>', () => {
  it('lists tensors with dtype, shape, byte range, and the metadata', async () => {
    const { dir, tensors } = await makeTinyCheckpoint(scratch.sub('file'), 'olmoe', { dtype: 'BF16' });
    const result = await inspect(path.join(dir, 'model.safetensors'), '--json');
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as { type: string; metadata: unknown; tensorCount: number; tensors: Array<{ name: string; dtype: string; shape: number[]; dataOffsets: [number, number] }> };
    expect(out.type).toBe('safetensors-file');
    expect(out.metadata).toEqual({ format: 'pt' });
    expect(out.tensorCount).toBe(tensors.length);
    const byName = new Map(out.tensors.map((t) => [t.name, t]));
    for (const t of tensors) {
      const got = byName.get(t.name)!;
      expect(got.dtype).toBe('BF16');
      expect(got.shape).toEqual(t.shape);
      expect(got.dataOffsets[1] - got.dataOffsets[0]).toBe(2 * t.shape.reduce((a, b) => a * b, 1));
    }
    const human = await inspect(path.join(dir, 'model.safetensors'));
    expect(human.stdout).toMatch(/model\.layers\.1\.self_attn\.q_norm\.weight\s+BF16\s+\[32\]\s+\[\d+, \d+\)/);
    expect(human.stdout).toContain('metadata: format=pt');
  });
});

describe('broken input exits 2 with one clear line', () => {
  it('unknown model_type, missing path, damaged file, missing config.json', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub('broken'), 'deepseek');
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'gpt2' }));
    const garbage = scratch.sub('garbage.safetensors');
    await writeFile(garbage, new Uint8Array([1, 2, 3]));

    const [unknownJson, unknownPlain, missing, damaged] = await Promise.all([
      inspect(dir, '--json'),
      inspect(dir),
      inspect(scratch.sub('nope')),
      inspect(garbage, '--json'),
    ]);
    expect(unknownJson.code).toBe(2);
    const err = JSON.parse(unknownJson.stdout) as { ok: boolean; error: { kind: string; variant: string; message: string } };
    expect(err.ok).toBe(false);
    expect(err.error).toMatchObject({ kind: 'CheckpointError', variant: 'UnknownModelType' });
    expect(err.error.message).toContain("'gpt2'");

    for (const r of [unknownPlain, missing]) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^rfid-moe: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(missing.stderr).toContain('does not exist');

    expect(damaged.code).toBe(2);
    expect((JSON.parse(damaged.stdout) as { error: object }).error).toMatchObject({ kind: 'SafetensorsError', variant: 'HeaderTooSmall' });

    await rm(path.join(dir, 'config.json'));
    const noConfig = await inspect(dir, '--json');
    expect(noConfig.code).toBe(2);
    expect((JSON.parse(noConfig.stdout) as { error: object }).error).toMatchObject({ kind: 'CheckpointError', variant: 'MissingConfig' });
  });
});

describe('inspect an rfid-moe output', () => {
  let model: Awaited<ReturnType<typeof openCheckpoint>>;
  let stats: string;
  const engine = createTsEngine({ threads: 1 });
  beforeAll(async () => {
    model = await openCheckpoint((await makeTinyCheckpoint(scratch.sub('c-model'), 'qwen3_moe', { seed: 3 })).dir);
    stats = scratch.sub('c-stats.json');
    await writeRoutingStats(stats, syntheticStats(model));
  });
  afterAll(async () => {
    await model?.close();
    engine.dispose();
  });

  it('a factored output: groups, ranks, residuals and bytes per layer, from the block and the tensors on disk', async () => {
    const out = scratch.sub('c-factored');
    await compress(model, { retain: 0.5, groupSize: 2, residual: { share: 0.05 } }, { out, stats, engine, evaluation: false });
    const [json, human] = await Promise.all([inspect(out, '--json'), inspect(out)]);
    expect(json.code, json.stderr).toBe(0);
    const d = JSON.parse(json.stdout) as CompressedDescription & { ok: boolean; type: string };
    expect(d).toMatchObject({ ok: true, type: 'compressed', storage: 'factored', numExperts: 8, files: { verified: false } });
    const block = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8')).rfid_moe as RfidBlock;
    const store = await TensorStore.open(out);
    try {
      expect(d.layers.map((l) => l.layer)).toEqual(block.layers.map((l) => l.layer));
      for (const l of d.layers) {
        const b = block.layers.find((x) => x.layer === l.layer)!;
        expect(Object.keys(l.types).sort()).toEqual(Object.keys(b.types).sort());
        for (const type of Object.keys(b.types) as Array<'gate' | 'up' | 'down'>) {
          const t = l.types[type]!;
          expect(t.groups.map((g) => g.rank)).toEqual(b.types[type]!.groups.map((g) => g.rank));
          expect(t.groups.map((g) => g.experts)).toEqual(b.types[type]!.groups.map((g) => g.experts));
          expect(t.groups.map((g) => g.residualLength)).toEqual(b.types[type]!.groups.map((g) => g.residual?.q ?? null));
          // independent byte count: every tensor of this layer and type on disk
          const onDisk = store.tensorNames().filter((n) => n.startsWith(`model.layers.${l.layer}.mlp.rfid.${type}.`)).reduce((a, n) => a + store.tensor(n)!.byteLength, 0);
          expect(t.storedBytes).toBe(onDisk);
          expect(t.originalBytes).toBe(8 * t.p * t.d * 4);
          expect(t.storedBytes).toBeLessThan(t.originalBytes);
        }
        const layerTotal = store.tensorNames().filter((n) => n.startsWith(`model.layers.${l.layer}.`)).reduce((a, n) => a + store.tensor(n)!.byteLength, 0);
        expect(l.layerBytes).toBe(layerTotal);
      }
    } finally {
      await store.close();
    }
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/made by\s+rfid-moe .*factored storage/);
    expect(human.stdout).toMatch(/\n0\s+gate\s+4 × 2\/2\/2\/2\s+[\d, ]+\s+\d+\s+[\d.]+ KB\s+[\d.]+ KB\s+0\.\d+\s+(input-basis|per-expert)\n/);
    expect(human.stdout).toContain('not checked (pass --verify)');
  });

  it('a format-2 output (structures chosen per layer and type): the text names each type\'s structure, as the block records it', async () => {
    const out = scratch.sub('c-structures');
    // gate/up (p < d here) get a shared output-side basis, down a shared base plus deltas: both format 2
    await compress(
      model,
      { retain: 0.7, groupSize: 2, allocation: 'waterfill', structure: 'auto', structures: ['output-basis', 'base-delta'], whiten: false, refit: false, residual: { share: 0 }, matrixTypes: ['gate', 'up', 'down'] },
      { out, stats, engine, evaluation: false },
    );
    const block = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8')).rfid_moe as RfidBlock;
    expect(block.version).toBe(2);
    const [json, human] = await Promise.all([inspect(out, '--json'), inspect(out)]);
    expect(human.code, human.stderr).toBe(0);
    const d = JSON.parse(json.stdout) as CompressedDescription;
    const rows = human.stdout.split('\n');
    const seen = new Set<string>();
    for (const l of block.layers) {
      for (const [type, t] of Object.entries(l.types)) {
        // independent of describe.ts: the structure tags the block gives this layer and type
        const tags = [...new Set(t!.groups.map((g) => g.structure ?? (g.experts.length === 1 ? 'per-expert' : 'input-basis')))].join('+');
        seen.add(tags);
        expect(d.layers.find((x) => x.layer === l.layer)!.types[type as 'gate']!.structure).toBe(tags);
        const row = rows.find((r) => new RegExp(`^${l.layer}\\s+${type}\\s`).test(r));
        expect(row, `row of layer ${l.layer} ${type}`).toBeDefined();
        expect(row!.trim().split(/\s+/).at(-1)).toBe(tags);
      }
    }
    // the measurement chose something beyond the input-side basis somewhere (else this proves little)
    expect([...seen].some((t) => t.includes('output-basis') || t.includes('base-delta'))).toBe(true);
    expect(rows[rows.findIndex((r) => r.startsWith('layer'))]).toMatch(/ratio\s+structure$/);
  });

  it('a newer format version (3) is refused by inspect, loadCompressed and densify, naming rfid-moe and the version', async () => {
    const out = scratch.sub('c-v3');
    await compress(model, { retain: 0.5 }, { out, stats, engine, evaluation: false });
    const file = path.join(out, 'config.json');
    const config = JSON.parse(await readFile(file, 'utf8')) as { rfid_moe: { version: number } };
    config.rfid_moe.version = 3;
    await writeFile(file, JSON.stringify(config, null, 2));
    const expected = /rfid-moe format version 3, and this rfid-moe reads versions 1 and 2 only; upgrade rfid-moe/;
    const text = await inspect(out);
    expect(text.code).toBe(2);
    expect(text.stderr).toMatch(expected);
    const json = await inspect(out, '--json');
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).error).toMatchObject({ kind: 'CompressedFormatError', message: expect.stringMatching(expected) });
    await expect(loadCompressed(out)).rejects.toThrow(expected);
    const target = scratch.sub('c-v3-dense');
    await expect(densify(out, { out: target, engine })).rejects.toThrow(expected);
    await expect(readFile(path.join(target, 'config.json'))).rejects.toThrow(/ENOENT/);
  });

  it('--verify checks every recorded sha256; a flipped byte exits 2 naming the file', async () => {
    const out = scratch.sub('c-verify');
    await compress(model, { retain: 0.5 }, { out, stats, engine, evaluation: false });
    const good = await inspect(out, '--verify');
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/files\s+\d+ files: sha256 verified/);
    const shard = path.join(out, 'model-00002-of-00003.safetensors');
    const bytes = await readFile(shard);
    bytes[bytes.length - 3] ^= 0x10;
    await writeFile(shard, bytes);
    const bad = await inspect(out, '--verify', '--json');
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error).toMatchObject({ kind: 'IntegrityError', message: expect.stringMatching(/model-00002-of-00003\.safetensors does not have the sha256 recorded/) });
    // without --verify the structure is still described (hashes are not read)
    expect((await inspect(out)).code).toBe(0);
  });

  it('a partial output says "unfinished run: rerun with --resume", not "missing tensor"', async () => {
    const out = scratch.sub('c-partial');
    await expect(
      compress(model, { retain: 0.5 }, {
        out,
        stats,
        engine,
        evaluation: false,
        onProgress: (e) => {
          if (e.type === 'layer-done' && e.layer === 0) throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    const r = await inspect(out);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is an unfinished run: rerun with --resume .*1 layer\(s\) are done/);
    expect(r.stderr).not.toMatch(/missing tensor|no config\.json/);
  });
});
