/**
 * Greedy decoding speed with every weight already in memory, for the benches that compare how
 * experts are held. `generate` with resident weights reads each expert the first time a token is
 * routed to it, so a short generation's tokens/s mixes in the reads (and a format that reads
 * faster looks faster); here every layer and every routed expert is read first, and a first
 * generation on the same decoder warms the caches before the timed one.
 */
import type { Checkpoint } from '../../src/checkpoint/types.js';
import type { Engine } from '../../src/engine/types.js';
import { CheckpointWeights } from '../../src/runtime/checkpoint-weights.js';
import { BatchDecoder } from '../../src/runtime/generation/decoder.js';
import { ResidentWeights } from '../../src/runtime/resident-weights.js';

/** The greedy tokens after `prompt` and their rate (tokens a second between the first and the last), weights resident and read beforehand. */
export async function steadyGreedyDecode(ckpt: Checkpoint, engine: Engine, prompt: number[], steps: number): Promise<{ tokens: number[]; perSecond: number }> {
  const provider = new ResidentWeights(new CheckpointWeights(ckpt, { bf16Weights: true }));
  for (let l = 0; l < ckpt.config.numLayers; l++) {
    const layer = await provider.layer(l);
    if (layer.mlp.kind === 'moe') for (let e = 0; e < ckpt.config.numExperts; e++) await layer.mlp.moe.expert(e);
  }
  const decoder = new BatchDecoder(provider, engine, { maxBatchSize: 1 });
  try {
    let result = { tokens: [] as number[], perSecond: 0 };
    for (let run = 0; run < 2; run++) {
      const tokens: number[] = [];
      const at: number[] = [];
      for await (const event of decoder.submit(Int32Array.from(prompt), { temperature: 0, maxNewTokens: steps + 1, stopTokenIds: [] })) {
        if (event.type === 'token') {
          tokens.push(event.token);
          at.push(performance.now());
        }
      }
      result = { tokens, perSecond: (tokens.length - 1) / ((at[at.length - 1] - at[0]) / 1000) };
    }
    return result;
  } finally {
    await decoder.close();
  }
}
