/**
 * The KV cache counts in the memory budget over HTTP: a request reserves the most its sequence's
 * KV buffers can reach (prompt + max_tokens positions, under the cache's doubling rule) next to
 * its model's weights; one that could never fit is a 400 naming max_tokens, and /health and
 * /metrics show the reservation while the request runs. The bound itself is checked against
 * the buffers a real KvCache allocates.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, kvSlotBoundBytes } from '../../src/runtime/kv-cache.js';
import { getJson, postJson, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

/**
 * The most bytes the buffers of a cache's first slot reach while a sequence goes in as the decoder
 * feeds it: the prompt in chunks (the first a fresh prefill, writeFresh), then one token a step.
 */
function peakBytes(cache: KvCache, prompt: number, chunk: number, generated: number): number {
  const slot = cache.acquire()!;
  const widest = Math.max(...Array.from({ length: cache.numLayers }, (_, l) => cache.widthOf(l)));
  const zeros = new Float32Array(Math.max(prompt, 1) * widest);
  let peak = 0;
  const step = (n: number) => {
    const fresh = cache.lengths[slot] === 0;
    cache.assertRoom([n], [slot]);
    for (let l = 0; l < cache.numLayers; l++) {
      if (fresh) cache.writeFresh(l, slot, zeros, zeros, 0, n);
      else cache.write(l, slot, cache.held(slot, l), zeros, zeros, 0, n);
    }
    cache.advance([n], [slot]);
    peak = Math.max(peak, cache.allocatedBytes);
  };
  for (let fed = 0; fed < prompt; fed += chunk) step(Math.min(chunk, prompt - fed));
  for (let i = 0; i < generated; i++) step(1);
  return peak;
}

describe('kvSlotBoundBytes', () => {
  it('bounds the buffers one slot reaches as its sequence grows (prefill chunks, then one token a step)', () => {
    const layers = 3;
    const width = 8;
    for (const [capacity, prompt, generated, chunk, valuesAreKeys] of [
      [1024, 5, 40, 512, 0],
      [1024, 100, 300, 64, 0],
      [200, 150, 49, 512, 0],
      [64, 1, 62, 512, 0],
      // MLA's latent rows: keys and values one buffer
      [1024, 100, 300, 64, 1],
      [200, 150, 49, 512, 1],
    ]) {
      const cache = new KvCache(layers, 1, capacity, width, valuesAreKeys ? width : 4, valuesAreKeys === 1);
      const peak = peakBytes(cache, prompt, chunk, generated);
      const bound = kvSlotBoundBytes(layers, width, capacity, prompt + generated, valuesAreKeys === 1);
      expect(peak).toBeLessThanOrEqual(bound);
      // and not loose by more than the doubling
      expect(bound).toBeLessThanOrEqual(Math.max(2 * peak, layers * (valuesAreKeys ? 1 : 2) * 16 * width * 4));
    }
  });
});

describe('kvSlotBoundBytes with sliding windows', () => {
  it('bounds the buffers a slot with windowed layers reaches, for any prefill chunk, and is below the bound without windows', () => {
    const layers = 4;
    const width = 8;
    // layers 0 and 2 windowed (gpt-oss's pattern)
    for (const [window, capacity, prompt, generated, chunk] of [
      [5, 1024, 3, 40, 512],
      [5, 1024, 100, 300, 64],
      [128, 4096, 1000, 700, 512],
      [128, 4096, 90, 30, 512],
      [9, 300, 150, 149, 7],
      [2, 64, 1, 62, 512],
    ]) {
      const windows = [window, null, window, null];
      const cache = new KvCache(layers, 1, capacity, width, 4, false, { windows });
      const peak = peakBytes(cache, prompt, chunk, generated);
      const slot = 0;
      const positions = prompt + generated;
      const bound = kvSlotBoundBytes(layers, width, capacity, positions, false, { windows, maxStep: chunk });
      const at = `window ${window}, prompt ${prompt} in chunks of ${chunk}, ${generated} generated`;
      expect(peak, at).toBeLessThanOrEqual(bound);
      expect(bound, at).toBeLessThanOrEqual(kvSlotBoundBytes(layers, width, capacity, positions));
      // the windowed layers hold no more than 2(W − 1) positions after the prompt
      expect(cache.held(slot, 0), at).toBeLessThanOrEqual(Math.max(16, 2 * (window - 1)));
    }
    // gpt-oss-20b's attention (24 layers, every other windowed at 128, 8 kv heads of 64) at a 32k-token request: about half
    const gptOss = Array.from({ length: 24 }, (_, l) => (l % 2 === 0 ? 128 : null));
    const ratio = kvSlotBoundBytes(24, 512, 131072, 32768, false, { windows: gptOss, maxStep: 512 }) / kvSlotBoundBytes(24, 512, 131072, 32768);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(0.52);
  });
});

describe('kvSlotBoundBytes with layers of different widths', () => {
  it('bounds the buffers of a slot whose layers differ in kv heads (MiMo-V2-Flash: its windowed layers have twice the full layers\') and whose values are narrower than its keys', () => {
    const layers = 4;
    const layerWidths = [8, 16, 16, 8];
    const windows = [null, 5, 5, null];
    for (const [capacity, prompt, generated, chunk] of [
      [1024, 5, 40, 512],
      [1024, 100, 300, 64],
      [200, 150, 49, 512],
    ]) {
      // value heads of 3 beside key heads of 4 (MiMo-V2-Flash's 128 beside 192)
      const cache = new KvCache(layers, 1, capacity, 8, 4, false, { windows, layerWidths, valueHeadDim: 3 });
      const peak = peakBytes(cache, prompt, chunk, generated);
      const at = `prompt ${prompt} in chunks of ${chunk}, ${generated} generated`;
      const bound = kvSlotBoundBytes(layers, 8, capacity, prompt + generated, false, { windows, maxStep: chunk, layerWidths, headDim: 4, valueHeadDim: 3 });
      expect(peak, at).toBeLessThanOrEqual(bound);
      // the wider layers count at their own width, the values at theirs
      expect(bound, at).toBeGreaterThan(kvSlotBoundBytes(layers, 8, capacity, prompt + generated, false, { windows, maxStep: chunk, headDim: 4, valueHeadDim: 3 }));
      expect(bound, at).toBeLessThan(kvSlotBoundBytes(layers, 8, capacity, prompt + generated, false, { windows, maxStep: chunk, layerWidths }));
    }
    expect(() => new KvCache(layers, 1, 64, 8, 4, false, { layerWidths: [8, 16, 6, 8] })).toThrow(/positive multiple of headDim 4/);
  });
});

describe('KV cache in the server’s memory budget', () => {
  let probe: Running;
  let weights = 0;
  // the tiny model: 4 layers, 2 kv heads × 32, context 1024
  const kvOf = (positions: number) => kvSlotBoundBytes(4, 64, 1024, positions);
  beforeAll(async () => {
    probe = await startServer();
    await postJson(`${probe.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 1 });
    weights = (await getJson(`${probe.url}/health`)).models[0].bytes;
    await probe.close();
  });

  let s: Running;
  afterAll(async () => {
    await s?.close();
  });

  it('refuses with a 400 a request whose KV cache could not fit next to the model, and serves one that fits', async () => {
    // room for the weights and a 200-position KV cache, not for 1000 positions
    s = await startServer({ memoryBudget: weights + kvOf(200) });
    const tooBig = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 900 });
    expect(tooBig.status).toBe(400);
    expect(tooBig.json.error.param).toBe('max_tokens');
    expect(tooBig.json.error.code).toBe('memory_budget_exceeded');
    expect(tooBig.json.error.message).toMatch(/KV cache.*memory budget/);
    const ok = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 20 });
    expect(ok.status).toBe(200);
  });

  it('maxModelLen (--max-model-len) caps the context: reported, enforced, and what a chat without max_tokens reserves', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'rfid-max-model-len-'));
    const chat = tinyWithChatTemplate(path.join(work, 'chat'));
    const messages = [{ role: 'user', content: 'Speak.' }];
    // room for the weights and a cache of the capped context (128 positions), not of the model's 1024
    const budget = weights + kvSlotBoundBytes(4, 64, 128, 128);
    const capped = await startServer({ models: [`chat=${chat}`], memoryBudget: budget, maxModelLen: 128 });
    const uncapped = await startServer({ models: [`chat=${chat}`], memoryBudget: budget });
    try {
      expect((await getJson(`${capped.url}/v1/models`)).data[0]).toMatchObject({ id: 'chat', max_model_len: 128 });
      const tooLong = await postJson(`${capped.url}/v1/completions`, { model: 'chat', prompt: 'ROMEO:', max_tokens: 200 });
      expect(tooLong.status).toBe(400);
      expect(tooLong.json.error.message).toMatch(/maximum context length is 128 tokens/);
      // no max_tokens: the completion may use the rest of the context, reserved in the budget
      const ok = await postJson(`${capped.url}/v1/chat/completions`, { model: 'chat', messages, temperature: 0 });
      expect(ok.status, ok.text).toBe(200);
      const refused = await postJson(`${uncapped.url}/v1/chat/completions`, { model: 'chat', messages, temperature: 0 });
      expect(refused.status).toBe(400);
      expect(refused.json.error.code).toBe('memory_budget_exceeded');
    } finally {
      await capped.close();
      await uncapped.close();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('shows the running request’s reservation in /health and /metrics, and frees it after', async () => {
    const prompt = 'ROMEO:';
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt, max_tokens: 180, stream: true }),
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first event: the request is admitted and decoding
    const health = await getJson(`${s.url}/health`);
    const m = health.models[0];
    const promptTokens = (await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: 1 })).json.usage.prompt_tokens;
    expect(m.kv_reserved_bytes).toBe(kvOf(promptTokens + 180));
    expect(health.used_bytes).toBe(m.bytes + m.kv_reserved_bytes);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`rfid_moe_resident_bytes\\{model="tiny"\\} ${m.bytes + m.kv_reserved_bytes}\\b`));
    while (!(await reader.read()).done);
    const after = (await getJson(`${s.url}/health`)).models[0];
    expect(after.kv_reserved_bytes).toBe(0);
  });

  it('a model with a sliding window reserves its windowed layers at the window: a request the full-context reservation would refuse fits', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'rfid-kv-window-'));
    const dir = tinyWithChatTemplate(path.join(work, 'windowed'));
    const configPath = path.join(dir, 'config.json');
    // every layer windowed at 8: a request reserves 7 + a prefill chunk (512) positions a layer, not its length (1024 at most)
    writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), sliding_window: 8 }));
    const windows = [8, 8, 8, 8];
    const prompt = 'ROMEO:';
    const promptTokens = (await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: 1 })).json.usage.prompt_tokens as number;
    const windowed = kvSlotBoundBytes(4, 64, 1024, promptTokens + 900, false, { windows, maxStep: 512 });
    // about half of what every position of every layer takes (which would not fit this budget)
    expect(windowed).toBeLessThan(0.55 * kvOf(promptTokens + 900));
    const w = await startServer({ models: [`windowed=${dir}`], memoryBudget: weights + windowed });
    try {
      const res = await fetch(`${w.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'windowed', prompt, max_tokens: 900, stream: true }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      await reader.read();
      expect((await getJson(`${w.url}/health`)).models[0].kv_reserved_bytes).toBe(windowed);
      while (!(await reader.read()).done);
    } finally {
      await w.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
