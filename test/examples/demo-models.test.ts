/**
 * The demo models shipped in examples/models/ against Hugging Face transformers itself
 * (scripts/hf_demo_logits.py: AutoModelForCausalLM, f32): each folder must load there with its
 * own model_type, and our forward pass must give the same next-token logits (within 1e-4
 * relative; both upcast the BF16 weights to f32) and the same per-layer routing counts. This is
 * what makes the shipped files a real HF checkpoint rather than something only we can read.
 * Needs the project's Python venv (.venv with torch + transformers); skipped without it, except
 * in CI (CI=true), where a missing venv fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { batchFromSequences } from '../../src/runtime/index.js';
import { mulberry32 } from '../helpers/rng.js';
import { repoRoot } from '../helpers/shared-data.js';

const python = path.join(repoRoot, '.venv', 'bin', 'python');
const hasTransformers =
  existsSync(python) && spawnSync(python, ['-c', 'import torch, transformers'], { encoding: 'utf8' }).status === 0;
const inCi = process.env.CI === 'true';
if (!hasTransformers && !inCi) console.warn(`no ${python} with torch + transformers; skipping the demo-model checks against transformers`);

const modelsDir = path.join(repoRoot, 'examples', 'models');
const demoModels = readdirSync(modelsDir).filter((d) => existsSync(path.join(modelsDir, d, 'config.json')));

interface HfResult {
  model_type: string;
  logits: number[][];
  routing: Record<string, number[]>;
}

describe.skipIf(!hasTransformers && !inCi)('shipped demo models match transformers', () => {
  const engine = createTsEngine({ threads: 1 });
  const work = mkdtempSync(path.join(tmpdir(), 'rfid-demo-hf-'));
  afterAll(() => {
    engine.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it('ships the Mixtral and the Qwen3-MoE demo', () => {
    expect(demoModels).toEqual(expect.arrayContaining(['mixtral-tiny-shakespeare', 'qwen3-moe-tiny-shakespeare']));
  });

  for (const name of demoModels) {
    it(`${name}: transformers loads it; logits within 1e-4 and routing counts equal`, async () => {
      expect(hasTransformers, `CI needs ${python} with torch and transformers`).toBe(true);
      const dir = path.join(modelsDir, name);
      const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number; model_type: string };
      const rand = mulberry32(20260);
      const ids = Array.from({ length: 2 }, () => Array.from({ length: 24 }, () => Math.floor(rand() * config.vocab_size)));
      const idsFile = path.join(work, `${name}.ids.json`);
      const outFile = path.join(work, `${name}.hf.json`);
      writeFileSync(idsFile, JSON.stringify({ ids }));
      const proc = spawnSync(python, [path.join(repoRoot, 'scripts', 'hf_demo_logits.py'), dir, idsFile, outFile], { encoding: 'utf8' });
      expect(proc.status, proc.stderr).toBe(0);
      const hf = JSON.parse(readFileSync(outFile, 'utf8')) as HfResult;
      expect(hf.model_type).toBe(config.model_type);

      const ckpt = await openCheckpoint(dir);
      try {
        const { counts, logits } = await countRouting(ckpt, engine, batchFromSequences(ids), { withLogits: true });
        const vocab = config.vocab_size;
        expect(logits!.length).toBe(hf.logits.length * vocab);
        let maxDiff = 0;
        let maxRef = 0;
        hf.logits.forEach((row, r) =>
          row.forEach((v, j) => {
            maxDiff = Math.max(maxDiff, Math.abs(logits![r * vocab + j] - v));
            maxRef = Math.max(maxRef, Math.abs(v));
          }),
        );
        expect(maxDiff / maxRef).toBeLessThan(1e-4);
        const ours = Object.fromEntries(counts.layers.map((l) => [String(l.layer), Array.from(l.counts)]));
        expect(ours).toEqual(hf.routing);
      } finally {
        await ckpt.close();
      }
    }, 300_000);
  }
});
