/**
 * gpt-oss at gpt-oss-20b's real layer dimensions, against transformers: hidden 2880, 64 query
 * heads of 64 over 8 kv heads (so the heads are wider than the hidden size), experts of width
 * 2880 (90 MXFP4 groups a row), a window of 128 that the prompts cross, YaRN over an original
 * 4,096 positions. Two layers and 4 experts (random weights), as F32 and as MXFP4 files
 * (scripts/mxfp4_reference.py's quantize op): logits on a right-padded batch of 150-token prompts,
 * and 12 greedy tokens with the KV cache, equal to transformers'.
 *
 * The tiny fixtures of test/hf/families.test.ts cover the same code in seconds; this one writes
 * 0.5 GB to a temporary directory and took 75 s on the development machine. RFID_MOE_REAL_DIMS=0
 * skips it.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromPadded } from '../../src/runtime/index.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { tempDir } from '../compress/helpers.js';
import { makeTransformersCheckpoint } from '../helpers/fixtures.js';
import { runPythonJson } from '../helpers/python-json.js';
import { hasTransformers, pythonPath, relativeError, runHfJobs, transformersSkipReason, type HfJobResult } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';

const skip = process.env.RFID_MOE_REAL_DIMS === '0' ? 'RFID_MOE_REAL_DIMS=0 skips it' : !hasTransformers ? transformersSkipReason : undefined;

const IDS = [Array.from({ length: 150 }, (_, i) => (i * 37 + 5) % 1024), Array.from({ length: 150 }, (_, i) => (i < 90 ? (i * 11 + 3) % 1024 : 0))];
const MASK = [IDS[0].map(() => 1), IDS[1].map((_, i) => (i < 90 ? 1 : 0))];
const PROMPT = IDS[0].slice(0, 130);
const NEW_TOKENS = 12;

describe.skipIf(skip !== undefined)(`gpt-oss at gpt-oss-20b's layer dimensions in transformers${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let engine: Engine;
  let root: Awaited<ReturnType<typeof tempDir>>;
  const dirs = { f32: '', mxfp4: '' };
  const ours = new Map<string, { logits: Float32Array; greedy: number[] }>();
  const hf = new Map<string, HfJobResult[]>();

  beforeAll(async () => {
    ({ engine } = await createEngine('auto', { threads: 2 }));
    root = await tempDir('gpt-oss-real-dims');
    dirs.f32 = path.join(root.dir, 'f32');
    dirs.mxfp4 = path.join(root.dir, 'mxfp4');
    await makeTransformersCheckpoint(dirs.f32, 'gpt_oss', {
      seed: 40,
      numLayers: 2,
      hiddenSize: 2880,
      expertIntermediateSize: 2880,
      numExperts: 4,
      topK: 2,
      numHeads: 64,
      numKvHeads: 8,
      headDim: 64,
      vocabSize: 1024,
      configKeys: { sliding_window: 128 },
      ropeScaling: { rope_type: 'yarn', factor: 32.5, beta_fast: 32.5, beta_slow: 1.5, original_max_position_embeddings: 4096, truncate: false },
    });
    await runPythonJson(pythonPath, path.join(repoRoot, 'scripts', 'mxfp4_reference.py'), { op: 'quantize', model: dirs.f32, out: dirs.mxfp4 });
    for (const [kind, dir] of Object.entries(dirs)) {
      const ckpt = await openCheckpoint(dir);
      try {
        const logits = (await countRouting(ckpt, engine, batchFromPadded(IDS, MASK), { withLogits: true })).logits!;
        const greedy = (await generateAll(ckpt, engine, PROMPT, { temperature: 0, maxNewTokens: NEW_TOKENS })).tokens;
        ours.set(kind, { logits, greedy });
      } finally {
        await ckpt.close();
      }
      const run = await runHfJobs([
        { op: 'logits', model: dir, ids: IDS, mask: MASK },
        { op: 'generate', model: dir, ids: PROMPT, maxNewTokens: NEW_TOKENS },
      ]);
      hf.set(kind, run.results);
    }
  }, 1_200_000);
  afterAll(async () => {
    engine?.dispose();
    await root?.cleanup();
  });

  for (const kind of ['f32', 'mxfp4'] as const) {
    it(`${kind}: the logits and the greedy tokens are transformers'`, () => {
      const [logits, generated] = hf.get(kind)!;
      expect(logits.error).toBeUndefined();
      expect(logits.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
      expect(relativeError(ours.get(kind)!.logits, logits.logits!)).toBeLessThan(1e-4);
      expect(generated.error).toBeUndefined();
      expect(ours.get(kind)!.greedy).toEqual(generated.generated);
    });
  }
});
