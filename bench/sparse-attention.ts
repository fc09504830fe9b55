/**
 * npm run bench:sparse-attention [-- --top-k 512] [-- --new-tokens 2048] [-- --rounds 3] [-- --threads 2]
 *
 * What DeepSeek Sparse Attention costs a decoding step, past index_topk, on the native engine. Two
 * generated DeepSeek-V3.2-shaped checkpoints with the same weights (hidden 1024, 64 heads with
 * V3.2's MLA widths: kv_lora 512, nope 128, rope 64, v 128; an indexer of 32 heads of 128; 2
 * layers, the first dense; 16 experts of width 256, top-4; BF16) differ only in index_topk: --top-k,
 * and one past the context, where the indexer keeps every position and every step runs the dense
 * kernels alone. Each greedily generates --new-tokens from a 4-token prompt; reported per round
 * (the two alternating) are the tokens/s of three stretches of the generation, the first below
 * index_topk, where both run the same code. Then per round and checkpoint, the time to the first
 * token after a prompt of --prompt-tokens (default 4 × --top-k), prefilled in the decoder's chunks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createNativeEngine } from '../src/engine/native.js';
import { generate } from '../src/runtime/generation/generate.js';
import { makeTinyCheckpoint } from '../test/helpers/fixtures.js';

const { values } = parseArgs({
  options: {
    'top-k': { type: 'string', default: '512' },
    'new-tokens': { type: 'string', default: '2048' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string' },
  },
});
const topK = Number(values['top-k']);
const newTokens = Number(values['new-tokens']);
const rounds = Number(values.rounds);
const threads = Number(values.threads);
const promptTokens = Number(values['prompt-tokens'] ?? 4 * topK);
for (const [name, v] of [['--top-k', topK], ['--new-tokens', newTokens], ['--rounds', rounds], ['--threads', threads], ['--prompt-tokens', promptTokens]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
}
if (newTokens < 2 * topK) throw new Error(`--new-tokens ${newTokens} must reach at least twice --top-k ${topK}, so that most of the generation is past index_topk`);

const context = Math.max(newTokens, promptTokens) + 16;
const shape = {
  seed: 5,
  numLayers: 2,
  hiddenSize: 1024,
  numHeads: 64,
  numExperts: 16,
  topK: 4,
  expertIntermediateSize: 256,
  vocabSize: 4096,
  qLoraRank: 384,
  mla: { kvLoraRank: 512, nope: 128, rope: 64, v: 128 },
  dtype: 'BF16' as const,
  configKeys: { max_position_embeddings: context },
};
const dir = mkdtempSync(path.join(tmpdir(), 'rfid-bench-dsa-'));
const dirs = { dense: path.join(dir, 'dense'), sparse: path.join(dir, 'sparse') };
await makeTinyCheckpoint(dirs.sparse, 'deepseek_v32', { ...shape, indexer: { topK, heads: 32, headDim: 128 } });
await makeTinyCheckpoint(dirs.dense, 'deepseek_v32', { ...shape, indexer: { topK: context, heads: 32, headDim: 128 } });

const engine = createNativeEngine({ threads });
const stretches = [
  [Math.floor(topK / 8), Math.floor((topK * 3) / 4)],
  [Math.floor(newTokens * 0.4), Math.floor(newTokens * 0.6)],
  [Math.floor(newTokens * 0.8), newTokens],
] as const;
console.log(`index_topk ${topK}, ${newTokens} new tokens after a 4-token prompt, ${threads} threads, ${engine.describe()}`);
console.log(`| round | index_topk | ${stretches.map(([a, b]) => `tokens/s, positions ${a + 4}–${b + 4}`).join(' | ')} |`);
console.log(`|---|---|${stretches.map(() => '---:').join('|')}|`);
const prefill: string[] = [];
try {
  for (let round = 1; round <= rounds; round++) {
    for (const which of ['dense', 'sparse'] as const) {
      const ckpt = await openCheckpoint(dirs[which]);
      const gaps: number[] = [];
      try {
        let last = performance.now();
        for await (const event of generate(ckpt, engine, [1, 2, 3, 4], { temperature: 0, maxNewTokens: newTokens, stopTokenIds: [] })) {
          if (event.type !== 'token') continue;
          const now = performance.now();
          gaps.push(now - last);
          last = now;
        }
      } finally {
        await ckpt.close();
      }
      const rate = ([a, b]: readonly [number, number]) => ((b - a) / (gaps.slice(a, b).reduce((x, y) => x + y, 0) / 1000)).toFixed(1);
      console.log(`| ${round} | ${which === 'dense' ? `${context} (every position kept)` : topK} | ${stretches.map(rate).join(' | ')} |`);
      const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % 4000);
      const long = await openCheckpoint(dirs[which]);
      try {
        const start = performance.now();
        for await (const event of generate(long, engine, prompt, { temperature: 0, maxNewTokens: 1, stopTokenIds: [] })) if (event.type === 'token') break;
        prefill.push(`| ${round} | ${which === 'dense' ? `${context} (every position kept)` : topK} | ${((performance.now() - start) / 1000).toFixed(2)} |`);
      } finally {
        await long.close();
      }
    }
  }
  console.log(`\n| round | index_topk | first token after ${promptTokens} prompt tokens (s) |\n|---|---|---:|\n${prefill.join('\n')}`);
} finally {
  engine.dispose();
  rmSync(dir, { recursive: true, force: true });
}
