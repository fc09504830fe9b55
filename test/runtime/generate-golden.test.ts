/**
 * Greedy generation on the shipped models equals transformers' greedy decode token for token
 * (goldens from scripts/gen-generate-golden.py: AutoModelForCausalLM in f32, 5 prompts × 64 new
 * tokens), both one request at a time (`generate`) and with all prompts decoded together by one
 * continuous-batching `BatchDecoder`. The prompt ids of our tokenizer must equal transformers'.
 *
 * Near-ties: the golden records the gap between the two largest logits at every step. We compare
 * every token exactly; a mismatch message names the step and its gap, so a mismatch at a true
 * near-tie (gap ~1e-5, where f32 summation order decides) is visible as such instead of hidden.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openModel } from '../../src/compressed/open-model.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createEngine } from '../../src/engine/index.js';
import { BatchDecoder, generate, generateAll, loadTextCodec, weightProviderOf } from '../../src/runtime/index.js';
import { repoRoot } from '../helpers/shared-data.js';

interface GoldenCase {
  prompt: string;
  promptIds: number[];
  tokens: number[];
  top2Gap: number[];
  text: string;
}
interface Golden {
  model: string;
  weightsSha256: string;
  newTokens: number;
  cases: GoldenCase[];
}

const goldenDir = path.join(repoRoot, 'test', 'golden', 'generate');
const goldens: Golden[] = readdirSync(goldenDir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(path.join(goldenDir, f), 'utf8')) as Golden);

const { engine } = await createEngine('auto', { threads: 1 });
const opened: Checkpoint[] = [];
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  engine.dispose();
});

function firstDifference(got: number[], want: GoldenCase): string | null {
  for (let i = 0; i < want.tokens.length; i++) {
    if (got[i] !== want.tokens[i]) return `step ${i}: got ${got[i]}, transformers ${want.tokens[i]} (top-2 logit gap there ${want.top2Gap[i].toExponential(2)})`;
  }
  return got.length === want.tokens.length ? null : `got ${got.length} tokens, expected ${want.tokens.length}`;
}

describe('greedy generation equals transformers', () => {
  it('has a golden for the shipped mixtral model', () => {
    expect(goldens.map((g) => g.model)).toContain('examples/models/mixtral-tiny-shakespeare');
  });

  // a golden may be committed before its model lands in examples/models (another branch): skip it then
  const present = goldens.filter((g) => existsSync(path.join(repoRoot, g.model, 'model.safetensors')));
  for (const g of goldens) if (!present.includes(g)) console.warn(`${g.model} is not in this checkout; skipping its greedy golden`);

  describe.each(present.map((g) => [g.model, g] as const))('%s', (model, golden) => {
    const dir = path.join(repoRoot, model);
    const setup = (async () => {
      const sha = createHash('sha256').update(readFileSync(path.join(dir, 'model.safetensors'))).digest('hex');
      if (sha !== golden.weightsSha256) {
        throw new Error(`${model}/model.safetensors is not the model test/golden/generate was made from (sha256 ${sha}, golden ${golden.weightsSha256}); regenerate: .venv/bin/python scripts/gen-generate-golden.py`);
      }
      const ckpt = await openModel(dir);
      opened.push(ckpt);
      return { ckpt, codec: await loadTextCodec(dir) };
    })();

    it('tokenizes the prompts as transformers does', async () => {
      const { codec } = await setup;
      for (const c of golden.cases) expect(Array.from(codec.encode(c.prompt))).toEqual(c.promptIds);
    });

    // the shipped models store their experts as BF16: generate() keeps them so by default
    // (Bf16SwiGlu, the gemmBf16 kernel); bf16Weights: false widens them to f32 (DenseSwiGlu)
    const modes = [
      ['BF16 experts', true],
      ['f32 experts', false],
    ] as const;
    it.each(modes.flatMap(([mode, bf16Weights]) => golden.cases.map((c, i) => [i, JSON.stringify(c.prompt), mode, bf16Weights, c] as const)))('prompt %i %s alone, %s: tokens equal', async (_i, _p, _mode, bf16Weights, c) => {
      const { ckpt, codec } = await setup;
      const result = await generateAll(ckpt, engine, c.promptIds, { temperature: 0, maxNewTokens: golden.newTokens, stopTokenIds: [], tokenizer: codec, bf16Weights });
      expect(firstDifference(result.tokens, c)).toBeNull();
      expect(result.usage).toMatchObject({ promptTokens: c.promptIds.length, completionTokens: golden.newTokens, finishReason: 'length' });
      expect(result.text).toBe(c.text);
    });

    it('generate() yields one token event per token, whose texts join to the completion, then one end event with usage', async () => {
      const { ckpt, codec } = await setup;
      const c = golden.cases[0];
      const events = [];
      for await (const e of generate(ckpt, engine, c.prompt, { temperature: 0, maxNewTokens: golden.newTokens, stopTokenIds: [], tokenizer: codec })) events.push(e);
      const last = events.pop()!;
      expect(events.every((e) => e.type === 'token')).toBe(true);
      const tokens = events.map((e) => (e.type === 'token' ? e.token : -1));
      expect(firstDifference(tokens, c)).toBeNull();
      expect(last.type).toBe('end');
      if (last.type !== 'end') return;
      expect(last.usage).toMatchObject({ promptTokens: c.promptIds.length, completionTokens: golden.newTokens, finishReason: 'length' });
      expect(events.map((e) => (e.type === 'token' ? e.text : '')).join('')).toBe(c.text);
      expect(last.text).toBe(c.text);
    });

    it.each(modes)('all prompts decoded together by one BatchDecoder give the same tokens, %s', async (_mode, bf16Weights) => {
      const { ckpt } = await setup;
      const decoder = new BatchDecoder(weightProviderOf(ckpt, { bf16Weights }), engine, { maxBatchSize: golden.cases.length });
      const streams = golden.cases.map((c) => decoder.submit(c.promptIds, { temperature: 0, maxNewTokens: golden.newTokens, stopTokenIds: [] }));
      const tokens = await Promise.all(
        streams.map(async (s) => {
          const out: number[] = [];
          for await (const e of s) if (e.type === 'token') out.push(e.token);
          return out;
        }),
      );
      await decoder.close();
      expect(tokens.map((t, i) => firstDifference(t, golden.cases[i]))).toEqual(golden.cases.map(() => null));
    });
  });
});
