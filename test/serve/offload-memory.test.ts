/**
 * A model that its policy offloads gives its memory back to the system, also when the server is
 * idle: `rfid-moe serve` collects garbage a second after an unload as after the last request
 * (src/serve/idle-gc.ts), and with its files mapped (the default) the unload hands their pages
 * back at once. Measured in the server's own RSS, on a generated ~100 MB checkpoint served with
 * keep-alive 1 s, mapped and with --no-mmap.
 */
import { readFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../compress/helpers.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { TINY_DIR, getJson, postJson, rssOf, spawnServeCli } from './helpers.js';

const MiB = 2 ** 20;
// the shipped tiny model's tokenizer, whose ids the prompt becomes
const VOCAB = JSON.parse(readFileSync(path.join(TINY_DIR, 'config.json'), 'utf8')).vocab_size as number;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let dir = '';

beforeAll(async () => {
  tmp = await tempDir('offload-memory');
  dir = path.join(tmp.dir, 'm');
  // 2 layers × 8 experts × 3 matrices of 1024 × 1024 BF16 (2 MiB each): 96 MiB of experts
  await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 9, numLayers: 2, numExperts: 8, hiddenSize: 1024, expertIntermediateSize: 1024, numHeads: 8, vocabSize: VOCAB, dtype: 'BF16' });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(TINY_DIR, f), path.join(dir, f));
}, 120_000);
afterAll(() => tmp?.cleanup());

describe('an offloaded model', () => {
  for (const flags of [[], ['--no-mmap']]) {
    it(`leaves the process: RSS falls back after the keep-alive offload, with no request after it${flags.length ? ` (${flags.join(' ')})` : ' (files mapped)'}`, async () => {
      const cli = await spawnServeCli([`m=${dir}`, '--port', '0', '--quiet', '--policy', 'keep-alive', '--keep-alive', '1', ...flags]);
      try {
        const status = async () => ((await getJson(`${cli.url}/health`)) as { models: Array<{ status: string }> }).models[0].status;
        const before = await rssOf(cli.child.pid!);
        const r = await postJson(`${cli.url}/v1/completions`, { model: 'm', prompt: 'ROMEO:', max_tokens: 2 });
        expect(r.text).toContain('usage');
        const loaded = await rssOf(cli.child.pid!);
        expect(loaded - before).toBeGreaterThan(80 * MiB);
        const t0 = performance.now();
        while ((await status()) !== 'offloaded' && performance.now() - t0 < 20_000) await sleep(200);
        expect(await status()).toBe('offloaded');
        // a second after the unload the server collects; sampled for up to 10 s (/health is not a request)
        let after = await rssOf(cli.child.pid!);
        const t1 = performance.now();
        while (after - before > 30 * MiB && performance.now() - t1 < 10_000) {
          await sleep(250);
          after = await rssOf(cli.child.pid!);
        }
        console.log(`RSS before ${(before / MiB).toFixed(0)} MiB, loaded ${(loaded / MiB).toFixed(0)} MiB, offloaded ${(after / MiB).toFixed(0)} MiB`);
        expect(after - before).toBeLessThan(30 * MiB);
      } finally {
        cli.child.kill('SIGTERM');
        await cli.exited;
      }
    }, 90_000);
  }
});
