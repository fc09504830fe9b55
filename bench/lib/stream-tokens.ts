/** A generation stream's token ids, for the decode benchmarks. */
import type { GenerationStream } from '../../src/runtime/index.js';

/** Every token id of `stream`, in order; `onFirst` runs when its first token arrives (a benchmark's time-to-first-token mark). */
export async function streamTokens(stream: GenerationStream, onFirst?: () => void): Promise<number[]> {
  const tokens: number[] = [];
  for await (const e of stream) {
    if (e.type !== 'token') continue;
    if (tokens.length === 0) onFirst?.();
    tokens.push(e.token);
  }
  return tokens;
}
