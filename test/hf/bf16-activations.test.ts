/**
 * BF16 matmul activations against Hugging Face transformers: the shipped models (stored in BF16)
 * through the runtime with their weights held BF16 and the activations of every product against
 * them rounded to BF16, on every engine that offers it, against transformers running the same
 * model with the input of every linear layer but the routers rounded to BF16
 * (scripts/hf_reference.py, "matmulActivations": "bf16"; its experts eager, one F.linear each).
 *
 * The two cannot agree to f32 rounding as the f32 paths do (1e-4): an activation that f32 sums
 * leave within a few ulps of a BF16 rounding boundary rounds one way here and the other there, and
 * moves by a BF16 step (2⁻⁸ of itself). So the check is relative: within 5e-3 of transformers'
 * rounded logits (1.2-1.7e-3 measured), and at least 3 times closer to them than to its f32
 * logits (6-170 times measured), which a runtime that did not round, or rounded other products,
 * would not be.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import { batchFromSequences, CheckpointWeights, forwardLogits } from '../../src/runtime/index.js';
import { describeWithTransformers, relativeError, runHfJobs, type HfJobResult } from '../helpers/python.js';
import { mulberry32 } from '../helpers/rng.js';
import { makeTransformersCheckpoint, type TinyCheckpointOptions } from '../helpers/fixtures.js';
import { tempDir } from '../compress/helpers.js';
import type { FamilyName } from '../../src/checkpoint/types.js';
import { repoRoot } from '../helpers/shared-data.js';

const modelsDir = path.join(repoRoot, 'examples', 'models');
const SHIPPED = existsSync(modelsDir) ? readdirSync(modelsDir).filter((d) => existsSync(path.join(modelsDir, d, 'config.json'))).sort() : [];

/**
 * Fixtures stored in BF16 beside the shipped models: Llama 4's text model, whose experts take rows
 * already scaled by their routing weights and multiply through torch.bmm in transformers (patched
 * like F.linear), and Mixtral's, a plain MoE, as a control for the fixtures' size.
 */
const FIXTURES: Array<{ name: string; family: FamilyName; fixture: TinyCheckpointOptions }> = [
  { name: 'llama4_text-bf16', family: 'llama4_text', fixture: { seed: 51, dtype: 'BF16' } },
  { name: 'mixtral-bf16', family: 'mixtral', fixture: { seed: 4, dtype: 'BF16' } },
];
const MODELS = [...SHIPPED, ...FIXTURES.map((f) => f.name)];

describeWithTransformers('BF16 matmul activations match transformers with its linear inputs rounded to BF16', () => {
  const reference = new Map<string, { ids: number[][]; f32: HfJobResult; bf16: HfJobResult }>();
  const engines = listAvailableEngines({ matmulActivations: 'bf16', threads: 2 });
  afterAll(async () => (await engines).forEach((e) => e.dispose()));

  let root: Awaited<ReturnType<typeof tempDir>> | undefined;
  const dirOf = (name: string) => (SHIPPED.includes(name) ? path.join(modelsDir, name) : path.join(root!.dir, name));
  afterAll(async () => root?.cleanup());

  beforeAll(async () => {
    root = await tempDir('hf-bf16-activations');
    for (const f of FIXTURES) await makeTransformersCheckpoint(dirOf(f.name), f.family, f.fixture);
    const cases = MODELS.map((name) => {
      const rand = mulberry32(7);
      const vocab = (JSON.parse(readFileSync(path.join(dirOf(name), 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
      return { name, ids: Array.from({ length: 2 }, () => Array.from({ length: 24 }, () => Math.floor(rand() * vocab))) };
    });
    const jobs = cases.flatMap(({ name, ids }) => {
      const model = dirOf(name);
      const mask = ids.map((row) => row.map(() => 1));
      return [{ op: 'logits' as const, model, ids, mask }, { op: 'logits' as const, model, ids, mask, matmulActivations: 'bf16' as const }];
    });
    const { results } = await runHfJobs(jobs);
    cases.forEach(({ name, ids }, i) => reference.set(name, { ids, f32: results[2 * i], bf16: results[2 * i + 1] }));
  }, 300_000);

  it('ships models to check', () => expect(SHIPPED.length).toBeGreaterThanOrEqual(2));

  for (const name of MODELS) {
    it(`${name}: every engine's logits are transformers' rounded ones, not its f32 ones`, async () => {
      const ref = reference.get(name)!;
      expect(ref.f32.ok, ref.f32.error).toBe(true);
      expect(ref.bf16.ok, ref.bf16.error).toBe(true);
      const ckpt = await openCheckpoint(dirOf(name));
      try {
        for (const engine of await engines) {
          const ours = await forwardLogits(new CheckpointWeights(ckpt, { bf16Weights: true }), engine, batchFromSequences(ref.ids));
          const toRounded = relativeError(ours, ref.bf16.logits!);
          const toF32 = relativeError(ours, ref.f32.logits!);
          console.info(`${name}, ${engine.describe()}: ${toRounded.toExponential(2)} from transformers' rounded logits, ${toF32.toExponential(2)} from its f32 ones`);
          expect(toRounded, engine.describe()).toBeLessThan(5e-3);
          expect(toRounded * 3, `${engine.describe()}: ${toRounded} to the rounded logits, ${toF32} to the f32 ones`).toBeLessThan(toF32);
        }
      } finally {
        await ckpt.close();
      }
    }, 120_000);
  }
});
