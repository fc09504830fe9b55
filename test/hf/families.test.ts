/**
 * The outputs of `compress` in the real client, Hugging Face transformers (AutoModelForCausalLM,
 * through scripts/hf_reference.py), for every family transformers knows:
 *
 * - the dense output loads with nothing missing, unexpected or mismatched, and its logits on a
 *   right-padded batch equal the rfid-moe runtime's on the same directory (f32 tolerance);
 * - the factored output is refused by AutoConfig/AutoModelForCausalLM with a message that names
 *   rfid-moe (before: it loaded with its experts randomly initialised);
 * - `densify` of the factored output loads and gives the same logits.
 *
 * Source checkpoints: the Python-written fixtures under test/golden/runtime (their config.json is
 * what transformers itself accepts, floats as floats). DeepSeek (v1, model_type `deepseek`) is
 * not part of transformers (it needs trust_remote_code); the test records that transformers
 * refuses it, so the day it is supported the test says so. DeepSeek-V2 (MLA attention, which the
 * rfid-moe runtime cannot run yet) comes from the TypeScript fixture generator with its float
 * keys written as floats: its dense output must load completely (no logits to compare with ours).
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/pipeline.js';
import { densify } from '../../src/compressed/densify.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromPadded } from '../../src/runtime/index.js';
import { syntheticStats, tempDir } from '../compress/helpers.js';
import { describeWithTransformers, relativeError, runHfJobs, type HfJob, type HfJobResult } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';

const goldenDir = path.join(repoRoot, 'test', 'golden', 'runtime');
const golden = JSON.parse(readFileSync(path.join(goldenDir, 'families.json'), 'utf8')) as {
  ids: number[][];
  mask: number[][];
  cases: Array<{ name: string; family: string }>;
};

/** model_types transformers 5 does not ship (DeepSeek v1 lives in remote code only) */
const NOT_IN_TRANSFORMERS = new Set(['deepseek']);
const CASES = golden.cases.filter((c) => !NOT_IN_TRANSFORMERS.has(c.family));
const UNSUPPORTED = golden.cases.filter((c) => NOT_IN_TRANSFORMERS.has(c.family));

describeWithTransformers('compressed outputs in Hugging Face transformers', () => {
  let engine: Engine;
  let root: Awaited<ReturnType<typeof tempDir>>;
  const ours = new Map<string, Float32Array>();
  const hf = new Map<string, HfJobResult>();
  let versions = '';

  beforeAll(async () => {
    engine = createTsEngine({ threads: 1 });
    root = await tempDir('hf-families');
    const jobs: Array<{ key: string; job: HfJob }> = [];
    for (const c of [...CASES, ...UNSUPPORTED]) {
      const model = path.join(goldenDir, c.name);
      const base = path.join(root.dir, c.name);
      const stats = `${base}-stats.json`;
      const ckpt = await openCheckpoint(model);
      try {
        await writeRoutingStats(stats, syntheticStats(ckpt));
        const recipe = { retain: 0.5, groupSize: 3, residual: { share: 0.05 } };
        await compress(ckpt, recipe, { out: `${base}-dense`, stats, engine, storage: 'dense', evaluation: false });
        await compress(ckpt, recipe, { out: `${base}-factored`, stats, engine, evaluation: false });
      } finally {
        await ckpt.close();
      }
      await densify(`${base}-factored`, { out: `${base}-densified`, engine });
      if (UNSUPPORTED.includes(c)) {
        jobs.push({ key: `${c.name}/dense`, job: { op: 'load', model: `${base}-dense` } });
        continue;
      }
      const dense = await openCheckpoint(`${base}-dense`);
      try {
        const { logits } = await countRouting(dense, engine, batchFromPadded(golden.ids, golden.mask), { withLogits: true });
        ours.set(c.name, logits!);
      } finally {
        await dense.close();
      }
      for (const kind of ['dense', 'densified'] as const) jobs.push({ key: `${c.name}/${kind}`, job: { op: 'logits', model: `${base}-${kind}`, ids: golden.ids, mask: golden.mask } });
      jobs.push({ key: `${c.name}/factored`, job: { op: 'load', model: `${base}-factored` } });
    }
    // DeepSeek-V2 (MLA): a TypeScript fixture whose float keys are written as transformers' config has them
    const v2 = path.join(root.dir, 'deepseek_v2');
    await makeTinyCheckpoint(v2, 'deepseek_v2', { seed: 2 });
    const text = await readFile(path.join(v2, 'config.json'), 'utf8');
    await writeFile(
      path.join(v2, 'config.json'),
      text.replace(/"(attention_dropout|rms_norm_eps|rope_theta|routed_scaling_factor)": (-?\d+(?:\.\d+)?(?:e-?\d+)?)/g, (_, k: string, v: string) => `"${k}": ${Number.isInteger(Number(v)) ? Number(v).toFixed(1) : Number(v).toExponential()}`),
    );
    const v2ckpt = await openCheckpoint(v2);
    try {
      await writeRoutingStats(`${v2}-stats.json`, syntheticStats(v2ckpt));
      const recipe = { retain: 0.5, groupSize: 3 };
      await compress(v2ckpt, recipe, { out: `${v2}-dense`, stats: `${v2}-stats.json`, engine, storage: 'dense', evaluation: false });
      await compress(v2ckpt, recipe, { out: `${v2}-factored`, stats: `${v2}-stats.json`, engine, evaluation: false });
    } finally {
      await v2ckpt.close();
    }
    jobs.push({ key: 'deepseek_v2/original', job: { op: 'logits', model: v2, ids: golden.ids, mask: golden.mask } });
    jobs.push({ key: 'deepseek_v2/dense', job: { op: 'logits', model: `${v2}-dense`, ids: golden.ids, mask: golden.mask } });
    jobs.push({ key: 'deepseek_v2/factored', job: { op: 'load', model: `${v2}-factored` } });

    const run = await runHfJobs(jobs.map((j) => j.job));
    versions = `transformers ${run.transformers}, torch ${run.torch}`;
    jobs.forEach((j, i) => hf.set(j.key, run.results[i]));
  }, 600_000);

  afterAll(async () => {
    engine?.dispose();
    await root?.cleanup();
  });

  for (const c of CASES) {
    it(`${c.name} (${c.family}): the dense output loads completely and its logits equal the runtime's`, () => {
      const r = hf.get(`${c.name}/dense`)!;
      expect(r.error, versions).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
      expect(r.logits!.length * r.logits![0].length).toBe(ours.get(c.name)!.length);
      expect(relativeError(ours.get(c.name)!, r.logits!)).toBeLessThan(1e-4);
    });

    it(`${c.name} (${c.family}): the factored output is refused, naming rfid-moe; densify gives a loadable copy`, () => {
      const refused = hf.get(`${c.name}/factored`)!;
      expect(refused.ok).toBe(false);
      expect(refused.error).toMatch(/rfid-moe/);
      const densified = hf.get(`${c.name}/densified`)!;
      expect(densified.error).toBeUndefined();
      expect(densified.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
      expect(relativeError(ours.get(c.name)!, densified.logits!)).toBeLessThan(1e-4);
    });
  }

  it('deepseek_v2 (MLA, not runnable here): the dense output loads completely and runs; the factored one is refused naming rfid-moe', () => {
    const original = hf.get('deepseek_v2/original')!;
    expect(original.error, 'the fixture itself must load in transformers').toBeUndefined();
    const dense = hf.get('deepseek_v2/dense')!;
    expect(dense.error).toBeUndefined();
    expect(dense.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
    expect(dense.logits!.flat().every(Number.isFinite)).toBe(true);
    expect(dense.logits!.length).toBe(original.logits!.length);
    const refused = hf.get('deepseek_v2/factored')!;
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatch(/rfid-moe/);
  });

  for (const c of UNSUPPORTED) {
    it(`${c.name} (${c.family}): transformers does not know model_type ${c.family} (not a family it ships)`, () => {
      const r = hf.get(`${c.name}/dense`)!;
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(new RegExp(`model type \`${c.family}\` but Transformers does not recognize`));
    });
  }
});
