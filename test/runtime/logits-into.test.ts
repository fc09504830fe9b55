/**
 * logitsInto, the decoding step's head: [rows × vocab] logits written into a caller's buffer,
 * against an f64 product of the rows with the stored lm_head, and bit for bit the streamed head
 * (fullLogits) it replaced in the decoder, on every engine, BF16 and f32, one chunk or several
 * (one row in place, several through the reused block), tied embeddings included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { listAvailableEngines } from '../../src/engine/index.js';
import { fullLogits, ResidentWeights, weightProviderOf } from '../../src/runtime/index.js';
import { logitsInto, type LogitsWorkspace } from '../../src/runtime/head.js';
import { asF32 } from '../../src/runtime/weight-matrix.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { uniform } from '../helpers/rng.js';

const dirs: string[] = [];
const opened: Checkpoint[] = [];
const engines = await listAvailableEngines();
afterAll(async () => {
  await Promise.all(opened.map((c) => c.close()));
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  engines.forEach((e) => e.dispose());
});

async function fixture(dtype: 'F32' | 'BF16', tied: boolean): Promise<Checkpoint> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rfid-logits-into-'));
  dirs.push(dir);
  await makeTinyCheckpoint(dir, 'mixtral', { seed: 4, dtype, hiddenSize: 40, vocabSize: 301, tieWordEmbeddings: tied });
  const ckpt = await openCheckpoint(dir);
  opened.push(ckpt);
  return ckpt;
}

const cases = (['F32', 'BF16'] as const).flatMap((dtype) => [false, true].map((tied) => [dtype, tied] as const));

describe.each(engines.map((e) => [e.describe(), e] as const))('%s', (_name, engine) => {
  it.each(cases)('%s weights (tied %s): f64 product, and the streamed head bit for bit', async (dtype, tied) => {
    const ckpt = await fixture(dtype, tied);
    const provider = new ResidentWeights(weightProviderOf(ckpt, { bf16Weights: true }));
    const { vocabSize: vocab, hiddenSize: h } = provider.config;
    const head = asF32(await provider.lmHeadRows(0, vocab));
    const work: LogitsWorkspace = {};
    for (const rows of [1, 3, 8, 2]) {
      const hidden = uniform(rows * h, 7 + rows);
      const streamed = await fullLogits(provider, engine, hidden, rows);
      // the whole vocabulary in one chunk, then chunks of 128 and 100 rows (301 = 128 + 128 + 45, 3 × 100 + 1)
      for (const chunkRows of [undefined, 128, 100]) {
        // a buffer longer than needed and dirty: only the first rows × vocab values are written
        const out = new Float32Array(rows * vocab + 5).fill(Number.NaN);
        await logitsInto(provider, engine, hidden, rows, out, work, { chunkRows });
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < vocab; j++) {
            let exact = 0;
            let scale = 0;
            for (let p = 0; p < h; p++) {
              exact += hidden[r * h + p] * head[j * h + p];
              scale += Math.abs(hidden[r * h + p] * head[j * h + p]);
            }
            const got = out[r * vocab + j];
            if (!(Math.abs(got - exact) <= 2 * h * 2 ** -24 * scale + 1e-30)) {
              throw new Error(`rows ${rows}, chunk ${chunkRows}: logit (${r}, ${j}) = ${got}, f64 ${exact}`);
            }
          }
        }
        if (chunkRows === undefined) expect(out.subarray(0, rows * vocab)).toEqual(streamed);
        expect(Number.isNaN(out[rows * vocab])).toBe(true);
      }
    }
  });
}, 60_000);

describe('logitsInto arguments', () => {
  it('a buffer shorter than rows × vocab is refused before any product', async () => {
    const ckpt = await fixture('F32', false);
    const provider = new ResidentWeights(weightProviderOf(ckpt));
    const { vocabSize: vocab, hiddenSize: h } = provider.config;
    await expect(logitsInto(provider, engines[0], new Float32Array(2 * h), 2, new Float32Array(2 * vocab - 1))).rejects.toThrow(/out holds 601 values, 2 rows × 301 need 602/);
  });
});
