/**
 * `densify(factored)` equals `compress --format dense` of the same run: every shard and the
 * index byte for byte (same factors, same reconstruction, same engine), config.json the dense
 * one's plus the `densified` note. It refuses what it must not touch: a non-empty directory it did
 * not start, the factored directory itself, an already dense output.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { compress } from '../../src/compress/pipeline.js';
import { densify, DensifyError } from '../../src/compressed/densify.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';
import { syntheticStats, tempDir } from './helpers.js';

const run = promisify(execFile);

const CASES: Array<{ label: string; family: FamilyName; opts?: TinyCheckpointOptions; matrixTypes?: Array<'gate' | 'up' | 'down'> }> = [
  { label: 'mixtral', family: 'mixtral' },
  { label: 'qwen2_moe all types', family: 'qwen2_moe', matrixTypes: ['gate', 'up', 'down'] },
  { label: 'mixtral fused', family: 'mixtral', opts: { fusedExperts: true }, matrixTypes: ['gate', 'up', 'down'] },
  { label: 'qwen3_moe bf16', family: 'qwen3_moe', opts: { dtype: 'BF16' } },
];

let engine: Engine;
let root: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  engine = createTsEngine({ threads: 1 });
  root = await tempDir('densify');
});

afterAll(async () => {
  engine.dispose();
  await root.cleanup();
});

describe.each(CASES)('densify: $label', ({ label, family, opts, matrixTypes }) => {
  const dirs = { model: '', factored: '', dense: '', densified: '' };

  beforeAll(async () => {
    const base = path.join(root.dir, label.replace(/\W+/g, '-'));
    for (const k of Object.keys(dirs) as Array<keyof typeof dirs>) dirs[k] = path.join(base, k);
    await makeTinyCheckpoint(dirs.model, family, { seed: 3, ...opts });
    await writeFile(path.join(dirs.model, 'tokenizer.json'), '{"model": {"type": "test"}}\n');
    const ckpt = await openCheckpoint(dirs.model);
    const stats = path.join(base, 'stats.json');
    try {
      await writeRoutingStats(stats, syntheticStats(ckpt));
      const recipe = { retain: 0.4, groupSize: 3, residual: { share: 0.05 }, ...(matrixTypes ? { matrixTypes } : {}) };
      await compress(ckpt, recipe, { out: dirs.factored, stats, engine, evaluation: false });
      await compress(ckpt, recipe, { out: dirs.dense, stats, engine, storage: 'dense', evaluation: false });
    } finally {
      await ckpt.close();
    }
    await densify(dirs.factored, { out: dirs.densified, engine });
  });

  it('writes the same shards and index, byte for byte, as compress --format dense', async () => {
    const dense = (await readdir(dirs.dense)).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json')).sort();
    const densified = (await readdir(dirs.densified)).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json')).sort();
    expect(densified).toEqual(dense);
    expect(dense.length).toBeGreaterThan(1);
    for (const f of dense) expect(Buffer.compare(await readFile(path.join(dirs.densified, f)), await readFile(path.join(dirs.dense, f))), f).toBe(0);
    expect(await readFile(path.join(dirs.densified, 'tokenizer.json'), 'utf8')).toBe(await readFile(path.join(dirs.model, 'tokenizer.json'), 'utf8'));
    expect((await readdir(dirs.densified)).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('config.json: the dense one of the run plus a densified note; opens as an ordinary checkpoint', async () => {
    const dense = JSON.parse(await readFile(path.join(dirs.dense, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const densified = JSON.parse(await readFile(path.join(dirs.densified, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const factored = JSON.parse(await readFile(path.join(dirs.factored, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const { densified: note, runFingerprint, ...block } = densified.rfid_moe;
    expect(note).toMatchObject({ from: dirs.factored });
    // the run that made the factors (the fingerprint covers the storage, so dense runs differ)
    expect(runFingerprint).toBe(factored.rfid_moe.runFingerprint);
    const { runFingerprint: _denseRun, ...denseBlock } = dense.rfid_moe;
    expect({ ...densified, rfid_moe: block }).toEqual({ ...dense, rfid_moe: denseBlock });
    const ckpt = await openCheckpoint(dirs.densified);
    await ckpt.close();
    const loaded = await loadCompressed(dirs.densified);
    expect(loaded.storage).toBe('dense');
    await loaded.close();
  });
});

describe('densify refuses what it must not touch', () => {
  let factored = '';
  let dense = '';

  beforeAll(async () => {
    const base = path.join(root.dir, 'refusals');
    const model = path.join(base, 'model');
    await makeTinyCheckpoint(model, 'olmoe', { seed: 5 });
    const ckpt = await openCheckpoint(model);
    const stats = path.join(base, 'stats.json');
    factored = path.join(base, 'factored');
    dense = path.join(base, 'dense');
    try {
      await writeRoutingStats(stats, syntheticStats(ckpt));
      await compress(ckpt, { retain: 0.5, groupSize: 4 }, { out: factored, stats, engine, evaluation: false });
      await compress(ckpt, { retain: 0.5, groupSize: 4 }, { out: dense, stats, engine, storage: 'dense', evaluation: false });
    } finally {
      await ckpt.close();
    }
  });

  it('a non-empty directory it did not start, untouched', async () => {
    const out = path.join(root.dir, 'refusals', 'busy');
    await mkdir(out, { recursive: true });
    await writeFile(path.join(out, 'model.safetensors'), 'precious');
    await expect(densify(factored, { out, engine })).rejects.toThrow(/not empty/);
    expect(await readdir(out)).toEqual(['model.safetensors']);
    expect(await readFile(path.join(out, 'model.safetensors'), 'utf8')).toBe('precious');
    // its own finished output is not "ours" any more either
    const done = path.join(root.dir, 'refusals', 'done');
    await densify(factored, { out: done, engine });
    await expect(densify(factored, { out: done, engine })).rejects.toThrow(DensifyError);
  });

  it('openCheckpoint sends a factored output to loadCompressed or densify; loadCompressed reads it as its own family', async () => {
    await expect(openCheckpoint(factored)).rejects.toThrow(/factored rfid-moe output.*loadCompressed.*rfid-moe densify/);
    const model = await loadCompressed(factored);
    expect(model.config.family).toBe('olmoe');
    expect(model.config.modelType).toBe('olmoe');
    await model.close();
  });

  it('the factored directory itself, and a dense output', async () => {
    await expect(densify(factored, { out: path.join(factored, 'sub'), engine })).rejects.toThrow(/inside it/);
    await expect(densify(dense, { out: path.join(root.dir, 'refusals', 'x'), engine })).rejects.toThrow(/already a dense/);
  });

  it('an unfinished densify of the same source is finished (its marker says it is ours)', async () => {
    const out = path.join(root.dir, 'refusals', 'unfinished');
    await mkdir(out, { recursive: true });
    const block = JSON.parse(await readFile(path.join(factored, 'config.json'), 'utf8')).rfid_moe as { runFingerprint: string };
    await writeFile(path.join(out, '.rfid-moe-densify.json'), JSON.stringify({ source: factored, runFingerprint: block.runFingerprint }));
    await writeFile(path.join(out, 'model-00001-of-00003.safetensors'), 'torn');
    await writeFile(path.join(out, '.model-00002-of-00003.safetensors.1.abc.tmp'), 'temp');
    await densify(factored, { out, engine: 'ts' });
    const names = (await readdir(out)).sort();
    expect(names).toContain('config.json');
    expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
    const ckpt = await openCheckpoint(out);
    await ckpt.close();
  });

  it('CLI: rfid-moe densify prints the result as JSON, and a refusal exits 2 with one JSON error', async () => {
    const cli = path.join(repoRoot, 'dist', 'cli', 'main.js');
    const out = path.join(root.dir, 'refusals', 'cli');
    const { stdout } = await run(process.execPath, [cli, 'densify', factored, '--out', out, '--engine', 'ts', '--json', '--quiet']);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, out, reconstructed: expect.any(Number) });
    const err = await run(process.execPath, [cli, 'densify', factored, '--out', out, '--json']).catch((e: { code: number; stdout: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect(JSON.parse((err as { stdout: string }).stdout)).toMatchObject({ ok: false, error: { kind: 'DensifyError' } });
  });
});
