/**
 * A position-dependent attention feature (DeepSeek Sparse Attention, Llama 4's chunks and query
 * scaling) must give each sequence of a batch the tokens it gets alone: prompts of different
 * lengths, decoded together, whole and in prefill chunks of 3, equal their greedy tokens one by one.
 */
import { expect } from 'vitest';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import type { Engine } from '../../src/engine/types.js';
import { BatchDecoder } from '../../src/runtime/generation/decoder.js';
import { generateAll } from '../../src/runtime/generation/generate.js';
import { weightProviderOf } from '../../src/runtime/model-source.js';

const NEW_TOKENS = 12;

export async function expectBatchedGreedyEqualsAlone(ckpt: Checkpoint, engine: Engine, prompts: readonly number[][], label: string): Promise<void> {
  const settings = { temperature: 0, maxNewTokens: NEW_TOKENS, stopTokenIds: [] };
  const alone: number[][] = [];
  for (const p of prompts) alone.push((await generateAll(ckpt, engine, p, settings)).tokens);
  expect(alone.every((t) => t.length === NEW_TOKENS)).toBe(true);
  for (const maxPrefillTokens of [undefined, 3]) {
    const decoder = new BatchDecoder(weightProviderOf(ckpt, { bf16Weights: true }), engine, { maxBatchSize: prompts.length, ...(maxPrefillTokens ? { maxPrefillTokens } : {}) });
    const together = await Promise.all(
      prompts.map(async (p) => {
        const tokens: number[] = [];
        for await (const event of decoder.submit(p, settings)) if (event.type === 'token') tokens.push(event.token);
        return tokens;
      }),
    );
    expect(together, `${label}, prefill chunks of ${maxPrefillTokens ?? 'any size'}`).toEqual(alone);
  }
}
