/**
 * Streaming head statistics and evaluation against direct f64 formulas on full logits:
 * NLL/perplexity, KL(P_ref ‖ P_model), top-1 agreement; chunked vocabularies and several passes
 * must give the same numbers as one block.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { compareModels, computePerplexity } from '../../src/eval/index.js';
import { batchFromSequences, forwardLogits, KlStats, NextTokenStats } from '../../src/runtime/index.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { Rng } from '../helpers/rng.js';

function logSoftmax(row: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(row));
  const lse = max + Math.log(Array.from(row).reduce((s, v) => s + Math.exp(v - max), 0));
  return Array.from(row, (v) => v - lse);
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

describe('streaming next-token statistics', () => {
  it('NLL, KL and argmax over vocabulary chunks equal the direct formulas', () => {
    const rng = new Rng(5);
    const rows = 7;
    const vocab = 53;
    const a = Float32Array.from({ length: rows * vocab }, () => 4 * rng.normal());
    const b = Float32Array.from({ length: rows * vocab }, () => 4 * rng.normal());
    const targets = Int32Array.from({ length: rows }, (_, r) => (r * 11) % vocab);
    targets[3] = -1;
    const stats = new KlStats(targets);
    // uneven chunks, row blocks of 3 (the layout streamLogits produces)
    for (const [v0, vc] of [[0, 20], [20, 20], [40, 13]]) {
      for (let r0 = 0; r0 < rows; r0 += 3) {
        const rc = Math.min(3, rows - r0);
        const slice = (m: Float32Array) => Float32Array.from({ length: rc * vc }, (_, k) => m[(r0 + Math.floor(k / vc)) * vocab + v0 + (k % vc)]);
        stats.add(r0, rc, v0, vc, slice(a), slice(b));
      }
    }
    for (let r = 0; r < rows; r++) {
      const la = logSoftmax(a.subarray(r * vocab, (r + 1) * vocab));
      const lb = logSoftmax(b.subarray(r * vocab, (r + 1) * vocab));
      const kl = la.reduce((s, v, j) => s + Math.exp(v) * (v - lb[j]), 0);
      expect(stats.kl(r)).toBeCloseTo(kl, 10);
      expect(stats.ref.argmax[r]).toBe(argmax(a.subarray(r * vocab, (r + 1) * vocab)));
      expect(stats.model.argmax[r]).toBe(argmax(b.subarray(r * vocab, (r + 1) * vocab)));
      if (targets[r] >= 0) expect(stats.model.nll(r)).toBeCloseTo(-lb[targets[r]], 10);
      else expect(stats.model.nll(r)).toBeNaN();
    }
    const single = new NextTokenStats(targets);
    single.add(0, rows, 0, vocab, b);
    expect(single.nll(0)).toBeCloseTo(stats.model.nll(0), 12);
  });
});

describe('evaluation on fixtures', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rfid-eval-'));
  const engine = createTsEngine({ threads: 1 });
  let ref: Checkpoint;
  let model: Checkpoint;
  const windows = [0, 1, 2, 3, 4].map((w) => Int32Array.from({ length: 16 }, (_, i) => (w * 37 + i * 13 + ((i * i) % 7)) % 64));

  beforeAll(async () => {
    await makeTinyCheckpoint(path.join(work, 'ref'), 'qwen3_moe', { seed: 1 });
    await makeTinyCheckpoint(path.join(work, 'model'), 'qwen3_moe', { seed: 2 });
    ref = await openCheckpoint(path.join(work, 'ref'));
    model = await openCheckpoint(path.join(work, 'model'));
  });
  afterAll(async () => {
    await ref?.close();
    await model?.close();
    engine.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it('perplexity, KL and top-1 agreement equal the direct f64 computation from full logits', async () => {
    const vocab = ref.config.vocabSize;
    const batch = batchFromSequences(windows);
    const la = await forwardLogits(ref, engine, batch);
    const lb = await forwardLogits(model, engine, batch);
    let nll = 0;
    let refNll = 0;
    let kl = 0;
    let agree = 0;
    let n = 0;
    windows.forEach((w, wi) => {
      for (let t = 0; t + 1 < w.length; t++) {
        const r = wi * w.length + t;
        const pa = logSoftmax(la.subarray(r * vocab, (r + 1) * vocab));
        const pb = logSoftmax(lb.subarray(r * vocab, (r + 1) * vocab));
        nll -= pb[w[t + 1]];
        refNll -= pa[w[t + 1]];
        kl += pa.reduce((s, v, j) => s + Math.exp(v) * (v - pb[j]), 0);
        if (argmax(pa) === argmax(pb)) agree++;
        n++;
      }
    });
    // two windows per pass: three passes
    const result = await compareModels(model, ref, engine, windows, { batchTokens: 32 });
    expect(result.model.tokens).toBe(n);
    expect(result.model.meanNll).toBeCloseTo(nll / n, 9);
    expect(result.model.perplexity).toBeCloseTo(Math.exp(nll / n), 6);
    expect(result.reference.meanNll).toBeCloseTo(refNll / n, 9);
    expect(result.comparison.meanKl).toBeCloseTo(kl / n, 9);
    expect(result.comparison.top1Agreement).toBe(agree / n);
    expect(result.comparison.meanKl).toBeGreaterThan(0.01); // different models really differ

    const alone = await computePerplexity(model, engine, windows);
    expect(alone.perplexity).toBeCloseTo(result.model.perplexity, 9);
  });

  it('a model against itself: KL 0 and full agreement', async () => {
    const result = await compareModels(ref, ref, engine, windows.slice(0, 2));
    expect(Math.abs(result.comparison.meanKl)).toBeLessThan(1e-12);
    expect(result.comparison.top1Agreement).toBe(1);
  });
});
