/**
 * The sampled distribution (samplingDistribution: temperature → top-k → top-p → min-p → typical) against
 * transformers' own warpers, built by generate()'s processor list for do_sample=True and run by
 * scripts/hf_reference.py on the same logits: the same tokens kept, the same probabilities (to
 * float32 rounding, transformers' precision).
 */
import { expect, it } from 'vitest';
import { samplingDistribution } from '../../src/runtime/index.js';
import { mulberry32 } from '../../src/util/prng.js';
import { describeWithTransformers, runHfJobs, type HfJob } from '../helpers/python.js';

const VOCAB = 300;
const random = mulberry32(11);
// Gaussian-ish logits with a few dominant tokens, as a language model's rows look
const rows = Array.from({ length: 3 }, (_, r) => Array.from({ length: VOCAB }, (_, j) => (random() + random() + random() - 1.5) * 2.5 + (j % 37 === r ? 6 : 0)));

const grid: Array<{ temperature: number; topK: number; topP: number; minP: number }> = [];
for (const temperature of [0.6, 1, 1.7]) {
  for (const topK of [0, 5, 60]) {
    for (const topP of [1, 0.9, 0.5]) {
      for (const minP of [0, 0.05, 0.3]) grid.push({ temperature, topK, topP, minP });
    }
  }
}

/** typical sampling (TGI's typical_p; LangChain's HuggingFaceEndpoint sends 0.95), alone and after the other warpers */
const typicalGrid: Array<{ temperature: number; topK: number; topP: number; minP: number; typicalP: number }> = [];
for (const temperature of [0.6, 1, 1.7]) {
  for (const [topK, topP, minP] of [[0, 1, 0], [60, 0.95, 0], [0, 1, 0.05]] as const) {
    for (const typicalP of [0.95, 0.5, 0.2]) typicalGrid.push({ temperature, topK, topP, minP, typicalP });
  }
}

type Setting = { temperature: number; topK: number; topP: number; minP: number; typicalP?: number };

/**
 * transformers' warpers on `settings` × rows against samplingDistribution: the same tokens kept,
 * the same probabilities; returns how many (setting, row) pairs `cut` says removed tokens.
 */
async function agreeWithHf(settings: readonly Setting[], cut: (g: Setting, row: Float32Array, kept: number) => boolean): Promise<number> {
  const jobs: HfJob[] = settings.map((g) => ({ op: 'warp', logits: rows, ...g, minP: g.minP === 0 ? null : g.minP }));
  const { results } = await runHfJobs(jobs);
  let cuts = 0;
  settings.forEach((g, i) => {
    expect(results[i].ok, results[i].error).toBe(true);
    const hf = results[i].probs!;
    rows.forEach((values, r) => {
      const row = Float32Array.from(values);
      const ours = samplingDistribution(row, g);
      const want = new Map(hf[r].flatMap((p, j) => (p > 0 ? [[j, p] as const] : [])));
      const label = `${JSON.stringify(g)} row ${r}`;
      expect(new Set(ours.ids), label).toEqual(new Set(want.keys()));
      ours.ids.forEach((id, k) => expect(Math.abs(ours.probs[k] - want.get(id)!), label).toBeLessThan(2e-6));
      if (cut(g, row, ours.ids.length)) cuts++;
    });
  });
  return cuts;
}

describeWithTransformers('sampling distribution against transformers’ warpers', () => {
  it(`typical sampling: ${typicalGrid.length} settings × ${rows.length} rows, the same tokens kept, the same probabilities`, async () => {
    const cuts = await agreeWithHf(typicalGrid, (g, row, kept) => kept < samplingDistribution(row, { ...g, typicalP: 1 }).ids.length);
    // typical removes tokens in most of its cases (the comparison is not of no-ops)
    expect(cuts).toBeGreaterThan(typicalGrid.length);
  }, 120_000);

  it(`${grid.length} settings × ${rows.length} rows: the same tokens kept, the same probabilities`, async () => {
    const minPCuts = await agreeWithHf(grid, (g, row, kept) => g.minP > 0 && kept < samplingDistribution(row, { ...g, minP: 0 }).ids.length);
    // min-p removes tokens in many of its cases (the comparison is not of no-ops)
    expect(minPCuts).toBeGreaterThan(grid.length / 6);
  }, 120_000);
});
