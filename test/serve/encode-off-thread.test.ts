/**
 * Long prompts are tokenised by a worker thread (src/serve/encode-off-thread.ts): the same ids as
 * the tokenizer in place, and the server's event loop keeps running while it works.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INLINE_CHARS, OffThreadEncoder } from '../../src/serve/encode-off-thread.js';
import { loadTokenizer, type LoadedTokenizer } from '../../src/tokens/tokenizer.js';
import { repoRoot } from '../helpers/shared-data.js';
import { startServer, type Running } from './helpers.js';

const MODELS = ['mixtral-tiny-shakespeare', 'qwen3-moe-tiny-shakespeare'];
const TEXT = 'JULIET:\nO Romeo, Romeo! wherefore art thou Romeo? Deny thy father ✓ and refuse thy name;\n\n';

describe('OffThreadEncoder', () => {
  const encoder = new OffThreadEncoder();
  afterAll(() => encoder.close());

  it.each(MODELS)('%s: a long text gets the ids the tokenizer gives in place, with and without special tokens', async (name) => {
    const tok: LoadedTokenizer = await loadTokenizer(path.join(repoRoot, 'examples', 'models', name));
    const long = TEXT.repeat(Math.ceil((3 * INLINE_CHARS) / TEXT.length)) + '\ud800 end';
    expect(long.length).toBeGreaterThan(INLINE_CHARS);
    for (const special of [true, false]) {
      const want = tok.tokenizer.encode(long, { add_special_tokens: special }).ids;
      const got = await encoder.encode(tok, long, special);
      expect(got).toBeInstanceOf(Int32Array);
      expect(Array.from(got)).toEqual(want);
    }
    // a short one is encoded in place, the same way
    expect(Array.from(await encoder.encode(tok, TEXT, true))).toEqual(tok.tokenizer.encode(TEXT, { add_special_tokens: true }).ids);
  });

  it('encodes again after close (a new worker), and requests in flight together each get their own ids', async () => {
    const tok = await loadTokenizer(path.join(repoRoot, 'examples', 'models', MODELS[0]));
    const texts = [0, 1, 2].map((i) => `${i} `.repeat(INLINE_CHARS));
    await encoder.close();
    const all = await Promise.all(texts.map((t) => encoder.encode(tok, t, false)));
    all.forEach((ids, i) => expect(Array.from(ids)).toEqual(tok.tokenizer.encode(texts[i], { add_special_tokens: false }).ids));
  });
});

describe('a server tokenising a long prompt', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('keeps its event loop running: a 4 MB prompt (1.1 M tokens, refused for the context) blocked it for seconds before', async () => {
    const text = 'ROMEO: what light through yonder window breaks? '.repeat(Math.floor(4e6 / 48));
    // the longest gap between timer ticks while the request runs: the event loop's stall
    let last = performance.now();
    let longest = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 5);
    try {
      const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: text, max_tokens: 1 }) });
      const body = (await r.json()) as { error: { message: string; code: string } };
      expect(r.status).toBe(400);
      // the count comes from the worker's tokenizer: the whole text was encoded
      expect(body.error.message).toMatch(/the prompt has 1083329 tokens/);
    } finally {
      clearInterval(ticker);
    }
    // tokenising it in place took 2.7 s on this machine; parsing the JSON body still happens here
    expect(longest).toBeLessThan(1_000);
  }, 60_000);
});
