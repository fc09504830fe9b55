/**
 * Perplexity on WikiText-2 test (GPT-2 tokenizer) equals the PyTorch reference's to better than
 * 4 significant digits, on a mixtral fixture with the GPT-2 vocabulary. Golden:
 * test/golden/runtime/perplexity.json from `node --import tsx scripts/gen-runtime-golden.ts`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';
import { computePerplexity } from '../../src/eval/index.js';
import { tokenizeDataset } from '../../src/tokens/prepare.js';
import { evaluationWindows } from '../../src/tokens/windows.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { hasSharedData, repoRoot, sharedPath } from '../helpers/shared-data.js';
import { PPL_FIXTURE, weightsSha256 } from '../../scripts/gen-runtime-golden.js';

const golden = JSON.parse(readFileSync(path.join(repoRoot, 'test', 'golden', 'runtime', 'perplexity.json'), 'utf8')) as {
  dataset: { tokens: number };
  fixture: typeof PPL_FIXTURE & { weightsSha256: string };
  torch: { windows: number; tokens: number; meanNll: number; perplexity: number };
};

describe.skipIf(!hasSharedData)('perplexity on WikiText-2 test matches PyTorch', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rfid-ppl-'));
  let engine: Engine;
  let ckpt: Checkpoint;

  beforeAll(async () => {
    // native when built (the head's GEMM is 50257 wide), else the pure-TS engine
    engine = (await createEngine('auto')).engine;
    await makeTinyCheckpoint(path.join(work, 'model'), PPL_FIXTURE.family, PPL_FIXTURE.options);
    ckpt = await openCheckpoint(path.join(work, 'model'));
  });
  afterAll(async () => {
    await ckpt?.close();
    engine?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it('uses the very fixture the golden was computed on', () => {
    expect(golden.fixture.options).toEqual(PPL_FIXTURE.options);
    // a changed fixture generator makes the golden meaningless: regenerate it (see the script)
    expect(weightsSha256(path.join(work, 'model')), 'fixture weights changed: run node --import tsx scripts/gen-runtime-golden.ts').toBe(golden.fixture.weightsSha256);
  });

  it('tokenizes WikiText-2 test to the golden 287,644 tokens and matches the perplexity to 4+ digits', async () => {
    const data = await tokenizeDataset(sharedPath('gpt2-tokenizer', 'tokenizer.json'), sharedPath('wikitext-2-raw', 'wiki.test.raw'));
    expect(data.ids.length).toBe(287_644);
    expect(golden.dataset.tokens).toBe(287_644);
    const windows = evaluationWindows(data.ids, golden.fixture.seqLen, golden.fixture.maxWindows);
    const result = await computePerplexity(ckpt, engine, windows);
    expect(result.tokens).toBe(golden.torch.tokens);
    expect(result.perplexity.toPrecision(4)).toBe(golden.torch.perplexity.toPrecision(4));
    expect(Math.abs(result.meanNll - golden.torch.meanNll) / golden.torch.meanNll).toBeLessThan(1e-6);
  });
});
