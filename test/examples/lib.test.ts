/** The examples' helpers: the trainer's held-out split, method/γ parsing, chart ticks, RESULTS.md splicing, the error measure. */
import { describe, expect, it } from 'vitest';
import { approximationError } from '../../examples/lib/approximation-error.js';
import { splitTrainHeldOut } from '../../examples/lib/datasets.js';
import { parseMethods, parseRetains, recipeFor, METHODS } from '../../examples/lib/methods.js';
import { linearTicks, logTicks } from '../../examples/lib/svg-chart.js';
import { spliceResults, tableMarkers, TABLE_BEGIN, TABLE_END } from '../../examples/lib/sweep-results.js';
import { parseRecipe, effectiveGroupSize, effectiveXi, resolvedResidualShare } from '../../src/compress/recipe.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createEngine } from '../../src/engine/index.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GramDirectorySink } from '../../src/routing-stats/gram.js';
import { mulberry32 } from '../helpers/rng.js';

describe('splitTrainHeldOut (mirror of scripts/train_bpe_tokenizer.py)', () => {
  it('cuts at the first line start at or after 95% and loses nothing', () => {
    const text = Array.from({ length: 100 }, (_, i) => `line ${i} ${'x'.repeat(i % 7)}`).join('\n') + '\n';
    const { train, heldOut } = splitTrainHeldOut(text);
    expect(train + heldOut).toBe(text);
    expect(train.endsWith('\n')).toBe(true);
    expect(train.length).toBeGreaterThanOrEqual(Math.floor(text.length * 0.95));
    // the previous line start is before the 95% mark: the cut is the first one after it
    expect(train.slice(0, -1).lastIndexOf('\n')).toBeLessThan(Math.floor(text.length * 0.95));
  });

  it('counts code points as Python does, not UTF-16 units', () => {
    // 10 lines of 9 astral characters + newline: 100 code points but 190 UTF-16 units
    const text = Array.from({ length: 10 }, () => '😀'.repeat(9) + '\n').join('');
    // Python: cut = int(100 * 0.95) = 95 → inside line 9 (code points 90..99) → next line start = end
    // with fraction 0.15: cut = 85 → inside line 8 → held-out is the last line
    expect(splitTrainHeldOut(text, 0.15).heldOut).toBe('😀'.repeat(9) + '\n');
    expect(splitTrainHeldOut(text).heldOut).toBe('');
  });
});

describe('methods', () => {
  it('every method is a valid recipe and differs from RFID only where it should', () => {
    for (const m of METHODS) expect(() => parseRecipe(recipeFor(m, 0.4))).not.toThrow();
    const r = (m: (typeof METHODS)[number]) => parseRecipe(recipeFor(m, 0.4));
    expect(effectiveGroupSize(r('uniform'))).toBe(1);
    expect(effectiveGroupSize(r('rfid'))).toBe(4);
    expect(effectiveXi(r('frequency'))).toBe(0);
    expect(effectiveXi(r('erank'))).toBe(1);
    expect(resolvedResidualShare(r('rfid-no-residual'))).toBe(0);
    expect(resolvedResidualShare(r('rfid'))).toBe(0.03);
    expect(r('rfid-whiten').whiten).not.toBe(false);
    expect(r('rfid').whiten).toBe(false);
  });

  it('parses lists and names what is wrong', () => {
    expect(parseMethods('rfid, uniform,rfid')).toEqual(['rfid', 'uniform']);
    expect(() => parseMethods('rfid,svd')).toThrow(/unknown method\(s\) svd; choose from/);
    expect(parseRetains('0.8,0.6,0.8')).toEqual([0.8, 0.6]);
    expect(() => parseRetains('0.8,1.2')).toThrow(/fractions in \(0, 1\)/);
  });
});

describe('chart ticks', () => {
  it('linear ticks are 1-2-5 steps inside the range', () => {
    expect(linearTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(linearTicks(13, 97)).toEqual([20, 40, 60, 80]);
  });
  it('log ticks are 1-2-5 per decade inside the range', () => {
    expect(logTicks(15, 1100, 10)).toEqual([20, 50, 100, 200, 500, 1000]);
    for (const t of logTicks(30.5, 33)) expect(t).toBeGreaterThanOrEqual(30.5);
  });
});

describe('spliceResults', () => {
  it('replaces the block between the markers and keeps the prose; appends when there are none', () => {
    const doc = `# R\n\nintro\n\n${TABLE_BEGIN}\nold\n${TABLE_END}\n\ndiscussion\n`;
    expect(spliceResults(doc, 'new\n', 'unused')).toBe(`# R\n\nintro\n\n${TABLE_BEGIN}\nnew\n${TABLE_END}\n\ndiscussion\n`);
    expect(spliceResults(null, 'new\n', '# Skeleton\n')).toBe(`# Skeleton\n\n${TABLE_BEGIN}\nnew\n${TABLE_END}\n`);
  });

  it('keeps the blocks of differently tagged sweeps apart', () => {
    const full = tableMarkers('full');
    const doc = `${TABLE_BEGIN}\ncapped\n${TABLE_END}\n\n${full.begin}\nold full\n${full.end}\n`;
    const next = spliceResults(doc, 'new full\n', 'unused', 'full');
    expect(next).toBe(`${TABLE_BEGIN}\ncapped\n${TABLE_END}\n\n${full.begin}\nnew full\n${full.end}\n`);
    expect(spliceResults(next, 'new capped\n', 'unused')).toContain('new full');
  });
});

describe('approximationError', () => {
  it('equals the directly computed ‖ΔW‖/‖W‖ and ‖ΔW Xᵀ‖/‖W Xᵀ‖ over all matrices', async () => {
    const [E, p, d, rows] = [2, 3, 4, 5];
    const rand = mulberry32(7);
    const mat = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
    const W = new Map<string, Float32Array>();
    const What = new Map<string, Float32Array>();
    for (let e = 0; e < E; e++) {
      for (const t of ['gate', 'up'] as const) {
        W.set(`${e}/${t}`, mat(p * d));
        What.set(`${e}/${t}`, mat(p * d));
      }
    }
    const X = Array.from({ length: E }, () => mat(rows * d));
    const fake = (m: Map<string, Float32Array>) =>
      ({
        config: { hiddenSize: d, expertIntermediateSize: p, numExperts: E },
        layout: { layers: [{ index: 0, kind: 'moe' }] },
        readExpert: async (_l: number, e: number, t: string) => m.get(`${e}/${t}`)!,
      }) as unknown as Checkpoint;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rfid-approx-'));
    const { engine } = await createEngine('ts');
    try {
      const sink = new GramDirectorySink(dir, d, 'fp');
      for (let e = 0; e < E; e++) {
        const g = new Float64Array(d * d);
        for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) g[i * d + j] += X[e][r * d + i] * X[e][r * d + j];
        await sink.add(0, e, g, rows);
      }
      await sink.finish();
      const got = await approximationError(fake(W), fake(What), engine, dir, ['gate', 'up']);
      // direct: Y = M Xᵀ (p × rows)
      let [dw, w, dy, y] = [0, 0, 0, 0];
      for (const [key, wm] of W) {
        const e = Number(key.split('/')[0]);
        const hm = What.get(key)!;
        for (let i = 0; i < p; i++) {
          for (let r = 0; r < rows; r++) {
            let a = 0;
            let b = 0;
            for (let j = 0; j < d; j++) {
              a += wm[i * d + j] * X[e][r * d + j];
              b += (wm[i * d + j] - hm[i * d + j]) * X[e][r * d + j];
            }
            y += a * a;
            dy += b * b;
          }
          for (let j = 0; j < d; j++) {
            w += wm[i * d + j] ** 2;
            dw += (wm[i * d + j] - hm[i * d + j]) ** 2;
          }
        }
      }
      expect(got.weightRel).toBeCloseTo(Math.sqrt(dw / w), 5);
      expect(got.outputRel).toBeCloseTo(Math.sqrt(dy / y), 5);
      expect(Object.keys(got.perType).sort()).toEqual(['gate', 'up']);
    } finally {
      engine.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
