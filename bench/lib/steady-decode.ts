/**
 * Greedy decoding speed with every weight already in memory, for the benches that compare how
 * experts are held. `generate` with resident weights reads each expert the first time a token is
 * routed to it, so a short generation's tokens/s mixes in the reads (and a format that reads
 * faster looks faster); here every layer and every routed expert is read first, and a first
 * generation on the same decoder warms the caches before the timed one. Several streams show what
 * the one-call experts kernel (which runs experts on threads) does for a format.
 */
import type { Checkpoint } from '../../src/checkpoint/types.js';
import type { Engine } from '../../src/engine/types.js';
import { CheckpointWeights } from '../../src/runtime/checkpoint-weights.js';
import { BatchDecoder } from '../../src/runtime/generation/decoder.js';
import { ResidentWeights } from '../../src/runtime/resident-weights.js';

/**
 * The greedy tokens after `prompt` and their rate, weights resident and read beforehand. One
 * stream: tokens a second between its first token and its last. `streams` > 1: that many
 * sequences decoded together (the prompt with each token shifted by 13·stream), their tokens after
 * each one's first over the time from the first of those first tokens to the last token of all;
 * `tokens` are stream 0's.
 */
export async function steadyGreedyDecode(
  ckpt: Checkpoint, engine: Engine, prompt: number[], steps: number, streams = 1,
): Promise<{ tokens: number[]; perSecond: number }> {
  const provider = new ResidentWeights(new CheckpointWeights(ckpt, { bf16Weights: true }));
  for (let l = 0; l < ckpt.config.numLayers; l++) {
    const layer = await provider.layer(l);
    if (layer.mlp.kind === 'moe') for (let e = 0; e < ckpt.config.numExperts; e++) await layer.mlp.moe.expert(e);
  }
  const decoder = new BatchDecoder(provider, engine, { maxBatchSize: streams });
  const vocab = ckpt.config.vocabSize;
  try {
    let result = { tokens: [] as number[], perSecond: 0 };
    for (let run = 0; run < 2; run++) {
      const each = await Promise.all(
        Array.from({ length: streams }, async (_, s) => {
          const tokens: number[] = [];
          const at: number[] = [];
          const ids = Int32Array.from(prompt, (t) => (t + 13 * s) % vocab);
          for await (const event of decoder.submit(ids, { temperature: 0, maxNewTokens: steps + 1, stopTokenIds: [] })) {
            if (event.type === 'token') {
              tokens.push(event.token);
              at.push(performance.now());
            }
          }
          return { tokens, at };
        }),
      );
      const from = Math.min(...each.map((e) => e.at[0]));
      const to = Math.max(...each.map((e) => e.at[e.at.length - 1]));
      const after = each.reduce((n, e) => n + e.tokens.length - 1, 0);
      result = { tokens: each[0].tokens, perSecond: after / ((to - from) / 1000) };
    }
    return result;
  } finally {
    await decoder.close();
  }
}
