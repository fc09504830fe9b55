/** Evaluation window length against the model's declared context. */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/checkpoint/types.js';
import { checkEvalSeqLen, defaultEvalSeqLen, EvalSettingsError, maxPositions } from '../../src/eval/index.js';

const config = (raw: Record<string, unknown>) => ({ raw }) as unknown as ModelConfig;

describe('evaluation window length', () => {
  it('defaults to 2048, or the whole context of a shorter model', () => {
    expect(defaultEvalSeqLen(config({ max_position_embeddings: 32768 }))).toBe(2048);
    expect(defaultEvalSeqLen(config({ max_position_embeddings: 1024 }))).toBe(1024);
    expect(defaultEvalSeqLen(config({}))).toBe(2048);
    expect(maxPositions(config({ max_position_embeddings: '1024' }))).toBeNull();
  });

  it('refuses windows beyond max_position_embeddings, naming the limit', () => {
    expect(() => checkEvalSeqLen(config({ max_position_embeddings: 1024 }), 1024)).not.toThrow();
    expect(() => checkEvalSeqLen(config({ max_position_embeddings: 1024 }), 1025)).toThrow(EvalSettingsError);
    expect(() => checkEvalSeqLen(config({ max_position_embeddings: 1024 }), 4096)).toThrow(/max_position_embeddings \(1024\)/);
    expect(() => checkEvalSeqLen(config({}), 100_000)).not.toThrow();
  });
});
