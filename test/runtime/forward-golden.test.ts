/**
 * The TypeScript forward pass against two independent references, goldens from
 * `node --import tsx scripts/gen-runtime-golden.ts`:
 * - the plain-PyTorch reference (scripts/torch_reference.py): next-token logits within 1e-4
 *   relative (f32 compute; BF16/F16 weights decoded on the fly) and routing counts exactly, on a
 *   right-padded batch whose padding the reference masks;
 * - Hugging Face transformers itself (scripts/hf_reference.py, AutoModelForCausalLM) for every
 *   family it ships: the same logits within 1e-4 relative (transformers.json).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { loadNativeEngine } from '../../src/engine/native.js';
import { batchFromPadded, batchFromSequences, forwardLogits, manyRowsWeights } from '../../src/runtime/index.js';
import { countRouting } from '../../src/routing-stats/counter.js';
import { GramObserver } from '../../src/routing-stats/gram.js';
import { repoRoot } from '../helpers/shared-data.js';
import { relativeError } from '../helpers/python.js';

interface GoldenCase {
  name: string;
  family: string;
  dtype: string;
  logits: number[][];
  routing: Record<string, { counts: number[]; tokens: number }>;
  grams: { layer: number; expert: number; tokens: number; gram: number[] }[];
}
interface Golden {
  ids: number[][];
  mask: number[][];
  cases: GoldenCase[];
}

const goldenDir = path.join(repoRoot, 'test', 'golden', 'runtime');
const golden = JSON.parse(readFileSync(path.join(goldenDir, 'families.json'), 'utf8')) as Golden;
const hfGolden = JSON.parse(readFileSync(path.join(goldenDir, 'transformers.json'), 'utf8')) as {
  generator: string;
  ids: number[][];
  mask: number[][];
  cases: Array<{ name: string; family: string; logits: number[][]; loading: Record<string, string[]> }>;
  unsupported: Array<{ name: string; family: string; error: string }>;
};
const engine = createTsEngine({ threads: 1 });
afterAll(() => engine.dispose());

describe('forward pass matches the PyTorch reference', () => {
  // DeepSeek-V2 and V3 (MLA, YaRN), GLM-4.5 (partial rotary heads), GraniteMoE (multipliers), MiniMax-M2, dots.llm1, GLM-4.7-Flash, ERNIE-4.5 and Hunyuan are held to transformers itself instead, in test/hf/families.test.ts
  it('covers every runnable family but DeepSeek-V2, V3, GLM-4.5, GraniteMoE, MiniMax-M2, dots.llm1, GLM-4.7-Flash, ERNIE-4.5 and Hunyuan', () => {
    expect(new Set(golden.cases.map((c) => c.family))).toEqual(new Set(['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek']));
  });

  for (const c of golden.cases) {
    it(`${c.name} (${c.family}, ${c.dtype}): logits within 1e-4 and routing counts exact`, async () => {
      const ckpt = await openCheckpoint(path.join(goldenDir, c.name));
      try {
        const batch = batchFromPadded(golden.ids, golden.mask);
        const { counts, logits } = await countRouting(ckpt, engine, batch, { withLogits: true });
        expect(logits!.length).toBe(c.logits.length * ckpt.config.vocabSize);
        expect(relativeError(logits!, c.logits)).toBeLessThan(1e-4);
        const expected = Object.fromEntries(Object.entries(c.routing).map(([l, r]) => [l, r.counts]));
        const actual = Object.fromEntries(counts.layers.map((l) => [String(l.layer), Array.from(l.counts)]));
        expect(actual).toEqual(expected);
        for (const l of counts.layers) expect(l.tokens).toBe(c.routing[String(l.layer)].tokens);
      } finally {
        await ckpt.close();
      }
    });
  }

  // the native engine holds a calibration's BF16 weights as stored where it multiplies them faster
  // than their f32 widening (AMX tiles, manyRowsWeights): the counts must stay the reference's
  const native = loadNativeEngine({ threads: 2 });
  afterAll(() => native.ok && native.engine.dispose());
  for (const c of golden.cases.filter((g) => g.dtype === 'BF16')) {
    const how = native.ok ? (native.engine.bf16WeightsFaster ? 'BF16 weights held as stored, on AMX tiles' : 'BF16 weights widened to f32') : `skipped: ${native.reason}`;
    it.skipIf(!native.ok)(`${c.name} on the native engine (${how}): logits within 1e-4 and routing counts exact`, async () => {
      if (!native.ok) return;
      expect(manyRowsWeights(native.engine).bf16Weights).toBe(/own kernels amx/.test(native.engine.describe()));
      const ckpt = await openCheckpoint(path.join(goldenDir, c.name));
      try {
        const { counts, logits } = await countRouting(ckpt, native.engine, batchFromPadded(golden.ids, golden.mask), { withLogits: true });
        expect(relativeError(logits!, c.logits)).toBeLessThan(1e-4);
        const expected = Object.fromEntries(Object.entries(c.routing).map(([l, r]) => [l, r.counts]));
        expect(Object.fromEntries(counts.layers.map((l) => [String(l.layer), Array.from(l.counts)]))).toEqual(expected);
      } finally {
        await ckpt.close();
      }
    });
  }

  for (const c of golden.cases.filter((g) => g.grams.length > 0)) {
    it(`${c.name}: per-expert input Gram matrices XᵀX equal the reference's (padding excluded)`, async () => {
      const ckpt = await openCheckpoint(path.join(goldenDir, c.name));
      try {
        const h = ckpt.config.hiddenSize;
        const grams = new Map<string, { gram: Float64Array; tokens: number }>();
        const observer = new GramObserver(engine, h, { add: (l, e, gram, tokens) => void grams.set(`${l}/${e}`, { gram, tokens }) });
        await countRouting(ckpt, engine, batchFromPadded(golden.ids, golden.mask), { observer });
        for (const expected of c.grams) {
          const got = grams.get(`${expected.layer}/${expected.expert}`);
          expect(got?.tokens).toBe(expected.tokens);
          const scale = Math.max(...expected.gram.map(Math.abs));
          const maxDiff = Math.max(...expected.gram.map((v, i) => Math.abs(got!.gram[i] - v)));
          expect(maxDiff / scale).toBeLessThan(1e-5);
        }
      } finally {
        await ckpt.close();
      }
    });
  }

  it('padding changes nothing: the short sequence alone gives the same logits as inside the padded batch', async () => {
    const ckpt = await openCheckpoint(path.join(goldenDir, 'qwen2_moe'));
    try {
      const short = golden.ids[1].slice(0, golden.mask[1].filter((m) => m === 1).length);
      const alone = await forwardLogits(ckpt, engine, batchFromSequences([short]));
      const rows = golden.cases.find((c) => c.name === 'qwen2_moe')!.logits.slice(golden.ids[0].length);
      expect(relativeError(alone, rows)).toBeLessThan(1e-4);
    } finally {
      await ckpt.close();
    }
  });
});

describe('forward pass matches Hugging Face transformers', () => {
  it('covers every fixture: run by transformers, or listed with the error of a model_type it does not ship (DeepSeek v1 only)', () => {
    expect(hfGolden.ids).toEqual(golden.ids);
    expect(hfGolden.mask).toEqual(golden.mask);
    expect([...hfGolden.cases.map((c) => c.name), ...hfGolden.unsupported.map((u) => u.name)].sort()).toEqual(golden.cases.map((c) => c.name).sort());
    expect(new Set(hfGolden.cases.map((c) => c.family))).toEqual(new Set(['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe']));
    for (const u of hfGolden.unsupported) {
      expect(u.family).toBe('deepseek');
      expect(u.error).toMatch(/does not recognize this architecture/);
    }
    // transformers loaded every tensor of each fixture (nothing randomly initialised)
    for (const c of hfGolden.cases) expect(c.loading).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [] });
  });

  for (const c of hfGolden.cases) {
    it(`${c.name} (${c.family}): logits within 1e-4 of transformers'`, async () => {
      const ckpt = await openCheckpoint(path.join(goldenDir, c.name));
      try {
        const { logits } = await countRouting(ckpt, engine, batchFromPadded(hfGolden.ids, hfGolden.mask), { withLogits: true });
        expect(logits!.length).toBe(c.logits.length * ckpt.config.vocabSize);
        expect(relativeError(logits!, c.logits)).toBeLessThan(1e-4);
      } finally {
        await ckpt.close();
      }
    });

    it(`${c.name}: the two references agree with each other (1e-5)`, () => {
      const torch = golden.cases.find((g) => g.name === c.name)!.logits;
      expect(relativeError(Float32Array.from(c.logits.flat()), torch)).toBeLessThan(1e-5);
    });
  }
});
