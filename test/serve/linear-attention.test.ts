/**
 * A model with linear-attention layers (Qwen3-Next's Gated DeltaNet) over HTTP: a request reserves
 * its KV cache in the memory budget as the cache holds it (keys and values of the attention layers
 * only, a state of fixed size in each linear layer), and n choices of one prompt, which cannot share
 * a cached beginning (the state is that of a whole sequence), each give the greedy tokens a single
 * request gets.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { DEFAULT_MAX_PREFILL_TOKENS } from '../../src/runtime/generation/decoder.js';
import { kvCacheShape, kvSlotBoundBytes, kvWindows, linearCacheLayout } from '../../src/runtime/kv-cache.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { getJson, postJson, startServer, TINY_DIR, type Running } from './helpers.js';

describe('serving a model with linear-attention layers', () => {
  let work: string;
  let s: Running;
  let reservation: (positions: number) => number;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'rfid-linear-serve-'));
    const dir = path.join(work, 'next');
    // the tiny model's tokenizer: its vocabulary (4096) and BOS/EOS (4095, the fixture's V − 1)
    await makeTinyCheckpoint(dir, 'qwen3_next', { seed: 55, vocabSize: 4096, topK: 3 });
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(path.join(TINY_DIR, file), path.join(dir, file));
    const ckpt = await openCheckpoint(dir);
    const { config } = ckpt;
    await ckpt.close();
    const shape = kvCacheShape(config);
    const linear = linearCacheLayout(config)!;
    const context = config.raw.max_position_embeddings as number;
    reservation = (positions) => kvSlotBoundBytes(config.numLayers, shape.width, context, positions, false, { windows: kvWindows(config), maxStep: DEFAULT_MAX_PREFILL_TOKENS, linear });
    s = await startServer({ models: [`next=${dir}`] });
  });

  afterAll(async () => {
    await s?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('reserves the attention layers’ keys and values and the linear layers’ states, and frees them after', async () => {
    const prompt = 'ROMEO:';
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'next', prompt, max_tokens: 40, stream: true, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const reserved = (await getJson(`${s.url}/health`)).models[0].kv_reserved_bytes;
    while (!(await reader.read()).done);
    const promptTokens = (await postJson(`${s.url}/v1/completions`, { model: 'next', prompt, max_tokens: 1 })).json.usage.prompt_tokens as number;
    expect(reserved).toBe(reservation(promptTokens + 40));
    expect((await getJson(`${s.url}/health`)).models[0].kv_reserved_bytes).toBe(0);
  });

  it('n choices of one prompt each give the greedy tokens a single request gets', async () => {
    const body = { model: 'next', prompt: 'ROMEO: what light', max_tokens: 12, temperature: 0, ignore_eos: true };
    const one = await postJson(`${s.url}/v1/completions`, body);
    expect(one.status, one.text).toBe(200);
    const three = await postJson(`${s.url}/v1/completions`, { ...body, n: 3 });
    expect(three.status, three.text).toBe(200);
    expect(three.json.choices.map((c: { text: string }) => c.text)).toEqual([0, 1, 2].map(() => one.json.choices[0].text));
    // each choice computed its prompt: nothing copied from another
    expect((await getJson(`${s.url}/health`)).models[0].shared_prefix_tokens).toBe(0);
  });
});
