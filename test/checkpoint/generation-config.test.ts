/**
 * The ids generation stops at come from generation_config.json when it names them, else from
 * config.json, all of a list (src/checkpoint/generation-config.ts), as transformers' generate()
 * takes them. Independent truth: transformers' own greedy generate() on the same directory
 * (scripts/hf_reference.py) stops at the same token as ours.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { compress } from '../../src/compress/index.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { createEngine } from '../../src/engine/index.js';
import { BatchDecoder, weightProviderOf, type GenerationStream } from '../../src/runtime/index.js';
import { syntheticStats } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { describeWithTransformers, runHfJobs } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';
import { makeScratch } from './tmp-dirs.js';

let scratch: Awaited<ReturnType<typeof makeScratch>>;
beforeAll(async () => {
  scratch = await makeScratch('generation-config');
});
afterAll(async () => {
  await scratch?.cleanup();
});

/** A tiny checkpoint whose config.json names `eos` and, unless undefined, with `generation` as its generation_config.json. */
async function tiny(name: string, eos: unknown, generation?: unknown): Promise<string> {
  const dir = scratch.sub(name);
  await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 5 });
  const configFile = path.join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), eos_token_id: eos }));
  if (generation !== undefined) writeFileSync(path.join(dir, 'generation_config.json'), typeof generation === 'string' ? generation : JSON.stringify(generation));
  return dir;
}

async function eosIdsOf(dir: string): Promise<readonly number[]> {
  const ckpt = await openCheckpoint(dir);
  try {
    return ckpt.config.eosTokenIds;
  } finally {
    await ckpt.close();
  }
}

describe('end-of-sequence ids', () => {
  it('all of config.json’s list, or its one id, without generation_config.json', async () => {
    expect(await eosIdsOf(await tiny('list', [2, 7, 2]))).toEqual([2, 7]);
    expect(await eosIdsOf(await tiny('one', 3))).toEqual([3]);
    expect(await eosIdsOf(await tiny('none', null))).toEqual([]);
  });

  it('generation_config.json’s when it names them, config.json’s when it does not', async () => {
    expect(await eosIdsOf(await tiny('gen-list', 2, { eos_token_id: [5, 2], temperature: 0.6 }))).toEqual([5, 2]);
    expect(await eosIdsOf(await tiny('gen-one', [2, 7], { eos_token_id: 9 }))).toEqual([9]);
    expect(await eosIdsOf(await tiny('gen-silent', [2, 7], { temperature: 0.6 }))).toEqual([2, 7]);
  });

  it('its temperature, top_p, top_k, min_p and repetition_penalty are the sampling defaults; absent ones stay unset', async () => {
    const read = async (dir: string) => {
      const ckpt = await openCheckpoint(dir);
      try {
        return ckpt.config.samplingDefaults;
      } finally {
        await ckpt.close();
      }
    };
    expect(await read(await tiny('sampling', 2, { do_sample: true, temperature: 0.6, top_p: 0.95, top_k: 20 }))).toEqual({ temperature: 0.6, topP: 0.95, topK: 20 });
    // Qwen2.5's generation_config.json sets repetition_penalty 1.05 beside these
    expect(await read(await tiny('sampling-rep', 2, { repetition_penalty: 1.05, temperature: 0.7, min_p: 0.1 }))).toEqual({ temperature: 0.7, repetitionPenalty: 1.05, minP: 0.1 });
    expect(await read(await tiny('sampling-some', 2, { top_p: 0.8, top_k: null }))).toEqual({ topP: 0.8 });
    expect(await read(await tiny('sampling-none', 2))).toEqual({});
    await expect(openCheckpoint(await tiny('bad-temperature', 2, { temperature: -1 }))).rejects.toThrow(/generation_config\.json: temperature -1 must be a number ≥ 0/);
    await expect(openCheckpoint(await tiny('bad-top-p', 2, { top_p: 0 }))).rejects.toThrow(/top_p 0 must be a number in \(0, 1\]/);
    await expect(openCheckpoint(await tiny('bad-top-k', 2, { top_k: 2.5 }))).rejects.toThrow(/top_k 2\.5 must be an integer ≥ 0/);
    await expect(openCheckpoint(await tiny('bad-min-p', 2, { min_p: 1.5 }))).rejects.toThrow(/min_p 1\.5 must be a number in \[0, 1\]/);
    await expect(openCheckpoint(await tiny('bad-rep', 2, { repetition_penalty: 0 }))).rejects.toThrow(/repetition_penalty 0 must be a number in \[0\.01, 100\] \(1 = off\)/);
    await expect(openCheckpoint(await tiny('tiny-rep', 2, { repetition_penalty: 1e-300 }))).rejects.toThrow(/repetition_penalty 1e-300 must be a number in \[0\.01, 100\]/);
  });

  it('a generation_config.json that is not JSON, or whose ids are not token ids, is refused naming the file', async () => {
    await expect(openCheckpoint(await tiny('bad-json', 2, '{"eos_token_id": [1,'))).rejects.toMatchObject({ variant: 'InvalidGenerationConfig', message: expect.stringMatching(/generation_config\.json is not valid JSON/) });
    await expect(openCheckpoint(await tiny('bad-id', 2, { eos_token_id: [1, 1e9] }))).rejects.toThrow(/generation_config\.json: eos_token_id \[1,1000000000\] must be a token id or a list of them, each an integer in \[0, \d+\)/);
    await expect(openCheckpoint(await tiny('bad-type', 2, { eos_token_id: '2' }))).rejects.toThrow(/must be a token id/);
    await expect(openCheckpoint(await tiny('bad-array', 2, '[1, 2]'))).rejects.toThrow(/must hold a JSON object/);
  });

  it('a compressed output keeps the list (the file is copied and read again)', async () => {
    const dir = await tiny('to-compress', 2, { eos_token_id: [6, 2] });
    const out = scratch.sub('compressed');
    const original = await openCheckpoint(dir);
    const { engine } = await createEngine('ts', { threads: 1 });
    try {
      await compress(original, { retain: 0.6 }, { out, stats: syntheticStats(original), engine, evaluation: false });
    } finally {
      await original.close();
      engine.dispose();
    }
    const model = await loadCompressed(out);
    expect(model.config.eosTokenIds).toEqual([6, 2]);
    await model.close();
  });
});

describeWithTransformers('generation stops where transformers’ generate() stops', () => {
  it('at the second id of generation_config.json’s list, not only at config.json’s', async () => {
    const dir = scratch.sub('demo');
    cpSync(path.join(repoRoot, 'examples', 'models', 'qwen3-moe-tiny-shakespeare'), dir, { recursive: true });
    const prompt = [464, 1110, 286, 262, 3290, 11];
    const { engine } = await createEngine('auto', { threads: 1 });
    const greedy = async (stopTokenIds?: number[]) => {
      const ckpt = await openCheckpoint(dir);
      const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize: 1 });
      const tokens: number[] = [];
      let finish = '';
      const drain = async (s: GenerationStream) => {
        for await (const e of s) {
          if (e.type === 'token') tokens.push(e.token);
          else if (e.type === 'end') finish = e.usage.finishReason;
        }
      };
      await drain(decoder.submit(prompt, { temperature: 0, maxNewTokens: 24, ...(stopTokenIds ? { stopTokenIds } : {}) }));
      await decoder.close();
      await ckpt.close();
      return { tokens, finish };
    };
    try {
      const free = await greedy([]);
      // a token of the continuation that appears there first at position ≥ 8, made an EOS id
      // second in the list (the first, config.json's, never appears)
      const at = free.tokens.findIndex((t, i) => i >= 8 && free.tokens.indexOf(t) === i);
      expect(at).toBeGreaterThanOrEqual(8);
      const configEos = (JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { eos_token_id: number }).eos_token_id;
      expect(free.tokens).not.toContain(configEos);
      writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [configEos, free.tokens[at]] }));

      const ours = await greedy();
      expect(ours.tokens).toEqual(free.tokens.slice(0, at + 1));
      expect(ours.finish).toBe('stop');
      const [hf] = (await runHfJobs([{ op: 'generate', model: dir, ids: prompt, maxNewTokens: 24 }])).results;
      expect(hf.ok, hf.error).toBe(true);
      expect(hf.eosTokenId).toEqual([configEos, free.tokens[at]]);
      expect(hf.generated).toEqual(ours.tokens);
    } finally {
      engine.dispose();
    }
  }, 120_000);
});
