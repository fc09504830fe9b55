/**
 * Every model shipped under examples/models/ (each directory found there is picked up): compressed
 * with `--format dense`, its output loads in Hugging Face transformers and scores there the same
 * perplexity as `rfid-moe eval` on the same WikiText-2 test windows (within 1e-4 relative), and
 * the factored output of the same run is refused by transformers with a message naming rfid-moe.
 *
 * Bounded for CI: the first 64 KB of each WikiText-2 file, calibration on 8 windows of 128 tokens
 * from the validation split, evaluation on the first 4 windows of 256 tokens of the test split.
 * Both sides score the token ids of the model's own tokenizer (the one rfid-moe uses).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compress } from '../../src/compress/pipeline.js';
import { tokenizeDataset } from '../../src/tokens/prepare.js';
import { tempDir } from '../compress/helpers.js';
import { describeWithTransformers, runHfJobs, type HfJob, type HfJobResult } from '../helpers/python.js';
import { hasSharedData, repoRoot, sharedDataSkipReason, sharedPath } from '../helpers/shared-data.js';

const run = promisify(execFile);
const modelsDir = path.join(repoRoot, 'examples', 'models');
const MODELS = existsSync(modelsDir)
  ? readdirSync(modelsDir).filter((d) => existsSync(path.join(modelsDir, d, 'config.json'))).sort()
  : [];
const SEQ_LEN = 256;
const WINDOWS = 4;
const PREFIX_BYTES = 64 * 1024;

interface EvalJson {
  ok: boolean;
  model: { windows: number; tokens: number; meanNll: number; perplexity: number };
}

/** The first `bytes` of a text file, cut at a line end. */
async function prefixFile(src: string, dst: string, bytes: number): Promise<string> {
  const text = await readFile(src, 'utf8');
  const cut = text.lastIndexOf('\n', bytes);
  await writeFile(dst, text.slice(0, cut > 0 ? cut + 1 : bytes));
  return dst;
}

describeWithTransformers('shipped models: the dense output scores in transformers as in rfid-moe eval', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  const evals = new Map<string, EvalJson>();
  const hf = new Map<string, HfJobResult>();

  beforeAll(async () => {
    if (!hasSharedData) return;
    root = await tempDir('hf-shipped');
    const test = await prefixFile(sharedPath('wikitext-2-raw', 'wiki.test.raw'), path.join(root.dir, 'wiki.test.raw'), PREFIX_BYTES);
    const valid = await prefixFile(sharedPath('wikitext-2-raw', 'wiki.valid.raw'), path.join(root.dir, 'wiki.valid.raw'), PREFIX_BYTES);
    const jobs: Array<{ key: string; job: HfJob }> = [];
    for (const name of MODELS) {
      const model = path.join(modelsDir, name);
      const dense = path.join(root.dir, `${name}-dense`);
      const factored = path.join(root.dir, `${name}-factored`);
      const recipe = { retain: 0.6 };
      const dataset = { file: valid, samples: 8, seqLen: 128, seed: 1 };
      await compress(model, recipe, { out: dense, storage: 'dense', dataset, evaluation: false });
      await compress(model, recipe, { out: factored, dataset, evaluation: false });
      for (const [key, dir] of [[name, dense], [`${name}/factored`, factored]]) {
        const { stdout } = await run(
          process.execPath,
          [path.join(repoRoot, 'dist', 'cli', 'main.js'), 'eval', dir, '--dataset', test, '--seq-len', String(SEQ_LEN), '--max-windows', String(WINDOWS), '--engine', 'ts', '--json', '--quiet'],
          { maxBuffer: 1 << 24 },
        );
        evals.set(key, JSON.parse(stdout) as EvalJson);
      }
      const ids = (await tokenizeDataset(dense, test)).ids;
      const idsFile = path.join(root.dir, `${name}.i32`);
      await writeFile(idsFile, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
      jobs.push({ key: `${name}/dense`, job: { op: 'ppl', model: dense, ids: idsFile, seqLen: SEQ_LEN, maxWindows: WINDOWS } });
      jobs.push({ key: `${name}/factored`, job: { op: 'load', model: factored } });
    }
    const results = await runHfJobs(jobs.map((j) => j.job));
    jobs.forEach((j, i) => hf.set(j.key, results.results[i]));
  }, 900_000);

  afterAll(async () => {
    await root?.cleanup();
  });

  it('finds the shipped models', () => {
    expect(MODELS.length).toBeGreaterThan(0);
  });

  for (const name of MODELS) {
    it.skipIf(!hasSharedData)(`${name}: perplexity in transformers = rfid-moe eval (1e-4 relative), all tensors loaded${hasSharedData ? '' : ` [skipped: ${sharedDataSkipReason}]`}`, () => {
      const ours = evals.get(name)!;
      const theirs = hf.get(`${name}/dense`)!;
      expect(theirs.error).toBeUndefined();
      expect(theirs.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
      expect(theirs.windows).toBe(WINDOWS);
      expect(theirs.tokens).toBe(ours.model.tokens);
      const rel = Math.abs(theirs.perplexity! - ours.model.perplexity) / ours.model.perplexity;
      console.info(`${name} dense: perplexity rfid-moe eval ${ours.model.perplexity.toFixed(6)}, transformers ${theirs.perplexity!.toFixed(6)} (relative difference ${rel.toExponential(2)}, ${ours.model.tokens} tokens)`);
      expect(rel).toBeLessThan(1e-4);
    });

    it.skipIf(!hasSharedData)(`${name}: transformers refuses the factored output, naming rfid-moe; rfid-moe eval still reads it`, () => {
      const r = hf.get(`${name}/factored`)!;
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/rfid-moe/);
      // the same compressed weights, run factored in f32 instead of reconstructed in the checkpoint's dtype
      const factored = evals.get(`${name}/factored`)!;
      expect(factored.ok).toBe(true);
      expect(factored.model.tokens).toBe(evals.get(name)!.model.tokens);
      expect(Math.abs(factored.model.perplexity / evals.get(name)!.model.perplexity - 1)).toBeLessThan(0.01);
    });
  }
});
