/**
 * The KV cache counts in the memory budget over HTTP: a request reserves the most its sequence's
 * KV buffers can reach (prompt + max_tokens positions, under the cache's doubling rule) next to
 * its model's weights; one that could never fit is a 400 naming max_tokens, and /health and
 * /metrics show the reservation while the request runs. The bound itself is checked against
 * the buffers a real KvCache allocates.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, kvSlotBoundBytes } from '../../src/runtime/kv-cache.js';
import { getJson, postJson, startServer, tinyWithChatTemplate, type Running } from './helpers.js';

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
      const slot = cache.acquire()!;
      let peak = 0;
      const step = (n: number) => {
        cache.assertRoom([n], [slot]);
        cache.advance([n], [slot]);
        peak = Math.max(peak, cache.allocatedBytes);
      };
      for (let fed = 0; fed < prompt; fed += chunk) step(Math.min(chunk, prompt - fed));
      for (let i = 0; i < generated; i++) step(1);
      const bound = kvSlotBoundBytes(layers, width, capacity, prompt + generated, valuesAreKeys === 1);
      expect(peak).toBeLessThanOrEqual(bound);
      // and not loose by more than the doubling
      expect(bound).toBeLessThanOrEqual(Math.max(2 * peak, layers * (valuesAreKeys ? 1 : 2) * 16 * width * 4));
    }
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
});
