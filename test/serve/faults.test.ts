/**
 * Faults: a client that disconnects mid-stream stops its generation and frees its KV cache; a
 * corrupt or partial checkpoint among the served models is refused with a clear message while
 * the others keep serving; SIGTERM drains in-flight requests and exits 0; a bounded loopback
 * load test (200 requests at 32 concurrent) completes every request and the server's RSS returns
 * to within 10% of its pre-test level.
 */
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_DIR, generatedTokens, postJson, rssOf, spawnServeCli, startServer, type Running, getJson } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function health(url: string): Promise<any> {
  return getJson(`${url}/health`);
}

describe('client disconnect mid-stream', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('stops the generation and frees its KV-cache slot', async () => {
    const controller = new AbortController();
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'ROMEO:', max_tokens: 1000, temperature: 0.7, stream: true }),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let received = 0;
    while (received < 5) {
      const { value } = await reader.read();
      received += (new TextDecoder().decode(value).match(/^data: \{/gm) ?? []).length;
    }
    const during = (await health(s.url)).models[0];
    expect(during.active_sequences).toBe(1);
    expect(during.kv_cache_bytes).toBeGreaterThan(0);
    controller.abort();
    let after = during;
    for (let i = 0; i < 100 && (after.active_sequences > 0 || after.in_flight > 0); i++) {
      await sleep(50);
      after = (await health(s.url)).models[0];
    }
    expect(after.active_sequences).toBe(0);
    expect(after.in_flight).toBe(0);
    expect(after.kv_cache_bytes).toBe(0);
    const tokensThen = generatedTokens(await (await fetch(`${s.url}/metrics`)).text());
    await sleep(300);
    const tokensLater = generatedTokens(await (await fetch(`${s.url}/metrics`)).text());
    expect(tokensLater).toBe(tokensThen); // nothing is generated for the departed client
    expect(tokensThen).toBeLessThan(1000);
  });
});

describe('a corrupt or partial checkpoint among the served models', () => {
  let tmp: string;
  let s: Running;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'rfid-serve-corrupt-'));
    const partial = path.join(tmp, 'partial');
    const badConfig = path.join(tmp, 'bad-config');
    await cp(TINY_DIR, partial, { recursive: true });
    await cp(TINY_DIR, badConfig, { recursive: true });
    const weights = path.join(partial, 'model.safetensors');
    await truncate(weights, Math.floor((await readFile(weights)).length / 2));
    await writeFile(path.join(badConfig, 'config.json'), '{"model_type": "mixtral", "hidden_size": ');
    s = await startServer({ models: [`tiny=${TINY_DIR}`, `partial=${partial}`, `bad-config=${badConfig}`] });
  });
  afterAll(async () => {
    await s?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('is refused with a reason that names the problem', () => {
    expect([...s.server.models.keys()]).toEqual(['tiny']);
    expect(s.server.refused.get('partial')!.reason).toMatch(/bytes are missing|truncated/);
    expect(s.server.refused.get('bad-config')!.reason).toMatch(/config\.json is not valid JSON/);
  });

  it('requests for it get a 503 with that reason; the others keep serving', async () => {
    const bad = await postJson(`${s.url}/v1/completions`, { model: 'partial', prompt: 'x' });
    expect(bad.status).toBe(503);
    expect(bad.json.error.code).toBe('model_unavailable');
    expect(bad.json.error.message).toMatch(/cannot be served: .*(missing|truncated)/);
    const good = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 3 });
    expect(good.status).toBe(200);
    const listed = (await getJson(`${s.url}/v1/models`)).data.map((m: { id: string }) => m.id);
    expect(listed).toEqual(['tiny']);
    const h = await health(s.url);
    expect(h.models.find((m: { id: string }) => m.id === 'partial')).toMatchObject({ status: 'refused' });
  });

  it('the CLI says so on stderr and serves the rest', async () => {
    const cli = await spawnServeCli([`tiny=${TINY_DIR}`, `partial=${path.join(tmp, 'partial')}`, '--port', '0', '--quiet']);
    try {
      expect(cli.stderr()).toMatch(/refusing model partial .*(missing|truncated)/);
      expect((await postJson(`${cli.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 2 })).status).toBe(200);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });
});

describe('draining', () => {
  it('a request that arrives on a connection still open while the server drains gets a 503 error object; the stream in flight ends whole', async () => {
    const s = await startServer();
    const port = Number(new URL(s.url).port);
    const body = JSON.stringify({ model: 'tiny', prompt: 'ROMEO:', max_tokens: 120, temperature: 0.7, seed: 3, stream: true });
    const socket = connect(port, '127.0.0.1');
    let got = '';
    let firstData!: () => void;
    const first = new Promise<void>((resolve) => (firstData = resolve));
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      firstData();
    });
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await first;
    const closing = s.close();
    // pipelined behind the stream: parsed while the server drains, answered after the stream
    socket.write('GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
    await ended;
    await closing;
    const [stream, late] = got.split(/(?=HTTP\/1\.1 )/);
    expect(stream).toMatch(/^HTTP\/1\.1 200 /);
    expect(stream).toMatch(/"finish_reason":"length"/);
    expect(stream).toMatch(/data: \[DONE\]/);
    expect(late).toMatch(/^HTTP\/1\.1 503 /);
    expect(JSON.parse(late.slice(late.indexOf('\r\n\r\n') + 4))).toEqual({
      error: { message: 'the server is shutting down and accepts no new requests', type: 'service_unavailable_error', param: null, code: 'shutting_down' },
    });
  });
});

describe('closing', () => {
  it('a connection a client opened and never used does not keep the drained server open', async () => {
    const s = await startServer();
    const port = Number(new URL(s.url).port);
    // one connection that served a request and stays open (keep-alive), one that never sent a byte
    const used = connect(port, '127.0.0.1');
    let answer = '';
    await new Promise<void>((resolve) => {
      used.on('data', (d: Buffer) => {
        answer += d.toString();
        if (answer.includes('"status"')) resolve();
      });
      used.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    const unused = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => unused.once('connect', () => resolve()));
    const closedBy = (socket: typeof unused) => new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const both = Promise.all([closedBy(used), closedBy(unused)]);
    const started = performance.now();
    await s.close();
    await both;
    // Node's own close leaves the unused connection to its 60 s header timeout
    expect(performance.now() - started).toBeLessThan(5_000);
  }, 20_000);
});

describe('rfid-moe serve as a process', () => {
  it('SIGTERM drains the in-flight stream to its end, then exits 0', async () => {
    const cli = await spawnServeCli([`tiny=${TINY_DIR}`, '--port', '0']);
    const res = await fetch(`${cli.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'ROMEO:', max_tokens: 60, temperature: 0.7, seed: 1, stream: true, stream_options: { include_usage: true } }),
    });
    const reader = res.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    cli.child.kill('SIGTERM');
    // a new request is no longer accepted
    const late = await fetch(`${cli.url}/v1/models`).then(
      async (r) => ({ status: r.status, body: (await r.json()) as unknown }),
      () => 'refused' as const,
    );
    // refused when the listener has closed; on a connection still open, an OpenAI error object
    if (late !== 'refused') expect(late).toEqual({ status: 503, body: { error: { message: expect.stringMatching(/shutting down/), type: 'service_unavailable_error', param: null, code: 'shutting_down' } } });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toMatch(/"completion_tokens":60/);
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(await cli.exited).toBe(0);
    expect(cli.stderr()).toMatch(/SIGTERM: draining/);
    // without --quiet every load and unload is logged with its reason (the bench's --verbose reads them)
    expect(cli.stderr()).toMatch(/loaded tiny \([^)]*, request\)/);
    expect(cli.stderr()).toMatch(/unloaded tiny \([^)]*, shutdown\)\n(.|\n)*drained; exiting/);
  });

  it('bad options exit 2 with one message', async () => {
    await expect(spawnServeCli([TINY_DIR, '--policy', 'fifo'])).rejects.toThrow(/exited with 2.*--policy must be one of tyche, keep-alive, on-demand, lru/s);
    await expect(spawnServeCli([TINY_DIR, '--memory-budget', 'lots'])).rejects.toThrow(/--memory-budget must be a byte count/);
    await expect(spawnServeCli([TINY_DIR, '--memory-budget', '1M'])).rejects.toThrow(/none of the given models can be served/);
    await expect(spawnServeCli([TINY_DIR, '--max-model-len', '1'])).rejects.toThrow(/exited with 2.*--max-model-len must be/s);
  });

  it('--max-model-len caps the context the models report and enforce', async () => {
    const cli = await spawnServeCli([`tiny=${TINY_DIR}`, '--port', '0', '--quiet', '--max-model-len', '96']);
    try {
      expect((await getJson(`${cli.url}/v1/models`)).data[0]).toMatchObject({ id: 'tiny', max_model_len: 96 });
      const r = await postJson(`${cli.url}/v1/completions`, { model: 'tiny', prompt: 'ROMEO:', max_tokens: 100 });
      expect(r.status).toBe(400);
      expect(r.json.error.message).toMatch(/maximum context length is 96 tokens/);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });

  it('200 requests at 32 concurrent all complete; RSS returns to within 10% of its pre-test level', async () => {
    // glibc raises its mmap threshold dynamically once large buffers are freed, after which freed
    // activation buffers stay in its heap instead of going back to the OS: RSS then stays ~40 MiB
    // above the warm level although the JS heap and ArrayBuffers are back (measured: 176 → 215
    // MiB, heap 28 → 22 MiB, ArrayBuffers 27 → 27 MiB). A fixed threshold (the README's Serving
    // section recommends it for long-running servers) makes RSS reflect what the server holds.
    const cli = await spawnServeCli([`tiny=${TINY_DIR}`, '--port', '0', '--quiet', '--max-batch-size', '32'], { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' });
    try {
      const ask = (i: number) => postJson(`${cli.url}/v1/completions`, { model: 'tiny', prompt: `ROMEO ${i}:`, max_tokens: 4, temperature: 0.8, seed: i, stream: i % 2 === 0 });
      // Pre-test level: after the model is loaded and one round of the same load has run (200
      // requests, 32 at a time), so the level includes the steady working set of continuous
      // batching at every batch width it passes through (engine scratch, V8's grown young
      // generation). One batch of 32 reached only part of it: over the first 200 requests the JS
      // heap stayed flat (74.6 → 74.9 MiB total) while native memory grew (external 23.3 → 29.6
      // MiB, RSS +11 to +14 MiB), which put a 132 MiB baseline 10.9% up; further rounds measured
      // flat. What is checked is that 200 requests leave nothing behind (KV caches, streams,
      // sockets).
      const round = async (count: number, onResponse: (r: Awaited<ReturnType<typeof ask>>) => void) => {
        let next = 0;
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next < count) onResponse(await ask(next++));
          }),
        );
      };
      await round(200, () => undefined);
      await sleep(1000);
      const before = await rssOf(cli.child.pid!);
      let ok = 0;
      const statuses: number[] = [];
      await round(200, (r) => {
        statuses.push(r.status);
        if (r.status === 200 && (r.json?.usage?.completion_tokens > 0 || r.text.includes('[DONE]'))) ok++;
      });
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(ok).toBe(200);
      const h = await health(cli.url);
      expect(h.models[0]).toMatchObject({ in_flight: 0, active_sequences: 0, kv_cache_bytes: 0 });
      // the server collects garbage a second after it falls idle (src/serve/idle-gc.ts); RSS is
      // sampled from then on, for up to 30 s
      await sleep(1500);
      const t0 = performance.now();
      let after = await rssOf(cli.child.pid!);
      while (after > before * 1.1 && performance.now() - t0 < 30_000) {
        await sleep(500);
        await health(cli.url);
        after = await rssOf(cli.child.pid!);
      }
      console.log(`RSS before ${(before / 2 ** 20).toFixed(1)} MiB, after ${(after / 2 ** 20).toFixed(1)} MiB (${((performance.now() - t0) / 1000).toFixed(1)} s after the last request)`);
      expect(after).toBeLessThanOrEqual(before * 1.1);
      // what JavaScript holds is back as well (no request, stream or KV buffer kept alive)
      const mem = (await health(cli.url)).process_memory;
      expect(mem.arrayBuffers).toBeLessThan(before * 0.5);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  });
});
